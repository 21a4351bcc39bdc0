"""InfluxDB down: uploads answer 503 so that units keep their buffer, and an upload is
acknowledged only once its readings are stored.

The real server (uvicorn, in a process of its own, SQLite for its database) has a private
``influxd`` as its hot store. Under a steady load of unit uploads (``POST /v1/rm_data``),
operator uploads (``POST /v1/products/<imei>/data``) and reads, the ``influxd`` is first killed
(connections refused) and later frozen with SIGSTOP (connections accepted, nothing answered:
the client's timeout must bound the wait). Every answer is a 2xx or a 503 naming InfluxDB,
with Retry-After; while InfluxDB is away, every upload and every read is a 503; once it is back
the same uploads are accepted without restarting the app; and every reading of every
acknowledged upload is readable at the end."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from solarfleet import __version__
from solarfleet.db import make_engine, make_sessionmaker
from solarfleet.fleet.models import Product
from solarfleet.schema import upgrade
from solarfleet.settings import Settings
from tests.factories import Factory
from tests.faults.clients import Call, LoadClient
from tests.faults.services import PrivateInflux, Server
from tests.parameters.conftest import unit_auth

CLIENTS = 4
ACTIONS = ("rm_data", "product_data", "read")
INFLUX_TIMEOUT = 3.0  # SOLARFLEET_INFLUX_TIMEOUT_SECONDS of the server under test
SLOW = 15.0  # no answer may take longer (a frozen InfluxDB costs the timeout, twice at most,
# and uploads may queue for SQLite's write lock behind each other)
REQUEST_TIMEOUT = 30.0
DOWN_SECONDS = 3.0
RECOVERY_SECONDS = 30.0
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DOWN_MESSAGE = "InfluxDB is unavailable; try again shortly"
LEAKS = ("Traceback", 'File "', "httpx", "ConnectError", "ReadTimeout", __version__)


@dataclass
class Site:
    admin: dict[str, str]
    units: list[Product]


@pytest.fixture
def influx(tmp_path: Path) -> Iterator[PrivateInflux]:
    folder = tmp_path / "influx"
    folder.mkdir()
    server = PrivateInflux(folder)
    try:
        yield server
    finally:
        server.destroy()


def _populate(data_dir: Path) -> Site:
    url = f"sqlite:///{data_dir / 'solarfleet.sqlite'}"
    engine = make_engine(url)
    try:
        upgrade(engine)
        factory = Factory(make_sessionmaker(engine), Settings(data_dir=data_dir))
        ptype = factory.product_type()
        units = [factory.product(product_type=ptype) for _ in range(CLIENTS)]
        return Site(factory.headers("ADMIN"), units)
    finally:
        engine.dispose()


def _body(value: int) -> dict[str, Any]:
    return {"tags": {"source": "bms"}, "fields": {"v": [[T0_MS + value * 1000, float(value)]]}}


class Client(LoadClient):
    """A unit uploading, its operator uploading and reading, in turn."""

    actions = ACTIONS
    request_timeout = REQUEST_TIMEOUT

    def send(self, http: httpx.Client, kind: str, value: int) -> httpx.Response:
        imei = self.unit.product_imei
        if kind == "rm_data":
            return http.post("/v1/rm_data", json=_body(value), headers=unit_auth(self.unit))
        if kind == "product_data":
            return http.post(
                f"/v1/products/{imei}/data", json=_body(value), headers=self.site.admin
            )
        return http.get(
            f"/v1/products/{imei}/data",
            params={"start": "2026-01-01", "end": "2026-12-31", "fields": "v"},
            headers=self.site.admin,
        )


def _check_down_answer(call: Call) -> None:
    assert call.status == 503, call
    body = httpx.Response(503, content=call.text.encode()).json()
    assert body == {"status": "error", "message": DOWN_MESSAGE}, call
    assert int(call.headers["retry-after"]) > 0, call
    for leak in LEAKS:
        assert leak not in call.text, (leak, call)


def _wait_until_served(clients: list[Client], since: float) -> None:
    deadline = since + RECOVERY_SECONDS
    while time.monotonic() < deadline:
        served = {
            c.kind
            for cl in clients
            for c in list(cl.calls)
            if c.started >= since and c.status == 200
        }
        if served == set(ACTIONS):
            return
        time.sleep(0.1)
    pytest.fail(f"not every kind of request succeeded within {RECOVERY_SECONDS:.0f}s")


def _readable(http: httpx.Client, site: Site, imei: str) -> set[float]:
    r = http.get(
        f"/v1/products/{imei}/data",
        params={"start": "2026-01-01", "end": "2026-12-31", "fields": "v", "tags": "source:bms"},
        headers=site.admin,
    )
    assert r.status_code == 200, r.text
    return {value for value, _ in r.json()["data"]["v"]}


def test_influx_down_uploads_answer_503_and_nothing_acknowledged_is_lost(
    influx: PrivateInflux, tmp_path: Path
) -> None:
    site = _populate(tmp_path)
    server = Server(
        tmp_path,
        SOLARFLEET_INFLUX_URL=influx.url,
        SOLARFLEET_INFLUX_DATABASE="faults",
        SOLARFLEET_INFLUX_TIMEOUT_SECONDS=str(INFLUX_TIMEOUT),
    )
    unit = site.units[0]
    stop = threading.Event()
    clients = [Client(server.url, site, i, stop) for i in range(CLIENTS)]
    # (how, when the fault was issued, in effect, undone, every kind of request served again)
    outages: list[tuple[str, float, float, float, float]] = []
    frozen_waits: list[float] = []
    try:
        with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT) as http:
            # One upload of each kind, by hand, before anything breaks: a baseline.
            assert (
                http.post("/v1/rm_data", json=_body(1), headers=unit_auth(unit)).status_code == 200
            )

            for client in clients:
                client.start()
            time.sleep(1.0)

            # Killed: connections refused.
            issued = time.monotonic()  # a request in flight may fail at once
            influx.kill()
            down = time.monotonic()
            time.sleep(DOWN_SECONDS)
            # The same upload, by hand: refused, so the unit keeps it in its buffer...
            held = 999_999
            r = http.post("/v1/rm_data", json=_body(held), headers=unit_auth(unit))
            _check_down_answer(Call("rm_data", 0, 0, r.status_code, r.text, dict(r.headers), held))
            back = time.monotonic()
            influx.start()
            # ... and sends it again once InfluxDB is back: accepted.
            r = http.post("/v1/rm_data", json=_body(held), headers=unit_auth(unit))
            assert r.status_code == 200 and r.json()["data"]["points"] == 1, r.text
            assert held in _readable(http, site, unit.product_imei)
            _wait_until_served(clients, back)
            outages.append(("killed", issued, down, back, time.monotonic()))
            time.sleep(1.0)

            # Frozen: connections accepted, never answered; the timeout bounds each request.
            issued = time.monotonic()
            influx.freeze()
            down = time.monotonic()
            for kind in ACTIONS:  # each kind by hand, while the clients keep trying too
                call = clients[0].one(http, kind)
                _check_down_answer(call)
                frozen_waits.append(call.ended - call.started)
            back = time.monotonic()
            influx.thaw()
            _wait_until_served(clients, back)
            outages.append(("frozen", issued, down, back, time.monotonic()))
            time.sleep(1.0)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=REQUEST_TIMEOUT + 5)
        alive = server.process.poll() is None
    try:
        calls = sorted((c for cl in clients for c in cl.calls), key=lambda c: c.started)
        assert alive, server.output()[-3000:]
        assert not any(cl.is_alive() for cl in clients), "a client hangs"
        assert all(INFLUX_TIMEOUT <= wait < SLOW for wait in frozen_waits), frozen_waits

        # Every request answered, in bounded time: a 200, or a 503 naming InfluxDB.
        assert not [c for c in calls if c.status is None], [c for c in calls if c.status is None]
        for call in calls:
            assert call.ended - call.started < SLOW, call
            if call.status != 200:
                _check_down_answer(call)
        for how, _issued, down, back, _served in outages:
            during = [c for c in calls if c.started >= down and c.ended <= back]
            for call in during:
                _check_down_answer(call)
            assert during, how
        killed = [c for c in calls if outages[0][2] <= c.started and c.ended <= outages[0][3]]
        assert {c.kind for c in killed} == set(ACTIONS), killed
        # While InfluxDB is up, no 503.
        for call in calls:
            if call.status == 503:
                assert any(i <= call.ended and call.started <= s for _, i, _, _, s in outages), call
        assert "unhandled error" not in server.output()

        # Every acknowledged upload is stored: readable now, through the same server.
        with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT) as http:
            for client in clients:
                acknowledged = {
                    float(c.payload) for c in client.calls if c.kind != "read" and c.status == 200
                }
                readable = _readable(http, site, client.unit.product_imei)
                assert acknowledged and acknowledged <= readable, acknowledged - readable
        counts = {k: sum(1 for c in calls if c.kind == k) for k in ACTIONS}
        downs = sum(1 for c in calls if c.status == 503)
        print(f"\n{len(calls)} requests ({counts}), {downs} answered 503 while InfluxDB was away")
    finally:
        server.stop()
