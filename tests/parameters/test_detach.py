"""A part value is asked of the unit the part is on: taking the part off expires its pending
values at that instant (the next unit never receives them), and a part on no unit takes none."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.fleet.models import Part, PartProductLinker, Product
from solarfleet.parameters.models import PartParameter
from tests.factories import Factory
from tests.parameters.conftest import Fleet, counts, report, set_part, unit_auth
from tests.races import run_together


def _detach(client: TestClient, unit: Product, part: Part, headers: dict[str, str]) -> Any:
    return client.delete(f"/v1/products/{unit.product_imei}/parts/{part.part_id}", headers=headers)


def _attach(client: TestClient, unit: Product, part: Part, headers: dict[str, str]) -> Any:
    return client.post(
        f"/v1/products/{unit.product_imei}/parts", json={"part_id": part.part_id}, headers=headers
    )


def _rows(sessions: sessionmaker[Session], part: Part) -> list[dict[str, Any]]:
    with sessions() as session:
        rows = session.scalars(
            select(PartParameter)
            .where(PartParameter.part_id == part.part_id)
            .order_by(PartParameter.part_parameter_id)
        )
        return [
            {k: getattr(r, k) for k in ("value", "status", "date_added", "date_removed")}
            for r in rows
        ]


def _ended_link(sessions: sessionmaker[Session], unit: Product, part: Part) -> PartProductLinker:
    with sessions() as session:
        return session.scalars(
            select(PartProductLinker).where(
                PartProductLinker.part_id == part.part_id,
                PartProductLinker.product_imei == unit.product_imei,
            )
        ).one()


def _history(client: TestClient, unit: Product, part: Part, headers: dict[str, str]) -> Any:
    r = client.get(f"/v1/products/{unit.product_imei}/parameters/history", headers=headers)
    assert r.status_code == 200, r.text
    return [
        (p["value"], p["status"]) for p in r.json()["data"]["part_parameters"][str(part.part_id)]
    ]


@pytest.mark.parametrize("across", [False, True], ids=["same entity", "across entities"])
def test_a_pending_part_value_expires_when_the_part_leaves_its_unit(
    client: TestClient,
    factory: Factory,
    sessions: sessionmaker[Session],
    fleet: Fleet,
    across: bool,
) -> None:
    set_part(client, fleet, 5)
    report(client, fleet, part_parameters={str(fleet.part.part_id): [
        {"parameter_type_id": fleet.level.parameter_type_id, "value": 5}
    ]})  # fmt: skip
    assert set_part(client, fleet, 6).status_code == 201  # pending on unit A
    active_before = _rows(sessions, fleet.part)[0]
    tech = factory.headers("TECHNICAL")
    r = _detach(client, fleet.unit, fleet.part, tech)
    assert r.status_code == 200, r.text

    link = _ended_link(sessions, fleet.unit, fleet.part)
    five, six = _rows(sessions, fleet.part)
    assert five == active_before and five["status"] == "active"  # the part still runs 5
    assert five["date_removed"] is None
    assert six["status"] == "expired"
    assert six["date_removed"] == link.date_removed  # the detach instant
    assert six["date_added"] < six["date_removed"]

    unit_b = factory.product(entity=factory.entity() if across else fleet.entity)
    assert _attach(client, unit_b, fleet.part, tech).status_code == 201
    r = client.get("/v1/rc_data", headers=unit_auth(unit_b))
    assert r.status_code == 200, r.text
    assert r.json()["data"]["part_parameters"] == {str(fleet.part.part_id): []}
    # the full history: A's shows the value asked of it, B's only what the part ran there
    assert _history(client, fleet.unit, fleet.part, fleet.admin) == [
        ("5", "active"),
        ("6", "expired"),
    ]
    assert _history(client, unit_b, fleet.part, fleet.admin) == [("5", "active")]
    # B reporting 6 finds nothing pending: a note, the part still runs 5
    body = {
        "part_parameters": {
            str(fleet.part.part_id): [
                {"parameter_type_id": fleet.level.parameter_type_id, "value": 6}
            ]
        }
    }
    r = client.post("/v1/rc_data", json=body, headers=unit_auth(unit_b))
    assert r.status_code == 200, r.text
    assert [(x["value"], x["status"]) for x in _rows(sessions, fleet.part)] == [
        ("5", "active"),
        ("6", "expired"),
    ]


def test_a_part_on_no_unit_takes_no_value(
    client: TestClient, factory: Factory, sessions: sessionmaker[Session], fleet: Fleet
) -> None:
    before = counts(sessions)
    r = set_part(client, fleet, 3, fleet.spare)  # never on a unit
    assert (r.status_code, r.json()) == (
        400,
        {
            "status": "error",
            "message": f"Part {fleet.spare.part_id} is on no unit: attach it to a unit first",
        },
    )
    tech = factory.headers("TECHNICAL")
    assert _detach(client, fleet.unit, fleet.part, tech).status_code == 200
    r = set_part(client, fleet, 3)  # taken off its unit
    assert (r.status_code, r.json()["message"]) == (
        400,
        f"Part {fleet.part.part_id} is on no unit: attach it to a unit first",
    )
    assert counts(sessions) == before
    # an ENTITY user learns nothing more about a part off its units: as one that does not exist
    entity_admin = factory.headers("ADMIN", "ENTITY", fleet.entity)
    body = {"parameter_type_id": fleet.level.parameter_type_id, "value": 3}
    r = client.post(f"/v1/parts/{fleet.part.part_id}/parameters", json=body, headers=entity_admin)
    assert (r.status_code, r.json()["message"]) == (
        404,
        f"No part with part_id {fleet.part.part_id}",
    )
    # back on a unit, it takes values again
    assert _attach(client, fleet.unit, fleet.part, tech).status_code == 201
    assert set_part(client, fleet, 3).status_code == 201


def test_deleting_a_unit_expires_its_parts_pending_values(
    client: TestClient,
    factory: Factory,
    sessions: sessionmaker[Session],
    fleet: Fleet,
    system: dict[str, str],
) -> None:
    set_part(client, fleet, 5)
    report(client, fleet, part_parameters={str(fleet.part.part_id): [
        {"parameter_type_id": fleet.level.parameter_type_id, "value": 5}
    ]})  # fmt: skip
    assert set_part(client, fleet, 6).status_code == 201
    active_before = _rows(sessions, fleet.part)[0]
    r = client.delete(f"/v1/products/{fleet.imei}", headers=system)
    assert r.status_code == 204, r.text
    five, six = _rows(sessions, fleet.part)
    assert five == active_before
    assert six["status"] == "expired"
    assert six["date_added"] < six["date_removed"]
    unit_b = factory.product(entity=fleet.entity)
    assert _attach(client, unit_b, fleet.part, factory.headers("TECHNICAL")).status_code == 201
    r = client.get("/v1/rc_data", headers=unit_auth(unit_b))
    assert r.json()["data"]["part_parameters"] == {str(fleet.part.part_id): []}


def test_values_set_racing_detaches_never_outlive_the_part_on_its_unit(
    app: FastAPI, factory: Factory, sessions: sessionmaker[Session], fleet: Fleet
) -> None:
    tech = factory.headers("TECHNICAL")
    body = {"parameter_type_id": fleet.level.parameter_type_id, "value": 1}

    def technician(client: TestClient) -> tuple[int, int]:
        return (
            _attach(client, fleet.unit, fleet.part, tech).status_code,
            _detach(client, fleet.unit, fleet.part, tech).status_code,
        )

    def operator(client: TestClient) -> int:
        url = f"/v1/parts/{fleet.part.part_id}/parameters"
        return client.post(url, json=body, headers=fleet.admin).status_code

    assert _detach(TestClient(app), fleet.unit, fleet.part, tech).status_code == 200
    results = run_together(lambda: TestClient(app), [technician, operator, operator], seconds=4)
    assert set(results[0]) == {(201, 200)}, results[0]
    sets = [s for job in results[1:] for s in job]
    assert set(sets) <= {201, 400} and 201 in sets, sets
    # the part ends off its unit: every value set on it expired as it left, none is pending
    assert [r["status"] for r in _rows(sessions, fleet.part)].count("pending") == 0
    assert len(_rows(sessions, fleet.part)) == sets.count(201)
