"""The migration as Celery tasks (Redis broker: SOLARFLEET_BROKER_URL), sharded by unit.

``migrate_all`` (run by beat every ``migration_interval_seconds``) fans out one
``migrate_shard(shard, shards)`` per shard; any number of workers on any number of machines take
them. Two tasks for the same shard at once are harmless: the lease table gives each unit to one
of them. Run a worker with ``solarfleet worker`` (or ``celery -A solarfleet.migration.tasks
worker``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from celery import Celery, Task, group
from celery.signals import worker_process_shutdown
from pyiceberg.exceptions import CommitFailedException, ValidationException
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.errors import ServiceUnavailable
from solarfleet.settings import Settings

log = logging.getLogger("solarfleet.migration")


def make_celery(settings: Settings) -> Celery:
    broker = settings.broker_url or "redis://127.0.0.1:6379/0"
    app = Celery("solarfleet", broker=broker, backend=broker, include=["solarfleet.rollouts.tasks"])
    app.conf.update(
        task_default_queue=settings.migration_queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,  # a worker that dies mid-task leaves it for another
        worker_prefetch_multiplier=1,
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        beat_schedule={
            "migrate-all": {
                "task": "solarfleet.migrate_all",
                "schedule": settings.migration_interval_seconds,
            },
            "advance-rollouts": {  # solarfleet.rollouts.tasks
                "task": "solarfleet.rollouts.advance",
                "schedule": settings.rollout_tick_seconds,
                "options": {"expires": settings.rollout_tick_seconds},  # no backlog of ticks
            },
        },
    )
    return app


settings = Settings()
app = make_celery(settings)


@dataclass
class _Resources:
    sessions: sessionmaker[Session]
    hot: Any
    archive: Any
    holder: str


_resources: _Resources | None = None


def resources() -> _Resources:
    """This worker process's database, hot store and archive (opened once, on first use)."""
    global _resources
    if _resources is None:
        from solarfleet.db import make_engine, make_sessionmaker
        from solarfleet.migration.leases import default_holder
        from solarfleet.telemetry.archive import Archive
        from solarfleet.telemetry.store import make_hot_store

        engine = make_engine(settings.effective_database_url)
        _resources = _Resources(
            sessions=make_sessionmaker(engine),
            hot=make_hot_store(settings),
            archive=Archive.from_settings(settings),
            holder=default_holder(),
        )
    return _resources


@worker_process_shutdown.connect
def _close(**_kwargs: Any) -> None:
    if _resources is not None:
        _resources.hot.close()
        _resources.archive.close()


class MigrationTask(Task):  # type: ignore[misc]
    """The base of the migration tasks: retries when a backing service is down or the archive
    commit keeps conflicting, a time limit, and a log line per run."""

    autoretry_for = (ServiceUnavailable, CommitFailedException, ValidationException)
    retry_backoff = 5
    retry_backoff_max = 300
    max_retries = 10
    time_limit = 3600
    soft_time_limit = 3300


@app.task(base=MigrationTask, name="solarfleet.migrate_shard")
def migrate_shard(shard: int, shards: int, sweep: bool = False) -> dict[str, Any]:
    """One pass over the units of ``shard`` of ``shards``; a summary of it."""
    from solarfleet.migration.service import migrate_pass

    res = resources()
    report = migrate_pass(
        sessions=res.sessions,
        hot=res.hot,
        archive=res.archive,
        holder=res.holder,
        shard=shard,
        shards=shards,
        sweep=sweep,
        batch_size=settings.migration_batch_size,
        lease_seconds=settings.migration_lease_seconds,
        retention_days=settings.hot_retention_days,
    )
    log.info(
        "shard %d/%d: %d units, %d points in %.1fs",
        shard,
        shards,
        report.units,
        report.points,
        report.seconds,
    )
    return {
        "shard": shard,
        "shards": shards,
        "units": report.units,
        "skipped": report.skipped,
        "points": report.points,
        "commits": len(report.commits),
        "days_dropped": report.drops.days_dropped,
        "seconds": round(report.seconds, 3),
    }


@app.task(name="solarfleet.migrate_all")
def migrate_all(shards: int | None = None) -> int:
    """Fan out one migrate_shard task per shard; the number of shards."""
    n = shards or settings.migration_shards
    group(migrate_shard.s(i, n) for i in range(n)).apply_async()
    return n
