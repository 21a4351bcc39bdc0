"""``solarfleet serve`` advancing rollouts itself when no broker is configured.

Every ``rollout_tick_seconds`` a background task runs :func:`~solarfleet.rollouts.advance.advance`
in a worker thread. Several server processes may each run one: each rollout is advanced under its
row lock (``SKIP LOCKED`` on PostgreSQL, the write lock on SQLite), so never by two at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from solarfleet.settings import Settings

log = logging.getLogger("solarfleet.rollouts")


async def _tick_forever(sessions: sessionmaker[Session], seconds: float) -> None:
    from solarfleet.rollouts.advance import advance, due_soon

    while True:
        await asyncio.sleep(seconds)
        try:
            if await run_in_threadpool(due_soon, sessions):
                report = await run_in_threadpool(advance, sessions)
                if report.phases or report.paused or report.completed:
                    log.info(
                        "rollouts: phases begun %s (%d units set), paused %s, completed %s",
                        report.phases, report.units_set, report.paused, report.completed,
                    )  # fmt: skip
        except Exception:  # noqa: BLE001 - a database hiccup must not end the ticker
            log.exception("advancing rollouts failed; trying again next tick")


@contextlib.asynccontextmanager
async def run_ticker(settings: Settings, sessions: sessionmaker[Session]) -> AsyncIterator[None]:
    """The ticker for the app's lifetime: only when no broker runs it (``worker --beat``)."""
    if settings.broker_url or settings.rollout_tick_seconds <= 0:
        yield
        return
    task = asyncio.create_task(_tick_forever(sessions, settings.rollout_tick_seconds))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
