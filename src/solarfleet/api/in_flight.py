"""A cap on the list requests one user has running at once, so that one client's heavy queries
degrade that client (429), not the service: the thread pool and the cores stay shared."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from solarfleet.errors import TooManyRequests

SETTING = "SOLARFLEET_QUERY_MAX_IN_FLIGHT_PER_USER"
RETRY_AFTER_SECONDS = 1


class InFlight:
    """Counts running requests per user (in this process); ``cap`` 0 counts nothing."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._lock = threading.Lock()
        self._running: Counter[int] = Counter()

    @contextmanager
    def slot(self, user_id: int) -> Iterator[None]:
        """Hold one of ``user_id``'s slots while the block runs; 429 when none is free."""
        if self.cap <= 0:
            yield
            return
        with self._lock:
            if self._running[user_id] >= self.cap:
                exc = TooManyRequests(
                    f"{self.cap} list requests of yours are running; the limit is {self.cap}"
                    f" ({SETTING}): wait for one to finish"
                )
                exc.headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
                raise exc
            self._running[user_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._running[user_id] -= 1
                if not self._running[user_id]:
                    del self._running[user_id]
