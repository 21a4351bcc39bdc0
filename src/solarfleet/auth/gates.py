"""Bounds on what logins may occupy in one API process, so that a login flood degrades logins,
not the service.

* Password hashes: argon2 takes ``argon2_memory_kib`` (64 MiB by default) and a core for a
  fraction of a second per hash; sixty logins at once took 2.2 GB and starved every other
  request. At most ``login_max_concurrent_hashes`` run at once; a login waits for a turn up to
  ``login_hash_wait_seconds``, then answers 429 naming the limit, with ``Retry-After``. The
  hashes run in threads of their own at a lower CPU priority (``nice`` 10, per thread on
  Linux), so that the requests that are not logins come first on a busy machine.
* The throttle's short write transactions (``solarfleet.auth.throttle``): one at a time on
  SQLite (a single writer anyway: forty threads queued in SQLite's busy handler, each holding a
  pooled connection, let a reservation through every few hundred milliseconds and left
  ordinary requests waiting for a connection), a few at a time on PostgreSQL.

A waiting login holds no thread and no connection: it awaits its turn on the event loop (first
come, first served), so requests that do not log in keep the thread pool. The slots are counted
under a ``threading`` lock and a freed one is handed to the next waiter on that waiter's own
loop: one app may be driven by several event loops, as test clients do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from solarfleet.errors import TooManyRequests
from solarfleet.settings import Settings

T = TypeVar("T")
RETRY_AFTER_SECONDS = 1
# Throttle transactions are a few milliseconds: this long a wait means thousands queued.
DATABASE_WAIT_SECONDS = 10.0
HASH_NICENESS = 10


class Gate:
    """At most ``limit`` calls at once, each in a worker thread; the rest wait in line."""

    def __init__(
        self, *, limit: int, wait_seconds: float, what: str, nice: int | None = None
    ) -> None:
        self.limit = limit
        self.wait_seconds = wait_seconds
        self.what = what  # "password checks": named in the 429
        self._lock = threading.Lock()
        self._free = limit
        # Waiters in arrival order; a freed slot is handed to the first (granted), woken on its
        # own event loop.
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._granted: set[asyncio.Future[None]] = set()
        # nice: threads of the gate's own, that much lower in CPU priority; else the thread pool.
        self._threads = None
        if nice is not None:
            self._threads = ThreadPoolExecutor(
                max_workers=limit,
                thread_name_prefix="solarfleet-login",
                initializer=_lower,
                initargs=(nice,),
            )

    async def run(self, fn: Callable[[], T], *, wait: bool = True) -> T:
        """``fn()`` once a slot is free; 429 if none frees up within ``wait_seconds``
        (``wait=False``: however long it takes, for work that must not be refused)."""
        await self._acquire(self.wait_seconds if wait else None)
        try:
            if self._threads is None:
                return await run_in_threadpool(fn)
            return await asyncio.get_running_loop().run_in_executor(self._threads, fn)
        finally:
            self._release()

    async def _acquire(self, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return
            turn: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, turn))
        try:
            await asyncio.wait_for(asyncio.shield(turn), timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            with self._lock:
                granted = turn in self._granted
                self._granted.discard(turn)
                if not granted:
                    self._waiters.remove((loop, turn))
            if granted and isinstance(exc, TimeoutError):
                return  # the slot came with the deadline: use it
            if granted:
                self._release()  # cancelled holding a slot: pass it on
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise self._refusal() from None
        with self._lock:
            self._granted.discard(turn)

    def _release(self) -> None:
        with self._lock:
            while self._waiters:
                loop, turn = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(_wake, turn)
                except RuntimeError:  # its event loop is gone: nobody is waiting there
                    continue
                self._granted.add(turn)
                return
            self._free += 1

    def _refusal(self) -> TooManyRequests:
        exc = TooManyRequests(
            f"Too many logins in progress (limit {self.limit} {self.what} at once); "
            f"try again in {RETRY_AFTER_SECONDS} seconds"
        )
        exc.headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return exc


def _wake(turn: asyncio.Future[None]) -> None:
    if not turn.done():
        turn.set_result(None)


def _lower(nice: int) -> None:
    """Lower the calling thread's CPU priority (Linux: niceness is per thread)."""
    with contextlib.suppress(OSError):  # not permitted: the normal priority, then
        os.nice(nice)


@dataclass(frozen=True)
class LoginGates:
    hashes: Gate
    database: Gate


def login_gates(settings: Settings) -> LoginGates:
    return LoginGates(
        hashes=Gate(
            limit=settings.login_max_concurrent_hashes,
            wait_seconds=settings.login_hash_wait_seconds,
            what="password checks",
            nice=HASH_NICENESS,
        ),
        database=Gate(
            limit=1 if settings.is_sqlite else 4,
            wait_seconds=DATABASE_WAIT_SECONDS,
            what="throttle checks",
        ),
    )
