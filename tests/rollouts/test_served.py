"""A real ``solarfleet serve`` advances a rollout on its own (no broker: its ticker) while
virtual units poll it over HTTP, confirming, rejecting and ignoring values over a link that
drops; every unit ends in the state its behaviour calls for, set exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.parameters.models import ProductParameter
from solarfleet.rollouts.simulate import Behaviour, run
from solarfleet.settings import Settings
from tests.conftest import TEST_DATABASE_URL
from tests.faults.services import Server
from tests.rollouts.conftest import Fleet


@pytest.fixture
def server(app: FastAPI, settings: Settings) -> Iterator[Server]:
    env = {"SOLARFLEET_ROLLOUT_TICK_SECONDS": "0.3"}
    if TEST_DATABASE_URL:
        env["SOLARFLEET_DATABASE_URL"] = TEST_DATABASE_URL
    served = Server(settings.data_dir, **env)
    yield served
    served.stop()


def test_serve_advances_a_rollout_onto_simulated_units(
    server: Server, rfleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    body = rfleet.body(
        phases=[{"batch": "25%"}, {"batch": "25%"}],
        wait_seconds=1,
        confirm_timeout_seconds=4,
        abort_failure_percent=100,
    )
    with httpx.Client(base_url=server.url, timeout=10) as client:
        r = client.post("/v1/parameter_rollouts", json=body, headers=rfleet.admin)
        assert r.status_code == 201, r.text
        rid = r.json()["parameter_rollout_id"]
        units = rfleet.virtual(Behaviour(reject_share=0.15, ignore_share=0.15, drop_share=0.2))
        stats = run(units, client, duration=9, poll_seconds=0.4, threads=4)
        deadline = time.monotonic() + 20
        while (shown := client.get(f"/v1/parameter_rollouts/{rid}", headers=rfleet.admin).json())[
            "state"
        ] != "completed" and time.monotonic() < deadline:
            time.sleep(0.3)
        listed = client.get(f"/v1/parameter_rollouts/{rid}/units", headers=rfleet.admin,
                            params={"results_per_page": 100}).json()  # fmt: skip
    assert shown["state"] == "completed", shown
    assert not [k for k in stats.counts if k.endswith(("500", "503"))], stats.counts
    assert stats.counts["dropped"] > 0 and stats.counts["readings"] > 0
    expected = {}
    for unit in units:
        ((kind, _row), decision), *_ = unit.decisions.items()
        expected[unit.imei] = "confirmed" if decision == "confirm" else "failed"
    assert {o["product_imei"]: o["state"] for o in listed["objects"]} == expected
    assert set(expected.values()) == {"confirmed", "failed"}
    assert shown["counts"]["confirmed"] == list(expected.values()).count("confirmed")
    assert [p["units"] for p in shown["phase_counts"]] == [5, 5, 10]
    with sessions() as session:
        sets = session.execute(
            select(ProductParameter.product_imei, func.count())
            .where(ProductParameter.created_by == f"rollout:{rid}")
            .group_by(ProductParameter.product_imei)
        ).all()
    assert sorted(sets) == sorted((imei, 1) for imei in rfleet.imeis)
    assert "Traceback" not in server.output()
