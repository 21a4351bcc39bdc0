"""Login throttling per (username, address), per address and per username, kept in the database:
atomic under concurrency, and keyed so that failures elsewhere never lock the real user out of
an address it logged in from."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from solarfleet.app import create_app
from solarfleet.auth.models import KnownAddress, LoginFailure
from solarfleet.db import utcnow
from solarfleet.settings import Settings
from tests.factories import PASSWORD, Factory

PAIR_LIMIT = 5  # the defaults
ADDRESS_LIMIT = 20
USER_LIMIT = 100
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


def _fail(app: FastAPI, username: str, address: str, times: int) -> None:
    client = _client(app, address)
    for _ in range(times):
        assert _login(client, username, "wrong").status_code == 401


def test_defaults(settings: Settings) -> None:
    fresh = Settings()
    assert fresh.login_max_failures_per_user_address == PAIR_LIMIT
    assert fresh.login_max_failures_per_address == ADDRESS_LIMIT
    assert fresh.login_max_failures_per_user == USER_LIMIT
    assert fresh.login_window_seconds == WINDOW
    assert fresh.login_known_address_days == 30
    assert fresh.login_max_concurrent_hashes == 2
    assert fresh.trusted_proxies == []


def test_too_many_failures_from_one_address_are_429_even_with_the_right_password(
    app: FastAPI, factory: Factory
) -> None:
    user = factory.user()
    _fail(app, user.username, "198.51.100.1", PAIR_LIMIT)
    r = _login(_client(app, "198.51.100.1"), user.username)  # the right password: still refused
    assert r.status_code == 429
    wait = int(r.headers["Retry-After"])
    assert WINDOW - 5 <= wait <= WINDOW
    assert r.json() == {
        "status": "error",
        "message": "Too many failed logins for this username from this address "
        f"(limit {PAIR_LIMIT} in {WINDOW} seconds); try again in {wait} seconds",
    }
    # Refusals are not failures: they neither extend the wait nor add rows.
    assert _count(factory, f"user_address:198.51.100.1 {user.username}") == PAIR_LIMIT
    # Another user from another address is not affected.
    other = factory.user()
    assert _login(_client(app, "198.51.100.2"), other.username).status_code == 200


def test_an_attacker_elsewhere_does_not_lock_the_real_user_out(
    app: FastAPI, factory: Factory
) -> None:
    user = factory.user()
    _fail(app, user.username, "203.0.113.66", PAIR_LIMIT)
    assert _login(_client(app, "203.0.113.66"), user.username, "wrong").status_code == 429
    # the real user, from an address never seen before
    assert _login(_client(app, "198.51.100.7"), user.username).status_code == 200


def test_many_addresses_lock_the_username_at_new_addresses_only(
    app: FastAPI, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.settings, "login_max_failures_per_user", 6)
    user = factory.user()
    assert _login(_client(app, "198.51.100.1"), user.username).status_code == 200  # home
    for n in range(3):  # a botnet: two guesses from each of three addresses
        _fail(app, user.username, f"203.0.113.{n + 1}", 2)
    r = _login(_client(app, "203.0.113.99"), user.username)
    assert r.status_code == 429
    assert r.json()["message"].startswith(
        f"Too many failed logins for this username (limit 6 in {WINDOW} seconds)"
    )
    # from home, the username's failures do not count
    assert _login(_client(app, "198.51.100.1"), user.username).status_code == 200
    assert _login(_client(app, "198.51.100.1"), user.username).status_code == 200


def test_unknown_usernames_are_throttled_alike(app: FastAPI, factory: Factory) -> None:
    _fail(app, "nobody", "198.51.100.1", PAIR_LIMIT)
    unknown = _login(_client(app, "198.51.100.1"), "nobody", "x")
    user = factory.user()
    _fail(app, user.username, "198.51.100.1", PAIR_LIMIT)
    known = _login(_client(app, "198.51.100.1"), user.username, "x")
    assert unknown.status_code == known.status_code == 429
    # the same words: only the wait may differ by a second
    assert (
        unknown.json()["message"].rsplit(" in ", 1)[0]
        == (known.json()["message"].rsplit(" in ", 1)[0])
    )


def test_a_success_clears_the_pairs_failures_only(app: FastAPI, factory: Factory) -> None:
    user = factory.user()
    _fail(app, user.username, "198.51.100.1", PAIR_LIMIT - 1)
    assert _login(_client(app, "198.51.100.1"), user.username).status_code == 200
    assert _count(factory, f"user_address:198.51.100.1 {user.username}") == 0
    # ... not the address's nor the username's: they may be another client's.
    assert _count(factory, "address:198.51.100.1") == PAIR_LIMIT - 1
    assert _count(factory, f"username:{user.username}") == PAIR_LIMIT - 1
    _fail(app, user.username, "198.51.100.1", PAIR_LIMIT - 1)
    assert _login(_client(app, "198.51.100.1"), user.username).status_code == 200
    with factory.sessions() as session:
        known = session.scalars(select(KnownAddress)).all()
    assert [(k.user_id, k.address) for k in known] == [(user.user_id, "198.51.100.1")]


def test_too_many_failures_from_an_address_are_429_except_for_its_known_users(
    app: FastAPI, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.settings, "login_max_failures_per_address", 3)
    regular, newcomer = factory.user(), factory.user()
    office = _client(app, "192.0.2.7")
    assert _login(office, regular.username).status_code == 200
    for n in range(3):  # a different username each time: only the address adds up
        assert _login(office, f"guess-{n}", "x").status_code == 401
    r = _login(office, newcomer.username)
    assert r.status_code == 429
    wait = int(r.headers["Retry-After"])
    assert r.json()["message"] == (
        f"Too many failed logins for this address (limit 3 in {WINDOW} seconds); "
        f"try again in {wait} seconds"
    )
    # who logged in from here before still gets in; the newcomer does from elsewhere
    assert _login(office, regular.username).status_code == 200
    assert _login(_client(app, "192.0.2.8"), newcomer.username).status_code == 200


def test_a_known_address_is_forgotten_after_the_configured_days(
    app: FastAPI, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.settings, "login_max_failures_per_address", 1)
    user = factory.user()
    assert _login(_client(app, "192.0.2.7"), user.username).status_code == 200
    assert _login(_client(app, "192.0.2.7"), "guess", "x").status_code == 401
    assert _login(_client(app, "192.0.2.7"), user.username).status_code == 200
    with factory.sessions() as session:
        session.execute(
            update(KnownAddress).values(last_success_at=utcnow() - timedelta(days=30, seconds=1))
        )
        session.commit()
    assert _login(_client(app, "192.0.2.7"), user.username).status_code == 429


def test_the_window_slides(app: FastAPI, factory: Factory) -> None:
    user = factory.user()
    now = utcnow()
    key = f"user_address:198.51.100.1 {user.username}"
    with factory.sessions() as session:
        # Expired failures do not count; the limit-th newest decides the wait.
        session.add_all(
            [LoginFailure(key=key, failed_at=now - timedelta(seconds=WINDOW + 60))]
            + [
                LoginFailure(key=key, failed_at=now - timedelta(seconds=WINDOW - 100 + i))
                for i in range(PAIR_LIMIT)
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
    # Recording a failure pruned the expired rows: only the new ones remain (one per key).
    assert _count(factory) == 3


def test_a_limit_of_zero_turns_throttling_off(
    app: FastAPI, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.settings, "login_max_failures_per_user_address", 0)
    user = factory.user()
    _fail(app, user.username, "198.51.100.1", PAIR_LIMIT + 2)
    assert _login(_client(app, "198.51.100.1"), user.username).status_code == 200


def test_throttling_is_shared_by_every_api_process(
    app: FastAPI, settings: Settings, factory: Factory
) -> None:
    other_process = create_app(settings)  # its own engine and pool: nothing shared in memory
    try:
        user = factory.user()
        _fail(app, user.username, "198.51.100.1", PAIR_LIMIT)
        assert _login(_client(other_process, "198.51.100.1"), user.username).status_code == 429
    finally:
        other_process.state.engine.dispose()


def test_concurrent_failures_are_all_counted(
    app: FastAPI, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.settings, "login_max_failures_per_user_address", 1000)
    user = factory.user()
    attempts = 16

    def attempt(n: int) -> int:
        return _login(_client(app, "198.51.100.1"), user.username, f"wrong-{n}").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(attempt, range(attempts)))
    assert codes == [401] * attempts
    assert _count(factory, f"user_address:198.51.100.1 {user.username}") == attempts
    assert _count(factory, f"username:{user.username}") == attempts
    assert _count(factory, "address:198.51.100.1") == attempts


@pytest.mark.parametrize("keyed", ["user_address", "address"])
def test_concurrent_guesses_get_exactly_the_limit(
    app: FastAPI, factory: Factory, monkeypatch: pytest.MonkeyPatch, keyed: str
) -> None:
    """Attempts in flight count: the check and the record are one step per key."""
    if keyed == "address":
        monkeypatch.setattr(app.state.settings, "login_max_failures_per_user_address", 0)
        monkeypatch.setattr(app.state.settings, "login_max_failures_per_address", 5)
    user = factory.user()

    def attempt(n: int) -> int:
        return _login(_client(app, "198.51.100.1"), user.username, f"wrong-{n}").status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(attempt, range(24)))
    assert sorted(codes) == [401] * 5 + [429] * 19
    assert _count(factory, f"username:{user.username}") == 5


def test_a_login_refused_at_the_hash_gate_is_no_failure(app: FastAPI, factory: Factory) -> None:
    user = factory.user()
    gate = app.state.login_gates.hashes
    saved = gate._free, gate.wait_seconds
    gate._free, gate.wait_seconds = 0, 0.05  # every slot taken: as if hashes were running
    try:
        r = _login(_client(app, "198.51.100.1"), user.username)
    finally:
        gate._free, gate.wait_seconds = saved
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1"
    assert r.json() == {
        "status": "error",
        "message": f"Too many logins in progress (limit {gate.limit} password checks at once); "
        "try again in 1 seconds",
    }
    assert _count(factory) == 0  # the reservation was given back
    assert _login(_client(app, "198.51.100.1"), user.username).status_code == 200


def test_a_nul_in_the_username_is_an_unknown_user(app: FastAPI, factory: Factory) -> None:
    r = _login(_client(app, "198.51.100.1"), "a\x00b", "x")
    assert r.status_code == 401, r.text
    assert _count(factory, "username:a\N{REPLACEMENT CHARACTER}b") == 1
