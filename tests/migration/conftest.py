"""Fixtures of the migration tests: a hot store (embedded, and InfluxDB when
SOLARFLEET_TEST_INFLUX_URL is set), a fresh archive table per test, units, and uploads that go
through the real ingest path (dirty mark first, then the hot store)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.settings import Settings
from solarfleet.telemetry.archive import Archive
from solarfleet.telemetry.embedded import EmbeddedHotStore
from solarfleet.telemetry.hot import HotStore
from solarfleet.telemetry.influx import InfluxHotStore
from solarfleet.telemetry.ingest import store_upload
from solarfleet.telemetry.points import Point, Value
from tests.factories import Factory

INFLUX_URL = os.environ.get("SOLARFLEET_TEST_INFLUX_URL")
REDIS_URL = os.environ.get("SOLARFLEET_TEST_REDIS_URL")

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs
MINUTE = 60_000_000
DAY = 86_400_000_000


@dataclass
class HotSpec:
    """How to reach a hot store, also from a subprocess (as environment variables)."""

    kind: str
    path: Path | None = None
    url: str | None = None
    database: str | None = None

    def open(self) -> HotStore:
        if self.kind == "embedded":
            assert self.path is not None
            return EmbeddedHotStore(self.path)
        assert self.url is not None and self.database is not None
        return InfluxHotStore(self.url, database=self.database)

    def env(self, data_dir: Path) -> dict[str, str]:
        if self.kind == "embedded":
            assert self.path == data_dir / "hot" / "telemetry.sqlite"
            return {"SOLARFLEET_DATA_DIR": str(data_dir)}
        return {
            "SOLARFLEET_DATA_DIR": str(data_dir),
            "SOLARFLEET_INFLUX_URL": self.url or "",
            "SOLARFLEET_INFLUX_DATABASE": self.database or "",
        }


@pytest.fixture(params=["embedded", "influx"])
def hot_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HotSpec]:
    if request.param == "embedded":
        yield HotSpec("embedded", path=tmp_path / "hot" / "telemetry.sqlite")
        return
    if not INFLUX_URL:
        pytest.skip("SOLARFLEET_TEST_INFLUX_URL is not set: no InfluxDB to test against")
    spec = HotSpec("influx", url=INFLUX_URL, database=f"mig_{uuid.uuid4().hex[:12]}")
    yield spec
    store = InfluxHotStore(INFLUX_URL, database=spec.database or "")
    store.drop_database()
    store.close()


@pytest.fixture
def hot(hot_spec: HotSpec) -> Iterator[HotStore]:
    store = hot_spec.open()
    yield store
    store.close()


@pytest.fixture
def archive_settings(settings: Settings, tmp_path: Path) -> Settings:
    """The session's settings with this test's own archive table and warehouse."""
    return settings.model_copy(
        update={
            "archive_url": (tmp_path / "warehouse").as_uri(),
            "archive_table": f"test.t{uuid.uuid4().hex[:12]}",
            "archive_buckets": 4,
        }
    )


@pytest.fixture
def archive(archive_settings: Settings, engine: object) -> Iterator[Archive]:
    store = Archive.from_settings(archive_settings)
    yield store
    store.drop()
    store.close()


@dataclass
class Fleet:
    """Units, and every reading ever uploaded to them (identity -> last value written)."""

    sessions: sessionmaker[Session]
    hot: HotStore
    imeis: list[str]
    written: dict[tuple[object, ...], Point] = field(default_factory=dict)

    def upload(self, imei: str, points: Sequence[Point]) -> None:
        with self.sessions() as session:
            store_upload(session=session, hot=self.hot, imei=imei, points=points)
        for p in points:
            self.written[p.key] = p

    def readings(
        self, imei: str, start_us: int, count: int, *, step: int = MINUTE, value: Value = 1.0
    ) -> list[Point]:
        return [
            Point(imei, "telemetry", (("site", "a"),), "v", start_us + i * step, value)
            for i in range(count)
        ]

    def expected(self, imei: str) -> list[Point]:
        return sorted(
            (p for p in self.written.values() if p.imei == imei),
            key=lambda p: (p.time_us, p.measurement, p.tags, p.field),
        )


@pytest.fixture
def fleet(factory: Factory, sessions: sessionmaker[Session], hot: HotStore) -> Fleet:
    product_type = factory.product_type()
    imeis = [factory.product(product_type=product_type).product_imei for _ in range(4)]
    return Fleet(sessions, hot, imeis)
