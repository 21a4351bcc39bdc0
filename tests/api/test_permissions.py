"""Permissions (SPEC §2, §4): a matrix generated from the registry, tokens and logging in.

For every resource of ``REGISTRY`` and every operation (GET list, GET one, POST, PUT, DELETE):

* a method the resource does not offer answers 405 with the exact message, whoever asks;
* no token, a malformed header, an unknown or an expired token answer 401;
* a level below the one in ``spec.methods`` answers 403;
* a level at or above it succeeds (each write is sent with a valid body).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine

from solarfleet.api.spec import ResourceSpec
from solarfleet.auth.models import Token, User
from solarfleet.auth.permissions import LEVELS, RANK
from solarfleet.db import utcnow
from solarfleet.fleet.models import PartProductLinker
from solarfleet.migration.models import ProductMigrationHistory
from solarfleet.resources import REGISTRY
from solarfleet.settings import Settings
from tests.factories import PASSWORD, Factory

# operation -> (HTTP method, whether the URL names one row)
OPERATIONS: dict[str, tuple[str, bool]] = {
    "list": ("GET", False),
    "get": ("GET", True),
    "post": ("POST", False),
    "put": ("PUT", True),
    "delete": ("DELETE", True),
}
SUCCESS = {"list": 200, "get": 200, "post": 201, "put": 200, "delete": 204}


# -- one row of each resource, and valid bodies to write it ---------------------------------


@dataclass
class Seeded:
    key: Any  # primary key of an existing row
    create: dict[str, Any]  # a valid POST body
    change: dict[str, Any]  # a valid PUT body


def _seed_entities(f: Factory, n: int) -> Seeded:
    return Seeded(f.entity().entity_id, {"name": f"new entity {n}"}, {"name": f"renamed {n}"})


def _seed_product_types(f: Factory, n: int) -> Seeded:
    ptype = f.parameter_type()
    return Seeded(
        f.product_type().product_type_id,
        {
            "name": f"new type {n}",
            "parameter_types": [ptype.parameter_type_id],
            "credit_type": "time",
        },
        {"erp_code": "ERP-1"},
    )


def _seed_products(f: Factory, n: int) -> Seeded:
    unit = f.product()
    return Seeded(
        unit.product_imei,
        {
            "product_imei": f"35200000000000{n}",
            "product_type_id": unit.product_type_id,
            "serial_number": f"NEW{n}",
        },
        {"gps_lat": -1.28, "gps_lon": 36.8, "desired_enable_flag": True},
    )


def _seed_product_entity_linker(f: Factory, n: int) -> Seeded:
    link = f.link_entity(f.product(), f.entity())
    return Seeded(link.product_entity_linker_id, {}, {})


def _seed_part_types(f: Factory, n: int) -> Seeded:
    return Seeded(
        f.part_type().part_type_id,
        {"name": f"new part type {n}", "serial_number_category": "hidden"},
        {"description": "a battery"},
    )


def _seed_parts(f: Factory, n: int) -> Seeded:
    part = f.part()
    return Seeded(
        part.part_id,
        {
            "serial_number": f"NEWPART{n}",
            "part_type_id": part.part_type_id,
            "properties": {"ah": 7},
        },
        {"manufacturer": "ACME"},
    )


def _seed_part_product_linker(f: Factory, n: int) -> Seeded:
    part = f.part(on=f.product())
    with f.sessions() as session:
        key = session.scalar(
            select(PartProductLinker.part_product_linker_id).where(
                PartProductLinker.part_id == part.part_id
            )
        )
    return Seeded(key, {}, {})


def _seed_parameter_types(f: Factory, n: int) -> Seeded:
    return Seeded(
        f.parameter_type().parameter_type_id,
        {"name": f"new parameter {n}", "data_type": "float", "validation_rules": {"min": 0}},
        {"units": "V"},
    )


def _seed_product_parameters(f: Factory, n: int) -> Seeded:
    unit, ptype = f.product(), f.parameter_type()
    row = f.product_parameter(unit, ptype)
    return Seeded(
        row.product_parameter_id,
        {"product_imei": unit.product_imei, "parameter_type_id": ptype.parameter_type_id,
         "value": "2", "status": "removed"},
        {"value": "3"},
    )  # fmt: skip


def _seed_part_parameters(f: Factory, n: int) -> Seeded:
    part, ptype = f.part(), f.parameter_type()
    row = f.part_parameter(part, ptype)
    return Seeded(
        row.part_parameter_id,
        {"part_id": part.part_id, "parameter_type_id": ptype.parameter_type_id,
         "value": "2", "status": "removed"},
        {"value": "3"},
    )  # fmt: skip


def _seed_product_migration_history(f: Factory, n: int = 0) -> Seeded:
    unit = f.product()
    now = utcnow()
    row = f._add(
        ProductMigrationHistory(
            product_imei=unit.product_imei, latest_migration_timestamp=now, last_migrated_at=now
        )
    )
    return Seeded(row.product_migration_history_id, {}, {})


def _seed_users(f: Factory, n: int) -> Seeded:
    return Seeded(
        f.user("OVERVIEW").user_id,
        {
            "username": f"new.user.{n}@example.com",
            "password": "a long password",
            "permissions": "ADMIN",
        },
        {"display_name": "Renamed"},
    )


def _seed_parameter_rollouts(f: Factory, n: int) -> Seeded:
    from solarfleet.auth.principal import SYSTEM_PRINCIPAL
    from solarfleet.rollouts.service import create_rollout

    ptype = f.parameter_type()
    unit = f.product(product_type=f.product_type(parameter_types=[ptype.parameter_type_id]))
    body = {"q": {"filters": [{"name": "product_imei", "op": "==", "val": unit.product_imei}]},
            "parameter_type_id": ptype.parameter_type_id, "value": 1}  # fmt: skip
    with f.sessions() as session:
        rollout = create_rollout(
            session=session, registry=REGISTRY, principal=SYSTEM_PRINCIPAL, **body
        )
        session.commit()
    return Seeded(rollout.parameter_rollout_id, body, {})


SEEDERS: dict[str, Callable[[Factory, int], Seeded]] = {
    "entities": _seed_entities,
    "product_types": _seed_product_types,
    "products": _seed_products,
    "product_entity_linker": _seed_product_entity_linker,
    "part_types": _seed_part_types,
    "parts": _seed_parts,
    "part_product_linker": _seed_part_product_linker,
    "parameter_types": _seed_parameter_types,
    "product_parameters": _seed_product_parameters,
    "part_parameters": _seed_part_parameters,
    "product_migration_history": _seed_product_migration_history,
    "users": _seed_users,
    "parameter_rollouts": _seed_parameter_rollouts,
}


def test_every_resource_has_a_seeder() -> None:
    assert set(SEEDERS) == set(REGISTRY.by_name)


_READ = {"GET": "OVERVIEW"}
_SYSTEM = {"GET": "OVERVIEW", "POST": "SYSTEM", "PUT": "SYSTEM", "DELETE": "SYSTEM"}
_FACTORY = {"GET": "OVERVIEW", "POST": "FACTORY", "PUT": "ADMIN", "DELETE": "SYSTEM"}
SPEC_TABLE = {  # SPEC §4, written out: the matrix below is generated from the registry
    "entities": _SYSTEM,
    "product_types": _SYSTEM,
    "products": _FACTORY,
    "product_entity_linker": _READ,
    "part_types": _SYSTEM,
    "parts": _FACTORY,
    "part_product_linker": _READ,
    "parameter_types": _SYSTEM,
    "product_parameters": _SYSTEM,
    "part_parameters": _SYSTEM,
    "product_migration_history": _READ,
    "users": {"GET": "SYSTEM", "POST": "SYSTEM", "PUT": "SYSTEM", "DELETE": "SYSTEM"},
    "parameter_rollouts": {"GET": "OVERVIEW", "POST": "ADMIN"},  # + PUT …/pause etc.: ADMIN
}


def test_the_registry_says_what_the_spec_says() -> None:
    assert {s.name: dict(s.methods) for s in REGISTRY.specs} == SPEC_TABLE


def _request(
    client: TestClient, spec: ResourceSpec, op: str, seeded: Seeded, headers: dict[str, str]
) -> Any:
    method, one = OPERATIONS[op]
    url = f"/v1/{spec.name}" + (f"/{seeded.key}" if one else "")
    body = seeded.create if op == "post" else seeded.change if op == "put" else None
    return client.request(method, url, headers=headers, json=body)


def _expected(spec: ResourceSpec, op: str, level: str) -> int:
    method = OPERATIONS[op][0]
    if method not in spec.methods:
        return 405
    if RANK[level] < RANK[spec.methods[method]]:
        return 403
    return SUCCESS[op]


def _check_one(
    client: TestClient, factory: Factory, spec: ResourceSpec, op: str, level: str, n: int
) -> None:
    """One cell of the matrix: ``level`` doing ``op`` on ``spec``."""
    expected = _expected(spec, op, level)
    if expected in (403, 405):
        # refused before any row is looked at or any body is read: no data needed
        seeded = Seeded("111111111111111" if spec.natural_key else 1, {}, {})
    else:
        seeded = SEEDERS[spec.name](factory, n)
    r = _request(client, spec, op, seeded, factory.headers(level))
    assert r.status_code == expected, r.text
    if expected == 405:
        method = OPERATIONS[op][0]
        assert r.json() == {
            "status": "error",
            "message": f"{method} requests are not allowed at this endpoint",
        }
    elif expected == 403:
        body = r.json()
        assert body["status"] == "error"
        assert spec.methods[OPERATIONS[op][0]] in body["message"]
    elif op == "list":
        keys = [o[spec.primary_key.key] for o in r.json()["objects"]]
        assert seeded.key in keys
    elif op in ("get", "put"):
        assert r.json()[spec.primary_key.key] == seeded.key
    elif op == "post":
        assert spec.primary_key.key in r.json()
    else:
        assert r.content == b""
        gone = client.get(f"/v1/{spec.name}/{seeded.key}", headers=factory.headers())
        assert gone.status_code == 404


# One test per resource and operation, every level inside it (a test per cell would spend most
# of its time emptying the tables); every failing cell is reported, not just the first.
MATRIX = [
    pytest.param(spec, op, id=f"{spec.name}-{op}") for spec in REGISTRY.specs for op in OPERATIONS
]


@pytest.mark.parametrize(("spec", "op"), MATRIX)
def test_permission_matrix(
    client: TestClient, factory: Factory, spec: ResourceSpec, op: str
) -> None:
    failures = []
    for n, level in enumerate(LEVELS):
        try:
            _check_one(client, factory, spec, op, level, n)
        except AssertionError as exc:
            failures.append(f"{level}: {exc}")
    assert not failures, "\n".join(failures)


def test_migration_history_is_read_only_as_in_the_seed(
    client: TestClient, factory: Factory
) -> None:
    """Seed 000: product_migration_history answers POST/PUT/DELETE with 405, even to SYSTEM."""
    seeded = _seed_product_migration_history(factory)
    headers = factory.headers("SYSTEM")
    for method, url in (
        ("POST", "/v1/product_migration_history"),
        ("PUT", f"/v1/product_migration_history/{seeded.key}"),
        ("DELETE", f"/v1/product_migration_history/{seeded.key}"),
        ("PATCH", f"/v1/product_migration_history/{seeded.key}"),
    ):
        r = client.request(method, url, headers=headers, json={"product_imei": "1"})
        assert r.status_code == 405, (method, r.text)
        assert r.json() == {
            "status": "error",
            "message": f"{method} requests are not allowed at this endpoint",
        }
    assert client.get("/v1/product_migration_history", headers=headers).json()["num_results"] == 1


# -- authentication failures ------------------------------------------------------------------


def _bad_headers(factory: Factory) -> Iterator[tuple[str, dict[str, str]]]:
    yield "no header", {}
    yield "empty", {"Authorization": ""}
    yield "bearer", {"Authorization": "Bearer x"}
    yield "bearer 64", {"Authorization": "Bearer " + "a" * 64}
    yield "short token", {"Authorization": "Token abc"}
    yield "no token=", {"Authorization": "Token " + "a" * 64}
    yield "garbage", {"Authorization": "$%&/()=?"}
    yield "latin-1 garbage", {"Authorization": b"Token token=\xa7\xe9"}
    yield "token= short", {"Authorization": "Token token=abc"}
    yield "token= 65", {"Authorization": "Token token=" + "a" * 65}
    yield "unknown token", {"Authorization": "Token token=" + "a" * 64}
    # a real token with one character changed
    real = factory.headers("SYSTEM")["Authorization"]
    flipped = real[:-1] + ("b" if real[-1] != "b" else "c")
    yield "altered token", {"Authorization": flipped}
    # a SYSTEM user's token that expired
    user = factory.user("SYSTEM")
    token = factory.token(user)
    with factory.sessions() as session:
        session.execute(
            update(Token)
            .where(Token.token_hash == hashlib.sha256(token.encode()).hexdigest())
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()
    yield "expired token", {"Authorization": f"Token token={token}"}


@pytest.mark.parametrize("spec", [pytest.param(s, id=s.name) for s in REGISTRY.specs])
def test_bad_credentials_are_401(client: TestClient, factory: Factory, spec: ResourceSpec) -> None:
    seeded = SEEDERS[spec.name](factory, 0)
    bad = list(_bad_headers(factory))
    for op, (method, _one) in OPERATIONS.items():
        for label, headers in bad:
            r = _request(client, spec, op, seeded, headers)
            if method not in spec.methods:
                # routing refuses the method before anyone is asked who they are
                assert r.status_code == 405, (op, label, r.text)
                continue
            assert r.status_code == 401, (op, label, r.text)
            body = r.json()
            assert set(body) == {"status", "message"}, (op, label)
            assert body["status"] == "error" and body["message"], (op, label)
    # nothing was changed by any refused request
    r = client.get(f"/v1/{spec.name}/{seeded.key}", headers=factory.headers("SYSTEM"))
    assert r.status_code == 200
    if spec.name != "users":
        listed = client.get(f"/v1/{spec.name}", headers=factory.headers("SYSTEM")).json()
        assert listed["num_results"] == 1


def test_expiry_is_checked_to_the_second(client: TestClient, factory: Factory) -> None:
    user = factory.user("OVERVIEW")
    token = factory.token(user)
    headers = {"Authorization": f"Token token={token}"}
    assert client.get("/v1/entities", headers=headers).status_code == 200
    with factory.sessions() as session:
        session.execute(
            update(Token).where(Token.user_id == user.user_id).values(expires_at=utcnow())
        )
        session.commit()
    r = client.get("/v1/entities", headers=headers)
    assert r.status_code == 401
    assert "expired" in r.json()["message"].lower()


def test_token_header_variants(client: TestClient, factory: Factory) -> None:
    """``Token token=<t>`` as the original documents it, and the Rails form with quotes."""
    token = factory.headers("OVERVIEW")["Authorization"].removeprefix("Token token=")
    for header in (f"Token token={token}", f'Token token="{token}"', f"Token  token={token} "):
        assert client.get("/v1/entities", headers={"Authorization": header}).status_code == 200


# -- entity and part actions --------------------------------------------------------------------


@dataclass
class ActionCase:
    name: str
    method: str
    level: str
    success: int


ACTIONS = [
    ActionCase("assign_entity", "PUT", "ADMIN", 200),
    ActionCase("change_entity", "PUT", "ADMIN", 200),
    ActionCase("remove_entity", "PUT", "ADMIN", 200),
    ActionCase("attach_part", "POST", "TECHNICAL", 201),
    ActionCase("detach_part", "DELETE", "TECHNICAL", 200),
    ActionCase("list_parts", "GET", "OVERVIEW", 200),
]


def _action_request(
    client: TestClient, factory: Factory, case: ActionCase, headers: dict[str, str]
) -> Any:
    """Sets up what ``case`` needs to succeed, then sends it."""
    entity = factory.entity()
    if case.name == "remove_entity":
        unit = factory.product(entity=entity)
    else:
        unit = factory.product(entity=factory.entity() if case.name == "change_entity" else None)
    base = f"/v1/products/{unit.product_imei}"
    if case.name.endswith("_entity"):
        return client.put(
            f"{base}/{case.name}", headers=headers, json={"entity_id": entity.entity_id}
        )
    if case.name == "attach_part":
        return client.post(
            f"{base}/parts", headers=headers, json={"part_id": factory.part().part_id}
        )
    if case.name == "detach_part":
        return client.delete(f"{base}/parts/{factory.part(on=unit).part_id}", headers=headers)
    factory.part(on=unit)
    return client.get(f"{base}/parts", headers=headers)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in ACTIONS])
def test_action_permissions(client: TestClient, factory: Factory, case: ActionCase) -> None:
    failures = []
    for level in LEVELS:
        r = _action_request(client, factory, case, factory.headers(level))
        if RANK[level] < RANK[case.level]:
            ok = r.status_code == 403 and case.level in r.json()["message"]
        else:
            ok = r.status_code == case.success and r.json()["status"] == "success"
        if not ok:
            failures.append(f"{level}: {r.status_code} {r.text}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in ACTIONS])
def test_action_bad_credentials_are_401(
    client: TestClient, factory: Factory, case: ActionCase
) -> None:
    for label, headers in _bad_headers(factory):
        r = _action_request(client, factory, case, headers)
        assert r.status_code == 401, (label, r.text)
        assert r.json()["status"] == "error"


def test_action_methods_not_offered_are_405(client: TestClient, factory: Factory) -> None:
    unit = factory.product()
    headers = factory.headers("SYSTEM")
    base = f"/v1/products/{unit.product_imei}"
    for method, url in (
        ("GET", f"{base}/assign_entity"),
        ("POST", f"{base}/change_entity"),
        ("DELETE", f"{base}/remove_entity"),
        ("PUT", f"{base}/parts"),
        ("DELETE", f"{base}/parts"),
        ("PUT", f"{base}/parts/1"),
    ):
        r = client.request(method, url, headers=headers, json={"entity_id": 1})
        assert r.status_code == 405, (method, url, r.text)
        assert r.json() == {
            "status": "error",
            "message": f"{method} requests are not allowed at this endpoint",
        }


# -- tokens: sliding expiry without a write per request -------------------------------------


@pytest.fixture
def token_updates(engine: Engine) -> Iterator[list[str]]:
    """Every UPDATE statement on the tokens table sent while the test runs."""
    seen: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        text = " ".join(statement.split()).lower()
        if text.startswith("update tokens"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    yield seen
    event.remove(engine, "before_cursor_execute", listener)


def _login(
    client: TestClient, username: str, password: str = PASSWORD, *, form: bool = False
) -> Any:
    credentials = {"username": username, "password": password}
    if form:
        return client.post("/v1/auth/login", data=credentials)
    return client.post("/v1/auth/login", json=credentials)


def _stored_expiry(factory: Factory, token: str) -> datetime:
    with factory.sessions() as session:
        expiry = session.scalar(
            select(Token.expires_at).where(
                Token.token_hash == hashlib.sha256(token.encode()).hexdigest()
            )
        )
    assert expiry is not None
    return expiry


def test_requests_right_after_login_do_not_write_the_token(
    client: TestClient, factory: Factory, settings: Settings, token_updates: list[str]
) -> None:
    user = factory.user("OVERVIEW")
    token = _login(client, user.username).json()["message"]["login_successful"]["API_token"]
    headers = {"Authorization": f"Token token={token}"}
    before = _stored_expiry(factory, token)
    token_updates.clear()
    assert client.get("/v1/entities", headers=headers).status_code == 200
    assert client.get("/v1/products", headers=headers).status_code == 200
    assert token_updates == []
    assert _stored_expiry(factory, token) == before


def test_an_aging_token_is_extended_once(
    client: TestClient, factory: Factory, settings: Settings, token_updates: list[str]
) -> None:
    user = factory.user("OVERVIEW")
    token = _login(client, user.username).json()["message"]["login_successful"]["API_token"]
    headers = {"Authorization": f"Token token={token}"}
    lifetime = timedelta(seconds=settings.token_lifetime_seconds)
    refresh = timedelta(seconds=settings.token_refresh_interval_seconds)
    assert lifetime == timedelta(hours=3)
    aged = utcnow() + lifetime - refresh - timedelta(seconds=5)
    with factory.sessions() as session:
        session.execute(update(Token).where(Token.user_id == user.user_id).values(expires_at=aged))
        session.commit()
    token_updates.clear()
    assert client.get("/v1/entities", headers=headers).status_code == 200
    assert len(token_updates) == 1
    expiry = _stored_expiry(factory, token)
    assert abs(expiry - (utcnow() + timedelta(hours=3))) < timedelta(seconds=30)
    # the next requests find a fresh expiry and write nothing
    assert client.get("/v1/entities", headers=headers).status_code == 200
    assert client.get("/v1/entities", headers=headers).status_code == 200
    assert len(token_updates) == 1


def test_a_token_near_expiry_still_works_and_is_extended(
    client: TestClient, factory: Factory, token_updates: list[str]
) -> None:
    user = factory.user("OVERVIEW")
    token = factory.token(user)
    with factory.sessions() as session:
        session.execute(
            update(Token)
            .where(Token.user_id == user.user_id)
            .values(expires_at=utcnow() + timedelta(seconds=20))
        )
        session.commit()
    r = client.get("/v1/entities", headers={"Authorization": f"Token token={token}"})
    assert r.status_code == 200
    assert _stored_expiry(factory, token) > utcnow() + timedelta(hours=2, minutes=59)


# -- login, logout, validate_user ---------------------------------------------------------------


@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
def test_login_answers_the_original_shape(client: TestClient, factory: Factory, form: bool) -> None:
    entity = factory.entity("Acme Solar")
    user = factory.user(
        "TECHNICAL", "ENTITY", entity, display_name="Jo", name="Jo Doe", hub_id=4, shop_id=9
    )
    r = _login(client, user.username, form=form)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"status", "message"}
    assert body["status"] == "success"
    assert set(body["message"]) == {"login_successful"}
    info = body["message"]["login_successful"]
    assert set(info) == {
        "username", "entity_id", "display_name", "name", "user_product_visibility", "hub_id",
        "shop_id", "API_token", "token_expiry", "permissions",
    }  # fmt: skip
    assert info["username"] == user.username
    assert info["entity_id"] == entity.entity_id
    assert info["display_name"] == "Jo"
    assert info["name"] == "Jo Doe"
    assert info["user_product_visibility"] == "ENTITY"
    assert info["hub_id"] == 4
    assert info["shop_id"] == 9
    assert info["permissions"] == "TECHNICAL"
    token = info["API_token"]
    assert isinstance(token, str) and len(token) == 64 and token.isalnum()
    expiry = datetime.strptime(info["token_expiry"], "%Y-%m-%dT%H:%M:%S.%f")
    assert abs(expiry - (utcnow() + timedelta(hours=3))) < timedelta(seconds=30)
    # the token works
    headers = {"Authorization": f"Token token={token}"}
    assert client.get("/v1/entities", headers=headers).status_code == 200


def test_tokens_are_stored_only_as_a_sha256_hash(client: TestClient, factory: Factory) -> None:
    user = factory.user("OVERVIEW")
    token = _login(client, user.username).json()["message"]["login_successful"]["API_token"]
    with factory.sessions() as session:
        rows = session.execute(select(Token.__table__)).all()
    assert len(rows) == 1
    row = rows[0]._mapping
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in str(value) for value in row.values())


def test_each_login_gets_its_own_token(client: TestClient, factory: Factory) -> None:
    user = factory.user("OVERVIEW")
    first = _login(client, user.username).json()["message"]["login_successful"]["API_token"]
    second = _login(client, user.username).json()["message"]["login_successful"]["API_token"]
    assert first != second
    for token in (first, second):
        r = client.get("/v1/entities", headers={"Authorization": f"Token token={token}"})
        assert r.status_code == 200


@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
def test_wrong_password_and_unknown_user_look_the_same(
    client: TestClient, factory: Factory, form: bool
) -> None:
    user = factory.user("OVERVIEW")
    wrong = _login(client, user.username, "not the password", form=form)
    unknown = _login(client, "nobody@example.com", PASSWORD, form=form)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["status"] == "error"
    with factory.sessions() as session:
        assert session.scalars(select(Token)).all() == []


def test_login_needs_both_fields(client: TestClient, factory: Factory) -> None:
    user = factory.user("OVERVIEW")
    for body in ({"username": user.username}, {"password": PASSWORD}, {}, []):
        r = client.post("/v1/auth/login", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["status"] == "error"
    r = client.post(
        "/v1/auth/login", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400


def test_a_deactivated_user_is_refused_at_the_next_request(
    client: TestClient, factory: Factory
) -> None:
    user = factory.user("SYSTEM")
    token = _login(client, user.username).json()["message"]["login_successful"]["API_token"]
    headers = {"Authorization": f"Token token={token}"}
    assert client.get("/v1/entities", headers=headers).status_code == 200
    with factory.sessions() as session:
        session.execute(update(User).where(User.user_id == user.user_id).values(is_active=False))
        session.commit()
    r = client.get("/v1/entities", headers=headers)
    assert r.status_code == 401
    assert r.json()["status"] == "error"
    # and cannot log in again, with the same answer as a wrong password
    refused = _login(client, user.username)
    assert refused.status_code == 401
    assert refused.json() == _login(client, user.username, "wrong password").json()


def test_validate_user(client: TestClient, factory: Factory) -> None:
    user = factory.user("OVERVIEW")
    r = client.get("/v1/auth/validate_user", params={"username": user.username})
    assert r.status_code == 200
    assert r.json()["status"] == "success"
    assert r.json()["message"] == "True"
    r = client.get("/v1/auth/validate_user", params={"username": "nobody@example.com"})
    assert r.status_code == 200
    assert r.json()["message"] == "False"
    # a pattern is not a wildcard
    r = client.get("/v1/auth/validate_user", params={"username": "%"})
    assert r.json()["message"] == "False"


def test_logout_revokes_the_token(client: TestClient, factory: Factory) -> None:
    user = factory.user("OVERVIEW")
    first = _login(client, user.username).json()["message"]["login_successful"]["API_token"]
    second = _login(client, user.username).json()["message"]["login_successful"]["API_token"]
    headers = {"Authorization": f"Token token={first}"}
    r = client.post("/v1/auth/logout", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "success"
    assert client.get("/v1/entities", headers=headers).status_code == 401
    assert client.post("/v1/auth/logout", headers=headers).status_code == 401
    # the user's other sessions are untouched
    other = {"Authorization": f"Token token={second}"}
    assert client.get("/v1/entities", headers=other).status_code == 200
    with factory.sessions() as session:
        hashes = session.scalars(select(Token.token_hash)).all()
    assert hashes == [hashlib.sha256(second.encode()).hexdigest()]


def test_logout_without_a_token_is_401(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Token token=" + "z" * 64}, {"Authorization": "garbage"}):
        r = client.post("/v1/auth/logout", headers=headers)
        assert r.status_code == 401, (headers, r.text)


# -- method/URL combinations, hidden and level-restricted fields ------------------------------


@pytest.mark.parametrize("spec", [pytest.param(s, id=s.name) for s in REGISTRY.specs])
def test_methods_at_the_wrong_url_are_405(
    client: TestClient, factory: Factory, spec: ResourceSpec
) -> None:
    """PUT/DELETE on the collection and POST on one row are never routes."""
    headers = factory.headers("SYSTEM")
    key = "111111111111111" if spec.natural_key else "1"
    for method, url in (
        ("PUT", f"/v1/{spec.name}"),
        ("DELETE", f"/v1/{spec.name}"),
        ("POST", f"/v1/{spec.name}/{key}"),
        ("PATCH", f"/v1/{spec.name}/{key}"),
    ):
        r = client.request(method, url, headers=headers, json={})
        assert r.status_code == 405, (method, url, r.text)
        assert r.json() == {
            "status": "error",
            "message": f"{method} requests are not allowed at this endpoint",
        }


def test_device_key_is_shown_written_and_searched_by_factory_only(
    client: TestClient, factory: Factory
) -> None:
    unit = factory.product()
    url = f"/v1/products/{unit.product_imei}"
    for level in LEVELS:
        headers = factory.headers(level)
        shown = "device_key" in client.get(url, headers=headers).json()
        assert shown is (RANK[level] >= RANK["FACTORY"]), level
        listed = client.get("/v1/products", headers=headers).json()["objects"][0]
        assert ("device_key" in listed) is shown, level
    # not a search oracle: no level may filter or order on it, directly or through a relation
    headers = factory.headers("SYSTEM")
    for q in (
        {"filters": [{"name": "device_key", "op": "like", "val": "a%"}]},
        {"order_by": [{"field": "device_key"}]},
    ):
        assert (
            client.get("/v1/products", headers=headers, params={"q": _dumps(q)}).status_code == 400
        )
    q = {"filters": [{"name": "products__device_key", "op": "like", "val": "a%"}]}
    assert (
        client.get("/v1/product_types", headers=headers, params={"q": _dumps(q)}).status_code == 400
    )
    # who may not see it may not set it either
    new_key = "k" * 24
    admin = factory.headers("ADMIN")
    r = client.put(url, headers=admin, json={"device_key": new_key})
    assert r.status_code == 403, r.text
    assert "device_key" in r.json()["message"]
    r = client.put(url, headers=admin, json={"gps_lat": 1.5})
    assert r.status_code == 200, r.text
    assert "device_key" not in r.json()
    with factory.sessions() as session:
        from solarfleet.fleet.models import Product

        assert session.get(Product, unit.product_imei).device_key == unit.device_key  # type: ignore[union-attr]
    r = client.put(url, headers=factory.headers("FACTORY"), json={"device_key": new_key})
    assert r.status_code == 200, r.text
    assert r.json()["device_key"] == new_key


def test_password_hashes_are_never_shown_or_searched(client: TestClient, factory: Factory) -> None:
    headers = factory.headers("SYSTEM")
    user = factory.user("OVERVIEW")
    for row in (
        client.get(f"/v1/users/{user.user_id}", headers=headers).json(),
        *client.get("/v1/users", headers=headers).json()["objects"],
    ):
        assert "password_hash" not in row and "password" not in row
    q = {"filters": [{"name": "password_hash", "op": "like", "val": "$argon2%"}]}
    assert client.get("/v1/users", headers=headers, params={"q": _dumps(q)}).status_code == 400
    r = client.post(
        "/v1/users",
        headers=headers,
        json={"username": "x@example.com", "password": "long enough", "permissions": "OVERVIEW",
              "password_hash": "$argon2id$forged"},
    )  # fmt: skip
    assert r.status_code == 400, r.text
    r = client.post(
        "/v1/users",
        headers=headers,
        json={"username": "x@example.com", "password": "long enough", "permissions": "OVERVIEW"},
    )
    assert r.status_code == 201, r.text
    assert "password" not in r.json() and "password_hash" not in r.json()
    assert _login(client, "x@example.com", "long enough").status_code == 200


def test_changes_to_a_user_apply_at_the_next_request(client: TestClient, factory: Factory) -> None:
    admin = factory.headers("SYSTEM")
    user = factory.user("SYSTEM")
    headers = {"Authorization": f"Token token={factory.token(user)}"}
    assert client.get("/v1/users", headers=headers).status_code == 200
    r = client.put(f"/v1/users/{user.user_id}", headers=admin, json={"permissions": "OVERVIEW"})
    assert r.status_code == 200, r.text
    assert client.get("/v1/users", headers=headers).status_code == 403
    assert client.get("/v1/entities", headers=headers).status_code == 200
    r = client.put(f"/v1/users/{user.user_id}", headers=admin, json={"is_active": False})
    assert r.status_code == 200, r.text
    assert client.get("/v1/entities", headers=headers).status_code == 401
    # a deleted user's tokens go with it
    other = factory.user("OVERVIEW")
    other_headers = {"Authorization": f"Token token={factory.token(other)}"}
    assert client.delete(f"/v1/users/{other.user_id}", headers=admin).status_code == 204
    assert client.get("/v1/entities", headers=other_headers).status_code == 401


def _dumps(q: Any) -> str:
    import json

    return json.dumps(q)


# -- a password change or a deactivation revokes tokens (SPEC §2) ------------------------------


def _token_of(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    r = _login(client, username, password)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Token token={r.json()['message']['login_successful']['API_token']}"}


def _tokens_of(factory: Factory, user_id: int) -> int:
    with factory.sessions() as session:
        return len(session.scalars(select(Token).where(Token.user_id == user_id)).all())


def test_a_password_changed_by_an_admin_revokes_every_token(
    client: TestClient, factory: Factory
) -> None:
    admin = factory.headers("SYSTEM")
    user = factory.user("OVERVIEW")
    first, second = _token_of(client, user.username), _token_of(client, user.username)
    bystander = factory.user("OVERVIEW")
    theirs = _token_of(client, bystander.username)
    r = client.put(f"/v1/users/{user.user_id}", headers=admin, json={"password": "a new password"})
    assert r.status_code == 200, r.text
    for headers in (first, second):
        assert client.get("/v1/entities", headers=headers).status_code == 401
    assert _tokens_of(factory, user.user_id) == 0
    assert client.get("/v1/entities", headers=theirs).status_code == 200  # others untouched
    assert _login(client, user.username).status_code == 401
    assert _login(client, user.username, "a new password").status_code == 200


def test_changing_ones_own_password_keeps_the_token_it_was_sent_with(
    client: TestClient, factory: Factory
) -> None:
    user = factory.user("SYSTEM")
    mine, stolen = _token_of(client, user.username), _token_of(client, user.username)
    r = client.put(f"/v1/users/{user.user_id}", headers=mine, json={"password": "a new password"})
    assert r.status_code == 200, r.text
    assert client.get("/v1/entities", headers=mine).status_code == 200
    assert client.get("/v1/entities", headers=stolen).status_code == 401
    assert _tokens_of(factory, user.user_id) == 1


def test_other_changes_and_refused_password_changes_revoke_nothing(
    client: TestClient, factory: Factory
) -> None:
    admin = factory.headers("SYSTEM")
    user, other = factory.user("OVERVIEW"), factory.user("OVERVIEW")
    token = _token_of(client, user.username)
    r = client.put(f"/v1/users/{user.user_id}", headers=admin, json={"display_name": "Renamed"})
    assert r.status_code == 200, r.text
    r = client.put(
        f"/v1/users/{user.user_id}",
        headers=admin,
        json={"password": "a new password", "username": other.username},
    )
    assert r.status_code == 409, r.text  # one transaction: the revocation is undone too
    assert client.get("/v1/entities", headers=token).status_code == 200
    assert _login(client, user.username).status_code == 200


def test_deactivating_a_user_revokes_its_tokens_for_good(
    client: TestClient, factory: Factory
) -> None:
    admin = factory.headers("SYSTEM")
    user = factory.user("OVERVIEW")
    token = _token_of(client, user.username)
    r = client.put(f"/v1/users/{user.user_id}", headers=admin, json={"is_active": False})
    assert r.status_code == 200, r.text
    assert _tokens_of(factory, user.user_id) == 0
    r = client.put(f"/v1/users/{user.user_id}", headers=admin, json={"is_active": True})
    assert r.status_code == 200, r.text
    assert client.get("/v1/entities", headers=token).status_code == 401  # not revived


@pytest.mark.parametrize("username", ["", " ", "\t \n"])
def test_an_empty_username_is_a_400(client: TestClient, factory: Factory, username: str) -> None:
    admin = factory.headers("SYSTEM")
    body = {"username": username, "password": "long enough", "permissions": "OVERVIEW"}
    r = client.post("/v1/users", headers=admin, json=body)
    assert r.status_code == 400, r.text
    expected = {
        "status": "error",
        "message": "Invalid username: it must not be empty or only whitespace",
    }
    assert r.json() == expected
    user = factory.user("OVERVIEW")
    r = client.put(f"/v1/users/{user.user_id}", headers=admin, json={"username": username})
    assert r.status_code == 400, r.text
    assert r.json() == expected
    with factory.sessions() as session:
        assert session.get(User, user.user_id).username == user.username  # type: ignore[union-attr]
        assert session.scalars(select(User).where(User.username == username)).all() == []
