"""Benchmark: a filtered, ordered page of 100 products out of 100,000, through HTTP vs raw SQL.

Run from the project root (see bench/README.md for what the figures mean)::

    .venv/bin/python bench/bench_list.py            # about 1.5 minutes on 2 cores
    .venv/bin/python bench/bench_list.py --help     # rows, durations, rounds, clients, ...

In one run, so that every figure shares the machine's current mood:

1. builds a fresh SQLite database in a temporary data dir with the project's own migrations
   (``solarfleet.schema.upgrade``): only the indexes the models declare exist;
2. bulk-inserts ``--rows`` products (core ``insert`` executemany), 3 product types and one
   SYSTEM/GLOBAL user with an API token;
3. starts the API in a subprocess: uvicorn, one worker, access log off, on 127.0.0.1;
4. for each scenario (``filtered``: the issue's request; ``unfiltered``: a page whose SQL is
   cheap, to show the fixed cost of a request), captures the exact SQL the list endpoint emits
   (``crud.list_rows`` run in-process with a ``before_cursor_execute`` hook) and checks that the
   raw path below builds the very bytes the API answers;
5. measures, in ``--rounds`` interleaved rounds (``--duration`` / ``--raw-duration`` seconds per
   phase in all, at most ``--max-ops`` operations each):

   * ``http floor``     ``GET`` of an unknown path (404 from the app): client + HTTP + routing,
                        no database, for scale (once);
   * ``raw sql``        the captured COUNT + page SELECT with the stdlib ``sqlite3`` driver,
                        rows fetched as tuples;
   * ``raw sql+json``   the same, plus building the same dicts (booleans, timestamps in the wire
                        format) and the same envelope, encoded with orjson: the baseline;
   * ``api seq``        the request on one persistent httpx connection, one at a time;
   * ``api xN``         N clients (threads, one persistent connection each) at once;

   and prints operations/s, median and p99 latency, and cost ratios against the baseline
   (``api cost per request / raw cost per request`` = ``raw ops/s / api req/s``; the issue's
   aim is <= 3), overall and round by round.

Speed is reported, never asserted: the exit status does not depend on the figures.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from _common import Latencies, api_user, free_port, machine, start_server, stop_server, wait_ready
from _common import run_for as run_ops
from sqlalchemy import event, insert

import solarfleet.models  # noqa: F401  (every table known to the metadata)
from solarfleet.api import crud
from solarfleet.api.query import parse_q
from solarfleet.auth.principal import Principal
from solarfleet.db import make_engine, make_sessionmaker
from solarfleet.fleet.models import Product, ProductType
from solarfleet.resources import REGISTRY
from solarfleet.schema import upgrade
from solarfleet.settings import Settings

PAGE = 3
PER_PAGE = 100
SCENARIOS = {
    # The request: two filters (one on an indexed column), ordered by a unique column.
    "filtered": (
        '{"filters":[{"name":"gps_lat","op":">","val":-1.0},'
        '{"name":"product_type_id","op":"in","val":[1,2]}],'
        '"order_by":[{"field":"serial_number","direction":"desc"}]}'
    ),
    # A page with no filter, ascending (nulls last, so SQLite walks the serial_number index and
    # stops after 300 rows): the SQL takes well under a millisecond, so what this shows is the
    # fixed cost of a request (HTTP, auth, FastAPI, SQLAlchemy, JSON).
    "unfiltered": '{"order_by":[{"field":"serial_number","direction":"asc"}]}',
}
USERNAME = "bench@solarfleet.local"


# -- data ------------------------------------------------------------------------------------


def build_database(data_dir: Path, rows: int, seed: int) -> tuple[str, str]:
    """A migrated SQLite database with ``rows`` products; (database url, API token)."""
    settings = Settings(data_dir=data_dir)
    url = settings.effective_database_url
    engine = make_engine(url)
    upgrade(engine)
    rng = random.Random(seed)
    now = datetime(2026, 1, 1)
    with engine.begin() as conn:
        conn.execute(
            insert(ProductType.__table__),
            [
                {"product_type_id": i, "name": name, "erp_code": erp, "credit_type": credit,
                 "parameter_types": [], "created_at": now, "created_by": "bench"}
                for i, (name, erp, credit) in enumerate(
                    [("BB17 Smart", "BB17", "time"), ("BB50 Home TV", "BB50", "time"),
                     ("Flexx Lite", "FLX", "gas")], start=1)
            ],
        )  # fmt: skip
        serials = list(range(rows))
        rng.shuffle(serials)  # serial order unrelated to IMEI order
        batch: list[dict[str, Any]] = []
        for i in range(rows):
            enabled = None if rng.random() < 0.05 else rng.random() > 0.1
            batch.append(
                {
                    "product_imei": f"35{i:013d}",
                    "product_type_id": 1 + (i % 3 if rng.random() < 0.9 else rng.randrange(3)),
                    "serial_number": None if rng.random() < 0.01 else f"SF{serials[i]:08d}",
                    "imsi": None if rng.random() < 0.2 else f"63510{i:010d}",
                    "iccid": None if rng.random() < 0.2 else f"8925010{i:012d}",
                    "device_key": secrets.token_urlsafe(18),
                    "current_enable_flag": enabled,
                    "desired_enable_flag": enabled if rng.random() < 0.95 else not enabled,
                    "gps_lat": None if rng.random() < 0.03 else round(rng.uniform(-3.0, 1.5), 5),
                    "gps_lon": None if rng.random() < 0.03 else round(rng.uniform(29.0, 36.0), 5),
                    "created_at": now - timedelta(seconds=rng.randrange(3 * 365 * 86400)),
                    "created_by": "bench",
                    "modified_at": None if rng.random() < 0.7 else now,
                    "modified_by": None,
                }
            )
            if len(batch) == 10_000:
                conn.execute(insert(Product.__table__), batch)
                batch.clear()
        if batch:
            conn.execute(insert(Product.__table__), batch)
    with make_sessionmaker(engine)() as session:
        token = api_user(session, settings, USERNAME)
        session.commit()
    with engine.connect() as conn:  # fresh statistics, as a maintained deployment would have
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    engine.dispose()
    return url, token


# -- the SQL the endpoint emits ---------------------------------------------------------------


def capture_sql(url: str, q: str) -> list[tuple[str, Any]]:
    """The statements ``crud.list_rows`` executes for the benchmark query (BEGIN excluded)."""
    engine = make_engine(url)
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.strip().upper() not in ("BEGIN", "BEGIN IMMEDIATE"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    principal = Principal(
        user_id=1, username=USERNAME, permissions="SYSTEM", scope="GLOBAL", entity_id=None
    )
    with make_sessionmaker(engine)() as session:
        crud.list_rows(
            session=session,
            registry=REGISTRY,
            spec=REGISTRY.by_name["products"],
            principal=principal,
            q=parse_q(q),
            page=PAGE,
            per_page=PER_PAGE,
        )
    engine.dispose()
    return seen


class RawPath:
    """The captured COUNT and page SELECT through the stdlib driver."""

    def __init__(self, db_path: str, statements: list[tuple[str, Any]]) -> None:
        (self.count_sql, self.count_params), (self.page_sql, self.page_params) = statements
        self.conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        # the one pragma solarfleet.db sets on every connection that matters to a read
        self.conn.execute("PRAGMA case_sensitive_like = ON")
        cursor = self.conn.execute(self.page_sql, self.page_params)  # for the column names
        self.columns = [d[0] for d in cursor.description]
        cursor.fetchall()
        table = Product.__table__.c
        kinds = {c: table[c].type.python_type for c in self.columns if c in table}
        self.bools = {c for c, kind in kinds.items() if kind is bool}
        self.times = {c for c, kind in kinds.items() if kind is datetime}

    def query(self) -> tuple[int, list[tuple[Any, ...]]]:
        conn = self.conn
        total = conn.execute(self.count_sql, self.count_params).fetchone()[0]
        rows = conn.execute(self.page_sql, self.page_params).fetchall()
        return total, rows

    def document(self) -> bytes:
        """What the endpoint answers, built by hand from the raw rows."""
        total, rows = self.query()
        columns, bools, times = self.columns, self.bools, self.times
        objects = []
        for row in rows:
            obj = dict(zip(columns, row, strict=True))
            for c in bools:
                if obj[c] is not None:
                    obj[c] = bool(obj[c])
            for c in times:
                if obj[c] is not None:
                    obj[c] = obj[c].replace(" ", "T", 1)  # stored "YYYY-MM-DD HH:MM:SS.ffffff"
            objects.append(obj)
        # the API's page arithmetic for this query (no limit/offset in q)
        return orjson.dumps(
            {
                "num_results": total,
                "objects": objects,
                "page": PAGE,
                "total_pages": -(-total // PER_PAGE),
            }
        )


# -- measuring --------------------------------------------------------------------------------


class Result:
    def __init__(self, name: str, ops: int, seconds: float, latencies: list[float]) -> None:
        self.name = name
        self.ops = ops
        self.seconds = seconds
        self.latencies = latencies
        self.rate = ops / seconds
        lat = Latencies(latencies)
        self.median_ms = lat.median_ms
        self.p99_ms = lat.p99_ms

    @staticmethod
    def merge(parts: list[Result]) -> Result:
        return Result(
            parts[0].name,
            sum(p.ops for p in parts),
            sum(p.seconds for p in parts),
            [x for p in parts for x in p.latencies],
        )


def run_for(name: str, op: Callable[[], Any], duration: float, max_ops: int) -> Result:
    seconds, latencies = run_ops(op, duration, max_ops)
    return Result(name, len(latencies), seconds, latencies)


def run_concurrent(
    name: str, make_op: Callable[[], Callable[[], Any]], clients: int, duration: float, max_ops: int
) -> Result:
    """``clients`` threads, each with its own op (own connection), for ``duration`` seconds."""
    ops = [make_op() for _ in range(clients)]
    per_thread: list[list[float]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    stop_at = [0.0]
    budget = max_ops // clients

    def work(i: int) -> None:
        op, lat, clock = ops[i], per_thread[i], time.perf_counter
        barrier.wait()
        now = clock()
        while now < stop_at[0] and len(lat) < budget:
            t0 = clock()
            op()
            now = clock()
            lat.append(now - t0)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    stop_at[0] = start + duration
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    latencies = [x for lat in per_thread for x in lat]
    return Result(name, len(latencies), elapsed, latencies)


def http_op(
    client: httpx.Client, path: str, params: dict[str, str], status: int
) -> Callable[[], Any]:
    def op() -> bytes:
        response = client.get(path, params=params)
        if response.status_code != status:
            raise SystemExit(f"GET {path}: {response.status_code} {response.text[:200]}")
        return response.content

    return op


# -- main -------------------------------------------------------------------------------------


def report(r: Result) -> None:
    print(f"  {r.name:<14} {r.rate:9.1f} ops/s  median {r.median_ms:7.2f} ms  "
          f"p99 {r.p99_ms:7.2f} ms  ({r.ops} in {r.seconds:.1f} s)", flush=True)  # fmt: skip


def ratio(name: str, api: Result, base_rate: float, note: str = "") -> None:
    print(f"  {name:<34} {base_rate / api.rate:5.2f}{note}")


def bench_scenario(
    name: str, q: str, *, url: str, db_path: str, base: str, headers: dict[str, str],
    args: argparse.Namespace, floor: Result,
) -> dict[str, float]:  # fmt: skip
    print(f"\n== {name}: GET /v1/products?q={q}&results_per_page={PER_PAGE}&page={PAGE}")
    statements = capture_sql(url, q)
    if len(statements) != 2:
        raise SystemExit(f"expected COUNT + page SELECT, captured {len(statements)}")
    print("SQL the endpoint emits (captured):")
    raw = RawPath(db_path, statements)
    for sql, sql_params in statements:
        print("  " + " ".join(sql.split()) + f"   -- {sql_params}")
        plan = raw.conn.execute("EXPLAIN QUERY PLAN " + sql, sql_params).fetchall()
        print("    plan: " + "; ".join(str(p[-1]) for p in plan))

    params = {"q": q, "results_per_page": str(PER_PAGE), "page": str(PAGE)}

    clients: list[httpx.Client] = []

    def api_op() -> Callable[[], Any]:
        clients.append(httpx.Client(base_url=base, headers=headers, timeout=30.0))
        return http_op(clients[-1], "/v1/products", params, 200)

    api = api_op()
    api_body, raw_body = api(), raw.document()
    if api_body == raw_body:
        print(f"check: the raw path builds the very bytes the API answers ({len(api_body)} bytes, "
              f"{orjson.loads(api_body)['num_results']} matches)")  # fmt: skip
    elif orjson.loads(api_body) == orjson.loads(raw_body):
        print("check: raw and API documents are equal (bytes differ)")
    else:
        raise SystemExit("the raw path does not build the document the API answers")
    for _ in range(20):  # warm up: statement caches, connection pools
        api()
        raw.document()

    # Interleaved rounds (raw, api, api xN, raw), so that a burst of load from elsewhere hits
    # both sides of a ratio rather than one.
    rounds = max(1, args.rounds)
    raw_t, api_t = args.raw_duration / rounds, args.duration / rounds
    phases: dict[str, list[Result]] = {}
    per_round: list[float] = []
    conc = f"api x{args.clients}"
    for _ in range(rounds):
        phases.setdefault("raw sql", []).append(run_for("raw sql", raw.query, raw_t, args.max_ops))
        before = run_for("raw sql+json", raw.document, raw_t / 2, args.max_ops)
        seq = run_for("api seq", api, api_t, args.max_ops)
        if args.clients > 0:
            phases.setdefault(conc, []).append(
                run_concurrent(conc, api_op, args.clients, api_t, args.max_ops)
            )
        after = run_for("raw sql+json", raw.document, raw_t / 2, args.max_ops)
        phases.setdefault("raw sql+json", []).extend([before, after])
        phases.setdefault("api seq", []).append(seq)
        per_round.append(Result.merge([before, after]).rate / seq.rate)
    raw.conn.close()
    for client in clients:
        client.close()
    order = ["raw sql", "raw sql+json", "api seq", conc]
    merged = {k: Result.merge(phases[k]) for k in order if k in phases}
    for r in merged.values():
        report(r)
    raw_sql, api_seq, api_conc = merged["raw sql"], merged["api seq"], merged.get(conc)
    base_rate = merged["raw sql+json"].rate

    print(f"cost ratios over {rounds} interleaved rounds (baseline: raw sql+json):")
    ratio("raw sql+json / raw sql", merged["raw sql+json"], raw_sql.rate)
    note = "   <- the issue's figure (aim: <= 3)" if name == "filtered" else ""
    ratio("api seq / raw sql+json", api_seq, base_rate, note)
    print(f"  {'  the same, round by round':<34} "
          + " ".join(f"{x:.2f}" for x in per_round))  # fmt: skip
    ratio("api seq / raw sql", api_seq, raw_sql.rate)
    if api_conc is not None:
        ratio(f"{conc} / raw sql+json (throughput)", api_conc, base_rate)
        print(f"  {conc + ' / api seq throughput':<34} {api_conc.rate / api_seq.rate:5.2f}")
    api_ms, raw_ms, floor_ms = 1000 / api_seq.rate, 1000 / base_rate, 1000 / floor.rate
    print(f"  per request: api {api_ms:.2f} ms = raw sql+json {raw_ms:.2f} ms + the rest "
          f"{api_ms - raw_ms:.2f} ms (client+HTTP+routing alone: {floor_ms:.2f} ms)")  # fmt: skip
    return {
        "api": api_seq.rate,
        "base": base_rate,
        "ratio": base_rate / api_seq.rate,
        "median_ms": api_seq.median_ms,
        "p99_ms": api_seq.p99_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000, help="products (default 100000)")
    parser.add_argument(
        "--duration", type=float, default=12.0, help="seconds per API phase (all rounds)"
    )
    parser.add_argument(
        "--raw-duration", type=float, default=6.0, help="seconds per raw phase (all rounds)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario")
    parser.add_argument("--max-ops", type=int, default=100_000, help="operations per phase at most")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (0: skip)")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"of {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--seed", type=int, default=2016)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    args = parser.parse_args()
    scenarios = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in scenarios if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}")

    data_dir = Path(tempfile.mkdtemp(prefix="solarfleet-bench-"))
    server = None
    try:
        print(machine())
        t0 = time.perf_counter()
        url, token = build_database(data_dir, args.rows, args.seed)
        db_path = url.removeprefix("sqlite:///")
        print(f"database: {args.rows} products in {time.perf_counter() - t0:.1f} s ({db_path})")

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(data_dir, port, data_dir / "server.log")
        wait_ready(base, server, data_dir / "server.log", timeout=60.0)
        print(f"server: uvicorn, 1 worker, no access log, {base} (pid {server.pid})")
        headers = {"Authorization": f"Token token={token}"}

        with httpx.Client(base_url=base, timeout=30.0) as client:
            floor_op = http_op(client, "/bench-no-such-path", {}, 404)
            for _ in range(50):
                floor_op()
            print("\n== http floor: GET of an unknown path (404 from the app, no database)")
            floor = run_for("http floor", floor_op, args.raw_duration, args.max_ops)
            report(floor)

        summary = {}
        for name in scenarios:
            summary[name] = bench_scenario(
                name, SCENARIOS[name], url=url, db_path=db_path, base=base, headers=headers,
                args=args, floor=floor,
            )  # fmt: skip

        print(f"\n== summary (sequential, one worker; load average now "
              f"{os.getloadavg()[0]:.2f}: other processes make every figure slower)")  # fmt: skip
        for name, figures in summary.items():
            print(f"  {name:<11} api {figures['api']:7.1f} req/s (median {figures['median_ms']:.1f}"
                  f" ms, p99 {figures['p99_ms']:.1f} ms)   raw sql+json {figures['base']:7.1f}"
                  f" ops/s   api cost / raw cost {figures['ratio']:5.2f}")  # fmt: skip
        if server.poll() is not None:
            print(f"the server exited early (status {server.returncode})")
        log = (data_dir / "server.log").read_text(errors="replace").strip()
        if log:
            print("\nserver log:\n" + log[-2000:])
    finally:
        if server is not None:
            stop_server(server)
        if args.keep:
            print(f"\ndata kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
