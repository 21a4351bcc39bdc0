"""Benchmark: one unit's parameter history (full, and as of an instant) among 5,000,000 rows.

The requirement: a fleet of 100,000 units with 5,000,000 ``product_parameters`` rows, one unit
with 10,000 of them. Report median and p99 latency of ``GET /v1/products/<imei>/parameters/
history`` (full history) and of ``…/history?date=<instant>`` (as-of) for that unit through HTTP,
and the ratio to the same SQL run directly. Aim: as-of under 5 ms median on SQLite and within 3x
the raw SQL. Speed is reported, never asserted: the exit status is 0 whatever the figures.

Run from the project root::

    .venv/bin/python bench/bench_parameters.py                            # full size, minutes
    .venv/bin/python bench/bench_parameters.py --units 10000 --rows 500000   # quick look
    .venv/bin/python bench/bench_parameters.py --help

What it does, in one process run (so that every figure shares the machine's current mood):

1. builds a fresh SQLite database in a temporary data dir with the project's own migrations
   (``solarfleet.schema.upgrade``), so only the indexes the migrations create exist;
2. bulk-loads it with the stdlib ``sqlite3`` driver in one transaction (``synchronous=OFF``, no
   journal, ``product_parameters``' secondary indexes dropped during the load and re-created
   afterwards from their own DDL in ``sqlite_master``): 3 product types, 24 parameter types,
   ``--units`` products, ``--rows`` product parameter rows, a few parts (with their
   ``part_parameters``) on every 25th unit, and a SYSTEM/GLOBAL user with an API token.
   Parameter rows follow the lifecycle of :mod:`solarfleet.parameters.reports`: per (unit, type)
   a chain of ``removed`` rows whose ``[date_added, date_removed)`` intervals meet end to end,
   then one ``active`` row (or, now and then, an ``active`` row and a newer ``pending`` one),
   with about one row in ten ``expired`` (superseded before the unit confirmed it). Rows are
   inserted in creation order across the whole fleet, so one unit's rows are scattered over
   the table the way years of traffic would scatter them. One unit (the "hot" unit) gets
   ``--hot-rows`` rows, six parts (four on it now, two that left it: one was still on it at the
   as-of instant) and about a thousand part parameter rows;
3. starts the API in a subprocess exactly as an operator would (``SOLARFLEET_DATA_DIR=<dir>
   solarfleet serve --port <free port>``: uvicorn, one worker);
4. captures the exact SQL the history service emits for both requests (by running
   ``history.parameter_history`` in-process with a ``before_cursor_execute`` hook), prints its
   ``EXPLAIN QUERY PLAN``, and checks that the raw path below builds the very bytes the API
   answers;
5. measures, in ``--rounds`` interleaved rounds (``--requests`` measured calls per figure in all,
   after ``--warmup`` calls), with one persistent httpx connection and one stdlib connection:

   * ``raw sql``       the captured statements (between BEGIN and ROLLBACK, as the service's
                       session runs them) with the stdlib ``sqlite3`` driver, rows fetched;
   * ``raw sql+json``  the same, plus building the same dicts and the same envelope, encoded
                       with orjson: the baseline;
   * ``api``           the HTTP request;

   and prints median and p99 latency, and the ratio of the API's to the baseline's (the
   requirement's figure: aim <= 3). ``--try-indexes`` then adds candidate indexes to this
   throw-away database, one at a time, and measures again (a what-if for a migration).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any

import httpx
import orjson
from _common import (
    Latencies,
    api_user,
    free_port,
    machine,
    server_errors,
    start_server,
    stop_server,
    timed,
    wait_ready,
)
from sqlalchemy import event

import solarfleet.models  # noqa: F401  (every table known to the metadata)
from solarfleet.auth.principal import Principal
from solarfleet.db import make_engine, make_sessionmaker
from solarfleet.parameters import history
from solarfleet.parameters.service import PART_FIELDS, PRODUCT_FIELDS
from solarfleet.schema import upgrade
from solarfleet.settings import Settings
from solarfleet.timeparse import format_instant

USERNAME = "bench@solarfleet.local"
ADMIN = "ops@solarfleet.local"  # created_by of the values operators set
BASE = datetime(2023, 1, 1)  # the fleet's history runs from here ...
SPAN_US = 3 * 365 * 86400 * 10**6  # ... for three years
EXPIRED_SHARE = 0.1  # values superseded before the unit confirmed them
PENDING_SHARE = 0.03  # (unit, type) chains that end with a value not yet confirmed
PARTS_EVERY = 25  # every 25th unit has parts
TIME_COLUMNS = ("date_added", "date_removed", "created_at", "modified_at")

# 24 parameter types: (name, data_type)
PARAMETER_TYPES = [
    (f"{name}_{i}", kind)
    for i, (name, kind) in enumerate(
        [("charge_level", "int"), ("tariff", "float"), ("enabled", "bool"), ("profile", "string"),
         ("credit_days", "int"), ("max_load", "float"), ("backlight", "bool"), ("locale", "string")]
        * 3,
        start=1,
    )
]  # fmt: skip
PRODUCT_TYPES = [  # (name, erp code, credit type, its parameter types)
    ("BB17 Smart", "BB17", "time", list(range(1, 17))),
    ("BB50 Home TV", "BB50", "time", list(range(5, 21))),
    ("Flexx Lite", "FLX", "gas", list(range(9, 21))),
]
PART_TYPES = [("Battery 12Ah", [21, 22]), ("Panel 50W", [23, 24]), ("Lamp kit", [21, 24])]


# -- data ------------------------------------------------------------------------------------


def stamp(us: int) -> str:
    """The instant ``us`` microseconds after BASE as SQLAlchemy stores a DateTime on SQLite."""
    return (BASE + timedelta(microseconds=us)).isoformat(" ", "microseconds")


def value(rng: random.Random, kind: str) -> str:
    """A canonical text of ``kind`` (what validation.canonical stores)."""
    if kind == "int":
        return str(rng.randrange(0, 100))
    if kind == "float":
        return str(round(rng.uniform(0, 500), 2))
    if kind == "bool":
        return "True" if rng.random() < 0.5 else "False"
    return f"profile-{rng.randrange(1000):03d}"


def lifecycle(
    rng: random.Random, owner: Any, type_id: int, kind: str, k: int, t0: int, t1: int, actor: str
) -> Iterator[tuple[Any, ...]]:
    """``k`` rows of one (owner, type) between ``t0`` and ``t1`` (µs after BASE).

    Each value is set by an operator (``created_at``) and takes effect when the unit confirms it
    (``date_added``); the value it replaces is then ``removed`` at that very instant. A value
    superseded before the unit confirmed it is ``expired`` (two instants 1 µs apart, as
    ``service.moments`` writes them). Rows: (created µs, owner, type, value, status, date_added,
    date_removed, created_at, created_by, modified_at, modified_by).
    """
    points = sorted(rng.sample(range(t0, t1), k))
    kinds = ["expired" if rng.random() < EXPIRED_SHARE else "confirmed" for _ in range(k)]
    if k > 1 and rng.random() < PENDING_SHARE:
        kinds[-1] = "pending"
    confirmed = [i for i, c in enumerate(kinds) if c == "confirmed"]
    ends = dict(zip(confirmed, confirmed[1:], strict=False))  # -> the confirmed row after it
    stamps = [stamp(t) for t in points]
    previous = t0
    for i, c in enumerate(kinds):
        t = points[i]
        created = max(previous + 1, t - rng.randrange(1_000_000, 600_000_000))
        if created >= t:
            created = t - 1 if t - 1 > previous else t
        previous = t
        made = stamp(created)
        if c == "pending":
            yield (created, owner, type_id, value(rng, kind), "pending", None, None,
                   made, ADMIN, None, None)  # fmt: skip
        elif c == "expired":
            removed = stamp(t + 1)
            yield (created, owner, type_id, value(rng, kind), "expired", stamps[i], removed,
                   made, ADMIN, removed, ADMIN)  # fmt: skip
        elif i in ends:
            gone = stamps[ends[i]]
            yield (created, owner, type_id, value(rng, kind), "removed", stamps[i], gone,
                   made, ADMIN, gone, actor)  # fmt: skip
        else:
            yield (created, owner, type_id, value(rng, kind), "active", stamps[i], None,
                   made, ADMIN, stamps[i], actor)  # fmt: skip


def spread(rng: random.Random, total: int, types: list[int]) -> dict[int, int]:
    """``total`` rows over ``types``, a few types changing far more often than the rest."""
    weights = [1.0 / (1 + j) for j in range(len(types))]
    counts = dict.fromkeys(types, 0)
    for t in rng.choices(types, weights, k=total):
        counts[t] += 1
    return {t: n for t, n in counts.items() if n}


def unit_counts(rng: random.Random, units: int, total: int) -> list[int]:
    """Rows per unit: uniform around the mean, adjusted to add up to ``total`` exactly."""
    mean = total / units
    lo = max(1, int(mean // 5))
    hi = max(lo, int(2 * mean - lo))
    counts = [rng.randint(lo, hi) for _ in range(units)]
    diff = total - sum(counts)
    while diff:
        i = rng.randrange(units)
        if diff > 0:
            counts[i] += 1
            diff -= 1
        elif counts[i] > 1:
            counts[i] -= 1
            diff += 1
    return counts


class Fleet:
    """What the loader made: the hot unit, the as-of instant and the sizes."""

    def __init__(self) -> None:
        self.hot_imei = ""
        self.at = ""
        self.sizes: dict[str, int] = {}
        self.load_seconds: dict[str, float] = {}


def imei_of(i: int) -> str:
    return f"35{i:013d}"


def build_database(data_dir: Path, args: argparse.Namespace) -> tuple[str, str, Fleet]:
    """A migrated, loaded SQLite database; (its path, an API token, what is in it)."""
    fleet = Fleet()
    clock = time.perf_counter
    t_start = clock()
    settings = Settings(data_dir=data_dir)
    url = settings.effective_database_url
    engine = make_engine(url)
    upgrade(engine)
    with make_sessionmaker(engine)() as session:
        token = api_user(session, settings, USERNAME)
        session.commit()
    engine.dispose()
    db_path = url.removeprefix("sqlite:///")

    rng = random.Random(args.seed)
    units, total, hot_rows = args.units, args.rows, args.hot_rows
    if hot_rows >= total:
        raise SystemExit("--hot-rows must be smaller than --rows")
    hot = units // 2
    fleet.hot_imei = imei_of(hot)
    now = stamp(SPAN_US)

    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")  # a throw-away database: no journal while loading
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")  # 1 GB, for this connection only
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO parameter_types (parameter_type_id, name, data_type, repeatable, setting,"
        " created_at, created_by) VALUES (?, ?, ?, 0, 1, ?, 'bench')",
        [(i, name, kind, now) for i, (name, kind) in enumerate(PARAMETER_TYPES, start=1)],
    )
    conn.executemany(
        "INSERT INTO product_types (product_type_id, name, erp_code, credit_type, parameter_types,"
        " created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, 'bench')",
        [(i, n, erp, credit, json.dumps(types), now)
         for i, (n, erp, credit, types) in enumerate(PRODUCT_TYPES, start=1)],
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO part_types (part_type_id, name, serial_number_category, parameter_types,"
        " created_at, created_by) VALUES (?, ?, 'known', ?, ?, 'bench')",
        [(i, n, json.dumps(types), now) for i, (n, types) in enumerate(PART_TYPES, start=1)],
    )
    kinds = {i: kind for i, (_, kind) in enumerate(PARAMETER_TYPES, start=1)}

    # products
    starts: list[int] = []
    product_type: list[int] = []
    rows: list[tuple[Any, ...]] = []
    for i in range(units):
        start = 0 if i == hot else rng.randrange(0, SPAN_US * 2 // 3)
        starts.append(start)
        product_type.append(1 if i == hot else 1 + i % 3)
        enabled = rng.random() > 0.1
        rows.append((imei_of(i), product_type[i], f"SF{i:08d}", f"63510{i:010d}",
                     f"8925010{i:012d}", secrets.token_urlsafe(18), enabled, enabled,
                     round(rng.uniform(-3.0, 1.5), 5), round(rng.uniform(29.0, 36.0), 5),
                     stamp(start), "bench"))  # fmt: skip
    conn.executemany(
        "INSERT INTO products (product_imei, product_type_id, serial_number, imsi, iccid,"
        " device_key, current_enable_flag, desired_enable_flag, gps_lat, gps_lon, created_at,"
        " created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    fleet.sizes["products"] = units

    # parts: four on the hot unit now, two that left it; one or two on every 25th unit
    parts: list[tuple[Any, ...]] = []
    links: list[tuple[Any, ...]] = []
    part_rows: list[tuple[Any, ...]] = []
    part_id = 0

    def add_part(unit: int, type_no: int, on: int, off: int | None, rows_per_type: int) -> int:
        nonlocal part_id
        part_id += 1
        parts.append((part_id, f"P{part_id:09d}", type_no, "Acme", stamp(on), "bench"))
        links.append((part_id, imei_of(unit), stamp(on), None if off is None else stamp(off),
                      stamp(on), "bench"))  # fmt: skip
        actor = f"unit:{imei_of(unit)}"
        for type_id in PART_TYPES[type_no - 1][1]:
            k = max(1, int(rows_per_type * rng.uniform(0.5, 1.5)))
            end = SPAN_US if off is None else off
            part_rows.extend(lifecycle(rng, part_id, type_id, kinds[type_id], k, on, end, actor))
        return part_id

    hot_parts = [add_part(hot, 1 + j % 3, 0, None, args.hot_rows // 120) for j in range(4)]
    hot_parts.append(add_part(hot, 1, SPAN_US // 10, SPAN_US * 7 // 10, args.hot_rows // 120))
    hot_parts.append(add_part(hot, 2, 0, SPAN_US * 3 // 10, args.hot_rows // 120))
    for i in range(0, units, PARTS_EVERY):
        if i == hot:
            continue
        for _ in range(1 + (rng.random() < 0.3)):
            add_part(i, rng.randrange(1, 4), starts[i], None, 3)
    conn.executemany(
        "INSERT INTO parts (part_id, serial_number, part_type_id, manufacturer, created_at,"
        " created_by) VALUES (?, ?, ?, ?, ?, ?)",
        parts,
    )
    conn.executemany(
        "INSERT INTO part_product_linker (part_id, product_imei, date_added, date_removed,"
        " created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
        links,
    )
    part_rows.sort(key=itemgetter(0))
    conn.executemany(
        "INSERT INTO part_parameters (part_id, parameter_type_id, value, status, date_added,"
        " date_removed, created_at, created_by, modified_at, modified_by)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (r[1:] for r in part_rows),
    )
    fleet.sizes["parts"] = len(parts)
    fleet.sizes["part_parameters"] = len(part_rows)
    fleet.sizes["hot unit parts now"] = 4
    fleet.sizes["hot unit parts ever"] = len(hot_parts)
    fleet.sizes["hot unit part_parameters"] = sum(1 for r in part_rows if r[1] in hot_parts)
    part_rows.clear()
    t_meta = clock()

    # product parameters, generated per (unit, type), inserted in creation order
    counts = unit_counts(rng, units - 1, total - hot_rows)
    counts.insert(hot, hot_rows)
    generated: list[tuple[Any, ...]] = []
    for i in range(units):
        imei, actor = imei_of(i), f"unit:{imei_of(i)}"
        types = PRODUCT_TYPES[product_type[i] - 1][3]
        for type_id, k in spread(rng, counts[i], types).items():
            generated.extend(
                lifecycle(rng, imei, type_id, kinds[type_id], k, starts[i], SPAN_US, actor)
            )
    t_generated = clock()
    generated.sort(key=itemgetter(0))
    t_sorted = clock()
    index_sql = [
        sql
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'product_parameters'"
            " AND sql IS NOT NULL ORDER BY name"
        )
    ]
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'product_parameters'"
        " AND sql IS NOT NULL"
    ).fetchall():
        conn.execute(f'DROP INDEX "{name}"')
    conn.executemany(
        "INSERT INTO product_parameters (product_imei, parameter_type_id, value, status,"
        " date_added, date_removed, created_at, created_by, modified_at, modified_by)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (r[1:] for r in generated),
    )
    t_inserted = clock()
    # the hot unit's history: its as-of instant is the middle of it
    added = sorted(r[5] for r in generated if r[1] == fleet.hot_imei and r[5] is not None)
    del generated
    first = datetime.fromisoformat(added[0])
    last = datetime.fromisoformat(added[-1])
    middle = first + (last - first) / 2
    fleet.at = format_instant(middle.replace(microsecond=123456))
    for sql in index_sql:
        conn.execute(sql)
    conn.execute("COMMIT")
    t_indexed = clock()
    conn.execute("PRAGMA journal_mode = WAL")  # what every solarfleet connection expects
    if args.analyze:
        conn.execute("ANALYZE")
    t_done = clock()
    fleet.sizes["product_parameters"] = conn.execute(
        "SELECT count(*) FROM product_parameters"
    ).fetchone()[0]
    for status, n in conn.execute(
        "SELECT status, count(*) FROM product_parameters WHERE product_imei = ? GROUP BY status",
        (fleet.hot_imei,),
    ):
        fleet.sizes[f"hot unit product_parameters {status}"] = n
    conn.close()
    fleet.sizes["database bytes"] = os.path.getsize(db_path)
    fleet.load_seconds = {
        "migrations, types, units, parts": t_meta - t_start,
        "generate parameter rows": t_generated - t_meta,
        "sort them by creation": t_sorted - t_generated,
        "insert them": t_inserted - t_sorted,
        "re-create their indexes": t_indexed - t_inserted,
        "ANALYZE" if args.analyze else "(no ANALYZE)": t_done - t_indexed,
        "total": t_done - t_start,
    }
    return db_path, token, fleet


# -- the SQL the endpoint emits ---------------------------------------------------------------


def capture_sql(db_path: str, imei: str, at: datetime | None) -> list[tuple[str, Any]]:
    """The statements ``history.parameter_history`` executes (BEGIN excluded)."""
    engine = make_engine(f"sqlite:///{db_path}")
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.strip().upper() not in ("BEGIN", "BEGIN IMMEDIATE"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    principal = Principal(
        user_id=1, username=USERNAME, permissions="SYSTEM", scope="GLOBAL", entity_id=None
    )
    with make_sessionmaker(engine)() as session:
        history.parameter_history(session=session, principal=principal, imei=imei, at=at)
    engine.dispose()
    return seen


def _table(sql: str) -> str:
    words = " ".join(sql.split()).split(" FROM ", 1)[1].split()
    return words[0]


class RawPath:
    """The captured statements through the stdlib driver, and the document built by hand."""

    def __init__(self, db_path: str, statements: list[tuple[str, Any]], imei: str, at: str | None):
        by_table = {_table(sql): (sql, params) for sql, params in statements}
        if len(by_table) != len(statements) or not {
            "products",
            "part_product_linker",
            "product_parameters",
        } <= set(by_table):
            raise SystemExit(f"unexpected statements: {[_table(s) for s, _ in statements]}")
        self.unit = by_table["products"]
        self.part_ids = by_table["part_product_linker"]
        self.products = by_table["product_parameters"]
        self.parts = by_table.get("part_parameters")
        self.at = at
        if at is None:
            self.message = f"Full parameter history for #{imei} returned successfully"
        else:
            self.message = f"Parameter set of #{imei} at {at} returned successfully"
        self.conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        # the one pragma solarfleet.db sets on every connection that matters to a read
        self.conn.execute("PRAGMA case_sensitive_like = ON")
        self.product_times = [PRODUCT_FIELDS.index(c) for c in TIME_COLUMNS]
        self.part_times = [PART_FIELDS.index(c) for c in TIME_COLUMNS]

    def query(self) -> tuple[Any, ...]:
        """The statements, rows fetched, in the service's order and transaction."""
        conn = self.conn
        conn.execute("BEGIN")
        try:
            unit = conn.execute(*self.unit).fetchone()
            part_ids = [r[0] for r in conn.execute(*self.part_ids)]
            products = conn.execute(*self.products).fetchall()
            parts = conn.execute(*self.parts).fetchall() if self.parts and part_ids else []
        finally:
            conn.execute("ROLLBACK")
        if unit is None:
            raise SystemExit("the hot unit is gone")
        return part_ids, products, parts

    @staticmethod
    def _objects(rows: list[Any], fields: tuple[str, ...], times: list[int]) -> list[Any]:
        out = []
        for row in rows:
            values = list(row)
            for i in times:  # stored "YYYY-MM-DD HH:MM:SS.ffffff", sent with a "T"
                if values[i] is not None:
                    values[i] = values[i].replace(" ", "T", 1)
            out.append(dict(zip(fields, values, strict=True)))
        return out

    def document(self) -> bytes:
        """What the endpoint answers, built by hand from the raw rows."""
        part_ids, product_rows, part_rows = self.query()
        products = self._objects(product_rows, PRODUCT_FIELDS, self.product_times)
        parts: dict[str, list[dict[str, Any]]] = {str(p): [] for p in part_ids}
        for obj in self._objects(part_rows, PART_FIELDS, self.part_times):
            parts[str(obj["part_id"])].append(obj)
        if self.at is not None:
            products = [{**r, "status": "active", "date_removed": None} for r in products]
            parts = {
                k: [{**r, "status": "active", "date_removed": None} for r in rows]
                for k, rows in parts.items()
            }
        data = {"part_parameters": parts, "product_parameters": products}
        return orjson.dumps({"status": "success", "message": self.message, "data": data})


# -- measuring --------------------------------------------------------------------------------


class Result:
    def __init__(self, name: str, latencies: list[float]) -> None:
        self.name = name
        self.latencies = latencies
        lat = Latencies(latencies)
        self.n = lat.n
        self.median_ms = lat.median_ms
        self.p99_ms = lat.p99_ms
        self.mean_ms = lat.mean_ms


def http_op(client: httpx.Client, path: str, params: dict[str, str]) -> Callable[[], bytes]:
    def op() -> bytes:
        response = client.get(path, params=params)
        if response.status_code != 200:
            raise SystemExit(f"GET {path}: {response.status_code} {response.text[:200]}")
        return response.content

    return op


def report(r: Result) -> None:
    print(f"  {r.name:<14} median {r.median_ms:8.2f} ms   p99 {r.p99_ms:8.2f} ms   "
          f"mean {r.mean_ms:8.2f} ms   ({r.n} calls)", flush=True)  # fmt: skip


def show_plans(conn: sqlite3.Connection, statements: list[tuple[str, Any]], imei: str) -> None:
    for sql, params in statements:
        print("  " + " ".join(sql.split()) + f"   -- {list(params)}")
        plan = [str(p[-1]) for p in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
        print("    plan: " + "; ".join(plan))
        if _table(sql) != "product_parameters":
            continue
        # How much of the unit the search reads: the index columns it seeks on, the unit's
        # entries in the index, the rows it returns.
        search = next((p for p in plan if p.startswith("SEARCH product_parameters")), None)
        entries = conn.execute(
            "SELECT count(*) FROM product_parameters WHERE product_imei = ?", (imei,)
        ).fetchone()[0]
        returned = len(conn.execute(sql, params).fetchall())
        sort = "; a temp B-tree sorts them" if any("TEMP B-TREE" in p for p in plan) else ""
        if search is None:
            print(f"    verdict: NO index search: the table is scanned{sort}")
        elif search.endswith("(product_imei=?)"):
            print(f"    verdict: the index is sought on product_imei only: all {entries:,} of the "
                  f"unit's entries are read (and, for every row the index cannot rule out, the "
                  f"table row is looked up) to return {returned:,} rows{sort}")  # fmt: skip
        else:
            seek = search.split("(", 1)[1].rstrip(")")
            print(f"    verdict: the index is sought on ({seek}); the unit has {entries:,} rows, "
                  f"{returned:,} returned{sort}")  # fmt: skip


def bench_request(
    name: str, *, db_path: str, imei: str, at: str | None, client: httpx.Client,
    args: argparse.Namespace, quiet: bool = False,
) -> dict[str, Result]:  # fmt: skip
    path = f"/v1/products/{imei}/parameters/history"
    params = {} if at is None else {"date": at}
    query = "" if at is None else f"?date={at}"
    statements = capture_sql(db_path, imei, None if at is None else datetime.fromisoformat(at))
    raw = RawPath(db_path, statements, imei, at)
    if not quiet:
        print(f"\n== {name}: GET {path}{query}")
        print("SQL the service emits (captured) and its plan:")
        show_plans(raw.conn, statements, imei)
    api = http_op(client, path, params)
    api_body, raw_body = api(), raw.document()
    if api_body == raw_body:
        doc = orjson.loads(api_body)["data"]
        n_parts = sum(len(v) for v in doc["part_parameters"].values())
        print(f"check: the raw path builds the very bytes the API answers ({len(api_body):,} "
              f"bytes: {len(doc['product_parameters'])} unit rows, {n_parts} rows of "
              f"{len(doc['part_parameters'])} parts)")  # fmt: skip
    elif orjson.loads(api_body) == orjson.loads(raw_body):
        print("check: raw and API documents are equal (bytes differ)")
    else:
        raise SystemExit("the raw path does not build the document the API answers")
    for _ in range(args.warmup):  # statement caches, connection pools, page caches
        api()
        raw.document()
        raw.query()

    # Interleaved rounds, so that a burst of load from elsewhere hits both sides of a ratio.
    rounds = max(1, args.rounds)
    per_round = max(1, args.requests // rounds)
    lat: dict[str, list[float]] = {"raw sql": [], "raw sql+json": [], "api": []}
    for _ in range(rounds):
        lat["raw sql"] += timed(raw.query, per_round)
        lat["raw sql+json"] += timed(raw.document, per_round // 2)
        lat["api"] += timed(api, per_round)
        lat["raw sql+json"] += timed(raw.document, per_round - per_round // 2)
    raw.conn.close()
    results = {k: Result(k, v) for k, v in lat.items()}
    for r in results.values():
        report(r)
    base, http = results["raw sql+json"], results["api"]
    print(f"  ratio api / raw sql+json:  median {http.median_ms / base.median_ms:5.2f}   "
          f"p99 {http.p99_ms / base.p99_ms:5.2f}   (aim: <= 3)")  # fmt: skip
    print(f"  ratio api / raw sql:       median "
          f"{http.median_ms / results['raw sql'].median_ms:5.2f}")  # fmt: skip
    return results


CANDIDATE_INDEXES = {
    # as-of: seek status IN ('active', 'removed') then date_added <= t, date_removed checked in
    # the index; the table is read only for the rows returned
    "ix_product_parameters_unit_added": (
        "CREATE INDEX ix_product_parameters_unit_added ON product_parameters "
        "(product_imei, status, date_added, date_removed)"
    ),
    # the same seen from the other end: rows still active after t are few when t is recent
    "ix_product_parameters_unit_removed": (
        "CREATE INDEX ix_product_parameters_unit_removed ON product_parameters "
        "(product_imei, status, date_removed, date_added)"
    ),
    # full history: the unit's rows already in product_parameter_id (rowid) order, no sort;
    # but the planner then picks it for as-of too (it avoids that sort as well), a trap
    "ix_product_parameters_unit": (
        "CREATE INDEX ix_product_parameters_unit ON product_parameters (product_imei)"
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--units", type=int, default=100_000, help="products (default 100000)")
    parser.add_argument(
        "--rows", type=int, default=5_000_000, help="product_parameters rows (default 5000000)"
    )
    parser.add_argument(
        "--hot-rows", type=int, default=10_000, help="rows of the measured unit (default 10000)"
    )
    parser.add_argument(
        "--requests", type=int, default=300, help="measured calls per figure (default 300)"
    )
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured calls first")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--analyze", action="store_true", help="run ANALYZE after loading (solarfleet never does)"
    )
    parser.add_argument(
        "--try-indexes",
        action="store_true",
        help="afterwards add candidate indexes to the throw-away database and measure again",
    )
    parser.add_argument("--seed", type=int, default=2016)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    args = parser.parse_args()
    if args.units < 2 or args.rows < args.units:
        parser.error("need at least 2 units and at least one row per unit")

    data_dir = Path(tempfile.mkdtemp(prefix="solarfleet-bench-"))
    server = None
    try:
        print(machine())
        db_path, token, fleet = build_database(data_dir, args)
        print(f"database: {db_path}")
        for what, seconds in fleet.load_seconds.items():
            print(f"  load: {what:<28} {seconds:7.1f} s")
        for what, n in fleet.sizes.items():
            print(f"  size: {what:<40} {n:>13,}")
        print(f"  hot unit #{fleet.hot_imei}, as-of instant {fleet.at}")

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        server = start_server(data_dir, port, data_dir / "server.log", cli=True)
        wait_ready(base, server, data_dir / "server.log")
        print(f"server: solarfleet serve (uvicorn, 1 worker) at {base}, pid {server.pid}, "
              f"ready in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        headers = {"Authorization": f"Token token={token}"}

        summary: dict[str, dict[str, Result]] = {}
        with httpx.Client(base_url=base, headers=headers, timeout=120.0) as client:
            floor_op = client.get
            for _ in range(args.warmup):
                floor_op("/bench-no-such-path")
            floor = Result("http floor", timed(lambda: floor_op("/bench-no-such-path"), 200))
            print("\n== http floor: GET of an unknown path (404 from the app, no database)")
            report(floor)
            requests = {"full history": None, "as-of": fleet.at}
            for name, at in requests.items():
                summary[name] = bench_request(
                    name, db_path=db_path, imei=fleet.hot_imei, at=at, client=client, args=args
                )

            print(f"\n== summary ({fleet.sizes['product_parameters']:,} rows, "
                  f"{fleet.sizes['products']:,} units, hot unit "
                  f"{args.hot_rows:,} rows; {args.requests} calls per figure)")  # fmt: skip
            for name, res in summary.items():
                http, raw = res["api"], res["raw sql+json"]
                print(f"  {name:<13} api median {http.median_ms:8.2f} ms p99 {http.p99_ms:8.2f} ms"
                      f" | raw sql+json median {raw.median_ms:8.2f} ms p99 {raw.p99_ms:8.2f} ms"
                      f" | ratio median {http.median_ms / raw.median_ms:5.2f}"
                      f" p99 {http.p99_ms / raw.p99_ms:5.2f}")  # fmt: skip
            as_of = summary["as-of"]["api"].median_ms
            print(f"  as-of aim: median < 5 ms -> {as_of:.2f} ms "
                  f"({'met' if as_of < 5 else 'NOT met'}); ratio <= 3 -> "
                  f"{as_of / summary['as-of']['raw sql+json'].median_ms:.2f}")  # fmt: skip

            if args.try_indexes:
                conn = sqlite3.connect(db_path, isolation_level=None)
                for name, ddl in CANDIDATE_INDEXES.items():
                    t0 = time.perf_counter()
                    conn.execute(ddl)
                    built = time.perf_counter() - t0
                    print(f"\n== what-if: {ddl}  (built in {built:.1f} s)")
                    for label, at in requests.items():
                        bench_request(
                            f"{label} + {name}", db_path=db_path, imei=fleet.hot_imei, at=at,
                            client=client, args=args,
                        )  # fmt: skip
                    conn.execute(f"DROP INDEX {name}")
                conn.close()

        print(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min), "
              f"{os.getloadavg()[1]:.2f} (5 min)")  # fmt: skip
        if server.poll() is not None:
            print(f"the server exited early (status {server.returncode})")
        errors = server_errors(data_dir / "server.log")
        if errors:
            print("\nserver log errors:\n" + "\n".join(errors[-20:]))
    finally:
        if server is not None:
            stop_server(server)
        if args.keep:
            print(f"\ndata kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
