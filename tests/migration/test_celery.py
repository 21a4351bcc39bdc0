"""The Celery path against a real Redis (SOLARFLEET_TEST_REDIS_URL): a worker in a subprocess
takes a shard task from its queue and migrates the shard."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from solarfleet.migration.service import FAR_FUTURE_US, shard_of
from solarfleet.migration.tasks import make_celery
from solarfleet.settings import Settings
from solarfleet.telemetry.archive import Archive
from tests.migration.conftest import DAY, REDIS_URL, T0, Fleet, HotSpec

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not REDIS_URL, reason="SOLARFLEET_TEST_REDIS_URL is not set: no Redis to test against"
)


@pytest.mark.parametrize("hot_spec", ["embedded"], indirect=True)
def test_a_worker_migrates_the_shard_it_is_given(
    fleet: Fleet, archive: Archive, archive_settings: Settings, hot_spec: HotSpec, tmp_path: Path
) -> None:
    for imei in fleet.imeis:
        fleet.upload(imei, fleet.readings(imei, T0, 10))
    queue = f"test.migration.{uuid.uuid4().hex[:8]}"
    settings = archive_settings.model_copy(
        update={"broker_url": REDIS_URL, "migration_queue": queue}
    )
    env = {
        **os.environ,
        **hot_spec.env(tmp_path),
        "SOLARFLEET_DATABASE_URL": settings.effective_database_url,
        "SOLARFLEET_ARCHIVE_URL": settings.archive_url or "",
        "SOLARFLEET_ARCHIVE_TABLE": settings.archive_table,
        "SOLARFLEET_ARCHIVE_BUCKETS": str(settings.archive_buckets),
        "SOLARFLEET_BROKER_URL": REDIS_URL or "",
        "SOLARFLEET_MIGRATION_QUEUE": queue,
        "PYTHONPATH": str(ROOT),
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "solarfleet.migration.tasks",
            "worker",
            "--pool=solo",
            f"--queues={queue}",
            "--loglevel=warning",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = make_celery(settings)
    try:
        shard = shard_of(fleet.imeis[0], 2)
        result = client.send_task("solarfleet.migrate_shard", args=[shard, 2], queue=queue)
        summary = result.get(timeout=90)
        mine = [i for i in fleet.imeis if shard_of(i, 2) == shard]
        assert summary["units"] == len(mine) and summary["points"] == 10 * len(mine)
        for imei in fleet.imeis:
            expected = fleet.expected(imei) if imei in mine else []
            assert archive.read(imei, -DAY, FAR_FUTURE_US) == expected
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        client.close()
