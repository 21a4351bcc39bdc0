"""Cost fuzzing of the query language (issue 9): hypothesis-generated ``q``s — relation paths
walked at random through the catalog (deeper than the limit too), wide ORs, has/any nesting,
long in-lists, many order_by terms — each answer 200 or a 4xx, never a 5xx, and within the
statement deadline (a list runs at most three statements) plus slack.

The fleet is the shape that made the issue's request cost minutes: units on one entity, so that
each hop through ``entities`` or ``product_links`` multiplies the rows visited.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect as sa_inspect

from solarfleet.auth.principal import SYSTEM_PRINCIPAL
from solarfleet.resources import REGISTRY
from tests.conftest import make_settings
from tests.factories import Factory

TIMEOUT = 1.0
STATEMENTS = 3  # a page: the count, the rows (and for single, one more)
SLACK = 4.0  # a shared, loaded machine
CATALOG = REGISTRY.catalog(SYSTEM_PRINCIPAL)
ROOTS = [spec.model for spec in REGISTRY.specs if spec.name != "users"]


@pytest.fixture(scope="module")
def deadline_app(app: FastAPI) -> Iterator[TestClient]:
    """The app with a 1 s statement deadline, on the session's database."""
    from solarfleet.app import create_app

    cheap = create_app(
        make_settings(app.state.settings.data_dir, statement_timeout_seconds=TIMEOUT)
    )
    yield TestClient(cheap)
    cheap.state.engine.dispose()


@pytest.fixture
def crowd(factory: Factory) -> dict[str, str]:
    """Twenty-five units with a part each, all on one entity; an OVERVIEW user's headers."""
    entity = factory.entity("crowd")
    product_type = factory.product_type()
    for i in range(25):
        unit = factory.product(f"{200000000000000 + i}", product_type=product_type, entity=entity)
        factory.part(on=unit)
    return factory.headers("OVERVIEW")


def _model(model: type, relname: str) -> type:
    return sa_inspect(model).mapper.relationships[relname].mapper.class_  # type: ignore[no-any-return]


@st.composite
def paths(draw: st.DrawFn, root: type) -> tuple[str, type]:
    """``relation__…__field`` from ``root``, 0 to 7 hops (or a wrong name now and then)."""
    model, names = root, []
    for _ in range(draw(st.integers(0, 7))):
        relations = sorted(CATALOG.relations(model))
        if not relations:
            break
        relname = draw(st.sampled_from(relations))
        names.append(relname)
        model = _model(model, relname)
    columns = sorted(CATALOG.columns(model)) or ["nothing"]
    names.append(draw(st.sampled_from([*columns, "no_such_field"])))
    return "__".join(names), model


@st.composite
def leaves(draw: st.DrawFn, root: type, depth: int) -> dict[str, Any]:
    name, _model_reached = draw(paths(root))
    op = draw(st.sampled_from(["like", "ilike", "==", "!=", "<", "in", "not_in", "is_null",
                               "has", "any"]))  # fmt: skip
    if op in ("has", "any") and depth < 3:
        relations = sorted(CATALOG.relations(root))
        if relations:
            relname = draw(st.sampled_from(relations))
            return {
                "name": relname,
                "op": op,
                "val": draw(filters(_model(root, relname), depth + 1)),
            }
    if op in ("in", "not_in"):
        val: Any = draw(st.lists(st.text(max_size=6) | st.integers(-(2**40), 2**40), max_size=20))
    elif op in ("like", "ilike"):
        val = draw(st.text(alphabet="%_aS1\\", max_size=6))
    else:
        val = draw(st.text(max_size=6) | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False))
    return {"name": name, "op": op, "val": val}


@st.composite
def filters(draw: st.DrawFn, root: type, depth: int = 0) -> dict[str, Any]:
    if depth < 3 and draw(st.integers(0, 3)) == 0:
        key = draw(st.sampled_from(["or", "and"]))
        width = draw(st.integers(1, 6))
        return {key: [draw(filters(root, depth + 1)) for _ in range(width)]}
    return draw(leaves(root, depth))


@st.composite
def queries(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    root = draw(st.sampled_from(ROOTS))
    q: dict[str, Any] = {"filters": draw(st.lists(filters(root), max_size=4))}
    if draw(st.booleans()):
        q["order_by"] = [
            {"field": draw(paths(root))[0], "direction": draw(st.sampled_from(["asc", "desc"]))}
            for _ in range(draw(st.integers(0, 20)))
        ]
    if draw(st.booleans()):
        q["single"] = True
    spec = REGISTRY.by_model[root]
    return spec.name, q


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(query=queries())
def test_every_query_answers_within_the_deadline(
    deadline_app: TestClient, crowd: dict[str, str], query: tuple[str, dict[str, Any]]
) -> None:
    resource, q = query
    started = time.monotonic()
    r = deadline_app.get(f"/v1/{resource}", headers=crowd, params={"q": orjson.dumps(q).decode()})
    took = time.monotonic() - started
    event(str(r.status_code))
    assert r.status_code == 200 or 400 <= r.status_code < 500, r.text
    assert r.status_code != 429
    assert took < TIMEOUT * STATEMENTS + SLACK, (took, r.text)
