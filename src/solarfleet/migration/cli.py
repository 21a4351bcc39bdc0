"""``solarfleet telemetry migrate|verify|compact`` and ``solarfleet worker``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from solarfleet.settings import Settings

if TYPE_CHECKING:
    from solarfleet.migration.service import BatchReport, PassReport

telemetry_app = typer.Typer(help="Telemetry: its migration into the long-term archive.")
console = Console()


def register(app: typer.Typer) -> None:
    """Add ``telemetry`` and ``worker`` to the ``solarfleet`` command."""
    app.add_typer(telemetry_app, name="telemetry")
    app.command("worker")(worker)


def _open(settings: Settings):  # type: ignore[no-untyped-def]
    from solarfleet.db import make_sessionmaker
    from solarfleet.schema import engine_for as _engine
    from solarfleet.schema import upgrade_for as _upgrade
    from solarfleet.telemetry.archive import Archive
    from solarfleet.telemetry.store import make_hot_store

    if settings.is_sqlite:
        _upgrade(settings)
    return (
        make_sessionmaker(_engine(settings)),
        make_hot_store(settings),
        Archive.from_settings(settings),
    )


def _lag(us: int | None) -> str:
    if us is None:
        return "-"
    seconds = us / 1e6
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _one_pass(settings: Settings, shard: int, shards: int, sweep: bool) -> PassReport:
    from solarfleet.migration.leases import default_holder
    from solarfleet.migration.service import migrate_pass

    sessions, hot, archive = _open(settings)
    started = time.perf_counter()
    columns = (
        TextColumn("[bold]migrating[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("units · {task.fields[points]:,} points · {task.fields[rate]:,.0f}/s"),
        TextColumn("· lag {task.fields[lag]}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("migrate", total=None, points=0, rate=0.0, lag="-")
            totals = {"points": 0, "lag": None}

            def advance(total: int, batch: BatchReport) -> None:
                totals["points"] = int(totals["points"] or 0) + batch.points
                if batch.lag_us is not None:
                    totals["lag"] = max(int(totals["lag"] or 0), batch.lag_us)
                elapsed = time.perf_counter() - started
                progress.update(
                    task,
                    total=total,
                    advance=batch.units + batch.skipped,
                    points=totals["points"],
                    rate=int(totals["points"] or 0) / elapsed if elapsed else 0.0,
                    lag=_lag(totals["lag"]),  # type: ignore[arg-type]
                )

            report = migrate_pass(
                sessions=sessions,
                hot=hot,
                archive=archive,
                holder=default_holder(),
                shard=shard,
                shards=shards,
                sweep=sweep,
                batch_size=settings.migration_batch_size,
                lease_seconds=settings.migration_lease_seconds,
                retention_days=settings.hot_retention_days,
                progress=advance,
            )
            if report.units + report.skipped == 0:
                progress.update(task, total=0)
    finally:
        hot.close()
        archive.close()
    rows = sum(c.rows_added for c in report.commits)
    files = sum(c.files_added for c in report.commits)
    console.print(
        f"[green]Migrated[/green] {report.units} units, {report.points:,} points in "
        f"{report.seconds:.1f}s ({report.points_per_second:,.0f} points/s); "
        f"{len(report.commits)} archive commits ({rows:,} rows, {files} files written); "
        f"{report.skipped} units left to other workers; "
        f"{report.drops.days_dropped} unit-days dropped from the hot store"
    )
    for imei, days in report.drops.mismatched.items():
        console.print(f"[yellow]Unit {imei}: tiers disagree on {len(days)} day(s); kept[/]")
    return report


BROKER_TIMEOUT = 3.0  # seconds; a broker slower than this to answer counts as down


def _enqueue(settings: Settings, shards: int) -> bool:
    """Hand the pass to Celery workers; False when the broker cannot be reached."""
    from solarfleet.migration.tasks import app, migrate_all

    # This process only publishes: every socket wait is bounded, so that a broker that accepts
    # connections and never answers (frozen, overloaded) means "run it here", not a hang.
    waits = {"socket_timeout": BROKER_TIMEOUT, "socket_connect_timeout": BROKER_TIMEOUT}
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, **waits}
    app.conf.redis_socket_timeout = BROKER_TIMEOUT  # the result backend (the same Redis)
    app.conf.redis_socket_connect_timeout = BROKER_TIMEOUT
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT)
        # A publish that fails after all may still have queued the pass: running it here too
        # is harmless (the lease table gives each unit to one pass; a pass is idempotent).
        migrate_all.apply_async(args=[shards], retry=False)
    except Exception as exc:  # noqa: BLE001 - any broker failure means "run it here"
        console.print(f"[yellow]Broker unreachable ({exc}); migrating in this process[/]")
        return False
    console.print(f"[green]Queued[/green] {shards} shard tasks on {settings.migration_queue}")
    return True


@telemetry_app.command("migrate")
def migrate(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit")] = False,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between passes (default from settings)")
    ] = None,
    shard: Annotated[int, typer.Option(help="Only this shard (with --shards)")] = 0,
    shards: Annotated[int, typer.Option(help="Split the fleet into this many shards")] = 1,
    sweep: Annotated[
        bool, typer.Option(help="Every unit of the shard, not only those with new uploads")
    ] = False,
    celery: Annotated[
        bool, typer.Option(help="Queue the pass for Celery workers (in-process if no broker)")
    ] = False,
) -> None:
    """Copy telemetry from the hot store into the archive (a progress bar per pass)."""
    settings = Settings()
    if celery and _enqueue(settings, settings.migration_shards):
        return
    while True:
        _one_pass(settings, shard, shards, sweep)
        if once:
            return
        pause = interval if interval is not None else settings.migration_interval_seconds
        console.print(f"Next pass in {pause:.0f}s (Ctrl-C stops)")
        time.sleep(pause)


@telemetry_app.command("verify")
def verify(
    drop: Annotated[
        bool, typer.Option(help="Also drop verified days older than the hot retention")
    ] = False,
) -> None:
    """Compare per-unit, per-day counts of the two tiers; re-mark days the archive lacks."""
    from solarfleet.migration.leases import default_holder
    from solarfleet.migration.service import drop_verified, units_with_history, verify_units
    from solarfleet.telemetry import dirty
    from solarfleet.telemetry.points import US_PER_DAY

    settings = Settings()
    sessions, hot, archive = _open(settings)
    try:
        with sessions() as session:
            imeis = units_with_history(session=session)
        bad = verify_units(sessions=sessions, hot=hot, archive=archive, imeis=imeis)
        with sessions() as session:
            for imei, days in bad.items():
                dirty.mark_dirty(session=session, imei=imei, oldest_us=min(days) * US_PER_DAY)
                console.print(
                    f"[yellow]{imei}[/]: the archive lacks readings on {len(days)} day(s)"
                )
            session.commit()
        console.print(f"Verified {len(imeis)} units: {len(bad)} marked for migration again")
        if drop and settings.hot_retention_days > 0:
            report = drop_verified(
                sessions=sessions,
                hot=hot,
                archive=archive,
                imeis=imeis,
                holder=default_holder(),
                retention_days=settings.hot_retention_days,
            )
            console.print(
                f"Dropped {report.days_dropped} unit-days ({report.points_dropped:,} readings) "
                "from the hot store"
            )
    finally:
        hot.close()
        archive.close()
    if bad:
        raise typer.Exit(1)


@telemetry_app.command("upgrade-influx")
def upgrade_influx() -> None:
    """Move InfluxDB readings of the former layout (one measurement for all units, plain field
    keys) into the current one (see solarfleet/telemetry/influx.py)."""
    from solarfleet.telemetry.store import influx_store

    settings = Settings()
    if not settings.influx_url:
        console.print("SOLARFLEET_INFLUX_URL is not set: the embedded store needs no upgrade")
        return
    store = influx_store(settings)
    try:
        moved = store.upgrade_layout()
    finally:
        store.close()
    console.print(f"Moved {moved} readings into the current InfluxDB layout")


@telemetry_app.command("compact")
def compact(
    min_files: Annotated[int, typer.Option(help="Compact partitions with this many files")] = 4,
    expire_days: Annotated[
        float, typer.Option(help="Expire snapshots (and unreferenced files) older than this")
    ] = 1.0,
) -> None:
    """Archive upkeep: merge small files, expire old snapshots, delete unreferenced files."""
    from datetime import timedelta

    from solarfleet.telemetry.archive import Archive

    def busy(attempt: int, _error: Exception) -> None:
        console.print(
            f"[yellow]The archive changed while compacting (a migration commit); "
            f"compacting again (attempt {attempt + 1})[/]"
        )

    from pyiceberg.exceptions import CommitFailedException, ValidationException

    settings = Settings()
    archive = Archive.from_settings(settings)
    try:
        merged = archive.compact(min_files=min_files, on_retry=busy)
        expired = archive.expire(older_than=timedelta(days=expire_days))
    except (CommitFailedException, ValidationException):
        console.print(
            "[red]The archive kept changing under the compaction (migration commits); "
            "nothing was changed: run it again when the migration is quieter[/]"
        )
        raise typer.Exit(1) from None
    finally:
        archive.close()
    console.print(
        f"Compacted {merged.partitions_compacted} partitions ({merged.files_before} files into "
        f"{merged.files_after}); expired {expired.snapshots_expired} snapshots, deleted "
        f"{len(expired.files_removed)} unreferenced files"
    )


def worker(
    concurrency: Annotated[int, typer.Option(help="Worker processes")] = 2,
    beat: Annotated[bool, typer.Option(help="Also schedule a pass every interval")] = False,
    loglevel: Annotated[str, typer.Option(help="Celery log level")] = "info",
) -> None:
    """A Celery worker for the migration tasks (Redis broker: SOLARFLEET_BROKER_URL)."""
    from solarfleet.migration.tasks import app

    settings = Settings()
    argv = [
        "worker",
        f"--loglevel={loglevel}",
        f"--concurrency={concurrency}",
        f"--queues={settings.migration_queue}",
    ]
    if beat:
        argv.append("--beat")
    app.worker_main(argv)
