"""Crash safety: a migration process SIGKILLed at every named point of a pass (and at random
moments), with new, late and overwritten readings arriving between the runs, leaves an archive
that a final run completes to exactly every reading ever uploaded: none lost, none twice."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from solarfleet.migration.models import ProductMigrationHistory
from solarfleet.migration.service import FAR_FUTURE_US
from solarfleet.settings import Settings
from solarfleet.telemetry import dirty
from solarfleet.telemetry.archive import Archive
from solarfleet.telemetry.points import Point, to_us
from tests.migration.conftest import DAY, MINUTE, T0, Fleet, HotSpec

ROOT = Path(__file__).resolve().parents[2]

# Every checkpoint of a pass, in order; "#2" is the second batch's.
POINTS = [
    "pass.start",
    "batch.leased",
    "batch.hot_read",
    "batch.pending",  # leases renewed, appends recorded as pending, archive not yet written
    "archive.files_written",  # data files written, catalog not yet updated
    "archive.committed",  # archive committed, watermark and marks not yet
    "batch.bookkeeping",  # inside the bookkeeping transaction, before COMMIT
    "batch.committed",
    "drop.verified",  # inside the drop transaction, before the hot store drops
    "batch.pending#2",
    "archive.files_written#2",
    "archive.committed#2",
    "batch.bookkeeping#2",
    "drop.verified#2",
    "pass.done",
]


class Runner:
    def __init__(self, settings: Settings, spec: HotSpec, data_dir: Path) -> None:
        self.env = {
            **os.environ,
            **spec.env(data_dir),
            "SOLARFLEET_DATABASE_URL": settings.effective_database_url,
            "SOLARFLEET_ARCHIVE_URL": settings.archive_url or "",
            "SOLARFLEET_ARCHIVE_TABLE": settings.archive_table,
            "SOLARFLEET_ARCHIVE_BUCKETS": str(settings.archive_buckets),
            "SOLARFLEET_MIGRATION_BATCH_SIZE": "2",
            "SOLARFLEET_HOT_RETENTION_DAYS": "1",
            # This checkout's code, also where another one is installed in the environment.
            "PYTHONPATH": os.pathsep.join((str(ROOT / "src"), str(ROOT))),
        }

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.migration.run_pass"],
            env=self.env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the pass server died"
        return line.strip()

    def _start(self, pause_at: str) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(pause_at + "\n")
        self.proc.stdin.flush()
        while not (line := self._line()).startswith("PID "):
            pass
        return int(line.split()[1])

    def _until_exit(self) -> list[str]:
        lines = []
        while not (line := self._line()).startswith("EXIT "):
            lines.append(line)
        assert line == "EXIT 0" or line == f"EXIT {signal.SIGKILL}", lines[-5:]
        return lines

    def kill_at(self, point: str) -> bool:
        """Run until ``point``, then SIGKILL; False if the pass ended without reaching it."""
        pid = self._start(point)
        while True:
            line = self._line()
            if line.startswith("PAUSED"):
                os.kill(pid, signal.SIGKILL)
                self._until_exit()
                return True
            if line.startswith("EXIT"):
                assert line == "EXIT 0"
                return False

    def kill_after(self, seconds: float) -> None:
        pid = self._start("")
        time.sleep(seconds)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self._until_exit()

    def complete(self) -> str:
        self._start("")
        return "\n".join(self._until_exit())


def round_of_uploads(fleet: Fleet, r: int, rng: random.Random) -> None:
    """New readings for day r, late readings for days already migrated (some maybe dropped
    from the hot store), and new values for readings already archived."""
    for imei in fleet.imeis:
        points = fleet.readings(imei, T0 + r * DAY + rng.randrange(60) * MINUTE, 30)
        if r >= 2:
            late_day = T0 + rng.randrange(r - 1) * DAY
            points += fleet.readings(imei, late_day + 7 + r, 5, step=MINUTE + r)
            old = rng.choice([p for p in fleet.written.values() if p.imei == imei])
            points.append(
                Point(old.imei, old.measurement, old.tags, old.field, old.time_us, r * 10.0)
            )
        fleet.upload(imei, points)


def archive_rows(archive: Archive, imei: str) -> list[Point]:
    return archive.read(imei, -DAY, FAR_FUTURE_US)


def watermarks(fleet: Fleet) -> dict[str, int]:
    with fleet.sessions() as session:
        rows = session.execute(
            select(
                ProductMigrationHistory.product_imei,
                ProductMigrationHistory.latest_migration_timestamp,
            )
        )
        return {imei: to_us(moment) for imei, moment in rows}


def check_invariants(fleet: Fleet, archive: Archive, previous: dict[str, int]) -> dict[str, int]:
    archived = archive.read_windows({imei: (-DAY, FAR_FUTURE_US) for imei in fleet.imeis})
    for rows in archived.values():
        keys = Counter(p.key for p in rows)
        assert not [k for k, n in keys.items() if n > 1], "a reading archived twice"
        assert {p.key for p in rows} <= set(fleet.written), "a reading nobody uploaded"
    now = watermarks(fleet)
    for imei, mark in previous.items():
        assert now[imei] >= mark, "a watermark moved backwards"
    return now


def test_killed_at_any_point_loses_nothing_and_duplicates_nothing(
    fleet: Fleet,
    archive: Archive,
    archive_settings: Settings,
    hot_spec: HotSpec,
    tmp_path: Path,
) -> None:
    runner = Runner(archive_settings, hot_spec, tmp_path)
    try:
        _crash_rounds(runner, fleet, archive)
    finally:
        runner.close()


def _crash_rounds(runner: Runner, fleet: Fleet, archive: Archive) -> None:
    rng = random.Random(7)
    marks: dict[str, int] = {}
    reached = []
    for r, point in enumerate(POINTS):
        round_of_uploads(fleet, r, rng)
        if runner.kill_at(point):
            reached.append(point)
        marks = check_invariants(fleet, archive, marks)
    for r in range(len(POINTS), len(POINTS) + 3):  # killed wherever it happens to be
        round_of_uploads(fleet, r, rng)
        runner.kill_after(rng.uniform(0.05, 0.6))
        marks = check_invariants(fleet, archive, marks)
    assert set(reached) == set(POINTS)
    assert "DONE units=4" in runner.complete()
    marks = check_invariants(fleet, archive, marks)
    for imei in fleet.imeis:
        assert archive_rows(archive, imei) == fleet.expected(imei)
        assert marks[imei] == max(p.time_us for p in fleet.expected(imei))
        # The hot store dropped old days, and only what the archive holds.
        hot = fleet.hot.read(imei, -DAY, FAR_FUTURE_US)
        assert 0 < len(hot) < len(fleet.expected(imei))
        assert set(hot) <= set(archive_rows(archive, imei))
    with fleet.sessions() as session:
        assert dirty.dirty_units(session=session) == []
