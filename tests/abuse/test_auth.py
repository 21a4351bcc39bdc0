"""Login floods against a real ``solarfleet serve`` (issue 9 items 4 and 5), with real threads.

* 60 concurrent wrong passwords for one user get exactly the limit of 401s, the rest 429;
* 100 concurrent wrong logins from one address, each for another username, exactly 20 401s;
* X-Forwarded-For is ignored unless the peer is a configured trusted proxy;
* an attacker elsewhere, even from many addresses, cannot lock the real user out;
* an ordinary GET stays fast during a flood with the default argon2 cost, and the server's
  memory stays far below one 64 MiB hash per login.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.abuse.conftest import Serve
from tests.factories import PASSWORD, Factory
from tests.faults.services import Server

PAIR_LIMIT, ADDRESS_LIMIT = 5, 20  # the defaults


def _flood(server: Server, bodies: list[dict[str, str]], forwarded: list[str | None]) -> list[Any]:
    """Every body posted at once, each from its own thread and connection."""
    start = threading.Barrier(len(bodies))

    def attempt(n: int) -> Any:
        headers = {"X-Forwarded-For": forwarded[n]} if forwarded[n] else {}
        with httpx.Client(base_url=server.url, timeout=120) as http:
            start.wait()
            return http.post("/v1/auth/login", json=bodies[n], headers=headers)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(attempt, range(len(bodies))))


def _login(server: Server, username: str, password: str = PASSWORD, via: str | None = None) -> int:
    headers = {"X-Forwarded-For": via} if via else {}
    body = {"username": username, "password": password}
    return httpx.post(f"{server.url}/v1/auth/login", json=body, headers=headers).status_code


def _codes(answers: list[Any]) -> Counter[int]:
    return Counter(a.status_code for a in answers)


def test_concurrent_wrong_passwords_get_exactly_the_limit(served: Server, factory: Factory) -> None:
    user = factory.user("OVERVIEW")
    answers = _flood(served, [{"username": user.username, "password": "wrong"}] * 60, [None] * 60)
    assert _codes(answers) == {401: PAIR_LIMIT, 429: 60 - PAIR_LIMIT}
    for a in answers:
        if a.status_code == 429:
            assert a.json()["message"].startswith(
                "Too many failed logins for this username from this address (limit 5 in 900 "
                "seconds)"
            ), a.text
            assert int(a.headers["Retry-After"]) > 0


def test_concurrent_wrong_logins_from_one_address_get_exactly_its_limit(
    served: Server, factory: Factory
) -> None:
    bodies = [{"username": f"guess-{n}", "password": "x"} for n in range(100)]
    answers = _flood(served, bodies, [None] * 100)
    assert _codes(answers) == {401: ADDRESS_LIMIT, 429: 100 - ADDRESS_LIMIT}


def test_x_forwarded_for_is_ignored_by_default(served: Server, factory: Factory) -> None:
    bodies = [{"username": f"guess-{n}", "password": "x"} for n in range(30)]
    spoofed = [f"203.0.113.{n}" for n in range(30)]  # a new address claimed each time
    answers = _flood(served, bodies, spoofed)  # type: ignore[arg-type]
    assert _codes(answers) == {401: ADDRESS_LIMIT, 429: 30 - ADDRESS_LIMIT}


def test_an_attacker_cannot_lock_the_real_user_out(serve: Serve, factory: Factory) -> None:
    behind_proxy = serve(
        SOLARFLEET_TRUSTED_PROXIES="127.0.0.1", SOLARFLEET_LOGIN_MAX_FAILURES_PER_USER="30"
    )
    user = factory.user("OVERVIEW")
    home, attacker = "198.51.100.7", "203.0.113.66"
    assert _login(behind_proxy, user.username, via=home) == 200
    # one address: 60 guesses at once lock that address out of this user, nobody else
    wrong = {"username": user.username, "password": "wrong"}
    answers = _flood(behind_proxy, [wrong] * 60, [attacker] * 60)
    assert _codes(answers) == {401: PAIR_LIMIT, 429: 60 - PAIR_LIMIT}
    assert _login(behind_proxy, user.username, via=attacker) == 429
    assert _login(behind_proxy, user.username, via="198.51.100.99") == 200  # a new address
    # many addresses (a botnet): the username is refused at new addresses, never at home
    botnet = [f"192.0.2.{n}" for n in range(60)]
    answers = _flood(behind_proxy, [wrong] * 60, botnet)  # type: ignore[arg-type]
    assert _codes(answers) == {401: 30 - PAIR_LIMIT, 429: 30 + PAIR_LIMIT}
    assert _login(behind_proxy, user.username, via="198.51.100.100") == 429
    assert _login(behind_proxy, user.username, via=home) == 200


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_an_ordinary_get_stays_fast_during_a_flood(serve: Serve, factory: Factory) -> None:
    """The default argon2 cost (64 MiB a hash): 60 logins at once, each from its own address
    for its own username, so that the throttle lets every one through to the hash."""
    server = serve(
        SOLARFLEET_ARGON2_TIME_COST="3",
        SOLARFLEET_ARGON2_MEMORY_KIB="65536",
        SOLARFLEET_TRUSTED_PROXIES="127.0.0.1",
    )
    headers = factory.headers("OVERVIEW")
    latencies: list[float] = []
    done = threading.Event()

    def reader() -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            assert http.get("/v1/entities").status_code == 200  # warm: not measured
            ready.set()
            while not done.is_set():
                t0 = time.perf_counter()
                assert http.get("/v1/entities").status_code == 200
                latencies.append(time.perf_counter() - t0)
                time.sleep(0.01)

    ready = threading.Event()
    probe = threading.Thread(target=reader)
    probe.start()
    ready.wait(60)
    try:
        bodies = [{"username": f"guess-{n}", "password": "x"} for n in range(60)]
        answers = _flood(server, bodies, [f"203.0.113.{n}" for n in range(60)])  # type: ignore[arg-type]
    finally:
        done.set()
        probe.join()
    codes = _codes(answers)
    assert set(codes) <= {401, 429} and codes[401] >= 2, codes
    for a in answers:
        if a.status_code == 429:
            assert a.json()["message"] == (
                "Too many logins in progress (limit 2 password checks at once); "
                "try again in 1 seconds"
            )
            assert a.headers["Retry-After"] == "1"
    latencies.sort()
    assert len(latencies) >= 5, latencies
    # loose, for a shared machine: before the gate, the median was seconds and the worst 48 s
    assert latencies[len(latencies) // 2] < 0.5, latencies
    assert latencies[-1] < 5, latencies
    # two hashes at a time: far below the 2.2 GB that sixty at once took
    assert _peak_rss_mib(server.process.pid) < 800
