"""Seed 003 replayed through the API: full history, the set at an instant, diffs and scope."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from solarfleet.db import utcnow
from solarfleet.timeparse import format_instant
from tests.factories import Factory
from tests.parameters.conftest import Fleet, history, report, set_part, set_unit

PRODUCT_FIELDS = {
    "product_parameter_id", "product_imei", "parameter_type_id", "value", "status", "date_added",
    "date_removed", "created_at", "created_by", "modified_at", "modified_by",
}  # fmt: skip
PART_FIELDS = PRODUCT_FIELDS - {"product_parameter_id", "product_imei"} | {
    "part_parameter_id",
    "part_id",
}


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def shift(text: str, microseconds: int) -> str:
    return format_instant(t(text) + timedelta(microseconds=microseconds))


def values(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["value"], r["status"]) for r in rows]


@pytest.fixture
def story(client: TestClient, factory: Factory, fleet: Fleet) -> dict[str, Any]:
    """Seed 003's story: on the unit and on a part, set 5, set 6, unit confirms 6, set 7,
    unit confirms 7; two bool types set and confirmed; four more (empty) parts on the unit."""
    level = fleet.level.parameter_type_id
    for _ in range(4):
        factory.part(part_type=factory.part_type(), on=fleet.unit)
    set_unit(client, fleet, True, fleet.enabled)
    set_unit(client, fleet, 5)
    set_part(client, fleet, 5)
    set_unit(client, fleet, 6)
    set_part(client, fleet, 6)
    mark = {"before_confirm": _now(client)}
    report(
        client,
        fleet,
        product_parameters=[
            {"parameter_type_id": level, "value": 6},
            {"parameter_type_id": fleet.enabled.parameter_type_id, "value": True},
        ],
        part_parameters={str(fleet.part.part_id): [{"parameter_type_id": level, "value": "6"}]},
    )
    set_unit(client, fleet, 7)
    set_part(client, fleet, 7)
    mark["between"] = _now(client)
    report(
        client,
        fleet,
        product_parameters=[{"parameter_type_id": level, "value": 7}],
        part_parameters={str(fleet.part.part_id): [{"parameter_type_id": level, "value": 7}]},
    )
    mark["after"] = _now(client)
    return mark


def _now(client: TestClient) -> str:
    """An instant strictly between the requests before and after it."""
    return format_instant(utcnow())


def test_full_history_has_the_seeds_shape_states_and_order(
    client: TestClient, fleet: Fleet, story: dict[str, Any]
) -> None:
    r = history(client, fleet)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success"
    assert body["message"] == f"Full parameter history for #{fleet.imei} returned successfully"
    data = body["data"]
    assert set(data) == {"part_parameters", "product_parameters"}
    products = data["product_parameters"]
    assert all(set(row) == PRODUCT_FIELDS for row in products)
    level = [r for r in products if r["parameter_type_id"] == fleet.level.parameter_type_id]
    assert values(level) == [("5", "expired"), ("6", "removed"), ("7", "active")]
    flag = [r for r in products if r["parameter_type_id"] == fleet.enabled.parameter_type_id]
    assert values(flag) == [("True", "active")]
    parts = data["part_parameters"]
    assert len(parts) == 5 and all(isinstance(k, str) for k in parts)
    assert all(rows == [] for k, rows in parts.items() if k != str(fleet.part.part_id))
    part_rows = parts[str(fleet.part.part_id)]
    assert all(set(row) == PART_FIELDS for row in part_rows)
    assert values(part_rows) == [("5", "expired"), ("6", "removed"), ("7", "active")]
    for rows in (level, part_rows):
        expired, removed, active = rows
        # the seed's timestamp order
        assert expired["created_at"] < expired["date_added"] < expired["date_removed"]
        assert expired["date_removed"] <= expired["modified_at"]
        assert expired["date_removed"] < removed["date_added"]  # 6 was confirmed after 5 expired
        assert removed["created_at"] < removed["date_added"] < removed["date_removed"]
        assert active["created_at"] < active["date_added"] == removed["date_removed"]
        assert active["date_removed"] is None
        for row in rows:
            for key in ("created_at", "date_added", "date_removed", "modified_at"):
                assert row[key] is None or len(row[key]) == 26 and row[key][10] == "T"


def as_of(
    client: TestClient, fleet: Fleet, when: str, headers: dict[str, str] | None = None
) -> Any:
    r = history(client, fleet, headers, date=when)
    assert r.status_code == 200, r.text
    return r.json()


def level_values(client: TestClient, fleet: Fleet, when: str) -> tuple[list[str], list[str]]:
    data = as_of(client, fleet, when)["data"]
    products = [
        r
        for r in data["product_parameters"]
        if r["parameter_type_id"] == fleet.level.parameter_type_id
    ]
    assert all(
        r["status"] == "active" and r["date_removed"] is None for r in data["product_parameters"]
    )
    part = data["part_parameters"].get(str(fleet.part.part_id), [])
    assert all(r["status"] == "active" and r["date_removed"] is None for r in part)
    return [r["value"] for r in products], [r["value"] for r in part]


def test_as_of_before_between_and_on_each_boundary(
    client: TestClient, fleet: Fleet, story: dict[str, Any]
) -> None:
    full = history(client, fleet).json()["data"]
    expired, removed, active = [
        r
        for r in full["product_parameters"]
        if r["parameter_type_id"] == fleet.level.parameter_type_id
    ]
    p_expired, p_removed, p_active = full["part_parameters"][str(fleet.part.part_id)]
    assert level_values(client, fleet, story["before_confirm"]) == ([], [])
    assert level_values(client, fleet, "2000-01-01") == ([], [])
    # never an expired row, even exactly on its dates
    assert level_values(client, fleet, expired["date_added"]) == ([], [])
    assert level_values(client, fleet, expired["date_removed"]) == ([], [])
    # 6 from its date_added (inclusive) to its date_removed (exclusive)
    six, seven = removed["date_added"], removed["date_removed"]
    assert level_values(client, fleet, shift(six, -1))[0] == []
    assert level_values(client, fleet, six)[0] == ["6"]
    assert level_values(client, fleet, story["between"]) == (["6"], ["6"])
    assert level_values(client, fleet, shift(seven, -1))[0] == ["6"]
    assert level_values(client, fleet, seven)[0] == ["7"]
    assert level_values(client, fleet, story["after"]) == (["7"], ["7"])
    assert level_values(client, fleet, p_removed["date_added"])[1] == ["6"]
    assert level_values(client, fleet, shift(p_removed["date_added"], -1))[1] == []
    assert level_values(client, fleet, p_active["date_added"])[1] == ["7"]
    row = as_of(client, fleet, story["between"])["data"]["product_parameters"]
    six_row = next(r for r in row if r["value"] == "6")
    assert six_row["product_parameter_id"] == removed["product_parameter_id"]
    assert set(six_row) == PRODUCT_FIELDS


def test_as_of_message_date_forms_and_body(
    client: TestClient, fleet: Fleet, story: dict[str, Any]
) -> None:
    when = story["between"]
    body = as_of(client, fleet, when)
    assert body["message"] == f"Parameter set of #{fleet.imei} at {when} returned successfully"
    url = f"/v1/products/{fleet.imei}/parameters/history"
    r = client.request("GET", url, json={"date": when}, headers=fleet.admin)
    assert r.status_code == 200 and r.json() == body
    zoned = (t(when) + timedelta(hours=2)).isoformat() + "+02:00"
    assert as_of(client, fleet, zoned)["data"] == body["data"]
    epoch = int((t(story["after"]) - datetime(1970, 1, 1)) / timedelta(milliseconds=1)) + 1
    assert as_of(client, fleet, str(epoch))["message"].endswith("returned successfully")
    r = client.request("GET", url, json={"date": None}, headers=fleet.admin)
    assert r.json()["message"].startswith("Full parameter history")


@pytest.mark.parametrize(
    ("params", "body"),
    [
        ({"date": "not a date"}, None),
        ({"date": ""}, None),
        ({"date": "2016-13-45"}, None),
        ({"date": "99999999999999999999"}, None),
        ({}, {"date": "tomorrow"}),
        ({}, {"date": True}),
        ({}, {"date": [2016]}),
        ({"date": "2016-01-01"}, {"date": "2017-01-01"}),
    ],
)
def test_a_bad_date_is_400(
    client: TestClient, fleet: Fleet, params: dict[str, str], body: Any
) -> None:
    url = f"/v1/products/{fleet.imei}/parameters/history"
    r = client.request("GET", url, params=params, json=body, headers=fleet.admin)
    assert r.status_code == 400, r.text
    assert "date" in r.json()["message"]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{", "application/json", "Malformed JSON body"),
        (b"[1]", "application/json", "The body must be a JSON object, not list"),
        (b'{"date": "2016-01-01"}', "text/plain",
         "The body must be JSON (Content-Type: application/json)"),
        (b'{"date": "2016-01-01"}', None,
         "The body must be JSON (Content-Type: application/json)"),
    ],
)  # fmt: skip
def test_a_body_that_is_not_a_json_object_is_400(
    client: TestClient, fleet: Fleet, body: bytes, content_type: str | None, message: str
) -> None:
    url = f"/v1/products/{fleet.imei}/parameters/history"
    headers = {**fleet.admin, **({"Content-Type": content_type} if content_type else {})}
    r = client.request("GET", url, content=body, headers=headers)
    assert (r.status_code, r.json()["message"]) == (400, message)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/x+json"])
def test_a_json_body_of_any_json_media_type_gives_the_date(
    client: TestClient, fleet: Fleet, content_type: str
) -> None:
    url = f"/v1/products/{fleet.imei}/parameters/history"
    headers = {**fleet.admin, "Content-Type": content_type}
    r = client.request("GET", url, content=b'{"date": "2016-01-01"}', headers=headers)
    assert r.status_code == 200
    assert r.json()["message"].startswith(f"Parameter set of #{fleet.imei} at 2016-01-01T00:00")


def test_the_caller_is_authenticated_before_the_body_is_read(
    client: TestClient, fleet: Fleet
) -> None:
    url = f"/v1/products/{fleet.imei}/parameters/history"
    headers = {"Authorization": "Token token=" + "x" * 43, "Content-Type": "application/json"}
    r = client.request("GET", url, content=b"{", headers=headers)
    assert (r.status_code, r.json()["message"]) == (401, "Invalid token")


def test_as_of_shows_the_parts_on_the_unit_then(
    client: TestClient, factory: Factory, fleet: Fleet
) -> None:
    level = fleet.level.parameter_type_id
    old, new = str(fleet.part.part_id), str(fleet.spare.part_id)
    set_part(client, fleet, 9)
    report(client, fleet, part_parameters={old: [{"parameter_type_id": level, "value": 9}]})
    on_old = _now(client)
    tech = factory.headers("TECHNICAL")
    assert client.delete(f"/v1/products/{fleet.imei}/parts/{old}", headers=tech).status_code == 200
    r = client.post(
        f"/v1/products/{fleet.imei}/parts", json={"part_id": fleet.spare.part_id}, headers=tech
    )
    assert r.status_code == 201, r.text
    set_part(client, fleet, 4, fleet.spare)
    report(client, fleet, part_parameters={new: [{"parameter_type_id": level, "value": 4}]})
    on_new = _now(client)
    then = as_of(client, fleet, on_old)["data"]["part_parameters"]
    assert {k: [r["value"] for r in v] for k, v in then.items()} == {old: ["9"]}
    now = as_of(client, fleet, on_new)["data"]["part_parameters"]
    assert {k: [r["value"] for r in v] for k, v in now.items()} == {new: ["4"]}
    # the full history keeps every part that was ever on the unit, with its rows from then
    full = history(client, fleet).json()["data"]["part_parameters"]
    assert {k: [r["value"] for r in v] for k, v in full.items()} == {old: ["9"], new: ["4"]}
    diff = client.get(
        f"/v1/products/{fleet.imei}/parameters/diff",
        params={"from": on_old, "to": on_new},
        headers=fleet.admin,
    )
    assert diff.status_code == 200, diff.text
    changes = diff.json()["data"]["part_parameters"]
    assert [r["value"] for r in changes[old]["removed"]] == ["9"]
    assert [r["value"] for r in changes[new]["added"]] == ["4"]


def test_diff_lists_added_removed_and_changed(
    client: TestClient, fleet: Fleet, story: dict[str, Any]
) -> None:
    url = f"/v1/products/{fleet.imei}/parameters/diff"
    r = client.get(url, params={"from": "2000-01-01", "to": story["between"]}, headers=fleet.admin)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert sorted(x["value"] for x in data["product_parameters"]["added"]) == ["6", "True"]
    assert data["product_parameters"]["removed"] == data["product_parameters"]["changed"] == []
    r = client.get(
        url, params={"from": story["between"], "to": story["after"]}, headers=fleet.admin
    )
    data = r.json()["data"]
    assert r.json()["message"] == (
        f"Parameter changes of #{fleet.imei} from {story['between']} to {story['after']}"
    )
    (change,) = data["product_parameters"]["changed"]
    assert (change["from"]["value"], change["to"]["value"]) == ("6", "7")
    assert data["product_parameters"]["added"] == []
    (part_change,) = data["part_parameters"][str(fleet.part.part_id)]["changed"]
    assert part_change["to"]["value"] == "7"
    for params in ({"from": "x", "to": "2020-01-01"}, {"from": "2020-01-01"}, {}):
        r = client.get(url, params=params, headers=fleet.admin)
        assert r.status_code == 400, r.text


def test_scope_an_entity_user_sees_only_its_units(
    client: TestClient, factory: Factory, fleet: Fleet, story: dict[str, Any]
) -> None:
    outsider = factory.headers("OVERVIEW", "ENTITY", factory.entity())
    insider = factory.headers("OVERVIEW", "ENTITY", fleet.entity)
    base = f"/v1/products/{fleet.imei}/parameters"
    requests = [
        (f"{base}/history", {}),
        (f"{base}/history", {"date": story["between"]}),
        (f"{base}/diff", {"from": "2000-01-01", "to": story["after"]}),
    ]
    for url, params in requests:
        r = client.get(url, params=params, headers=outsider)
        assert r.status_code == 404, r.text
        assert fleet.imei in r.json()["message"] and "data" not in r.json()
        assert client.get(url, params=params, headers=insider).status_code == 200
    r = client.request("GET", f"{base}/history", json={"date": story["between"]}, headers=outsider)
    assert r.status_code == 404
    assert client.get(f"{base}/history").status_code == 401
    assert (
        client.get(
            "/v1/products/000000000000001/parameters/history", headers=fleet.admin
        ).status_code
        == 404
    )
    assert client.get("/v1/products/abc/parameters/history", headers=fleet.admin).status_code == 400


def test_the_seeds_own_call_empty_body_with_json_content_type(
    client: TestClient, fleet: Fleet
) -> None:
    headers = {**fleet.admin, "Content-Type": "application/json"}
    r = client.get(f"/v1/products/{fleet.imei}/parameters/history", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["message"].startswith("Full parameter history")
