"""The fast path (issue 11): two hand-offs to the thread pool per request, none left holding a
connection, whatever the route answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.parameters.conftest import Fleet

# (method, path, caller): reads and writes of the resource, parameter and unit routes
REQUESTS = [
    ("GET", "/v1/products", "admin"),
    ("GET", "/v1/products/{imei}", "admin"),
    ("GET", "/v1/products/{imei}/parameters/history", "admin"),
    ("GET", "/v1/products/{imei}/parameters/history?date=2030-01-01", "admin"),
    ("GET", "/v1/rc_data", "device"),
    ("POST", "/v1/products/{imei}/parameters", "admin"),
]


@pytest.fixture
def hand_offs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the functions run in the thread pool while the test runs."""
    calls: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(func, "__name__", repr(func)))
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    yield calls


def _send(client: TestClient, fleet: Fleet, method: str, path: str, caller: str) -> int:
    headers = fleet.admin if caller == "admin" else fleet.device
    url = path.format(imei=fleet.imei)
    body = {"parameter_type_id": fleet.level.parameter_type_id, "value": 7}
    return client.request(method, url, headers=headers, json=body).status_code


@pytest.mark.parametrize(("method", "path", "caller"), REQUESTS)
def test_a_request_hands_off_to_the_thread_pool_twice(
    client: TestClient, fleet: Fleet, hand_offs: list[str], method: str, path: str, caller: str
) -> None:
    assert _send(client, fleet, method, path, caller) in (200, 201)
    # authentication, then the endpoint (which closes its session in the same thread)
    assert len(hand_offs) == 2, hand_offs


@pytest.mark.parametrize(
    ("method", "path", "caller", "status"),
    [
        ("GET", "/v1/products/999999999999999", "admin", 404),
        ("GET", "/v1/products/999999999999999/parameters/history", "admin", 404),
        ("PUT", "/v1/products/999999999999999/change_entity", "admin", 404),  # another router
        ("GET", "/v1/products/{imei}/parameters/history?date=nonsense", "admin", 400),
        ("GET", "/v1/products", "device", 401),
    ],
)
def test_no_connection_is_left_checked_out(
    client: TestClient, engine: Engine, fleet: Fleet, method: str, path: str, caller: str,
    status: int,
) -> None:  # fmt: skip
    url = path.format(imei=fleet.imei)
    headers = fleet.admin if caller == "admin" else fleet.device
    body = {"entity_id": fleet.entity.entity_id} if method == "PUT" else None
    for _ in range(3):  # a write lock left held would make the next one wait, then fail
        assert client.request(method, url, headers=headers, json=body).status_code == status
    assert engine.pool.checkedout() == 0
