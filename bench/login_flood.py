"""A login flood against ``solarfleet serve`` with the default argon2 cost (issue 9 item 4).

60 threads post a wrong password for one user at once (then 100 at once from one address with
different usernames) while one client GETs /v1/entities in a loop. Prints the answers' status
counts, the GET's latency during the flood and the server's peak resident memory (VmHWM).

    .venv/bin/python bench/login_flood.py [--concurrency 60] [--pg-url postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _common import Latencies, api_user, free_port, machine, start_server, stop_server, wait_ready


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _prepare(url: str, data_dir: Path) -> str:
    """A fresh schema, a user ``victim`` (password ``right password``), and a token for GETs."""
    from sqlalchemy import text

    from solarfleet.auth.service import create_user
    from solarfleet.db import make_engine, make_sessionmaker
    from solarfleet.schema import upgrade
    from solarfleet.settings import Settings

    settings = Settings(data_dir=data_dir, database_url=url or None)
    engine = make_engine(settings.effective_database_url)
    if url:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(engine)
    with make_sessionmaker(engine)() as session:
        create_user(
            session=session, username="victim", password="right password", permissions="OVERVIEW"
        )
        token = api_user(session, settings, "reader")
        session.commit()
    engine.dispose()
    return token


def _flood(base: str, bodies: list[dict[str, str]], token: str, forwarded: bool = False) -> None:
    codes: collections.Counter[int] = collections.Counter()
    latencies: list[float] = []
    done = threading.Event()
    start = threading.Barrier(len(bodies) + 1)

    def login(n: int) -> None:
        headers = {"X-Forwarded-For": f"203.0.113.{n % 250}"} if forwarded else {}
        with httpx.Client(base_url=base, timeout=120) as http:
            start.wait()
            codes[http.post("/v1/auth/login", json=bodies[n], headers=headers).status_code] += 1

    def reader() -> None:
        headers = {"Authorization": f"Token token={token}"}
        with httpx.Client(base_url=base, timeout=120, headers=headers) as http:
            http.get("/v1/entities")
            start.wait()
            while not done.is_set():
                t0 = time.perf_counter()
                assert http.get("/v1/entities").status_code == 200
                latencies.append(time.perf_counter() - t0)
                if latencies[-1] > 1:
                    print(f"  a GET took {latencies[-1]:.1f} s, from {t0 - began:.1f} s")
                time.sleep(0.01)

    threads = [threading.Thread(target=login, args=(n,)) for n in range(len(bodies))]
    probe = threading.Thread(target=reader)
    began = time.perf_counter()
    probe.start()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    done.set()
    probe.join()
    lat = Latencies(latencies)
    print(
        f"  answers {dict(sorted(codes.items()))} in {elapsed:.1f} s; GET during the flood: "
        f"n={lat.n} median {lat.median_ms:.0f} ms, max {lat.max_ms:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=60)
    parser.add_argument("--addresses", type=int, default=100)
    parser.add_argument("--pg-url", default="", help="PostgreSQL (a database this may wipe)")
    args = parser.parse_args()
    print(machine("postgresql" if args.pg_url else "sqlite"))
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        token = _prepare(args.pg_url, data_dir)
        port = free_port()
        log = data_dir / "serve.log"
        env = {"SOLARFLEET_TRUSTED_PROXIES": "127.0.0.1"}
        if args.pg_url:
            env["SOLARFLEET_DATABASE_URL"] = args.pg_url
        server = start_server(data_dir, port, log, env=env, cli=True)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, server, log)
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Token token={token}"}
            ) as c:
                idle = []
                for _ in range(30):
                    t0 = time.perf_counter()
                    c.get("/v1/entities")
                    idle.append(time.perf_counter() - t0)
            lat = Latencies(idle[5:])
            print(f"GET with no flood: median {lat.median_ms:.0f} ms, max {lat.max_ms:.0f} ms")
            print(f"{args.concurrency} wrong passwords for one user at once:")
            _flood(base, [{"username": "victim", "password": "wrong"}] * args.concurrency, token)
            print(f"{args.addresses} wrong logins from one address, each for another user:")
            bodies = [{"username": f"guess-{n}", "password": "x"} for n in range(args.addresses)]
            _flood(base, bodies, token)
            print(f"{args.concurrency} wrong logins at once, each user and address another:")
            bodies = [{"username": f"other-{n}", "password": "x"} for n in range(args.concurrency)]
            _flood(base, bodies, token, forwarded=True)
            print(f"  server peak memory {_peak_rss_mib(server.pid):.0f} MiB")
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
