"""Archive compaction (``solarfleet telemetry compact``) beside the migration's commits (issue 15
item 3): a commit landing while compaction runs makes compaction read and rewrite again, never
exit with a traceback, and no row is lost or doubled."""

from __future__ import annotations

import threading

from typer.testing import CliRunner

from solarfleet.cli import app
from solarfleet.settings import Settings
from solarfleet.telemetry.archive import Archive
from solarfleet.telemetry.points import Point
from tests.migration.conftest import DAY, MINUTE, T0

IMEI = "990000000000001"


def readings(start_us: int, count: int, imei: str = IMEI) -> list[Point]:
    return [
        Point(imei, "telemetry", (), "v", start_us + i * MINUTE, float(i)) for i in range(count)
    ]


def small_files(archive: Archive, commits: int = 4) -> list[Point]:
    """``commits`` appends to one partition (one unit, one day): one small file each."""
    written = []
    for n in range(commits):
        points = readings(T0 + n * 10 * MINUTE, 10)
        archive.commit(append={IMEI: points})
        written += points
    return written


def everything(archive: Archive, imeis: tuple[str, ...] = (IMEI,)) -> list[Point]:
    return sorted(
        (p for imei in imeis for p in archive.read(imei, 0, T0 + 10 * DAY)),
        key=lambda p: (p.imei, p.time_us),
    )


def test_compaction_merges_a_partition_and_keeps_its_rows(archive: Archive) -> None:
    written = small_files(archive)
    before = archive.file_count()
    report = archive.compact(min_files=4)
    assert (report.partitions_compacted, report.files_before, report.files_after) == (1, 4, 1)
    assert archive.file_count() == before - 3
    assert everything(archive) == written


def test_a_commit_during_compaction_is_waited_out(
    archive: Archive, archive_settings: Settings
) -> None:
    written = small_files(archive)
    other = Archive.from_settings(archive_settings)  # another process's migration
    late = readings(T0 + 40 * MINUTE, 5) + readings(T0, 3, "990000000000002")
    retries: list[tuple[int, str]] = []

    def commit_once(name: str) -> None:
        if name == "compact.planned" and not retries:
            other.commit(append={IMEI: late[:5], "990000000000002": late[5:]})

    try:
        report = archive.compact(
            min_files=4,
            checkpoint=commit_once,
            on_retry=lambda n, exc: retries.append((n, type(exc).__name__)),
        )
    finally:
        other.close()
    # pyiceberg retries the catalog's compare-and-set itself, then finds the files changed.
    assert retries in ([(1, "CommitFailedException")], [(1, "ValidationException")])
    assert report.partitions_compacted == 1
    assert everything(archive, (IMEI, "990000000000002")) == sorted(
        written + late, key=lambda p: (p.imei, p.time_us)
    )


def test_the_compact_command_beside_commits_exits_0(
    archive: Archive, archive_settings: Settings
) -> None:
    written = small_files(archive, 6)
    env = {
        "SOLARFLEET_DATABASE_URL": archive_settings.effective_database_url,
        "SOLARFLEET_DATA_DIR": str(archive_settings.data_dir),
        "SOLARFLEET_ARCHIVE_URL": archive_settings.archive_url or "",
        "SOLARFLEET_ARCHIVE_TABLE": archive_settings.archive_table,
        "SOLARFLEET_ARCHIVE_BUCKETS": str(archive_settings.archive_buckets),
    }
    stop = threading.Event()
    committed: list[Point] = []

    def migration() -> None:  # commits into the same partition while the command runs
        other = Archive.from_settings(archive_settings)
        try:
            n = 0
            while not stop.is_set() and n < 10:  # a batch every few tenths of a second
                points = readings(T0 + (100 + n) * MINUTE, 1)
                other.commit(append={IMEI: points})
                committed.extend(points)
                n += 1
                stop.wait(0.3)
        finally:
            other.close()

    worker = threading.Thread(target=migration)
    worker.start()
    try:
        result = CliRunner().invoke(app, ["telemetry", "compact"], env=env)
    finally:
        stop.set()
        worker.join()
    assert result.exit_code == 0, result.output
    assert "Compacted" in result.output
    assert everything(archive) == sorted(written + committed, key=lambda p: p.time_us)
