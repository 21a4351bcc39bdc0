"""The generic resource layer: create, read, update, delete, meta data and bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.auth.models import User
from solarfleet.fleet.models import Entity, Product
from tests.factories import PASSWORD, Factory

META = ("created_at", "created_by", "modified_at", "modified_by")


def count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def username_of(client: TestClient, headers: dict[str, str]) -> str:
    """The username behind ``headers`` (read back from the users table)."""
    token = headers["Authorization"].split("=", 1)[1]
    from solarfleet.auth.models import Token
    from solarfleet.auth.tokens import hash_token

    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        return session.scalar(
            select(User.username).join(Token).where(Token.token_hash == hash_token(token))
        )


@pytest.fixture
def factory_headers(factory: Factory) -> dict[str, str]:
    return factory.headers("FACTORY")


def product_body(product_type_id: int, **extra: Any) -> dict[str, Any]:
    return {"product_imei": "111010101010101", "product_type_id": product_type_id, **extra}


def test_create_product_sets_meta_data_and_ignores_client_values(
    client: TestClient, factory: Factory, factory_headers: dict[str, str]
) -> None:
    ptype = factory.product_type()
    body = product_body(
        ptype.product_type_id,
        serial_number="SN-1",
        created_by="mallory",
        created_at="2000-01-01T00:00:00",
        modified_by="mallory",
    )
    r = client.post("/v1/products", json=body, headers=factory_headers)
    assert r.status_code == 201, r.text
    row = r.json()
    assert row["created_by"] == username_of(client, factory_headers)
    assert row["created_at"] > "2020"
    assert row["modified_at"] is None and row["modified_by"] is None
    assert len(row["device_key"]) == 24
    assert set(row) == {
        "product_imei", "product_type_id", "serial_number", "imsi", "iccid", "device_key",
        "current_enable_flag", "desired_enable_flag", "gps_lat", "gps_lon", *META,
    }  # fmt: skip


def test_device_key_is_shown_to_factory_and_above_only(
    client: TestClient, factory: Factory
) -> None:
    unit = factory.product("123456789012345")
    for level, shown in [
        ("OVERVIEW", False),
        ("ADMIN", False),
        ("FACTORY", True),
        ("SYSTEM", True),
    ]:
        headers = factory.headers(level)
        one = client.get(f"/v1/products/{unit.product_imei}", headers=headers).json()
        page = client.get("/v1/products", headers=headers).json()["objects"][0]
        assert ("device_key" in one) is shown
        assert ("device_key" in page) is shown
        if shown:
            assert one["device_key"] == unit.device_key


def test_device_key_cannot_be_searched(client: TestClient, factory: Factory, system: dict) -> None:
    unit = factory.product()
    q = json.dumps(
        {"filters": [{"name": "device_key", "op": "like", "val": unit.device_key[0] + "%"}]}
    )
    r = client.get("/v1/products", params={"q": q}, headers=system)
    assert r.status_code == 400
    assert r.json() == {"status": "error", "message": "Unknown field 'device_key' on products"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"product_imei": "12ab"}, "Invalid value for 'product_imei'"),
        ({"product_imei": "1234567890123456"}, "Invalid value for 'product_imei'"),
        ({"product_imei": ""}, "Invalid value for 'product_imei'"),
        ({"product_imei": 123}, "Invalid value for 'product_imei'"),
        ({"colour": "red"}, "Unknown field 'colour'"),
        ({"product_type_id": "abc"}, "Invalid value for 'product_type_id'"),
        ({"product_type_id": 2**40}, "Invalid value for 'product_type_id'"),
        ({"serial_number": "x" * 65}, "Invalid value for 'serial_number'"),
        ({"serial_number": "a\x00b"}, "Invalid value for 'serial_number'"),
        ({"gps_lat": 91}, "Invalid value for 'gps_lat'"),
        ({"current_enable_flag": "maybe"}, "Invalid value for 'current_enable_flag'"),
        ({"device_key": "short"}, "Invalid value for 'device_key'"),
    ],
)
def test_bad_product_bodies_are_400_naming_the_field_and_write_nothing(
    client: TestClient,
    factory: Factory,
    factory_headers: dict[str, str],
    sessions: sessionmaker[Session],
    body: dict[str, Any],
    message: str,
) -> None:
    ptype = factory.product_type()
    full = {**product_body(ptype.product_type_id), **body}
    r = client.post("/v1/products", json=full, headers=factory_headers)
    assert r.status_code == 400, r.text
    assert r.json()["status"] == "error"
    assert r.json()["message"].startswith(message), r.json()
    assert count(sessions, Product) == 0


def test_missing_required_field(client: TestClient, factory_headers: dict[str, str]) -> None:
    r = client.post("/v1/products", json={"product_imei": "1"}, headers=factory_headers)
    assert r.status_code == 400
    assert r.json() == {"status": "error", "message": "Missing field 'product_type_id'"}


@pytest.mark.parametrize("path", ["/v1/products", "/v1/entities"])
def test_missing_body_says_so(client: TestClient, system: dict[str, str], path: str) -> None:
    r = client.post(path, headers=system)
    assert r.status_code == 400
    assert r.json() == {
        "status": "error",
        "message": "Missing JSON body: send a JSON object (Content-Type: application/json)",
    }


@pytest.mark.parametrize(
    "raw", [b"{", b"not json", b'{"product_imei": "1",}', b"[1, 2]", b'"text"', b""]
)
def test_malformed_json_is_400(
    client: TestClient, factory_headers: dict[str, str], raw: bytes
) -> None:
    headers = {**factory_headers, "Content-Type": "application/json"}
    r = client.post("/v1/products", content=raw, headers=headers)
    assert r.status_code == 400
    assert r.json()["status"] == "error"


def test_unknown_foreign_key_is_400_naming_it(
    client: TestClient, factory_headers: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    r = client.post("/v1/products", json=product_body(999), headers=factory_headers)
    assert r.status_code == 400
    assert r.json() == {
        "status": "error",
        "message": "Invalid product_type_id: no product_types row with product_type_id 999",
    }
    assert count(sessions, Product) == 0


def test_unique_violations_are_409(
    client: TestClient, factory: Factory, factory_headers: dict[str, str]
) -> None:
    ptype = factory.product_type()
    factory.product("111010101010101", product_type=ptype, serial_number="DUP")
    r = client.post(
        "/v1/products", json=product_body(ptype.product_type_id), headers=factory_headers
    )
    assert r.status_code == 409
    assert r.json() == {
        "status": "error",
        "message": "A products row with product_imei '111010101010101' already exists",
    }
    body = {**product_body(ptype.product_type_id), "product_imei": "2", "serial_number": "DUP"}
    r = client.post("/v1/products", json=body, headers=factory_headers)
    assert r.status_code == 409
    assert "serial_number 'DUP'" in r.json()["message"]


def test_update_is_partial_and_sets_modified(
    client: TestClient, factory: Factory, system: dict[str, str]
) -> None:
    unit = factory.product(serial_number="OLD", gps_lat=1.5)
    r = client.put(
        f"/v1/products/{unit.product_imei}",
        json={"serial_number": "NEW", "created_by": "mallory", "product_imei": "999"},
        headers=system,
    )
    assert r.status_code == 200, r.text
    row = r.json()
    assert row["serial_number"] == "NEW"
    assert row["gps_lat"] == 1.5
    assert row["product_imei"] == unit.product_imei
    assert row["created_by"] is None  # as the factory wrote it: the client's value is ignored
    assert row["modified_by"] == username_of(client, system)
    assert row["modified_at"] is not None


def test_update_refuses_null_for_required_fields(
    client: TestClient, factory: Factory, system: dict[str, str]
) -> None:
    unit = factory.product()
    r = client.put(
        f"/v1/products/{unit.product_imei}", json={"product_type_id": None}, headers=system
    )
    assert r.status_code == 400
    assert r.json() == {"status": "error", "message": "'product_type_id' cannot be null"}


def test_delete_answers_204_with_empty_body(
    client: TestClient, factory: Factory, system: dict[str, str]
) -> None:
    entity = factory.entity("Doomed")
    r = client.delete(f"/v1/entities/{entity.entity_id}", headers=system)
    assert r.status_code == 204
    assert r.content == b""
    assert client.get(f"/v1/entities/{entity.entity_id}", headers=system).status_code == 404


def test_delete_of_a_referenced_row_is_409(
    client: TestClient, factory: Factory, system: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    entity = factory.entity("Busy")
    factory.product(entity=entity)
    r = client.delete(f"/v1/entities/{entity.entity_id}", headers=system)
    assert r.status_code == 409
    assert r.json() == {
        "status": "error",
        "message": f"entities {entity.entity_id} is still referenced by other rows",
    }
    assert count(sessions, Entity) == 1


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/v1/entities/12345", 404, "No entities with entity_id 12345"),
        ("/v1/entities/abc", 400, "Invalid entity_id 'abc': expected an integer"),
        (
            "/v1/entities/99999999999999999999999",
            400,
            "Invalid entity_id '99999999999999999999999': out of range",
        ),
        ("/v1/products/12ab", 400, "Invalid IMEI '12ab': expected 1 to 15 digits"),
        (
            "/v1/products/1234567890123456",
            400,
            "Invalid IMEI '1234567890123456': expected 1 to 15 digits",
        ),
        ("/v1/products/111", 404, "No products with product_imei 111"),
        ("/v1/nothing_here", 404, "No such endpoint: /v1/nothing_here"),
    ],
)  # fmt: skip
def test_unknown_and_invalid_ids(
    client: TestClient, system: dict[str, str], path: str, status: int, message: str
) -> None:
    r = client.get(path, headers=system)
    assert r.status_code == status
    assert r.json() == {"status": "error", "message": message}


def test_migration_history_has_the_seed_shape_and_is_read_only(
    client: TestClient, factory: Factory, system: dict[str, str]
) -> None:
    from datetime import datetime

    from solarfleet.migration.models import ProductMigrationHistory

    unit = factory.product("000000000000000")
    row = factory._add(  # written by the migration in production; directly here
        ProductMigrationHistory(
            product_imei=unit.product_imei,
            latest_migration_timestamp=datetime(2000, 1, 1),
            last_migrated_at=datetime(2000, 1, 1, 0, 0, 0, 5),
            created_by="test.user@bboxx.co.uk",
        )
    )
    r = client.get(
        f"/v1/product_migration_history/{row.product_migration_history_id}", headers=system
    )
    assert r.status_code == 200
    body = r.json()
    assert body == {
        "product_migration_history_id": row.product_migration_history_id,
        "product_imei": "000000000000000",
        "latest_migration_timestamp": "2000-01-01T00:00:00.000000",
        "last_migrated_at": "2000-01-01T00:00:00.000005",
        "created_at": body["created_at"],
        "created_by": "test.user@bboxx.co.uk",
        "modified_at": None,
        "modified_by": None,
    }
    for method in ("POST", "PUT", "DELETE"):
        path = "/v1/product_migration_history" + ("" if method == "POST" else "/1")
        r = client.request(method, path, headers=system, json={})
        assert r.status_code == 405
        assert r.json() == {
            "status": "error",
            "message": f"{method} requests are not allowed at this endpoint",
        }


def test_users_password_is_write_only_and_hashed(
    client: TestClient, system: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    body = {
        "username": "ops@example.com",
        "password": "a long secret",
        "permissions": "ADMIN",
        "user_product_visibility": "GLOBAL",
    }
    r = client.post("/v1/users", json=body, headers=system)
    assert r.status_code == 201, r.text
    assert "password" not in r.json() and "password_hash" not in r.json()
    listed = client.get("/v1/users", headers=system).json()["objects"]
    assert all("password_hash" not in u and "password" not in u for u in listed)
    with sessions() as session:
        stored = session.scalar(select(User.password_hash).where(User.username == body["username"]))
    assert stored is not None and stored.startswith("$argon2") and "a long secret" not in stored
    login = client.post(
        "/v1/auth/login", json={"username": body["username"], "password": body["password"]}
    )
    assert login.status_code == 200
    q = '{"filters":[{"name":"password_hash","op":"is_not_null"}]}'
    assert client.get("/v1/users", params={"q": q}, headers=system).status_code == 400


def test_entity_user_needs_an_entity(client: TestClient, system: dict[str, str]) -> None:
    body = {
        "username": "e@example.com",
        "password": PASSWORD,
        "permissions": "ADMIN",
        "user_product_visibility": "ENTITY",
    }
    r = client.post("/v1/users", json=body, headers=system)
    assert r.status_code == 400
    assert r.json() == {
        "status": "error",
        "message": "entity_id is required when user_product_visibility is ENTITY",
    }


def test_product_type_parameter_types_must_exist(
    client: TestClient, factory: Factory, system: dict[str, str]
) -> None:
    ptype = factory.parameter_type()
    ok = client.post(
        "/v1/product_types",
        json={"name": "T1", "parameter_types": [ptype.parameter_type_id]},
        headers=system,
    )
    assert ok.status_code == 201
    assert ok.json()["parameter_types"] == [ptype.parameter_type_id]
    bad = client.post(
        "/v1/product_types", json={"name": "T2", "parameter_types": [4242]}, headers=system
    )
    assert bad.status_code == 400
    assert bad.json() == {
        "status": "error",
        "message": "Invalid parameter_types: no parameter_type_id 4242",
    }


@pytest.mark.parametrize("resource", ["product_types", "part_types"])
@pytest.mark.parametrize("bad_id", [2**63, -(2**63) - 1, 2**31, 0, -1])
def test_parameter_types_ids_out_of_range_are_400(
    client: TestClient, system: dict[str, str], resource: str, bad_id: int
) -> None:
    """Found by the fuzzer: an id beyond 64 bits reached SQLite and was a 500."""
    body = {"name": "T", "parameter_types": [bad_id]}
    r = client.post(f"/v1/{resource}", json=body, headers=system)
    assert r.status_code == 400
    assert "parameter_types" in r.json()["message"]


def test_enumerated_fields_refuse_other_values(client: TestClient, system: dict[str, str]) -> None:
    r = client.post(
        "/v1/parameter_types", json={"name": "p", "data_type": "complex"}, headers=system
    )
    assert r.status_code == 400
    assert r.json()["message"].startswith("Invalid value for 'data_type'")


def test_entity_created_by_factory_user_is_linked_to_their_entity(
    client: TestClient, factory: Factory
) -> None:
    entity = factory.entity("Mine")
    ptype = factory.product_type()
    headers = factory.headers("FACTORY", "ENTITY", entity)
    r = client.post("/v1/products", json=product_body(ptype.product_type_id), headers=headers)
    assert r.status_code == 201
    # still visible to its maker, through the entity link made with it
    assert client.get("/v1/products/111010101010101", headers=headers).status_code == 200


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        ({"wh": 2**64}, "64 bits"),
        ({"wh": [-(2**63) - 1]}, "64 bits"),
        ({"deep": _nested(300)}, "nested deeper"),
        ({"\udada": 1}, "lone surrogates"),
        ({"a": "x\x00y"}, "NUL"),
        ({"a": float("nan")}, "finite"),
    ],
)
def test_json_fields_refuse_what_cannot_be_stored_and_sent_back(
    client: TestClient, factory: Factory, system: dict[str, str], properties: Any, reason: str
) -> None:
    """Found by the fuzzer: a 2**64 in parts.properties was stored, then every answer holding the
    part was a 500 (the JSON encoder refuses integers beyond 64 bits)."""
    part_type = factory.part_type()
    body = {"serial_number": "P1", "part_type_id": part_type.part_type_id}
    raw = json.dumps({**body, "properties": properties})  # NaN too, as Python's json reads it
    headers = {**system, "Content-Type": "application/json"}
    r = client.post("/v1/parts", content=raw, headers=headers)
    assert r.status_code == 400
    assert "properties" in r.json()["message"] and reason in r.json()["message"]
    ok = {"wh": 2**63 - 1, "deep": _nested(63), "name": "é\u2603"}
    r = client.post("/v1/parts", json={**body, "properties": ok}, headers=system)
    assert r.status_code == 201
    assert r.json()["properties"] == ok
