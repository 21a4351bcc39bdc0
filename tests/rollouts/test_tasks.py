"""With a broker: beat schedules the rollout task every tick, and the task advances rollouts."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.migration.tasks import app
from solarfleet.rollouts import tasks
from tests.rollouts.conftest import Fleet, create, show


def test_beat_schedules_the_rollout_task_every_tick() -> None:
    entry = app.conf.beat_schedule["advance-rollouts"]
    assert entry["task"] == "solarfleet.rollouts.advance" == tasks.advance_rollouts.name
    assert entry["schedule"] == tasks.settings.rollout_tick_seconds
    assert "solarfleet.rollouts.tasks" in app.conf.include


def test_the_task_advances_rollouts(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(tasks, "_sessions", sessions)
    rid = create(client, rfleet.admin, rfleet.body(phases=[{"batch": 5}]))["parameter_rollout_id"]
    result = tasks.advance_rollouts.apply().get()
    assert result == {"rollouts": 1, "phases": [(rid, 1)], "units_set": 5, "paused": [],
                      "completed": []}  # fmt: skip
    assert show(client, rfleet.admin, rid)["counts"]["pending"] == 5
