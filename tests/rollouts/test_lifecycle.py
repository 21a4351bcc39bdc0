"""A rollout from creation to completion, with virtual units confirming its values; the abort
rule; cancelling mid-phase; a manual set during a rollout; a rate per minute; a part's value."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.parameters.models import PartParameter
from solarfleet.rollouts.routes import Rollout, RolloutPage
from solarfleet.rollouts.simulate import Stats
from tests.factories import Factory
from tests.rollouts.conftest import Fleet, create, later, show, tick, unit_rows


def poll_all(client: TestClient, fleet: Fleet, units: list | None = None) -> Stats:
    stats = Stats()
    for unit in units or fleet.virtual():
        unit.poll(client, stats)
    return stats


def report(client: TestClient, fleet: Fleet, index: int, value: object) -> None:
    unit = fleet.units[index]
    body = {"product_parameters": [{"parameter_type_id": fleet.limit.parameter_type_id,
                                    "value": value}]}  # fmt: skip
    r = client.post("/v1/rc_data", json=body, auth=(unit.product_imei, unit.device_key))
    assert r.status_code == 200, r.text


def test_a_rollout_lands_on_simulated_units_phase_by_phase(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    body = rfleet.body(phases=[{"batch": "25%"}, {"batch": 5}], wait_seconds=0)
    created = create(client, rfleet.admin, body)
    rid = created["parameter_rollout_id"]
    assert created["state"] == "running" and created["reason"] is None
    assert (created["targets"], created["phase"], created["phases_total"]) == (20, 1, 3)
    assert created["phase_sizes"] == [5, 5, 10]
    assert created["value"] == "150"
    assert created["counts"] == {"queued": 20, "pending": 0, "confirmed": 0, "failed": 0,
                                 "superseded": 0, "out_of_scope": 0}  # fmt: skip
    assert [p["units"] for p in created["phase_counts"]] == [5, 5, 10]
    Rollout.model_validate(created, strict=True)  # what the OpenAPI document says
    units = rfleet.virtual()
    for phase, confirmed in ((1, 5), (2, 10), (3, 20)):
        report_ = tick(sessions)
        assert report_.phases == [(rid, phase)]
        now = show(client, rfleet.admin, rid)
        size = 10 if phase == 3 else 5
        assert now["phase"] == phase
        assert (now["counts"]["pending"], now["counts"]["confirmed"]) == (size, confirmed - size)
        stats = poll_all(client, rfleet, units)
        assert stats.counts["confirm"] == (10 if phase == 3 else 5)
    tick(sessions)
    done = show(client, rfleet.admin, rid)
    assert done["state"] == "completed" and done["phase"] == 3
    assert done["counts"]["confirmed"] == 20 and done["counts"]["pending"] == 0
    assert [e["event"] for e in done["events"]] == ["created", "completed"]
    assert done["events"][1]["created_by"] == f"rollout:{rid}"
    for imei in rfleet.imeis:
        assert unit_rows(sessions, imei) == [("150", "active", f"rollout:{rid}")]
    # the units, as a list speaking the query language
    q = '{"filters": [{"name": "phase", "op": "==", "val": 3}, {"name": "product_parameter__status", "op": "==", "val": "active"}]}'  # noqa: E501
    r = client.get(f"/v1/parameter_rollouts/{rid}/units", params={"q": q, "results_per_page": 4},
                   headers=rfleet.admin)  # fmt: skip
    assert r.status_code == 200, r.text
    page = r.json()
    assert (page["num_results"], page["total_pages"], len(page["objects"])) == (10, 3, 4)
    assert {o["state"] for o in page["objects"]} == {"confirmed"}
    # rollouts are a resource like any other: filter on a count
    q = '{"filters": [{"name": "confirmed", "op": ">=", "val": 20}]}'
    listed = client.get("/v1/parameter_rollouts", params={"q": q}, headers=rfleet.admin).json()
    assert listed["num_results"] == 1
    assert listed["objects"][0]["counts"]["confirmed"] == 20
    RolloutPage.model_validate(listed, strict=True)
    Rollout.model_validate(done, strict=True)
    # advancing again changes nothing
    assert tick(sessions).phases == []
    assert show(client, rfleet.admin, rid)["counts"] == done["counts"]


def test_failures_above_the_threshold_pause_the_rollout_before_its_next_phase(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    body = rfleet.body(phases=[{"batch": 10}], wait_seconds=0, abort_failure_percent=25,
                       abort_min_units=5, confirm_timeout_seconds=600)  # fmt: skip
    rid = create(client, rfleet.admin, body)["parameter_rollout_id"]
    tick(sessions)
    for i in range(6):
        report(client, rfleet, i, 150)  # confirmed
    for i in (6, 7):
        report(client, rfleet, i, 151)  # the unit runs something else: failed
    # units 8 and 9 never answer: failed once the confirmation timeout is over
    assert tick(sessions).paused == []  # 2 of 8 tried failed: 25% is not above 25%
    r = show(client, rfleet.admin, rid)
    assert r["counts"] == {"queued": 0, "pending": 12, "confirmed": 6, "failed": 2,
                           "superseded": 0, "out_of_scope": 0}  # fmt: skip
    assert r["phase"] == 2  # phase 2 began: the rule allowed it
    report_ = tick(sessions, later(601))
    assert report_.paused == [] and report_.phases == []
    r = show(client, rfleet.admin, rid)
    assert r["counts"]["failed"] == 2 + 2 + 10  # the late ones, and phase 2 timed out too


def test_a_unit_reporting_another_value_fails_at_the_next_advance(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    """Even when it reported that value before the rollout (a note already said so): the report
    after the rollout's value was set is a rejection, not a replay."""
    body = rfleet.body(confirm_timeout_seconds=3600)
    rid = create(client, rfleet.admin, body)["parameter_rollout_id"]
    report(client, rfleet, 0, 151)  # before its value is set: nothing pending, noted
    tick(sessions)  # the value is set on every unit
    report(client, rfleet, 0, 151)  # the same value again: it rejects 150
    report(client, rfleet, 1, 150)
    tick(sessions)  # long before the confirmation timeout
    r = show(client, rfleet.admin, rid)
    assert r["counts"] == {"queued": 0, "pending": 18, "confirmed": 1, "failed": 1,
                           "superseded": 0, "out_of_scope": 0}  # fmt: skip
    q = json.dumps({"filters": [{"name": "state", "op": "==", "val": "failed"}]})
    failed = client.get(
        f"/v1/parameter_rollouts/{rid}/units", params={"q": q}, headers=rfleet.admin
    ).json()["objects"]
    assert [(u["product_imei"], u["detail"]) for u in failed] == [
        (rfleet.imeis[0], "the unit reported a different value")
    ]


def test_abort_rule_pauses_with_a_reason_and_resume_starts_it_afresh(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session], factory: Factory
) -> None:
    body = rfleet.body(phases=[{"batch": 10}, {"batch": 5}], wait_seconds=0,
                       abort_failure_percent=20, abort_min_units=5)  # fmt: skip
    rid = create(client, rfleet.admin, body)["parameter_rollout_id"]
    tick(sessions)
    for i in range(7):
        report(client, rfleet, i, 150)
    for i in (7, 8, 9):
        report(client, rfleet, i, 42)
    report_ = tick(sessions)
    assert report_.paused == [rid] and report_.phases == []
    r = show(client, rfleet.admin, rid)
    assert r["state"] == "paused" and r["phase"] == 1
    assert r["reason"] == (
        "3 of 10 units tried failed (30%), above the abort threshold of 20% (after 5 units)"
    )
    assert r["counts"] == {"queued": 10, "pending": 0, "confirmed": 7, "failed": 3,
                           "superseded": 0, "out_of_scope": 0}  # fmt: skip
    assert r["events"][-1]["event"] == "paused"
    assert r["events"][-1]["created_by"] == f"rollout:{rid}"
    assert unit_rows(sessions, rfleet.imeis[10]) == []  # the next phase did not begin
    assert tick(sessions).phases == []  # paused stays paused
    operator = factory.user("ADMIN")
    headers = {"Authorization": f"Token token={factory.token(operator)}"}
    r = client.put(f"/v1/parameter_rollouts/{rid}/resume", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "running" and r.json()["reason"] is None
    assert r.json()["events"][-1]["created_by"] == operator.username
    assert tick(sessions).phases == [(rid, 2)]
    assert unit_rows(sessions, rfleet.imeis[10]) == [("150", "pending", f"rollout:{rid}")]
    again = client.put(f"/v1/parameter_rollouts/{rid}/resume", headers=headers)
    assert again.status_code == 409
    assert again.json()["message"] == f"Rollout {rid} is running: it cannot be resumed"


def test_cancel_mid_phase_expires_pending_values_and_leaves_active_ones(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    body = rfleet.body(phases=[{"batch": 10}], wait_seconds=3600)
    rid = create(client, rfleet.admin, body)["parameter_rollout_id"]
    tick(sessions)
    for i in range(4):
        report(client, rfleet, i, 150)
    r = client.put(f"/v1/parameter_rollouts/{rid}/cancel", headers=rfleet.admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "cancelled"
    assert body["counts"] == {"queued": 16, "pending": 0, "confirmed": 4, "failed": 0,
                              "superseded": 0, "out_of_scope": 0}  # fmt: skip
    assert [e["event"] for e in body["events"]] == ["created", "cancelled"]
    for i in range(4):
        assert unit_rows(sessions, rfleet.imeis[i]) == [("150", "active", f"rollout:{rid}")]
    for i in range(4, 10):
        assert unit_rows(sessions, rfleet.imeis[i]) == [("150", "expired", f"rollout:{rid}")]
    for i in range(10, 20):
        assert unit_rows(sessions, rfleet.imeis[i]) == []
    unit = rfleet.units[5]
    got = client.get("/v1/rc_data", auth=(unit.product_imei, unit.device_key)).json()["data"]
    assert got["product_parameters"] == []
    assert tick(sessions, later(7200)).phases == []  # cancelled: never advanced again
    again = client.put(f"/v1/parameter_rollouts/{rid}/pause", headers=rfleet.admin)
    assert again.status_code == 409


def test_a_manual_set_supersedes_the_rollout_and_is_never_overwritten(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    body = rfleet.body(phases=[{"batch": 10}], wait_seconds=0)
    rid = create(client, rfleet.admin, body)["parameter_rollout_id"]
    first, second = rfleet.imeis[0], rfleet.imeis[15]
    manual = {"parameter_type_id": rfleet.limit.parameter_type_id, "value": 200}
    r = client.post(f"/v1/products/{second}/parameters", json=manual, headers=rfleet.admin)
    assert r.status_code == 201  # set before its phase
    tick(sessions)
    r = client.post(f"/v1/products/{first}/parameters", json=manual, headers=rfleet.admin)
    assert r.status_code == 201  # set while the rollout's value is pending there
    tick(sessions)  # phase 2
    tick(sessions)
    r = show(client, rfleet.admin, rid)
    assert r["counts"]["superseded"] == 2 and r["counts"]["pending"] == 18
    assert unit_rows(sessions, first) == [
        ("150", "expired", f"rollout:{rid}"),
        ("200", "pending", r["created_by"]),
    ]
    assert unit_rows(sessions, second) == [("200", "pending", r["created_by"])]
    units = client.get(f"/v1/parameter_rollouts/{rid}/units", headers=rfleet.admin,
                       params={"q": '{"filters": [{"name": "state", "op": "==", "val": "superseded"}]}'})  # noqa: E501  # fmt: skip
    assert sorted(o["product_imei"] for o in units.json()["objects"]) == [first, second]


def test_a_rate_per_minute_is_a_phase_a_minute(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    rid = create(client, rfleet.admin, rfleet.body(rate_per_minute=8))["parameter_rollout_id"]
    assert tick(sessions).units_set == 8
    assert tick(sessions, later(30)).units_set == 0
    assert tick(sessions, later(61)).units_set == 8
    r = show(client, rfleet.admin, rid)
    assert (r["phases_total"], r["phase"], r["wait_seconds"]) == (3, 2, 60)
    assert r["counts"]["pending"] == 16 and r["counts"]["queued"] == 4


def test_a_part_parameter_goes_to_the_matching_part_of_each_unit(
    client: TestClient, rfleet: Fleet, sessions: sessionmaker[Session], factory: Factory
) -> None:
    battery = factory.part_type(parameter_types=[rfleet.limit.parameter_type_id])
    parts = [factory.part(part_type=battery, on=u) for u in rfleet.units[:19]]
    body = rfleet.body(part_type_id=battery.part_type_id)
    rid = create(client, rfleet.admin, body)["parameter_rollout_id"]
    tick(sessions)
    r = show(client, rfleet.admin, rid)
    assert r["counts"]["pending"] == 19 and r["counts"]["out_of_scope"] == 1
    with sessions() as session:
        rows = session.execute(
            select(PartParameter.part_id, func.count()).group_by(PartParameter.part_id)
        ).all()
    assert sorted(rows) == sorted((p.part_id, 1) for p in parts)
    stats = poll_all(client, rfleet)
    assert stats.counts["confirm"] == 19
    tick(sessions)
    assert show(client, rfleet.admin, rid)["state"] == "completed"
