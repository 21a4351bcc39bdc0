"""The clients of the fault tests: threads that send their kinds of request in turn, as fast as
the server answers, until told to stop, and record every answer (or its absence)."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Call:
    kind: str
    started: float
    ended: float
    status: int | None  # None: no answer (a transport error or the client's timeout)
    text: str
    headers: dict[str, str]
    payload: Any = None  # what a write sent: the parameter value, the reading's value


class LoadClient(threading.Thread):
    """Sends ``actions`` in turn (each client starting at another one); ``send`` makes one
    request of a kind with a value unique to the client (``index * 1,000,000 + n``)."""

    actions: tuple[str, ...] = ()
    request_timeout = 20.0  # a request hanging this long is recorded as unanswered

    def __init__(self, url: str, site: Any, index: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.site = site
        self.unit = site.units[index]
        self.index = index
        self.stop_event = stop
        self.calls: list[Call] = []
        self.values = itertools.count(index * 1_000_000 + 1)

    def rotated(self) -> tuple[str, ...]:
        i = self.index % len(self.actions)
        return self.actions[i:] + self.actions[:i]

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=self.request_timeout) as http:
            for kind in itertools.cycle(self.rotated()):
                if self.stop_event.is_set():
                    return
                call = self.one(http, kind)
                self.calls.append(call)
                if call.status == 503:
                    self.stop_event.wait(0.05)  # a unit would honour Retry-After; not that long

    def one(self, http: httpx.Client, kind: str) -> Call:
        value = next(self.values)
        started = time.monotonic()
        try:
            r = self.send(http, kind, value)
        except httpx.HTTPError as exc:
            return Call(kind, started, time.monotonic(), None, repr(exc), {}, value)
        return Call(kind, started, time.monotonic(), r.status_code, r.text, dict(r.headers), value)

    def send(self, http: httpx.Client, kind: str, value: int) -> httpx.Response:
        raise NotImplementedError
