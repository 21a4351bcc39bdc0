"""An upload racing the deletion of its unit answers 200 or a documented 4xx, never 500 (issue
16 item 4): the second dirty mark, in a transaction of its own after the hot write, hit the
mark's foreign key once the unit was gone. Now: 404 "No product with product_imei …"."""

from __future__ import annotations

import random
import time
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import Factory
from tests.parameters.conftest import unit_auth
from tests.races import run_together

POINTS = 2000  # a hot write long enough for the deletion to land between the two marks


def test_uploads_racing_the_deletion_of_their_unit_answer_200_401_or_404(
    app: FastAPI, factory: Factory
) -> None:
    system = factory.headers("SYSTEM")
    units = [factory.product()]
    start = 1732435200000 + random.randrange(10**6) * 1000
    body = {"fields": {"v": [[start + i * 1000, float(i)] for i in range(POINTS)]}}

    def delete_and_replace(client: TestClient) -> int:
        time.sleep(random.uniform(0.05, 0.4))
        gone = client.delete(f"/v1/products/{units[-1].product_imei}", headers=system)
        units.append(factory.product())
        return gone.status_code

    def unit_upload(client: TestClient) -> tuple[int, Any]:
        unit = units[-1]
        r = client.post("/v1/rm_data", json=body, headers=unit_auth(unit))
        return r.status_code, r.json(), unit.product_imei

    def operator_upload(client: TestClient) -> tuple[int, Any]:
        imei = units[-1].product_imei
        r = client.post(f"/v1/products/{imei}/data", json=body, headers=system)
        return r.status_code, r.json(), imei

    results = run_together(
        lambda: TestClient(app),
        [delete_and_replace, unit_upload, unit_upload, operator_upload],
        seconds=8,
    )
    assert set(results[0]) == {204}
    answers = [a for uploads in results[1:] for a in uploads]
    assert len(answers) > 20
    for status, answer, imei in answers:
        if status == 200:
            assert answer["data"]["points"] == POINTS
        elif status == 401:  # the unit's key no longer opens anything
            assert answer == {"status": "error", "message": "Invalid unit credentials"}
        else:
            assert status == 404, answer
            assert answer["message"] in (
                f"No product with product_imei {imei}",
                f"No product with product_imei {imei}: deleted during the upload",
            )
    assert {s for s, _, _ in answers} >= {200, 404}
