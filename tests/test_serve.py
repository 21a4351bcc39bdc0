"""``solarfleet serve`` as a real uvicorn process: no Server header, no internals in error bodies,
and SIGTERM lets a request in flight finish."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from solarfleet import __version__

BIN = Path(sys.executable).parent / "solarfleet"
PASSWORD = "correct horse battery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLARFLEET_")}
    env.update(
        SOLARFLEET_DATA_DIR=str(data_dir),
        SOLARFLEET_ARGON2_TIME_COST="1",
        SOLARFLEET_ARGON2_MEMORY_KIB="64",
    )
    env.update(extra)
    return env


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    if not BIN.exists():
        pytest.skip(f"{BIN} is not installed")
    port = _free_port()
    process = subprocess.Popen(
        [str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/v1/auth/validate_user", params={"username": "x"}, timeout=2)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = process.communicate()[0].decode(errors="replace")
                pytest.fail(f"solarfleet serve did not start:\n{output}")
            time.sleep(0.1)
    try:
        yield Server(process, url, tmp_path)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout:
            process.stdout.close()


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
        env=_env(
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
