"""The query language of every list endpoint (SPEC §3), through HTTP.

Each test states the exact page (or the exact error body) it expects. Expected objects are taken
from the GET-one endpoint, so a list page is compared field by field with what the API says the
rows are.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import anyio
import jsonschema
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from solarfleet.fleet.models import PartProductLinker, Product
from tests.factories import Factory

Headers = dict[str, str]

# IMEIs of the five units of the `fleet` fixture.
P1, P2, P3, P4, P5 = (f"10000000000000{i}" for i in range(1, 6))
ALL = [P1, P2, P3, P4, P5]


# -- helpers ---------------------------------------------------------------------------------


def q_param(q: Any) -> str:
    return q if isinstance(q, str) else orjson.dumps(q).decode()


def get(client: TestClient, headers: Headers, resource: str, q: Any = None, **params: Any) -> Any:
    if q is not None:
        params["q"] = q_param(q)
    return client.get(f"/v1/{resource}", headers=headers, params=params)


def page(
    objects: list[dict[str, Any]],
    *,
    num_results: int | None = None,
    page: int = 1,
    per_page: int = 10,
) -> dict[str, Any]:
    """The exact list body for a page holding ``objects``."""
    total = len(objects) if num_results is None else num_results
    return {
        "num_results": total,
        "objects": objects,
        "page": page,
        "total_pages": math.ceil(total / per_page),
    }


def assert_error(response: Any, status: int, message: str, *, prefix: bool = False) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "message"}
    assert body["status"] == "error"
    if prefix:
        assert body["message"].startswith(message), body["message"]
    else:
        assert body["message"] == message


@dataclass
class Fleet:
    """Five units, three product types, parts; ``rows`` are the API's own view of each row."""

    client: TestClient
    headers: Headers
    units: dict[str, dict[str, Any]]
    parts: dict[str, dict[str, Any]]
    types: dict[str, dict[str, Any]]

    def list(self, resource: str = "products", q: Any = None, **params: Any) -> Any:
        return get(self.client, self.headers, resource, q, **params)

    def imeis(self, q: Any, **params: Any) -> list[str]:
        r = self.list("products", q, **params)
        assert r.status_code == 200, r.text
        return [o["product_imei"] for o in r.json()["objects"]]

    def expect(self, q: Any, imeis: list[str], **params: Any) -> None:
        """The products page for ``q`` is exactly these units, in this order."""
        r = self.list("products", q, **params)
        assert r.status_code == 200, r.text
        assert r.json() == page([self.units[i] for i in imeis])


@pytest.fixture
def fleet(client: TestClient, factory: Factory, system: Headers) -> Fleet:
    alpha = factory.product_type(name="Alpha", erp_code="A1")
    beta = factory.product_type(name="beta")
    gamma = factory.product_type(name="Gamma", erp_code="G7")
    specs = [
        (P1, alpha, "SN-Apple", 1.5, 2.5, True, datetime(2020, 1, 1, 12, 0, 0)),
        (P2, alpha, "sn-apricot", 10.0, -5.0, False, datetime(2020, 6, 1, 0, 0, 0)),
        (P3, beta, "SN-Banana", None, None, None, datetime(2021, 1, 1, 0, 0, 0)),
        (P4, gamma, None, -3.0, 7.0, True, datetime(2021, 6, 15, 8, 30, 0)),
        (P5, beta, "SN_cherry", 45.0, 45.0, False, datetime(2022, 3, 1, 0, 0, 0)),
    ]
    units = {}
    for imei, ptype, serial, lat, lon, flag, created in specs:
        units[imei] = factory.product(
            imei,
            product_type=ptype,
            serial_number=serial,
            gps_lat=lat,
            gps_lon=lon,
            current_enable_flag=flag,
            created_at=created,
        )
    battery = factory.part_type(name="battery")
    lamp = factory.part_type(name="lamp")
    parts = {
        "PT-A": factory.part(
            part_type=battery, on=units[P1], serial_number="PT-A", manufacturer="Acme"
        ),
        "PT-B": factory.part(
            part_type=lamp, on=units[P1], serial_number="PT-B", manufacturer="Lumen"
        ),
        "PT-C": factory.part(
            part_type=battery, on=units[P2], serial_number="PT-C", manufacturer="Volta"
        ),
        "PT-D": factory.part(part_type=lamp, serial_number="PT-D", manufacturer=None),
        "PT-E": factory.part(part_type=battery, serial_number="PT-E", manufacturer="Acme"),
    }
    with factory.sessions() as session:  # PT-E was on P4 and has been taken off
        session.add(
            PartProductLinker(
                part_id=parts["PT-E"].part_id,
                product_imei=P4,
                date_added=datetime(2021, 7, 1),
                date_removed=datetime(2021, 8, 1),
            )
        )
        session.commit()

    def one(path: str) -> dict[str, Any]:
        r = client.get(path, headers=system)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    return Fleet(
        client=client,
        headers=system,
        units={i: one(f"/v1/products/{i}") for i in ALL},
        parts={s: one(f"/v1/parts/{p.part_id}") for s, p in parts.items()},
        types={t.name: one(f"/v1/product_types/{t.product_type_id}") for t in (alpha, beta, gamma)},
    )


def flt(name: str, op: str, val: Any = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "op": op, **kw}
    if val is not None:
        out["val"] = val
    return out


# -- 1. every operator and every alias ---------------------------------------------------------

ALIASES = {
    "==": ["==", "eq", "equals", "equals_to", "equal_to"],
    "!=": ["!=", "ne", "neq", "does_not_equal", "not_equal_to"],
    ">": [">", "gt"],
    "<": ["<", "lt"],
    ">=": [">=", "ge", "gte", "geq"],
    "<=": ["<=", "le", "lte", "leq"],
}

# gps_lat: P1 1.5, P2 10.0, P3 null, P4 -3.0, P5 45.0 (null never matches a comparison)
BY_GPS_LAT_1_5 = {
    "==": [P1],
    "!=": [P2, P4, P5],
    ">": [P2, P5],
    "<": [P4],
    ">=": [P1, P2, P5],
    "<=": [P1, P4],
}

COMPARISON_CASES = [
    pytest.param(alias, BY_GPS_LAT_1_5[canonical], id=alias)
    for canonical, aliases in ALIASES.items()
    for alias in aliases
]


def test_every_alias_is_listed() -> None:
    """The SPEC table, as one list: the parametrized tests below cover each of these."""
    spec_ops = {
        "==", "eq", "equals", "equals_to", "equal_to",
        "!=", "ne", "neq", "does_not_equal", "not_equal_to",
        ">", "gt", "<", "lt", ">=", "ge", "gte", "geq", "<=", "le", "lte", "leq",
        "in", "not_in", "is_null", "is_not_null", "like", "ilike", "has", "any",
    }  # fmt: skip
    covered = {a for aliases in ALIASES.values() for a in aliases} | {
        c.values[0]
        for c in OTHER_OP_CASES  # type: ignore[attr-defined]
    }
    assert covered == spec_ops


@pytest.mark.parametrize(("op", "expected"), COMPARISON_CASES)
def test_comparison_operator(fleet: Fleet, op: str, expected: list[str]) -> None:
    fleet.expect({"filters": [flt("gps_lat", op, 1.5)]}, expected)


OTHER_OP_CASES = [
    pytest.param("in", flt("gps_lat", "in", [1.5, 45, "10"]), [P1, P2, P5], id="in"),
    pytest.param("not_in", flt("gps_lat", "not_in", [1.5, 45]), [P2, P4], id="not_in"),
    pytest.param("is_null", flt("gps_lat", "is_null"), [P3], id="is_null"),
    pytest.param("is_not_null", flt("gps_lat", "is_not_null"), [P1, P2, P4, P5], id="is_not_null"),
    pytest.param("like", flt("serial_number", "like", "SN-%"), [P1, P3], id="like"),
    pytest.param("ilike", flt("serial_number", "ilike", "sn-%"), [P1, P2, P3], id="ilike"),
    pytest.param(
        "has",
        flt("product_type", "has", {"name": "name", "op": "==", "val": "Alpha"}),
        [P1, P2],
        id="has",
    ),
    pytest.param(
        "any",
        flt("parts", "any", {"name": "manufacturer", "op": "==", "val": "Acme"}),
        [P1],
        id="any",
    ),
]


@pytest.mark.parametrize(("op", "filt", "expected"), OTHER_OP_CASES)
def test_other_operator(fleet: Fleet, op: str, filt: dict[str, Any], expected: list[str]) -> None:
    assert filt["op"] == op
    fleet.expect({"filters": [filt]}, expected)


@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        (flt("serial_number", "like", "SN-%"), [P1, P3]),
        (flt("serial_number", "like", "sn-%"), [P2]),
        (flt("serial_number", "like", "%apple"), []),
        (flt("serial_number", "like", "%Apple"), [P1]),
        (flt("serial_number", "like", "SN_%"), [P1, P3, P5]),  # _ is any one character
        (flt("serial_number", "like", "SN-A____"), [P1]),
        (flt("serial_number", "like", "SN-A___"), []),
        (flt("serial_number", "like", "%"), [P1, P2, P3, P5]),  # null never matches
        (flt("serial_number", "ilike", "%APPLE"), [P1]),
        (flt("serial_number", "ilike", "SN-A%"), [P1, P2]),
        (flt("serial_number", "ilike", "sn_cherry"), [P5]),
        (flt("serial_number", "ilike", "%"), [P1, P2, P3, P5]),
        (flt("serial_number", "like", "SN-APPLE"), []),
        (flt("serial_number", "ilike", "sn-apple"), [P1]),
    ],
    ids=lambda v: v if isinstance(v, list) else f"{v['op']} {v['val']}",
)
def test_like_is_case_sensitive_and_ilike_is_not(
    fleet: Fleet, filt: dict[str, Any], expected: list[str]
) -> None:
    fleet.expect({"filters": [filt]}, expected)


@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        # strings: compared as text; an integer value is taken as its text
        (flt("serial_number", "==", "SN-Apple"), [P1]),
        (flt("serial_number", "!=", "SN-Apple"), [P2, P3, P5]),
        (flt("serial_number", "<", "SN-B"), [P1]),
        (flt("serial_number", "in", ["SN-Apple", "SN_cherry", "nope"]), [P1, P5]),
        (flt("product_imei", "==", int(P4)), [P4]),
        # booleans: JSON booleans, 0/1 and their usual spellings
        (flt("current_enable_flag", "==", True), [P1, P4]),
        (flt("current_enable_flag", "==", "false"), [P2, P5]),
        (flt("current_enable_flag", "!=", 1), [P2, P5]),
        (flt("current_enable_flag", "==", "YES"), [P1, P4]),
        (flt("current_enable_flag", "is_null"), [P3]),
        # floats: integers, numeric strings
        (flt("gps_lon", ">=", 7), [P4, P5]),
        (flt("gps_lon", "<", "0"), [P2]),
        (flt("gps_lon", "==", " 45.0 "), [P5]),
        # datetimes: ISO-8601 with or without zone, dates, epoch milliseconds
        (flt("created_at", "==", "2020-01-01T12:00:00"), [P1]),
        (flt("created_at", "==", "2020-01-01T13:00:00+01:00"), [P1]),
        (flt("created_at", "==", "2020-01-01T12:00:00Z"), [P1]),
        (flt("created_at", "==", 1577880000000), [P1]),
        (flt("created_at", "==", "1577880000000"), [P1]),
        (flt("created_at", ">=", "2021-06-15"), [P4, P5]),
        (flt("created_at", "<", "2021-01-01"), [P1, P2]),
        (flt("created_at", "in", ["2021-01-01", 1577880000000]), [P1, P3]),
    ],
    ids=lambda v: v if isinstance(v, list) else f"{v['name']} {v['op']} {v.get('val')}",
)
def test_values_are_coerced_to_the_column_type(
    fleet: Fleet, filt: dict[str, Any], expected: list[str]
) -> None:
    fleet.expect({"filters": [filt]}, expected)


def test_in_and_not_in_with_an_empty_list(fleet: Fleet) -> None:
    fleet.expect({"filters": [flt("gps_lat", "in", [])]}, [])
    fleet.expect({"filters": [flt("gps_lat", "not_in", [])]}, ALL)


def test_is_null_ignores_val(fleet: Fleet) -> None:
    fleet.expect({"filters": [flt("gps_lat", "is_null", "whatever")]}, [P3])
    fleet.expect({"filters": [flt("gps_lat", "is_not_null", 12)]}, [P1, P2, P4, P5])


def test_no_q_and_empty_q_list_everything(fleet: Fleet) -> None:
    fleet.expect(None, ALL)
    fleet.expect("", ALL)
    fleet.expect({}, ALL)
    fleet.expect({"filters": []}, ALL)


# -- 2. relations, boolean formulas, has/any, field comparisons --------------------------------


@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        (flt("product_type__name", "==", "Alpha"), [P1, P2]),
        (flt("product_type__name", "like", "%ta"), [P3, P5]),
        (flt("product_type__name", "ilike", "g%"), [P4]),
        (flt("product_type__name", "!=", "Alpha"), [P3, P4, P5]),
        (flt("product_type__erp_code", "is_null"), [P3, P5]),
        (flt("product_type__name", "in", ["beta", "Gamma"]), [P3, P4, P5]),
        (flt("parts__serial_number", "==", "PT-C"), [P2]),
        # only parts now on a unit: PT-E was taken off P4
        (flt("parts__serial_number", "==", "PT-E"), []),
        (flt("parts__serial_number", "!=", "PT-A"), [P1, P2]),  # some part that is not PT-A
        (flt("parts__manufacturer", "is_null"), []),
        (flt("parts__part_type__name", "==", "battery"), [P1, P2]),
        (flt("parts__part_type__name", "==", "lamp"), [P1]),
        # the history keeps the link of PT-E
        (flt("part_links__date_removed", "is_not_null"), [P4]),
        (flt("part_links__date_removed", ">", "2021-07-15"), [P4]),
    ],
    ids=lambda v: v if isinstance(v, list) else f"{v['name']} {v['op']} {v.get('val')}",
)
def test_relation_field_filters(fleet: Fleet, filt: dict[str, Any], expected: list[str]) -> None:
    fleet.expect({"filters": [filt]}, expected)


def test_relation_filters_from_other_resources(fleet: Fleet) -> None:
    r = fleet.list("parts", {"filters": [flt("product__serial_number", "==", "SN-Apple")]})
    assert r.status_code == 200, r.text
    assert r.json() == page([fleet.parts["PT-A"], fleet.parts["PT-B"]])

    r = fleet.list("parts", {"filters": [flt("part_type__name", "==", "battery")]})
    assert r.json() == page([fleet.parts[s] for s in ("PT-A", "PT-C", "PT-E")])

    # a relation itself, as the original: no related row at all (free parts), or some
    r = fleet.list("parts", {"filters": [flt("product", "is_null")]})
    assert r.json() == page([fleet.parts["PT-D"], fleet.parts["PT-E"]])
    r = fleet.list("parts", {"filters": [flt("product", "is_not_null")]})
    assert r.json() == page([fleet.parts[s] for s in ("PT-A", "PT-B", "PT-C")])
    r = fleet.list("parts", {"filters": [flt("product_links", "is_null")]})
    assert r.json() == page([fleet.parts["PT-D"]])  # PT-E has a past link

    r = fleet.list("product_types", {"filters": [flt("products__gps_lat", ">", 5)]})
    assert r.status_code == 200, r.text
    assert [o["name"] for o in r.json()["objects"]] == ["Alpha", "beta"]

    r = fleet.list("part_types", {"filters": [flt("parts__product__product_imei", "==", P2)]})
    assert [o["name"] for o in r.json()["objects"]] == ["battery"]


def test_boolean_formulas(fleet: Fleet) -> None:
    fleet.expect(
        {
            "filters": [
                {
                    "or": [
                        flt("gps_lat", "<", 0),
                        {
                            "and": [
                                flt("current_enable_flag", "==", False),
                                flt("gps_lon", ">", 0),
                            ]
                        },
                    ]
                }
            ]
        },
        [P4, P5],
    )
    # a top-level list is an AND
    fleet.expect(
        {"filters": [flt("current_enable_flag", "==", True), flt("gps_lat", ">", 0)]}, [P1]
    )
    fleet.expect(
        {"filters": [{"and": [flt("current_enable_flag", "==", True), flt("gps_lat", ">", 0)]}]},
        [P1],
    )
    fleet.expect(
        {"filters": [{"or": [flt("serial_number", "is_null"), flt("gps_lat", "is_null")]}]},
        [P3, P4],
    )
    fleet.expect(
        {
            "filters": [
                {"or": [{"or": [{"and": [flt("gps_lat", "==", 10)]}]}, flt("gps_lat", "==", 45)]},
                {
                    "or": [
                        flt("product_type__name", "==", "beta"),
                        flt("parts__serial_number", "==", "PT-C"),
                    ]
                },
            ]
        },
        [P2, P5],
    )


@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        # nested filter objects
        (flt("product_type", "has", {"name": "erp_code", "op": "==", "val": "G7"}), [P4]),
        (flt("parts", "any", {"name": "part_type__name", "op": "==", "val": "lamp"}), [P1]),
        (
            flt(
                "parts",
                "any",
                {
                    "or": [
                        {"name": "serial_number", "op": "==", "val": "PT-C"},
                        {"name": "manufacturer", "op": "==", "val": "Lumen"},
                    ]
                },
            ),
            [P1, P2],
        ),
        (
            flt(
                "parts",
                "any",
                [
                    {"name": "manufacturer", "op": "like", "val": "%a"},
                    {"name": "part_type__name", "op": "==", "val": "battery"},
                ],
            ),
            [P2],
        ),
        (
            flt(
                "parts",
                "any",
                {
                    "name": "part_type",
                    "op": "has",
                    "val": {"name": "name", "op": "==", "val": "battery"},
                },
            ),
            [P1, P2],
        ),
        (flt("parts__part_type", "has", {"name": "name", "op": "==", "val": "lamp"}), [P1]),
        (flt("entity_links", "any", {"name": "date_removed", "op": "is_null"}), []),
        (flt("part_links", "any", {"name": "date_removed", "op": "is_null"}), [P1, P2]),
        # the original's bare-val form: some related row has field == val
        (flt("parts__serial_number", "any", "PT-C"), [P2]),
        (flt("parts__manufacturer", "any", "Acme"), [P1]),
        (flt("parts__part_type__name", "any", "lamp"), [P1]),
        (flt("product_type__name", "has", "beta"), [P3, P5]),
        (flt("product_type__name", "has", "nope"), []),
    ],
    ids=lambda v: v if isinstance(v, list) else f"{v['name']} {v['op']}",
)
def test_has_and_any(fleet: Fleet, filt: dict[str, Any], expected: list[str]) -> None:
    fleet.expect({"filters": [filt]}, expected)


def test_has_from_parts_to_their_unit(fleet: Fleet) -> None:
    r = fleet.list(
        "parts", {"filters": [flt("product", "has", {"name": "gps_lat", "op": ">", "val": 5})]}
    )
    assert r.json() == page([fleet.parts["PT-C"]])
    r = fleet.list("parts", {"filters": [flt("product__current_enable_flag", "has", True)]})
    assert r.json() == page([fleet.parts["PT-A"], fleet.parts["PT-B"]])


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("<", [P1, P4]),  # P1 1.5<2.5, P4 -3<7; P3 is null on both sides
        ("lt", [P1, P4]),
        ("==", [P5]),
        ("!=", [P1, P2, P4]),
        (">=", [P2, P5]),
        (">", [P2]),
        ("<=", [P1, P4, P5]),
    ],
)
def test_field_comparisons(fleet: Fleet, op: str, expected: list[str]) -> None:
    fleet.expect({"filters": [{"name": "gps_lat", "op": op, "field": "gps_lon"}]}, expected)


def test_field_comparisons_through_a_relation(fleet: Fleet) -> None:
    # product_types whose erp_code is not null and differs from the name
    r = fleet.list(
        "product_types", {"filters": [{"name": "erp_code", "op": "!=", "field": "name"}]}
    )
    assert [o["name"] for o in r.json()["objects"]] == ["Alpha", "Gamma"]
    # units whose product type's name equals its own name (never): compared on the related row
    fleet.expect({"filters": [{"name": "product_type__erp_code", "op": "==", "field": "name"}]}, [])
    fleet.expect(
        {"filters": [{"name": "product_type__erp_code", "op": "!=", "field": "name"}]}, [P1, P2, P4]
    )


# -- order_by, group_by, limit, offset, single ---------------------------------------------------


def test_order_by(fleet: Fleet) -> None:
    fleet.expect(
        {
            "order_by": [{"field": "gps_lon", "direction": "asc"}],
            "filters": [flt("gps_lon", "is_not_null")],
        },
        [P2, P1, P4, P5],
    )
    fleet.expect(
        {"order_by": [{"field": "gps_lon"}], "filters": [flt("gps_lon", "is_not_null")]},
        [P2, P1, P4, P5],
    )
    fleet.expect(
        {
            "order_by": [{"field": "gps_lon", "direction": "desc"}],
            "filters": [flt("gps_lon", "is_not_null")],
        },
        [P5, P4, P1, P2],
    )
    # the primary key breaks ties (and is the default order)
    fleet.expect(
        {
            "order_by": [{"field": "current_enable_flag", "direction": "desc"}],
            "filters": [flt("current_enable_flag", "is_not_null")],
        },
        [P1, P4, P2, P5],
    )
    fleet.expect(
        {"order_by": [{"field": "product_imei", "direction": "desc"}]}, [P5, P4, P3, P2, P1]
    )
    fleet.expect({"order_by": [{"field": "created_at", "direction": "desc"}]}, [P5, P4, P3, P2, P1])
    # several keys
    fleet.expect(
        {
            "order_by": [
                {"field": "product_type_id", "direction": "desc"},
                {"field": "gps_lat", "direction": "desc"},
            ],
            "filters": [flt("gps_lat", "is_not_null")],
        },
        [P4, P5, P2, P1],
    )


def test_order_by_puts_nulls_last_ascending_and_first_descending(fleet: Fleet) -> None:
    """The same order on every database (PostgreSQL's: null sorts above every value)."""
    fleet.expect({"order_by": [{"field": "gps_lat"}]}, [P4, P1, P2, P5, P3])
    fleet.expect({"order_by": [{"field": "gps_lat", "direction": "desc"}]}, [P3, P5, P2, P1, P4])
    fleet.expect({"order_by": [{"field": "serial_number"}]}, [P1, P3, P5, P2, P4])


def test_order_by_a_relation_field(fleet: Fleet) -> None:
    # C collation order: "Alpha" < "Gamma" < "beta"; ties broken by IMEI
    fleet.expect(
        {"order_by": [{"field": "product_type__name", "direction": "asc"}]}, [P1, P2, P4, P3, P5]
    )
    fleet.expect(
        {"order_by": [{"field": "product_type__name", "direction": "desc"}]}, [P3, P5, P4, P1, P2]
    )
    fleet.expect(
        {
            "order_by": [
                {"field": "product_type__name", "direction": "desc"},
                {"field": "gps_lat", "direction": "desc"},
            ],
            "filters": [flt("product_type__name", "!=", "Gamma")],
        },
        [P3, P5, P2, P1],
    )
    # a relation used both to filter and to order
    fleet.expect(
        {
            "order_by": [{"field": "product_type__erp_code", "direction": "desc"}],
            "filters": [flt("product_type__erp_code", "is_not_null")],
        },
        [P4, P1, P2],
    )
    # parts ordered by their unit's serial number; a part on no unit sorts last
    r = fleet.list(
        "parts",
        {
            "order_by": [
                {"field": "product__serial_number", "direction": "asc"},
                {"field": "serial_number", "direction": "desc"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert r.json() == page([fleet.parts[s] for s in ("PT-B", "PT-A", "PT-C", "PT-E", "PT-D")])


def test_group_by(fleet: Fleet) -> None:
    # one row per group: the one with the smallest primary key
    fleet.expect({"group_by": [{"field": "product_type_id"}]}, [P1, P3, P4])
    fleet.expect({"group_by": [{"field": "current_enable_flag"}]}, [P1, P2, P3])
    fleet.expect(
        {"group_by": [{"field": "product_type_id"}], "filters": [flt("gps_lat", ">", 0)]}, [P1, P5]
    )
    fleet.expect(
        {"group_by": [{"field": "product_type_id"}, {"field": "current_enable_flag"}]},
        [P1, P2, P3, P4, P5],
    )
    fleet.expect(
        {
            "group_by": [{"field": "product_type_id"}],
            "order_by": [{"field": "product_imei", "direction": "desc"}],
        },
        [P4, P3, P1],
    )
    r = fleet.list("products", {"group_by": [{"field": "product_type_id"}]}, results_per_page=2)
    assert r.json() == page([fleet.units[P1], fleet.units[P3]], num_results=3, per_page=2)


def test_limit_and_offset(fleet: Fleet) -> None:
    fleet.expect({"limit": 2}, [P1, P2])
    fleet.expect({"offset": 3}, [P4, P5])
    fleet.expect({"limit": 2, "offset": 1}, [P2, P3])
    fleet.expect({"limit": 0}, ALL)  # no limit, as the original
    fleet.expect({"limit": "2", "offset": "1"}, [P2, P3])  # integral strings, as the original
    fleet.expect({"offset": 5}, [])
    fleet.expect({"offset": 500, "limit": 3}, [])
    fleet.expect({"limit": 99}, ALL)
    fleet.expect(
        {
            "limit": 1,
            "order_by": [{"field": "gps_lat", "direction": "desc"}],
            "filters": [flt("gps_lat", "is_not_null")],
        },
        [P5],
    )
    fleet.expect(
        {
            "limit": 2,
            "offset": 1,
            "filters": [flt("current_enable_flag", "is_not_null")],
            "order_by": [{"field": "gps_lon", "direction": "desc"}],
        },
        [P4, P1],
    )
    fleet.expect({"offset": 2**62}, [])


def test_single(fleet: Fleet) -> None:
    r = fleet.list(
        "products", {"filters": [flt("serial_number", "==", "SN-Banana")], "single": True}
    )
    assert r.status_code == 200
    assert r.json() == fleet.units[P3]
    # single applies after limit/offset
    r = fleet.list("products", {"single": True, "limit": 1, "offset": 3})
    assert r.json() == fleet.units[P4]
    r = fleet.list("products", {"single": True, "offset": 4})
    assert r.json() == fleet.units[P5]
    r = fleet.list(
        "products",
        {"single": True, "filters": [flt("gps_lat", ">", 40)], "order_by": [{"field": "gps_lat"}]},
    )
    assert r.json() == fleet.units[P5]
    r = fleet.list("parts", {"single": True, "filters": [flt("product__product_imei", "==", P2)]})
    assert r.json() == fleet.parts["PT-C"]
    # single: false is the ordinary page
    fleet.expect({"single": False, "limit": 1}, [P1])


def test_single_answer_matches_the_documented_list_response(fleet: Fleet) -> None:
    """Found by the fuzzer: the list's 200 was documented as a page only, and the bare object
    of ``single`` broke its own documented schema."""
    doc = fleet.client.get("/openapi.json").json()
    for resource, q in (
        ("products", {"single": True, "offset": 4}),
        ("products", {"limit": 2}),
        ("parts", {"single": True, "filters": [flt("product__product_imei", "==", P2)]}),
    ):
        r = fleet.list(resource, q)
        assert r.status_code == 200
        response = doc["paths"][f"/v1/{resource}"]["get"]["responses"]["200"]
        schema = response["content"]["application/json"]["schema"]
        jsonschema.validate(r.json(), {**schema, "components": doc["components"]})


def test_single_with_no_match_or_several(fleet: Fleet) -> None:
    r = fleet.list("products", {"filters": [flt("serial_number", "==", "nope")], "single": True})
    assert_error(r, 404, "No result found")
    assert_error(fleet.list("products", {"single": True, "offset": 5}), 404, "No result found")
    assert_error(fleet.list("products", {"single": 1, "offset": 5}), 404, "No result found")
    r = fleet.list(
        "products", {"filters": [flt("product_type__name", "==", "Alpha")], "single": True}
    )
    assert_error(r, 400, "Multiple results found")
    assert_error(fleet.list("products", {"single": True}), 400, "Multiple results found")
    assert_error(
        fleet.list("products", {"single": True, "group_by": [{"field": "product_type_id"}]}),
        400,
        "Multiple results found",
    )


# -- 3. pagination -------------------------------------------------------------------------------


def bulk_units(factory: Factory, n: int) -> list[str]:
    """``n`` units in one transaction (IMEIs in ascending order)."""
    ptype = factory.product_type()
    imeis = [f"{200000000000000 + i}" for i in range(n)]
    with factory.sessions() as session:
        session.add_all(
            Product(
                product_imei=imei,
                product_type_id=ptype.product_type_id,
                serial_number=f"BULK{i:05d}",
            )
            for i, imei in enumerate(imeis)
        )
        session.commit()
    return imeis


def page_body(r: Any) -> tuple[int, list[str], int, int]:
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"num_results", "objects", "page", "total_pages"}
    return (
        body["num_results"],
        [o["product_imei"] for o in body["objects"]],
        body["page"],
        body["total_pages"],
    )


def test_empty_list(client: TestClient, system: Headers) -> None:
    r = get(client, system, "products")
    assert r.json() == {"num_results": 0, "objects": [], "page": 1, "total_pages": 0}
    r = get(client, system, "products", page=3, results_per_page=5)
    assert r.json() == {"num_results": 0, "objects": [], "page": 3, "total_pages": 0}


def test_pages(client: TestClient, factory: Factory, system: Headers) -> None:
    imeis = bulk_units(factory, 25)

    def list_(**params: Any) -> tuple[int, list[str], int, int]:
        q = params.pop("q", None)
        return page_body(get(client, system, "products", q, **params))

    assert list_() == (25, imeis[:10], 1, 3)  # default page size 10
    assert list_(page=2) == (25, imeis[10:20], 2, 3)
    assert list_(page=3) == (25, imeis[20:], 3, 3)
    assert list_(page=4) == (25, [], 4, 3)  # past the end: 200, no objects
    assert list_(page=1000) == (25, [], 1000, 3)
    assert list_(results_per_page=7) == (25, imeis[:7], 1, 4)
    assert list_(results_per_page=7, page=4) == (25, imeis[21:], 4, 4)
    assert list_(results_per_page=25) == (25, imeis, 1, 1)
    assert list_(results_per_page=26) == (25, imeis, 1, 1)
    assert list_(results_per_page=1, page=25) == (25, [imeis[24]], 25, 25)
    assert list_(results_per_page=" 5 ", page=" 2 ") == (25, imeis[5:10], 2, 5)
    # non-positive or non-integer page sizes fall back to the default
    for bad in ("0", "-1", "-100", "abc", "2.5", "", "1e3"):
        assert list_(results_per_page=bad) == (25, imeis[:10], 1, 3), bad
    # limit/offset restrict the matches first; pages slice what is left
    assert list_(q={"limit": 12}, results_per_page=5) == (12, imeis[:5], 1, 3)
    assert list_(q={"limit": 12}, results_per_page=5, page=3) == (12, imeis[10:12], 3, 3)
    assert list_(q={"limit": 12}, results_per_page=5, page=4) == (12, [], 4, 3)
    assert list_(q={"offset": 20}, results_per_page=3, page=2) == (5, imeis[23:], 2, 2)
    assert list_(q={"offset": 20}) == (5, imeis[20:], 1, 1)
    assert list_(q={"offset": 3, "limit": 10}, results_per_page=4, page=3) == (
        10,
        imeis[11:13],
        3,
        3,
    )
    assert list_(q={"offset": 30}) == (0, [], 1, 0)
    assert list_(q={"limit": 0}, page=2) == (25, imeis[10:20], 2, 3)
    filtered = {"filters": [flt("serial_number", "like", "BULK0001%")]}  # BULK00010..BULK00019
    assert list_(q=filtered, results_per_page=4, page=3) == (10, imeis[18:20], 3, 3)


def test_page_size_is_capped_at_1000(client: TestClient, factory: Factory, system: Headers) -> None:
    imeis = bulk_units(factory, 1005)
    num, got, pg, total = page_body(get(client, system, "products", results_per_page=5000))
    assert (num, got, pg, total) == (1005, imeis[:1000], 1, 2)
    num, got, pg, total = page_body(get(client, system, "products", results_per_page=5000, page=2))
    assert (num, got, pg, total) == (1005, imeis[1000:], 2, 2)
    num, got, pg, total = page_body(get(client, system, "products", results_per_page=1000))
    assert (num, len(got), total) == (1005, 1000, 2)
    num, got, pg, total = page_body(get(client, system, "products", results_per_page=10**30))
    assert (num, len(got), total) == (1005, 1000, 2)


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "1.5", "", "one", "1e2"])
def test_bad_page_is_400(client: TestClient, system: Headers, bad: str) -> None:
    r = get(client, system, "products", page=bad)
    assert_error(r, 400, f"page must be a positive integer, got {bad!r}")


def test_page_beyond_64_bits_is_400(client: TestClient, system: Headers) -> None:
    """Found by the fuzzer: the page is echoed back, and a page of 2**64 was a 500 (the JSON
    encoder stops at 64 bits). Any page below that past the end is still an empty page."""
    assert page_body(get(client, system, "products", page=str(2**63 - 1)))[1] == []
    r = get(client, system, "products", page="20000000000000000000")
    assert_error(r, 400, "page must be below 2**63, got '20000000000000000000'")


# -- 4. malformed queries -------------------------------------------------------------------------

F = "filters"

MALFORMED: list[Any] = [
    # (resource, q, message); a message ending in "..." is a prefix
    ("products", "{", "q is not valid JSON: ..."),
    ("products", "{'filters': []}", "q is not valid JSON: ..."),
    (
        "products",
        '{"filters": [{"name": "gps_lat", "op": "==", "val": NaN}]}',
        "q is not valid JSON: ...",
    ),
    ("products", "[]", "q must be a JSON object"),
    ("products", '"filters"', "q must be a JSON object"),
    ("products", "null", "q must be a JSON object"),
    ("products", "42", "q must be a JSON object"),
    ("products", {"filter": []}, "Unknown key in q: 'filter'; did you mean 'filters'?"),
    ("products", {"oder_by": []}, "Unknown key in q: 'oder_by'; did you mean 'order_by'?"),
    (
        "products",
        {"filters": [], "page": 2},
        "'page' is a URL parameter (?page=…), not a key of q",
    ),
    ("products", {F: {"name": "gps_lat", "op": "is_null"}}, "filters must be a list"),
    ("products", {F: "gps_lat"}, "filters must be a list"),
    ("products", {F: [1]}, "A filter must be an object, got 1"),
    ("products", {F: [["gps_lat", "==", 1]]}, 'A filter must be an object, got ["gps_lat","==",1]'),
    ("products", {F: [{"op": "==", "val": 1}]}, 'A filter needs a \'name\': {"op":"==","val":1}'),
    (
        "products",
        {F: [{"name": 5, "op": "==", "val": 1}]},
        'A filter needs a \'name\': {"name":5,"op":"==","val":1}',
    ),
    # unknown fields and relations
    ("products", {F: [flt("colour", "==", "red")]}, "Unknown field 'colour' on products"),
    ("products", {F: [flt("device_key", "==", "x")]}, "Unknown field 'device_key' on products"),
    ("users", {F: [flt("password_hash", "like", "%")]}, "Unknown field 'password_hash' on users"),
    ("products", {F: [flt("owner__name", "==", "x")]}, "Unknown relation 'owner' on products"),
    (
        "products",
        {F: [flt("product_type__colour", "==", "x")]},
        "Unknown field 'colour' on product_types",
    ),
    ("products", {F: [flt("parts__owner__name", "==", "x")]}, "Unknown relation 'owner' on parts"),
    ("products", {F: [flt("parts", "==", 1)]}, "Unknown field 'parts' on products"),
    (
        "products",
        {F: [flt("gps_lat", "has", {"name": "x", "op": "is_null"})]},
        "Unknown relation 'gps_lat' on products",
    ),
    (
        "products",
        {F: [flt("parts", "any", {"name": "colour", "op": "is_null"})]},
        "Unknown field 'colour' on parts",
    ),
    ("products", {F: [flt("parts__colour", "any", "x")]}, "Unknown field 'colour' on parts"),
    ("products", {F: [flt("__proto__", "==", "x")]}, "Unknown relation '' on products"),
    # operators and values
    ("products", {F: [flt("gps_lat", "~", 1)]}, "Unknown operator '~' in the filter on 'gps_lat'"),
    (
        "products",
        {F: [flt("gps_lat", "EQ", 1)]},
        "Unknown operator 'EQ' in the filter on 'gps_lat'",
    ),
    (
        "products",
        {F: [{"name": "gps_lat", "val": 1}]},
        "Unknown operator None in the filter on 'gps_lat'",
    ),
    ("products", {F: [flt("gps_lat", "==")]}, "The filter on 'gps_lat' is missing 'val'"),
    ("products", {F: [flt("gps_lat", "in")]}, "The filter on 'gps_lat' is missing 'val'"),
    (
        "products",
        {F: [flt("serial_number", "like")]},
        "The filter on 'serial_number' is missing 'val'",
    ),
    ("products", {F: [flt("parts", "any")]}, "The filter on 'parts' is missing 'val'"),
    ("products", {F: [flt("product_type__name", "has")]}, "The filter on 'name' is missing 'val'"),
    (
        "products",
        {F: [{"name": "gps_lat", "op": "==", "val": None}]},
        "Cannot compare 'gps_lat' with null using '==': use is_null or is_not_null",
    ),
    (
        "products",
        {F: [{"name": "serial_number", "op": "eq", "val": None}]},
        "Cannot compare 'serial_number' with null using 'eq': use is_null or is_not_null",
    ),
    (
        "products",
        {F: [{"name": "gps_lat", "op": "!=", "val": None}]},
        "Cannot compare 'gps_lat' with null using '!=': use is_null or is_not_null",
    ),
    (
        "products",
        {F: [{"name": "gps_lat", "op": ">", "val": None}]},
        "Cannot compare 'gps_lat' with null using '>': use is_null or is_not_null",
    ),
    (
        "products",
        {F: [{"name": "product_type__erp_code", "op": "==", "val": None}]},
        "Cannot compare 'erp_code' with null using '==': use is_null or is_not_null",
    ),
    (
        "products",
        {F: [flt("gps_lat", "in", 1.5)]},
        "'in' on 'gps_lat' needs a list in 'val', got 1.5",
    ),
    (
        "products",
        {F: [flt("serial_number", "not_in", "SN")]},
        "'not_in' on 'serial_number' needs a list in 'val', got \"SN\"",
    ),
    (
        "products",
        {F: [flt("serial_number", "in", {"a": 1})]},
        "'in' on 'serial_number' needs a list in 'val', got {\"a\":1}",
    ),
    (
        "products",
        {F: [flt("product_type_id", "==", "abc")]},
        "Invalid value \"abc\" for 'product_type_id': expected an integer",
    ),
    (
        "products",
        {F: [flt("product_type_id", "==", 1.5)]},
        "Invalid value 1.5 for 'product_type_id': expected an integer",
    ),
    (
        "products",
        {F: [flt("product_type_id", "==", True)]},
        "Invalid value true for 'product_type_id': expected an integer",
    ),
    (
        "products",
        {F: [flt("product_type_id", "in", [1, "x"])]},
        "Invalid value \"x\" for 'product_type_id': expected an integer",
    ),
    (
        "products",
        {F: [flt("product_type_id", ">", 2**63)]},
        "Invalid value 9223372036854775808 for 'product_type_id': integer out of range",
    ),
    (
        "products",
        {F: [flt("product_type_id", ">", 1e30)]},
        "Invalid value 1e+30 for 'product_type_id': integer out of range",
    ),
    (
        "products",
        {F: [flt("gps_lat", ">", "abc")]},
        "Invalid value \"abc\" for 'gps_lat': expected a number",
    ),
    (
        "products",
        {F: [flt("gps_lat", ">", "inf")]},
        "Invalid value \"inf\" for 'gps_lat': expected a finite number",
    ),
    (
        "products",
        {F: [flt("gps_lat", ">", [1])]},
        "Invalid value [1] for 'gps_lat': expected a number",
    ),
    (
        "products",
        {F: [flt("gps_lat", ">", False)]},
        "Invalid value false for 'gps_lat': expected a number",
    ),
    (
        "products",
        {F: [flt("current_enable_flag", "==", "maybe")]},
        "Invalid value \"maybe\" for 'current_enable_flag': expected true or false",
    ),
    (
        "products",
        {F: [flt("current_enable_flag", "==", 2)]},
        "Invalid value 2 for 'current_enable_flag': expected true or false",
    ),
    (
        "products",
        {F: [flt("serial_number", "==", {"x": 1})]},
        "Invalid value {\"x\":1} for 'serial_number': expected a string",
    ),
    (
        "products",
        {F: [flt("serial_number", "==", 1.5)]},
        "Invalid value 1.5 for 'serial_number': expected a string",
    ),
    (
        "products",
        {F: [flt("serial_number", "==", True)]},
        "Invalid value true for 'serial_number': expected a string",
    ),
    (
        "products",
        {F: [flt("created_at", ">", "yesterday")]},
        "Invalid value \"yesterday\" for 'created_at': not an ISO-8601 time: 'yesterday'",
    ),
    (
        "products",
        {F: [flt("created_at", ">", "2024-13-01")]},
        "Invalid value \"2024-13-01\" for 'created_at': not an ISO-8601 time: '2024-13-01'",
    ),
    (
        "products",
        {F: [flt("created_at", ">", True)]},
        "Invalid value true for 'created_at': a boolean is not a time",
    ),
    (
        "products",
        {F: [flt("created_at", ">", -1)]},
        "Invalid value -1 for 'created_at': epoch milliseconds out of range",
    ),
    (
        "products",
        {F: [flt("created_at", ">", {"y": 2020})]},
        "Invalid value {\"y\":2020} for 'created_at': "
        "expected an ISO-8601 string, a date or epoch milliseconds",
    ),
    (
        "product_entity_linker",
        {F: [flt("date_added", "<", "2020-02-30")]},
        "Invalid value \"2020-02-30\" for 'date_added': not an ISO-8601 time: '2020-02-30'",
    ),
    (
        "products",
        {F: [flt("product_type__product_type_id", "==", "x")]},
        "Invalid value \"x\" for 'product_type_id': expected an integer",
    ),
    (
        "products",
        {F: [flt("parts__serial_number", "any", {"name": "x"})]},
        'Invalid value {"name":"x"} for \'serial_number\': expected a string',
    ),
    # like / ilike
    (
        "products",
        {F: [flt("gps_lat", "like", "1%")]},
        "'like' applies to text fields only, and 'gps_lat' is not one",
    ),
    (
        "products",
        {F: [flt("current_enable_flag", "ilike", "t%")]},
        "'ilike' applies to text fields only, and 'current_enable_flag' is not one",
    ),
    (
        "products",
        {F: [flt("created_at", "like", "2020%")]},
        "'like' applies to text fields only, and 'created_at' is not one",
    ),
    (
        "products",
        {F: [flt("serial_number", "like", 5)]},
        "'like' on 'serial_number' needs a string pattern, got 5",
    ),
    (
        "products",
        {F: [flt("serial_number", "ilike", ["a%"])]},
        "'ilike' on 'serial_number' needs a string pattern, got [\"a%\"]",
    ),
    (
        "parts",
        {F: [flt("properties", "like", "%")]},
        "'properties' holds JSON: only is_null and is_not_null apply to it",
    ),
    (
        "parts",
        {F: [flt("properties", "==", {"a": 1})]},
        "'properties' holds JSON: only is_null and is_not_null apply to it",
    ),
    (
        "product_types",
        {F: [flt("parameter_types", "in", [[1]])]},
        "'parameter_types' holds JSON: only is_null and is_not_null apply to it",
    ),
    # boolean formulas
    ("products", {F: [{"or": {}}]}, "'or' needs a list of filters"),
    ("products", {F: [{"and": flt("gps_lat", "is_null")}]}, "'and' needs a list of filters"),
    (
        "products",
        {F: [{"or": [flt("gps_lat", "is_null")], "and": [flt("gps_lat", "is_null")]}]},
        "A boolean filter has one key, 'or' or 'and': ...",
    ),
    (
        "products",
        {F: [{"or": [flt("gps_lat", "is_null")], "name": "gps_lat"}]},
        "A boolean filter has one key, 'or' or 'and': ...",
    ),
    (
        "products",
        {F: [{"or": [flt("gps_lat", "is_null"), flt("colour", "is_null")]}]},
        "Unknown field 'colour' on products",
    ),
    (
        "products",
        {F: [{"and": [{"or": [flt("gps_lat", "<>", 1)]}]}]},
        "Unknown operator '<>' in the filter on 'gps_lat'",
    ),
    # has / any
    ("products", {F: [flt("parts", "any", [])]}, "'any' on 'parts' needs a filter in 'val'"),
    ("products", {F: [flt("parts", "any", 5)]}, "A filter must be an object, got 5"),
    ("products", {F: [flt("parts", "any", "PT-A")]}, 'A filter must be an object, got "PT-A"'),
    # field comparisons
    (
        "products",
        {F: [{"name": "gps_lat", "op": "<", "field": "nope"}]},
        "Unknown field 'nope' on products",
    ),
    (
        "products",
        {F: [{"name": "gps_lat", "op": "<", "field": 1}]},
        "'field' must name a field, got 1",
    ),
    (
        "products",
        {F: [{"name": "gps_lat", "op": "in", "field": "gps_lon"}]},
        "Operator 'in' cannot compare two fields",
    ),
    (
        "products",
        {F: [{"name": "serial_number", "op": "like", "field": "imsi"}]},
        "Operator 'like' cannot compare two fields",
    ),
    (
        "products",
        {F: [{"name": "gps_lat", "op": "<", "field": "serial_number"}]},
        "Cannot compare 'gps_lat' with 'serial_number': they hold different types",
    ),
    (
        "products",
        {F: [{"name": "current_enable_flag", "op": "==", "field": "gps_lat"}]},
        "Cannot compare 'current_enable_flag' with 'gps_lat': they hold different types",
    ),
    (
        "products",
        {F: [{"name": "created_at", "op": ">", "field": "product_type_id"}]},
        "Cannot compare 'created_at' with 'product_type_id': they hold different types",
    ),
    (
        "parts",
        {F: [{"name": "properties", "op": "==", "field": "properties"}]},
        "'properties' holds JSON: only is_null and is_not_null apply to it",
    ),
    # limit, offset, single
    ("products", {"limit": "5.0"}, "limit must be a non-negative integer, got '5.0'"),
    ("products", {"limit": "-1"}, "limit must be a non-negative integer, got '-1'"),
    ("products", {"limit": -1}, "limit must be a non-negative integer, got -1"),
    ("products", {"limit": 1.5}, "limit must be a non-negative integer, got 1.5"),
    ("products", {"limit": True}, "limit must be a non-negative integer, got True"),
    ("products", {"limit": [1]}, "limit must be a non-negative integer, got [1]"),
    ("products", {"offset": "x"}, "offset must be a non-negative integer, got 'x'"),
    ("products", {"offset": -2}, "offset must be a non-negative integer, got -2"),
    ("products", {"offset": 2.0}, "offset must be a non-negative integer, got 2.0"),
    ("products", {"single": "yes"}, "single must be true or false"),
    ("products", {"single": 2}, "single must be true or false"),
    # order_by and group_by
    (
        "products",
        {"order_by": {"field": "gps_lat"}},
        "order_by must be a list of {field, direction} objects",
    ),
    ("products", {"order_by": ["gps_lat"]}, "An order_by item needs a 'field': \"gps_lat\""),
    (
        "products",
        {"order_by": [{"direction": "asc"}]},
        'An order_by item needs a \'field\': {"direction":"asc"}',
    ),
    (
        "products",
        {"order_by": [{"field": "gps_lat", "direction": "up"}]},
        "order_by direction must be 'asc' or 'desc', got 'up'",
    ),
    (
        "products",
        {"order_by": [{"field": "gps_lat", "direction": "ASC"}]},
        "order_by direction must be 'asc' or 'desc', got 'ASC'",
    ),
    (
        "products",
        {"order_by": [{"field": "gps_lat", "direction": None}]},
        "order_by direction must be 'asc' or 'desc', got None",
    ),
    ("products", {"order_by": [{"field": "colour"}]}, "Unknown field 'colour' on products"),
    ("products", {"order_by": [{"field": "device_key"}]}, "Unknown field 'device_key' on products"),
    ("products", {"order_by": [{"field": "owner__name"}]}, "Unknown relation 'owner' on products"),
    (
        "products",
        {"order_by": [{"field": "product_type__colour"}]},
        "Unknown field 'colour' on product_types",
    ),
    (
        "products",
        {"order_by": [{"field": "parts__serial_number"}]},
        "Cannot order by 'parts__serial_number': 'parts' is a to-many relation",
    ),
    (
        "products",
        {"order_by": [{"field": "entities__name", "direction": "desc"}]},
        "Cannot order by 'entities__name': 'entities' is a to-many relation",
    ),
    (
        "product_types",
        {"order_by": [{"field": "parameter_types"}]},
        "Cannot order by 'parameter_types': it holds JSON",
    ),
    (
        "parts",
        {"order_by": [{"field": "product__product_type__parameter_types"}]},
        "Cannot order by 'product__product_type__parameter_types': it holds JSON",
    ),
    ("products", {"group_by": {"field": "gps_lat"}}, "group_by must be a list of {field} objects"),
    (
        "products",
        {"group_by": [{"name": "gps_lat"}]},
        'A group_by item needs a \'field\': {"name":"gps_lat"}',
    ),
    ("products", {"group_by": [{"field": "colour"}]}, "Unknown field 'colour' on products"),
    (
        "products",
        {"group_by": [{"field": "product_type__name"}]},
        "Unknown field 'product_type__name' on products",
    ),
    (
        "parts",
        {"group_by": [{"field": "properties"}]},
        "Cannot group by 'properties': it holds JSON",
    ),
]


def _malformed_id(case: Any) -> str:
    resource, q, _ = case
    return f"{resource}:{q_param(q)[:60]}"


@pytest.mark.parametrize(
    ("resource", "q", "message"), MALFORMED, ids=[_malformed_id(c) for c in MALFORMED]
)
def test_malformed_query_is_400(
    client: TestClient, system: Headers, factory: Factory, resource: str, q: Any, message: str
) -> None:
    factory.product("123456789012345", serial_number="SN-1", gps_lat=1.0)  # never a full page
    r = get(client, system, resource, q)
    if message.endswith("..."):
        assert_error(r, 400, message[:-3], prefix=True)
    else:
        assert_error(r, 400, message)


def test_malformed_single_query_is_400_not_a_page(
    client: TestClient, system: Headers, factory: Factory
) -> None:
    factory.product("123456789012345")
    r = get(client, system, "products", {"single": True, F: [flt("colour", "==", 1)]})
    assert_error(r, 400, "Unknown field 'colour' on products")


def test_nesting_and_size_limits(client: TestClient, system: Headers) -> None:
    node: dict[str, Any] = flt("gps_lat", "is_null")
    for _ in range(16):
        node = {"or": [node]}
    assert get(client, system, "products", {F: [node]}).status_code == 200
    node = {"and": [node]}
    assert_error(
        get(client, system, "products", {F: [node]}),
        400,
        "q: filters nested 17 levels deep; the limit is 16 (SOLARFLEET_QUERY_MAX_NESTING)",
    )
    many = [flt("gps_lat", "is_null")] * 256
    assert get(client, system, "products", {F: many}).status_code == 200
    assert_error(
        get(client, system, "products", {F: [*many, flt("gps_lat", "is_null")]}),
        400,
        "q: more than 256 filters; the limit is 256 (SOLARFLEET_QUERY_MAX_FILTERS)",
    )
    deep = "[" * 5000 + "]" * 5000
    assert_error(
        get(client, system, "products", f'{{"filters": {deep}}}'),
        400,
        "q is not valid JSON: ",
        prefix=True,
    )


def asgi_get(app: FastAPI, path: str, q: Any, headers: Headers) -> tuple[int, Any]:
    """A GET straight into the app: httpx refuses query strings longer than 64 KiB."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": urlencode({"q": q_param(q)}).encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
    }
    anyio.run(app, scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], orjson.loads(body)


VALUES_LIMIT = (
    "q: more than 10000 values in in/not_in lists; the limit is 10000 (SOLARFLEET_QUERY_MAX_VALUES)"
)


def test_long_in_lists(app: FastAPI, client: TestClient, system: Headers, factory: Factory) -> None:
    factory.product("123456789012345", gps_lat=0.5)
    imeis = [f"{i:015d}" for i in range(1, 5_000)] + ["123456789012345"]
    ok = {F: [flt("product_imei", "in", imeis), flt("gps_lat", "not_in", list(range(5_000)))]}
    status, body = asgi_get(app, "/v1/products", ok, system)
    assert (status, body["num_results"]) == (200, 1)
    # PostgreSQL binds at most 65535 parameters: a longer list is the client's mistake
    too_many = {F: [flt("gps_lat", "not_in", list(range(10_001)))]}
    assert asgi_get(app, "/v1/products", too_many, system) == (
        400,
        {"status": "error", "message": VALUES_LIMIT},
    )
    one_more = {F: [*ok[F], flt("gps_lat", "in", [1.5])]}
    assert asgi_get(app, "/v1/products", one_more, system) == (
        400,
        {"status": "error", "message": VALUES_LIMIT},
    )


def test_text_values_with_a_nul_character(
    client: TestClient, system: Headers, factory: Factory
) -> None:
    factory.product("123456789012345", serial_number="SN-1")
    for filt in (
        flt("serial_number", "==", "SN\x00"),
        flt("serial_number", "like", "SN\x00%"),
        flt("serial_number", "in", ["a", "b\x00"]),
    ):
        r = get(client, system, "products", {F: [filt]})
        assert r.status_code == 400, r.text
        assert "'serial_number'" in r.json()["message"]


def test_malformed_page_parameters_with_a_valid_q(client: TestClient, system: Headers) -> None:
    r = get(client, system, "products", {F: []}, page="x")
    assert_error(r, 400, "page must be a positive integer, got 'x'")


# -- 5. a bounded number of statements per page ----------------------------------------------------


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine runs while the fixture is active."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def _dml(statements: list[str]) -> list[str]:
    """Statements that read or write rows (not BEGIN/COMMIT/PRAGMA)."""
    return [
        s
        for s in statements
        if s.lstrip().split(None, 1)[0].upper() in {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}
    ]


def test_a_page_costs_a_bounded_number_of_statements(
    client: TestClient, factory: Factory, system: Headers, statements: list[str]
) -> None:
    imeis = bulk_units(factory, 1000)
    battery = factory.part_type(name="battery")
    for imei in imeis[:3]:
        with factory.sessions() as session:
            unit = session.get(Product, imei)
        factory.part(part_type=battery, on=unit)
    get(client, system, "products")  # the token's first use may extend it: not measured

    counts = {}
    for size in (10, 100, 1000):
        statements.clear()
        r = get(
            client,
            system,
            "products",
            {"order_by": [{"field": "product_type__name"}]},
            results_per_page=size,
        )
        assert r.status_code == 200
        assert len(r.json()["objects"]) == size
        counts[size] = len(_dml(statements))
    assert counts[10] == counts[100] == counts[1000] <= 4, counts

    # relations in filters are subqueries of the same statements, never a query per row
    statements.clear()
    q = {
        F: [
            {
                "or": [
                    flt("parts__part_type__name", "==", "battery"),
                    flt("product_type__name", "like", "%"),
                ]
            }
        ]
    }
    r = get(client, system, "products", q, results_per_page=1000)
    assert r.json()["num_results"] == 1000
    assert len(_dml(statements)) == counts[1000]

    # and the same for a user whose scope is one entity
    entity = factory.entity(entity_id=50)  # not the unknown entity (1)
    for imei in imeis[:2]:
        with factory.sessions() as session:
            unit = session.get(Product, imei)
        factory.link_entity(unit, entity)
    scoped = factory.headers("OVERVIEW", "ENTITY", entity)
    get(client, scoped, "products")
    for size in (1, 2):
        statements.clear()
        r = get(client, scoped, "products", q, results_per_page=size)
        assert r.status_code == 200
        assert r.json()["num_results"] == 2
        assert len(_dml(statements)) <= counts[1000]
