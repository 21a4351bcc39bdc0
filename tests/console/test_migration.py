"""The migration screen counts what the API answers (product_migration_history and
/v1/migration/backlog), and the backlog endpoint itself: its counts, its scope."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient

from solarfleet.db import utcnow
from solarfleet.fleet.models import Product
from solarfleet.migration.models import ProductMigrationHistory
from solarfleet.telemetry.models import TelemetryDirty
from solarfleet.telemetry.points import to_us
from tests.console.conftest import Shoot, sign_in
from tests.factories import Factory

LAGS = [timedelta(minutes=3), timedelta(hours=2), timedelta(hours=3), timedelta(days=2),
        timedelta(days=40), timedelta(days=9)]  # fmt: skip


def _migrated(factory: Factory, unit: Product, lag: timedelta) -> None:
    now = utcnow()
    factory._add(
        ProductMigrationHistory(
            product_imei=unit.product_imei,
            latest_migration_timestamp=now - lag,
            last_migrated_at=now - timedelta(minutes=1),
        )
    )


def _dirty(factory: Factory, unit: Product, since: timedelta) -> None:
    factory._add(
        TelemetryDirty(product_imei=unit.product_imei, dirty_since_us=to_us(utcnow() - since))
    )


def _fleet(factory: Factory, entity: Any = None) -> list[Product]:
    units = [factory.product(entity=entity) for _ in range(len(LAGS) + 2)]  # 2 never migrated
    for unit, lag in zip(units, LAGS, strict=False):
        _migrated(factory, unit, lag)
    _dirty(factory, units[0], timedelta(days=1))  # older than its watermark (3 min): late
    _dirty(factory, units[1], timedelta(minutes=5))  # newer than its watermark (2 h): new data
    _dirty(factory, units[-1], timedelta(days=3))  # never migrated: nothing archived yet
    return units


def test_the_backlog_counts_units_with_readings_not_yet_archived(
    client: TestClient, factory: Factory
) -> None:
    ours, theirs = factory.entity("Ours"), factory.entity("Theirs")
    _fleet(factory, ours)
    _fleet(factory, theirs)
    answer = client.get("/v1/migration/backlog", headers=factory.headers("OVERVIEW"))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "success",
        "message": "Migration backlog returned successfully",
        "data": {"units_with_unarchived_readings": 6, "units_with_late_readings": 2},
    }
    scoped = client.get(
        "/v1/migration/backlog", headers=factory.headers("OVERVIEW", "ENTITY", ours)
    )
    assert scoped.json()["data"] == {
        "units_with_unarchived_readings": 3,
        "units_with_late_readings": 1,
    }
    assert client.get("/v1/migration/backlog").status_code == 401


def test_the_migration_screen_shows_the_apis_counts(
    page: Any, api: httpx.Client, factory: Factory, shoot: Shoot
) -> None:
    units = _fleet(factory)
    user = factory.user("OVERVIEW")
    headers = {"Authorization": f"Token token={factory.token(user)}"}
    sign_in(page, user.username, "#/migration")
    page.wait_for_selector("#lag-histogram[data-drawn]")
    assert page.inner_text("#units-migrated") == f"{len(LAGS)} / {len(units)}"
    assert page.inner_text("#never-migrated") == "2"
    assert page.inner_text("#late-units") == "1"
    assert page.inner_text("#unarchived-units") == "3"
    bins = page.eval_on_selector_all(
        "table.sr-only tbody tr",
        "rs => rs.map(r => [r.cells[0].textContent, r.cells[1].textContent])",
    )
    assert bins == [["< 15 min", "1"], ["15 min – 1 h", "0"], ["1 – 6 h", "2"], ["6 – 24 h", "0"],
                    ["1 – 7 days", "1"], ["7 – 30 days", "1"], ["> 30 days", "1"]]  # fmt: skip
    drawn = page.eval_on_selector_all(
        "#lag-histogram .barlayer .point text", "ts => ts.map(t => t.textContent)"
    )
    assert [b[1] for b in bins if b[1] != "0"] == drawn
    laggards = page.eval_on_selector_all(
        "table.laggards tbody tr", "rs => rs.map(r => r.cells[0].textContent)"
    )
    q = '{"order_by":[{"field":"latest_migration_timestamp","direction":"asc"}]}'
    expected = api.get(
        "/v1/product_migration_history", params={"q": q, "results_per_page": 20}, headers=headers
    ).json()["objects"]
    assert laggards == [r["product_imei"] for r in expected]
    assert laggards[0] == units[4].product_imei  # 40 days behind
    page.click(f"table.laggards a:has-text('{laggards[0]}')")
    page.wait_for_selector("#unit-fields")
    assert page.url.endswith(f"#/unit/{laggards[0]}")
    page.goto("/console/#/migration")
    shoot(page, "migration", "#lag-histogram[data-drawn]")
