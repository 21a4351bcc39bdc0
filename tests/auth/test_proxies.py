"""The client address behind trusted proxies: X-Forwarded-For is believed only from them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from solarfleet.app import create_app
from solarfleet.auth.models import LoginFailure
from solarfleet.auth.proxies import client_address
from solarfleet.settings import Settings
from tests.factories import Factory

PROXY = "10.0.0.5"


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert client_address("127.0.0.1", ["203.0.113.9"], []) == "127.0.0.1"
    assert client_address("10.0.0.5", ["203.0.113.9"], ["10.0.0.6"]) == "10.0.0.5"


def test_the_last_hop_that_is_not_a_trusted_proxy_is_the_client() -> None:
    trusted = [PROXY, "192.168.0.0/16"]
    assert client_address(PROXY, ["203.0.113.9"], trusted) == "203.0.113.9"
    # what the client wrote itself stays to the left of what our proxies appended
    assert client_address(PROXY, ["1.2.3.4, 203.0.113.9, 192.168.1.1"], trusted) == "203.0.113.9"
    assert client_address(PROXY, ["1.2.3.4", "203.0.113.9 , 192.168.1.1"], trusted) == (
        "203.0.113.9"
    )
    # every hop trusted: the farthest one; no header: the peer
    assert client_address(PROXY, ["192.168.1.1"], trusted) == "192.168.1.1"
    assert client_address(PROXY, [], trusted) == PROXY
    # garbage ends the walk at the last trusted hop
    assert client_address(PROXY, ["203.0.113.9, nonsense"], trusted) == PROXY
    assert client_address(PROXY, ["nonsense, 192.168.1.1"], trusted) == "192.168.1.1"
    # IPv6, and no peer at all
    assert client_address("::1", ["2001:db8::7"], ["::1"]) == "2001:db8::7"
    assert client_address(None, ["203.0.113.9"], trusted) == "unknown"


addresses = st.ip_addresses(v=4).map(str)
junk = st.text(alphabet="0123456789abcdef.:, x", max_size=20)


@given(
    real=addresses.filter(lambda a: not a.startswith("10.")),
    forged=st.lists(st.one_of(addresses, junk), max_size=5),
    proxies=st.lists(st.sampled_from(["10.0.0.5", "10.1.2.3", "10.200.0.1"]), max_size=3),
)
def test_a_client_cannot_choose_its_address(
    real: str, forged: list[str], proxies: list[str]
) -> None:
    """Whatever a client sends, the address our first proxy appended is the one used."""
    header = ", ".join([*forged, real, *proxies])
    assert client_address(PROXY, [header], ["10.0.0.0/8"]) == real


def _login(app: FastAPI, peer: str, headers: dict[str, str]) -> Any:
    client = TestClient(app, client=(peer, 50000))
    return client.post(
        "/v1/auth/login", json={"username": "nobody", "password": "x"}, headers=headers
    )


def _keys(factory: Factory) -> set[str]:
    with factory.sessions() as session:
        return set(session.scalars(select(LoginFailure.key)))


def test_login_throttles_the_peer_unless_it_is_a_trusted_proxy(
    app: FastAPI, settings: Settings, factory: Factory
) -> None:
    spoof = {"X-Forwarded-For": "203.0.113.9"}
    assert _login(app, "127.0.0.1", spoof).status_code == 401
    assert "address:127.0.0.1" in _keys(factory)
    assert "address:203.0.113.9" not in _keys(factory)
    behind = create_app(settings.model_copy(update={"trusted_proxies": ["127.0.0.1"]}))
    try:
        assert _login(behind, "127.0.0.1", spoof).status_code == 401
    finally:
        behind.state.engine.dispose()
    assert "address:203.0.113.9" in _keys(factory)
