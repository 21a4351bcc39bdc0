"""Advancing rollouts as a Celery task (with a broker): ``worker --beat`` schedules it every
``rollout_tick_seconds``; any worker runs it. Two runs at once are harmless: each rollout is
advanced under its row lock (``SKIP LOCKED``), see :mod:`solarfleet.rollouts.advance`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from solarfleet.migration.tasks import app, settings

_sessions: sessionmaker[Session] | None = None


def sessions() -> sessionmaker[Session]:
    """This worker process's sessions (an engine opened on first use)."""
    global _sessions
    if _sessions is None:
        from solarfleet.db import make_engine, make_sessionmaker

        _sessions = make_sessionmaker(make_engine(settings.effective_database_url))
    return _sessions


@app.task(name="solarfleet.rollouts.advance", ignore_result=True)
def advance_rollouts() -> dict[str, Any]:
    """One :func:`~solarfleet.rollouts.advance.advance`; what it did."""
    from solarfleet.rollouts.advance import advance

    report = advance(sessions())
    return {
        "rollouts": report.rollouts,
        "phases": report.phases,
        "units_set": report.units_set,
        "paused": report.paused,
        "completed": report.completed,
    }
