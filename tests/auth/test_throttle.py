"""Login throttling per username and per client address, kept in the database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from solarfleet.app import create_app
from solarfleet.auth.models import LoginFailure
from solarfleet.db import utcnow
from solarfleet.settings import Settings
from tests.factories import PASSWORD, Factory

USER_LIMIT = 5  # the defaults
ADDRESS_LIMIT = 20
WINDOW = 900


def _login(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    return client.post("/v1/auth/login", json={"username": username, "password": password})


def _client(app: FastAPI, address: str) -> TestClient:
    return TestClient(app, client=(address, 50000))


def _count(factory: Factory, key: str | None = None) -> int:
    with factory.sessions() as session:
        query = select(func.count()).select_from(LoginFailure)
        if key is not None:
            query = query.where(LoginFailure.key == key)
        return session.scalar(query) or 0


def test_defaults(settings: Settings) -> None:
    fresh = Settings()
    assert fresh.login_max_failures_per_user == USER_LIMIT
    assert fresh.login_max_failures_per_address == ADDRESS_LIMIT
    assert fresh.login_window_seconds == WINDOW


def test_too_many_failures_for_a_username_are_429_even_with_the_right_password(
    app: FastAPI, factory: Factory
) -> None:
    user = factory.user()
    client = _client(app, "198.51.100.1")
    for _ in range(USER_LIMIT):
        assert _login(client, user.username, "wrong").status_code == 401
    r = _login(client, user.username)  # the right password: still refused
    assert r.status_code == 429
    wait = int(r.headers["Retry-After"])
    assert WINDOW - 5 <= wait <= WINDOW
    assert r.json() == {
        "status": "error",
        "message": f"Too many failed logins for this username; try again in {wait} seconds",
    }
    # Refusals are not failures: they neither extend the wait nor add rows.
    assert _count(factory, f"username:{user.username}") == USER_LIMIT
    # Another user from another address is not affected.
    other = factory.user()
    assert _login(_client(app, "198.51.100.2"), other.username).status_code == 200


def test_the_username_is_throttled_from_every_address(app: FastAPI, factory: Factory) -> None:
    user = factory.user()
    for n in range(USER_LIMIT):
        assert _login(_client(app, f"198.51.100.{n + 1}"), user.username, "x").status_code == 401
    r = _login(_client(app, "203.0.113.9"), user.username)
    assert r.status_code == 429
    assert "for this username" in r.json()["message"]


def test_unknown_usernames_are_throttled_alike(app: FastAPI, factory: Factory) -> None:
    client = _client(app, "198.51.100.1")
    for _ in range(USER_LIMIT):
        assert _login(client, "nobody", "x").status_code == 401
    assert _login(client, "nobody", "x").status_code == 429


def test_a_success_clears_the_usernames_failures(app: FastAPI, factory: Factory) -> None:
    user = factory.user()
    client = _client(app, "198.51.100.1")
    for _ in range(USER_LIMIT - 1):
        assert _login(client, user.username, "wrong").status_code == 401
    assert _login(client, user.username).status_code == 200
    assert _count(factory, f"username:{user.username}") == 0
    # ... but not the address's.
    assert _count(factory, "address:198.51.100.1") == USER_LIMIT - 1
    for _ in range(USER_LIMIT - 1):
        assert _login(client, user.username, "wrong").status_code == 401
    assert _login(client, user.username).status_code == 200


def test_too_many_failures_from_an_address_are_429(
    app: FastAPI, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.settings, "login_max_failures_per_address", 3)
    user = factory.user()
    client = _client(app, "192.0.2.7")
    for n in range(3):  # a different username each time: only the address adds up
        assert _login(client, f"guess-{n}", "x").status_code == 401
    r = _login(client, user.username)
    assert r.status_code == 429
    wait = int(r.headers["Retry-After"])
    assert r.json()["message"] == (
        f"Too many failed logins for this address; try again in {wait} seconds"
    )
    # The same user from another address gets in.
    assert _login(_client(app, "192.0.2.8"), user.username).status_code == 200


def test_the_window_slides(app: FastAPI, factory: Factory) -> None:
    user = factory.user()
    now = utcnow()
    key = f"username:{user.username}"
    with factory.sessions() as session:
        # Expired failures do not count; the limit-th newest decides the wait.
        session.add_all(
            [LoginFailure(key=key, failed_at=now - timedelta(seconds=WINDOW + 60))] * 1
            + [
                LoginFailure(key=key, failed_at=now - timedelta(seconds=WINDOW - 100 + i))
                for i in range(USER_LIMIT)
            ]
        )
        session.commit()
    r = _login(_client(app, "198.51.100.1"), user.username)
    assert r.status_code == 429
    assert 90 <= int(r.headers["Retry-After"]) <= 101
    with factory.sessions() as session:  # age every failure past the window
        session.query(LoginFailure).update(
            {LoginFailure.failed_at: now - timedelta(seconds=WINDOW + 1)}
        )
        session.commit()
    assert _login(_client(app, "198.51.100.1"), user.username, "x").status_code == 401
    # Recording a failure pruned the expired rows: only the new ones remain.
    assert _count(factory) == 2


def test_a_limit_of_zero_turns_throttling_off(
    app: FastAPI, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.settings, "login_max_failures_per_user", 0)
    user = factory.user()
    client = _client(app, "198.51.100.1")
    for _ in range(USER_LIMIT + 2):
        assert _login(client, user.username, "wrong").status_code == 401
    assert _login(client, user.username).status_code == 200


def test_throttling_is_shared_by_every_api_process(
    app: FastAPI, settings: Settings, factory: Factory
) -> None:
    other_process = create_app(settings)  # its own engine and pool: nothing shared in memory
    try:
        user = factory.user()
        for _ in range(USER_LIMIT):
            assert _login(_client(app, "198.51.100.1"), user.username, "x").status_code == 401
        assert _login(_client(other_process, "198.51.100.1"), user.username).status_code == 429
    finally:
        other_process.state.engine.dispose()


def test_concurrent_failures_are_all_counted(
    app: FastAPI, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.settings, "login_max_failures_per_user", 1000)
    monkeypatch.setattr(app.state.settings, "login_max_failures_per_address", 1000)
    user = factory.user()
    attempts = 16

    def attempt(n: int) -> int:
        return _login(_client(app, "198.51.100.1"), user.username, f"wrong-{n}").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(attempt, range(attempts)))
    assert codes == [401] * attempts
    assert _count(factory, f"username:{user.username}") == attempts
    assert _count(factory, "address:198.51.100.1") == attempts
