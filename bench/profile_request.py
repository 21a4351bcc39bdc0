"""Where one request's time goes, in-process: the app driven as ASGI, no sockets (issue 11).

On a shared machine HTTP timings move by 2x from one run to the next; without sockets, client
and event-loop scheduling, the app's own cost per request is steadier. The demo fleet (as
``bench_fast.py`` builds it, 16 values in force on one unit) is served by ``create_app`` in this
process; each request kind is timed, interleaved round by round. ``--profile KIND`` then runs
that kind under cProfile with the thread pool's calls made inline, so that one profile sees the
event loop's part and the worker thread's part of a request together.

    PYTHONPATH=$PWD/src:$PWD .venv/bin/python bench/profile_request.py
    PYTHONPATH=$PWD/src:$PWD .venv/bin/python bench/profile_request.py --profile "page of 10"
    PYTHONPATH=$PWD/src:$PWD .venv/bin/python bench/profile_request.py --profile upload \
        --sort tottime
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import itertools
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from _common import machine

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from bench_fast import IDLE, IMEI, RELATION_Q, prepare, sixteen_in_force  # noqa: E402

Call = Callable[[], Awaitable[int]]


def asgi_caller(app: Any) -> Callable[..., Awaitable[int]]:
    async def call(method: str, path: str, headers: dict[str, str], query: str = "",
                   body: bytes = b"") -> int:  # fmt: skip
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "root_path": "", "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 80), "state": {},
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }  # fmt: skip
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        status = 0

        async def receive() -> dict[str, Any]:
            return pending.pop() if pending else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    return call


def uploads(imei: str) -> Callable[[], bytes]:
    """Bodies of 1,000 readings (5 fields x 200 times), each upload a new stretch of time."""
    counter = itertools.count()

    def body() -> bytes:
        start = 1_700_000_000_000 + next(counter) * 200_000
        fields = {f"f{j}": [[start + i * 1000, 12.5 + i] for i in range(200)] for j in range(5)}
        return orjson.dumps({"measurement": "bench", "tags": {"source": "bms"}, "fields": fields})

    return body


async def main_async(args: argparse.Namespace, folder: Path, password: str) -> None:
    from fastapi.testclient import TestClient

    from solarfleet.app import create_app
    from solarfleet.settings import Settings

    app = create_app(Settings(data_dir=folder))
    with TestClient(app) as api:  # the set-up, through the API as a client would do it
        admin_login = {"username": "admin@solarfleet.local", "password": password}
        login = api.post("/v1/auth/login", data=admin_login)
        token = login.json()["message"]["login_successful"]["API_token"]
        admin = {"Authorization": f"Token token={token}"}
        sixteen_in_force(api, admin)
        time.sleep(1.1)  # the instant below has whole seconds: after every confirmation
        key = api.get(f"/v1/products/{IDLE}", headers=admin).json()["device_key"]
    unit = {"Authorization": "Basic " + base64.b64encode(f"{IDLE}:{key}".encode()).decode()}
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    relation = "q=" + json.dumps(RELATION_Q) + "&results_per_page=100"
    body = uploads(IMEI)
    call = asgi_caller(app)
    kinds: dict[str, Call] = {
        "404": lambda: call("GET", "/v1/no-such-thing", {}),
        "page of 10": lambda: call("GET", "/v1/products", admin),
        "rc_data": lambda: call("GET", "/v1/rc_data", unit),
        "history?date=": lambda: call(
            "GET", f"/v1/products/{IMEI}/parameters/history", admin, f"date={now}"),
        "filtered page of 100": lambda: call("GET", "/v1/products", admin, relation),
        "upload": lambda: call("POST", f"/v1/products/{IMEI}/data",
                               {**admin, "Content-Type": "application/json"}, body=body()),
    }  # fmt: skip
    if args.profile and args.profile not in kinds:
        raise SystemExit(f"--profile: one of {', '.join(kinds)}")
    async with app.router.lifespan_context(app):
        for kind, request in kinds.items():
            for _ in range(20):  # warm-up: connections, statement caches, the thread pool
                status = await request()
                assert status < 500 and status != 401, (kind, status)
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(args.requests):
            for kind, request in kinds.items():
                t0 = time.perf_counter()
                await request()
                times[kind].append(time.perf_counter() - t0)
        print(f"{'request (in-process, no sockets)':34} {'median ms':>10} {'x 404':>7}")
        floor = statistics.median(times["404"])
        for kind, seconds in times.items():
            median = statistics.median(seconds)
            print(f"{kind:34} {median * 1000:10.3f} {median / floor:7.2f}")
        if args.profile:
            await profile(kinds[args.profile], args)


async def profile(request: Call, args: argparse.Namespace) -> None:
    """``request`` under cProfile, thread-pool calls made inline (one profile sees it all)."""
    import anyio.to_thread

    async def inline(func: Callable[..., Any], *func_args: Any, **_kw: Any) -> Any:
        return func(*func_args)

    threaded = anyio.to_thread.run_sync
    anyio.to_thread.run_sync = inline  # type: ignore[assignment]
    profiler = cProfile.Profile()
    try:
        profiler.enable()
        for _ in range(args.requests):
            await request()
        profiler.disable()
    finally:
        anyio.to_thread.run_sync = threaded
    print(f"\n{args.requests} x {args.profile!r}, thread-pool calls inline:")
    pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="per kind (default 300)")
    parser.add_argument("--profile", help="a request kind to profile, e.g. 'page of 10'")
    parser.add_argument("--sort", default="cumulative", help="cProfile order (default cumulative)")
    parser.add_argument("--lines", type=int, default=45, help="profile lines (default 45)")
    args = parser.parse_args()
    print(machine())
    folder = Path(tempfile.mkdtemp(prefix="bench-request-"))
    os.environ["SOLARFLEET_DATA_DIR"] = str(folder)
    password = prepare(folder)
    asyncio.run(main_async(args, folder, password))


if __name__ == "__main__":
    main()
