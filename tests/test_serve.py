"""``solarfleet serve`` as a real uvicorn process: no Server header, no internals in error bodies,
and SIGTERM lets a request in flight finish."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from solarfleet import __version__
from tests.faults.services import BIN, Server, server_env

PASSWORD = "correct horse battery"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def _no_internals(r: httpx.Response) -> None:
    assert "server" not in r.headers, r.headers
    body = r.json()
    assert body["status"] == "error" and isinstance(body["message"], str), body
    text = r.text
    for leak in (
        "Traceback",
        'File "',
        "uvicorn",
        "starlette",
        "fastapi",
        "sqlalchemy",
        __version__,
    ):
        assert leak not in text, (leak, text)


def test_errors_carry_no_server_header_nor_internals(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        ok = http.get("/v1/auth/validate_user", params={"username": "x"})
        assert ok.status_code == 200
        assert "server" not in ok.headers
        cases: list[tuple[int, httpx.Response]] = [
            (404, http.get("/v1/no/such/endpoint")),
            (404, http.get("/nothing-here")),
            (405, http.delete("/v1/auth/login")),
            (405, http.put("/v1/auth/validate_user")),
            (401, http.get("/v1/products")),
            (401, http.get("/v1/products", headers={"Authorization": "Token token=" + "x" * 64})),
            (401, http.post("/v1/auth/login", json={"username": "a", "password": "b"})),
            (
                400,
                http.post(
                    "/v1/auth/login", content=b"{", headers={"Content-Type": "application/json"}
                ),
            ),
            (400, http.get("/v1/auth/validate_user")),
        ]
        for status, r in cases:
            assert r.status_code == status, (r.request.method, r.request.url, r.text)
            _no_internals(r)


def _create_slow_user(server: Server, username: str) -> None:
    """A user whose password hash takes a while to verify (its argon2 cost is in the hash)."""
    subprocess.run(
        [str(BIN), "users", "create", "--username", username, "--password", PASSWORD],
        env=server_env(
            server.data_dir,
            SOLARFLEET_ARGON2_TIME_COST="24",
            SOLARFLEET_ARGON2_MEMORY_KIB="65536",
        ),
        check=True,
        capture_output=True,
    )


def test_sigterm_lets_a_request_in_flight_finish(server: Server) -> None:
    _create_slow_user(server, "slow")
    started = time.monotonic()
    r = httpx.post(
        f"{server.url}/v1/auth/login", json={"username": "slow", "password": PASSWORD}, timeout=60
    )
    duration = time.monotonic() - started
    assert r.status_code == 200, r.text
    # Never a skip (CI turns skips into failures): the hash cost makes a login last long enough.
    assert duration >= 0.3, f"a login took only {duration:.2f}s: too quick to interrupt"

    result: dict[str, Any] = {}

    def login() -> None:
        try:
            result["response"] = httpx.post(
                f"{server.url}/v1/auth/login",
                json={"username": "slow", "password": PASSWORD},
                timeout=60,
            )
        except Exception as exc:  # reported below
            result["error"] = exc

    thread = threading.Thread(target=login)
    thread.start()
    time.sleep(duration / 3)  # the request is being served: argon2 is running
    server.process.send_signal(signal.SIGTERM)
    thread.join(timeout=60)
    assert "error" not in result, result
    response = result["response"]
    assert response.status_code == 200, response.text
    assert response.json()["message"]["login_successful"]["username"] == "slow"
    # uvicorn re-raises the signal once it has shut down cleanly (or exits 0, older versions).
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    # And it no longer accepts connections.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/v1/auth/validate_user", params={"username": "x"}, timeout=2)
