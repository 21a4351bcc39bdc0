"""The migration pass in-process: copying, late readings, the watermark, idempotence, dropping,
and the bookkeeping the API shows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.db import utcnow, write_session
from solarfleet.migration import leases
from solarfleet.migration.models import MigrationPending, ProductMigrationHistory
from solarfleet.migration.service import (
    FAR_FUTURE_US,
    drop_verified,
    migrate_pass,
    shard_of,
    verify_units,
)
from solarfleet.telemetry import dirty
from solarfleet.telemetry.archive import Archive
from solarfleet.telemetry.points import Point, to_us
from tests.migration.conftest import DAY, MINUTE, T0, Fleet


def run(fleet: Fleet, archive: Archive, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("holder", "test-worker")
    return migrate_pass(sessions=fleet.sessions, hot=fleet.hot, archive=archive, **kw)  # type: ignore[arg-type]


def watermarks(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        rows = session.execute(
            select(
                ProductMigrationHistory.product_imei,
                ProductMigrationHistory.latest_migration_timestamp,
            )
        )
        return {imei: to_us(moment) for imei, moment in rows}


def assert_archive_is_complete(fleet: Fleet, archive: Archive) -> None:
    for imei in fleet.imeis:
        assert archive.read(imei, -DAY, FAR_FUTURE_US) == fleet.expected(imei), imei


def test_a_pass_copies_every_unit_in_one_commit(fleet: Fleet, archive: Archive) -> None:
    kinds = [1.5, 7, True, "on", -0.0, 1e300, 2**62]
    for n, imei in enumerate(fleet.imeis):
        fleet.upload(imei, fleet.readings(imei, T0, 50 + n))
        fleet.upload(
            imei,
            [Point(imei, "status", (), f"k{i}", T0 + i, value) for i, value in enumerate(kinds)],
        )
    report = run(fleet, archive)
    assert report.units == 4 and report.points == sum(57 + n for n in range(4))
    assert len(report.commits) == 1 and report.commits[0].rows_added == report.points
    assert_archive_is_complete(fleet, archive)
    got = archive.read(fleet.imeis[0], T0, T0 + 10, "status")
    assert [(type(p.value), repr(p.value)) for p in got] == [(type(v), repr(v)) for v in kinds]
    expected = {imei: T0 + (49 + n) * MINUTE for n, imei in enumerate(fleet.imeis)}
    assert watermarks(fleet.sessions) == expected
    with fleet.sessions() as session:
        assert dirty.dirty_units(session=session) == []


def test_running_again_commits_nothing_and_changes_nothing(fleet: Fleet, archive: Archive) -> None:
    imei = fleet.imeis[0]
    fleet.upload(imei, fleet.readings(imei, T0, 30))
    run(fleet, archive)
    snapshot = archive.table.current_snapshot()
    fleet.upload(imei, fleet.readings(imei, T0, 30))  # the same readings sent again
    report = run(fleet, archive)
    assert report.units == 1 and report.commits == []
    assert archive.table.current_snapshot() == snapshot
    assert_archive_is_complete(fleet, archive)
    assert run(fleet, archive).units == 0  # no mark left


def test_late_readings_below_the_watermark_are_migrated_by_the_next_pass(
    fleet: Fleet, archive: Archive
) -> None:
    imei, other = fleet.imeis[:2]
    fleet.upload(imei, fleet.readings(imei, T0 + 3 * DAY, 60))
    fleet.upload(other, fleet.readings(other, T0 + 3 * DAY, 60))
    run(fleet, archive)
    before = watermarks(fleet.sessions)
    # Buffered for days: older than the watermark, plus one overwrite of an archived reading.
    late = fleet.readings(imei, T0, 120, value=2.0) + fleet.readings(
        imei, T0 + 3 * DAY, 1, value=9.0
    )
    fleet.upload(imei, late)
    # A plain "time > watermark" copy would find nothing new:
    assert fleet.hot.read(imei, before[imei] + 1, FAR_FUTURE_US) == []
    report = run(fleet, archive)
    assert report.units == 1
    assert_archive_is_complete(fleet, archive)
    assert watermarks(fleet.sessions) == before  # not moved backwards by older readings
    assert archive.read(imei, T0 + 3 * DAY, T0 + 3 * DAY + 1)[0].value == 9.0


def test_the_watermark_never_moves_backwards(fleet: Fleet, archive: Archive) -> None:
    imei = fleet.imeis[0]
    fleet.upload(imei, fleet.readings(imei, T0 + 10 * DAY, 5))
    run(fleet, archive)
    high = watermarks(fleet.sessions)[imei]
    fleet.upload(imei, fleet.readings(imei, T0, 5))
    run(fleet, archive)
    assert watermarks(fleet.sessions)[imei] == high
    fleet.upload(imei, fleet.readings(imei, T0 + 11 * DAY, 1))
    run(fleet, archive)
    assert watermarks(fleet.sessions)[imei] == T0 + 11 * DAY


def test_an_upload_during_the_pass_keeps_its_mark(fleet: Fleet, archive: Archive) -> None:
    imei = fleet.imeis[0]
    fleet.upload(imei, fleet.readings(imei, T0, 10))

    def upload_midway(name: str) -> None:
        if name == "batch.archived":
            fleet.upload(imei, fleet.readings(imei, T0 - DAY, 3, value=5.0))

    run(fleet, archive, checkpoint=upload_midway)
    with fleet.sessions() as session:
        assert dirty.read_mark(session=session, imei=imei) is not None
    run(fleet, archive)
    assert_archive_is_complete(fleet, archive)


def test_drop_only_verified_days_older_than_retention(fleet: Fleet, archive: Archive) -> None:
    imei = fleet.imeis[0]
    now = T0 + 40 * DAY
    fleet.upload(imei, fleet.readings(imei, T0, 2000, step=5 * MINUTE))  # ~7 days
    fleet.upload(imei, fleet.readings(imei, now - 3600_000_000, 10))
    run(fleet, archive)
    report = drop_verified(
        sessions=fleet.sessions,
        hot=fleet.hot,
        archive=archive,
        imeis=[imei],
        holder="t",
        retention_days=30,
        now_us=now,
    )
    assert report.days_dropped == 7 and report.points_dropped == 2000
    assert fleet.hot.read(imei, T0, now - DAY) == []
    assert len(fleet.hot.read(imei, now - DAY, FAR_FUTURE_US)) == 10
    # A late reading for a dropped day: the archive keeps the day's other readings.
    fleet.upload(imei, [Point(imei, "telemetry", (("site", "a"),), "v", T0 + 7, 3.0)])
    run(fleet, archive)
    assert_archive_is_complete(fleet, archive)
    assert verify_units(sessions=fleet.sessions, hot=fleet.hot, archive=archive, imeis=[imei]) == {}


def test_drop_refuses_unverified_days_and_marks_them_again(fleet: Fleet, archive: Archive) -> None:
    imei = fleet.imeis[0]
    fleet.upload(imei, fleet.readings(imei, T0, 20) + fleet.readings(imei, T0 + 2 * DAY, 1))
    run(fleet, archive)
    # A reading the hot store took without a mark (as if the mark raced the write).
    extra = Point(imei, "telemetry", (("site", "a"),), "v", T0 + 1, 4.0)
    fleet.hot.write([extra])
    fleet.written[extra.key] = extra
    assert verify_units(sessions=fleet.sessions, hot=fleet.hot, archive=archive, imeis=[imei])
    report = drop_verified(
        sessions=fleet.sessions,
        hot=fleet.hot,
        archive=archive,
        imeis=[imei],
        holder="t",
        retention_days=1,
        now_us=T0 + 10 * DAY,
    )
    assert report.days_dropped == 0 and report.mismatched == {imei: [T0 // DAY]}
    assert len(fleet.hot.read(imei, T0, T0 + DAY)) == 21  # nothing dropped
    run(fleet, archive)  # the new mark brings the reading over
    assert_archive_is_complete(fleet, archive)
    report = drop_verified(
        sessions=fleet.sessions,
        hot=fleet.hot,
        archive=archive,
        imeis=[imei],
        holder="t",
        retention_days=1,
        now_us=T0 + 10 * DAY,
    )
    assert report.days_dropped == 1  # day 0 only: day 2 holds the watermark


def test_shards_split_the_fleet(fleet: Fleet, archive: Archive) -> None:
    for imei in fleet.imeis:
        fleet.upload(imei, fleet.readings(imei, T0, 3))
    done = [run(fleet, archive, shard=s, shards=3).units for s in range(3)]
    assert sum(done) == 4
    assert done == [sum(shard_of(i, 3) == s for i in fleet.imeis) for s in range(3)]
    assert_archive_is_complete(fleet, archive)


def test_history_rows_belong_to_the_system_user_and_are_readable(
    fleet: Fleet, archive: Archive, client: TestClient, system: dict[str, str]
) -> None:
    imei = fleet.imeis[0]
    fleet.upload(imei, fleet.readings(imei, T0, 3))
    run(fleet, archive)
    body = client.get("/v1/product_migration_history", headers=system).json()
    assert body["num_results"] == 1 and body["page"] == 1 and body["total_pages"] == 1
    row = body["objects"][0]
    assert row["product_imei"] == imei
    assert row["latest_migration_timestamp"] == "2026-01-01T00:02:00.000000"
    assert row["created_by"] == "system.migration" and row["modified_by"] is None
    one = client.get(
        f"/v1/product_migration_history/{row['product_migration_history_id']}", headers=system
    )
    assert one.status_code == 200 and one.json()["last_migrated_at"] == row["last_migrated_at"]
    fleet.upload(imei, fleet.readings(imei, T0 + DAY, 1))
    run(fleet, archive)
    row = client.get("/v1/product_migration_history", headers=system).json()["objects"][0]
    assert row["modified_by"] == "system.migration"
    assert row["latest_migration_timestamp"] == "2026-01-02T00:00:00.000000"
    assert client.post("/v1/product_migration_history", json={}, headers=system).status_code == 405


def pending(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        rows = session.execute(select(MigrationPending.product_imei, MigrationPending.since_us))
        return {imei: since for imei, since in rows}


def test_new_readings_are_appended_and_late_ones_merged(fleet: Fleet, archive: Archive) -> None:
    first, second = fleet.imeis[:2]
    for imei in (first, second):
        fleet.upload(imei, fleet.readings(imei, T0, 10))
    run(fleet, archive)
    fleet.upload(first, fleet.readings(first, T0 + DAY, 10))  # after the watermark: appended
    report = run(fleet, archive)
    stats = report.commits[0]
    assert (stats.rows_added, stats.rows_deleted, stats.files_deleted) == (10, 0, 0)
    assert archive.table.current_snapshot().summary.operation.value == "append"
    assert pending(fleet.sessions) == {}
    # One late reading of `second` (merged: its window is rewritten) with new ones of `first`.
    fleet.upload(second, fleet.readings(second, T0 + 5 * MINUTE, 1, value=3.0))
    fleet.upload(first, fleet.readings(first, T0 + 2 * DAY, 10))
    report = run(fleet, archive)
    stats = report.commits[0]
    # The rewrite copies the rest of the rewritten file: only the net count is exact.
    assert (stats.units, stats.rows_added - stats.rows_deleted) == (2, 10)
    assert stats.rows_deleted >= 1
    assert_archive_is_complete(fleet, archive)
    assert pending(fleet.sessions) == {}


def test_an_append_interrupted_after_the_archive_commit_is_merged_not_repeated(
    fleet: Fleet, archive: Archive
) -> None:
    imei = fleet.imeis[0]
    fleet.upload(imei, fleet.readings(imei, T0, 10))

    def fail_after_commit(name: str) -> None:
        if name == "archive.committed":
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        run(fleet, archive, checkpoint=fail_after_commit)
    assert pending(fleet.sessions) == {imei: 0}  # window start: no watermark yet
    assert watermarks(fleet.sessions) == {}
    report = run(fleet, archive)
    assert report.units == 1 and report.commits == []  # merged: the archive has them already
    assert_archive_is_complete(fleet, archive)
    assert pending(fleet.sessions) == {} and watermarks(fleet.sessions) == {imei: T0 + 9 * MINUTE}


def test_a_unit_whose_lease_is_lost_before_the_commit_is_left_out(
    fleet: Fleet, archive: Archive
) -> None:
    lost, kept = fleet.imeis[:2]
    for imei in (lost, kept):
        fleet.upload(imei, fleet.readings(imei, T0, 5))

    def steal(name: str) -> None:  # the batch outlived its lease; another worker took the unit
        if name == "batch.hot_read":
            later = utcnow() + timedelta(hours=1)
            with write_session(fleet.sessions) as session:
                got = leases.acquire(
                    session=session, imeis=[lost], holder="other", seconds=60, now=later
                )
                assert got == [lost]
                session.commit()

    report = run(fleet, archive, checkpoint=steal, lease_seconds=1)
    assert report.commits[0].units == 1
    assert archive.read(lost, -DAY, FAR_FUTURE_US) == []
    assert archive.read(kept, -DAY, FAR_FUTURE_US) == fleet.expected(kept)
    assert sorted(watermarks(fleet.sessions)) == [kept]
    with fleet.sessions() as session:
        assert dirty.dirty_units(session=session) == [lost]
