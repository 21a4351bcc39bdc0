"""Field kinds per unit series (issue 9.11) and racing first uploads (issue 16.1), on both hot
stores (InfluxDB: the real one) and both databases.

A unit's choice of kind binds that unit's series only; no upload, however hostile, makes
another unit's upload a 400; the work of one upload is bounded (fields, points, series); and
whatever an upload is acknowledged for is read back, whatever raced it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.errors import BadRequest
from solarfleet.fleet.models import Product
from solarfleet.settings import Settings
from solarfleet.telemetry import series
from solarfleet.telemetry.hot import HotStore
from solarfleet.telemetry.ingest import MAX_FIELDS
from solarfleet.telemetry.models import TelemetrySeries
from solarfleet.telemetry.points import Point, to_us
from tests.factories import Factory
from tests.parameters.conftest import unit_auth
from tests.telemetry.conftest import Site

EVERYTHING = (0, to_us(datetime(2200, 1, 1)))
MS = 1479727096961  # 2016-11-21
MONTHS_MS = 120 * 86_400_000  # four months: another InfluxDB shard (they span 7 days)


def rows(sessions: sessionmaker[Session], imei: str | None = None) -> int:
    with sessions() as session:
        stmt = select(func.count()).select_from(TelemetrySeries)
        if imei is not None:
            stmt = stmt.where(TelemetrySeries.product_imei == imei)
        return int(session.scalar(stmt) or 0)


def post(client: TestClient, unit: Product, fields: dict[str, Any], **body: Any) -> Any:
    return client.post("/v1/rm_data", json={"fields": fields, **body}, headers=unit_auth(unit))


def test_one_units_string_leaves_other_units_free_to_send_numbers(
    client: TestClient, site: Site, hot: HotStore, sessions: sessionmaker[Session]
) -> None:
    r = post(client, site.unit, {"power": [[MS, "high"]]})
    assert r.status_code == 200, r.text
    r = post(client, site.other, {"power": [[MS, 12.5]]})
    assert r.status_code == 200, r.text
    assert [p.value for p in hot.read(site.imei, *EVERYTHING)] == ["high"]
    assert [p.value for p in hot.read(site.other.product_imei, *EVERYTHING)] == [12.5]
    # The same unit's series keeps its kind: a number is a 400 naming the field, nothing stored.
    r = post(client, site.unit, {"volts": [[MS + 1, 3.0]], "power": [[MS + 1, 7]]})
    assert r.status_code == 400
    assert r.json()["message"] == (
        f"Field 'power' of measurement 'telemetry' holds str values for unit #{site.imei} "
        "(with these tags); this upload sends float"
    )
    assert [p.field for p in hot.read(site.imei, *EVERYTHING)] == ["power"]
    # Another tag set or measurement of the same unit is another series: free.
    assert post(client, site.unit, {"power": [[MS, 1.0]]}, tags={"src": "x"}).status_code == 200
    assert post(client, site.unit, {"power": [[MS, 2.0]]}, measurement="m").status_code == 200
    assert rows(sessions, site.imei) == 3


def test_one_request_creates_at_most_max_fields_series(
    client: TestClient, site: Site, hot: HotStore, sessions: sessionmaker[Session]
) -> None:
    hostile = {f"f{i}": [[MS, "x"]] for i in range(50_000)}
    started = time.monotonic()
    r = post(client, site.unit, hostile)
    assert r.status_code == 400
    assert r.json()["message"] == f"Too many fields: 50000; at most {MAX_FIELDS} per request"
    assert time.monotonic() - started < 30
    assert rows(sessions) == 0 and hot.read(site.imei, *EVERYTHING) == []
    r = post(client, site.unit, {f"f{i}": [[MS, "x"]] for i in range(MAX_FIELDS)})
    assert r.status_code == 200, r.text
    assert rows(sessions, site.imei) == MAX_FIELDS


@pytest.fixture
def few_series(app: FastAPI) -> Iterator[int]:
    """The app with at most 5 series per unit, for the test."""
    previous: Settings = app.state.settings
    app.state.settings = previous.model_copy(update={"telemetry_max_series_per_unit": 5})
    yield 5
    app.state.settings = previous


def test_series_per_unit_are_bounded(
    client: TestClient, site: Site, hot: HotStore, sessions: sessionmaker[Session], few_series: int
) -> None:
    assert post(client, site.unit, {f"a{i}": [[MS, 1.0]] for i in range(4)}).status_code == 200
    r = post(client, site.unit, {"a0": [[MS + 1, 2.0]], "b": [[MS, 1.0]], "c": [[MS, 1.0]]})
    assert r.status_code == 400
    assert r.json()["message"] == (
        f"Too many series for unit #{site.imei}: it has 4, this upload adds 2; at most 5 "
        "(telemetry_max_series_per_unit: a series is a measurement, tag set and field)"
    )
    assert len(hot.read(site.imei, *EVERYTHING)) == 4  # nothing of the refused upload
    # Known series are always accepted; one more new one fits; another unit has its own budget.
    assert post(client, site.unit, {"a0": [[MS + 1, 2.0]], "b": [[MS, 1.0]]}).status_code == 200
    r = post(client, site.unit, {"z": [[MS, 1.0]]}, tags={"t": "new"})
    assert r.status_code == 400 and "at most 5" in r.json()["message"]
    assert post(client, site.other, {f"a{i}": [[MS, 1.0]] for i in range(5)}).status_code == 200
    assert rows(sessions, site.imei) == 5


def test_register_checks_kinds_per_unit(factory: Factory, sessions: sessionmaker[Session]) -> None:
    a = factory.product("356000000000011").product_imei
    b = factory.product("356000000000012").product_imei
    tags = (("k", "v" * 256),)
    with sessions() as session:
        assert (
            series.register(session=session, imei=a, kinds={("m", tags, "f"): "str"}, limit=9) == 1
        )
        assert (
            series.register(session=session, imei=b, kinds={("m", tags, "f"): "int"}, limit=9) == 1
        )
        assert (
            series.register(session=session, imei=a, kinds={("m", tags, "f"): "str"}, limit=9) == 0
        )
        with pytest.raises(BadRequest, match="holds str values.*sends bool"):
            series.register(session=session, imei=a, kinds={("m", tags, "f"): "bool"}, limit=9)
        assert (
            series.register(session=session, imei=a, kinds={("m", (), "f"): "bool"}, limit=9) == 1
        )
        session.commit()
    assert rows(sessions) == 3


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` at the same moment, one thread each; their results (or exceptions)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - the race's outcome is what we assert on
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


RACES = 40


def test_racing_first_writes_of_a_field_with_two_kinds_are_both_kept(store: HotStore) -> None:
    """Issue 16.1 at the store: two units' first readings of one field, a number and a string,
    months apart (two InfluxDB shards) or in one shard: both acknowledged, both read back."""
    for i in range(RACES):
        field = f"field{i}"
        gap = MONTHS_MS if i % 2 else 1
        a = Point("356000000000001", "telemetry", (), field, MS * 1000, 1.5)
        b = Point("356000000000002", "telemetry", (), field, (MS + gap) * 1000, "text")
        assert race([lambda a=a: store.write([a]), lambda b=b: store.write([b])]) == [1, 1]
        assert store.read(a.imei, *EVERYTHING, fields=[field]) == [a]
        assert store.read(b.imei, *EVERYTHING, fields=[field]) == [b]
        for unit in (a.imei, b.imei):
            assert sum(store.counts_by_day(unit, *EVERYTHING).values()) == i + 1


def test_racing_uploads_of_one_units_field_acknowledge_one_kind(
    client: TestClient, site: Site, hot: HotStore, sessions: sessionmaker[Session]
) -> None:
    """Issue 16.1 through the API: one unit's number and string racing for a new field, months
    apart. Exactly one is acknowledged, the other is a 400, and what was acknowledged is what
    the store holds (nothing half-written, nothing acknowledged and lost)."""
    for i in range(RACES // 2):
        field = f"field{i}"
        number = {field: [[MS, 1.5]], f"n{i}": [[MS, 1.0]]}
        text = {field: [[MS + MONTHS_MS, "text"]], f"s{i}": [[MS + MONTHS_MS, 2.0]]}
        answers = race(
            [
                lambda number=number: post(client, site.unit, number),
                lambda text=text: post(client, site.unit, text),
            ]
        )
        codes = sorted(r.status_code for r in answers)
        assert codes == [200, 400], [r.text for r in answers]
        won = number if answers[0].status_code == 200 else text
        got = hot.read(site.imei, *EVERYTHING, fields=[field, f"n{i}", f"s{i}"])
        assert {p.field for p in got} == set(won)
        assert {p.value for p in hot.read(site.imei, *EVERYTHING, fields=[field])} == {
            won[field][0][1]
        }
