"""What a rollout request may ask: 400s that write nothing, permissions, and scope."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.db import utcnow
from solarfleet.fleet.models import ProductEntityLinker
from solarfleet.parameters.models import ProductParameter
from solarfleet.rollouts.models import ParameterRollout, ParameterRolloutTarget
from solarfleet.settings import Settings
from tests.factories import Factory
from tests.rollouts.conftest import Fleet, create, show, tick


def rows(sessions: sessionmaker[Session]) -> tuple[int, int, int]:
    with sessions() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(m)) or 0
            for m in (ParameterRollout, ParameterRolloutTarget, ProductParameter)
        )


NONE = {"filters": [{"name": "serial_number", "op": "==", "val": "no such unit"}]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"q": NONE}, "Invalid q: it matches no unit in your scope"),
        ({"phases": [{"batch": 15}, {"batch": "30%"}]},
         "Invalid phases: they add up to 21 units, more than the 20 targets"),
        ({"phases": [{"batch": "60%"}, {"batch": "50%"}]},
         "Invalid phases: they add up to 22 units, more than the 20 targets"),
        ({"value": 600}, "Invalid value for max_load_watts: 600 is above the max 500"),
        ({"value": "lots"},
         "Invalid value for max_load_watts (int): expected an integer, got 'lots'"),
        ({"phases": [{"batch": "0%"}]},
         "Invalid phases[0].batch '0%': expected a count of units (1 or more) or a share such as "
         '"10%"'),
        ({"phases": [{"batch": 5}], "rate_per_minute": 3},
         "Send phases or rate_per_minute, not both"),
        ({"parameter_type_id": 999}, "Invalid parameter_type_id: no parameter type 999"),
        ({"q": {"filters": [{"name": "nope", "op": "==", "val": 1}]}}, None),
        ({"q": {"single": True}}, "Invalid q: 'single' does not apply to a rollout's targets"),
        ({"phases": []}, None),
        ({"abort_failure_percent": 101}, None),
        ({"colour": "red"}, "Unknown field 'colour'"),
        # Unbounded cost: each input that could make a rollout cost more is bounded.
        ({"phases": [{"batch": 1}] * 1001},
         "Invalid value for 'phases': List should have at most 1000 items after validation, "
         "not 1001"),
        ({"rate_per_minute": 0},
         "Invalid value for 'rate_per_minute': Input should be greater than or equal to 1"),
        ({"rate_per_minute": 1_000_001},
         "Invalid value for 'rate_per_minute': Input should be less than or equal to 1000000"),
        ({"wait_seconds": 30 * 86400 + 1},
         "Invalid value for 'wait_seconds': Input should be less than or equal to 2592000"),
        ({"confirm_timeout_seconds": 30 * 86400 + 1},
         "Invalid value for 'confirm_timeout_seconds': Input should be less than or equal to "
         "2592000"),
        ({"wait_seconds": 10**30}, None),
        ({"abort_min_units": 2**31}, None),
    ],
)  # fmt: skip
def test_bad_requests_are_400_and_write_nothing(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session],
    change: dict[str, Any], message: str | None,
) -> None:  # fmt: skip
    r = client.post("/v1/parameter_rollouts", json=rfleet.body(**change), headers=rfleet.admin)
    assert r.status_code == 400, r.text
    if message is not None:
        assert r.json() == {"status": "error", "message": message}
    assert rows(sessions) == (0, 0, 0)


def test_a_q_matching_more_than_the_limit_is_400(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session], settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(settings, "rollout_max_targets", 19)
    r = client.post("/v1/parameter_rollouts", json=rfleet.body(), headers=rfleet.admin)
    assert r.status_code == 400, r.text
    assert r.json() == {
        "status": "error",
        "message": "Invalid q: it matches more than 19 units; at most 19 per rollout "
        "(SOLARFLEET_ROLLOUT_MAX_TARGETS): narrow q or split the rollout",
    }
    assert rows(sessions) == (0, 0, 0)
    monkeypatch.setattr(settings, "rollout_max_targets", 20)  # exactly the limit: allowed
    body = create(client, rfleet.admin, rfleet.body())
    assert body["targets"] == 20
    assert rows(sessions)[:2] == (1, 20)


def test_a_type_the_units_may_not_carry_is_400(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session], factory: Factory
) -> None:
    other = factory.parameter_type("int", name="tariff")
    body = rfleet.body(parameter_type_id=other.parameter_type_id)
    r = client.post("/v1/parameter_rollouts", json=body, headers=rfleet.admin)
    assert r.status_code == 400
    assert r.json()["message"] == (
        f"Invalid parameter_type_id: parameter type {other.parameter_type_id} (tariff) is not "
        f"allowed for product type {rfleet.product_type.name!r}"
    )
    assert rows(sessions) == (0, 0, 0)


def test_admin_creates_and_controls_overview_reads(
    client: TestClient, rfleet: Fleet, factory: Factory
) -> None:
    technical = factory.headers("TECHNICAL")
    r = client.post("/v1/parameter_rollouts", json=rfleet.body(), headers=technical)
    assert r.status_code == 403
    rid = create(client, rfleet.admin, rfleet.body())["parameter_rollout_id"]
    for action in ("pause", "resume", "cancel"):
        r = client.put(f"/v1/parameter_rollouts/{rid}/{action}", headers=technical)
        assert r.status_code == 403, action
    reader = factory.headers("OVERVIEW")
    assert client.get(f"/v1/parameter_rollouts/{rid}", headers=reader).status_code == 200
    assert client.get(f"/v1/parameter_rollouts/{rid}/units", headers=reader).status_code == 200
    assert client.get("/v1/parameter_rollouts/77", headers=reader).status_code == 404
    r = client.delete(f"/v1/parameter_rollouts/{rid}", headers=rfleet.admin)
    assert r.json() == {
        "status": "error",
        "message": "DELETE requests are not allowed at this endpoint",
    }


def _move(sessions: sessionmaker[Session], imei: str, entity_id: int) -> None:
    with sessions() as session:
        link = session.scalars(
            select(ProductEntityLinker).where(
                ProductEntityLinker.product_imei == imei, ProductEntityLinker.date_removed.is_(None)
            )
        ).one()
        link.date_removed = utcnow()
        session.flush()
        session.add(ProductEntityLinker(product_imei=imei, entity_id=entity_id,
                                        date_added=utcnow()))  # fmt: skip
        session.commit()


def test_an_entity_users_rollout_stays_within_its_scope(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session], factory: Factory
) -> None:
    for imei in rfleet.imeis[:5]:
        _move(sessions, imei, rfleet.other.entity_id)
    mine = factory.headers("ADMIN", "ENTITY", rfleet.entity)
    theirs = factory.headers("SYSTEM", "ENTITY", rfleet.other)
    created = create(client, mine, rfleet.body(phases=[{"batch": 5}], wait_seconds=0))
    rid = created["parameter_rollout_id"]
    assert created["targets"] == 15  # the five units of the other entity are not targets
    assert created["scope"] == "ENTITY" and created["entity_id"] == rfleet.entity.entity_id
    # rollouts of one entity are invisible to another's users; GLOBAL users see them all
    assert client.get(f"/v1/parameter_rollouts/{rid}", headers=theirs).status_code == 404
    assert client.get("/v1/parameter_rollouts", headers=theirs).json()["num_results"] == 0
    assert client.put(f"/v1/parameter_rollouts/{rid}/pause", headers=theirs).status_code == 404
    assert client.get(f"/v1/parameter_rollouts/{rid}/units", headers=theirs).status_code == 404
    assert client.get(f"/v1/parameter_rollouts/{rid}", headers=rfleet.admin).status_code == 200
    tick(sessions)
    leaving = rfleet.imeis[12]  # a phase 2 unit that leaves the entity before its phase
    _move(sessions, leaving, rfleet.other.entity_id)
    tick(sessions)
    tick(sessions)
    r = show(client, mine, rid)
    assert r["counts"]["out_of_scope"] == 1 and r["counts"]["pending"] == 14
    with sessions() as session:
        assert (
            session.scalar(select(func.count()).where(ProductParameter.product_imei == leaving))
            == 0
        )
    # the entity's users see their rollout's units in their scope only
    units = client.get(f"/v1/parameter_rollouts/{rid}/units", headers=mine,
                       params={"results_per_page": 100}).json()  # fmt: skip
    assert units["num_results"] == 14
    assert leaving not in {o["product_imei"] for o in units["objects"]}
    everyone = client.get(f"/v1/parameter_rollouts/{rid}/units", headers=rfleet.admin).json()
    assert everyone["num_results"] == 15


def test_q_orders_limits_and_offsets_the_targets(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    q = {"order_by": [{"field": "serial_number", "direction": "desc"}], "offset": 2, "limit": 6}
    created = create(client, rfleet.admin, rfleet.body(q=q, phases=[{"batch": 2}]))
    assert (created["targets"], created["phase_sizes"]) == (6, [2, 4])
    with sessions() as session:
        rows = session.execute(
            select(ParameterRolloutTarget.product_imei, ParameterRolloutTarget.phase).order_by(
                ParameterRolloutTarget.phase, ParameterRolloutTarget.product_imei.desc()
            )
        ).all()
    by_serial = sorted(rfleet.units, key=lambda u: u.serial_number, reverse=True)[2:8]
    assert [tuple(r) for r in rows] == [
        (u.product_imei, 1 if i < 2 else 2) for i, u in enumerate(by_serial)
    ]
    # ordered through a relation: every unit once
    q = {"order_by": [{"field": "product_type__name", "direction": "asc"}]}
    assert create(client, rfleet.admin, rfleet.body(q=q))["targets"] == 20
