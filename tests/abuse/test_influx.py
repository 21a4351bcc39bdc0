"""Issue 9.11 against a real server, on the embedded hot store and on InfluxDB: a unit cannot
change what other units may upload, and one upload's work is bounded (fields per request,
series per unit), each limit a 400 naming it."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.fleet.models import Product
from solarfleet.telemetry.influx import InfluxHotStore
from solarfleet.telemetry.ingest import MAX_FIELDS
from solarfleet.telemetry.models import TelemetrySeries
from tests.abuse.conftest import Serve
from tests.factories import Factory
from tests.faults.services import Server
from tests.telemetry.conftest import NO_INFLUX

INFLUX_URL = os.environ.get("SOLARFLEET_TEST_INFLUX_URL")
MAX_SERIES = 300
MS = 1732435200000  # 2024-11-24


def influx_env(serve: Serve, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """``env`` with a database of its own on the test InfluxDB (dropped afterwards)."""
    if not INFLUX_URL:
        pytest.skip(NO_INFLUX)
    database = f"solarfleet_abuse_{uuid.uuid4().hex[:10]}"
    yield {**env, "SOLARFLEET_INFLUX_URL": INFLUX_URL, "SOLARFLEET_INFLUX_DATABASE": database}
    store = InfluxHotStore(INFLUX_URL, database=database)
    store.drop_database()
    store.close()


@pytest.fixture(scope="module", params=["embedded", "influx"])
def server(request: pytest.FixtureRequest, serve: Serve) -> Iterator[Server]:
    env = {"SOLARFLEET_TELEMETRY_MAX_SERIES_PER_UNIT": str(MAX_SERIES)}
    if request.param == "embedded":
        yield serve(**env)
        return
    for with_influx in influx_env(serve, env):
        yield serve(**with_influx)


@pytest.fixture(scope="module")
def two_servers(serve: Serve) -> Iterator[list[Server]]:
    """Two API processes on the test database and one InfluxDB database."""
    for env in influx_env(serve, {}):
        yield [serve(**env), serve(**env)]


def series_rows(sessions: sessionmaker[Session], imei: str) -> int:
    with sessions() as session:
        stmt = select(func.count()).select_from(TelemetrySeries)
        return int(session.scalar(stmt.where(TelemetrySeries.product_imei == imei)) or 0)


def test_a_unit_cannot_change_what_other_units_may_upload(server: Server, factory: Factory) -> None:
    poisoner, victim = factory.product(), factory.product()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        fields = {f"f{i}": [[MS, "poison"]] for i in range(MAX_FIELDS)}
        r = http.post("/v1/rm_data", json={"fields": fields}, auth=_basic(poisoner))
        assert r.status_code == 200, r.text
        fields = {f"f{i}": [[MS, 12.5]] for i in range(MAX_FIELDS)}
        r = http.post("/v1/rm_data", json={"fields": fields}, auth=_basic(victim))
        assert r.status_code == 200, r.text
        assert r.json()["data"]["points"] == MAX_FIELDS
        got = http.get(
            f"/v1/products/{victim.product_imei}/data",
            params={"start": "2024-11-24", "end": "2024-11-25", "fields": "f0"},
            headers=factory.headers("OVERVIEW"),
        )
        assert got.status_code == 200, got.text
        assert got.json()["data"]["f0"] == [[12.5, "2024-11-24T08:00:00.000000"]]


def test_one_upload_creates_a_bounded_number_of_series(
    server: Server, factory: Factory, sessions: sessionmaker[Session]
) -> None:
    unit = factory.product()
    hostile = {"fields": {f"k{i}": [[MS, "x"]] for i in range(50_000)}}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        started = time.monotonic()
        r = http.post("/v1/rm_data", json=hostile, auth=_basic(unit))
        assert time.monotonic() - started < 20
        assert r.status_code == 400
        assert r.json()["message"] == f"Too many fields: 50000; at most {MAX_FIELDS} per request"
        assert series_rows(sessions, unit.product_imei) == 0
        # New tag sets, MAX_FIELDS series each: the unit stops at MAX_SERIES.
        codes = []
        for i in range(3):
            body = {"tags": {"t": f"v{i}"}, "fields": {f"k{j}": [[MS, 1.0]] for j in range(128)}}
            codes.append(http.post("/v1/rm_data", json=body, auth=_basic(unit)).status_code)
        assert codes == [200, 200, 400]
        body = {"tags": {"t": "v9"}, "fields": {f"k{j}": [[MS, 1.0]] for j in range(45)}}
        r = http.post("/v1/rm_data", json=body, auth=_basic(unit))
        assert r.status_code == 400
        assert r.json()["message"] == (
            f"Too many series for unit #{unit.product_imei}: it has 256, this upload adds 45; "
            f"at most {MAX_SERIES} (telemetry_max_series_per_unit: a series is a measurement, "
            "tag set and field)"
        )
        body["fields"] = {f"k{j}": [[MS, 1.0]] for j in range(44)}  # up to the limit: fine
        assert http.post("/v1/rm_data", json=body, auth=_basic(unit)).status_code == 200
    assert series_rows(sessions, unit.product_imei) == MAX_SERIES


def _basic(unit: Product) -> httpx.BasicAuth:
    return httpx.BasicAuth(unit.product_imei, unit.device_key)


def test_racing_first_uploads_in_two_processes_acknowledge_one_kind(
    two_servers: list[Server], factory: Factory
) -> None:
    """Issue 16.1: a unit's number and string for a new field, months apart, sent to two API
    processes at once. One is acknowledged and read back; the other is a 400; never both."""
    unit = factory.product()
    reader = factory.headers("OVERVIEW")
    clients = [httpx.Client(base_url=s.url, timeout=30) for s in two_servers]
    try:
        for i in range(20):
            bodies = [
                {"fields": {f"r{i}": [[MS, 1.5]]}},
                {"fields": {f"r{i}": [[MS + 120 * 86_400_000, "text"]]}},
            ]
            barrier = threading.Barrier(2)
            answers: list[Any] = [None, None]

            def send(k: int, bodies: list[dict[str, Any]] = bodies, answers: list[Any] = answers,
                     barrier: threading.Barrier = barrier) -> None:  # fmt: skip
                barrier.wait()
                answers[k] = clients[k].post("/v1/rm_data", json=bodies[k], auth=_basic(unit))

            threads = [threading.Thread(target=send, args=(k,)) for k in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert sorted(a.status_code for a in answers) == [200, 400], [a.text for a in answers]
            won = bodies[0] if answers[0].status_code == 200 else bodies[1]
            got = clients[0].get(
                f"/v1/products/{unit.product_imei}/data",
                params={"start": "2024-01-01", "end": "2026-01-01", "fields": f"r{i}"},
                headers=reader,
            )
            assert [v for v, _t in got.json()["data"][f"r{i}"]] == [won["fields"][f"r{i}"][0][1]]
    finally:
        for c in clients:
            c.close()
