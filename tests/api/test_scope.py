"""Scope isolation (SPEC §2): an ENTITY user reaches only the units now linked to their entity.

A unit outside scope answers 404 and never shows through a list, a relation filter (``a__b``,
``has``, ``any``, nested), an ``order_by`` join, ``group_by``, ``single``, a linker table, parameter
rows, parts, migration history or an action endpoint. A unit with no current entity belongs to
the unknown entity (id 1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from solarfleet.auth.models import Token, User
from solarfleet.auth.permissions import UNKNOWN_ENTITY_ID
from solarfleet.auth.tokens import hash_token
from solarfleet.db import utcnow
from solarfleet.fleet.models import (
    Entity,
    Part,
    PartProductLinker,
    Product,
    ProductEntityLinker,
    ProductType,
)
from solarfleet.migration.models import ProductMigrationHistory
from solarfleet.resources import REGISTRY
from tests.factories import Factory

Headers = dict[str, str]


@dataclass
class World:
    unknown: Entity
    a: Entity
    b: Entity
    type_a: ProductType  # used by A's units only
    type_b: ProductType  # used by b1 only
    type_u: ProductType  # used by the unknown entity's units only
    units: dict[str, Product]  # a1 a2 m (A), b1 (B), u0 u1 ur (unknown entity)
    parts: dict[str, Part]  # pa pm (on A's units), pb px (on b1), pu0 (on u0), free
    users: dict[str, Headers]  # A, B, unknown (ENTITY, SYSTEM level), global

    def imei(self, name: str) -> str:
        return self.units[name].product_imei

    def serial(self, name: str) -> str:
        unit = self.units.get(name)
        return unit.serial_number if unit is not None else self.parts[name].serial_number


VISIBLE_UNITS = {
    "A": {"a1", "a2", "m"},
    "B": {"b1"},
    "unknown": {"u0", "u1", "ur"},
    "global": {"a1", "a2", "m", "b1", "u0", "u1", "ur"},
}
VISIBLE_PARTS = {
    "A": {"pa", "pm"},
    "B": {"pb", "px"},
    "unknown": {"pu0"},
    "global": {"pa", "pm", "pb", "px", "pu0", "free"},
}


@pytest.fixture
def world(factory: Factory) -> World:
    unknown = factory.entity("Unknown entity")
    assert unknown.entity_id == UNKNOWN_ENTITY_ID
    a, b = factory.entity("Entity A"), factory.entity("Entity B")
    type_a, type_b, type_u = factory.product_type(), factory.product_type(), factory.product_type()
    earlier = utcnow() - timedelta(days=30)
    moved = utcnow() - timedelta(days=10)
    units = {
        "a1": factory.product(product_type=type_a, entity=a),
        "a2": factory.product(product_type=type_a, entity=a),
        "b1": factory.product(product_type=type_b, entity=b),
        "m": factory.product(product_type=type_a),  # was B's, now A's
        "u0": factory.product(product_type=type_u),  # never linked
        "u1": factory.product(product_type=type_u, entity=unknown),
        "ur": factory.product(product_type=type_u),  # was B's, link removed
    }
    factory.link_entity(units["m"], b, date_added=earlier, date_removed=moved)
    factory.link_entity(units["m"], a, date_added=moved)
    factory.link_entity(units["ur"], b, date_added=earlier, date_removed=moved)

    part_type = factory.part_type()
    parts = {
        "pa": factory.part(part_type=part_type, on=units["a1"]),
        "pb": factory.part(part_type=factory.part_type(), on=units["b1"]),
        "pm": factory.part(part_type=part_type),  # was on b1, now on a1
        "px": factory.part(part_type=part_type),  # was on a1, now on b1
        "pu0": factory.part(part_type=part_type, on=units["u0"]),
        "free": factory.part(part_type=part_type),
    }
    for part, history in (("pm", ("b1", "a1")), ("px", ("a1", "b1"))):
        old, new = history
        factory._add(
            PartProductLinker(
                part_id=parts[part].part_id, product_imei=units[old].product_imei,
                date_added=earlier, date_removed=moved,
            )
        )  # fmt: skip
        factory._add(
            PartProductLinker(
                part_id=parts[part].part_id, product_imei=units[new].product_imei, date_added=moved
            )
        )

    ptype = factory.parameter_type()
    for name in ("a1", "m", "b1", "u0", "ur"):
        factory.product_parameter(units[name], ptype, value=f"value-{name}")
        factory._add(
            ProductMigrationHistory(
                product_imei=units[name].product_imei,
                latest_migration_timestamp=earlier,
                last_migrated_at=moved,
            )
        )
    for name in ("pa", "pm", "pb", "px", "pu0", "free"):
        factory.part_parameter(parts[name], ptype, value=f"value-{name}")

    users = {
        "A": factory.headers("SYSTEM", "ENTITY", a),
        "B": factory.headers("SYSTEM", "ENTITY", b),
        "unknown": factory.headers("SYSTEM", "ENTITY", unknown),
        "global": factory.headers("SYSTEM", "GLOBAL"),
    }
    return World(unknown, a, b, type_a, type_b, type_u, units, parts, users)


def listing(client: TestClient, headers: Headers, resource: str, q: Any = None) -> list[dict]:
    params: dict[str, Any] = {"results_per_page": 1000}
    if q is not None:
        params["q"] = json.dumps(q)
    r = client.get(f"/v1/{resource}", headers=headers, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["num_results"] == len(body["objects"])
    return body["objects"]  # type: ignore[no-any-return]


def names_of(world: World, imeis: Any) -> set[str]:
    by_imei = {u.product_imei: n for n, u in world.units.items()}
    return {by_imei[i] for i in imeis}


def part_names(world: World, part_ids: Any) -> set[str]:
    by_id = {p.part_id: n for n, p in world.parts.items()}
    return {by_id[i] for i in part_ids}


USERS = ("A", "B", "unknown", "global")


# -- units ------------------------------------------------------------------------------------


def test_product_list_holds_only_units_in_scope(client: TestClient, world: World) -> None:
    for who in USERS:
        rows = listing(client, world.users[who], "products")
        assert names_of(world, (r["product_imei"] for r in rows)) == VISIBLE_UNITS[who], who


@pytest.mark.parametrize("who", USERS)
def test_units_outside_scope_are_404_by_id(client: TestClient, world: World, who: str) -> None:
    never = client.get("/v1/products/123456789012345", headers=world.users[who])
    assert never.status_code == 404
    for name, unit in world.units.items():
        r = client.get(f"/v1/products/{unit.product_imei}", headers=world.users[who])
        if name in VISIBLE_UNITS[who]:
            assert r.status_code == 200, (name, r.text)
            assert r.json()["product_imei"] == unit.product_imei
        else:
            assert r.status_code == 404, (name, r.text)
            # indistinguishable from a unit that does not exist
            assert r.json() == {
                "status": "error",
                "message": never.json()["message"].replace("123456789012345", unit.product_imei),
            }


def test_counts_and_pages_ignore_units_outside_scope(client: TestClient, world: World) -> None:
    r = client.get("/v1/products", headers=world.users["A"], params={"results_per_page": 2})
    assert r.json()["num_results"] == 3
    assert r.json()["total_pages"] == 2
    r = client.get(
        "/v1/products", headers=world.users["A"], params={"page": 2, "results_per_page": 2}
    )
    assert len(r.json()["objects"]) == 1


def test_single_and_group_by_respect_scope(client: TestClient, world: World) -> None:
    a = world.users["A"]
    q = {
        "filters": [{"name": "serial_number", "op": "==", "val": world.serial("b1")}],
        "single": True,
    }
    r = client.get("/v1/products", headers=a, params={"q": json.dumps(q)})
    assert r.status_code == 404
    assert r.json()["message"] == "No result found"
    r = client.get("/v1/products", headers=world.users["global"], params={"q": json.dumps(q)})
    assert r.status_code == 200
    assert r.json()["product_imei"] == world.imei("b1")

    grouped = listing(client, a, "products", {"group_by": [{"field": "product_type_id"}]})
    assert [row["product_type_id"] for row in grouped] == [world.type_a.product_type_id]
    grouped = listing(
        client, world.users["global"], "products", {"group_by": [{"field": "product_type_id"}]}
    )
    assert {row["product_type_id"] for row in grouped} == {
        world.type_a.product_type_id, world.type_b.product_type_id, world.type_u.product_type_id,
    }  # fmt: skip


def test_filters_on_own_columns_never_reach_other_units(client: TestClient, world: World) -> None:
    a = world.users["A"]
    everything = {
        "or": [
            {"name": "product_imei", "op": "is_not_null"},
            {"name": "serial_number", "op": "is_null"},
        ]
    }
    rows = listing(client, a, "products", {"filters": [everything]})
    assert names_of(world, (r["product_imei"] for r in rows)) == VISIBLE_UNITS["A"]
    for op, val in (
        ("==", world.imei("b1")),
        ("in", [world.imei("b1"), world.imei("u0")]),
        ("like", "%"),
    ):
        q = {"filters": [{"name": "product_imei", "op": op, "val": val}]}
        found = names_of(world, (r["product_imei"] for r in listing(client, a, "products", q)))
        assert found <= VISIBLE_UNITS["A"], (op, found)


# -- relation filters ---------------------------------------------------------------------------


def _type_ids(rows: list[dict]) -> set[int]:
    return {r["product_type_id"] for r in rows}


RELATION_FILTERS = {
    "a__b any": lambda w: {"name": "products__serial_number", "op": "any", "val": w.serial("b1")},
    "a__b ==": lambda w: {"name": "products__serial_number", "op": "==", "val": w.serial("b1")},
    "a__b like": lambda w: {"name": "products__serial_number", "op": "like", "val": w.serial("b1")},
    "a__b in": lambda w: {"name": "products__product_imei", "op": "in", "val": [w.imei("b1")]},
    "any nested": lambda w: {
        "name": "products", "op": "any",
        "val": {"name": "serial_number", "op": "==", "val": w.serial("b1")},
    },
    "any nested or": lambda w: {
        "name": "products", "op": "any",
        "val": {"or": [{"name": "serial_number", "op": "==", "val": w.serial("b1")},
                       {"name": "product_imei", "op": "==", "val": "0"}]},
    },
    "any list": lambda w: {
        "name": "products", "op": "any",
        "val": [{"name": "product_imei", "op": "==", "val": w.imei("b1")}],
    },
    "any then has": lambda w: {
        "name": "products", "op": "any",
        "val": {"name": "product_type", "op": "has",
                "val": {"name": "product_type_id", "op": "==", "val": w.type_b.product_type_id}},
    },
    "two levels": lambda w: {
        "name": "products", "op": "any",
        "val": {"name": "parts__serial_number", "op": "any", "val": w.serial("pb")},
    },
    "two levels nested": lambda w: {
        "name": "products", "op": "any",
        "val": {"name": "parts", "op": "any",
                "val": {"name": "serial_number", "op": "==", "val": w.serial("pb")}},
    },
    "or at top": lambda w: {
        "or": [{"name": "products__serial_number", "op": "any", "val": w.serial("b1")},
               {"name": "name", "op": "==", "val": "no such type"}],
    },
}  # fmt: skip


def test_relation_filters_do_not_match_units_outside_scope(
    client: TestClient, world: World
) -> None:
    for kind, make in RELATION_FILTERS.items():
        q = {"filters": [make(world)]}
        # b1 is the only unit of type_b: only a match through b1 would return type_b
        assert listing(client, world.users["A"], "product_types", q) == [], kind
        assert listing(client, world.users["unknown"], "product_types", q) == [], kind
        only_b = {world.type_b.product_type_id}
        assert _type_ids(listing(client, world.users["B"], "product_types", q)) == only_b, kind
        assert _type_ids(listing(client, world.users["global"], "product_types", q)) == only_b, kind


def test_relation_filter_matching_everything_shows_own_types_only(
    client: TestClient, world: World
) -> None:
    q = {"filters": [{"name": "products__serial_number", "op": "like", "val": "%"}]}
    assert _type_ids(listing(client, world.users["A"], "product_types", q)) == {
        world.type_a.product_type_id
    }
    assert _type_ids(listing(client, world.users["unknown"], "product_types", q)) == {
        world.type_u.product_type_id
    }
    # unfiltered, types are not unit data: everyone sees them all
    assert len(listing(client, world.users["A"], "product_types")) == 3


def test_entity_filters_through_links_stay_in_scope(client: TestClient, world: World) -> None:
    def entity_names(who: str, filt: dict) -> set[str]:
        return {
            e["name"] for e in listing(client, world.users[who], "entities", {"filters": [filt]})
        }

    by_imei = {"name": "product_links__product_imei", "op": "==", "val": world.imei("b1")}
    assert entity_names("A", by_imei) == set()
    assert entity_names("global", by_imei) == {"Entity B"}
    nested = {
        "name": "product_links", "op": "any",
        "val": {"name": "product", "op": "has",
                "val": {"name": "serial_number", "op": "==", "val": world.serial("b1")}},
    }  # fmt: skip
    assert entity_names("A", nested) == set()
    assert entity_names("global", nested) == {"Entity B"}
    current = {
        "name": "product_links",
        "op": "any",
        "val": {"name": "date_removed", "op": "is_null"},
    }
    assert entity_names("A", current) == {"Entity A"}
    assert entity_names("B", current) == {"Entity B"}
    assert entity_names("unknown", current) == {"Unknown entity"}
    assert entity_names("global", current) == {"Entity A", "Entity B", "Unknown entity"}


def test_part_filters_through_history_stay_in_scope(client: TestClient, world: World) -> None:
    """pm is A's now but was on b1: A must not find it through b1."""
    a, g = world.users["A"], world.users["global"]
    for filt in (
        {"name": "product_links__product_imei", "op": "==", "val": world.imei("b1")},
        {"name": "product_links", "op": "any",
         "val": {"name": "product", "op": "has",
                 "val": {"name": "serial_number", "op": "==", "val": world.serial("b1")}}},
    ):  # fmt: skip
        assert listing(client, a, "parts", {"filters": [filt]}) == [], filt
        rows = listing(client, g, "parts", {"filters": [filt]})
        assert part_names(world, (p["part_id"] for p in rows)) == {"pb", "pm", "px"}
    # part_types through parts: pb's type is used by pb only
    q = {"filters": [{"name": "parts__serial_number", "op": "any", "val": world.serial("pb")}]}
    assert listing(client, a, "part_types", q) == []
    assert len(listing(client, g, "part_types", q)) == 1
    # px was on a1 (A may see that history row) but is on b1 now: its part is out of reach
    filt = {"name": "part__serial_number", "op": "==", "val": world.serial("px")}
    assert listing(client, a, "part_product_linker", {"filters": [filt]}) == []
    filt = {
        "name": "part",
        "op": "has",
        "val": {"name": "part_id", "op": "==", "val": world.parts["px"].part_id},
    }
    assert listing(client, a, "part_product_linker", {"filters": [filt]}) == []
    assert len(listing(client, g, "part_product_linker", {"filters": [filt]})) == 2


def test_unit_data_filters_by_relation_stay_in_scope(client: TestClient, world: World) -> None:
    a = world.users["A"]
    b1, b1_serial, pb_serial = world.imei("b1"), world.serial("b1"), world.serial("pb")
    imei_is_b1 = {"name": "product_imei", "op": "==", "val": b1}
    for resource, filt in (
        ("product_parameters", {"name": "product__serial_number", "op": "==", "val": b1_serial}),
        ("product_migration_history", {"name": "product", "op": "has", "val": imei_is_b1}),
        ("part_parameters", {"name": "part__serial_number", "op": "==", "val": pb_serial}),
        ("product_entity_linker", {"name": "product__product_imei", "op": "==", "val": b1}),
        ("products", {"name": "entities__name", "op": "any", "val": "Entity B"}),
        ("products", {"name": "parts__serial_number", "op": "any", "val": pb_serial}),
    ):
        assert listing(client, a, resource, {"filters": [filt]}) == [], resource
        assert len(listing(client, world.users["global"], resource, {"filters": [filt]})) >= 1, (
            resource
        )


# -- order_by through relations -------------------------------------------------------------------


ORDERED = [
    ("part_product_linker", "product__serial_number"),
    ("product_entity_linker", "product__serial_number"),
    ("product_parameters", "product__serial_number"),
    ("product_migration_history", "product__serial_number"),
    ("parts", "product__serial_number"),
    ("part_parameters", "part__serial_number"),
    ("part_product_linker", "part__serial_number"),
]


@pytest.mark.parametrize(("resource", "field"), ORDERED)
def test_order_by_a_relation_keeps_scope(
    client: TestClient, world: World, resource: str, field: str
) -> None:
    for who in USERS:
        for direction in ("asc", "desc"):
            _check_ordering(client, world, resource, field, direction, who)


def _check_ordering(
    client: TestClient, world: World, resource: str, field: str, direction: str, who: str
) -> None:
    headers = world.users[who]
    plain = listing(client, headers, resource)
    ordered = listing(
        client, headers, resource, {"order_by": [{"field": field, "direction": direction}]}
    )
    key = REGISTRY.by_name[resource].primary_key.key
    # same rows, no duplicates from the join, none lost
    assert sorted(r[key] for r in ordered) == sorted(r[key] for r in plain)
    assert len({r[key] for r in ordered}) == len(ordered)
    # in scope: rows of the user's units (or parts) only
    if plain and "part_id" in plain[0] and resource != "part_product_linker":
        assert part_names(world, (r["part_id"] for r in plain)) <= VISIBLE_PARTS[who]
    if plain and "product_imei" in plain[0]:
        assert names_of(world, (r["product_imei"] for r in plain)) <= VISIBLE_UNITS[who]
    # sorted by the related serial number where the related row is visible
    relation = field.split("__")[0]
    units, parts = world.units.items(), world.parts.items()
    serials = {u.product_imei: u.serial_number for n, u in units if n in VISIBLE_UNITS[who]}
    part_serials = {p.part_id: p.serial_number for n, p in parts if n in VISIBLE_PARTS[who]}
    if relation == "product" and resource == "parts":
        current = _current_units(world)
        values = [serials.get(current.get(r["part_id"], "")) for r in ordered]
    elif relation == "product":
        values = [serials.get(r["product_imei"]) for r in ordered]
    else:
        values = [part_serials.get(r["part_id"]) for r in ordered]
    known = [v for v in values if v is not None]
    assert known == sorted(known, reverse=direction == "desc"), values


def _current_units(world: World) -> dict[int, str]:
    where = {"pa": "a1", "pm": "a1", "pb": "b1", "px": "b1", "pu0": "u0"}
    return {world.parts[p].part_id: world.imei(u) for p, u in where.items()}


# -- unit data tables -----------------------------------------------------------------------------


UNIT_TABLES = [
    "product_entity_linker",
    "part_product_linker",
    "product_parameters",
    "product_migration_history",
]
PART_TABLES = ["part_parameters", "parts"]


@pytest.mark.parametrize("resource", UNIT_TABLES)
def test_unit_tables_show_units_in_scope_only(
    client: TestClient, world: World, resource: str
) -> None:
    everything = listing(client, world.users["global"], resource)
    key = REGISTRY.by_name[resource].primary_key.key
    assert names_of(world, (r["product_imei"] for r in everything)) >= {"a1", "b1"}
    for who in USERS:
        mine = listing(client, world.users[who], resource)
        expected = {
            r[key] for r in everything if names_of(world, [r["product_imei"]]) <= VISIBLE_UNITS[who]
        }
        assert {r[key] for r in mine} == expected, who
        for row in everything:
            r = client.get(f"/v1/{resource}/{row[key]}", headers=world.users[who])
            assert r.status_code == (200 if row[key] in expected else 404), (who, row, r.text)


@pytest.mark.parametrize("resource", PART_TABLES)
def test_part_tables_show_parts_on_units_in_scope_only(
    client: TestClient, world: World, resource: str
) -> None:
    key = REGISTRY.by_name[resource].primary_key.key
    everything = listing(client, world.users["global"], resource)
    for who in USERS:
        mine = listing(client, world.users[who], resource)
        assert part_names(world, (r["part_id"] for r in mine)) == VISIBLE_PARTS[who], who
        for row in everything:
            r = client.get(f"/v1/{resource}/{row[key]}", headers=world.users[who])
            visible = part_names(world, [row["part_id"]]) <= VISIBLE_PARTS[who]
            assert r.status_code == (200 if visible else 404), (who, row, r.text)


def test_history_of_a_moved_unit_goes_with_the_unit(client: TestClient, world: World) -> None:
    """m was B's and is A's: A sees both of its link rows, B sees neither."""

    def links(who: str) -> list[dict]:
        q = {"filters": [{"name": "product_imei", "op": "==", "val": world.imei("m")}]}
        return listing(client, world.users[who], "product_entity_linker", q)

    assert sorted(r["entity_id"] for r in links("A")) == sorted(
        [world.a.entity_id, world.b.entity_id]
    )
    assert links("B") == []
    assert len(links("global")) == 2


# -- writes through the generic resources -------------------------------------------------------


def test_generic_writes_cannot_reach_units_outside_scope(
    client: TestClient, world: World, factory: Factory
) -> None:
    a = world.users["A"]
    b1 = world.imei("b1")
    assert client.put(f"/v1/products/{b1}", headers=a, json={"gps_lat": 1.0}).status_code == 404
    assert client.delete(f"/v1/products/{b1}", headers=a).status_code == 404
    pb = world.parts["pb"].part_id
    assert client.put(f"/v1/parts/{pb}", headers=a, json={"manufacturer": "x"}).status_code == 404
    assert client.delete(f"/v1/parts/{pb}", headers=a).status_code == 404
    # a reference to a unit outside scope is as invalid as one to no unit
    ptype = factory.parameter_type()
    r = client.post(
        "/v1/product_parameters",
        headers=a,
        json={"product_imei": b1, "parameter_type_id": ptype.parameter_type_id, "value": "1"},
    )
    assert r.status_code == 400, r.text
    mine = listing(client, a, "product_parameters")[0]
    r = client.put(
        f"/v1/product_parameters/{mine['product_parameter_id']}",
        headers=a,
        json={"product_imei": b1},
    )
    assert r.status_code == 400, r.text
    body = {"part_id": pb, "parameter_type_id": ptype.parameter_type_id, "value": "1"}
    r = client.post("/v1/part_parameters", headers=a, json=body)
    assert r.status_code == 400, r.text
    # nothing changed
    unit = client.get(f"/v1/products/{b1}", headers=world.users["global"]).json()
    assert unit["gps_lat"] is None
    assert (
        client.get(f"/v1/parts/{pb}", headers=world.users["global"]).json()["manufacturer"] is None
    )


def test_a_unit_created_by_an_entity_user_is_theirs(client: TestClient, world: World) -> None:
    r = client.post(
        "/v1/products",
        headers=world.users["A"],
        json={"product_imei": "352000000000009", "product_type_id": world.type_a.product_type_id},
    )
    assert r.status_code == 201, r.text
    assert client.get("/v1/products/352000000000009", headers=world.users["A"]).status_code == 200
    assert client.get("/v1/products/352000000000009", headers=world.users["B"]).status_code == 404
    assert (
        client.get("/v1/products/352000000000009", headers=world.users["unknown"]).status_code
        == 404
    )


# -- action endpoints -----------------------------------------------------------------------------


def _link_rows(factory: Factory, imei: str) -> list[ProductEntityLinker]:
    with factory.sessions() as session:
        return list(
            session.scalars(
                select(ProductEntityLinker)
                .where(ProductEntityLinker.product_imei == imei)
                .order_by(ProductEntityLinker.product_entity_linker_id)
            )
        )


def _part_rows(factory: Factory, part_id: int) -> list[PartProductLinker]:
    with factory.sessions() as session:
        return list(
            session.scalars(
                select(PartProductLinker)
                .where(PartProductLinker.part_id == part_id)
                .order_by(PartProductLinker.part_product_linker_id)
            )
        )


def _row_counts(factory: Factory) -> tuple[int, int]:
    with factory.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(ProductEntityLinker)) or 0,
            session.scalar(select(func.count()).select_from(PartProductLinker)) or 0,
        )


def test_actions_on_units_outside_scope_are_404(
    client: TestClient, world: World, factory: Factory
) -> None:
    for target in ("b1", "u0", "ur"):
        _check_actions_refused(client, world, factory, target)


def _check_actions_refused(client: TestClient, world: World, factory: Factory, target: str) -> None:
    a = world.users["A"]
    imei = world.imei(target)
    before = _row_counts(factory)
    base = f"/v1/products/{imei}"
    for action in ("assign_entity", "change_entity", "remove_entity"):
        for entity in (world.a, world.b, world.unknown):
            r = client.put(f"{base}/{action}", headers=a, json={"entity_id": entity.entity_id})
            assert r.status_code in (403, 404), (action, entity.name, r.text)
            if entity is world.a:
                assert r.status_code == 404, (action, r.text)
    assert client.get(f"{base}/parts", headers=a).status_code == 404
    r = client.post(f"{base}/parts", headers=a, json={"part_id": world.parts["free"].part_id})
    assert r.status_code == 404, r.text
    for part in ("pb", "pu0", "free"):
        r = client.delete(f"{base}/parts/{world.parts[part].part_id}", headers=a)
        assert r.status_code == 404, (part, r.text)
    assert _row_counts(factory) == before
    # the global user reaches it
    assert client.get(f"{base}/parts", headers=world.users["global"]).status_code == 200


def test_a_part_on_another_scope_unit_cannot_be_taken(
    client: TestClient, world: World, factory: Factory
) -> None:
    a = world.users["A"]
    r = client.post(
        f"/v1/products/{world.imei('a1')}/parts",
        headers=a,
        json={"part_id": world.parts["pb"].part_id},
    )
    # answered as a part that does not exist: the answer does not tell whose it is
    assert r.status_code == 400, r.text
    assert r.json()["message"] == f"Invalid part_id: no part {world.parts['pb'].part_id}"
    assert len(_part_rows(factory, world.parts["pb"].part_id)) == 1


def test_entity_users_move_units_into_their_own_entity_only(
    client: TestClient, world: World, factory: Factory
) -> None:
    a = world.users["A"]
    imei = world.imei("a1")
    r = client.put(
        f"/v1/products/{imei}/change_entity", headers=a, json={"entity_id": world.b.entity_id}
    )
    assert r.status_code == 403, r.text
    assert len(_link_rows(factory, imei)) == 1
    # giving a unit away (to nobody) is theirs to do; then it is out of their reach
    r = client.put(
        f"/v1/products/{imei}/remove_entity", headers=a, json={"entity_id": world.a.entity_id}
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["entities"] == ["Unknown entity"]
    assert client.get(f"/v1/products/{imei}", headers=a).status_code == 404
    assert client.get(f"/v1/products/{imei}", headers=world.users["unknown"]).status_code == 200


def test_entity_users_see_their_unit_parts(client: TestClient, world: World) -> None:
    r = client.get(f"/v1/products/{world.imei('a1')}/parts", headers=world.users["A"])
    assert r.status_code == 200
    assert part_names(world, (p["part_id"] for p in r.json()["data"])) == {"pa", "pm"}
    assert (
        client.get(f"/v1/products/{world.imei('a1')}/parts", headers=world.users["B"]).status_code
        == 404
    )


# -- the unknown entity ---------------------------------------------------------------------------


def test_units_without_a_current_entity_fall_back_to_the_unknown_entity(
    client: TestClient, world: World, factory: Factory
) -> None:
    one, g = world.users["unknown"], world.users["global"]
    assert names_of(world, (r["product_imei"] for r in listing(client, one, "products"))) == {
        "u0",
        "u1",
        "ur",
    }
    # a unit whose link is removed falls back to entity 1
    r = client.put(
        f"/v1/products/{world.imei('a2')}/remove_entity",
        headers=g,
        json={"entity_id": world.a.entity_id},
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"product_imei": world.imei("a2"), "entities": ["Unknown entity"]}
    assert client.get(f"/v1/products/{world.imei('a2')}", headers=one).status_code == 200
    assert (
        client.get(f"/v1/products/{world.imei('a2')}", headers=world.users["A"]).status_code == 404
    )
    # assigned to a real entity, it leaves entity 1
    r = client.put(
        f"/v1/products/{world.imei('u0')}/assign_entity",
        headers=g,
        json={"entity_id": world.b.entity_id},
    )
    assert r.status_code == 200, r.text
    assert client.get(f"/v1/products/{world.imei('u0')}", headers=one).status_code == 404
    assert (
        client.get(f"/v1/products/{world.imei('u0')}", headers=world.users["B"]).status_code == 200
    )
    # and the unknown entity user sees the parts of its units only
    parts = listing(client, one, "parts")
    assert part_names(world, (p["part_id"] for p in parts)) == set()  # pu0 went with u0
    b_parts = listing(client, world.users["B"], "parts")
    assert part_names(world, (p["part_id"] for p in b_parts)) == {"pb", "px", "pu0"}


# -- history kept by the actions ------------------------------------------------------------------


def test_entity_actions_keep_history(client: TestClient, factory: Factory) -> None:
    unknown = factory.entity("Unknown entity")
    assert unknown.entity_id == UNKNOWN_ENTITY_ID
    a, b = factory.entity("Entity A"), factory.entity("Entity B")
    admin = factory.headers("ADMIN")
    admin_name = _username(factory, admin)
    unit = factory.product()
    base = f"/v1/products/{unit.product_imei}"

    r = client.put(f"{base}/assign_entity", headers=admin, json={"entity_id": a.entity_id})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "success"
    assert r.json()["data"] == {"product_imei": unit.product_imei, "entities": ["Entity A"]}
    (first,) = _link_rows(factory, unit.product_imei)
    assert first.entity_id == a.entity_id and first.date_removed is None
    assert first.created_by == admin_name
    assert abs(first.date_added - utcnow()) < timedelta(seconds=30)

    # assigning again is a no-op; assigning elsewhere is a conflict (use change_entity)
    assert (
        client.put(
            f"{base}/assign_entity", headers=admin, json={"entity_id": a.entity_id}
        ).status_code
        == 200
    )
    assert (
        client.put(
            f"{base}/assign_entity", headers=admin, json={"entity_id": b.entity_id}
        ).status_code
        == 409
    )
    assert len(_link_rows(factory, unit.product_imei)) == 1

    r = client.put(f"{base}/change_entity", headers=admin, json={"entity_id": b.entity_id})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["entities"] == ["Entity B"]
    old, new = _link_rows(factory, unit.product_imei)
    assert old.entity_id == a.entity_id and old.date_removed is not None
    assert old.modified_by == admin_name
    assert new.entity_id == b.entity_id and new.date_removed is None
    assert old.date_added <= old.date_removed <= new.date_added

    # removing from an entity the unit is not in is refused
    r = client.put(f"{base}/remove_entity", headers=admin, json={"entity_id": a.entity_id})
    assert r.status_code == 400, r.text
    r = client.put(f"{base}/remove_entity", headers=admin, json={"entity_id": b.entity_id})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["entities"] == [unknown.name]
    rows = _link_rows(factory, unit.product_imei)
    assert len(rows) == 2 and all(row.date_removed is not None for row in rows)

    # change_entity on a unit without entity opens a link
    r = client.put(f"{base}/change_entity", headers=admin, json={"entity_id": a.entity_id})
    assert r.status_code == 200, r.text
    rows = _link_rows(factory, unit.product_imei)
    assert [(x.entity_id, x.date_removed is None) for x in rows] == [
        (a.entity_id, False), (b.entity_id, False), (a.entity_id, True),
    ]  # fmt: skip
    # the history is readable through the API, oldest first
    mine = {"filters": [{"name": "product_imei", "op": "==", "val": unit.product_imei}]}
    listed = listing(client, admin, "product_entity_linker", mine)
    assert [x["entity_id"] for x in listed] == [a.entity_id, b.entity_id, a.entity_id]

    # an unknown entity id is a 400, an unknown unit a 404
    assert (
        client.put(f"{base}/change_entity", headers=admin, json={"entity_id": 999}).status_code
        == 400
    )
    assert (
        client.put(
            "/v1/products/123/assign_entity", headers=admin, json={"entity_id": a.entity_id}
        ).status_code
        == 404
    )


def test_part_actions_keep_history_and_one_unit_at_a_time(
    client: TestClient, factory: Factory
) -> None:
    tech = factory.headers("TECHNICAL")
    one, two = factory.product(), factory.product()
    part = factory.part()
    pid = part.part_id

    r = client.post(f"/v1/products/{one.product_imei}/parts", headers=tech, json={"part_id": pid})
    assert r.status_code == 201, r.text
    assert [p["part_id"] for p in r.json()["data"]] == [pid]
    (first,) = _part_rows(factory, pid)
    assert first.product_imei == one.product_imei and first.date_removed is None

    # on one unit at a time
    r = client.post(f"/v1/products/{two.product_imei}/parts", headers=tech, json={"part_id": pid})
    assert r.status_code == 409, r.text
    r = client.post(f"/v1/products/{one.product_imei}/parts", headers=tech, json={"part_id": pid})
    assert r.status_code == 409, r.text
    assert len(_part_rows(factory, pid)) == 1
    # detaching from the wrong unit is a 404
    assert (
        client.delete(f"/v1/products/{two.product_imei}/parts/{pid}", headers=tech).status_code
        == 404
    )

    r = client.delete(f"/v1/products/{one.product_imei}/parts/{pid}", headers=tech)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == []
    r = client.post(f"/v1/products/{two.product_imei}/parts", headers=tech, json={"part_id": pid})
    assert r.status_code == 201, r.text
    old, new = _part_rows(factory, pid)
    assert old.product_imei == one.product_imei and old.date_removed is not None
    assert new.product_imei == two.product_imei and new.date_removed is None
    assert old.date_added <= old.date_removed <= new.date_added
    assert (
        client.delete(f"/v1/products/{one.product_imei}/parts/{pid}", headers=tech).status_code
        == 404
    )

    r = client.get(f"/v1/products/{two.product_imei}/parts", headers=tech)
    assert [p["part_id"] for p in r.json()["data"]] == [pid]
    assert r.json()["data"][0]["part_type"]["part_type_id"] == part.part_type_id
    assert client.get(f"/v1/products/{one.product_imei}/parts", headers=tech).json()["data"] == []
    # the part's current unit is the new one
    on_two = {"filters": [{"name": "product__product_imei", "op": "==", "val": two.product_imei}]}
    got = listing(client, tech, "parts", on_two)
    assert [p["part_id"] for p in got] == [pid]
    # an unknown part
    r = client.post(f"/v1/products/{one.product_imei}/parts", headers=tech, json={"part_id": 99999})
    assert r.status_code == 400, r.text


def _username(factory: Factory, headers: Headers) -> str:
    token = headers["Authorization"].removeprefix("Token token=")
    with factory.sessions() as session:
        return session.scalars(
            select(User.username)
            .join(Token, Token.user_id == User.user_id)
            .where(Token.token_hash == hash_token(token))
        ).one()


def test_parameter_endpoints_of_units_outside_scope_are_404(
    client: TestClient, world: World, factory: Factory
) -> None:
    """Parameter history, diffs, notes and setting values: scope-checked like everything else."""
    ptype = factory.parameter_type()
    for who, headers in world.users.items():
        for name, unit in world.units.items():
            base = f"/v1/products/{unit.product_imei}/parameters"
            visible = name in VISIBLE_UNITS[who]
            for url, params in (
                (f"{base}/history", {}),
                (f"{base}/history", {"date": "2020-01-01"}),
                (f"{base}/diff", {"from": "2020-01-01", "to": "2030-01-01"}),
                (f"{base}/notes", {}),
            ):
                r = client.get(url, headers=headers, params=params)
                assert (r.status_code == 200) is visible and r.status_code in (200, 404), (
                    who, name, url, r.text,
                )  # fmt: skip
            if not visible:
                body = {"parameter_type_id": ptype.parameter_type_id, "value": 1}
                r = client.post(base, headers=headers, json=body)
                assert r.status_code == 404, (who, name, r.text)
        for name, part in world.parts.items():
            if name in VISIBLE_PARTS[who]:
                continue
            body = {"parameter_type_id": ptype.parameter_type_id, "value": 1}
            r = client.post(f"/v1/parts/{part.part_id}/parameters", headers=headers, json=body)
            assert r.status_code == 404, (who, name, r.text)
    # nothing was set
    g = world.users["global"]
    pending = {"filters": [{"name": "status", "op": "==", "val": "pending"}]}
    assert listing(client, g, "product_parameters", pending) == []
    assert listing(client, g, "part_parameters", pending) == []


# -- users: scope binds every permission level, SYSTEM included --------------------------------


def _user_id(factory: Factory, headers: Headers) -> int:
    with factory.sessions() as session:
        return session.scalars(
            select(User.user_id).where(User.username == _username(factory, headers))
        ).one()


def _user_row(factory: Factory, user_id: int) -> tuple[str, str, int | None]:
    with factory.sessions() as session:
        user = session.get(User, user_id)
        assert user is not None
        return user.permissions, user.user_product_visibility, user.entity_id


def test_entity_users_see_only_their_entitys_users(
    client: TestClient, world: World, factory: Factory
) -> None:
    reader = factory.user("OVERVIEW", "ENTITY", world.a)
    global_in_a = factory.user("OVERVIEW", "GLOBAL", world.a)  # GLOBAL: not A's to manage
    ids = {who: _user_id(factory, headers) for who, headers in world.users.items()}
    a = world.users["A"]
    assert sorted(u["user_id"] for u in listing(client, a, "users")) == sorted(
        [ids["A"], reader.user_id]
    )
    assert {u["user_id"] for u in listing(client, world.users["B"], "users")} == {ids["B"]}
    everyone = {u["user_id"] for u in listing(client, world.users["global"], "users")}
    assert everyone == {*ids.values(), reader.user_id, global_in_a.user_id}
    for other in (ids["B"], ids["global"], ids["unknown"], global_in_a.user_id):
        r = client.get(f"/v1/users/{other}", headers=a)
        assert r.status_code == 404, r.text
        assert r.json() == {"status": "error", "message": f"No users with user_id {other}"}
    assert client.get(f"/v1/users/{reader.user_id}", headers=a).status_code == 200
    # nor through a filter on the relation
    q = {"filters": [{"name": "entity__name", "op": "==", "val": "Entity B"}]}
    assert listing(client, a, "users", q) == []
    assert [u["user_id"] for u in listing(client, world.users["global"], "users", q)] == [ids["B"]]


def test_an_entity_user_cannot_widen_or_move_itself(
    client: TestClient, world: World, factory: Factory
) -> None:
    a = world.users["A"]
    me = _user_id(factory, a)
    before = _user_row(factory, me)
    for body, field in (
        ({"user_product_visibility": "GLOBAL"}, "user_product_visibility GLOBAL"),
        ({"user_product_visibility": "GLOBAL", "entity_id": None}, "user_product_visibility"),
        ({"entity_id": world.b.entity_id}, f"entity_id {world.b.entity_id}"),
        ({"entity_id": None}, "entity_id"),
    ):
        r = client.put(f"/v1/users/{me}", headers=a, json=body)
        assert r.status_code in (400, 403), (body, r.text)
        assert field in r.json()["message"], (body, r.text)
    assert _user_row(factory, me) == before
    # what stays within its scope it may change
    r = client.put(f"/v1/users/{me}", headers=a, json={"display_name": "Me"})
    assert r.status_code == 200, r.text


def test_an_entity_user_cannot_widen_or_move_another_user(
    client: TestClient, world: World, factory: Factory
) -> None:
    a = world.users["A"]
    colleague = factory.user("TECHNICAL", "ENTITY", world.a)
    r = client.put(
        f"/v1/users/{colleague.user_id}", headers=a, json={"user_product_visibility": "GLOBAL"}
    )
    assert r.status_code == 403, r.text
    assert r.json() == {
        "status": "error",
        "message": "Invalid user_product_visibility GLOBAL: an ENTITY user cannot widen a scope",
    }
    r = client.put(
        f"/v1/users/{colleague.user_id}", headers=a, json={"entity_id": world.b.entity_id}
    )
    assert r.status_code == 403, r.text
    assert r.json() == {
        "status": "error",
        "message": f"Invalid entity_id {world.b.entity_id}: an ENTITY user manages the users "
        f"of its own entity ({world.a.entity_id}) only",
    }
    assert _user_row(factory, colleague.user_id) == ("TECHNICAL", "ENTITY", world.a.entity_id)
    r = client.put(f"/v1/users/{colleague.user_id}", headers=a, json={"permissions": "SYSTEM"})
    assert r.status_code == 200, r.text  # no more than A holds
    # the GLOBAL SYSTEM user manages everyone
    g = world.users["global"]
    r = client.put(
        f"/v1/users/{colleague.user_id}",
        headers=g,
        json={"user_product_visibility": "GLOBAL", "entity_id": None},
    )
    assert r.status_code == 200, r.text
    assert _user_row(factory, colleague.user_id) == ("SYSTEM", "GLOBAL", None)


def test_an_entity_user_cannot_touch_users_outside_its_scope(
    client: TestClient, world: World, factory: Factory
) -> None:
    a = world.users["A"]
    targets = [_user_id(factory, world.users[w]) for w in ("B", "global", "unknown")]
    targets.append(factory.user("OVERVIEW", "GLOBAL", world.a).user_id)
    for target in targets:
        before = _user_row(factory, target)
        for method, body in (("PUT", {"display_name": "x"}), ("PUT", {"password": "p" * 12})):
            r = client.request(method, f"/v1/users/{target}", headers=a, json=body)
            assert r.status_code == 404, r.text
        assert client.delete(f"/v1/users/{target}", headers=a).status_code == 404
        assert _user_row(factory, target) == before


def test_an_entity_user_creates_users_of_its_own_entity_only(
    client: TestClient, world: World, factory: Factory
) -> None:
    a = world.users["A"]

    def create(n: int, **body: Any) -> Any:
        base = {
            "username": f"made-{n}@example.com",
            "password": "long enough",
            "permissions": "ADMIN",
        }
        return client.post("/v1/users", headers=a, json=base | body)

    refused = (
        {"user_product_visibility": "GLOBAL"},
        {"user_product_visibility": "GLOBAL", "permissions": "SYSTEM"},
        {"user_product_visibility": "ENTITY", "entity_id": world.b.entity_id},
        {"entity_id": world.b.entity_id},
    )
    for n, body in enumerate(refused):
        r = create(n, **body)
        assert r.status_code == 403, (body, r.text)
    with factory.sessions() as session:
        made = session.scalars(select(User).where(User.username.like("made-%"))).all()
    assert made == []
    # without a scope: the creator's own
    r = create(10)
    assert r.status_code == 201, r.text
    assert (r.json()["user_product_visibility"], r.json()["entity_id"]) == (
        "ENTITY",
        world.a.entity_id,
    )
    r = create(
        11, user_product_visibility="ENTITY", entity_id=world.a.entity_id, permissions="SYSTEM"
    )
    assert r.status_code == 201, r.text
    # and the GLOBAL SYSTEM user still makes GLOBAL users
    r = client.post(
        "/v1/users",
        headers=world.users["global"],
        json={"username": "made-g@example.com", "password": "long enough", "permissions": "SYSTEM"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["user_product_visibility"] == "GLOBAL"
