"""Crash safety: ``advance`` SIGKILLed at every checkpoint of a phase (and at random moments),
with units confirming values between the runs, never sets a unit twice and never skips one."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.parameters.models import ProductParameter
from solarfleet.rollouts.models import ParameterRolloutTarget
from solarfleet.rollouts.simulate import Stats
from solarfleet.settings import Settings
from tests.rollouts.conftest import Fleet, create, show, tick

ROOT = Path(__file__).resolve().parents[2]
POINTS = [
    "advance.locked",
    "advance.synced",
    "launch.scoped",
    "launch.expired",
    "launch.inserted",
    "launch.linked",
    "advance.before_commit",
    "advance.committed",  # phase 1 is in; killed after the commit
    "launch.inserted",  # phase 2, killed half-way
    "advance.synced",
]


def run(settings: Settings, target: str, *, after: float | None = None) -> bool:
    """An advance in a process of its own, killed at ``target`` (or after ``after`` seconds);
    False when it finished without reaching ``target``."""
    env = {**os.environ, "SOLARFLEET_DATABASE_URL": settings.effective_database_url,
           "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.rollouts.run_advance", "" if after else target],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    if after is not None:
        time.sleep(after)
        proc.kill()
        proc.wait(30)
        return True
    line = proc.stdout.readline().strip()
    if line.startswith("PAUSED"):
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        return True
    assert proc.wait(60) == 0 and line.startswith("DONE"), line
    return False


def check(sessions: sessionmaker[Session], rid: int, imeis: list[str]) -> int:
    """Invariants after any crash; the number of units the rollout has set."""
    actor = f"rollout:{rid}"
    with sessions() as session:
        per_unit = dict(
            session.execute(
                select(ProductParameter.product_imei, func.count())
                .where(ProductParameter.created_by == actor)
                .group_by(ProductParameter.product_imei)
            ).all()
        )
        assert set(per_unit.values()) <= {1}, "a unit set twice"
        targets = session.scalars(
            select(ParameterRolloutTarget).where(ParameterRolloutTarget.parameter_rollout_id == rid)
        ).all()
        for t in targets:
            if t.state == "queued":
                assert t.product_imei not in per_unit and t.product_parameter_id is None
            else:
                assert t.product_imei in per_unit and t.product_parameter_id is not None
        pending = session.scalar(
            select(func.count()).where(
                ProductParameter.status == "pending",
                ProductParameter.product_imei.in_(imeis),
            )
        )
        assert pending <= len(imeis), "two pending values on a unit"
    return len(per_unit)


def confirm_all(client: TestClient, fleet: Fleet) -> None:
    stats = Stats()
    for unit in fleet.virtual():
        unit.poll(client, stats)


def test_killed_at_any_point_it_sets_every_unit_exactly_once(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session], settings: Settings
) -> None:
    manual = {"parameter_type_id": rfleet.limit.parameter_type_id, "value": 90}
    for imei in rfleet.imeis[::3]:  # older pending values the phases must expire, once
        r = client.post(f"/v1/products/{imei}/parameters", json=manual, headers=rfleet.admin)
        assert r.status_code == 201
    body = rfleet.body(phases=[{"batch": 5}, {"batch": 5}, {"batch": 5}], wait_seconds=0)
    rid = create(client, rfleet.admin, body)["parameter_rollout_id"]
    reached = []
    for point in POINTS:
        if run(settings, point):
            reached.append(point)
        check(sessions, rid, rfleet.imeis)
        show(client, rfleet.admin, rid)
    assert reached == POINTS
    rng = random.Random(12)
    for _ in range(3):
        run(settings, "", after=rng.uniform(0.8, 2.0))  # wherever it happens to be
        check(sessions, rid, rfleet.imeis)
    for _ in range(6):
        tick(sessions)
        confirm_all(client, rfleet)
    assert check(sessions, rid, rfleet.imeis) == 20
    done = show(client, rfleet.admin, rid)
    assert done["state"] == "completed" and done["counts"]["confirmed"] == 20
    for imei in rfleet.imeis:
        with sessions() as session:
            statuses = session.execute(
                select(ProductParameter.value, ProductParameter.status)
                .where(ProductParameter.product_imei == imei)
                .order_by(ProductParameter.product_parameter_id)
            ).all()
        rows = [tuple(s) for s in statuses]
        if rfleet.imeis.index(imei) % 3 == 0:  # expired by its phase, or confirmed before it
            assert rows[0] in (("90", "expired"), ("90", "removed")), imei
            rows = rows[1:]
        assert rows == [("150", "active")], imei
