"""Error messages echo the value at fault, never all of it (issue 9 item 12): an 8 MB value gave
a 12 MB error. ``show_value`` shows a value; the message itself is bounded as a backstop."""

from __future__ import annotations

import json
import sys
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solarfleet.errors import MESSAGE_LIMIT, SHOW_LIMIT, BadRequest, show_value
from tests.factories import Factory
from tests.parameters.conftest import unit_auth

EIGHT_MB = 8 * 1024 * 1024

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=30,
)


def test_a_short_value_is_shown_as_repr() -> None:
    for value in ("abc", "it's", 42, -1.5, True, None, [1, "a"], {"k": [1, 2]}):
        assert show_value(value) == repr(value)


def test_a_long_string_is_cut_saying_how_long_it_was() -> None:
    assert show_value("x" * EIGHT_MB) == f"'{'x' * SHOW_LIMIT}'… ({EIGHT_MB} characters)"
    assert show_value("ab" * 10, limit=4) == "'abab'… (20 characters)"


def test_deep_wide_and_huge_values_cost_little_to_show() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    assert show_value(deep) == "[" * 50 + "[...]" + "]" * 25 + "…"
    assert show_value([[[[1]]]] * 10**6) == repr([[[[1]]]] * 20)[:80] + "…"
    assert len(show_value(list(range(1_000_000)))) <= SHOW_LIMIT + 1
    assert show_value(10 ** (sys.get_int_max_str_digits() + 10)).startswith("<an integer of")
    assert show_value([10**5000]) == "<a list holding a very long integer>"


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_values, st.integers(min_value=1, max_value=100))
def test_any_json_value_is_shown_within_the_limit(value: Any, limit: int) -> None:
    shown = show_value(value, limit)
    assert len(shown) <= limit + len(f"''… ({2**64} characters)") + 1
    if len(repr(value)) <= limit:
        assert shown == repr(value)


def test_messages_are_bounded_whatever_builds_them() -> None:
    message = BadRequest("Invalid name " + "y" * EIGHT_MB + ": too long").message
    assert message == f"Invalid name {'y' * (MESSAGE_LIMIT - 13)}… (message cut at 2000 characters)"
    assert BadRequest("short").message == "short"


def test_an_8_mb_parameter_value_gets_a_short_error(
    client: TestClient, factory: Factory, system: dict[str, str]
) -> None:
    ptype = factory.parameter_type("int", name="max_load")
    unit = factory.product(
        product_type=factory.product_type(parameter_types=[ptype.parameter_type_id])
    )
    body = {"parameter_type_id": ptype.parameter_type_id, "value": "9" * 40 + "x" * EIGHT_MB}
    r = client.post(f"/v1/products/{unit.product_imei}/parameters", json=body, headers=system)
    assert r.status_code == 400
    shown = "'" + "9" * 40 + "x" * 40 + f"'… ({EIGHT_MB + 40} characters)"
    assert (
        r.json()["message"] == f"Invalid value for max_load (int): expected an integer, got {shown}"
    )


def test_an_8_mb_field_name_gets_a_short_error(client: TestClient, factory: Factory) -> None:
    """A message built without show_value (telemetry's own) is cut by the backstop."""
    unit = factory.product()
    body = json.dumps({"fields": {"f" * EIGHT_MB: [[0, 1.0]]}})
    r = client.post(
        "/v1/rm_data",
        content=body,
        headers={**unit_auth(unit), "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert len(r.content) < 2 * MESSAGE_LIMIT
    assert r.json()["message"].startswith("Invalid field name 'fff")
