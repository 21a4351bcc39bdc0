"""Hostile list queries against a real server (issue 9, items 2 and 10): each answers a 4xx that
names its limit, fast; a statement past the deadline stops working on the server; one user's
concurrent heavy queries are answered 429 and leave other users' requests fast."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.db import utcnow
from solarfleet.fleet.models import Entity, Product, ProductEntityLinker, ProductType
from tests.abuse.conftest import Serve
from tests.factories import Factory
from tests.faults.services import Server

# The issue's request: a 6-hop path, 36 of them OR-ed in one 4.5 KB q, took 224 s of a core.
DEEP = "entities__product_links__product__entities__product_links__product__serial_number"
FIRST = "100000000000000"


def deep_q(filters: int) -> str:
    ors = [{"name": DEEP, "op": "like", "val": f"%nothing-{i}%"} for i in range(filters)]
    return orjson.dumps({"filters": [{"or": ors}]}).decode()


def one_entity_fleet(sessions: sessionmaker[Session], units: int) -> None:
    """``units`` units on one entity: the deep path visits units**3 rows per unit listed."""
    now = utcnow()
    with sessions() as session:
        session.execute(
            insert(ProductType).values(name="abuse", parameter_types=[], created_at=now)
        )
        type_id = session.query(ProductType.product_type_id).scalar()
        session.execute(insert(Entity).values(name="abuse", created_at=now))
        entity_id = session.query(Entity.entity_id).scalar()
        imeis = [str(int(FIRST) + i) for i in range(units)]
        session.execute(
            insert(Product),
            [
                {"product_imei": imei, "product_type_id": type_id, "serial_number": f"SN{imei}",
                 "device_key": imei.rjust(24, "0"), "created_at": now}
                for imei in imeis
            ],
        )  # fmt: skip
        session.execute(
            insert(ProductEntityLinker),
            [
                {"product_imei": imei, "entity_id": entity_id, "date_added": now, "created_at": now}
                for imei in imeis
            ],
        )
        session.commit()


def cpu_seconds(server: Server) -> float:
    """CPU time the server process has used so far (user + system)."""
    stat = Path(f"/proc/{server.process.pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(http: httpx.Client, url: str, **kw: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = http.get(url, **kw)
    return response, time.monotonic() - started


def test_the_issues_request_answers_400_at_once(served: Server, factory: Factory) -> None:
    headers = factory.headers("OVERVIEW")
    with httpx.Client(base_url=served.url, headers=headers, timeout=30) as http:
        r, took = timed(http, "/v1/products", params={"q": deep_q(36)})
        assert (r.status_code, r.json()["message"]) == (
            400,
            "q: relation path 'entities__product_links__product__entities' has 4 hops;"
            " the limit is 3 (SOLARFLEET_QUERY_MAX_RELATION_HOPS)",
        )
        assert took < 2
        many = orjson.dumps({"order_by": [{"field": "serial_number"}] * 200}).decode()
        r = http.get("/v1/products", params={"q": many})
        assert (r.status_code, r.json()["message"]) == (
            400,
            "q: 200 order_by items; the limit is 16 (SOLARFLEET_QUERY_MAX_ORDER_BY)",
        )
        deep = '{"filters": ' + "[" * 300 + "]" * 300 + "}"
        r = http.get("/v1/products", params={"q": deep})
        assert (r.status_code, r.json()["message"]) == (
            400,
            "A filter must be an object, got a list nested too deep to show",
        )


@pytest.fixture(scope="module")
def unbounded(serve: Serve) -> Server:
    """A server whose relation limits let the issue's request through, so that only the
    statement deadline (1 s) stands between it and minutes of work."""
    return serve(
        SOLARFLEET_QUERY_MAX_RELATION_HOPS="6",
        SOLARFLEET_QUERY_MAX_RELATIONS="500",
        SOLARFLEET_STATEMENT_TIMEOUT_SECONDS="1",
    )


def test_the_deadline_stops_the_statement_on_the_server(
    unbounded: Server, factory: Factory, sessions: sessionmaker[Session]
) -> None:
    one_entity_fleet(sessions, 60)
    headers = factory.headers("OVERVIEW")
    expected = (
        "A statement of this request ran longer than 1 s; the limit is 1 s"
        " (SOLARFLEET_STATEMENT_TIMEOUT_SECONDS): narrow the query"
    )
    with httpx.Client(base_url=unbounded.url, headers=headers, timeout=60) as http:
        r, took = timed(http, "/v1/products", params={"q": deep_q(36)})
        assert (r.status_code, r.json()["message"]) == (400, expected)
        assert took < 8  # 1 s per statement, with slack for a shared machine
        r, took = timed(http, f"/v1/products/{FIRST}")
        assert r.status_code == 200
        assert took < 2

        # A client that gives up first: the server still stops at the deadline.
        with pytest.raises(httpx.ReadTimeout):
            http.get("/v1/products", params={"q": deep_q(36)}, timeout=0.3)
        time.sleep(2.5)  # past the deadline of both statements a list runs at most
        before = cpu_seconds(unbounded)
        time.sleep(1.5)
        assert cpu_seconds(unbounded) - before < 0.5  # nothing runs on: the thread stopped
        r, took = timed(http, f"/v1/products/{FIRST}")
        assert (r.status_code, took < 2) == (200, True)


def test_one_users_heavy_requests_leave_the_others_fast(
    unbounded: Server, factory: Factory, sessions: sessionmaker[Session]
) -> None:
    one_entity_fleet(sessions, 40)
    heavy = factory.headers("OVERVIEW")
    other = factory.headers("OVERVIEW")
    start = threading.Barrier(61)

    def attack() -> httpx.Response:
        with httpx.Client(base_url=unbounded.url, headers=heavy, timeout=60) as http:
            start.wait()
            return http.get("/v1/products", params={"q": deep_q(1)})

    with ThreadPoolExecutor(60) as pool:
        attacks = [pool.submit(attack) for _ in range(60)]
        start.wait()
        time.sleep(0.5)
        with httpx.Client(base_url=unbounded.url, headers=other, timeout=60) as http:
            r, took = timed(http, f"/v1/products/{FIRST}")
        answers = [a.result() for a in attacks]
    assert r.status_code == 200
    assert took < 5  # 22 s in the issue, without the cap
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 400, 429}
    # The cap is 4 in flight: how many of the 60 overlap depends on how fast each one is (on
    # PostgreSQL, with the fast path, many finish before the next arrives); some always do.
    assert statuses.count(429) >= 1
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["message"] == (
        "4 list requests of yours are running; the limit is 4"
        " (SOLARFLEET_QUERY_MAX_IN_FLIGHT_PER_USER): wait for one to finish"
    )
