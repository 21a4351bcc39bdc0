"""Running requests against each other for a while: threads, each with clients of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

Job = Callable[[Any], Any]


def run_together(
    make_client: Callable[[], Any], jobs: list[Job], seconds: float
) -> list[list[Any]]:
    """Run each job in a loop in a thread of its own, all released together, for ``seconds``,
    each given what ``make_client()`` made for its thread (a TestClient, httpx clients of real
    servers); the results of every call, per job. An exception in a job is raised here."""
    barrier = threading.Barrier(len(jobs))
    stop = time.monotonic() + seconds
    results: list[list[Any]] = [[] for _ in jobs]
    errors: list[BaseException] = []

    def loop(i: int) -> None:
        try:
            client = make_client()
            barrier.wait()
            while time.monotonic() < stop and not errors:
                results[i].append(jobs[i](client))
        except threading.BrokenBarrierError:
            pass  # another job failed before the start: its error is the one raised
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
