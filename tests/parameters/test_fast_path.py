"""The fast path (issue 11): one hand-off to the thread pool for a request FastAPI cannot refuse
(authentication runs in the endpoint's thread), two for a request with a body to validate
(authentication first, so that 401 comes before 400), none left holding a connection, whatever
the route answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.factories import Factory
from tests.parameters.conftest import Fleet

# (method, path, caller, hand-offs): reads and writes of the resource, parameter and unit routes
REQUESTS = [
    ("GET", "/v1/products", "admin", 1),
    ("GET", "/v1/products/{imei}", "admin", 1),
    ("GET", "/v1/rc_data", "device", 1),
    # its optional body (the date, as the original took it) is parsed after authentication
    ("GET", "/v1/products/{imei}/parameters/history", "admin", 1),
    ("GET", "/v1/products/{imei}/parameters/history?date=2030-01-01", "admin", 1),
    ("POST", "/v1/products/{imei}/parameters", "admin", 2),
    # a write session waits for the caller: worked out in the same thread, once
    ("DELETE", "/v1/products/{imei}", "system", 1),
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


def _send(
    client: TestClient, fleet: Fleet, method: str, path: str, caller: str | dict[str, str]
) -> int:
    headers = (
        caller if isinstance(caller, dict) else {"admin": fleet.admin}.get(caller, fleet.device)
    )
    url = path.format(imei=fleet.imei)
    body = {"parameter_type_id": fleet.level.parameter_type_id, "value": 7}
    return client.request(method, url, headers=headers, json=body).status_code


@pytest.mark.parametrize(("method", "path", "caller", "expected"), REQUESTS)
def test_hand_offs_to_the_thread_pool(
    client: TestClient, fleet: Fleet, factory: Factory, hand_offs: list[str], method: str,
    path: str, caller: str, expected: int,
) -> None:  # fmt: skip
    sender = factory.headers("SYSTEM") if caller == "system" else caller
    assert _send(client, fleet, method, path, sender) in (200, 201, 204)
    # [authentication, then] the endpoint, which closes its session in the same thread
    assert len(hand_offs) == expected, hand_offs


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


BAD_TOKEN = {"Authorization": "Token token=" + "x" * 43}


@pytest.mark.parametrize(
    ("path", "headers", "status", "message"),
    [
        # authenticated in the endpoint's thread: still before q, page and the key are read
        ('/v1/products?q={"filters": 5}&page=0', "bad", 401, "Invalid token"),
        ("/v1/products/not-an-imei", "bad", 401, "Invalid token"),
        ("/v1/products", None, 401, "Missing Authorization header"),
        (
            '/v1/users?q={"filters": 5}',
            "overview",
            403,
            "SYSTEM permission required; you have OVERVIEW",
        ),
        ("/v1/rc_data", "admin", 401, "Units authenticate with HTTP Basic imei:device_key"),
        # not deferred (FastAPI refuses a missing ?from= itself): authenticated before that
        ("/v1/products/{imei}/parameters/diff", "bad", 401, "Invalid token"),
    ],
)
def test_the_caller_is_checked_before_anything_else(
    client: TestClient, fleet: Fleet, factory: Factory, engine: Engine, path: str,
    headers: str | None, status: int, message: str,
) -> None:  # fmt: skip
    sent = {
        None: {},
        "bad": BAD_TOKEN,
        "admin": fleet.admin,
        "overview": factory.headers("OVERVIEW"),
    }[headers]
    response = client.get(path.replace("{imei}", fleet.imei), headers=sent)
    assert response.status_code == status
    assert response.json()["message"].startswith(message), response.json()
    assert engine.pool.checkedout() == 0
