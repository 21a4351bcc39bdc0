"""Parts crossing entities (issue 9, items 7 and 8): a part's history stays with the units it
lived on, and no answer about a part tells an ENTITY user whose it is."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from solarfleet.db import utcnow
from solarfleet.fleet.models import Entity, ParameterType, Part, Product
from solarfleet.timeparse import format_instant
from tests.factories import Factory
from tests.parameters.conftest import unit_auth

Headers = dict[str, str]


@dataclass
class Story:
    """Part p: level 5 confirmed on entity 3's unit u3 (at ``on_u3``), then 6 pending; taken
    off (6 expires); put on entity 2's unit u2 by a GLOBAL technician; 7 set and confirmed there."""

    u3: Product
    u2: Product
    part: Part
    level: ParameterType
    on_u3: str
    on_u2: str
    e3: Headers  # ENTITY users (ADMIN) of entity 3 and 2
    e2: Headers
    admin: Headers  # GLOBAL
    entities: tuple[Entity, Entity]  # 3 and 2


def _ok(r: Any, code: int = 200) -> Any:
    assert r.status_code == code, r.text
    return r.json()


def _set(client: TestClient, s: Story, value: int) -> None:
    body = {"parameter_type_id": s.level.parameter_type_id, "value": value}
    _ok(client.post(f"/v1/parts/{s.part.part_id}/parameters", json=body, headers=s.admin), 201)


def _report(client: TestClient, s: Story, unit: Product, value: int) -> None:
    body = {
        "part_parameters": {
            str(s.part.part_id): [{"parameter_type_id": s.level.parameter_type_id, "value": value}]
        }
    }
    _ok(client.post("/v1/rc_data", json=body, headers=unit_auth(unit)))


@pytest.fixture
def story(client: TestClient, factory: Factory) -> Story:
    e3, e2 = factory.entity("Entity 3"), factory.entity("Entity 2")
    level = factory.parameter_type("int", name="level")
    ptype = factory.product_type(parameter_types=[level.parameter_type_id])
    part_type = factory.part_type(parameter_types=[level.parameter_type_id])
    u3 = factory.product("333000000000003", product_type=ptype, entity=e3)
    u2 = factory.product("222000000000002", product_type=ptype, entity=e2)
    part = factory.part(part_type=part_type, on=u3)
    s = Story(
        u3, u2, part, level, "", "",
        factory.headers("ADMIN", "ENTITY", e3), factory.headers("ADMIN", "ENTITY", e2),
        factory.headers("ADMIN"), (e3, e2),
    )  # fmt: skip
    _set(client, s, 5)
    _report(client, s, u3, 5)
    s.on_u3 = format_instant(utcnow())
    _set(client, s, 6)  # pending when the part leaves: it expires then
    tech3 = factory.headers("TECHNICAL", "ENTITY", e3)
    _ok(client.delete(f"/v1/products/{u3.product_imei}/parts/{part.part_id}", headers=tech3))
    return s


def _attach(client: TestClient, unit: Product, part_id: int, headers: Headers) -> Any:
    return client.post(
        f"/v1/products/{unit.product_imei}/parts", json={"part_id": part_id}, headers=headers
    )


def _move_to_u2(client: TestClient, factory: Factory, s: Story) -> None:
    _ok(_attach(client, s.u2, s.part.part_id, factory.headers("TECHNICAL")), 201)
    _set(client, s, 7)
    _report(client, s, s.u2, 7)
    s.on_u2 = format_instant(utcnow())


def test_a_free_part_is_attachable_only_where_it_was_last(
    client: TestClient, factory: Factory, story: Story
) -> None:
    s = story
    missing = _attach(client, s.u2, 999999, s.e2)
    assert (missing.status_code, missing.json()["message"]) == (
        400,
        "Invalid part_id: no part 999999",
    )
    # entity 2 gets the answer of a part that does not exist, for a part free on entity 3's side
    r = _attach(client, s.u2, s.part.part_id, s.e2)
    assert (r.status_code, r.json()["message"]) == (
        400,
        f"Invalid part_id: no part {s.part.part_id}",
    )
    # and for a part that was never on any unit
    new = factory.part(part_type=factory.part_type())
    r = _attach(client, s.u2, new.part_id, s.e2)
    assert (r.status_code, r.json()["message"]) == (400, f"Invalid part_id: no part {new.part_id}")
    # entity 2 cannot see it either
    assert client.get(f"/v1/parts/{s.part.part_id}", headers=s.e2).status_code == 404
    # entity 3, where it was last, sees it and may put it back
    assert client.get(f"/v1/parts/{s.part.part_id}", headers=s.e3).status_code == 200
    _ok(_attach(client, s.u3, s.part.part_id, s.e3), 201)


def test_a_part_on_another_entitys_unit_answers_as_a_missing_part(
    client: TestClient, factory: Factory, story: Story
) -> None:
    s = story
    _move_to_u2(client, factory, s)
    r = _attach(client, s.u3, s.part.part_id, s.e3)
    assert (r.status_code, r.json()["message"]) == (
        400,
        f"Invalid part_id: no part {s.part.part_id}",
    )
    assert s.u2.product_imei not in r.text
    # on a unit of one's own entity, the conflict names that unit
    other = factory.product(product_type=None)
    factory.link_entity(other, s.entities[1])
    r = _attach(client, other, s.part.part_id, s.e2)
    assert r.status_code == 409, r.text
    assert r.json()["message"] == (
        f"Part {s.part.part_id} is already on #{s.u2.product_imei}: detach it first"
    )


def _everything(client: TestClient, s: Story, headers: Headers) -> str:
    """Every answer about the part and both units that ``headers`` may read, as one text."""
    texts = []
    for unit in (s.u2, s.u3):
        base = f"/v1/products/{unit.product_imei}/parameters/history"
        for params in ({}, {"date": s.on_u3}, {"date": s.on_u2}):
            r = client.get(base, params=params, headers=headers)
            texts.append(r.text if r.status_code == 200 else "")
    mine = json.dumps({"filters": [{"name": "part_id", "op": "==", "val": s.part.part_id}]})
    for params in ({}, {"as_of": s.on_u3}, {"as_of": s.on_u2}):
        r = client.get("/v1/part_parameters", params={**params, "q": mine}, headers=headers)
        texts.append(_ok(r) and r.text)
    return "\n".join(texts)


def _values(client: TestClient, s: Story, unit: Product, headers: Headers, **params: Any) -> Any:
    r = client.get(
        f"/v1/products/{unit.product_imei}/parameters/history", params=params, headers=headers
    )
    data = _ok(r)["data"]["part_parameters"]
    return {k: [(row["value"], row["status"]) for row in v] for k, v in data.items()}


def test_part_history_stays_with_the_units_it_lived_on(
    client: TestClient, factory: Factory, story: Story
) -> None:
    s = story
    _move_to_u2(client, factory, s)
    key = str(s.part.part_id)
    # entity 2 reads nothing from the part's time on entity 3: no value, no IMEI of u3
    assert s.u3.product_imei not in _everything(client, s, s.e2)
    assert _values(client, s, s.u2, s.e2) == {key: [("7", "active")]}
    # entity 3 keeps the part in its unit's history, its rows from then (6, pending when it
    # left, expired as it left); none from entity 2's time, and not the row in force across
    # the move (5, active until 7 replaced it on u2)
    assert s.u2.product_imei not in _everything(client, s, s.e3)
    assert _values(client, s, s.u3, s.e3) == {key: [("6", "expired")]}
    assert _values(client, s, s.u3, s.e3, date=s.on_u3) == {key: []}
    # GLOBAL users see all of it: the row across the move on both units
    assert _values(client, s, s.u3, s.admin) == {key: [("5", "removed"), ("6", "expired")]}
    assert _values(client, s, s.u2, s.admin) == {key: [("5", "removed"), ("7", "active")]}
    assert _values(client, s, s.u3, s.admin, date=s.on_u3) == {key: [("5", "active")]}
    assert _values(client, s, s.u2, s.admin, date=s.on_u2) == {key: [("7", "active")]}


def test_a_part_moved_within_an_entity_keeps_its_history_in_view(
    client: TestClient, factory: Factory, story: Story
) -> None:
    s = story
    # u2 joins entity 3: both units in scope, the rows across the move are entity 3's to see
    _move_to_u2(client, factory, s)
    e3 = s.entities[0]
    _ok(
        client.put(
            f"/v1/products/{s.u2.product_imei}/change_entity",
            json={"entity_id": e3.entity_id},
            headers=s.admin,
        )
    )
    key = str(s.part.part_id)
    assert _values(client, s, s.u3, s.e3) == {key: [("5", "removed"), ("6", "expired")]}
    assert _values(client, s, s.u3, s.e3, date=s.on_u3) == {key: [("5", "active")]}
