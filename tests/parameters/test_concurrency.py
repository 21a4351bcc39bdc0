"""Many simultaneous sets of one type on one unit: one pending row, the rest expired, none lost."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from anyio import to_thread
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.auth.principal import Principal
from solarfleet.db import write_session
from solarfleet.fleet.models import Product
from solarfleet.parameters import service
from solarfleet.parameters.models import PartParameter, ProductParameter
from tests.factories import Factory
from tests.parameters.conftest import Fleet, unit_auth

THREADS = 16


def race(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run the jobs at once (a barrier releases them together) and return their results."""
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], Any]) -> Any:
        barrier.wait()
        return job()

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(run, jobs))


def check(rows: list[Any], sent: set[str]) -> None:
    statuses = sorted(r.status for r in rows)
    assert statuses == ["expired"] * (len(sent) - 1) + ["pending"]
    assert {r.value for r in rows} == sent  # no request lost
    pending = next(r for r in rows if r.status == "pending")
    assert pending is max(rows, key=lambda r: r.created_at)  # the last set wins
    for r in rows:
        if r.status == "expired":
            assert r.date_added < r.date_removed


def test_simultaneous_http_sets_leave_one_pending_row(
    app: FastAPI, fleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    def job(value: int) -> Callable[[], int]:
        def post() -> int:
            client = TestClient(app)  # one HTTP client per thread
            body = {"parameter_type_id": fleet.level.parameter_type_id, "value": value}
            r = client.post(f"/v1/products/{fleet.imei}/parameters", json=body, headers=fleet.admin)
            return r.status_code

        return post

    assert race([job(v) for v in range(THREADS)]) == [201] * THREADS
    with sessions() as session:
        rows = list(session.scalars(select(ProductParameter)))
    check(rows, {str(v) for v in range(THREADS)})


def test_simultaneous_service_sets_on_a_unit_and_a_part(
    fleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    admin = Principal(
        user_id=1, username="racer", permissions="ADMIN", scope="GLOBAL", entity_id=None
    )
    type_id = fleet.level.parameter_type_id

    def job(value: int, on_part: bool) -> Callable[[], None]:
        def run() -> None:
            with write_session(sessions) as session:  # a session of its own
                if on_part:
                    service.set_part_parameter(
                        session=session,
                        principal=admin,
                        part_id=fleet.part.part_id,
                        parameter_type_id=type_id,
                        value=value,
                    )
                else:
                    service.set_product_parameter(
                        session=session,
                        principal=admin,
                        imei=fleet.imei,
                        parameter_type_id=type_id,
                        value=value,
                    )
                session.commit()

        return run

    race([job(v, on_part) for v in range(THREADS // 2) for on_part in (False, True)])
    with sessions() as session:
        unit_rows = list(session.scalars(select(ProductParameter)))
        part_rows = list(session.scalars(select(PartParameter)))
    check(unit_rows, {str(v) for v in range(THREADS // 2)})
    check(part_rows, {str(v) for v in range(THREADS // 2)})


def test_sets_racing_unit_reports_keep_the_invariants(
    app: FastAPI, fleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    type_id = fleet.level.parameter_type_id

    def setter(value: int) -> Callable[[], int]:
        def run() -> int:
            body = {"parameter_type_id": type_id, "value": value}
            url = f"/v1/products/{fleet.imei}/parameters"
            return TestClient(app).post(url, json=body, headers=fleet.admin).status_code

        return run

    def reporter(value: int) -> Callable[[], int]:
        def run() -> int:
            body = {"product_parameters": [{"parameter_type_id": type_id, "value": value}]}
            return TestClient(app).post("/v1/rc_data", json=body, headers=fleet.device).status_code

        return run

    jobs = [f(v) for v in range(THREADS // 2) for f in (setter, reporter)]
    assert set(race(jobs)) == {200, 201}
    with sessions() as session:
        rows = list(
            session.scalars(
                select(ProductParameter).order_by(ProductParameter.product_parameter_id)
            )
        )
    assert len(rows) == THREADS // 2
    assert sum(r.status == "pending" for r in rows) <= 1
    assert sum(r.status == "active" for r in rows) <= 1
    active = [r for r in rows if r.status in ("active", "removed")]
    spans = sorted((r.date_added, r.date_removed) for r in active)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end is not None and end <= start  # active periods never overlap


def test_write_requests_never_wait_for_a_thread_while_holding_the_write_lock(
    app: FastAPI, factory: Factory, fleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    """More concurrent writes than worker threads, in one event loop (as under uvicorn).

    A write session used to take SQLite's write lock (BEGIN IMMEDIATE) in its dependency, in one
    worker thread, and then wait for another thread to run the endpoint. With every thread taken
    by requests waiting for that lock, nothing moved until SQLite's busy timeout (30 s) answered
    them 503 "database is locked" (found by bench/load.py). The lock is now taken by the first
    statement, in the endpoint's own thread.
    """
    units = [factory.product(product_type=None) for _ in range(4)]
    ptype = factory.product_type(parameter_types=[fleet.level.parameter_type_id])
    units += [factory.product(product_type=ptype) for _ in range(4)]
    type_id = fleet.level.parameter_type_id

    async def burst() -> list[int]:
        to_thread.current_default_thread_limiter().total_tokens = 2  # this loop's threadpool
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def set_value(unit: Product, value: int) -> int:
                body = {"parameter_type_id": type_id, "value": value}
                url = f"/v1/products/{unit.product_imei}/parameters"
                r = await client.post(url, json=body, headers=fleet.admin)
                return r.status_code

            async def unit_report(unit: Product, value: int) -> int:
                body = {"product_parameters": [{"parameter_type_id": type_id, "value": value}]}
                r = await client.post("/v1/rc_data", json=body, headers=unit_auth(unit))
                return r.status_code

            jobs = [set_value(u, v) for u in units[4:] for v in (1, 2)]
            jobs += [unit_report(u, 3) for u in units]
            return list(await asyncio.gather(*jobs))

    started = time.monotonic()
    statuses = asyncio.run(burst())
    assert sorted(statuses) == [200] * 8 + [201] * 8
    assert time.monotonic() - started < 15  # far below the busy timeout it used to wait out
    with sessions() as session:
        assert len(session.scalars(select(ProductParameter)).all()) == 8
