"""Setting values: validation, the envelope, superseding, and bad input that writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import Factory
from tests.parameters.conftest import Fleet, counts, set_part, set_unit

SEED_FIELDS = {
    "product_parameter_id", "product_imei", "parameter_type_id", "value", "status", "date_added",
    "date_removed", "created_at", "created_by", "modified_at", "modified_by",
}  # fmt: skip


def test_set_answers_the_new_pending_row_in_the_envelope(client: TestClient, fleet: Fleet) -> None:
    r = set_unit(client, fleet, 5)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "success" and "pending" in body["message"]
    row = body["data"]
    assert set(row) == SEED_FIELDS
    assert row["value"] == "5" and row["status"] == "pending"
    assert row["date_added"] is None and row["date_removed"] is None
    assert row["product_imei"] == fleet.imei and row["created_by"].startswith("user-")


def test_a_newer_pending_value_expires_the_older(client: TestClient, fleet: Fleet) -> None:
    first = set_unit(client, fleet, 5).json()["data"]
    second = set_unit(client, fleet, 6).json()["data"]
    rows = client.get(f"/v1/products/{fleet.imei}/parameters/history", headers=fleet.admin).json()[
        "data"
    ]["product_parameters"]
    by_id = {r["product_parameter_id"]: r for r in rows}
    old, new = by_id[first["product_parameter_id"]], by_id[second["product_parameter_id"]]
    assert old["status"] == "expired" and new["status"] == "pending"
    assert old["created_at"] < old["date_added"] < old["date_removed"] <= old["modified_at"]
    assert old["modified_by"] == new["created_by"]


def test_part_values_are_set_and_superseded_the_same_way(client: TestClient, fleet: Fleet) -> None:
    assert set_part(client, fleet, 5).status_code == 201
    r = set_part(client, fleet, 6)
    assert r.status_code == 201, r.text
    row = r.json()["data"]
    assert row["part_id"] == fleet.part.part_id and "product_imei" not in row
    rows = client.get(f"/v1/products/{fleet.imei}/parameters/history", headers=fleet.admin).json()[
        "data"
    ]["part_parameters"][str(fleet.part.part_id)]
    assert [(r["value"], r["status"]) for r in rows] == [("5", "expired"), ("6", "pending")]


@pytest.mark.parametrize(
    ("data_type", "rules", "value", "stored"),
    [
        ("int", None, "42", "42"),
        ("int", None, -7, "-7"),
        ("float", None, 5, "5.0"),
        ("float", None, "0.1", "0.1"),
        ("bool", None, True, "True"),
        ("bool", None, "false", "False"),
        ("bool", None, 0, "False"),
        ("string", None, "eco", "eco"),
        ("datetime", None, "2016-10-21T13:38:16+02:00", "2016-10-21T11:38:16.000000"),
        ("datetime", None, 1477049896961, "2016-10-21T11:38:16.961000"),
        ("float", {"min": 0.5, "max": 1.5}, 1.5, "1.5"),
        ("string", {"choices": ["eco", "boost"]}, "boost", "boost"),
        ("string", {"pattern": "[A-Z]{3}", "max_length": 3}, "ABC", "ABC"),
        ("datetime", {"min": "2020-01-01"}, "2021-01-01", "2021-01-01T00:00:00.000000"),
        ("int", {"choices": [1, "2"]}, "2", "2"),
    ],
)
def test_values_are_stored_in_canonical_form(
    client: TestClient, factory: Factory, fleet: Fleet, data_type: str, rules: Any, value: Any,
    stored: str,
) -> None:  # fmt: skip
    ptype = factory.parameter_type(data_type, validation_rules=rules)
    unit = factory.product(
        product_type=factory.product_type(parameter_types=[ptype.parameter_type_id])
    )
    r = set_unit(client, fleet, value, ptype, imei=unit.product_imei)
    assert r.status_code == 201, r.text
    assert r.json()["data"]["value"] == stored


@pytest.mark.parametrize(
    ("data_type", "rules", "value", "words"),
    [
        ("int", None, "5.5", "expected an integer"),
        ("int", None, True, "boolean"),
        ("int", None, 2**70, "out of range"),
        ("int", None, None, "null"),
        ("int", None, [1], "expected an integer"),
        ("float", None, "NaN", "finite"),
        ("float", None, "abc", "expected a number"),
        ("bool", None, "yes", "expected a boolean"),
        ("string", None, 5, "expected a string"),
        ("string", None, "a\x00b", "NUL"),
        ("datetime", None, "yesterday", "expected a time"),
        ("int", {"min": 0, "max": 100}, 101, "max"),
        ("int", {"min": 0, "max": 100}, -1, "min"),
        ("string", {"choices": ["eco", "boost"]}, "turbo", "choices"),
        ("string", {"pattern": "[A-Z]{3}"}, "ABCD", "pattern"),
        # Exponential backtracking (Fibonacci(40) paths): refused within the time limit.
        ("string", {"pattern": "(a|aa)+b"}, "a" * 40, "takes too long"),
        ("string", {"max_length": 2}, "abc", "max_length"),
        ("datetime", {"max": "2020-01-01"}, "2021-01-01", "max"),
    ],
)
def test_invalid_values_are_400_naming_the_rule_and_write_nothing(
    client: TestClient, factory: Factory, fleet: Fleet, sessions: sessionmaker[Session],
    data_type: str, rules: Any, value: Any, words: str,
) -> None:  # fmt: skip
    ptype = factory.parameter_type(data_type, validation_rules=rules)
    unit = factory.product(
        product_type=factory.product_type(parameter_types=[ptype.parameter_type_id])
    )
    before = counts(sessions)
    r = set_unit(client, fleet, value, ptype, imei=unit.product_imei)
    assert r.status_code == 400, r.text
    assert words in r.json()["message"] and ptype.name in r.json()["message"]
    assert counts(sessions) == before


def test_a_rejected_set_leaves_the_pending_value_in_place(
    client: TestClient, fleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    set_unit(client, fleet, 5)
    assert set_unit(client, fleet, 500).status_code == 400
    rows = client.get(f"/v1/products/{fleet.imei}/parameters/history", headers=fleet.admin).json()[
        "data"
    ]["product_parameters"]
    assert [(r["value"], r["status"]) for r in rows] == [("5", "pending")]


def test_type_not_allowed_for_the_product_or_part_type_is_400(
    client: TestClient, factory: Factory, fleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    other = factory.parameter_type("int", name="not_here")
    before = counts(sessions)
    r = set_unit(client, fleet, 1, other)
    assert r.status_code == 400 and "not allowed for product type" in r.json()["message"]
    r = client.post(
        f"/v1/parts/{fleet.part.part_id}/parameters",
        json={"parameter_type_id": fleet.enabled.parameter_type_id, "value": True},
        headers=fleet.admin,
    )
    assert r.status_code == 400 and "not allowed for part type" in r.json()["message"]
    assert counts(sessions) == before


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"parameter_type_id": 999999, "value": 1}, "no parameter type 999999"),
        ({"parameter_type_id": "abc", "value": 1}, "parameter_type_id"),
        ({"parameter_type_id": 2**40, "value": 1}, "parameter_type_id"),
        ({"value": 1}, "Missing field 'parameter_type_id'"),
        ({"parameter_type_id": 1}, "Missing field 'value'"),
        ({"parameter_type_id": 1, "value": 1, "status": "active"}, "Unknown field 'status'"),
    ],
)
def test_bad_bodies_are_400(
    client: TestClient, fleet: Fleet, sessions: sessionmaker[Session], body: Any, words: str
) -> None:
    before = counts(sessions)
    r = client.post(f"/v1/products/{fleet.imei}/parameters", json=body, headers=fleet.admin)
    assert r.status_code == 400, r.text
    assert words in r.json()["message"]
    assert counts(sessions) == before


def test_malformed_json_and_bad_ids(client: TestClient, fleet: Fleet) -> None:
    r = client.post(f"/v1/products/{fleet.imei}/parameters", content=b"{", headers=fleet.admin)
    assert r.status_code == 400
    body = {"parameter_type_id": fleet.level.parameter_type_id, "value": 1}
    assert (
        client.post("/v1/products/12ab/parameters", json=body, headers=fleet.admin).status_code
        == 400
    )
    assert (
        client.post("/v1/products/999/parameters", json=body, headers=fleet.admin).status_code
        == 404
    )
    assert client.post("/v1/parts/x/parameters", json=body, headers=fleet.admin).status_code == 400
    assert (
        client.post("/v1/parts/999999/parameters", json=body, headers=fleet.admin).status_code
        == 404
    )


def test_setting_needs_admin_and_scope(client: TestClient, factory: Factory, fleet: Fleet) -> None:
    body = {"parameter_type_id": fleet.level.parameter_type_id, "value": 1}
    url = f"/v1/products/{fleet.imei}/parameters"
    technical = factory.headers("TECHNICAL")
    assert client.post(url, json=body, headers=technical).status_code == 403
    assert client.post(url, json=body).status_code == 401
    outsider = factory.headers("ADMIN", "ENTITY", factory.entity())
    assert client.post(url, json=body, headers=outsider).status_code == 404
    part_url = f"/v1/parts/{fleet.part.part_id}/parameters"
    assert client.post(part_url, json=body, headers=outsider).status_code == 404
    insider = factory.headers("ADMIN", "ENTITY", fleet.entity)
    assert client.post(url, json=body, headers=insider).status_code == 201
    assert client.post(part_url, json=body, headers=insider).status_code == 201
    assert client.get(url, headers=fleet.admin).status_code == 405


@pytest.mark.parametrize(
    ("data_type", "rules", "words"),
    [
        ("int", {"minimum": 1}, "unknown rule 'minimum'"),
        ("int", {"pattern": "x"}, "'pattern' does not apply to int"),
        ("bool", {"choices": [True]}, "'choices' does not apply to bool"),
        ("int", {"min": 5, "max": 1}, "'min' is greater than 'max'"),
        ("int", {"min": "a"}, "'min' must be a number"),
        ("float", {"max": True}, "'max' must be a number"),
        ("string", {"pattern": "("}, "not a regex"),
        ("string", {"max_length": -1}, "max_length"),
        ("string", {"choices": []}, "non-empty list"),
        ("int", {"choices": [1, "two"]}, "'choices'"),
        ("datetime", {"min": "soon"}, "'min'"),
        ("int", [1, 2], "validation_rules"),
    ],
)
def test_bad_validation_rules_are_400_on_create(
    client: TestClient, system: dict[str, str], data_type: str, rules: Any, words: str
) -> None:
    body = {"name": "x", "data_type": data_type, "validation_rules": rules}
    r = client.post("/v1/parameter_types", json=body, headers=system)
    assert r.status_code == 400, r.text
    assert words in r.json()["message"]


def test_rules_are_checked_on_update_against_the_resulting_data_type(
    client: TestClient, system: dict[str, str]
) -> None:
    body = {"name": "mode", "data_type": "string", "validation_rules": {"choices": ["a", "b"]}}
    r = client.post("/v1/parameter_types", json=body, headers=system)
    assert r.status_code == 201, r.text
    url = f"/v1/parameter_types/{r.json()['parameter_type_id']}"
    assert client.put(url, json={"data_type": "int"}, headers=system).status_code == 400
    r = client.put(url, json={"validation_rules": {"max_length": 1}}, headers=system)
    assert r.status_code == 200, r.text
    r = client.put(url, json={"validation_rules": {"max": 1}}, headers=system)
    assert r.status_code == 400 and "'max' does not apply to string" in r.json()["message"]
    assert client.put(url, json={"data_type": "bool"}, headers=system).status_code == 400
    r = client.put(url, json={"data_type": "bool", "validation_rules": None}, headers=system)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("data_type", "raw_value"),
    [
        ("string", '"\\ud800"'),
        ("float", "1" + "0" * 400),
        ("float", "1e400"),
        ("datetime", '"0001-01-01T00:00:00+01:00"'),
        ("datetime", '"9999-12-31T23:59:59-01:00"'),
        ("int", '{"a": 1}'),
    ],
)
def test_hostile_values_are_400_never_500(
    client: TestClient, factory: Factory, fleet: Fleet, data_type: str, raw_value: str
) -> None:
    ptype = factory.parameter_type(data_type)
    unit = factory.product(
        product_type=factory.product_type(parameter_types=[ptype.parameter_type_id])
    )
    body = f'{{"parameter_type_id": {ptype.parameter_type_id}, "value": {raw_value}}}'
    r = client.post(
        f"/v1/products/{unit.product_imei}/parameters", content=body.encode(),
        headers={**fleet.admin, "Content-Type": "application/json"},
    )  # fmt: skip
    assert r.status_code == 400, r.text


def test_unusable_stored_rules_are_a_400_not_a_500(
    client: TestClient, factory: Factory, fleet: Fleet
) -> None:
    ptype = factory.parameter_type("int", validation_rules={"choices": ["x"]})  # written raw
    unit = factory.product(
        product_type=factory.product_type(parameter_types=[ptype.parameter_type_id])
    )
    r = set_unit(client, fleet, 1, ptype, imei=unit.product_imei)
    assert r.status_code == 400 and "unusable rules" in r.json()["message"]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


def test_any_json_value_is_stored_or_refused_never_a_500(
    client: TestClient, factory: Factory, fleet: Fleet
) -> None:
    rules = {"int": {"min": -5, "max": 5}, "float": {"max": 1.5}, "string": {"pattern": "a+"}}
    units = {}
    for data_type in ("int", "float", "bool", "string", "datetime"):
        ptype = factory.parameter_type(data_type, validation_rules=rules.get(data_type))
        product_type = factory.product_type(parameter_types=[ptype.parameter_type_id])
        units[data_type] = (ptype.parameter_type_id, factory.product(product_type=product_type))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data_type=st.sampled_from(sorted(units)), value=json_values)
    def check(data_type: str, value: Any) -> None:
        type_id, unit = units[data_type]
        body = {"parameter_type_id": type_id, "value": value}
        url = f"/v1/products/{unit.product_imei}/parameters"
        r = client.post(url, json=body, headers=fleet.admin)
        assert r.status_code in (201, 400), r.text

    check()
