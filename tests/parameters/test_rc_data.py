"""The unit protocol: HTTP Basic device auth, pending values out, reports in."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.fleet.models import Product
from solarfleet.parameters.models import UnitReportNote
from tests.factories import Factory
from tests.parameters.conftest import Fleet, counts, history, report, set_part, set_unit, unit_auth


def basic(text: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(text.encode()).decode()}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Token token=abc"},
        {"Authorization": "Basic !!!"},
        basic("no-colon"),
        basic("111010101010101:wrong-key-wrong-key-1234"),
        basic("999999999999999:wrong-key-wrong-key-1234"),
        basic("not-an-imei:x"),
        basic("111010101010101:"),
    ],
)
def test_bad_or_missing_unit_credentials_are_401(
    client: TestClient, fleet: Fleet, headers: dict[str, str]
) -> None:
    for method in ("GET", "POST"):
        r = client.request(method, "/v1/rc_data", json={}, headers=headers)
        assert r.status_code == 401, r.text
        assert r.json()["status"] == "error"
        assert r.headers["www-authenticate"].startswith("Basic")


def test_a_device_key_opens_only_its_own_unit(
    client: TestClient, factory: Factory, fleet: Fleet
) -> None:
    other = factory.product(product_type=None)
    stolen = basic(f"{fleet.imei}:{other.device_key}")
    assert client.get("/v1/rc_data", headers=stolen).status_code == 401
    r = client.get("/v1/rc_data", headers=unit_auth(other))
    assert r.status_code == 200 and r.json()["data"]["product_imei"] == other.product_imei
    # and a unit key is no user token
    assert (
        client.get(
            f"/v1/products/{fleet.imei}/parameters/history", headers=fleet.device
        ).status_code
        == 401
    )


def test_rc_data_lists_the_pending_values(
    client: TestClient, factory: Factory, fleet: Fleet
) -> None:
    set_unit(client, fleet, 5)
    six = set_unit(client, fleet, 6).json()["data"]
    flag = set_unit(client, fleet, True, fleet.enabled).json()["data"]
    part_value = set_part(client, fleet, 9).json()["data"]
    part_type = factory.part_type(parameter_types=[fleet.level.parameter_type_id])
    elsewhere = factory.part(part_type=part_type, on=factory.product())
    assert set_part(client, fleet, 3, elsewhere).status_code == 201  # not sent to this unit
    r = client.get("/v1/rc_data", headers=fleet.device)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success"
    assert body["data"] == {
        "product_imei": fleet.imei,
        "desired_enable_flag": None,
        "product_parameters": [
            {
                "product_parameter_id": six["product_parameter_id"],
                "parameter_type_id": fleet.level.parameter_type_id,
                "value": "6",
            },
            {
                "product_parameter_id": flag["product_parameter_id"],
                "parameter_type_id": fleet.enabled.parameter_type_id,
                "value": "True",
            },
        ],
        "part_parameters": {
            str(fleet.part.part_id): [
                {
                    "part_parameter_id": part_value["part_parameter_id"],
                    "parameter_type_id": fleet.level.parameter_type_id,
                    "value": "9",
                }
            ]
        },
    }


def test_a_report_activates_matching_pending_values_and_removes_the_old(
    client: TestClient, fleet: Fleet
) -> None:
    level = fleet.level.parameter_type_id
    set_unit(client, fleet, 6)
    set_part(client, fleet, 9)
    out = report(
        client,
        fleet,
        product_parameters=[{"parameter_type_id": level, "value": "6"}],
        part_parameters={str(fleet.part.part_id): [{"parameter_type_id": level, "value": 9}]},
    )
    assert out["activated"] == 2 and out["notes"] == 0
    set_unit(client, fleet, 7)
    out = report(client, fleet, product_parameters=[{"parameter_type_id": level, "value": 7}])
    assert out["activated"] == 1
    rows = history(client, fleet).json()["data"]["product_parameters"]
    assert [(r["value"], r["status"]) for r in rows] == [("6", "removed"), ("7", "active")]
    assert rows[0]["date_removed"] == rows[1]["date_added"]
    assert rows[1]["modified_by"] == f"unit:{fleet.imei}"
    part_rows = history(client, fleet).json()["data"]["part_parameters"][str(fleet.part.part_id)]
    assert [(r["value"], r["status"]) for r in part_rows] == [("9", "active")]
    data = client.get("/v1/rc_data", headers=fleet.device).json()["data"]
    assert data["product_parameters"] == [] and data["part_parameters"] == {
        str(fleet.part.part_id): []
    }


def test_values_are_compared_as_their_data_type(
    client: TestClient, factory: Factory, fleet: Fleet
) -> None:
    ratio = factory.parameter_type("float", name="ratio")
    when = factory.parameter_type("datetime", name="when")
    ptype = factory.product_type(
        parameter_types=[
            ratio.parameter_type_id,
            when.parameter_type_id,
            fleet.enabled.parameter_type_id,
        ]
    )
    unit = factory.product(product_type=ptype)
    for pt, value in ((ratio, "0.50"), (when, "2020-01-01"), (fleet.enabled, "True")):
        assert set_unit(client, fleet, value, pt, imei=unit.product_imei).status_code == 201
    r = client.post(
        "/v1/rc_data",
        headers=unit_auth(unit),
        json={
            "product_parameters": [
                {"parameter_type_id": ratio.parameter_type_id, "value": 0.5},
                {"parameter_type_id": when.parameter_type_id, "value": "2020-01-01T02:00:00+02:00"},
                {"parameter_type_id": fleet.enabled.parameter_type_id, "value": "true"},
            ]
        },
    )
    assert r.json()["data"]["activated"] == 3, r.text


def test_a_replayed_report_changes_nothing(
    client: TestClient, fleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    level = fleet.level.parameter_type_id
    set_unit(client, fleet, 6)
    body = {
        "enable_flag": True,
        "product_parameters": [
            {"parameter_type_id": level, "value": 6},
            {"parameter_type_id": level, "value": 3},
        ],
    }
    first = report(client, fleet, **body)
    assert first["activated"] == 1 and first["notes"] == 1 and first["enable_flag_changed"]
    before = history(client, fleet).json()["data"], counts(sessions)
    again = report(client, fleet, **body)
    assert again == {"activated": 0, "unchanged": 1, "notes": 0, "enable_flag_changed": False}
    assert (history(client, fleet).json()["data"], counts(sessions)) == before


def test_unexpected_reports_are_notes_not_errors(
    client: TestClient, factory: Factory, fleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    level = fleet.level.parameter_type_id
    set_unit(client, fleet, 6)
    out = report(
        client,
        fleet,
        product_parameters=[
            {"parameter_type_id": level, "value": 5},  # never pending
            {"parameter_type_id": 424242, "value": 1},  # unknown type
            {"parameter_type_id": level, "value": "five"},  # not an int
            {"parameter_type_id": level, "value": "a\x00"},  # not storable as is
        ],
        part_parameters={
            str(fleet.spare.part_id): [{"parameter_type_id": level, "value": 1}],  # not on the unit
            "abc": [{"parameter_type_id": level, "value": 1}],  # no such part
            "99999": [{"parameter_type_id": level, "value": 1}],
        },
    )
    assert out["activated"] == 0 and out["notes"] == 7
    with sessions() as session:
        reasons = sorted(session.scalars(select(UnitReportNote.reason)))
    assert reasons == sorted(
        [
            "not_pending",
            "unknown_type",
            "invalid_value",
            "invalid_value",
            "not_on_unit",
            "unknown_part",
            "unknown_part",
        ]
    )
    r = client.get(f"/v1/products/{fleet.imei}/parameters/notes", headers=fleet.admin)
    assert r.status_code == 200 and len(r.json()["data"]) == 7
    assert "pending '6'" in r.json()["data"][-1]["message"]
    rows = history(client, fleet).json()["data"]["product_parameters"]
    assert [(r["value"], r["status"]) for r in rows] == [("6", "pending")]


def test_enable_flag_reported_becomes_current(
    client: TestClient, fleet: Fleet, sessions: sessionmaker[Session], factory: Factory
) -> None:
    put = client.put(
        f"/v1/products/{fleet.imei}",
        json={"desired_enable_flag": False},
        headers=factory.headers("ADMIN"),
    )
    assert put.status_code == 200, put.text
    assert (
        client.get("/v1/rc_data", headers=fleet.device).json()["data"]["desired_enable_flag"]
        is False
    )
    report(client, fleet, enable_flag=False)
    with sessions() as session:
        assert session.get_one(Product, fleet.imei).current_enable_flag is False
    report(client, fleet)  # no key: nothing changes
    with sessions() as session:
        assert session.get_one(Product, fleet.imei).current_enable_flag is False


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b'{"product_parameters": 5}',
        b'{"product_parameters": [{"value": 1}]}',
        b'{"enable_flag": "maybe"}',
        b'{"part_parameters": {"1": 2}}',
    ],
)
def test_malformed_reports_are_400(client: TestClient, fleet: Fleet, body: bytes) -> None:
    r = client.post(
        "/v1/rc_data", content=body, headers={**fleet.device, "Content-Type": "application/json"}
    )
    assert r.status_code == 400, r.text


def test_notes_are_scope_checked(client: TestClient, factory: Factory, fleet: Fleet) -> None:
    outsider = factory.headers("OVERVIEW", "ENTITY", factory.entity())
    r = client.get(f"/v1/products/{fleet.imei}/parameters/notes", headers=outsider)
    assert r.status_code == 404


def test_hostile_reported_strings_become_storable_notes(
    client: TestClient, factory: Factory, fleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    mode = factory.parameter_type("string", name="mode")
    level = fleet.level.parameter_type_id
    body = json.dumps(  # ASCII JSON with escapes for a lone surrogate and NUL
        {
            "product_parameters": [
                {"parameter_type_id": level, "value": "\ud800x\x00"},
                {"parameter_type_id": mode.parameter_type_id, "value": "\ud800"},
            ],
            "part_parameters": {"\ud800\x00": [{"parameter_type_id": 1, "value": 1}]},
        }
    )
    r = client.post(
        "/v1/rc_data", content=body.encode(),
        headers={**fleet.device, "Content-Type": "application/json"},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["data"]["notes"] == 3
    assert counts(sessions)[2] == 3
