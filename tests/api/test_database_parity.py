"""Same request, same answer on SQLite and PostgreSQL (issue 16, item 5): integers beyond a
column's 32 bits, a NUL in a username at login, a backslash in a like pattern."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.factories import PASSWORD, Factory

Headers = dict[str, str]
BIG = 3_000_000_000  # beyond 2,147,483,647: PostgreSQL's INTEGER cannot hold it


def imeis(client: TestClient, headers: Headers, *filters: dict[str, Any]) -> list[str]:
    r = client.get(
        "/v1/products",
        headers=headers,
        params={"q": orjson.dumps({"filters": list(filters)}).decode(), "results_per_page": 100},
    )
    assert r.status_code == 200, r.text
    return sorted(o["product_imei"] for o in r.json()["objects"])


@pytest.mark.parametrize(
    ("op", "val", "matches"),
    [
        ("==", BIG, False),
        ("!=", BIG, True),
        ("<", BIG, True),
        ("<=", BIG, True),
        (">", BIG, False),
        (">=", BIG, False),
        ("==", -BIG, False),
        (">", -BIG, True),
        ("<", -BIG, False),
        ("==", str(BIG), False),
        ("<", float(BIG), True),
    ],
)
def test_integers_beyond_32_bits_compare_as_they_are(
    client: TestClient, factory: Factory, system: Headers, op: str, val: Any, matches: bool
) -> None:
    unit = factory.product("123456789012345")
    flt = {"name": "product_type_id", "op": op, "val": val}
    assert imeis(client, system, flt) == ([unit.product_imei] if matches else [])


def test_in_lists_with_integers_beyond_32_bits(
    client: TestClient, factory: Factory, system: Headers
) -> None:
    unit = factory.product("123456789012345")
    other = factory.product("123456789012346")
    mine = unit.product_type_id
    flt = {"name": "product_type_id", "op": "in", "val": [mine, BIG, -BIG]}
    assert imeis(client, system, flt) == [unit.product_imei]
    flt = {"name": "product_type_id", "op": "not_in", "val": [mine, BIG]}
    assert imeis(client, system, flt) == [other.product_imei]
    flt = {"name": "product_type_id", "op": "in", "val": [BIG]}
    assert imeis(client, system, flt) == []


def test_beyond_64_bits_is_still_a_400(client: TestClient, system: Headers) -> None:
    q = '{"filters": [{"name": "product_type_id", "op": "==", "val": "99999999999999999999"}]}'
    r = client.get("/v1/products", headers=system, params={"q": q})
    assert (r.status_code, r.json()["message"]) == (
        400,
        "Invalid value \"99999999999999999999\" for 'product_type_id': integer out of range",
    )


@pytest.mark.parametrize("key", [str(BIG), str(2**31), str(2**63 - 1)])
def test_ids_beyond_32_bits_are_not_found(
    client: TestClient, factory: Factory, system: Headers, key: str
) -> None:
    factory.entity("one")
    expected = {"status": "error", "message": f"No entities with entity_id {key}"}
    for method, body in (("GET", None), ("PUT", {"name": "x"}), ("DELETE", None)):
        r = client.request(method, f"/v1/entities/{key}", headers=system, json=body)
        assert (r.status_code, r.json()) == (404, expected), method
    r = client.get(f"/v1/entities/{2**31 - 1}", headers=system)
    assert r.status_code == 404
    r = client.post(
        f"/v1/parts/{key}/parameters",
        headers=system,
        json={"parameter_type_id": 1, "value": "1"},
    )
    assert r.status_code == 404, r.text


def test_a_nul_in_the_username_is_a_failed_login(client: TestClient, factory: Factory) -> None:
    user = factory.user("OVERVIEW", username="nul@example.com")
    for username in ("nul@example.com\x00", "\x00", "nul\x00@example.com"):
        for send in ({"data": {"username": username, "password": PASSWORD}},
                     {"json": {"username": username, "password": PASSWORD}}):  # fmt: skip
            r = client.post("/v1/auth/login", **send)  # type: ignore[arg-type]
            assert (r.status_code, r.json()) == (
                401,
                {"status": "error", "message": "Invalid username or password"},
            )
    ok = client.post("/v1/auth/login", data={"username": user.username, "password": PASSWORD})
    assert ok.status_code == 200


@pytest.mark.parametrize("op", ["like", "ilike"])
def test_a_backslash_in_a_pattern_is_an_ordinary_character(
    client: TestClient, factory: Factory, system: Headers, op: str
) -> None:
    slash = factory.product("100000000000001", serial_number="AB\\CD")
    plain = factory.product("100000000000002", serial_number="ABCD")
    double = factory.product("100000000000003", serial_number="AB\\\\CD")
    percent = factory.product("100000000000004", serial_number="AB%CD")

    def match(pattern: str) -> list[str]:
        return imeis(client, system, {"name": "serial_number", "op": op, "val": pattern})

    assert match("AB\\CD") == [slash.product_imei]
    assert match("AB\\\\CD") == [double.product_imei]
    assert match("AB\\%") == sorted([slash.product_imei, double.product_imei])
    assert match("%\\") == []
    assert match("AB\\_D") == [slash.product_imei]  # a literal backslash, then a wildcard
    assert match("AB_CD") == sorted([slash.product_imei, percent.product_imei])
    assert match("ABCD") == [plain.product_imei]
    if op == "ilike":
        assert match("ab\\cd") == [slash.product_imei]
