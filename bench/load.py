"""Load on loopback: operators and units at once against the real server, then a count of what
was acknowledged against what is stored.

Run from the project root (see bench/README.md for the figures)::

    .venv/bin/python bench/load.py                                   # SQLite, 1 process, 50 x 60 s
    .venv/bin/python bench/load.py --database postgresql --workers 4
    .venv/bin/python bench/load.py --clients 10 --duration 10         # a quick look
    .venv/bin/python bench/load.py --help

What it does:

1. a temporary data dir and a new database (SQLite under the data dir, or a database of its own
   on the PostgreSQL server of ``--pg-url``), brought to the newest schema by the project's
   migrations (``solarfleet.schema.upgrade``), loaded with the demo fleet
   (``solarfleet.demo.load_demo``: ``--units`` units of three product types, parts, some
   active parameters) and ``--operators`` ADMIN/GLOBAL users with an API token each;
2. starts the API as ``solarfleet serve`` runs it (uvicorn, factory
   ``solarfleet.app:app_from_environment``), with the access log off: one worker process on
   SQLite, ``--workers`` (default 4) on PostgreSQL; the embedded hot store, or InfluxDB with
   ``--influx-url`` (a database of its own, dropped at the end);
3. ``--clients`` asyncio clients (one httpx connection each) for ``--duration`` seconds, closed
   loop (no think time), each request drawn at random with these weights:

   ========================================  ======  ==========================================
   request                                   weight  who
   ========================================  ======  ==========================================
   ``GET /v1/products?q=…``                    10    an operator: one of four filtered, ordered
                                                     lists (SPEC §3: ``has``, ``any``, ``like``,
                                                     ``or``, relation fields), page 1 to 3 of 25
   ``GET …/parameters/history``                 6    an operator: a unit's full history
   ``GET …/parameters/history?date=``           6    an operator: the set in force at an instant
   ``POST /v1/products/<imei>/parameters``     10    an operator sets max_load_watts or
                                                     tariff_plan (201, pending)
   ``GET /v1/rc_data`` (+ ``POST``)            30    a unit fetches its pending values and, if
                                                     there are any, reports them back (confirms)
   ``POST /v1/rm_data``                        30    a unit uploads ``--points`` readings
   ========================================  ======  ==========================================

   Units are drawn from the whole fleet; every upload carries readings at times no other upload
   of that unit carries, so each acknowledged reading is a distinct row;
4. prints the throughput, per endpoint the count, rate, p50/p99/max latency and errors (any
   answer but the expected 2xx, timeouts, transport errors), the first error bodies, and the
   server log's errors (``ERROR``, ``Traceback``, ``database is locked``);
5. verifies, with the server still running: every acknowledged upload's readings are in the
   hot store (per unit, the count read back equals the count acknowledged) and readable through
   ``GET /v1/products/<imei>/data``; every acknowledged set is a row of the unit's history with
   its value (``GET …/parameters/history``) and in the database; every confirmation the units
   were told about (``activated``) is an ``active``/``removed`` row; at most one ``pending`` and
   one ``active`` row per unit and type. Prints ``lost: 0`` lines;
6. exits 1 if there was any error or loss, else 0. Speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _common import (
    Latencies,
    api_user,
    free_port,
    machine,
    server_errors,
    start_server,
    stop_server,
    wait_ready,
)

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:55432"
MEASUREMENT = "loadtest"
FIELDS = ("battery_voltage", "pv_power", "load_power", "charging")
SET_TYPES = ("max_load_watts", "tariff_plan")  # allowed on every demo product type
TARIFFS = ("daily", "weekly", "monthly")
LISTS = [  # filtered, ordered product lists (SPEC §3)
    {"filters": [{"name": "gps_lat", "op": "<", "val": -1.0}],
     "order_by": [{"field": "created_at", "direction": "desc"}]},
    {"filters": [{"name": "product_type__name", "op": "has", "val": "BB17 Smart"},
                 {"name": "parts__serial_number", "op": "like", "val": "PT000%"}],
     "order_by": [{"field": "created_at", "direction": "desc"}]},
    {"filters": [{"name": "entities__name", "op": "any", "val": "Sunrise Rwanda"}],
     "order_by": [{"field": "serial_number", "direction": "asc"}]},
    {"filters": [{"or": [{"name": "current_enable_flag", "op": "==", "val": False},
                         {"name": "serial_number", "op": "like", "val": "SF00001%"}]}],
     "order_by": [{"field": "gps_lon", "direction": "desc"}]},
]  # fmt: skip
# endpoint label -> weight of the action that starts with it
WEIGHTS = {"list": 10, "history": 6, "as-of": 6, "set": 10, "unit rc": 30, "upload": 30}
ENDPOINTS = {  # label -> (the request, the status it must answer)
    "list": ("GET /v1/products?q=", 200),
    "history": ("GET /v1/products/<imei>/parameters/history", 200),
    "as-of": ("GET /v1/products/<imei>/parameters/history?date=", 200),
    "set": ("POST /v1/products/<imei>/parameters", 201),
    "rc get": ("GET /v1/rc_data", 200),
    "rc post": ("POST /v1/rc_data", 200),
    "upload": ("POST /v1/rm_data", 200),
}


# -- the fleet ---------------------------------------------------------------------------------


@dataclass
class Unit:
    imei: str
    key: str
    created_at: datetime


@dataclass
class Fleet:
    units: list[Unit]
    tokens: list[str]
    set_types: dict[str, int]  # name -> parameter_type_id


def create_postgres_database(server_url: str, name: str) -> str:
    """A new, empty database ``name`` on the server of ``server_url``; its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    admin = url.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


def build_fleet(url: str, data_dir: Path, units: int, operators: int) -> Fleet:
    """Schema through the migrations, the demo fleet, ADMIN users with a token each."""
    from sqlalchemy import select

    import solarfleet.models  # noqa: F401  (every table known to the metadata)
    from solarfleet.db import make_engine, make_sessionmaker
    from solarfleet.demo import load_demo
    from solarfleet.fleet.models import ParameterType, Product
    from solarfleet.schema import upgrade
    from solarfleet.settings import Settings

    settings = Settings(data_dir=data_dir, database_url=url)
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        load_demo(session=session, units=units)
    tokens = []
    with sessions() as session:
        for i in range(operators):
            tokens.append(api_user(session, settings, f"operator-{i}@load.local", "ADMIN", "load"))
        session.commit()
        rows = session.execute(
            select(Product.product_imei, Product.device_key, Product.created_at).order_by(
                Product.product_imei
            )
        ).all()
        set_types = dict(
            session.execute(
                select(ParameterType.name, ParameterType.parameter_type_id).where(
                    ParameterType.name.in_(SET_TYPES)
                )
            ).all()
        )
    engine.dispose()
    return Fleet([Unit(*row) for row in rows], tokens, set_types)


# -- the load ----------------------------------------------------------------------------------


@dataclass
class Endpoint:
    latencies: list[float] = field(default_factory=list)  # measured window only
    requests: int = 0  # all of them, warm-up included
    errors: int = 0
    samples: list[str] = field(default_factory=list)  # the first error bodies


class Load:
    """The clients' shared state: what was sent, what was acknowledged, how long it took."""

    def __init__(self, fleet: Fleet, args: argparse.Namespace, base: str) -> None:
        self.fleet = fleet
        self.args = args
        self.base = base
        self.stats = {label: Endpoint() for label in ENDPOINTS}
        self.measuring = False
        # acknowledged uploads: imei -> readings the server said it wrote
        self.acked_points: dict[str, int] = defaultdict(int)
        self.uploads = 0
        self.next_stamp: dict[str, int] = defaultdict(int)  # imei -> next unused time slot
        self.t0_ms = int((datetime.now(UTC) - timedelta(days=2)).timestamp()) * 1000
        # acknowledged sets: (imei, product_parameter_id, value)
        self.sets: list[tuple[str, int, str]] = []
        self.activated = 0  # confirmations the server reported to the units
        self.now = datetime.now(UTC).replace(tzinfo=None)

    # one request, timed and judged
    async def call(
        self, client: httpx.AsyncClient, label: str, method: str, url: str, **kw: Any
    ) -> httpx.Response | None:
        stats = self.stats[label]
        expected = ENDPOINTS[label][1]
        t0 = time.perf_counter()
        try:
            response = await client.request(method, url, **kw)
        except httpx.HTTPError as exc:
            elapsed = time.perf_counter() - t0
            self._failed(stats, f"{type(exc).__name__} after {elapsed:.1f} s: {exc}")
            return None
        elapsed = time.perf_counter() - t0
        stats.requests += 1
        if self.measuring:
            stats.latencies.append(elapsed)
        if response.status_code != expected:
            self._failed(stats, f"{response.status_code} {response.text[:300]}", counted=True)
            return None
        return response

    def _failed(self, stats: Endpoint, what: str, *, counted: bool = False) -> None:
        if not counted:
            stats.requests += 1
        stats.errors += 1
        if len(stats.samples) < self.args.samples:
            stats.samples.append(what)

    # operator traffic
    async def list_products(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        q = json.dumps(rng.choice(LISTS), separators=(",", ":"))
        params = {"q": q, "results_per_page": "25", "page": str(rng.randint(1, 3))}
        await self.call(client, "list", "GET", "/v1/products", params=params)

    async def history(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        unit = rng.choice(self.fleet.units)
        url = f"/v1/products/{unit.imei}/parameters/history"
        await self.call(client, "history", "GET", url)

    async def as_of(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        unit = rng.choice(self.fleet.units)
        span = max(1.0, (self.now - unit.created_at).total_seconds())
        at = unit.created_at + timedelta(seconds=rng.uniform(0, span))
        url = f"/v1/products/{unit.imei}/parameters/history"
        await self.call(client, "as-of", "GET", url, params={"date": at.isoformat()})

    async def set_parameter(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        unit = rng.choice(self.fleet.units)
        name = rng.choice(SET_TYPES)
        value: Any = rng.randrange(0, 501) if name == "max_load_watts" else rng.choice(TARIFFS)
        body = {"parameter_type_id": self.fleet.set_types[name], "value": value}
        url = f"/v1/products/{unit.imei}/parameters"
        response = await self.call(client, "set", "POST", url, json=body)
        if response is not None:
            row = response.json()["data"]
            if row["value"] != str(value):
                self._failed(
                    self.stats["set"], f"set {value!r}, answered {row['value']!r}", counted=True
                )
            self.sets.append((unit.imei, row["product_parameter_id"], row["value"]))

    # unit traffic
    async def unit_rc(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        unit = rng.choice(self.fleet.units)
        auth = (unit.imei, unit.key)
        response = await self.call(client, "rc get", "GET", "/v1/rc_data", auth=auth)
        if response is None:
            return
        pending = response.json()["data"]["product_parameters"]
        if not pending:
            return
        body = {
            "product_parameters": [
                {"parameter_type_id": p["parameter_type_id"], "value": p["value"]} for p in pending
            ]
        }
        response = await self.call(client, "rc post", "POST", "/v1/rc_data", auth=auth, json=body)
        if response is not None:
            self.activated += response.json()["data"]["activated"]

    async def upload(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        unit = rng.choice(self.fleet.units)
        stamps = max(1, self.args.points // len(FIELDS))
        first = self.next_stamp[unit.imei]
        self.next_stamp[unit.imei] = first + stamps  # this upload's own time slots
        times = [self.t0_ms + (first + j) * 1000 for j in range(stamps)]
        fields = {
            f: [[t, (j % 2 == 0) if f == "charging" else round(rng.uniform(0, 50), 2)]
                for j, t in enumerate(times)]
            for f in FIELDS
        }  # fmt: skip
        body = {"measurement": MEASUREMENT, "tags": {"source": "load"}, "fields": fields}
        auth = (unit.imei, unit.key)
        response = await self.call(client, "upload", "POST", "/v1/rm_data", auth=auth, json=body)
        if response is not None:
            written = response.json()["data"]["points"]
            if written != stamps * len(FIELDS):
                sent = stamps * len(FIELDS)
                self._failed(self.stats["upload"], f"{sent} sent, {written} written", counted=True)
            self.acked_points[unit.imei] += written
            self.uploads += 1

    async def client(self, i: int, stop_at: float) -> None:
        rng = random.Random(self.args.seed * 1000 + i)
        actions = {
            "list": self.list_products, "history": self.history, "as-of": self.as_of,
            "set": self.set_parameter, "unit rc": self.unit_rc, "upload": self.upload,
        }  # fmt: skip
        names, weights = list(WEIGHTS), list(WEIGHTS.values())
        headers = {"Authorization": f"Token token={self.fleet.tokens[i % len(self.fleet.tokens)]}"}
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(
            base_url=self.base, headers=headers, timeout=self.args.timeout, limits=limits
        ) as client:
            # unit requests replace the operator's Authorization with their own (auth=)
            while time.perf_counter() < stop_at:
                action = actions[rng.choices(names, weights)[0]]
                await action(client, rng)

    async def run(self) -> float:
        """Warm-up (not timed: each request kind a few times), then the clients; the measured
        window's length in seconds."""
        rng = random.Random(self.args.seed)
        headers = {"Authorization": f"Token token={self.fleet.tokens[0]}"}
        async with httpx.AsyncClient(
            base_url=self.base, headers=headers, timeout=self.args.timeout
        ) as client:
            for _ in range(3):
                for action in (self.list_products, self.history, self.as_of, self.set_parameter,
                               self.unit_rc, self.upload):  # fmt: skip
                    await action(client, rng)
        self.measuring = True
        start = time.perf_counter()
        stop_at = start + self.args.duration
        await asyncio.gather(*(self.client(i, stop_at) for i in range(self.args.clients)))
        elapsed = time.perf_counter() - start
        self.measuring = False
        return elapsed

    async def floor(self, seconds: float) -> tuple[float, Latencies]:
        """The HTTP floor under the same clients: every one asks an unknown path (a 404 that
        touches no database) for ``seconds``; the rate and the latencies."""
        latencies: list[float] = []

        async def one(stop_at: float) -> None:
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            async with httpx.AsyncClient(
                base_url=self.base, timeout=self.args.timeout, limits=limits
            ) as client:
                while time.perf_counter() < stop_at:
                    t0 = time.perf_counter()
                    await client.get("/v1/no-such-thing")
                    latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(one(start + seconds) for _ in range(self.args.clients)))
        elapsed = time.perf_counter() - start
        return len(latencies) / elapsed, Latencies(latencies)


# -- verification ------------------------------------------------------------------------------


def verify(load: Load, url: str, data_dir: Path, influx: dict[str, str], base: str) -> list[str]:
    """Compare what was acknowledged with what the database, the hot store and the API hold;
    the problems found (empty: nothing lost)."""
    from sqlalchemy import func, select

    from solarfleet.db import make_engine, make_sessionmaker
    from solarfleet.parameters.models import ProductParameter
    from solarfleet.settings import Settings
    from solarfleet.telemetry.store import make_hot_store

    problems: list[str] = []
    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        influx_url=influx.get("SOLARFLEET_INFLUX_URL"),
        influx_database=influx.get("SOLARFLEET_INFLUX_DATABASE", "solarfleet"),
    )
    headers = {"Authorization": f"Token token={load.fleet.tokens[0]}"}
    http = httpx.Client(base_url=base, headers=headers, timeout=120.0)

    # telemetry: per unit, readings read back == readings acknowledged
    hot = make_hot_store(settings)
    far = 2**62
    acked_total = stored_total = api_total = lost = 0
    start = datetime.fromtimestamp(load.t0_ms / 1000 - 1, UTC).replace(tzinfo=None).isoformat()
    end = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat()
    try:
        for imei, acked in sorted(load.acked_points.items()):
            stored = len(hot.read(imei, 0, far, measurement=MEASUREMENT))
            params = {"start": start, "end": end, "measurement": MEASUREMENT, "limit": "100000"}
            r = http.get(f"/v1/products/{imei}/data", params=params)
            if r.status_code != 200:
                problems.append(f"GET /v1/products/{imei}/data: {r.status_code} {r.text[:200]}")
                through_api = 0
            else:
                data = r.json()["data"]
                series = [v for k, v in data.items() if k not in ("measurement", "tags")]
                through_api = sum(len(v) for v in series)
            acked_total += acked
            stored_total += stored
            api_total += through_api
            if stored < acked or through_api < acked:
                lost += acked - min(stored, through_api)
                problems.append(f"#{imei}: {acked} readings acknowledged, {stored} in the hot "
                                f"store, {through_api} through the API")  # fmt: skip
    finally:
        hot.close()
    print(f"  rm_data: {load.uploads:,} acknowledged uploads, {acked_total:,} readings of "
          f"{len(load.acked_points)} units acknowledged; read back: {stored_total:,} from the hot "
          f"store, {api_total:,} through GET /v1/products/<imei>/data")  # fmt: skip
    print(f"  lost: {lost} (readings: acknowledged but not read back)")

    # parameter sets: each acknowledged set is a history row with its value
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    by_unit: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for imei, row_id, value in load.sets:
        by_unit[imei].append((row_id, value))
    missing_api = missing_db = 0
    statuses: dict[str, int] = defaultdict(int)
    with sessions() as session:
        rows = {
            r.product_parameter_id: r
            for r in session.execute(
                select(
                    ProductParameter.product_parameter_id,
                    ProductParameter.product_imei,
                    ProductParameter.value,
                    ProductParameter.status,
                    ProductParameter.date_added,
                ).where(ProductParameter.created_by.like("operator-%"))
            )
        }
        confirmed = sum(
            1 for r in rows.values() if r.status in ("active", "removed") and r.date_added
        )
        doubles = session.execute(
            select(
                ProductParameter.product_imei,
                ProductParameter.parameter_type_id,
                ProductParameter.status,
                func.count(),
            )
            .where(ProductParameter.status.in_(("pending", "active")))
            .group_by(
                ProductParameter.product_imei,
                ProductParameter.parameter_type_id,
                ProductParameter.status,
            )
            .having(func.count() > 1)
        ).all()
    engine.dispose()
    for imei, sets in sorted(by_unit.items()):
        r = http.get(f"/v1/products/{imei}/parameters/history")
        if r.status_code != 200:
            problems.append(f"history of #{imei}: {r.status_code} {r.text[:200]}")
            missing_api += len(sets)
            continue
        history = {
            row["product_parameter_id"]: row["value"]
            for row in r.json()["data"]["product_parameters"]
        }
        for row_id, value in sets:
            if history.get(row_id) != value:
                missing_api += 1
                problems.append(f"set {row_id} ({value!r}) of #{imei} is not in its history")
            db = rows.get(row_id)
            if db is None or db.product_imei != imei or db.value != value:
                missing_db += 1
                problems.append(f"set {row_id} ({value!r}) of #{imei} is not in the database")
            else:
                statuses[db.status] += 1
    http.close()
    print(f"  sets: {len(load.sets):,} acknowledged on {len(by_unit)} units; now "
          + ", ".join(f"{n:,} {s}" for s, n in sorted(statuses.items()))
          + f"; {load.activated:,} confirmations acknowledged to units, {confirmed:,} confirmed "
          f"rows in the database")  # fmt: skip
    print(f"  lost: {max(missing_api, missing_db)} (parameter sets: acknowledged but not in the "
          f"history: {missing_api} through the API, {missing_db} in the database)")  # fmt: skip
    if confirmed < load.activated:
        problems.append(f"{load.activated} confirmations acknowledged, {confirmed} in the database")
    print(f"  lost: {max(0, load.activated - confirmed)} (confirmations: acknowledged to the unit "
          "but not active/removed in the database)")  # fmt: skip
    for imei, type_id, status, n in doubles:
        problems.append(f"#{imei} has {n} {status} rows of parameter type {type_id}")
    print(f"  at most one pending and one active row per unit and type: "
          f"{'yes' if not doubles else f'NO ({len(doubles)} cases)'}")  # fmt: skip
    return problems


# -- main --------------------------------------------------------------------------------------


def report(load: Load, elapsed: float, args: argparse.Namespace) -> dict[str, Any]:
    total = sum(len(s.latencies) for s in load.stats.values())
    print(f"\n== {total:,} requests in {elapsed:.1f} s: {total / elapsed:,.1f} req/s "
          f"({args.clients} clients, closed loop)")  # fmt: skip
    print(f"  {'endpoint':<50} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'errors':>6}")  # fmt: skip
    table = {}
    for label, stats in load.stats.items():
        lat = Latencies(stats.latencies)
        name = ENDPOINTS[label][0]
        print(f"  {name:<50} {lat.n:>8,} {lat.n / elapsed:>7.1f} {lat.median_ms:>8.1f} "
              f"{lat.p99_ms:>8.1f} {lat.max_ms:>8.1f} {stats.errors:>6}")  # fmt: skip
        table[name] = {
            "requests": lat.n, "rate": lat.n / elapsed, "p50_ms": lat.median_ms,
            "p99_ms": lat.p99_ms, "max_ms": lat.max_ms, "errors": stats.errors,
        }  # fmt: skip
    for label, stats in load.stats.items():
        if stats.samples:
            print(f"  first errors of {ENDPOINTS[label][0]}:")
            for sample in stats.samples:
                print(f"    {sample}")
    return {"requests": total, "seconds": elapsed, "rate": total / elapsed, "endpoints": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--workers", type=int, default=None,
        help="server processes (default: 1 on SQLite, which allows no more; 4 on PostgreSQL)",
    )  # fmt: skip
    parser.add_argument(
        "--pg-url", default=os.environ.get("SOLARFLEET_LOAD_PG_URL", DEFAULT_PG),
        help="PostgreSQL server (a database is created on it and dropped afterwards; default "
        f"$SOLARFLEET_LOAD_PG_URL or {DEFAULT_PG})",
    )  # fmt: skip
    parser.add_argument(
        "--influx-url", default=os.environ.get("SOLARFLEET_LOAD_INFLUX_URL"),
        help="InfluxDB 1.x as the hot store (default: the embedded one)",
    )  # fmt: skip
    parser.add_argument("--units", type=int, default=300, help="demo fleet size (default 300)")
    parser.add_argument("--operators", type=int, default=5, help="ADMIN users (tokens)")
    parser.add_argument("--points", type=int, default=40, help="readings per upload (default 40)")
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    parser.add_argument("--samples", type=int, default=5, help="error bodies shown per endpoint")
    parser.add_argument(
        "--floor-duration", type=float, default=5.0,
        help="seconds of the HTTP floor after the mix (404s, same clients; 0: none)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=2016)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and database")
    args = parser.parse_args()
    if args.workers is None:
        args.workers = 1 if args.database == "sqlite" else 4
    if args.database == "sqlite" and args.workers != 1:
        parser.error("SQLite runs one worker process (as solarfleet serve does)")

    data_dir = Path(tempfile.mkdtemp(prefix="solarfleet-load-"))
    tag = uuid.uuid4().hex[:8]
    url = None
    server = None
    influx: dict[str, str] = {}
    log = data_dir / "server.log"
    problems: list[str] = []
    try:
        print(machine())
        t0 = time.perf_counter()
        if args.database == "postgresql":
            url = create_postgres_database(args.pg_url, f"solarfleet_load_{tag}")
        else:
            url = f"sqlite:///{(data_dir / 'solarfleet.sqlite').resolve()}"
        fleet = build_fleet(url, data_dir, args.units, args.operators)
        env = {"SOLARFLEET_DATABASE_URL": url}
        if args.influx_url:
            influx = {
                "SOLARFLEET_INFLUX_URL": args.influx_url,
                "SOLARFLEET_INFLUX_DATABASE": f"solarfleet_load_{tag}",
            }
            env.update(influx)
        from sqlalchemy.engine import make_url

        shown = make_url(url).render_as_string(hide_password=True)
        store = f"InfluxDB {args.influx_url}" if influx else "embedded hot store"
        print(f"fleet: {len(fleet.units)} units, {len(fleet.tokens)} operator tokens, in "
              f"{time.perf_counter() - t0:.1f} s; database {shown}; {store}")  # fmt: skip

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(data_dir, port, log, env=env, workers=args.workers)
        wait_ready(base, server, log)
        print(f"server: uvicorn, {args.workers} worker process(es), no access log, {base} "
              f"(pid {server.pid})")  # fmt: skip

        load = Load(fleet, args, base)
        cpu0 = time.process_time()
        elapsed = asyncio.run(load.run())
        cpu = time.process_time() - cpu0
        figures = report(load, elapsed, args)
        print(f"  (the load generator itself used {cpu:.1f} s of CPU: {cpu / elapsed:.0%} of one "
              f"core; {machine()})")  # fmt: skip
        if args.floor_duration > 0:
            rate, lat = asyncio.run(load.floor(args.floor_duration))
            print(f"  HTTP floor, same {args.clients} clients, {args.floor_duration:g} s of "
                  f"GET /v1/no-such-thing (404): {rate:,.1f} req/s, p50 {lat.median_ms:.1f} ms, "
                  f"p99 {lat.p99_ms:.1f} ms; the mix runs at {figures['rate'] / rate:.1%} "
                  f"of it")  # fmt: skip
            figures["floor"] = {"rate": rate, "p50_ms": lat.median_ms, "p99_ms": lat.p99_ms}
        errors = sum(s.errors for s in load.stats.values())
        if server.poll() is not None:
            problems.append(f"the server exited during the run (status {server.returncode})")
        logged = server_errors(log, ("ERROR", "Traceback", "database is locked"))
        if logged:
            print(f"  server log: {len(logged)} error lines; the last ones:")
            for line in logged[-10:]:
                print(f"    {line[:300]}")
        print(f"  errors: {errors} (responses other than the expected 2xx, timeouts, transport "
              f"errors); server log error lines: {len(logged)}")  # fmt: skip

        print("\n== verification (acknowledged vs. stored)")
        problems += verify(load, url, data_dir, influx, base)
        figures.update(
            database=args.database, workers=args.workers, clients=args.clients,
            hot_store="influxdb" if influx else "embedded", errors=errors,
            log_errors=len(logged), problems=problems, uploads=load.uploads,
            readings=sum(load.acked_points.values()), sets=len(load.sets),
            confirmations=load.activated,
        )  # fmt: skip
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
        if errors or logged:
            problems.append(f"{errors} failed requests, {len(logged)} server log error lines")
    finally:
        if server is not None:
            stop_server(server)
        if influx:
            from solarfleet.telemetry.influx import InfluxHotStore

            store_ = InfluxHotStore(influx["SOLARFLEET_INFLUX_URL"],
                                    database=influx["SOLARFLEET_INFLUX_DATABASE"])  # fmt: skip
            if not args.keep:
                try:
                    store_.drop_database()
                except Exception as exc:  # noqa: BLE001 - report, never fail the run for it
                    print(f"could not drop the InfluxDB database: {exc}")
            store_.close()
        if args.keep:
            print(f"\ndata kept in {data_dir}; database {url}")
        else:
            if url is not None and url.startswith("postgresql"):
                drop_postgres_database(url)
            shutil.rmtree(data_dir, ignore_errors=True)
    for problem in problems[:20]:
        print(f"PROBLEM: {problem}")
    if problems:
        print(f"FAILED: {len(problems)} problems")
        sys.exit(1)
    print("OK: no error, nothing lost")


if __name__ == "__main__":
    main()
