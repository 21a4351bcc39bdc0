"""Two workers on the same shard never migrate the same unit at once: the lease table's
compare-and-set, raced by threads, and two whole passes raced on one shard."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from solarfleet.db import utcnow, write_session
from solarfleet.migration import leases
from solarfleet.migration.service import FAR_FUTURE_US, migrate_pass
from solarfleet.telemetry.archive import Archive
from solarfleet.telemetry.hot import HotStore
from solarfleet.telemetry.points import Point
from tests.factories import Factory
from tests.migration.conftest import DAY, T0, Fleet


def _race(workers: int, target: object) -> None:
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait()
            target(n)  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


def test_each_lease_goes_to_exactly_one_worker(
    factory: Factory, sessions: sessionmaker[Session]
) -> None:
    product_type = factory.product_type()
    imeis = [factory.product(product_type=product_type).product_imei for _ in range(30)]
    got: dict[int, list[str]] = {}

    def take(n: int) -> None:
        with write_session(sessions) as session:
            got[n] = leases.acquire(session=session, imeis=imeis, holder=f"w{n}", seconds=60)
            session.commit()

    _race(4, take)
    owners = defaultdict(list)
    for n, units in got.items():
        for imei in units:
            owners[imei].append(n)
    assert sorted(owners) == sorted(imeis)
    assert all(len(who) == 1 for who in owners.values())


def test_an_expired_lease_can_be_taken_and_ours_renewed(
    factory: Factory, sessions: sessionmaker[Session]
) -> None:
    imei = factory.product().product_imei
    with write_session(sessions) as session:
        assert leases.acquire(session=session, imeis=[imei], holder="a", seconds=60) == [imei]
        assert leases.acquire(session=session, imeis=[imei], holder="b", seconds=60) == []
        assert leases.acquire(session=session, imeis=[imei], holder="a", seconds=60) == [imei]
        later = utcnow() + timedelta(seconds=120)
        assert leases.acquire(session=session, imeis=[imei], holder="b", seconds=60, now=later) == [
            imei
        ]
        assert leases.still_held(session=session, imeis=[imei], holder="a", seconds=60) == []
        assert leases.still_held(session=session, imeis=[imei], holder="b", seconds=60) == [imei]
        leases.release(session=session, imeis=[imei], holder="b")
        assert leases.acquire(session=session, imeis=[imei], holder="c", seconds=60) == [imei]
        session.commit()


class SpyingHotStore:
    """Records which worker read which unit, and overlapping reads of one unit."""

    def __init__(self, inner: HotStore) -> None:
        self.inner = inner
        self.readers: dict[str, list[str]] = defaultdict(list)
        self.active: dict[str, int] = defaultdict(int)
        self.overlaps = 0
        self.lock = threading.Lock()

    def read(self, imei: str, start_us: int, end_us: int, **kw: object) -> list[Point]:
        with self.lock:
            self.active[imei] += 1
            self.overlaps += self.active[imei] > 1
            self.readers[imei].append(threading.current_thread().name)
        time.sleep(0.01)  # widen the window for a race
        try:
            return self.inner.read(imei, start_us, end_us, **kw)  # type: ignore[arg-type]
        finally:
            with self.lock:
                self.active[imei] -= 1

    def write(self, points: Sequence[Point]) -> int:
        return self.inner.write(points)

    def counts_by_day(self, imei: str, start_us: int, end_us: int) -> dict[int, int]:
        return self.inner.counts_by_day(imei, start_us, end_us)

    def drop(self, imei: str, start_us: int, end_us: int) -> int:
        return self.inner.drop(imei, start_us, end_us)

    def close(self) -> None:
        self.inner.close()


def test_two_workers_on_one_shard_never_both_migrate_a_unit(
    factory: Factory, fleet: Fleet, archive: Archive
) -> None:
    product_type = factory.product_type()
    fleet.imeis += [factory.product(product_type=product_type).product_imei for _ in range(8)]
    for imei in fleet.imeis:
        fleet.upload(imei, fleet.readings(imei, T0, 20))
    spy = SpyingHotStore(fleet.hot)
    reports = {}

    def work(n: int) -> None:
        threading.current_thread().name = f"worker-{n}"
        reports[n] = migrate_pass(
            sessions=fleet.sessions,
            hot=spy,  # type: ignore[arg-type]
            archive=archive,
            holder=f"worker-{n}",
            shard=0,
            shards=1,
            batch_size=3,
        )

    _race(2, work)
    assert spy.overlaps == 0
    assert all(len(readers) == 1 for readers in spy.readers.values()), spy.readers
    assert sorted(spy.readers) == sorted(fleet.imeis)
    assert reports[0].units + reports[1].units == len(fleet.imeis)
    for imei in fleet.imeis:
        assert archive.read(imei, -DAY, FAR_FUTURE_US) == fleet.expected(imei)


def test_a_lease_of_a_process_gone_from_this_machine_is_taken_at_once(
    factory: Factory, sessions: sessionmaker[Session]
) -> None:
    """Issue 15 item 2: a re-run after a SIGKILL need not wait for the lease to expire."""
    imeis = [factory.product().product_imei for _ in range(5)]
    host = socket.gethostname()
    exited = subprocess.Popen(["true"])
    exited.wait()  # gone (reaped)
    zombie = subprocess.Popen(["true"])  # exits, never reaped: a zombie
    deadline = time.monotonic() + 10
    while not leases._process_gone(zombie.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    holders = [
        f"{host}:{exited.pid}:dead0001",  # a process of this machine that is gone
        f"{host}:{zombie.pid}:dead0002",  # killed, its parent has not reaped it yet
        f"{host}:{os.getppid()}:alive001",  # a process that runs
        f"elsewhere-{host}:{exited.pid}:other001",  # another machine's: we cannot tell
        "worker-a",  # a name that is no host:pid:suffix
    ]
    with write_session(sessions) as session:
        for imei, holder in zip(imeis, holders, strict=True):
            assert leases.acquire(session=session, imeis=[imei], holder=holder, seconds=900)
        session.commit()
    me = leases.default_holder()
    with write_session(sessions) as session:
        taken = leases.acquire(session=session, imeis=imeis, holder=me, seconds=900)
        session.commit()
    assert taken == sorted(imeis[:2])
    zombie.wait()


def test_a_rerun_after_a_kill_migrates_at_once(
    factory: Factory, fleet: Fleet, archive: Archive
) -> None:
    """A run killed while holding its units (its leases 900 s long), then a new run under a
    new name, as `solarfleet telemetry migrate` does: every unit is migrated."""
    for imei in fleet.imeis:
        fleet.upload(imei, fleet.readings(imei, T0, 10))
    killed = subprocess.Popen(["true"])
    killed.wait()
    with write_session(fleet.sessions) as session:
        leases.acquire(
            session=session,
            imeis=fleet.imeis,
            holder=f"{socket.gethostname()}:{killed.pid}:killed01",
            seconds=900,
        )
        session.commit()
    report = migrate_pass(
        sessions=fleet.sessions, hot=fleet.hot, archive=archive, holder=leases.default_holder()
    )
    assert (report.units, report.skipped) == (len(fleet.imeis), 0)
    for imei in fleet.imeis:
        assert archive.read(imei, -DAY, FAR_FUTURE_US) == fleet.expected(imei)
