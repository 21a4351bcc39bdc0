"""The migration: copy each unit's telemetry from the hot store into the archive, record how far
it got in product_migration_history, and let the hot store drop what the archive verifiably holds.

One batch of units, step by step (a process may be killed between any two steps):

1. take the units' leases (no other worker migrates them meanwhile);
2. per unit read its dirty mark ``(dirty_since, version)`` and its watermark; the window is
   ``[min(dirty_since, watermark + 1µs, or 0 without a watermark), FAR_FUTURE)``;
3. read each window from the hot store. A unit whose window starts after its watermark, with no
   earlier append unaccounted for (below), has nothing in the archive to merge with: its readings
   are *appended*. For the others, read the window from the archive too and merge: the
   archive's rows plus the hot store's, the hot store winning on the same identity. The merge is
   what makes a window below the watermark safe to rewrite after the hot store dropped some of
   its days;
4. in one database transaction, renew the leases (units lost to another worker are left out) and
   record the units about to be appended in ``migration_pending``;
5. in ONE atomic archive commit for the batch, append the new readings and replace each merged
   unit's stretch of the archive from its first to its last changed reading with the merged rows
   of that stretch (units whose merge changes nothing are left out: a re-run commits nothing);
6. in one database transaction: raise each watermark to the newest reading now archived (never
   lowering it), clear each dirty mark only if its version is still the one read in step 2, and
   delete the batch's ``migration_pending`` rows.

Killed before 5 commits: nothing changed in the archive (pending units are merged next time,
which finds nothing to merge with and writes them). Killed after 5 but before 6 commits: the
marks and the pending rows are still there, the re-run merges the same rows again and commits
nothing new: the pending rows are what keeps a re-run from appending twice. An upload during the
batch bumps its unit's mark, so the mark survives step 6 and the next pass takes the upload.

A plain ``time > watermark`` copy would lose the readings units upload days late: their times
are below the watermark. The dirty mark (written by ingest *before* the readings reach the hot
store) records the oldest time of every upload, and the window starts there.

Dropping (``drop_verified``): a unit's day leaves the hot store only when it ends before the
watermark, before any dirty mark and before the retention horizon, and both tiers count the same
readings for it. The check and the drop run while the unit's dirty mark is locked in the
database (PostgreSQL row locks, SQLite's write lock), so no upload can slip readings into the
day between the check and the drop. A day where the hot store holds more than the archive gets
a dirty mark instead: the next pass migrates it again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.auth.principal import SYSTEM_PRINCIPAL
from solarfleet.db import utcnow, write_session
from solarfleet.fleet.models import Product
from solarfleet.migration import leases
from solarfleet.migration.models import MigrationPending, ProductMigrationHistory
from solarfleet.telemetry import dirty
from solarfleet.telemetry.archive import Archive, CommitStats
from solarfleet.telemetry.hot import HotStore
from solarfleet.telemetry.models import TelemetryDirty
from solarfleet.telemetry.points import US_PER_DAY, Point, day_of, from_us, to_us

log = logging.getLogger("solarfleet.migration")

# The end of every window: later than any real reading, and inside InfluxDB's range (ns, 2262).
FAR_FUTURE_US = to_us(datetime(2200, 1, 1))
Checkpoint = Callable[[str], None]


def _noop(_name: str) -> None:
    return None


def shard_of(imei: str, shards: int) -> int:
    """The shard of a unit: a stable hash of its IMEI (the same in every process and release)."""
    digest = hashlib.blake2b(imei.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


@dataclass(frozen=True, slots=True)
class UnitWindow:
    imei: str
    start_us: int
    mark: dirty.Mark | None
    watermark_us: int | None
    pending: bool = False  # an append of an earlier batch may or may not be in the archive

    @property
    def appendable(self) -> bool:
        """The archive holds nothing of the unit in the window: its readings can be appended
        without reading or rewriting anything. True when the window starts after the watermark
        (the usual case: new readings) and no earlier append is unaccounted for."""
        return not self.pending and (self.watermark_us is None or self.start_us > self.watermark_us)


@dataclass(slots=True)
class BatchReport:
    units: int = 0  # units migrated (leased and looked at)
    skipped: int = 0  # units leased by another worker
    points: int = 0  # readings read from the hot store
    written: int = 0  # units whose archive window was rewritten
    commit: CommitStats | None = None
    marks_cleared: int = 0
    lag_us: int | None = None  # now minus the oldest watermark of the batch
    seconds: float = 0.0


@dataclass(slots=True)
class DropReport:
    units: int = 0
    days_dropped: int = 0
    points_dropped: int = 0
    mismatched: dict[str, list[int]] = field(default_factory=dict)  # imei -> days


@dataclass(slots=True)
class PassReport:
    units: int = 0
    skipped: int = 0
    points: int = 0
    commits: list[CommitStats] = field(default_factory=list)
    drops: DropReport = field(default_factory=DropReport)
    lag_us: int | None = None
    seconds: float = 0.0

    @property
    def points_per_second(self) -> float:
        return self.points / self.seconds if self.seconds else 0.0

    def add(self, batch: BatchReport) -> None:
        self.units += batch.units
        self.skipped += batch.skipped
        self.points += batch.points
        if batch.commit is not None:
            self.commits.append(batch.commit)
        if batch.lag_us is not None:
            self.lag_us = max(self.lag_us or 0, batch.lag_us)


# -- which units ---------------------------------------------------------------------------------


def units_to_migrate(
    *, session: Session, shard: int = 0, shards: int = 1, sweep: bool = False
) -> list[str]:
    """The shard's units with a dirty mark (``sweep``: every unit of the shard), IMEI order."""
    if sweep:
        imeis: Iterable[str] = session.scalars(
            select(Product.product_imei).order_by(Product.product_imei)
        )
    else:
        imeis = dirty.dirty_units(session=session)
    return [imei for imei in imeis if shards == 1 or shard_of(imei, shards) == shard]


def units_with_history(*, session: Session, shard: int = 0, shards: int = 1) -> list[str]:
    imeis = session.scalars(
        select(ProductMigrationHistory.product_imei).order_by(ProductMigrationHistory.product_imei)
    )
    return [imei for imei in imeis if shards == 1 or shard_of(imei, shards) == shard]


def plan_windows(*, session: Session, imeis: Sequence[str]) -> list[UnitWindow]:
    """Each unit's window start, from its dirty mark and its watermark."""
    marks = {
        row.product_imei: (row.dirty_since_us, row.version)
        for row in session.execute(
            select(
                TelemetryDirty.product_imei, TelemetryDirty.dirty_since_us, TelemetryDirty.version
            ).where(TelemetryDirty.product_imei.in_(imeis))
        )
    }
    watermarks = {
        imei: to_us(moment)
        for imei, moment in session.execute(
            select(
                ProductMigrationHistory.product_imei,
                ProductMigrationHistory.latest_migration_timestamp,
            ).where(ProductMigrationHistory.product_imei.in_(imeis))
        )
    }
    pending = {
        imei: since_us
        for imei, since_us in session.execute(
            select(MigrationPending.product_imei, MigrationPending.since_us).where(
                MigrationPending.product_imei.in_(imeis)
            )
        )
    }
    plans = []
    for imei in imeis:
        mark = marks.get(imei)
        watermark = watermarks.get(imei)
        start = watermark + 1 if watermark is not None else 0
        if mark is not None:
            start = min(start, mark[0])
        if imei in pending:
            start = min(start, pending[imei])
        plans.append(UnitWindow(imei, start, mark, watermark, imei in pending))
    return plans


# -- one batch -----------------------------------------------------------------------------------


def _same(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)  # NaN equals NaN, -0.0 differs from 0.0
    return a == b


def _merge(archived: list[Point], hot: list[Point]) -> tuple[list[Point], tuple[int, int] | None]:
    """The archive's rows with the hot store's on top, and the narrowest time range
    ``[first, last]`` that holds every reading this changes in the archive (None: no change)."""
    rows = {p.key: p for p in archived}
    first = last = None
    for p in hot:
        old = rows.get(p.key)
        if old is None or not _same(old.value, p.value):
            first = p.time_us if first is None else min(first, p.time_us)
            last = p.time_us if last is None else max(last, p.time_us)
        rows[p.key] = p
    return list(rows.values()), None if first is None or last is None else (first, last)


def migrate_units(
    *,
    sessions: sessionmaker[Session],
    hot: HotStore,
    archive: Archive,
    imeis: Sequence[str],
    holder: str,
    lease_seconds: float = 900,
    only_dirty: bool = False,
    checkpoint: Checkpoint = _noop,
) -> BatchReport:
    """Migrate ``imeis`` (those whose lease we get) in one archive commit; see the module doc."""
    started = time.perf_counter()
    report = BatchReport()
    with write_session(sessions) as session:
        held = leases.acquire(session=session, imeis=imeis, holder=holder, seconds=lease_seconds)
        session.commit()
    report.units, report.skipped = len(held), len(imeis) - len(held)
    checkpoint("batch.leased")
    if not held:
        return report
    try:
        with sessions() as session:
            plans = plan_windows(session=session, imeis=held)
        if only_dirty:  # another worker may have done a unit since the list was made
            plans = [plan for plan in plans if plan.mark is not None]
            report.units = len(plans)
        hot_points = {
            plan.imei: hot.read(plan.imei, plan.start_us, FAR_FUTURE_US) for plan in plans
        }
        report.points = sum(len(points) for points in hot_points.values())
        checkpoint("batch.hot_read")
        merging = {p.imei: (p.start_us, FAR_FUTURE_US) for p in plans if not p.appendable}
        archived = archive.read_windows(merging)
        replace: dict[str, tuple[int, int, Sequence[Point]]] = {}
        append: dict[str, Sequence[Point]] = {}
        newest: dict[str, int] = {}
        for plan in plans:
            if plan.imei not in merging:
                if hot_points[plan.imei]:
                    append[plan.imei] = hot_points[plan.imei]
                    newest[plan.imei] = max(p.time_us for p in hot_points[plan.imei])
                continue
            merged, changed = _merge(archived[plan.imei], hot_points[plan.imei])
            if merged:
                newest[plan.imei] = max(p.time_us for p in merged)
            if changed:
                # Rewrite only the changed stretch: fewer archive files to copy.
                first, last = changed
                part = [p for p in merged if first <= p.time_us <= last]
                replace[plan.imei] = (first, last + 1, part)
        if replace or append:
            lost = _before_commit(
                sessions=sessions,
                plans=[plan for plan in plans if plan.imei in replace or plan.imei in append],
                appending=append.keys(),
                holder=holder,
                lease_seconds=lease_seconds,
            )
            checkpoint("batch.pending")
            if lost:  # another worker's units now: not written, not booked here
                plans = [plan for plan in plans if plan.imei not in lost]
                for units in (replace, append, newest):
                    for imei in lost & units.keys():
                        del units[imei]
            report.written = len(replace) + len(append)
            if replace or append:
                report.commit = archive.commit(
                    replace=replace, append=append, checkpoint=checkpoint
                )
        checkpoint("batch.archived")
        now = utcnow()
        with write_session(sessions) as session:
            mine = {plan.imei for plan in plans}
            _raise_watermarks(session=session, newest=newest, now=now)
            report.marks_cleared = dirty.clear_if_unchanged_many(
                session=session,
                versions={plan.imei: plan.mark[1] for plan in plans if plan.mark is not None},
            )
            session.execute(delete(MigrationPending).where(MigrationPending.product_imei.in_(mine)))
            checkpoint("batch.bookkeeping")
            session.commit()
        checkpoint("batch.committed")
        watermarks = [max(p.watermark_us or 0, newest.get(p.imei, 0)) for p in plans]
        report.lag_us = max(0, to_us(now) - min(watermarks)) if watermarks else None
    finally:
        with write_session(sessions) as session:
            leases.release(session=session, imeis=held, holder=holder)
            session.commit()
    report.seconds = time.perf_counter() - started
    return report


def _before_commit(
    *,
    sessions: sessionmaker[Session],
    plans: Sequence[UnitWindow],
    appending: Iterable[str],
    holder: str,
    lease_seconds: float,
) -> set[str]:
    """Just before the archive commit, in one transaction: renew the leases of the units about
    to be written (``plans``), and record those about to be appended to as pending. Returns the
    units whose lease went to another worker meanwhile (a batch slower than its lease): they
    are that worker's now, and writing them too could archive readings twice."""
    writing = [plan.imei for plan in plans]
    with write_session(sessions) as session:
        held = set(
            leases.still_held(session=session, imeis=writing, holder=holder, seconds=lease_seconds)
        )
        lost = set(writing) - held
        if lost:
            log.warning("leases lost before the archive commit, units left out: %s", sorted(lost))
        appended = set(appending) & held
        if appended:
            session.execute(
                delete(MigrationPending).where(MigrationPending.product_imei.in_(appended))
            )
            session.execute(
                insert(MigrationPending),
                [
                    {"product_imei": plan.imei, "since_us": plan.start_us}
                    for plan in plans
                    if plan.imei in appended
                ],
            )
        session.commit()
    return lost


def _raise_watermarks(*, session: Session, newest: Mapping[str, int], now: datetime) -> None:
    """Upsert the units' history rows in one statement; a watermark only ever moves forward."""
    if not newest:
        return
    table = ProductMigrationHistory.__table__
    postgres = session.get_bind().dialect.name == "postgresql"
    upsert = pg_insert if postgres else sqlite_insert
    stmt = upsert(table).values(
        [
            {
                "product_imei": imei,
                "latest_migration_timestamp": from_us(newest_us),
                "last_migrated_at": now,
                "created_at": now,
                "created_by": SYSTEM_PRINCIPAL.username,
            }
            for imei, newest_us in sorted(newest.items())
        ]
    )
    column = table.c.latest_migration_timestamp
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.product_imei],
        set_={
            "latest_migration_timestamp": case(
                (
                    column < stmt.excluded.latest_migration_timestamp,
                    stmt.excluded.latest_migration_timestamp,
                ),
                else_=column,
            ),
            "last_migrated_at": now,
            "modified_at": now,
            "modified_by": SYSTEM_PRINCIPAL.username,
        },
    )
    session.execute(stmt)


# -- a pass --------------------------------------------------------------------------------------


def migrate_pass(
    *,
    sessions: sessionmaker[Session],
    hot: HotStore,
    archive: Archive,
    holder: str,
    shard: int = 0,
    shards: int = 1,
    batch_size: int = 500,
    lease_seconds: float = 900,
    sweep: bool = False,
    retention_days: float = 0.0,
    checkpoint: Checkpoint = _noop,
    progress: Callable[[int, BatchReport], None] | None = None,
) -> PassReport:
    """Migrate every dirty unit of the shard, ``batch_size`` units per archive commit, then let
    the hot store drop what is verified and older than ``retention_days`` (0: drop nothing).
    ``progress(total_units, batch)`` is called after each batch."""
    started = time.perf_counter()
    report = PassReport()
    with sessions() as session:
        imeis = units_to_migrate(session=session, shard=shard, shards=shards, sweep=sweep)
    checkpoint("pass.start")
    for i in range(0, len(imeis), batch_size):
        batch = imeis[i : i + batch_size]
        result = migrate_units(
            sessions=sessions,
            hot=hot,
            archive=archive,
            imeis=batch,
            holder=holder,
            lease_seconds=lease_seconds,
            only_dirty=not sweep,
            checkpoint=checkpoint,
        )
        report.add(result)
        if retention_days > 0:
            drops = drop_verified(
                sessions=sessions,
                hot=hot,
                archive=archive,
                imeis=batch,
                holder=holder,
                retention_days=retention_days,
                lease_seconds=lease_seconds,
                checkpoint=checkpoint,
            )
            _add_drops(report.drops, drops)
        if progress is not None:
            progress(len(imeis), result)
    checkpoint("pass.done")
    report.seconds = time.perf_counter() - started
    return report


def _add_drops(total: DropReport, more: DropReport) -> None:
    total.units += more.units
    total.days_dropped += more.days_dropped
    total.points_dropped += more.points_dropped
    total.mismatched.update(more.mismatched)


# -- verification and dropping -------------------------------------------------------------------


def _lock_unit(session: Session, imei: str) -> None:
    """Hold off uploads to the unit until the transaction ends: an upload's dirty mark either
    updates the unit's mark row or inserts one (whose foreign key check needs a share lock on
    the product row). On SQLite the write lock taken at BEGIN does the same."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        select(Product.product_imei).where(Product.product_imei == imei).with_for_update()
    )
    session.execute(
        select(TelemetryDirty.product_imei)
        .where(TelemetryDirty.product_imei == imei)
        .with_for_update()
    )


def _ranges(days: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive day numbers as [start_us, end_us) ranges."""
    out: list[tuple[int, int]] = []
    for day in sorted(days):
        start, end = day * US_PER_DAY, (day + 1) * US_PER_DAY
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _archive_holds(hot: HotStore, archive: Archive, imei: str, day: int) -> bool:
    start, end = day * US_PER_DAY, (day + 1) * US_PER_DAY
    archived = {p.key: p.value for p in archive.read(imei, start, end)}
    return all(
        p.key in archived and _same(archived[p.key], p.value) for p in hot.read(imei, start, end)
    )


def verify_units(
    *, sessions: sessionmaker[Session], hot: HotStore, archive: Archive, imeis: Sequence[str]
) -> dict[str, dict[int, tuple[int, int]]]:
    """Per unit, the days (up to its watermark) where the hot store counts more readings than
    the archive: day -> (hot, archive). Fewer is normal after the hot store dropped a day and
    late readings for it arrived; days the hot store no longer holds are not compared."""
    with sessions() as session:
        plans = {p.imei: p for p in plan_windows(session=session, imeis=imeis)}
    limits = {
        imei: plan.watermark_us + 1 for imei, plan in plans.items() if plan.watermark_us is not None
    }
    archived = archive.counts_by_day_many({imei: (0, end) for imei, end in limits.items()})
    out: dict[str, dict[int, tuple[int, int]]] = {}
    for imei, end in limits.items():
        hot_counts = hot.counts_by_day(imei, 0, end)
        arch = archived.get(imei, {})
        bad = {day: (n, arch.get(day, 0)) for day, n in hot_counts.items() if arch.get(day, 0) < n}
        if bad:
            out[imei] = bad
    return out


def drop_verified(
    *,
    sessions: sessionmaker[Session],
    hot: HotStore,
    archive: Archive,
    imeis: Sequence[str],
    holder: str,
    retention_days: float,
    lease_seconds: float = 900,
    now_us: int | None = None,
    checkpoint: Checkpoint = _noop,
) -> DropReport:
    """Drop from the hot store the days of ``imeis`` that the archive verifiably holds (see the
    module doc). Never drops a day whose counts differ; re-marks it dirty when the hot store
    holds more."""
    report = DropReport()
    now_us = now_us if now_us is not None else to_us(utcnow())
    horizon = now_us - int(retention_days * US_PER_DAY)
    with write_session(sessions) as session:
        held = leases.acquire(session=session, imeis=imeis, holder=holder, seconds=lease_seconds)
        session.commit()
    try:
        with sessions() as session:
            plans = plan_windows(session=session, imeis=held)
        # A first look without locks, to skip units with nothing to drop.
        candidates = {}
        for plan in plans:
            if plan.watermark_us is None:
                continue
            limit = min(plan.watermark_us + 1, horizon)
            if plan.mark is not None:
                limit = min(limit, plan.mark[0])
            end = day_of(limit) * US_PER_DAY  # days wholly before the limit
            if end > 0:
                candidates[plan.imei] = end
        archived = archive.counts_by_day_many({i: (0, end) for i, end in candidates.items()})
        for imei, end in candidates.items():
            with write_session(sessions) as session:
                _lock_unit(session, imei)
                mark = dirty.read_mark(session=session, imei=imei)
                if mark is not None:
                    end = min(end, day_of(mark[0]) * US_PER_DAY)
                hot_counts = {d: n for d, n in hot.counts_by_day(imei, 0, end).items() if n}
                if not hot_counts:
                    continue
                arch = archived.get(imei, {})
                good = [d for d, n in hot_counts.items() if arch.get(d, 0) == n]
                # Fewer in the hot store: late readings for a day dropped before. Such a day
                # goes only if the archive holds each of its hot readings, value for value.
                fewer = [d for d, n in hot_counts.items() if 0 < n < arch.get(d, 0)]
                good += [d for d in fewer if _archive_holds(hot, archive, imei, d)]
                bad = sorted(set(hot_counts) - set(good))
                if bad:
                    report.mismatched[imei] = bad
                    if any(hot_counts[d] > arch.get(d, 0) for d in bad):
                        dirty.mark_dirty(session=session, imei=imei, oldest_us=bad[0] * US_PER_DAY)
                    log.warning("unit %s: tiers disagree on days %s; not dropped", imei, bad)
                checkpoint("drop.verified")
                for start, stop in _ranges(good):
                    report.points_dropped += hot.drop(imei, start, stop)
                report.days_dropped += len(good)
                report.units += 1 if good else 0
                session.commit()
            checkpoint("drop.done")
    finally:
        with write_session(sessions) as session:
            leases.release(session=session, imeis=held, holder=holder)
            session.commit()
    return report
