"""Hot stores for the telemetry tests: every contract test runs on the embedded store and on a
real InfluxDB 1.x (SOLARFLEET_TEST_INFLUX_URL; a fresh database per test, dropped after it).
Without the variable the InfluxDB runs skip, and SOLARFLEET_REQUIRE_SERVICES=1 (CI) turns such
a skip into a failure."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.fleet.models import Entity, Product
from solarfleet.telemetry.dirty import Mark, read_mark
from solarfleet.telemetry.embedded import EmbeddedHotStore
from solarfleet.telemetry.hot import HotStore
from solarfleet.telemetry.influx import InfluxHotStore
from tests.factories import Factory
from tests.parameters.conftest import unit_auth

INFLUX_URL = os.environ.get("SOLARFLEET_TEST_INFLUX_URL")
NO_INFLUX = "SOLARFLEET_TEST_INFLUX_URL is not set (start one: bash scripts/services start DIR)"


def influx_store(url: str | None = INFLUX_URL) -> InfluxHotStore:
    if not url:
        pytest.skip(NO_INFLUX)
    return InfluxHotStore(url, database=f"solarfleet_test_{uuid.uuid4().hex[:12]}", timeout=10)


def make_store(kind: str, folder: Path) -> HotStore:
    return (
        EmbeddedHotStore(folder / "hot" / "telemetry.sqlite")
        if kind == "embedded"
        else (influx_store())
    )


def dispose(store: HotStore) -> None:
    if isinstance(store, InfluxHotStore):
        store.drop_database()
    store.close()


@pytest.fixture(params=["embedded", "influx"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HotStore]:
    """A fresh, empty hot store of each kind."""
    hot = make_store(request.param, tmp_path)
    yield hot
    dispose(hot)


@pytest.fixture
def hot(app: FastAPI, store: HotStore) -> Iterator[HotStore]:
    """``store``, installed as the app's hot store for the test."""
    previous = app.state.hot_store
    app.state.hot_store = store
    yield store
    app.state.hot_store = previous


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Site:
    """A unit in an entity, an ADMIN and an OVERVIEW caller, and a unit of another entity."""

    entity: Entity
    unit: Product
    other: Product  # in another entity
    admin: dict[str, str]
    reader: dict[str, str]  # OVERVIEW, ENTITY scope of ``entity``
    sessions: sessionmaker[Session]

    @property
    def imei(self) -> str:
        return self.unit.product_imei

    @property
    def device(self) -> dict[str, str]:
        return unit_auth(self.unit)

    def mark(self, imei: str | None = None) -> Mark | None:
        with self.sessions() as session:
            return read_mark(session=session, imei=imei or self.imei)


@pytest.fixture
def site(factory: Factory, sessions: sessionmaker[Session]) -> Site:
    entity = factory.entity("Sunny Co")
    elsewhere = factory.entity("Other Co")
    unit = factory.product("356000000000001", entity=entity)
    other = factory.product("356000000000002", entity=elsewhere)
    return Site(
        entity=entity,
        unit=unit,
        other=other,
        admin=factory.headers("ADMIN"),
        reader=factory.headers("OVERVIEW", "ENTITY", entity),
        sessions=sessions,
    )
