"""A ``"single": true`` list racing the deletion of its row answers 200 or 404, never 500
(issue 16 item 4: its count and its fetch saw different snapshots on PostgreSQL)."""

from __future__ import annotations

import json
import random
import time
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import Factory
from tests.races import run_together


def test_single_lists_racing_deletions_answer_200_or_404(app: FastAPI, factory: Factory) -> None:
    system = factory.headers("SYSTEM")
    current = [factory.parameter_type("int").parameter_type_id]  # the type polled for

    def create_and_delete(client: TestClient) -> tuple[int, int]:
        body = {"name": f"racing {len(current)}", "data_type": "int"}
        made = client.post("/v1/parameter_types", json=body, headers=system)
        current.append(made.json()["parameter_type_id"])
        time.sleep(random.uniform(0, 0.02))  # polls find it, then race its deletion
        gone = client.delete(f"/v1/parameter_types/{current[-1]}", headers=system)
        return made.status_code, gone.status_code

    def single(client: TestClient) -> tuple[int, Any]:
        q = {"filters": [{"name": "parameter_type_id", "op": "==", "val": current[-1]}]}
        r = client.get("/v1/parameter_types", params={"q": json.dumps({**q, "single": True})},
                       headers=system)  # fmt: skip
        return r.status_code, r.json()

    results = run_together(
        lambda: TestClient(app), [create_and_delete, single, single, single], seconds=6
    )
    assert set(results[0]) == {(201, 204)}
    answers = [a for polls in results[1:] for a in polls]
    assert len(answers) > 30
    for status, body in answers:
        assert status in (200, 404), body
        if status == 404:
            assert body == {"status": "error", "message": "No result found"}
        else:
            assert body["data_type"] == "int"
    assert {s for s, _ in answers} == {200, 404}  # the race ran both ways
