"""A private ``influxd`` configured as production may be: authentication on, ordinary users with
only the rights given on their database (issue 16.2), and a small ``max-values-per-tag`` (3
here, 100,000 by default) to show that the layout holds more units than it and that reaching a
capacity limit is a 503 that keeps the unit's buffer (issue 16.3)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from solarfleet.app import create_app
from solarfleet.errors import ServiceUnavailable
from solarfleet.telemetry.influx import CapacityExceeded, InfluxConfigurationError, InfluxHotStore
from solarfleet.telemetry.points import Point, to_us
from tests.conftest import TEST_DATABASE_URL, make_settings
from tests.factories import Factory
from tests.faults.services import BIN, PrivateInflux, free_port, server_env
from tests.parameters.conftest import unit_auth

EVERYTHING = (0, to_us(datetime(2200, 1, 1)))
T0 = to_us(datetime(2026, 11, 20, 10))
MAX_VALUES_PER_TAG = 3


class Server:
    def __init__(self, influx: PrivateInflux) -> None:
        self.influx = influx
        self.admin = ("admin", "admin-pw")

    def query(self, q: str, auth: tuple[str, str] | None = None) -> None:
        r = httpx.post(
            f"{self.influx.url}/query", data={"q": q}, auth=auth or self.admin, timeout=60
        )
        assert r.status_code == 200 and "error" not in r.text, r.text

    def url(self, user: str, password: str = "pw") -> str:
        return self.influx.url.replace("http://", f"http://{user}:{password}@")

    def store(self, user: str, database: str = "sf", password: str = "pw") -> InfluxHotStore:
        return InfluxHotStore(self.url(user, password), database=database, timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    influx = PrivateInflux(
        tmp_path_factory.mktemp("influxd"),
        data=f"max-values-per-tag = {MAX_VALUES_PER_TAG}",
        http="auth-enabled = true",
    )
    try:
        s = Server(influx)
        s.query("CREATE USER admin WITH PASSWORD 'admin-pw' WITH ALL PRIVILEGES", auth=("", ""))
        for q in (
            'CREATE DATABASE "sf"',
            "CREATE USER rw WITH PASSWORD 'pw'",
            'GRANT ALL ON "sf" TO rw',  # READ and WRITE on "sf"; not an admin
            "CREATE USER ro WITH PASSWORD 'pw'",
            'GRANT READ ON "sf" TO ro',
            "CREATE USER wo WITH PASSWORD 'pw'",
            'GRANT WRITE ON "sf" TO wo',
        ):
            s.query(q)
        yield s
    finally:
        influx.destroy()


def pt(imei: str, value: float = 1.5, time_us: int = T0) -> Point:
    return Point(imei, "telemetry", (), "v", time_us, value)


def test_a_user_with_read_and_write_on_its_database_writes_and_reads(server: Server) -> None:
    store = server.store("rw")
    store.check_access()  # no CREATE DATABASE, no error
    assert store.write([pt("356000000000001")]) == 1
    assert store.read("356000000000001", *EVERYTHING) == [pt("356000000000001")]
    assert store.drop("356000000000001", *EVERYTHING) == 1
    store.close()


@pytest.mark.parametrize(
    ("user", "database", "password", "message"),
    [
        ("ro", "sf", "pw", 'refuses to write .*GRANT ALL ON "sf" TO "ro"'),
        ("wo", "sf", "pw", 'refuses to read .*GRANT ALL ON "sf" TO "wo"'),
        ("rw", "missing", "pw", 'refuses to create the database .*CREATE DATABASE "missing"'),
        ("rw", "sf", "wrong", "refuses our credentials"),
    ],
)
def test_missing_rights_are_a_configuration_error_at_start_up(
    server: Server, user: str, database: str, password: str, message: str
) -> None:
    store = server.store(user, database, password)
    with pytest.raises(InfluxConfigurationError, match=message):
        store.check_access()
    store.close()


def test_an_admin_creates_a_missing_database_at_start_up(server: Server) -> None:
    store = InfluxHotStore(server.url("admin", "admin-pw"), database="made_at_start")
    store.check_access()
    assert server.store("admin", "made_at_start", "admin-pw").read("1", *EVERYTHING) == []
    store.drop_database()
    store.close()


def test_the_server_does_not_start_without_the_rights(server: Server, tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, influx_url=server.url("ro"), influx_database="sf"))
    with pytest.raises(InfluxConfigurationError, match="refuses to write"), TestClient(app):
        pass
    app.state.engine.dispose()


def test_solarfleet_serve_refuses_to_start_without_the_rights(
    server: Server, tmp_path: Path
) -> None:
    if not BIN.exists():
        pytest.fail(f"{BIN} is not installed")
    env = server_env(
        tmp_path, SOLARFLEET_INFLUX_URL=server.url("ro"), SOLARFLEET_INFLUX_DATABASE="sf"
    )
    if TEST_DATABASE_URL:
        env["SOLARFLEET_DATABASE_URL"] = TEST_DATABASE_URL
    done = subprocess.run(
        [str(BIN), "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "refuses to write (user ro, database 'sf')" in " ".join(done.stdout.split())


@pytest.fixture
def hot_rw(app: FastAPI, server: Server) -> Iterator[InfluxHotStore]:
    """The test app's hot store: the private InfluxDB as the ordinary user rw."""
    previous = app.state.hot_store
    app.state.hot_store = store = server.store("rw")
    yield store
    app.state.hot_store = previous
    store.close()


def test_uploads_as_an_ordinary_user_are_stored(
    client: TestClient, factory: Factory, hot_rw: InfluxHotStore
) -> None:
    """Issue 16.2: every upload answered 503 (CREATE DATABASE refused)."""
    unit = factory.product("356000000000077")
    body = {"fields": {"v": [[1732435200000, 12.5]]}}
    r = client.post("/v1/rm_data", json=body, headers=unit_auth(unit))
    assert r.status_code == 200, r.text
    assert [p.value for p in hot_rw.read(unit.product_imei, *EVERYTHING)] == [12.5]


def test_more_units_than_max_values_per_tag_fit(server: Server) -> None:
    """Ten units, one per bucket, where a measurement takes three imeis: all stored."""
    store = server.store("rw")
    imeis = [f"3560000000005{i:02d}" for i in range(10)]
    for imei in imeis:
        assert store.write([pt(imei)]) == 1
    for imei in imeis:
        assert store.read(imei, *EVERYTHING) == [pt(imei)]
    store.close()


def test_a_full_bucket_is_a_503_that_keeps_the_buffer(
    client: TestClient, factory: Factory, hot_rw: InfluxHotStore
) -> None:
    """The fourth unit of one bucket (imei % 100 == 42) passes max-values-per-tag: a 503 with
    Retry-After (the unit keeps its buffer and sends again), never a 400."""
    units = [factory.product(f"356000000{n}42") for n in range(1000, 1000 + MAX_VALUES_PER_TAG + 1)]
    body = {"fields": {"v": [[1732435200000, 12.5]]}}
    answers = [client.post("/v1/rm_data", json=body, headers=unit_auth(u)) for u in units]
    assert [r.status_code for r in answers] == [200] * MAX_VALUES_PER_TAG + [503]
    assert answers[-1].json() == {
        "status": "error",
        "message": "InfluxDB is at a capacity limit; try again later",
    }
    assert answers[-1].headers["Retry-After"] == "60"
    with pytest.raises(CapacityExceeded) as caught:
        hot_rw.write([pt(units[-1].product_imei)])
    assert isinstance(caught.value, ServiceUnavailable)
    for unit in units[:-1]:  # nothing lost of what was acknowledged
        assert len(hot_rw.read(unit.product_imei, *EVERYTHING)) == 1
