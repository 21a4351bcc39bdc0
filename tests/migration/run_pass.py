"""Migration passes in processes of their own, for the crash tests, settings from the
environment. The process imports everything once, then reads lines from stdin: each line
``<checkpoint>[#n]`` (or empty) forks a child that runs one pass; it prints ``PID <pid>``,
``PAUSED <checkpoint>`` when the child reaches the n-th time that checkpoint (and waits there
to be killed), and ``EXIT <status>`` when the child is gone."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter

from solarfleet.db import make_engine, make_sessionmaker
from solarfleet.migration.leases import default_holder
from solarfleet.migration.service import migrate_pass
from solarfleet.settings import Settings
from solarfleet.telemetry.archive import Archive
from solarfleet.telemetry.embedded import EmbeddedHotStore
from solarfleet.telemetry.hot import HotStore
from solarfleet.telemetry.influx import InfluxHotStore


def hot_store(settings: Settings) -> HotStore:
    if settings.influx_url:
        return InfluxHotStore(settings.influx_url, database=settings.influx_database)
    return EmbeddedHotStore(settings.data_dir / "hot" / "telemetry.sqlite")


def serve() -> None:
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            try:
                one_pass(line.strip())
            finally:
                os._exit(1)
        print(f"PID {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"EXIT {status}", flush=True)


def one_pass(target: str) -> None:
    settings = Settings()
    name, _, nth = target.partition("#")
    seen: Counter[str] = Counter()

    def checkpoint(point: str) -> None:
        seen[point] += 1
        print(f"CHECKPOINT {point}", flush=True)
        if point == name and seen[point] == int(nth or 1):
            print(f"PAUSED {point}", flush=True)
            while True:
                time.sleep(60)

    engine = make_engine(settings.effective_database_url)
    report = migrate_pass(
        sessions=make_sessionmaker(engine),
        hot=hot_store(settings),
        archive=Archive.from_settings(settings),
        holder=default_holder(),  # a fresh name each run, as `solarfleet telemetry migrate`
        batch_size=settings.migration_batch_size,
        retention_days=settings.hot_retention_days,
        checkpoint=checkpoint,
    )
    print(f"DONE units={report.units} points={report.points}", flush=True)
    os._exit(0)


if __name__ == "__main__":
    serve()
