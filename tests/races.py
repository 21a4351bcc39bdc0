"""Running requests against each other for a while: threads, each its own HTTP client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

Job = Callable[[TestClient], Any]


def run_together(app: FastAPI, jobs: list[Job], seconds: float) -> list[list[Any]]:
    """Run each job in a loop in a thread of its own, all released together, for ``seconds``;
    the results of every call, per job. An exception in a job is raised here."""
    barrier = threading.Barrier(len(jobs))
    stop = time.monotonic() + seconds
    results: list[list[Any]] = [[] for _ in jobs]
    errors: list[BaseException] = []

    def loop(i: int) -> None:
        client = TestClient(app)
        barrier.wait()
        try:
            while time.monotonic() < stop and not errors:
                results[i].append(jobs[i](client))
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
