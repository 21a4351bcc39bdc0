"""A bound on the password hashes one API process runs at once.

argon2 takes ``argon2_memory_kib`` (64 MiB by default) and a core for a fraction of a second per
hash: sixty logins at once took 2.2 GB and starved every other request. Through the gate, at most
``login_max_concurrent_hashes`` run at once (in worker threads); a login waits for a turn up to
``login_hash_wait_seconds`` and then answers 429 naming the limit, with ``Retry-After``.

A waiting login holds no thread: it polls the semaphore from the event loop (a few times per
hash), so requests that do not log in keep the whole thread pool. A ``threading`` semaphore
rather than an asyncio one: one app may be driven by several event loops (test clients).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import anyio
from starlette.concurrency import run_in_threadpool

from solarfleet.errors import TooManyRequests

T = TypeVar("T")
RETRY_AFTER_SECONDS = 1
_POLL_MIN, _POLL_MAX = 0.002, 0.05


class HashGate:
    def __init__(self, *, limit: int, wait_seconds: float) -> None:
        self.limit = limit
        self.wait_seconds = wait_seconds
        self._slots = threading.BoundedSemaphore(limit)

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker thread once a slot is free; 429 if none frees up in time."""
        deadline = time.monotonic() + self.wait_seconds
        pause = _POLL_MIN
        while not self._slots.acquire(blocking=False):
            if time.monotonic() >= deadline:
                exc = TooManyRequests(
                    f"Too many logins in progress (limit {self.limit} password checks at once); "
                    f"try again in {RETRY_AFTER_SECONDS} seconds"
                )
                exc.headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
                raise exc
            await anyio.sleep(pause)
            pause = min(pause * 2, _POLL_MAX)
        try:
            return await run_in_threadpool(fn)
        finally:
            self._slots.release()
