r"""Fuzzing every operation of the OpenAPI document with schemathesis (in-process, ASGI).

Each operation runs against a freshly seeded small fleet (a unit with a known IMEI and device
key, parts, parameter types allowed on their types, parameter rows, entity links, a migration
history row), and every generated request is sent once per caller: no credentials, a GLOBAL
user of each permission level, an ENTITY-scoped user, and the unit's own HTTP Basic key. Half
the time the ids in the path and body are replaced with ids of the seeded rows, so that requests
reach real rows and not only 404s.

Every response must: not be a 5xx, have a documented status code, and match its documented
schema and content type.

* ``SOLARFLEET_FUZZ_EXAMPLES`` (default 15): examples per operation in the fuzzing phase.
* ``SOLARFLEET_FUZZ_SEED``: explore with this seed; without it the run is deterministic
  (derandomized), as CI needs. A failure found with a seed is replayed with the same seed.
* ``SOLARFLEET_FUZZ_COVERAGE=1``: add schemathesis' coverage phase (boundary and invalid
  values of every parameter and body field, some 100-300 cases per operation whatever the
  number of examples).

Before a release (some 30-40 minutes per database on 2 cores)::

    SOLARFLEET_FUZZ_EXAMPLES=500 SOLARFLEET_FUZZ_COVERAGE=1 SOLARFLEET_FUZZ_SEED=$RANDOM \
        .venv/bin/pytest tests/fuzz
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select

from solarfleet.api.query import OP_ALIASES
from solarfleet.app import create_app
from solarfleet.db import Base, utcnow
from solarfleet.migration.models import ProductMigrationHistory
from solarfleet.resources import REGISTRY
from solarfleet.settings import Settings
from tests.factories import Factory

EXAMPLES = int(os.environ.get("SOLARFLEET_FUZZ_EXAMPLES", "15"))
SEED = os.environ.get("SOLARFLEET_FUZZ_SEED")
COVERAGE = os.environ.get("SOLARFLEET_FUZZ_COVERAGE") == "1"
LEVELS = ("OVERVIEW", "TECHNICAL", "ADMIN", "FACTORY", "SYSTEM")
IMEI = "111010101010101"  # the documented example IMEI: generated requests use it too
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _config() -> schemathesis.Config:
    generation: dict[str, Any] = {
        "mode": "all",  # valid and invalid inputs
        "max-examples": EXAMPLES,
        "database": "none",  # nothing replayed from an earlier run: the same run every time
        "deterministic": SEED is None,
    }
    config: dict[str, Any] = {
        "generation": generation,
        "suppress-health-check": ["all"],
        "phases": {"coverage": {"enabled": COVERAGE}, "stateful": {"enabled": False}},
    }
    if SEED is not None:
        config["seed"] = int(SEED)
    return schemathesis.Config.from_dict(config)


def _document() -> dict[str, Any]:
    """The app's OpenAPI document, read at collection time (one test per operation) from an app
    that is never started: create_app connects to nothing until a request comes."""
    settings = Settings(
        data_dir=Path(tempfile.gettempdir()) / "solarfleet-fuzz-openapi",
        argon2_time_cost=1,
        argon2_memory_kib=64,
    )
    return create_app(settings).openapi()


schema = schemathesis.openapi.from_dict(_document(), config=_config())


@dataclass
class Fleet:
    """The seeded rows: real ids by path or body parameter name, and the callers' headers."""

    ids: dict[str, list[Any]] = field(default_factory=dict)
    callers: dict[str, dict[str, str]] = field(default_factory=dict)


def seed(factory: Factory) -> Fleet:
    now = utcnow()
    home = factory.entity("Home entity")
    other = factory.entity("Other entity")
    ptypes = [
        factory.parameter_type("int", validation_rules={"min": 0, "max": 100}),
        factory.parameter_type("float"),
        factory.parameter_type("bool"),
        factory.parameter_type("string", validation_rules={"max_length": 8}),
        factory.parameter_type("datetime"),
    ]
    type_ids = [p.parameter_type_id for p in ptypes]
    product_type = factory.product_type(parameter_types=type_ids)
    part_type = factory.part_type(parameter_types=type_ids[:3])
    unit = factory.product(IMEI, product_type=product_type, entity=home, imsi="001010123456789")
    elsewhere = factory.product(product_type=product_type, entity=other)
    on_unit = factory.part(part_type=part_type, on=unit, properties={"capacity_wh": 120})
    spare = factory.part(part_type=part_type)
    old = now - timedelta(days=2)
    factory.product_parameter(
        unit,
        ptypes[0],
        value="5",
        status="removed",
        date_added=old,
        date_removed=now - timedelta(days=1),
    )
    factory.product_parameter(unit, ptypes[0], value="7", date_added=now - timedelta(days=1))
    factory.product_parameter(unit, ptypes[1], value="2.5", status="pending", date_added=None)
    factory.part_parameter(on_unit, ptypes[2], value="True", date_added=old)
    factory._add(  # no factory method for this table
        ProductMigrationHistory(
            product_imei=unit.product_imei, latest_migration_timestamp=old, last_migrated_at=now
        )
    )
    fleet = Fleet()
    for level in LEVELS:
        fleet.callers[level] = factory.headers(level)
    fleet.callers["ENTITY SYSTEM"] = factory.headers("SYSTEM", "ENTITY", home)
    basic = base64.b64encode(f"{unit.product_imei}:{unit.device_key}".encode()).decode()
    fleet.callers["unit"] = {"Authorization": f"Basic {basic}"}
    fleet.callers["nobody"] = {}
    with factory.sessions() as session:
        for table in Base.metadata.sorted_tables:
            pk = list(table.primary_key.columns)
            if len(pk) == 1:
                fleet.ids[table.name] = list(session.scalars(select(pk[0])))
    imeis = [unit.product_imei, elsewhere.product_imei]
    parts = [on_unit.part_id, spare.part_id]
    fleet.ids.update(
        imei=imeis,
        product_imei=imeis,
        part_id=parts,
        entity_id=[home.entity_id, other.entity_id],
        parameter_type_id=type_ids,
        product_type_id=[product_type.product_type_id],
        part_type_id=[part_type.part_type_id],
    )
    return fleet


@pytest.fixture(scope="session")
def asgi_client(app: FastAPI) -> Any:
    """Requests go straight to the app, as the suite's TestClient does: its lifespan is not run
    (schemathesis would start it and shut it down after every test, closing the app's hot store
    for the tests that come after)."""
    return asgi.get_client(app)


@pytest.fixture
def fleet(factory: Factory) -> Iterator[Fleet]:
    """Seeded for each operation; the conftest empties every table after each test."""
    _SEEDED.append(seed(factory))
    yield _SEEDED[-1]
    _SEEDED.clear()


# The fleet of the running test, for the generation hooks below (set by the ``fleet`` fixture).
_SEEDED: list[Fleet] = []


def _choices(name: str, path: str) -> list[Any]:
    if not _SEEDED:
        return []
    if name == "key":  # /v1/<resource>/{key}: that resource's primary keys
        return _SEEDED[-1].ids.get(path.split("/")[2], [])
    return _SEEDED[-1].ids.get(name, [])


def _maybe_real(value: Any, choices: list[Any], as_text: bool) -> st.SearchStrategy[Any]:
    if not choices:
        return st.just(value)
    real = st.sampled_from([str(c) if as_text else c for c in choices])
    return st.one_of(st.just(value), real)


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    """Half the time, ids of seeded rows in the path: requests that reach real rows."""
    if not path_parameters:
        return st.just(path_parameters)
    path = context.operation.path if context.operation else ""
    return st.fixed_dictionaries(
        {k: _maybe_real(v, _choices(k, path), True) for k, v in path_parameters.items()}
    )


@schema.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """Half the time, ids of seeded rows in the body's id fields (part_id, entity_id, ...)."""
    if not isinstance(body, dict):
        return st.just(body)
    return st.fixed_dictionaries(
        {k: _maybe_real(v, _choices(k, ""), False) for k, v in body.items()}
    )


def _field_names(resource: str) -> list[str]:
    """The resource's columns, and ``relation__column`` for each relation (the catalog's names),
    plus a few that exist nowhere."""
    spec = REGISTRY.by_name[resource]
    names = list(spec.output_fields)
    mapper = sa_inspect(spec.model)
    for rel in spec.relations:
        target = mapper.relationships[rel].mapper
        names += [f"{rel}__{c.key}" for c in target.columns][:6]
    return [*names, "nope", "product__nope", "password_hash", "__", ""]


JSON_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
)


def _json_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=2)


def _boolean_filters(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.builds(
        lambda key, parts: {key: parts}, st.sampled_from(["or", "and"]), st.lists(inner, max_size=3)
    )


JSON_VALUES = st.recursive(
    JSON_SCALARS | st.sampled_from(["2016-10-21T11:38:16.961100", "0001-01-01T00:00:00+01:00"]),
    _json_containers,
    max_leaves=4,
)
OPS = [*OP_ALIASES, "bogus", ""]


def _q(resource: str) -> st.SearchStrategy[str]:
    """A search object of the query language (SPEC §3), well-formed or not."""
    names = st.sampled_from(_field_names(resource)) | st.text(max_size=8)
    leaf = st.fixed_dictionaries(
        {"name": names, "op": st.sampled_from(OPS)}, optional={"val": JSON_VALUES, "field": names}
    )
    filters = st.recursive(leaf, _boolean_filters, max_leaves=4)
    ordering = st.fixed_dictionaries(
        {"field": names}, optional={"direction": st.sampled_from(["asc", "desc", "up"])}
    )
    small = st.integers(-1, 3) | JSON_SCALARS
    query = st.fixed_dictionaries(
        {},
        optional={
            "filters": st.lists(filters, max_size=3),
            "order_by": st.lists(ordering, max_size=2),
            "group_by": st.lists(st.fixed_dictionaries({"field": names}), max_size=1),
            "limit": small,
            "offset": small,
            "single": st.booleans() | JSON_SCALARS,
        },
    )
    return query.map(lambda q: json.dumps(q))


@schema.hook
def flatmap_query(
    context: schemathesis.HookContext, query: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    """On list endpoints, half the time a structured ``q`` rather than an arbitrary string."""
    operation = context.operation
    if operation is None or operation.method.upper() != "GET":
        return st.just(query)
    resource = operation.path.removeprefix("/v1/")
    if resource not in REGISTRY.by_name:
        return st.just(query)
    return st.one_of(st.just(query), _q(resource).map(lambda q: {**(query or {}), "q": q}))


@schema.parametrize()
def test_every_operation_for_every_caller(case: Any, asgi_client: Any, fleet: Fleet) -> None:
    # From no rights to all: the callers who may write come last.
    for caller in ("nobody", "unit", *LEVELS[:-1], "ENTITY SYSTEM", "SYSTEM"):
        headers = dict(fleet.callers[caller])  # schemathesis adds its own headers to it
        response = case.call(session=asgi_client, headers=headers)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except Exception as exc:
            exc.add_note(f"caller: {caller}")
            raise
