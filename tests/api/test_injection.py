"""Injection attempts in every place a client's text reaches the server: the ``q`` query of list
endpoints (filter names, values, ops, order_by/group_by), the telemetry read parameters
(``where``, ``fields``, ``tags``, ``measurement``…) and path parameters (imei, ids, part_id).

Each is answered with a 4xx: never a 5xx, never a 2xx with unfiltered data. Afterwards every
table still holds its rows (nothing dropped or emptied).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from solarfleet.db import Base, utcnow
from solarfleet.telemetry.points import Point, to_us
from solarfleet.timeparse import format_instant
from tests.factories import Factory

LONG = "A" * 20_000

# Text that means something to SQL, InfluxQL, JSON, shells, paths or unicode handling.
STRINGS = [
    "' OR '1'='1",
    "' OR 1=1 --",
    '" OR ""="',
    "1; DROP TABLE products; --",
    "1); DROP TABLE users; --",
    "products; DELETE FROM users",
    "1 UNION SELECT password_hash FROM users",
    "(SELECT 1)",
    "product_imei) OR (1=1",
    "pg_sleep(5)",
    "'; SELECT pg_sleep(5); --",
    "1' AND SLEEP(5)#",
    "*",
    "%",
    "%%",
    "_",
    "\\",
    "\\'",
    "`id`",
    "$where",
    '{"$ne": null}',
    "__class__",
    "__proto__",
    "constructor",
    "../../../etc/passwd",
    "..\\..\\windows",
    "%00",
    "\x00",
    "product_imei\x00",
    "\x00' OR 1=1",
    "\u202e",
    "ｐｒｏｄｕｃｔ＿ｉｍｅｉ",
    "prοduct_imei",  # a Greek omicron
    "١٢٣",
    "𝟙𝟚𝟛",
    "\ud7ff\ue000\uffff",
    "😀" * 100,
    "\r\nSet-Cookie: x=1",
    "${jndi:ldap://x}",
    "{{7*7}}",
    "<script>alert(1)</script>",
    "x' ; DROP MEASUREMENT telemetry; --",
    'telemetry" ; DROP SERIES FROM /.*/ --',
    "time > 0 OR 1=1",
    "/.*/",
    LONG,
]


@pytest.fixture
def fleet(factory: Factory) -> dict[str, Any]:
    """Some rows in every main table, and SYSTEM headers."""
    entity = factory.entity()
    product = factory.product(entity=entity)
    factory.product(entity=entity)
    part_type = factory.part_type()
    part = factory.part(part_type=part_type)
    return {
        "headers": factory.headers("SYSTEM"),
        "imei": product.product_imei,
        "entity_id": entity.entity_id,
        "part_id": part.part_id,
    }


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in Base.metadata.sorted_tables
        }


def _refusal_problem(r: Any, what: object) -> str | None:
    """Why ``r`` is not a proper refusal (a 4xx error body without internals), or None."""
    if not 400 <= r.status_code < 500:
        return f"{what!r:.200}: {r.status_code} {r.text[:200]}"
    body = r.json()
    if body.get("status") != "error":
        return f"{what!r:.200}: not an error body {body!r:.200}"
    if "Traceback" in r.text or "sqlalchemy" in r.text.lower():
        return f"{what!r:.200}: internals in {r.text[:200]}"
    return None


class Refusals:
    """Collects every attempt that was not refused, so that one run shows them all."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def check(self, r: Any, what: object) -> None:
        problem = _refusal_problem(r, what)
        if problem:
            self.problems.append(problem)

    def assert_none(self) -> None:
        assert not self.problems, "\n".join(self.problems[:50])


def _q(client: TestClient, headers: dict[str, str], resource: str, q: Any) -> Any:
    text = q if isinstance(q, str) else json.dumps(q)
    return client.get(f"/v1/{resource}", params={"q": text}, headers=headers)


# -- q: filter names, ops, order_by and group_by fields and directions --------------------------


def _q_attempts() -> list[Any]:
    attempts: list[Any] = []
    for s in STRINGS:
        attempts += [
            {"filters": [{"name": s, "op": "==", "val": "1"}]},
            {"filters": [{"name": "serial_number", "op": s, "val": "1"}]},
            {"filters": [{"name": "serial_number", "op": "==", "field": s}]},
            {"filters": [{"name": f"product_type__{s}", "op": "==", "val": "1"}]},
            {"filters": [{"name": f"{s}__name", "op": "==", "val": "1"}]},
            {
                "filters": [
                    {"name": "product_type", "op": "has", "val": {"name": s, "op": "==", "val": 1}}
                ]
            },
            {"order_by": [{"field": s, "direction": "asc"}]},
            {"order_by": [{"field": "serial_number", "direction": s}]},
            {"order_by": [{"field": f"product_type__{s}"}]},
            {"group_by": [{"field": s}]},
            {"filters": [{"or": [{"name": s, "op": "==", "val": 1}]}]},
            {"limit": s},
            {"offset": s},
        ]
    attempts += [
        # values of the wrong type for a typed column, and JSON tricks
        {"filters": [{"name": "product_type_id", "op": "==", "val": "1 OR 1=1"}]},
        {"filters": [{"name": "product_type_id", "op": "in", "val": "1,2"}]},
        {"filters": [{"name": "product_type_id", "op": "==", "val": {"$ne": None}}]},
        {"filters": [{"name": "product_type_id", "op": "==", "val": [1, 2]}]},
        {"filters": [{"name": "serial_number", "op": "==", "val": None}]},
        {"filters": [{"name": "serial_number", "op": "==", "val": {"or": [1]}}]},
        {"filters": [{"name": "created_at", "op": ">", "val": "1' OR '1'='1"}]},
        {"filters": [{"name": "current_enable_flag", "op": "==", "val": "true OR 1=1"}]},
        {"filters": {"name": "serial_number", "op": "==", "val": "x"}},
        {"filters": "1=1"},
        {"filters": [["serial_number", "==", "x"]]},
        {"filters": [{"and": "1=1"}]},
        {"filters": [{"name": ["serial_number"], "op": "==", "val": "x"}]},
        {"filters": [{"name": 1, "op": "==", "val": "x"}]},
        {"filters": [{"name": "serial_number", "op": ["=="], "val": "x"}]},
        {"order_by": "product_imei; DROP TABLE products"},
        {"order_by": [{"field": "serial_number", "direction": ["asc"]}]},
        {"order_by": [{"field": {"$gt": ""}}]},
        {"limit": -1},
        {"limit": 1e400},
        {"offset": "0; DROP TABLE products"},
        {"single": "true; DROP TABLE products"},
        _nested(200),
        "null",
        "[]",
        '"filters"',
        "{'filters': []}",
        '{"filters": [}',
        "{" * 10_000,
        "[" * 20_000,
        '{"filters": NaN}',
        '{"limit": Infinity}',
        "\x00",
        "%00",
        '{"filters": [{"name": "serial_number", "op": "==", "val": "\\u0000"}], "x": }',
    ]
    return attempts


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"name": "serial_number", "op": "==", "val": "x"}
    for _ in range(depth):
        node = {"or": [node]}
    return {"filters": [node]}


def test_q_injection_is_refused(client: TestClient, engine: Engine, fleet: dict[str, Any]) -> None:
    before = _counts(engine)
    refusals = Refusals()
    headers = fleet["headers"]
    attempts = _q_attempts()
    for q in attempts:
        refusals.check(_q(client, headers, "products", q), q)
    # Relation filters on other resources, and the users' secret columns.
    for q in (
        {"filters": [{"name": "password_hash", "op": "like", "val": "%"}]},
        {"filters": [{"name": "password", "op": "like", "val": "$argon2%"}]},
        {"order_by": [{"field": "password_hash"}]},
        {"filters": [{"name": "tokens__token_hash", "op": "is_not_null"}]},
    ):
        refusals.check(_q(client, headers, "users", q), q)
    refusals.assert_none()
    # Unknown top-level keys are ignored, as the original did: the answer is the plain list.
    plain = client.get("/v1/products", headers=headers).json()
    for s in STRINGS:
        if s in ("page", "results_per_page"):
            continue
        r = _q(client, headers, "products", {s: 1})
        assert r.status_code == 200 and r.json() == plain, (s, r.text)
    assert _counts(engine) == before


@pytest.mark.parametrize("resource", ["products", "entities", "parts", "users"])
def test_q_values_are_only_ever_compared(
    client: TestClient, engine: Engine, fleet: dict[str, Any], resource: str
) -> None:
    """A hostile value in a string comparison is data: 4xx, or 200 matching nothing."""
    field = {
        "products": "serial_number",
        "entities": "name",
        "parts": "serial_number",
        "users": "username",
    }[resource]
    before = _counts(engine)
    refusals = Refusals()
    for s in STRINGS:
        if s in ("%", "%%", "_"):
            continue
        for op in ("==", "!=", "in", "like", "ilike", ">"):
            val: Any = [s] if op == "in" else s
            r = _q(
                client,
                fleet["headers"],
                resource,
                {"filters": [{"name": field, "op": op, "val": val}]},
            )
            if r.status_code == 200:
                body = r.json()
                if op in ("!=", ">"):
                    continue  # these legitimately match rows
                assert body["num_results"] == 0, (resource, op, s, body)
            else:
                refusals.check(r, (resource, op, s))
    refusals.assert_none()
    assert _counts(engine) == before


# -- path parameters ------------------------------------------------------------------------------

BAD_IDS = [s for s in STRINGS if not s.isascii() or not s.isdigit()] + [
    "1 OR 1=1",
    "1;DROP TABLE products",
    "-1",
    "+1",
    " 1",
    "1 ",
    "1_0",
    "0x1",
    "1e3",
    "1.0",
    "١",
    "１",
    "99999999999999999999999999",
    "9" * 5000,
    "1" * 16,
    "..%2F..%2Fetc%2Fpasswd",
    "1%00",
    "1%27%20OR%20%271%27%3D%271",
]


def _path(value: str) -> str:
    """The value as one URL path segment (percent-encoded)."""
    from urllib.parse import quote

    return quote(value, safe="")


def test_path_parameter_injection_is_refused(
    client: TestClient, engine: Engine, fleet: dict[str, Any]
) -> None:
    before = _counts(engine)
    refusals = Refusals()
    headers = fleet["headers"]
    imei = fleet["imei"]
    part_id = fleet["part_id"]
    for raw in BAD_IDS:
        v = _path(raw)
        requests = [
            ("GET", f"/v1/products/{v}"),
            ("PUT", f"/v1/products/{v}"),
            ("DELETE", f"/v1/products/{v}"),
            ("GET", f"/v1/entities/{v}"),
            ("DELETE", f"/v1/entities/{v}"),
            ("GET", f"/v1/parts/{v}"),
            ("DELETE", f"/v1/users/{v}"),
            ("GET", f"/v1/products/{v}/parts"),
            ("DELETE", f"/v1/products/{imei}/parts/{v}"),
            ("DELETE", f"/v1/products/{v}/parts/{part_id}"),
            ("POST", f"/v1/parts/{v}/parameters"),
            ("GET", f"/v1/products/{v}/parameters/history"),
            ("GET", f"/v1/products/{v}/data"),
            ("PUT", f"/v1/products/{v}/assign_entity"),
        ]
        for method, url in requests:
            body = {"entity_id": fleet["entity_id"]} if "assign" in url else None
            r = client.request(method, url, headers=headers, json=body)
            refusals.check(r, (method, url[:120]))
    refusals.assert_none()
    # The real rows are still reachable: the refusals were about the values.
    assert client.get(f"/v1/products/{imei}", headers=headers).status_code == 200
    assert client.get(f"/v1/parts/{part_id}", headers=headers).status_code == 200
    refusals.assert_none()
    assert _counts(engine) == before


# -- telemetry read parameters --------------------------------------------------------------------


def test_telemetry_read_injection_is_refused(
    app: FastAPI, client: TestClient, engine: Engine, fleet: dict[str, Any]
) -> None:
    imei = fleet["imei"]
    now = utcnow().replace(microsecond=0)
    t = now - timedelta(hours=1)
    app.state.hot_store.write(
        [
            Point(imei, "telemetry", (("source", "bms"),), "voltage", to_us(t), 12.5),
            Point(imei, "telemetry", (("source", "bms"),), "mode", to_us(t), "eco"),
        ]
    )
    window = {
        "start": format_instant(now - timedelta(days=1)),
        "end": format_instant(now + timedelta(minutes=1)),
    }
    url = f"/v1/products/{imei}/data"
    headers = fleet["headers"]
    ok = client.get(url, params=window, headers=headers)
    assert ok.status_code == 200, ok.text
    before = _counts(engine)
    refusals = Refusals()

    where = [s for s in STRINGS] + [
        "voltage > 12 OR 1=1",
        "voltage > 12; DROP MEASUREMENT telemetry",
        "voltage > 12 --",
        "voltage > 12 /* x */",
        "voltage = '12' OR '1'='1",
        "mode = 'eco'' OR ''1''=''1'",
        "mode = 'eco\\'",
        'mode = "eco"',
        "mode =~ /.*/",
        "voltage > 12 AND time > now() - 1d",
        "voltage > 12) OR (1=1",
        "(" * 200 + "voltage > 1" + ")" * 200,
        " or ".join(["voltage > 1"] * 100),
        "voltage > 1e999999",
        "voltage > 12\x00",
        "voltage",
        "> 12",
        "voltage >",
        "",  # empty: treated as absent (200 below is allowed only for this one)
    ]
    for w in where:
        r = client.get(url, params={**window, "where": w}, headers=headers)
        if w == "" and r.status_code == 200:
            continue
        if r.status_code == 200 and w == "voltage > 1e999999":  # a valid comparison (with inf)
            assert not _has_readings(r.json()["data"])
            continue
        refusals.check(r, ("where", w[:80]))

    for name in (
        "fields",
        "measurement",
        "tags",
        "limit",
        "ds_interval",
        "ds_function",
        "start",
        "end",
    ):
        values = [s for s in STRINGS if s not in ("*",)] + [
            "voltage,mode; DROP MEASUREMENT telemetry",
            'voltage" OR 1=1',
            "voltage,/.*/",
            ",".join(f"f{i}" for i in range(1000)),
            '{"source": {"$ne": null}}',
            '{"source": ["bms"]}',
            '{"__proto__": {"x": 1}}',
            "source:bms' OR '1'='1",
            "source:/.*/",
            "product_imei:999",
        ]
        for v in values:
            r = client.get(url, params={**window, name: v}, headers=headers)
            if r.status_code == 200:
                # Accepted only as a literal that selects nothing.
                data = r.json()["data"]
                assert not _has_readings(data), (name, v[:80], data)
                continue
            refusals.check(r, (name, v[:80]))
    refusals.assert_none()
    assert _counts(engine) == before
    assert client.get(url, params=window, headers=headers).json() == ok.json()


def _has_readings(data: Any) -> bool:
    """Whether a read's data holds any value at all."""
    if isinstance(data, dict):
        return any(_has_readings(v) for v in data.values())
    if isinstance(data, list):
        return any(
            isinstance(v, (int, float, str)) and not isinstance(v, bool) or _has_readings(v)
            for v in data
        )
    return False
