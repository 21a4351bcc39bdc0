"""The bound on concurrent password hashes: never exceeded, a bounded wait, then a 429."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from solarfleet.auth.gates import Gate
from solarfleet.errors import TooManyRequests


def test_no_more_than_the_limit_run_at_once() -> None:
    gate = Gate(limit=3, wait_seconds=30, what="password checks", nice=10)
    lock = threading.Lock()
    running = peak = 0

    def work() -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return threading.get_native_id()

    threads: list[int] = []

    async def main() -> None:
        async def one() -> None:
            threads.append(await gate.run(work))

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)

    anyio.run(main)
    assert len(threads) == 20
    assert peak == 3
    assert len(set(threads)) <= 3  # the gate's own threads


def test_a_full_gate_answers_429_after_the_wait() -> None:
    gate = Gate(limit=1, wait_seconds=0.2, what="password checks")
    release = threading.Event()

    async def main() -> float:
        async with anyio.create_task_group() as tg:
            tg.start_soon(gate.run, release.wait)
            await anyio.sleep(0.05)
            started = time.monotonic()
            with pytest.raises(TooManyRequests) as refused:
                await gate.run(lambda: None)
            waited = time.monotonic() - started
            release.set()
        assert refused.value.message == (
            "Too many logins in progress (limit 1 password checks at once); try again in 1 seconds"
        )
        assert refused.value.headers == {"Retry-After": "1"}
        assert await gate.run(lambda: 7) == 7  # free again
        assert await gate.run(lambda: 8, wait=False) == 8
        return waited

    assert 0.2 <= anyio.run(main) < 2
