"""Two workers on the same shard never migrate the same unit at once: the lease table's
compare-and-set, raced by threads, and two whole passes raced on one shard."""

from __future__ import annotations

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
