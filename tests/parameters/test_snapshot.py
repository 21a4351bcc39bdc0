"""GET /v1/rc_data reads one snapshot (issue 16 item 4): a unit polling while a technician
attaches and detaches parts got 500 on PostgreSQL (its parts and their pending values were read
by two statements, each with a snapshot of its own). Detaching a part expires its pending values,
so the technician sets each part's value again after attaching it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import Factory
from tests.parameters.conftest import Fleet
from tests.races import run_together


def test_polls_racing_part_attachments_always_see_a_consistent_unit(
    app: FastAPI, factory: Factory, fleet: Fleet
) -> None:
    part_type = factory.part_type(parameter_types=[fleet.level.parameter_type_id])
    parts = [factory.part(part_type=part_type) for _ in range(4)]
    pending = {p.part_id: str(i) for i, p in enumerate(parts)}
    tech = factory.headers("TECHNICAL")
    url = f"/v1/products/{fleet.imei}/parts"

    def technician(client: TestClient) -> list[int]:
        statuses = []
        for p in parts:
            statuses.append(client.post(url, json={"part_id": p.part_id}, headers=tech).status_code)
            body = {"parameter_type_id": fleet.level.parameter_type_id, "value": pending[p.part_id]}
            r = client.post(f"/v1/parts/{p.part_id}/parameters", json=body, headers=fleet.admin)
            statuses.append(r.status_code)
        for p in parts:
            statuses.append(client.delete(f"{url}/{p.part_id}", headers=tech).status_code)
        return statuses

    def poll(client: TestClient) -> tuple[int, Any]:
        r = client.get("/v1/rc_data", headers=fleet.device)
        return r.status_code, r.json()

    results = run_together(lambda: TestClient(app), [technician, poll, poll, poll], seconds=6)
    assert all(s in (201, 200) for rounds in results[0] for s in rounds), results[0]
    answers = [a for polls in results[1:] for a in polls]
    assert len(answers) > 30
    for status, body in answers:
        assert status == 200, body
        on_unit = body["data"]["part_parameters"]
        assert str(fleet.part.part_id) in on_unit
        for key, values in on_unit.items():
            if int(key) in pending:  # each racing part: its pending value, or none yet
                asked = {
                    "parameter_type_id": fleet.level.parameter_type_id,
                    "value": pending[int(key)],
                }
                assert [{k: v[k] for k in asked} for v in values] in ([], [asked])
