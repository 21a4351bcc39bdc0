"""The long-term telemetry store: one Apache Iceberg table (Parquet files, atomic commits).

The table's catalog lives in our own database (pyiceberg's ``SqlCatalog`` on the same SQLAlchemy
URL; it adds the tables ``iceberg_tables`` and ``iceberg_namespace_properties``), its files under
``SOLARFLEET_ARCHIVE_URL`` (default ``file://<data_dir>/archive``). DuckDB, Spark or Trino read
it directly.

One row per reading::

    imei string, measurement string, tags string (canonical JSON of the sorted tags),
    field string, time timestamptz (µs, UTC),
    value_float double | value_int long | value_bool boolean | value_str string

Exactly one ``value_*`` column is set, so a value comes back with the type it went in with.

Partitioning is ``bucket(imei, N)`` + ``day(time)``. A replacement of one unit's window deletes
rows by ``imei = X AND time in window``: Iceberg prunes to the files of X's bucket and the days
of the window, and rewrites only those files that really hold a row of X in the window. With
``day(time)`` alone every file of a day holds every unit, so each late upload rewrote the whole
fleet's day; with ``identity(imei)`` every commit wrote a file per unit (thousands of tiny
files). Measured numbers are in the migration's report (bench notes in ``commit``).

Commits are expensive compared to their payload (a metadata file, a manifest list, manifests,
a catalog row update), so the migration replaces the windows of many units in ONE commit.
Small files still accumulate (one per bucket and day per commit): :func:`Archive.compact`
rewrites a partition's files into one, :func:`Archive.expire` drops old snapshots and the data
files no snapshot references any more.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog.sql import SqlCatalog, SqlCatalogBaseTable
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    TableAlreadyExistsError,
    ValidationException,
)
from pyiceberg.expressions import (
    AlwaysFalse,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    In,
    LessThan,
    Or,
)
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import BucketTransform, DayTransform
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from solarfleet.db import make_engine
from solarfleet.errors import ServiceUnavailable
from solarfleet.settings import Settings
from solarfleet.telemetry.points import US_PER_DAY, Point, Tags, Value

log = logging.getLogger("solarfleet.archive")

Window = tuple[int, int]  # [start_us, end_us)
Checkpoint = Callable[[str], None]

SCHEMA = Schema(
    NestedField(1, "imei", StringType(), required=True),
    NestedField(2, "measurement", StringType(), required=True),
    NestedField(3, "tags", StringType(), required=True),
    NestedField(4, "field", StringType(), required=True),
    NestedField(5, "time", TimestamptzType(), required=True),
    NestedField(6, "value_float", DoubleType(), required=False),
    NestedField(7, "value_int", LongType(), required=False),
    NestedField(8, "value_bool", BooleanType(), required=False),
    NestedField(9, "value_str", StringType(), required=False),
    identifier_field_ids=[1, 2, 3, 4, 5],
)
ARROW_SCHEMA = SCHEMA.as_arrow()
TIME = pa.timestamp("us", tz="UTC")

TABLE_PROPERTIES = {
    "write.parquet.compression-codec": "zstd",
    # Keep the metadata folder from growing by one JSON file per commit forever.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
    # Merge small manifests on append, so that planning a scan does not read one per commit.
    "commit.manifest-merge.enabled": "true",
}

_COMMIT_ATTEMPTS = 8
# pg_advisory_xact_lock key serializing the creation of the catalog's tables ("icebergc").
CATALOG_LOCK_KEY = int.from_bytes(b"icebergc", "big") >> 1


def _noop(_name: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class CommitStats:
    """What one archive commit did (summed over the snapshots it produced)."""

    snapshot_id: int | None
    units: int
    rows_added: int
    rows_deleted: int
    files_added: int
    files_deleted: int
    seconds: float
    attempts: int = 1


@dataclass(slots=True)
class MaintenanceReport:
    partitions_compacted: int = 0
    files_before: int = 0
    files_after: int = 0
    snapshots_expired: int = 0
    files_removed: list[str] = field(default_factory=list)


@lru_cache(maxsize=4096)
def tags_json(tags: Tags) -> str:
    """The canonical JSON of a tag set: keys sorted, no spaces."""
    return json.dumps(dict(tags), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=4096)
def _tags_of(text: str) -> Tags:
    return tuple(sorted(json.loads(text).items()))


def _any_of(exprs: Sequence[BooleanExpression]) -> BooleanExpression:
    """Or over ``exprs`` as a balanced tree (a left-deep chain of thousands would recurse)."""
    if not exprs:
        return AlwaysFalse()
    if len(exprs) == 1:
        return exprs[0]
    mid = len(exprs) // 2
    return Or(_any_of(exprs[:mid]), _any_of(exprs[mid:]))


def _window_filter(imei: str, start_us: int, end_us: int) -> BooleanExpression:
    return And(
        EqualTo("imei", imei),
        And(GreaterThanOrEqual("time", start_us), LessThan("time", end_us)),
    )


def windows_filter(windows: Mapping[str, Window]) -> BooleanExpression:
    return _any_of([_window_filter(imei, s, e) for imei, (s, e) in sorted(windows.items())])


def points_to_arrow(points: Iterable[Point]) -> pa.Table:
    imeis: list[str] = []
    measurements: list[str] = []
    tags: list[str] = []
    fields: list[str] = []
    times: list[int] = []
    floats: list[float | None] = []
    ints: list[int | None] = []
    bools: list[bool | None] = []
    strs: list[str | None] = []
    for p in points:
        imeis.append(p.imei)
        measurements.append(p.measurement)
        tags.append(tags_json(p.tags))
        fields.append(p.field)
        times.append(p.time_us)
        v = p.value
        floats.append(v if isinstance(v, float) else None)
        ints.append(v if isinstance(v, int) and not isinstance(v, bool) else None)
        bools.append(v if isinstance(v, bool) else None)
        strs.append(v if isinstance(v, str) else None)
    arrays = [
        pa.array(imeis, pa.string()),
        pa.array(measurements, pa.string()),
        pa.array(tags, pa.string()),
        pa.array(fields, pa.string()),
        pa.array(times, pa.int64()).cast(TIME),
        pa.array(floats, pa.float64()),
        pa.array(ints, pa.int64()),
        pa.array(bools, pa.bool_()),
        pa.array(strs, pa.string()),
    ]
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)


def _ordered_arrow(points: Iterable[Point]) -> pa.Table:
    """Points as an Arrow table sorted by unit and time (files with narrow bounds per unit)."""
    return points_to_arrow(sorted(points, key=lambda p: (p.imei, p.time_us)))


def arrow_to_points(table: pa.Table) -> list[Point]:
    """Rows as points, ordered by unit, time, measurement, tags, field."""
    if table.num_rows == 0:
        return []
    cols = table.column_names
    times = table.column("time").cast(pa.int64()).to_pylist()
    values: list[list[Any]] = [
        table.column(c).to_pylist() if c in cols else [None] * table.num_rows
        for c in ("value_float", "value_int", "value_bool", "value_str")
    ]
    out = [
        Point(imei, measurement, _tags_of(tags), field_, t, _first(vf, vi, vb, vs))
        for imei, measurement, tags, field_, t, vf, vi, vb, vs in zip(
            table.column("imei").to_pylist(),
            table.column("measurement").to_pylist(),
            table.column("tags").to_pylist(),
            table.column("field").to_pylist(),
            times,
            *values,
            strict=True,
        )
    ]
    out.sort(key=lambda p: (p.imei, p.time_us, p.measurement, p.tags, p.field))
    return out


def _first(vf: Any, vi: Any, vb: Any, vs: Any) -> Value:
    if vf is not None:
        return float(vf)
    if vi is not None:
        return int(vi)
    if vb is not None:
        return bool(vb)
    return str(vs)


def _day_counts(table: pa.Table) -> dict[str, dict[int, int]]:
    if table.num_rows == 0:
        return {}
    days = _floor_days(table.column("time").cast(pa.int64()))
    grouped = (
        pa.table({"imei": table.column("imei"), "day": days})
        .group_by(["imei", "day"])
        .aggregate([("day", "count")])
    )
    out: dict[str, dict[int, int]] = defaultdict(dict)
    for imei, day, count in zip(
        grouped.column("imei").to_pylist(),
        grouped.column("day").to_pylist(),
        grouped.column("day_count").to_pylist(),
        strict=True,
    ):
        out[imei][int(day)] = int(count)
    return dict(out)


def _floor_days(times: pa.ChunkedArray) -> pa.ChunkedArray:
    """Day numbers of epoch-µs times (floor division, right for times before 1970 too)."""
    quotient = pc.divide(times, US_PER_DAY)  # integer division truncates toward zero
    remainder = pc.subtract(times, pc.multiply(quotient, US_PER_DAY))
    return pc.if_else(pc.less(remainder, 0), pc.subtract(quotient, 1), quotient)


def create_catalog_tables(engine: Engine, *, attempts: int = 5) -> None:
    """The SQL catalog's tables, if missing. ``create_all`` checks, then creates: two processes
    on a fresh database both find nothing and one fails on the other's table (PostgreSQL: a
    unique violation in ``pg_type``; SQLite: "already exists"). On PostgreSQL an advisory lock
    held to the end of the creating transaction serializes them; elsewhere the loser tries
    again and finds the tables there."""
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": CATALOG_LOCK_KEY}
                    )
                SqlCatalogBaseTable.metadata.create_all(conn)
            return
        except (IntegrityError, OperationalError, ProgrammingError):
            if attempt == attempts:
                raise
            time.sleep(random.uniform(0.01, 0.1) * attempt)


def default_warehouse(settings: Settings) -> str:
    if settings.archive_url:
        return settings.archive_url
    return (settings.data_dir / "archive").resolve().as_uri()


class Archive:
    """The Iceberg table of every archived reading, with the operations the migration needs."""

    def __init__(
        self,
        *,
        database_url: str,
        warehouse: str,
        table: str = "solarfleet.telemetry",
        buckets: int = 16,
    ) -> None:
        self.identifier = table
        self.namespace = table.rsplit(".", 1)[0]
        self.buckets = buckets
        self.warehouse = warehouse
        if warehouse.startswith("file://"):
            os.makedirs(urlparse(warehouse).path, exist_ok=True)
        try:
            # Its tables are created below, safely under concurrency (pyiceberg's own check and
            # create races when several processes open a fresh database at once).
            self.catalog = SqlCatalog(
                "solarfleet", uri=database_url, warehouse=warehouse, init_catalog_tables="false"
            )
        except Exception as exc:  # pragma: no cover - the database is down
            raise ServiceUnavailable(f"The archive catalog is unreachable: {exc}") from exc
        # pyiceberg makes a bare engine; ours waits on SQLite's lock instead of failing at once.
        self.catalog.engine.dispose()
        self.catalog.engine = make_engine(database_url)
        create_catalog_tables(self.catalog.engine)
        self._table: Table | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Archive:
        return cls(
            database_url=settings.effective_database_url,
            warehouse=default_warehouse(settings),
            table=settings.archive_table,
            buckets=settings.archive_buckets,
        )

    def close(self) -> None:
        self.catalog.engine.dispose()

    # -- the table -----------------------------------------------------------------------------

    @property
    def table(self) -> Table:
        """The table at its newest snapshot (created on first use)."""
        if self._table is None:
            self._table = self._load_or_create()
        else:
            self._table = self.catalog.load_table(self.identifier)
        return self._table

    def _load_or_create(self) -> Table:
        spec = PartitionSpec(
            PartitionField(1, 1000, BucketTransform(self.buckets), "imei_bucket"),
            PartitionField(5, 1001, DayTransform(), "time_day"),
        )
        for _attempt in range(5):
            try:
                return self.catalog.load_table(self.identifier)
            except NoSuchTableError:
                pass
            # Another process may create the namespace or the table at the same moment.
            try:
                with suppress(NamespaceAlreadyExistsError):
                    self.catalog.create_namespace(self.namespace)
                return self.catalog.create_table(
                    self.identifier, schema=SCHEMA, partition_spec=spec, properties=TABLE_PROPERTIES
                )
            except (TableAlreadyExistsError, IntegrityError):
                time.sleep(random.uniform(0.01, 0.1))
        return self.catalog.load_table(self.identifier)

    def drop(self) -> None:
        """Forget the table (its files stay; tests and resets use this)."""
        with suppress(NoSuchTableError):
            self.catalog.drop_table(self.identifier)
        self._table = None

    # -- writes --------------------------------------------------------------------------------

    def commit(
        self,
        *,
        replace: Mapping[str, tuple[int, int, Sequence[Point]]] | None = None,
        append: Mapping[str, Sequence[Point]] | None = None,
        checkpoint: Checkpoint = _noop,
        properties: Mapping[str, str] | None = None,
    ) -> CommitStats:
        """In ONE atomic commit: make each unit's rows in its window ``[start, end)`` of
        ``replace`` exactly the given points (same identity twice: the last one wins), and add
        the points of ``append`` as they are.

        Appending reads nothing and rewrites no file, and is the usual case of a migration pass
        (new readings, later than anything archived for their unit); the caller guarantees that
        the archive holds none of them yet. A replacement has pyiceberg plan every data file of
        the windows' partitions against one branch per unit, which is what makes it slower.

        A concurrent commit by another worker makes ours fail the catalog's compare-and-set:
        we reload the table and try again, which is right because the other worker only
        touched other units' rows (the lease table sees to that).
        """
        started = time.perf_counter()
        replace = replace or {}
        append = append or {}
        rows: dict[tuple[str, str, Tags, str, int], Point] = {}
        for imei, (start_us, end_us, points) in replace.items():
            for p in points:
                if p.imei != imei or not start_us <= p.time_us < end_us:
                    raise ValueError(f"{p} is outside the window of {imei}")
                rows[p.key] = p
        added: dict[tuple[str, str, Tags, str, int], Point] = {}
        for imei, points in append.items():
            if imei in replace:
                raise ValueError(f"{imei} is both replaced and appended")
            for p in points:
                if p.imei != imei:
                    raise ValueError(f"{p} is not a reading of {imei}")
                added[p.key] = p
        data = _ordered_arrow(rows.values())
        new = _ordered_arrow(added.values())
        where = windows_filter({imei: (s, e) for imei, (s, e, _) in replace.items()})
        units = len(replace) + len(append)
        props = {"solarfleet.units": str(units), **(properties or {})}
        for attempt in range(1, _COMMIT_ATTEMPTS + 1):
            table = self.table
            before = table.metadata.current_snapshot_id
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", "Delete operation did not match")
                    with table.transaction() as tx:
                        if replace and data.num_rows:
                            tx.overwrite(data, overwrite_filter=where, snapshot_properties=props)
                        elif replace:
                            tx.delete(where, snapshot_properties=props)
                        if new.num_rows:
                            tx.append(new, snapshot_properties=props)
                        checkpoint("archive.files_written")
            except (CommitFailedException, ValidationException):
                # ValidationException: another worker's commit (other units, leases keep units
                # apart) added files our filter's partitions overlap; re-planned on retry.
                if attempt == _COMMIT_ATTEMPTS:
                    raise
                log.info("archive commit conflict, attempt %d; retrying", attempt)
                time.sleep(random.uniform(0.05, 0.2) * attempt)
                continue
            checkpoint("archive.committed")
            return self._stats(before, units, started, attempt)
        raise AssertionError("unreachable")

    def _stats(self, before: int | None, units: int, started: float, attempts: int) -> CommitStats:
        table = self.table
        snapshot = table.current_snapshot()
        totals = defaultdict(int)
        current = snapshot
        while current is not None and current.snapshot_id != before:
            summary = current.summary
            for key in (
                "added-records",
                "deleted-records",
                "added-data-files",
                "deleted-data-files",
            ):
                totals[key] += int((summary.get(key) if summary else None) or 0)
            parent = current.parent_snapshot_id
            current = table.snapshot_by_id(parent) if parent is not None else None
        return CommitStats(
            snapshot_id=snapshot.snapshot_id if snapshot else None,
            units=units,
            rows_added=totals["added-records"],
            rows_deleted=totals["deleted-records"],
            files_added=totals["added-data-files"],
            files_deleted=totals["deleted-data-files"],
            seconds=time.perf_counter() - started,
            attempts=attempts,
        )

    # -- reads ---------------------------------------------------------------------------------

    def _scan(
        self,
        where: BooleanExpression,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        table = self.table
        if table.current_snapshot() is None:
            return ARROW_SCHEMA.empty_table()
        fields = tuple(columns) if columns else ("*",)
        return table.scan(row_filter=where, selected_fields=fields, limit=limit).to_arrow()

    def read(
        self,
        imei: str,
        start_us: int,
        end_us: int,
        measurement: str | None = None,
        fields: Sequence[str] | None = None,
        *,
        limit: int | None = None,
        max_points: int | None = None,
    ) -> list[Point]:
        """The unit's archived readings with ``start_us <= time_us < end_us``, ordered by unit
        and time. ``max_points``: the scan stops after ``max_points + 1`` rows (the caller
        refuses a window holding more). ``limit``: only the earliest ``limit`` readings of each
        (measurement, field), cut here (the files are not read in time order)."""
        where: BooleanExpression = _window_filter(imei, start_us, end_us)
        if measurement is not None:
            where = And(where, EqualTo("measurement", measurement))
        if fields is not None:
            where = And(where, In("field", list(fields)) if fields else AlwaysFalse())
        cap = None if max_points is None else max_points + 1
        points = arrow_to_points(self._scan(where, limit=cap))
        if limit is None or (max_points is not None and len(points) > max_points):
            return points
        taken: dict[tuple[str, str], int] = defaultdict(int)
        earliest = []
        for p in points:
            series = (p.measurement, p.field)
            if taken[series] < limit:
                taken[series] += 1
                earliest.append(p)
        return earliest

    def read_windows(self, windows: Mapping[str, Window]) -> dict[str, list[Point]]:
        """Every unit's archived readings in its window, in one scan."""
        out: dict[str, list[Point]] = {imei: [] for imei in windows}
        if not windows:
            return out
        for p in arrow_to_points(self._scan(windows_filter(windows))):
            out[p.imei].append(p)
        return out

    def counts_by_day(self, imei: str, start_us: int, end_us: int) -> dict[int, int]:
        """Archived readings per day number in ``[start_us, end_us)``."""
        return self.counts_by_day_many({imei: (start_us, end_us)}).get(imei, {})

    def counts_by_day_many(self, windows: Mapping[str, Window]) -> dict[str, dict[int, int]]:
        if not windows:
            return {}
        return _day_counts(self._scan(windows_filter(windows), ("imei", "time")))

    def newest_time(self, imei: str) -> int | None:
        """The time of the unit's newest archived reading."""
        rows = self._scan(EqualTo("imei", imei), ("time",))
        if rows.num_rows == 0:
            return None
        newest = pc.max(rows.column("time").cast(pa.int64())).as_py()
        return int(newest)

    def file_count(self) -> int:
        table = self.table
        if table.current_snapshot() is None:
            return 0
        return len(table.inspect.data_files())

    # -- maintenance ---------------------------------------------------------------------------

    def compact(
        self,
        *,
        min_files: int = 4,
        max_partitions: int = 64,
        checkpoint: Checkpoint = _noop,
        on_retry: Callable[[int, Exception], None] | None = None,
    ) -> MaintenanceReport:
        """Rewrite each partition (bucket, day) that has ``min_files`` files or more into one
        file, at most ``max_partitions`` of them in one commit. Rows are unchanged; readers
        see the old files or the new ones, never a mix.

        A migration commit landing between our read of the partitions and our commit makes
        ours fail the catalog's compare-and-set: the partitions are read again from the new
        snapshot and rewritten, up to ``_COMMIT_ATTEMPTS`` times (``on_retry(attempt, error)``
        is told each time, so that the caller can say why it waits)."""
        for attempt in range(1, _COMMIT_ATTEMPTS + 1):
            try:
                return self._compact_once(min_files, max_partitions, checkpoint)
            except (CommitFailedException, ValidationException) as exc:
                if attempt == _COMMIT_ATTEMPTS:
                    raise
                log.info("archive compaction conflict, attempt %d; retrying", attempt)
                if on_retry is not None:
                    on_retry(attempt, exc)
                time.sleep(random.uniform(0.05, 0.2) * attempt)
        raise AssertionError("unreachable")

    def _compact_once(
        self, min_files: int, max_partitions: int, checkpoint: Checkpoint
    ) -> MaintenanceReport:
        report = MaintenanceReport()
        table = self.table
        if table.current_snapshot() is None:
            return report
        files = table.inspect.data_files()
        by_partition: dict[tuple[int, int], int] = defaultdict(int)
        for part in files.column("partition").to_pylist():
            by_partition[(part["imei_bucket"], part["time_day"])] += 1
        crowded = sorted(
            (key for key, n in by_partition.items() if n >= min_files),
            key=lambda key: -by_partition[key],
        )[:max_partitions]
        if not crowded:
            return report
        report.files_before = sum(by_partition[key] for key in crowded)
        rewrites: list[tuple[BooleanExpression, pa.Table]] = []
        for bucket, day in crowded:
            start = _day_start_us(day)
            day_filter = And(
                GreaterThanOrEqual("time", start), LessThan("time", start + US_PER_DAY)
            )
            rows = table.scan(row_filter=day_filter).to_arrow()
            imeis = [
                i for i in pc.unique(rows.column("imei")).to_pylist() if self._bucket(i) == bucket
            ]
            if not imeis:
                continue
            mine = rows.filter(pc.is_in(rows.column("imei"), pa.array(imeis)))
            mine = mine.sort_by([("imei", "ascending"), ("time", "ascending")])
            rewrites.append((And(day_filter, In("imei", imeis)), mine))
        checkpoint("compact.planned")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Delete operation did not match")
            with table.transaction() as tx:
                for where, rows in rewrites:
                    tx.overwrite(
                        rows,
                        overwrite_filter=where,
                        snapshot_properties={"solarfleet.op": "compact"},
                    )
        report.partitions_compacted = len(rewrites)
        after = self.table.inspect.data_files()
        counts: dict[tuple[int, int], int] = defaultdict(int)
        for part in after.column("partition").to_pylist():
            counts[(part["imei_bucket"], part["time_day"])] += 1
        report.files_after = sum(counts[key] for key in crowded)
        return report

    def _bucket(self, imei: str) -> int:
        return BucketTransform(self.buckets).transform(StringType())(imei)  # type: ignore[no-any-return]

    def expire(self, *, older_than: timedelta = timedelta(days=1)) -> MaintenanceReport:
        """Expire snapshots older than ``older_than`` (never the current one), then delete the
        data files no remaining snapshot references and older than that too (local warehouse
        only: a file younger than that may belong to a commit in flight)."""
        report = MaintenanceReport()
        table = self.table
        current = table.current_snapshot()
        if current is None:
            return report
        cutoff = datetime.now(UTC) - older_than
        cutoff_ms = int(cutoff.timestamp() * 1000)
        old = [
            s.snapshot_id
            for s in table.metadata.snapshots
            if s.timestamp_ms < cutoff_ms and s.snapshot_id != current.snapshot_id
        ]
        if old:
            for attempt in range(1, _COMMIT_ATTEMPTS + 1):
                try:
                    table.maintenance.expire_snapshots().by_ids(old).commit()
                    break
                except CommitFailedException:  # a migration commit came first: again
                    if attempt == _COMMIT_ATTEMPTS:
                        raise
                    time.sleep(random.uniform(0.05, 0.2) * attempt)
                    table = self.table
                    old = [s for s in old if table.snapshot_by_id(s) is not None]
            report.snapshots_expired = len(old)
        table = self.table
        if not table.location().startswith("file://"):
            return report
        referenced = {
            urlparse(p).path for p in table.inspect.all_files().column("file_path").to_pylist()
        }
        data_dir = os.path.join(urlparse(table.location()).path, "data")
        for root, _dirs, names in os.walk(data_dir):
            for name in names:
                path = os.path.join(root, name)
                if path in referenced or os.path.getmtime(path) > cutoff.timestamp():
                    continue
                os.remove(path)
                report.files_removed.append(path)
        return report


def _day_start_us(day: int | date) -> int:
    if isinstance(day, date):
        day = (day - date(1970, 1, 1)).days
    return day * US_PER_DAY
