"""One ``advance`` in a process of its own, for the crash test: settings from the environment,
the checkpoint to stop at (``<name>[#n]``, or nothing) as the first argument. It prints
``PAUSED <name>`` when it gets there and waits to be killed; ``DONE`` if it finishes."""

from __future__ import annotations

import sys
import time
from collections import Counter

from solarfleet.db import make_engine, make_sessionmaker
from solarfleet.rollouts.advance import advance
from solarfleet.settings import Settings


def main(target: str) -> None:
    name, _, nth = target.partition("#")
    seen: Counter[str] = Counter()

    def checkpoint(point: str) -> None:
        seen[point] += 1
        if point == name and seen[point] == int(nth or 1):
            print(f"PAUSED {point}", flush=True)
            while True:
                time.sleep(60)

    sessions = make_sessionmaker(make_engine(Settings().effective_database_url))
    report = advance(sessions, checkpoint=checkpoint)
    print(f"DONE phases={report.phases}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
