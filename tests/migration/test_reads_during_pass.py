"""Reads while the migration runs (issue 15 item 1): a pass that archives and drops days between
a read's two tier reads must not make those days vanish from the answer. Both hot stores, the
real archive, the real pass; the pass is run at the one moment that mattered (between the two
tier reads) and, in a second test, in a thread racing many reads."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from solarfleet.migration.service import migrate_pass
from solarfleet.telemetry.archive import Archive
from solarfleet.telemetry.points import Point
from solarfleet.telemetry.reads import read_points
from tests.migration.conftest import DAY, MINUTE, T0, Fleet

WINDOW = (T0 - DAY, T0 + 30 * DAY)


class PassBetweenReads:
    """The hot store and the archive reader of one read; after whichever tier is read first,
    a whole pass (archive commit, then the hot store drops the verified days) runs."""

    def __init__(self, fleet: Fleet, archive: Archive) -> None:
        self.fleet, self.archive = fleet, archive
        self.order: list[str] = []

    def _after(self, tier: str) -> None:
        self.order.append(tier)
        if len(self.order) == 1:
            report = pass_with_drops(self.fleet, self.archive)
            assert report.drops.days_dropped > 0  # the race really happened

    def hot_read(self, imei: str, start_us: int, end_us: int, **kw: object) -> list[Point]:
        points = self.fleet.hot.read(imei, start_us, end_us, **kw)  # type: ignore[arg-type]
        self._after("hot")
        return points

    def archive_read(
        self,
        imei: str,
        start_us: int,
        end_us: int,
        measurement: str | None,
        fields: Sequence[str] | None,
        **kw: int | None,
    ) -> list[Point]:
        points = self.archive.read(imei, start_us, end_us, measurement, fields, **kw)
        self._after("archive")
        return points


class HotView:
    def __init__(self, read: object) -> None:
        self.read = read


def pass_with_drops(fleet: Fleet, archive: Archive, batch_size: int = 500) -> object:
    return migrate_pass(
        sessions=fleet.sessions,
        hot=fleet.hot,
        archive=archive,
        holder="pass",
        batch_size=batch_size,
        retention_days=1,
    )


def test_a_pass_between_the_two_tier_reads_leaves_no_gap(fleet: Fleet, archive: Archive) -> None:
    imei = fleet.imeis[0]
    # Days 0-1 archived and dropped before; days 2-4 uploaded since (and late readings for
    # day 1, which the hot store holds beside the archive), old enough to be dropped.
    fleet.upload(imei, fleet.readings(imei, T0, 2 * 24 * 6, step=10 * MINUTE))
    assert pass_with_drops(fleet, archive).drops.days_dropped == 1  # day 0 (1 holds the newest)
    fleet.upload(imei, fleet.readings(imei, T0 + 2 * DAY, 3 * 24 * 6, step=10 * MINUTE))
    fleet.upload(imei, fleet.readings(imei, T0 + DAY + 5 * MINUTE, 3, value=2.0))
    race = PassBetweenReads(fleet, archive)
    got = read_points(HotView(race.hot_read), race.archive_read, imei, *WINDOW)  # type: ignore[arg-type]
    assert race.order[0] == "hot"
    assert got == fleet.expected(imei)
    # At rest, afterwards, the same.
    assert read_points(fleet.hot, archive.read, imei, *WINDOW) == fleet.expected(imei)  # type: ignore[arg-type]


def test_reads_racing_passes_and_drops_always_see_every_reading(
    fleet: Fleet, archive: Archive
) -> None:
    """The issue's reproduction, smaller: passes of one unit per batch run in a thread while
    reads repeat; every answer holds every reading uploaded before the read began."""
    for n, imei in enumerate(fleet.imeis):
        fleet.upload(imei, fleet.readings(imei, T0 + n * DAY, 24 * 12, step=5 * MINUTE))
    imei = fleet.imeis[-1]
    expected = fleet.expected(imei)
    stop = threading.Event()
    errors: list[BaseException] = []

    def passes() -> None:
        try:
            for r in range(4):
                for other in fleet.imeis:  # new readings, so that every pass has work
                    fleet.upload(
                        other, fleet.readings(other, T0 + (5 + r) * DAY, 24, step=60 * MINUTE)
                    )
                pass_with_drops(fleet, archive, batch_size=1)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            stop.set()

    worker = threading.Thread(target=passes)
    worker.start()
    answers = []
    while not stop.is_set():
        got = read_points(fleet.hot, archive.read, imei, T0, T0 + 5 * DAY)  # type: ignore[arg-type]
        answers.append(len(got))
        assert got == expected
    worker.join()
    assert not errors, errors
    assert len(answers) >= 2, answers
    assert read_points(fleet.hot, archive.read, imei, T0, T0 + 5 * DAY) == expected  # type: ignore[arg-type]
