"""Reads through the API with the real archive: readings migrated to Iceberg and dropped from
the hot store read back exactly as uploaded, with later readings still in the hot store."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from solarfleet.db import utcnow
from solarfleet.migration.models import ProductMigrationHistory
from solarfleet.migration.service import migrate_pass
from solarfleet.telemetry.archive import Archive
from solarfleet.timeparse import format_instant
from tests.factories import Factory


def upload(client: TestClient, headers: dict[str, str], imei: str, pairs: list) -> None:
    body = {"measurement": "telemetry", "tags": {}, "fields": {"voltage": pairs}}
    r = client.post(f"/v1/products/{imei}/data", json=body, headers=headers)
    assert r.status_code == 200, r.text


def test_a_window_spanning_archive_and_hot_store_reads_whole(
    app: FastAPI, client: TestClient, factory: Factory
) -> None:
    unit = factory.product()
    admin = factory.headers("ADMIN")
    now = utcnow().replace(microsecond=0)
    old = [[format_instant(now - timedelta(days=40, minutes=i)), 12.0 + i] for i in range(5)]
    newer = [[format_instant(now - timedelta(days=35)), 15.5]]
    upload(client, admin, unit.product_imei, old + newer)

    archive = Archive.from_settings(app.state.settings)
    try:
        report = migrate_pass(
            sessions=app.state.sessions,
            hot=app.state.hot_store,
            archive=archive,
            holder="test",
            retention_days=30,
        )
    finally:
        archive.close()
    assert report.drops.days_dropped >= 1
    held_by_hot = app.state.hot_store.read(unit.product_imei, 0, 2**62)
    assert [p.value for p in held_by_hot] == [15.5]  # the older day is in the archive only

    recent = [[format_instant(now - timedelta(minutes=i)), 20.0 + i] for i in range(3)]
    upload(client, admin, unit.product_imei, recent)

    r = client.get(
        f"/v1/products/{unit.product_imei}/data",
        params={
            "start": format_instant(now - timedelta(days=41)),
            "end": format_instant(now + timedelta(minutes=1)),
            "fields": "voltage",
        },
        headers=admin,
    )
    assert r.status_code == 200, r.text
    got = r.json()["data"]["voltage"]
    expected = sorted(((v, t) for t, v in old + newer + recent), key=lambda vt: vt[1])
    assert [(v, t) for v, t in got] == [(float(v), t) for v, t in expected]
    with app.state.sessions() as session:
        history = session.scalars(select(ProductMigrationHistory)).one()
    assert history.created_by == "system.migration"
    assert history.latest_migration_timestamp == now - timedelta(days=35)
