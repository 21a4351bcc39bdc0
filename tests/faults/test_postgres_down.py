"""PostgreSQL stopped in the middle of load: the real server (uvicorn, in a process of its own)
answers every request of the outage with a 503 saying the database is unavailable, quickly and
without internals; once PostgreSQL is back it serves again without being restarted; and every
write it acknowledged is there afterwards. Two outages in one run: ``pg_ctl -m fast`` (backends
told to terminate) and ``-m immediate`` (the postmaster and its backends killed, crash recovery
at the next start)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from solarfleet import __version__
from solarfleet.db import make_engine, make_sessionmaker
from solarfleet.fleet.models import Product
from solarfleet.parameters.models import ProductParameter
from solarfleet.schema import upgrade
from solarfleet.settings import Settings
from tests.factories import Factory
from tests.faults.clients import Call, LoadClient
from tests.faults.services import PrivatePostgres, Server
from tests.parameters.conftest import unit_auth

CLIENTS = 6  # threads, each with a unit of its own, cycling through the actions below
ACTIONS = ("list", "set", "rc_get", "upload", "rc_post")
OK = {"list": 200, "set": 201, "rc_get": 200, "upload": 200, "rc_post": 200}
REQUEST_TIMEOUT = 20.0  # a request hanging this long fails the test (as a transport error)
SLOW = 10.0  # and no answer, 503 included, may take this long
OUTAGE_SECONDS = 3.0
RECOVERY_SECONDS = 30.0  # the app serves again this soon after PostgreSQL is back
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DOWN_MESSAGE = "The database is unavailable; try again shortly"
LEAKS = ("Traceback", 'File "', "psycopg", "sqlalchemy", "OperationalError", __version__)


@dataclass
class Site:
    admin: dict[str, str]
    parameter_type_id: int
    units: list[Product]


@dataclass
class Timeline:
    """When each outage began and ended, as seen by the test (time.monotonic())."""

    outages: list[tuple[str, float, float, float, float]] = field(default_factory=list)
    # (mode, stop issued, stop done, start issued, start done)


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        yield cluster
    finally:
        cluster.destroy()


def _populate(url: str, data_dir: Path) -> Site:
    engine = make_engine(url)
    try:
        upgrade(engine)
        settings = Settings(data_dir=data_dir, database_url=url)
        factory = Factory(make_sessionmaker(engine), settings)
        level = factory.parameter_type("int", name="level", validation_rules={"min": 0})
        ptype = factory.product_type(parameter_types=[level.parameter_type_id])
        units = [factory.product(product_type=ptype) for _ in range(CLIENTS)]
        return Site(factory.headers("ADMIN"), level.parameter_type_id, units)
    finally:
        engine.dispose()


class Client(LoadClient):
    """One operator and one unit taking turns, as fast as the server answers."""

    actions = ACTIONS
    request_timeout = REQUEST_TIMEOUT

    def send(self, http: httpx.Client, kind: str, value: int) -> httpx.Response:
        imei = self.unit.product_imei
        device = unit_auth(self.unit)
        ptype = self.site.parameter_type_id
        if kind == "list":
            q = '{"filters": [{"name": "product_imei", "op": "like", "val": "99%"}]}'
            return http.get("/v1/products", params={"q": q}, headers=self.site.admin)
        if kind == "set":
            body = {"parameter_type_id": ptype, "value": value}
            return http.post(f"/v1/products/{imei}/parameters", json=body, headers=self.site.admin)
        if kind == "rc_get":
            return http.get("/v1/rc_data", headers=device)
        if kind == "upload":
            body = {"fields": {"v": [[T0_MS + value * 1000, float(value)]]}}
            return http.post("/v1/rm_data", json=body, headers=device)
        body = {"product_parameters": [{"parameter_type_id": ptype, "value": 1}]}
        return http.post("/v1/rc_data", json=body, headers=device)


def _wait_until_served(clients: list[Client], since: float, deadline: float) -> float:
    """The moment every kind of request has succeeded at least once after ``since``."""
    while time.monotonic() < deadline:
        served = {
            c.kind
            for client in clients
            for c in list(client.calls)
            if c.started >= since and c.status == OK[c.kind]
        }
        if served == set(ACTIONS):
            return time.monotonic()
        time.sleep(0.1)
    pytest.fail(f"not every kind of request succeeded within {RECOVERY_SECONDS:.0f}s of restart")


def _check_down_answer(call: Call) -> None:
    assert call.status == 503, call
    body = httpx.Response(503, content=call.text.encode()).json()
    assert body == {"status": "error", "message": DOWN_MESSAGE}, call
    assert int(call.headers["retry-after"]) > 0, call
    for leak in LEAKS:
        assert leak not in call.text, (leak, call)


def test_postgres_stopped_under_load_answers_503_and_recovers(
    postgres: PrivatePostgres, tmp_path: Path
) -> None:
    site = _populate(postgres.url, tmp_path)
    server = Server(tmp_path, SOLARFLEET_DATABASE_URL=postgres.url)
    pid = server.process.pid
    stop = threading.Event()
    clients = [Client(server.url, site, i, stop) for i in range(CLIENTS)]
    timeline = Timeline()
    recoveries: dict[str, float] = {}  # mode -> seconds from PostgreSQL up to every kind served
    try:
        for client in clients:
            client.start()
        time.sleep(1.5)  # load with the database up
        for mode in ("fast", "immediate"):
            stop_issued = time.monotonic()
            postgres.stop(mode)
            stop_done = time.monotonic()
            time.sleep(OUTAGE_SECONDS)
            start_issued = time.monotonic()
            postgres.start()
            start_done = time.monotonic()
            timeline.outages.append((mode, stop_issued, stop_done, start_issued, start_done))
            served = _wait_until_served(clients, start_done, start_done + RECOVERY_SECONDS)
            recoveries[mode] = served - start_done
            time.sleep(1.0)  # load with the database back
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=REQUEST_TIMEOUT + 5)
        alive = server.process.poll() is None
        server.stop()
    calls = sorted((c for client in clients for c in client.calls), key=lambda c: c.started)
    output = server.output()
    assert alive and server.process.pid == pid, output[-3000:]  # never restarted
    assert not any(client.is_alive() for client in clients), "a client hangs"

    # Every request got an answer, quickly: its success, or a 503 saying what is wrong.
    unanswered = [c for c in calls if c.status is None]
    assert not unanswered, unanswered[:5]
    for call in calls:
        assert call.ended - call.started < SLOW, call
        if call.status != OK[call.kind]:
            _check_down_answer(call)

    for mode, stop_issued, stop_done, start_issued, start_done in timeline.outages:
        # While the database is down: every request is a 503, and each kind was tried.
        during = [c for c in calls if c.started >= stop_done and c.ended <= start_issued]
        for call in during:
            _check_down_answer(call)
        assert {c.kind for c in during} == set(ACTIONS), (mode, len(during))
        # Once it is back, until the next outage: every request succeeds (no app restart).
        until = min((s for _, s, _, _, _ in timeline.outages if s > stop_issued), default=1e12)
        after = [c for c in calls if c.started >= start_done and c.ended <= until]
        failed = [c for c in after if c.status != OK[c.kind]]
        assert after and not failed, (mode, failed[:5])
    # While the database is up, no 503.
    for call in calls:
        if call.status == 503:
            assert any(s <= call.ended and call.started <= e for _, s, _, _, e in timeline.outages)
    assert "database unavailable" in output  # logged for the operator, with the reason

    # No acknowledged write is lost.
    engine = make_engine(postgres.url)
    try:
        with make_sessionmaker(engine)() as session:
            stored = {(p.product_imei, p.value) for p in session.scalars(select(ProductParameter))}
    finally:
        engine.dispose()
    by_imei = {c.index: c.unit.product_imei for c in clients}
    acknowledged_sets = {
        (by_imei[c.payload // 1_000_000], str(c.payload))
        for c in calls
        if c.kind == "set" and c.status == 201
    }
    assert acknowledged_sets and acknowledged_sets <= stored, acknowledged_sets - stored
    _check_uploads(postgres, tmp_path, site, calls, by_imei)

    counts = {k: sum(1 for c in calls if c.kind == k) for k in ACTIONS}
    downs = sum(1 for c in calls if c.status == 503)
    print(f"\n{len(calls)} requests ({counts}), {downs} answered 503 during the outages;")
    print(
        "every kind served again "
        + ", ".join(f"{s:.2f}s after -m {m}" for m, s in recoveries.items())
    )


def _check_uploads(
    postgres: PrivatePostgres,
    data_dir: Path,
    site: Site,
    calls: list[Call],
    by_imei: dict[int, str],
) -> None:
    """Every acknowledged upload is readable through a fresh server."""
    server = Server(data_dir, SOLARFLEET_DATABASE_URL=postgres.url)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for index, imei in by_imei.items():
                sent = {
                    float(c.payload)
                    for c in calls
                    if c.kind == "upload" and c.status == 200 and c.payload // 1_000_000 == index
                }
                r = http.get(
                    f"/v1/products/{imei}/data",
                    params={"start": "2026-01-01", "end": "2026-12-31", "fields": "v"},
                    headers=site.admin,
                )
                assert r.status_code == 200, r.text
                readable = {value for value, _ in r.json()["data"]["v"]}
                assert sent and sent <= readable, (imei, sent - readable)
    finally:
        server.stop()
