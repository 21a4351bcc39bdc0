"""Several processes advancing at once (servers' tickers, Celery workers) never take the same
rollout together: each unit is set once, each phase begun once."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.parameters.models import ProductParameter
from solarfleet.rollouts.advance import AdvanceReport, advance
from tests.rollouts.conftest import Fleet, create, show


def test_advancers_racing_set_each_unit_once(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    body = rfleet.body(phases=[{"batch": 4}] * 5, wait_seconds=0)
    rid = create(client, rfleet.admin, body)["parameter_rollout_id"]
    reports: list[AdvanceReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def racer() -> None:
        try:
            start.wait()
            for _ in range(3):
                reports.append(advance(sessions))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for _ in range(5):  # racers skip a rollout another holds: the next ticks finish the work
        reports.append(advance(sessions))
    begun = [p for r in reports for p in r.phases]
    assert sorted(begun) == [(rid, n) for n in range(1, 6)]  # each phase once
    assert sum(r.units_set for r in reports) == 20
    with sessions() as session:
        per_unit = session.execute(
            select(ProductParameter.product_imei, func.count()).group_by(
                ProductParameter.product_imei
            )
        ).all()
    assert sorted(per_unit) == sorted((imei, 1) for imei in rfleet.imeis)
    assert show(client, rfleet.admin, rid)["counts"]["pending"] == 20
