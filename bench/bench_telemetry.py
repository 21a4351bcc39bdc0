"""Benchmark: telemetry ingest through HTTP vs. direct hot-store writes, and the migration vs. a
bare copy (hot store -> Parquet).

The requirement: report ingest points per second through HTTP against writing the same points
straight into the hot store; and migration points per second against a bare copy of the same
readings (read from the hot store, write Parquet with pyarrow, no bookkeeping). Aim for ingest
at 0.7x the direct write and migration at 0.5x the bare copy, with one and with two workers.
Speed is reported, never asserted: the exit status is 0 whatever the figures.

Run from the project root::

    .venv/bin/python bench/bench_telemetry.py           # default size: 2-6 minutes on 2 cores
    .venv/bin/python bench/bench_telemetry.py --quick   # a smaller look: 1-2 minutes
    .venv/bin/python bench/bench_telemetry.py --points 4000   # 500 units x 4,000 = 2,000,000
    SOLARFLEET_BENCH_INFLUX_URL=http://127.0.0.1:58086 .venv/bin/python bench/bench_telemetry.py
    .venv/bin/python bench/bench_telemetry.py --skip-ingest --mig-units 200 --points 1000 \
        --incremental 200                               # the steady-state pass (slow!)
    .venv/bin/python bench/bench_telemetry.py --help

Everything runs in one process run (so that every figure shares the machine's current mood);
the load average is printed beside the figures, and the rounds are interleaved so that a burst
of load from elsewhere hits both sides of a ratio.

Ingest (``--units`` units; uploads of ``--per-upload`` points: ``--fields`` fields x timestamps)

1. a temporary data dir, an SQLite database through the project's migrations
   (``solarfleet.schema.upgrade``), ``--units`` products and a SYSTEM/GLOBAL user with an API
   token (``issue_token``);
2. starts the API as an operator would (``SOLARFLEET_DATA_DIR=<dir> solarfleet serve --port
   <free port>``: uvicorn, one worker, the embedded hot store);
3. in ``--rounds`` interleaved rounds, ``--uploads`` uploads per phase and round, every upload a
   new stretch of time of one unit (round robin over the units):

   * ``direct seq``  the same points (``Point`` objects built beforehand) written with
                     ``EmbeddedHotStore.write`` into a fresh store, same batch sizes, one thread:
                     **the baseline**;
   * ``api seq``     ``POST /v1/products/<imei>/data`` on one persistent httpx connection (JSON
                     bodies encoded beforehand), one at a time;
   * ``api x4``      four clients (threads, one persistent connection each) at once;
   * ``direct x4``   four threads writing into the fresh store (each its own connection);

   and prints points per second and the ratios ``api / direct seq`` (the requirement's figure,
   aim >= 0.7), overall and as the median of the rounds' ratios;
4. ``--breakdown`` uploads through the route's steps in-process (pydantic body, ``parse_upload``,
   dirty mark + commit, hot-store write, mark + commit again), each timed, beside a direct write
   of the same points: where an upload's time goes, HTTP and auth aside;
5. with ``SOLARFLEET_BENCH_INFLUX_URL`` set (an InfluxDB 1.x), 3 again with the API started with
   ``SOLARFLEET_INFLUX_URL`` (a database of its own) against direct ``InfluxHotStore`` writes
   (another database); both databases are dropped at the end.

Migration (``--mig-units`` units x ``--points`` readings: 500 x 2,000 = 1,000,000 by default)

6. fills a template data dir through the real ingest path (``telemetry.ingest.store_upload``:
   dirty mark committed, hot-store write, mark again; uploads of ``--per-upload`` points, every
   unit's first upload, then every unit's second one, ...);
7. each run gets a fresh copy of that template (a new data dir: nothing archived, every unit
   dirty; the archive table created beforehand, not timed) and runs in worker processes that
   import everything, open the database, hot store and archive, say READY and wait for GO
   (process start-up is not timed; wall time runs from GO to the last worker done):

   * ``bare copy``   per unit ``EmbeddedHotStore.read`` of the same window, a pyarrow table of
                     the archive's columns per batch of ``--batch-size`` units, one zstd Parquet
                     file per batch with ``pyarrow.parquet``; no leases, marks, merge or Iceberg:
                     **the baseline** (run first and last; the ratios use the mean);
   * ``migrate x1``  ``migration.service.migrate_pass`` (shard 0 of 1, ``retention_days=0``:
                     nothing is dropped from the hot store);
   * ``migrate x2``  two processes, ``migrate_pass`` on shard 0/2 and 1/2 at once against the
                     same database, hot store and archive. A worker that fails (an archive
                     commit refused because of the other worker's) is reported and its shard run
                     again at once in a new process, as the next pass would; the failed attempt's
                     time counts, the new process's start-up does not;
   * ``bare sql``    information only: the same reads with the stdlib driver straight into
                     columns (no ``Point`` objects), Parquet per batch: what the reads could cost;

   and prints points per second, the ratios ``migrate / bare copy`` (aim >= 0.5), each pass's
   time per phase (from ``migrate_pass``'s checkpoints) and the commit attempts; checks that
   the archive's snapshot holds every reading;
8. ``--incremental N``: the steady state. After a first pass, every unit uploads N readings
   more (later than its watermark); then a bare copy of those new readings (from each unit's
   dirty mark) and the next ``migrate_pass``, timed the same way;
9. with ``--profile`` (or when ``migrate x1`` misses 0.5x, unless ``--no-profile``), one more
   ``migrate x1`` run on a fresh copy under cProfile, and the functions where its time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    api_user,
    free_port,
    load,
    machine,
    server_errors,
    start_server,
    stop_server,
    wait_ready,
)

T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
STEP_US = 60_000_000  # ingest: a reading a minute
MIG_STEP_US = 300_000_000  # migration fill: a reading every 5 minutes (2,000 points ~ 1.7 days)
MEASUREMENT = "telemetry"
TAGS = {"source": "bms"}
FIELD_NAMES = ["battery_voltage", "pv_power", "load_current", "temperature", "charging",
               "pv_voltage", "load_power", "soc"]  # fmt: skip
BOOL_FIELDS = {"charging"}
USERNAME = "bench@solarfleet.local"
GOALS = {"ingest": 0.7, "migration": 0.5}


def imei_of(i: int) -> str:
    return f"35{i:013d}"


# -- data ------------------------------------------------------------------------------------


def value_of(field_name: str, i: int) -> float | bool:
    if field_name in BOOL_FIELDS:
        return i % 3 == 0
    return round(10.0 + (i * 7919 % 1000) / 100 + len(field_name) / 10, 3)


def build_database(data_dir: Path, units: int) -> str:
    """A migrated SQLite database with ``units`` products and a SYSTEM user; its API token."""
    from sqlalchemy import insert

    import solarfleet.models  # noqa: F401  (every table known to the metadata)
    from solarfleet.db import make_engine, make_sessionmaker, utcnow
    from solarfleet.fleet.models import Product, ProductType
    from solarfleet.schema import upgrade
    from solarfleet.settings import Settings

    settings = Settings(data_dir=data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    now = utcnow()
    with make_sessionmaker(engine)() as session:
        ptype = ProductType(name="BB17 Smart", erp_code="BB17", parameter_types=[])
        session.add(ptype)
        session.flush()
        session.execute(
            insert(Product.__table__),
            [
                {
                    "product_imei": imei_of(i),
                    "product_type_id": ptype.product_type_id,
                    "serial_number": f"SF{i:08d}",
                    "device_key": f"k{i:023d}",
                    "created_at": now,
                    "created_by": "bench",
                }
                for i in range(units)
            ],
        )
        token = api_user(session, settings, USERNAME)
        session.commit()
    engine.dispose()
    return token


@dataclass
class Upload:
    """One upload: its unit, its points (for direct writes) and its body (for the API)."""

    imei: str
    points: list[Any]
    body: bytes


class Uploads:
    """Uploads of ``per_upload`` points (``fields`` fields x timestamps), each a new stretch of
    time of the next unit (round robin)."""

    def __init__(self, units: int, per_upload: int, fields: int) -> None:
        self.units = units
        self.fields = FIELD_NAMES[:fields]
        self.stamps = max(1, per_upload // fields)
        self.n = 0

    @property
    def points_per_upload(self) -> int:
        return self.stamps * len(self.fields)

    def make(self, count: int) -> list[Upload]:
        import orjson

        from solarfleet.telemetry.points import Point, normal_tags

        tags = normal_tags(TAGS)
        out = []
        for _ in range(count):
            k = self.n
            self.n += 1
            imei = imei_of(k % self.units)
            start = T0_US + (k // self.units) * self.stamps * STEP_US
            times_ms = [(start + j * STEP_US) // 1000 for j in range(self.stamps)]
            fields: dict[str, list[list[Any]]] = {}
            points = []
            for f in self.fields:
                pairs = [[t, value_of(f, k + j)] for j, t in enumerate(times_ms)]
                fields[f] = pairs
                points.extend(Point(imei, MEASUREMENT, tags, f, t * 1000, v) for t, v in pairs)
            body = orjson.dumps({"measurement": MEASUREMENT, "tags": TAGS, "fields": fields})
            out.append(Upload(imei, points, body))
        return out


# -- measuring ingest ------------------------------------------------------------------------


@dataclass
class Rate:
    name: str
    points: int = 0
    seconds: float = 0.0
    rounds: list[float] = field(default_factory=list)  # points/s of each round

    def add(self, points: int, seconds: float) -> None:
        self.points += points
        self.seconds += seconds
        self.rounds.append(points / seconds if seconds else 0.0)

    @property
    def per_second(self) -> float:
        return self.points / self.seconds if self.seconds else 0.0


def run_threads(
    work: Callable[[int, Sequence[Upload]], None], uploads: list[Upload], n: int
) -> float:
    """``work(i, share)`` in ``n`` threads at once (uploads dealt round robin); wall seconds."""
    shares = [uploads[i::n] for i in range(n)]
    barrier = threading.Barrier(n + 1)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i, shares[i])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return seconds


class ApiSide:
    """Uploads through HTTP, on persistent connections (one per client thread)."""

    def __init__(self, base: str, token: str, clients: int) -> None:
        import httpx

        headers = {"Authorization": f"Token token={token}", "Content-Type": "application/json"}
        self.clients = [
            httpx.Client(base_url=base, headers=headers, timeout=120.0) for _ in range(clients)
        ]

    def send(self, i: int, uploads: Sequence[Upload]) -> None:
        client = self.clients[i]
        for up in uploads:
            response = client.post(f"/v1/products/{up.imei}/data", content=up.body)
            if response.status_code != 200:
                raise SystemExit(f"upload: {response.status_code} {response.text[:300]}")
            written = response.json()["data"]["points"]
            if written != len(up.points):
                raise SystemExit(f"upload: {written} points written, {len(up.points)} sent")

    def close(self) -> None:
        for c in self.clients:
            c.close()


def round_ratios(a: Rate, b: Rate) -> list[float]:
    return [x / y for x, y in zip(a.rounds, b.rounds, strict=True)]


def bench_ingest(
    label: str,
    *,
    base: str,
    token: str,
    direct: Any,
    uploads: Uploads,
    args: argparse.Namespace,
) -> dict[str, Rate]:
    """The interleaved rounds of the four phases; the rates."""
    api = ApiSide(base, token, 4)
    per = uploads.points_per_upload
    rates = {name: Rate(name) for name in ("direct seq", "api seq", "api x4", "direct x4")}

    def direct_write(_i: int, ups: Sequence[Upload]) -> None:
        for up in ups:
            direct.write(up.points)

    try:
        warm = uploads.make(8)  # connections, field kinds, statement caches, thread pools
        run_threads(api.send, warm, 4)
        run_threads(direct_write, warm, 4)
        for r in range(args.rounds):
            # the same points on both sides: direct and API get the very same uploads
            seq, par = uploads.make(args.uploads), uploads.make(args.uploads)
            n = len(seq) * per
            t0 = time.perf_counter()
            direct_write(0, seq)
            rates["direct seq"].add(n, time.perf_counter() - t0)
            t0 = time.perf_counter()
            api.send(0, seq)
            rates["api seq"].add(n, time.perf_counter() - t0)
            rates["api x4"].add(n, run_threads(api.send, par, 4))
            rates["direct x4"].add(n, run_threads(direct_write, par, 4))
            print(f"  round {r + 1}: " + ", ".join(
                f"{name} {rate.rounds[-1]:,.0f}" for name, rate in rates.items()
            ) + f" points/s; {load()}", flush=True)  # fmt: skip
    finally:
        api.close()
    base_rate = rates["direct seq"].per_second
    print(f"\n  {label}: uploads of {per:,} points ({len(uploads.fields)} fields x "
          f"{uploads.stamps} times), {args.uploads} uploads per phase and round, "
          f"{args.rounds} rounds")  # fmt: skip
    for name, rate in rates.items():
        print(f"  {name:<11} {rate.per_second:>10,.0f} points/s  ({rate.points:,} points in "
              f"{rate.seconds:.2f} s; rounds: "
              f"{', '.join(f'{x:,.0f}' for x in rate.rounds)})")  # fmt: skip
    for name in ("api seq", "api x4"):
        per_round = round_ratios(rates[name], rates["direct seq"])
        rounds = ", ".join(f"{x:.2f}" for x in per_round)
        print(f"  ratio {name} / direct seq: {rates[name].per_second / base_rate:5.2f} overall, "
              f"{statistics.median(per_round):5.2f} median of rounds   (aim >= "
              f"{GOALS['ingest']}; rounds: {rounds})")  # fmt: skip
    per_round = round_ratios(rates["api x4"], rates["direct x4"])
    overall = rates["api x4"].per_second / rates["direct x4"].per_second
    print(f"  ratio api x4 / direct x4:  {overall:5.2f} overall, "
          f"{statistics.median(per_round):5.2f} median of rounds")  # fmt: skip
    return rates


def ingest_breakdown(data_dir: Path, hot_path: Path, uploads: list[Upload]) -> None:
    """The route's steps in-process (no HTTP, no auth), timed one by one, beside a direct write
    of the same points: where an upload's time goes."""
    from solarfleet.db import make_engine, make_sessionmaker, write_session
    from solarfleet.settings import Settings
    from solarfleet.telemetry import ingest
    from solarfleet.telemetry.dirty import mark_dirty
    from solarfleet.telemetry.embedded import EmbeddedHotStore
    from solarfleet.telemetry.routes import Upload as UploadBody

    engine = make_engine(Settings(data_dir=data_dir).effective_database_url)
    sessions = make_sessionmaker(engine)
    hot = EmbeddedHotStore(hot_path / "api" / "telemetry.sqlite")
    direct = EmbeddedHotStore(hot_path / "direct" / "telemetry.sqlite")
    steps = ["body: JSON + pydantic", "parse_upload", "dirty mark + commit", "hot store write",
             "dirty mark + commit again", "direct write (same points)"]  # fmt: skip
    spent = dict.fromkeys(steps, 0.0)
    clock = time.perf_counter
    try:
        for k, up in enumerate(uploads):
            t0 = clock()
            body = UploadBody.model_validate_json(up.body)
            t1 = clock()
            points = ingest.parse_upload(
                imei=up.imei, measurement=body.measurement, tags=body.tags, fields=body.fields
            )
            t2 = clock()
            oldest = min(p.time_us for p in points)
            with write_session(sessions) as session:  # what ingest.store_upload does, step by step
                mark_dirty(session=session, imei=up.imei, oldest_us=oldest)
                session.commit()
                t3 = clock()
                hot.write(points)
                t4 = clock()
                mark_dirty(session=session, imei=up.imei, oldest_us=oldest)
                session.commit()
                t5 = clock()
            direct.write(up.points)
            t6 = clock()
            if k < 5:
                continue  # warm-up
            for step, a, b in zip(steps, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6),
                                  strict=True):  # fmt: skip
                spent[step] += b - a
    finally:
        hot.close()
        direct.close()
        engine.dispose()
    n = len(uploads) - 5
    route = sum(v for k, v in spent.items() if not k.startswith("direct"))
    print(f"\n  where an upload's time goes, in-process (no HTTP, no auth; mean of {n} uploads of "
          f"{len(uploads[0].points):,} points; {load()}):")  # fmt: skip
    for step, seconds in spent.items():
        print(f"    {step:<28} {seconds / n * 1000:7.2f} ms")
    print(f"    route steps together         {route / n * 1000:7.2f} ms   -> direct / route "
          f"{spent['direct write (same points)'] / route:.2f}")  # fmt: skip


def ingest_section(
    root: Path, args: argparse.Namespace, influx_url: str | None
) -> dict[str, dict[str, Rate]]:
    from solarfleet.telemetry.embedded import EmbeddedHotStore

    results: dict[str, dict[str, Rate]] = {}
    data_dir = root / "ingest"
    t0 = time.perf_counter()
    token = build_database(data_dir, args.units)
    print(f"database: {args.units} units and a SYSTEM token in {time.perf_counter() - t0:.1f} s "
          f"({data_dir})")  # fmt: skip
    uploads = Uploads(args.units, args.per_upload, args.fields)

    # embedded hot store
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = root / "server-embedded.log"
    server = start_server(data_dir, port, log, cli=True)
    direct = EmbeddedHotStore(root / "direct" / "hot" / "telemetry.sqlite")
    try:
        wait_ready(base, server, log)
        print(f"server: solarfleet serve (uvicorn, 1 worker, embedded hot store) at {base}, "
              f"pid {server.pid}; direct store {direct.path}")  # fmt: skip
        results["embedded"] = bench_ingest(
            "embedded hot store", base=base, token=token, direct=direct, uploads=uploads,
            args=args,
        )  # fmt: skip
    finally:
        direct.close()
        stop_server(server)
    errors = server_errors(log)
    if errors:
        print("  server log errors:\n    " + "\n    ".join(errors[-10:]))
    if args.breakdown:
        ingest_breakdown(data_dir, root / "breakdown", uploads.make(args.breakdown + 5))

    if not influx_url:
        print("\n(InfluxDB: SOLARFLEET_BENCH_INFLUX_URL is not set; skipped)")
        return results
    from solarfleet.telemetry.influx import InfluxHotStore

    tag = uuid.uuid4().hex[:10]
    api_db, direct_db = f"bench_api_{tag}", f"bench_direct_{tag}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = root / "server-influx.log"
    print(f"\n== ingest, InfluxDB hot store at {influx_url} (databases {api_db}, {direct_db})")
    server = start_server(
        data_dir, port, log, cli=True,
        env={"SOLARFLEET_INFLUX_URL": influx_url, "SOLARFLEET_INFLUX_DATABASE": api_db},
    )  # fmt: skip
    direct = InfluxHotStore(influx_url, database=direct_db, timeout=60)
    try:
        wait_ready(base, server, log)
        results["influx"] = bench_ingest(
            "InfluxDB hot store", base=base, token=token, direct=direct, uploads=uploads, args=args
        )
    finally:
        stop_server(server)
        for db in (api_db, direct_db):
            store = InfluxHotStore(influx_url, database=db)
            try:
                store.drop_database()
            except Exception as exc:  # noqa: BLE001 - report, never fail the run for it
                print(f"  could not drop the InfluxDB database {db}: {exc}")
            store.close()
        direct.close()
    errors = server_errors(log)
    if errors:
        print("  server log errors:\n    " + "\n    ".join(errors[-10:]))
    return results


# -- the migration ---------------------------------------------------------------------------


def upload_readings(data_dir: Path, args: argparse.Namespace, first: int, stamps: int) -> int:
    """Readings ``first`` to ``first + stamps`` (timestamps; x fields) of every unit, through the
    real ingest path (``store_upload``: dirty mark, write, mark) in uploads of ``--per-upload``
    points, as a fleet uploads: every unit's first upload, then every unit's second one, ..."""
    from solarfleet.db import make_engine, make_sessionmaker, write_session
    from solarfleet.settings import Settings
    from solarfleet.telemetry.embedded import EmbeddedHotStore
    from solarfleet.telemetry.ingest import store_upload
    from solarfleet.telemetry.points import Point, normal_tags

    engine = make_engine(Settings(data_dir=data_dir).effective_database_url)
    sessions = make_sessionmaker(engine)
    hot = EmbeddedHotStore(data_dir / "hot" / "telemetry.sqlite")
    tags = normal_tags(TAGS)
    fields = FIELD_NAMES[: args.fields]
    per_upload = max(1, args.per_upload // len(fields))  # timestamps per upload
    total = 0
    try:
        for s0 in range(first, first + stamps, per_upload):
            for u in range(args.mig_units):
                imei = imei_of(u)
                start = T0_US + (u % 97) * 3_600_000_000  # units report at different hours
                points = [
                    Point(imei, MEASUREMENT, tags, f, start + j * MIG_STEP_US, value_of(f, u + j))
                    for j in range(s0, min(first + stamps, s0 + per_upload))
                    for f in fields
                ]
                with write_session(sessions) as session:
                    total += store_upload(session=session, hot=hot, imei=imei, points=points)
    finally:
        hot.close()
        engine.dispose()
    for db in (data_dir / "solarfleet.sqlite", data_dir / "hot" / "telemetry.sqlite"):
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    return total


def fill_template(template: Path, args: argparse.Namespace) -> dict[str, float]:
    """Units, and ``--points`` readings each through the real ingest path."""
    t0 = time.perf_counter()
    build_database(template, args.mig_units)
    t1 = time.perf_counter()
    total = upload_readings(template, args, 0, args.points // args.fields)
    t2 = time.perf_counter()
    return {"points": total, "units": args.mig_units, "setup_s": t1 - t0, "fill_s": t2 - t1}


def fresh_copy(template: Path, target: Path) -> None:
    """A new data dir holding the template's database and hot store; the archive table made."""
    from solarfleet.settings import Settings
    from solarfleet.telemetry.archive import Archive

    shutil.copytree(template, target)
    archive = Archive.from_settings(Settings(data_dir=target))
    archive.table  # noqa: B018  (created now, not inside a timed pass)
    archive.close()


def run_workers(
    data_dir: Path, mode: str, shards: int, args: argparse.Namespace, *, profile: bool = False
) -> dict[str, Any]:
    """``shards`` worker processes at once (``mode``: migrate, bare or bare-sql); their results
    and the wall time from GO to the last one done.

    A worker that fails (say, an archive commit that conflicts with the other worker's) is
    reported and its shard run again at once in a new process, as the next pass would: the
    failed attempt's time counts, the new process's start-up (until READY) does not.
    """
    go = threading.Event()
    ready = [threading.Event() for _ in range(shards)]
    results: list[dict[str, Any] | None] = [None] * shards
    failures: list[str] = []
    errors: list[BaseException] = []
    live: list[subprocess.Popen[str]] = []

    def spawn(shard: int, attempt: int) -> subprocess.Popen[str]:
        config = {
            "mode": mode,
            "data_dir": str(data_dir),
            "shard": shard,
            "shards": shards,
            "batch_size": args.batch_size,
            "profile": str(data_dir / f"profile-{shard}.out") if profile else None,
        }
        err = (data_dir / f"worker-{shard}-{attempt}.err").open("w")
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("SOLARFLEET_")},
        )
        err.close()
        live.append(proc)
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if line.strip() != "READY":
            proc.wait()
            tail = (data_dir / f"worker-{shard}-{attempt}.err").read_text()[-2000:]
            raise RuntimeError(f"a worker did not start: {line!r}\n{tail}")
        return proc

    def finish(proc: subprocess.Popen[str]) -> dict[str, Any] | None:
        proc.stdin.write("GO\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        out, _ = proc.communicate(timeout=1800)
        lines = [x for x in out.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            return None
        return json.loads(lines[-1].removeprefix("RESULT "))  # type: ignore[no-any-return]

    def run(shard: int) -> None:
        try:
            proc = spawn(shard, 0)
            ready[shard].set()
            go.wait()
            result = finish(proc)
            restart = 0.0
            attempt = 0
            while result is None and attempt < 2:
                failed_at = time.monotonic()
                err = (data_dir / f"worker-{shard}-{attempt}.err").read_text().strip()
                last = err.splitlines()[-1] if err else "(no error output)"
                failures.append(f"shard {shard} attempt {attempt + 1} failed "
                                f"{failed_at - go_at[0]:.1f} s after GO: {last[:300]}")  # fmt: skip
                attempt += 1
                proc = spawn(shard, attempt)
                restart += time.monotonic() - failed_at
                result = finish(proc)
            if result is None:
                raise RuntimeError(f"shard {shard} failed {attempt + 1} times: {failures[-1]}")
            result["restart_s"] = restart
            result["attempt"] = attempt + 1
            results[shard] = result
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            ready[shard].set()

    go_at = [0.0]
    threads = [threading.Thread(target=run, args=(shard,)) for shard in range(shards)]
    try:
        for t in threads:
            t.start()
        for event in ready:
            event.wait()
        go_at[0] = time.monotonic()
        go.set()
        for t in threads:
            t.join()
    finally:
        go.set()
        for proc in live:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if errors:
        raise SystemExit(f"{mode} x{shards}: {errors[0]}")
    done = [r for r in results if r is not None]
    return {
        # per worker: its end, less the start-up of the processes that replaced failed ones
        "wall": max(r["end"] - r["restart_s"] for r in done) - go_at[0],
        "points": sum(r["points"] for r in done),
        "workers": done,
        "failures": failures,
        "profiles": [r["profile"] for r in done if r.get("profile")],
    }


def archived_records(data_dir: Path) -> int:
    """Rows in the archive's current snapshot (from its summary; no scan)."""
    from solarfleet.settings import Settings
    from solarfleet.telemetry.archive import Archive

    archive = Archive.from_settings(Settings(data_dir=data_dir))
    snapshot = archive.table.current_snapshot()
    archive.close()
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.get("total-records") or 0)


PHASES = [  # (label, from checkpoint, to checkpoint) of migrate_pass
    ("list dirty units", "start", "pass.start"),
    ("take leases", "pass.start", "batch.leased"),
    ("plan + read hot store", "batch.leased", "batch.hot_read"),
    ("read archive, merge, write files", "batch.hot_read", "archive.files_written"),
    ("catalog commit", "archive.files_written", "archive.committed"),
    ("commit stats", "archive.committed", "batch.archived"),
    ("watermarks + marks", "batch.archived", "batch.committed"),
    ("release leases, rest", "batch.committed", "end"),
]


def phase_times(checkpoints: list[list[Any]]) -> dict[str, float]:
    """Seconds per phase, summed over batches (and commit retries)."""
    out = {label: 0.0 for label, _, _ in PHASES}
    last: dict[str, float] = {}
    for name, t in checkpoints:
        for label, a, b in PHASES:
            if name == b and a in last:
                out[label] += t - last[a]
        last[name] = t
    return out


def migration_section(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    template = root / "template"
    info = fill_template(template, args)
    print(f"fill: {info['units']} units, {info['points']:,} readings through store_upload "
          f"(uploads of {args.per_upload:,} points, unit after unit, upload after upload) in "
          f"{info['fill_s']:.1f} s ({info['points'] / info['fill_s']:,.0f} points/s; schema and "
          f"units {info['setup_s']:.1f} s)")  # fmt: skip
    hot_bytes = (template / "hot" / "telemetry.sqlite").stat().st_size
    print(f"      hot store {hot_bytes / 1e6:.0f} MB; {load()}")
    runs: dict[str, list[dict[str, Any]]] = {}
    # bare copies before and after, so that a burst of load from elsewhere shows in the spread
    plan = [("bare copy", "bare", 1), ("migrate x1", "migrate", 1), ("migrate x2", "migrate", 2)]
    if args.bare_x2:
        plan.append(("bare copy x2", "bare", 2))
    plan.append(("bare copy", "bare", 1))
    plan = plan * args.mig_rounds
    if not args.no_bare_sql:
        plan.append(("bare sql", "bare-sql", 1))
    n = 0
    for name, mode, shards in plan:
        n += 1
        data_dir = root / f"run-{n}"
        fresh_copy(template, data_dir)
        before = load()
        res = run_workers(data_dir, mode, shards, args)
        res["load_before"], res["load_after"] = before, load()
        if mode == "migrate":
            res["archived"] = archived_records(data_dir)
        runs.setdefault(name, []).append(res)
        rate = res["points"] / res["wall"]
        extra = ""
        if mode == "migrate":
            attempts = [c for w in res["workers"] for c in w["attempts"]]
            skipped = sum(w["skipped"] for w in res["workers"])
            extra = (f"; {len(attempts)} archive commits, attempts {attempts}, {skipped} units "
                     f"skipped; the archive holds {res['archived']:,} rows")  # fmt: skip
            if res["archived"] != info["points"]:
                extra += f" (EXPECTED {info['points']:,})"
        print(f"  {name:<13} {rate:>10,.0f} points/s  ({res['points']:,} points in "
              f"{res['wall']:.2f} s{extra}); {before} -> {res['load_after']}",
              flush=True)  # fmt: skip
        for failure in res["failures"]:
            print(f"      {failure}; the shard was run again in a new process")
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)

    def rate_of(name: str) -> float:
        """The mean rate of the runs of ``name``."""
        rates = [r["points"] / r["wall"] for r in runs[name]]
        return sum(rates) / len(rates)

    bare_rate = rate_of("bare copy")
    spread = ", ".join(f"{r['points'] / r['wall']:,.0f}" for r in runs["bare copy"])
    print(
        f"\n  summary ({info['points']:,} readings, {info['units']} units, batches of "
        f"{args.batch_size} units; the baseline is the mean of the bare copies: {spread})"
    )
    ratios = {}
    for name in runs:
        rate = rate_of(name)
        ratios[name] = rate / bare_rate
        aim = f"   (aim >= {GOALS['migration']})" if name.startswith("migrate") else ""
        note = "   (information: no Point objects, straight off SQLite)"
        if name != "bare sql":
            note = ""
        print(f"  {name:<13} {rate:>10,.0f} points/s   ratio / bare copy "
              f"{rate / bare_rate:5.2f}{aim}{note}")  # fmt: skip
    print("\n  where the time goes (seconds; migrate_pass from its checkpoints; per worker):")
    for name in runs:
        for w in runs[name][0]["workers"]:
            total = w["end"] - w["start"]
            times = phase_times(w["checkpoints"]) if name.startswith("migrate") else w["phases"]
            parts = ", ".join(f"{k} {v:.2f}" for k, v in times.items() if v >= 0.005)
            again = f" (attempt {w['attempt']})" if w.get("attempt", 1) > 1 else ""
            print(f"    {name} shard {w['shard']}{again}: {total:.2f} s = {parts}")

    if args.incremental:
        n += 1
        incremental_section(root / f"run-{n}", template, args)

    if not args.no_profile and (args.profile or ratios.get("migrate x1", 1.0) < GOALS["migration"]):
        n += 1
        data_dir = root / f"run-{n}"
        fresh_copy(template, data_dir)
        res = run_workers(data_dir, "migrate", 1, args, profile=True)
        print(f"\n== profile: migrate x1 under cProfile ({res['wall']:.2f} s with the profiler; "
              f"{load()})")  # fmt: skip
        for path in res["profiles"]:
            show_profile(path, args.profile_lines)
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return {"info": info, "runs": runs, "ratios": ratios, "bare_rate": bare_rate}


def incremental_section(data_dir: Path, template: Path, args: argparse.Namespace) -> None:
    """The steady state: after a first pass, every unit uploads ``--incremental`` readings more
    (later times); the next pass against a bare copy of the same new readings."""
    fresh_copy(template, data_dir)
    first = run_workers(data_dir, "migrate", 1, args)
    stamps = args.points // args.fields
    new_stamps = max(1, args.incremental // args.fields)
    t0 = time.perf_counter()
    added = upload_readings(data_dir, args, stamps, new_stamps)
    files = archive_files(data_dir)
    print(f"\n== incremental pass: after a first pass ({first['points']:,} points in "
          f"{first['wall']:.2f} s, {files} archive files), {added:,} new readings "
          f"({args.incremental} per unit, later than the watermark) uploaded in "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
    bare = run_workers(data_dir, "bare-new", 1, args)
    print(f"  bare copy     {bare['points'] / bare['wall']:>10,.0f} points/s  ({bare['points']:,} "
          f"points in {bare['wall']:.2f} s; from each unit's dirty mark); {load()}")  # fmt: skip
    again = run_workers(data_dir, "migrate", 1, args)
    rate = again["points"] / again["wall"]
    print(f"  migrate x1    {rate:>10,.0f} points/s  ({again['points']:,} points in "
          f"{again['wall']:.2f} s); {load()}")  # fmt: skip
    print(f"  ratio / bare copy {rate / (bare['points'] / bare['wall']):.3f}")
    for w in again["workers"]:
        times = phase_times(w["checkpoints"])
        parts = ", ".join(f"{k} {v:.2f}" for k, v in times.items() if v >= 0.005)
        print(f"    migrate x1: {w['end'] - w['start']:.2f} s = {parts}")
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)


def archive_files(data_dir: Path) -> int:
    from solarfleet.settings import Settings
    from solarfleet.telemetry.archive import Archive

    archive = Archive.from_settings(Settings(data_dir=data_dir))
    try:
        return archive.file_count()
    finally:
        archive.close()


def show_profile(path: str, lines: int) -> None:
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(path, stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(lines)
        text = out.getvalue()
        start = text.find("   ncalls")
        print(f"\n  top {lines} by {order}:")
        print("\n".join("  " + line for line in text[start:].rstrip().splitlines()))


# -- the worker processes --------------------------------------------------------------------


def bare_copy(
    hot: Any,
    imeis: Sequence[str],
    out_dir: Path,
    batch_size: int,
    starts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The baseline: the same per-unit hot-store reads, a pyarrow table per batch, a Parquet
    file per batch; nothing else."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from solarfleet.migration.service import FAR_FUTURE_US

    schema = pa.schema([
        pa.field("imei", pa.string(), nullable=False),
        pa.field("measurement", pa.string(), nullable=False),
        pa.field("tags", pa.string(), nullable=False),
        pa.field("field", pa.string(), nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("value_float", pa.float64()),
        pa.field("value_int", pa.int64()),
        pa.field("value_bool", pa.bool_()),
        pa.field("value_str", pa.string()),
    ])  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    phases = {"read hot store": 0.0, "build arrow": 0.0, "write parquet": 0.0}
    points_total = 0
    clock = time.perf_counter
    for b, i in enumerate(range(0, len(imeis), batch_size)):
        t0 = clock()
        points = []
        for imei in imeis[i : i + batch_size]:
            points.extend(hot.read(imei, (starts or {}).get(imei, 0), FAR_FUTURE_US))
        t1 = clock()
        tag_text: dict[Any, str] = {}
        cols: list[list[Any]] = [[] for _ in range(9)]
        ap = [c.append for c in cols]
        for p in points:
            v = p.value
            text = tag_text.get(p.tags)
            if text is None:
                text = tag_text[p.tags] = json.dumps(dict(p.tags), sort_keys=True,
                                                     separators=(",", ":"))  # fmt: skip
            ap[0](p.imei)
            ap[1](p.measurement)
            ap[2](text)
            ap[3](p.field)
            ap[4](p.time_us)
            kind = type(v)
            ap[5](v if kind is float else None)
            ap[6](v if kind is int else None)
            ap[7](v if kind is bool else None)
            ap[8](v if kind is str else None)
        arrays = [pa.array(c, f.type if f.name != "time" else pa.int64())
                  for c, f in zip(cols, schema, strict=True)]  # fmt: skip
        arrays[4] = arrays[4].cast(schema.field("time").type)
        table = pa.Table.from_arrays(arrays, schema=schema)
        t2 = clock()
        pq.write_table(table, out_dir / f"batch-{b:04d}.parquet", compression="zstd")
        t3 = clock()
        phases["read hot store"] += t1 - t0
        phases["build arrow"] += t2 - t1
        phases["write parquet"] += t3 - t2
        points_total += len(points)
    return {"points": points_total, "phases": phases}


def bare_sql_copy(
    path: Path, imeis: Sequence[str], out_dir: Path, batch_size: int
) -> dict[str, Any]:
    """Information only: the same per-unit windows read with the stdlib driver straight into
    columns (no Point objects, tags kept as stored), a Parquet file per batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    sql = (
        "SELECT imei, measurement, tags, field, time_us, kind, value FROM points"
        " WHERE imei = ? AND time_us >= ? AND time_us < ? ORDER BY time_us"
    )
    phases = {"read hot store": 0.0, "build arrow": 0.0, "write parquet": 0.0}
    points_total = 0
    clock = time.perf_counter
    for b, i in enumerate(range(0, len(imeis), batch_size)):
        t0 = clock()
        rows: list[tuple[Any, ...]] = []
        for imei in imeis[i : i + batch_size]:
            rows.extend(conn.execute(sql, (imei, 0, 2**62)))
        t1 = clock()
        cols = list(zip(*rows, strict=True)) if rows else [()] * 7
        kinds, values = cols[5], cols[6]
        table = pa.table({
            "imei": pa.array(cols[0], pa.string()),
            "measurement": pa.array(cols[1], pa.string()),
            "tags": pa.array(cols[2], pa.string()),
            "field": pa.array(cols[3], pa.string()),
            "time": pa.array(cols[4], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "value_float": pa.array(
                [v if k == "float" else None for k, v in zip(kinds, values, strict=True)],
                pa.float64(),
            ),
            "value_int": pa.array(
                [v if k == "int" else None for k, v in zip(kinds, values, strict=True)],
                pa.int64(),
            ),
            "value_bool": pa.array(
                [bool(v) if k == "bool" else None for k, v in zip(kinds, values, strict=True)],
                pa.bool_(),
            ),
            "value_str": pa.array(
                [v if k == "str" else None for k, v in zip(kinds, values, strict=True)],
                pa.string(),
            ),
        })  # fmt: skip
        t2 = clock()
        pq.write_table(table, out_dir / f"batch-{b:04d}.parquet", compression="zstd")
        t3 = clock()
        phases["read hot store"] += t1 - t0
        phases["build arrow"] += t2 - t1
        phases["write parquet"] += t3 - t2
        points_total += len(rows)
    conn.close()
    return {"points": points_total, "phases": phases}


def worker(config: dict[str, Any]) -> None:
    """One worker process: open everything, say READY, wait for GO, run, print RESULT."""
    from solarfleet.db import make_engine, make_sessionmaker
    from solarfleet.migration.leases import default_holder
    from solarfleet.migration.service import migrate_pass, shard_of
    from solarfleet.settings import Settings
    from solarfleet.telemetry.archive import Archive
    from solarfleet.telemetry.embedded import EmbeddedHotStore

    data_dir = Path(config["data_dir"])
    shard, shards = config["shard"], config["shards"]
    settings = Settings(data_dir=data_dir)
    engine = make_engine(settings.effective_database_url)
    sessions = make_sessionmaker(engine)
    hot = EmbeddedHotStore(data_dir / "hot" / "telemetry.sqlite")
    archive = Archive.from_settings(settings) if config["mode"] == "migrate" else None
    imeis: list[str] = []
    starts: dict[str, int] = {}
    if config["mode"] != "migrate":
        from sqlalchemy import select

        from solarfleet.fleet.models import Product

        with sessions() as session:
            every = session.scalars(select(Product.product_imei).order_by(Product.product_imei))
            imeis = [i for i in every if shards == 1 or shard_of(i, shards) == shard]
            if config["mode"] == "bare-new":  # from each unit's dirty mark on
                from solarfleet.telemetry.models import TelemetryDirty

                starts = dict(
                    session.execute(
                        select(TelemetryDirty.product_imei, TelemetryDirty.dirty_since_us)
                    ).all()
                )
                imeis = [i for i in imeis if i in starts]
    print("READY", flush=True)
    if sys.stdin.readline().strip() != "GO":
        raise SystemExit("no GO")
    checkpoints: list[list[Any]] = []
    profiler = cProfile.Profile() if config.get("profile") else None
    start = time.monotonic()
    checkpoints.append(["start", start])

    def checkpoint(name: str) -> None:
        checkpoints.append([name, time.monotonic()])

    if profiler is not None:
        profiler.enable()
    result: dict[str, Any] = {}
    if config["mode"] == "migrate":
        assert archive is not None
        report = migrate_pass(
            sessions=sessions,
            hot=hot,
            archive=archive,
            holder=default_holder(),
            shard=shard,
            shards=shards,
            batch_size=config["batch_size"],
            retention_days=0.0,
            checkpoint=checkpoint,
        )
        result = {
            "points": report.points,
            "units": report.units,
            "skipped": report.skipped,
            "attempts": [c.attempts for c in report.commits],
            "files": sum(c.files_added for c in report.commits),
        }
    elif config["mode"] in ("bare", "bare-new"):
        out = data_dir / "bare" / f"{config['mode']}-{shard}"
        result = bare_copy(hot, imeis, out, config["batch_size"], starts)
    else:
        result = bare_sql_copy(
            hot.path, imeis, data_dir / "bare" / f"shard-{shard}", config["batch_size"]
        )
    end = time.monotonic()
    checkpoints.append(["end", end])
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(config["profile"])
    hot.close()
    if archive is not None:
        archive.close()
    result.update(shard=shard, start=start, end=end, checkpoints=checkpoints,
                  profile=config.get("profile"))  # fmt: skip
    print("RESULT " + json.dumps(result), flush=True)


# -- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0].replace("\n", " "))
    parser.add_argument("--quick", action="store_true", help="a small, fast look (1-2 minutes)")
    parser.add_argument("--units", type=int, default=200, help="ingest: units (default 200)")
    parser.add_argument(
        "--per-upload", type=int, default=1000, help="points per upload (default 1000)"
    )
    parser.add_argument("--fields", type=int, default=5, help="fields per upload (default 5)")
    parser.add_argument(
        "--uploads", type=int, default=30, help="ingest: uploads per phase and round (default 30)"
    )
    parser.add_argument("--rounds", type=int, default=10, help="ingest: interleaved rounds")
    parser.add_argument(
        "--breakdown", type=int, default=40,
        help="ingest: uploads timed step by step in-process (0: skip; default 40)",
    )  # fmt: skip
    parser.add_argument("--mig-units", type=int, default=500, help="migration: units (default 500)")
    parser.add_argument(
        "--points", type=int, default=2000, help="migration: readings per unit (default 2000)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=500, help="migration: units per batch (default 500, "
        "the settings' default migration_batch_size)",
    )  # fmt: skip
    parser.add_argument(
        "--mig-rounds", type=int, default=1,
        help="migration: rounds of bare, x1, x2, bare (rates are means over the runs)",
    )  # fmt: skip
    parser.add_argument(
        "--bare-x2", action="store_true", help="also the bare copy in two processes"
    )
    parser.add_argument(
        "--incremental", type=int, default=0, metavar="N",
        help="migration: also a second pass after N more readings per unit (slow; default 0: "
        "skip; try --mig-units 200 --points 1000 --incremental 200)",
    )  # fmt: skip
    parser.add_argument(
        "--no-bare-sql", action="store_true", help="skip the information-only raw SQL copy"
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile a migrate x1 run even if it meets 0.5x"
    )
    parser.add_argument("--no-profile", action="store_true", help="never profile")
    parser.add_argument("--profile-lines", type=int, default=25, help="lines per profile table")
    parser.add_argument("--skip-ingest", action="store_true", help="only the migration")
    parser.add_argument("--skip-migration", action="store_true", help="only the ingest")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dirs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    if args.quick:
        args.units, args.uploads, args.rounds, args.breakdown = 50, 15, 4, 20
        args.mig_units, args.points = 100, 1000
    if args.no_profile:
        args.profile = False
    if args.fields < 1 or args.fields > len(FIELD_NAMES):
        parser.error(f"--fields: 1 to {len(FIELD_NAMES)}")
    influx_url = os.environ.get("SOLARFLEET_BENCH_INFLUX_URL")

    import pyarrow

    root = Path(tempfile.mkdtemp(prefix="solarfleet-bench-telemetry-"))
    started = time.perf_counter()
    try:
        print(machine(f"pyarrow {pyarrow.__version__}"))
        ingest: dict[str, dict[str, Rate]] = {}
        migration: dict[str, Any] = {}
        if not args.skip_ingest:
            print("\n== ingest: POST /v1/products/<imei>/data vs. direct hot-store writes")
            ingest = ingest_section(root, args, influx_url)
        if not args.skip_migration:
            print("\n== migration: migrate_pass vs. a bare copy (hot store -> pyarrow -> Parquet)")
            migration = migration_section(root, args)

        print(f"\n== summary ({time.perf_counter() - started:.0f} s in all; {load()})")
        for store, rates in ingest.items():
            base = rates["direct seq"].per_second
            line = f"  ingest {store:<8}  direct seq {base:>9,.0f} points/s"
            for name in ("api seq", "api x4"):
                rate = rates[name].per_second
                median = statistics.median(round_ratios(rates[name], rates["direct seq"]))
                line += (
                    f" | {name} {rate:>9,.0f} ({rate / base:.2f}x; rounds' median {median:.2f}x)"
                )
            print(line + f"   aim >= {GOALS['ingest']}x")
        if migration:
            bare = migration["bare_rate"]
            line = f"  migration  bare copy {bare:>9,.0f} points/s"
            for name in ("migrate x1", "migrate x2"):
                ratio = migration["ratios"][name]
                line += f" | {name} {ratio * bare:>9,.0f} ({ratio:.2f}x)"
            print(line + f"   aim >= {GOALS['migration']}x")
    finally:
        if args.keep:
            print(f"\ndata kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
