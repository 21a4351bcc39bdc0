"""Redis down leaves ``solarfleet telemetry migrate`` working in-process.

The broker (SOLARFLEET_BROKER_URL) is a private ``redis-server`` that the test starts and then
stops (or freezes with SIGSTOP: connections accepted, nothing answered). ``solarfleet telemetry
migrate --once`` runs as a real process, with and without ``--celery`` (queue the pass for
workers, or run it here when there is no broker): it completes in bounded time, and the archive
holds every reading of every unit, with the units' migration history written."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from solarfleet.migration.models import ProductMigrationHistory
from solarfleet.migration.service import FAR_FUTURE_US
from solarfleet.settings import Settings
from solarfleet.telemetry.archive import Archive
from tests.faults.services import BIN, PrivateRedis, server_env
from tests.migration.conftest import DAY, T0, Fleet, HotSpec

BOUND = 120.0  # seconds a migrate run may take here, broker timeouts included


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = PrivateRedis(folder)
    try:
        yield server
    finally:
        server.stop()


def _migrate(
    args: list[str], settings: Settings, spec: HotSpec, data_dir: Path, broker: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    if not BIN.exists():
        pytest.skip(f"{BIN} is not installed")
    env = server_env(
        data_dir,
        **spec.env(data_dir),
        SOLARFLEET_DATABASE_URL=settings.effective_database_url,
        SOLARFLEET_ARCHIVE_URL=settings.archive_url or "",
        SOLARFLEET_ARCHIVE_TABLE=settings.archive_table,
        SOLARFLEET_ARCHIVE_BUCKETS=str(settings.archive_buckets),
        SOLARFLEET_BROKER_URL=broker,
        SOLARFLEET_MIGRATION_QUEUE=f"faults.{data_dir.name}",
        COLUMNS="200",  # one line per message from Rich
    )
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN), "telemetry", "migrate", "--once", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=BOUND,
    )
    return result, time.monotonic() - started


def _everything_archived(fleet: Fleet, archive: Archive) -> None:
    for imei in fleet.imeis:
        assert archive.read(imei, -DAY, FAR_FUTURE_US) == fleet.expected(imei), imei
    with fleet.sessions() as session:
        history = set(session.scalars(select(ProductMigrationHistory.product_imei)))
    assert history == set(fleet.imeis)


@pytest.mark.parametrize("hot_spec", ["embedded"], indirect=True)
@pytest.mark.parametrize("broker_state", ["stopped", "frozen"])
@pytest.mark.parametrize("celery", [False, True], ids=["plain", "celery"])
def test_migrate_runs_in_process_when_redis_is_down(
    fleet: Fleet,
    archive: Archive,
    archive_settings: Settings,
    hot_spec: HotSpec,
    redis: PrivateRedis,
    tmp_path: Path,
    broker_state: str,
    celery: bool,
) -> None:
    for i, imei in enumerate(fleet.imeis):
        fleet.upload(imei, fleet.readings(imei, T0 + i * DAY, 30))
    if broker_state == "stopped":
        redis.stop()
    else:
        redis.freeze()
    result, seconds = _migrate(
        ["--celery"] if celery else [], archive_settings, hot_spec, tmp_path, redis.url
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"Migrated {len(fleet.imeis)} units, {30 * len(fleet.imeis)} points" in output, output
    if celery:
        assert "Broker unreachable" in output and "migrating in this process" in output, output
    assert "Traceback" not in output, output
    _everything_archived(fleet, archive)
    print(f"\nmigrate {'--celery ' if celery else ''}with Redis {broker_state}: {seconds:.1f}s")


@pytest.mark.parametrize("hot_spec", ["embedded"], indirect=True)
def test_with_redis_up_the_pass_is_queued_not_run_here(
    fleet: Fleet,
    archive: Archive,
    archive_settings: Settings,
    hot_spec: HotSpec,
    redis: PrivateRedis,
    tmp_path: Path,
) -> None:
    """The control: the same command with a live broker queues the pass for the workers."""
    import redis as redis_client

    fleet.upload(fleet.imeis[0], fleet.readings(fleet.imeis[0], T0, 5))
    result, _ = _migrate(["--celery"], archive_settings, hot_spec, tmp_path, redis.url)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"Queued 16 shard tasks on faults.{tmp_path.name}" in output, output
    assert "Migrated" not in output, output
    with redis_client.Redis.from_url(redis.url) as queue:
        assert queue.llen(f"faults.{tmp_path.name}") == 1  # migrate_all, for a worker to take
    assert archive.read(fleet.imeis[0], -DAY, FAR_FUTURE_US) == []
