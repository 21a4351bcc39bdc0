"""Property test of the query language: random filters, orders and pages against a model.

Thirty units with many nulls are written once per test function; hypothesis then sends random
queries (every operator alias, nested or/and, field comparisons, relation fields, order_by,
limit/offset, pages) and compares the page with a plain-Python evaluation that follows SQL:
a comparison with null is unknown, so it never matches (``!=`` neither); ``x NOT IN ()`` is true
even for a null ``x``; like/ilike patterns know ``%`` and ``_``; null sorts above every value.
"""

from __future__ import annotations

import math
import operator
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from solarfleet.fleet.models import Product
from tests.factories import Factory

Headers = dict[str, str]
Filter = dict[str, Any]

ALIASES = {
    "==": ["==", "eq", "equals", "equals_to", "equal_to"],
    "!=": ["!=", "ne", "neq", "does_not_equal", "not_equal_to"],
    ">": [">", "gt"],
    "<": ["<", "lt"],
    ">=": [">=", "ge", "gte", "geq"],
    "<=": ["<=", "le", "lte", "leq"],
}
CANONICAL = {alias: op for op, aliases in ALIASES.items() for alias in aliases}
PY_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}

FLOATS = [-10.5, -1.0, 0.0, 0.5, 1.0, 2.25, 45.0]
# A backslash is an ordinary character of a pattern, on SQLite as on PostgreSQL.
ALPHABET = "aAbB_%-\\"
TYPE_NAMES = ["Alpha", "beta", "alphabet"]
FIELDS = {
    "gps_lat": "float",
    "gps_lon": "float",
    "serial_number": "text",
    "current_enable_flag": "bool",
    "product_type__name": "text",
}


@dataclass(frozen=True)
class Row:
    imei: str
    gps_lat: float | None
    gps_lon: float | None
    serial_number: str | None
    current_enable_flag: bool | None
    product_type__name: str


def make_rows() -> list[Row]:
    rng = random.Random(20240611)
    serials: set[str] = set()
    rows = []
    for i in range(30):
        serial: str | None = None
        if rng.random() < 0.8:
            while serial is None or serial in serials:
                serial = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 4)))
            serials.add(serial)
        rows.append(
            Row(
                imei=f"{350000000000000 + i}",
                gps_lat=rng.choice([None, *FLOATS]),
                gps_lon=rng.choice([None, None, *FLOATS]),
                serial_number=serial,
                current_enable_flag=rng.choice([None, True, False]),
                product_type__name=rng.choice(TYPE_NAMES),
            )
        )
    return rows


ROWS = make_rows()


@pytest.fixture
def units(factory: Factory) -> list[Row]:
    """The rows of ROWS, written once for the whole test function (tables empty afterwards)."""
    types = {name: factory.product_type(name=name) for name in TYPE_NAMES}
    with factory.sessions() as session:
        session.add_all(
            Product(
                product_imei=r.imei,
                product_type_id=types[r.product_type__name].product_type_id,
                serial_number=r.serial_number,
                gps_lat=r.gps_lat,
                gps_lon=r.gps_lon,
                current_enable_flag=r.current_enable_flag,
            )
            for r in ROWS
        )
        session.commit()
    return ROWS


# -- the model: SQL's three-valued logic in Python (None is unknown) ---------------------------


def like(value: str, pattern: str, *, fold: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    if fold:
        value, regex = value.lower(), regex.lower()
    return re.fullmatch(regex, value, re.DOTALL) is not None


def as_type(kind: str, value: Any) -> Any:
    """A filter value as the model compares it (the API coerces to the column type)."""
    if kind == "float":
        return float(value)
    if kind == "bool":
        if isinstance(value, str):
            return value.lower() in ("true", "1", "yes")
        return bool(value)
    return str(value)


def evaluate(node: Filter, row: Row) -> bool | None:
    if "or" in node:
        results = [evaluate(n, row) for n in node["or"]]
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False
    if "and" in node:
        results = [evaluate(n, row) for n in node["and"]]
        if any(r is False for r in results):
            return False
        return None if any(r is None for r in results) else True
    name, op = node["name"], node["op"]
    if op in ("has", "any"):  # EXISTS: true or false, never unknown
        if name == "product_type":
            return evaluate({**node["val"], "name": "product_type__name"}, row) is True
        return getattr(row, name) == as_type(FIELDS[name], node["val"])
    kind = FIELDS[name]
    value = getattr(row, name)
    if op == "is_null":
        return value is None
    if op == "is_not_null":
        return value is not None
    if "field" in node:
        other = getattr(row, node["field"])
        if value is None or other is None:
            return None
        return PY_OPS[CANONICAL[op]](value, other)
    if op in ("in", "not_in"):
        values = [as_type(kind, v) for v in node["val"]]
        if not values:
            return op == "not_in"
        if value is None:
            return None
        return (value in values) == (op == "in")
    if value is None:
        return None
    if op in ("like", "ilike"):
        return like(value, node["val"], fold=op == "ilike")
    return PY_OPS[CANONICAL[op]](value, as_type(kind, node["val"]))


def matches(filters: list[Filter], row: Row) -> bool:
    return all(evaluate(f, row) is True for f in filters)


def _sort_key(value: Any) -> tuple[bool, Any]:
    return (value is None, 0 if value is None else value)


def ordered(rows: list[Row], order_by: list[dict[str, str]]) -> list[Row]:
    """Sorted as the API sorts: each key with null above every value, then the IMEI."""
    out = sorted(rows, key=lambda r: r.imei)
    for spec in reversed(order_by):
        name, desc = spec["field"], spec.get("direction") == "desc"
        out.sort(
            key=lambda r, n=name: _sort_key(getattr(r, n)),  # type: ignore[misc]
            reverse=desc,
        )
    return out


# -- strategies ---------------------------------------------------------------------------------


def alias(canonical: str) -> st.SearchStrategy[str]:
    return st.sampled_from(ALIASES[canonical])


comparison_op = st.sampled_from(list(ALIASES)).flatmap(alias)
texts = st.text(alphabet=ALPHABET, max_size=4)
float_values = st.one_of(
    st.sampled_from(FLOATS),
    st.sampled_from(FLOATS).map(lambda f: int(f) if f.is_integer() else f),
    st.sampled_from(FLOATS).map(str),
    st.floats(min_value=-50, max_value=50, allow_nan=False, width=32),
)
bool_values = st.sampled_from([True, False, 0, 1, "true", "false", "yes", "no", "TRUE", "0"])
text_values = st.one_of(
    texts, st.sampled_from([r.serial_number or "" for r in ROWS]), st.sampled_from(TYPE_NAMES)
)
VALUES = {"float": float_values, "bool": bool_values, "text": text_values}


@st.composite
def leaf(draw: st.DrawFn) -> Filter:
    """A filter on one field; on the product type's name, often spelled with has/any."""
    node = draw(plain_leaf())
    if node["name"] != "product_type__name" or not draw(st.booleans()):
        return node
    relation_op = draw(st.sampled_from(["has", "any"]))
    if CANONICAL.get(node["op"]) == "==" and draw(st.booleans()):  # the bare-val form: name == val
        return {"name": "product_type__name", "op": relation_op, "val": node["val"]}
    return {"name": "product_type", "op": relation_op, "val": {**node, "name": "name"}}


@st.composite
def plain_leaf(draw: st.DrawFn) -> Filter:
    name = draw(st.sampled_from(list(FIELDS)))
    kind = FIELDS[name]
    values = VALUES[kind]
    choices = ["compare", "in", "not_in", "is_null", "is_not_null"]
    if kind == "text":
        choices += ["like", "ilike", "like"]
    if kind == "float":
        choices += ["field"]
    what = draw(st.sampled_from(choices))
    if what == "compare":
        return {"name": name, "op": draw(comparison_op), "val": draw(values)}
    if what in ("in", "not_in"):
        return {"name": name, "op": what, "val": draw(st.lists(values, max_size=4))}
    if what in ("is_null", "is_not_null"):
        return {"name": name, "op": what}
    if what == "field":
        other = "gps_lon" if name == "gps_lat" else "gps_lat"
        return {"name": name, "op": draw(comparison_op), "field": other}
    pattern = draw(st.text(alphabet=ALPHABET + "%%__", max_size=5))
    return {"name": name, "op": what, "val": pattern}


formulas = st.recursive(
    leaf(),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda fs: {"or": fs}),
        st.lists(children, min_size=1, max_size=3).map(lambda fs: {"and": fs}),
    ),
    max_leaves=8,
)

orders = st.lists(
    st.fixed_dictionaries(
        {"field": st.sampled_from(list(FIELDS))},
        optional={"direction": st.sampled_from(["asc", "desc"])},
    ),
    max_size=2,
)


@st.composite
def queries(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str]]:
    q: dict[str, Any] = {"filters": draw(st.lists(formulas, max_size=3))}
    order_by = draw(orders)
    if order_by:
        q["order_by"] = order_by
    if draw(st.booleans()):
        q["limit"] = draw(st.integers(0, 35))
    if draw(st.booleans()):
        q["offset"] = draw(st.integers(0, 35))
    params = {}
    if draw(st.booleans()):
        params["results_per_page"] = draw(
            st.one_of(st.integers(-2, 40).map(str), st.sampled_from(["x", "2.5", "5000"]))
        )
    if draw(st.booleans()):
        params["page"] = str(draw(st.integers(1, 8)))
    return q, params


def page_size(raw: str | None) -> int:
    try:
        size = int(raw) if raw is not None else 10
    except ValueError:
        return 10
    return 10 if size <= 0 else min(size, 1000)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=queries())
def test_filters_orders_and_pages_match_the_model(
    client: TestClient, system: Headers, units: list[Row], case: tuple[dict[str, Any], dict]
) -> None:
    q, params = case
    r = client.get("/v1/products", headers=system, params={"q": orjson.dumps(q).decode(), **params})
    assert r.status_code == 200, r.text

    found = ordered([u for u in units if matches(q["filters"], u)], q.get("order_by", []))
    event(
        "no unit matches"
        if not found
        else "every unit matches"
        if len(found) == len(units)
        else "some units match"
    )
    offset = q.get("offset", 0)
    limited = found[offset:]
    if q.get("limit"):  # limit 0 is no limit, as the original
        limited = limited[: q["limit"]]
    per_page = page_size(params.get("results_per_page"))
    number = int(params.get("page", "1"))
    start = (number - 1) * per_page
    expected = {
        "num_results": len(limited),
        "objects": [u.imei for u in limited[start : start + per_page]],
        "page": number,
        "total_pages": math.ceil(len(limited) / per_page),
    }
    body = r.json()
    body["objects"] = [o["product_imei"] for o in body["objects"]]
    # rows that tie on every key are ordered by the IMEI: the whole order is determined
    assert body == expected
