"""The ``where`` grammar: what it accepts, what it means, and that nothing else gets through."""

from __future__ import annotations

from typing import Any

import pytest

from solarfleet.errors import BadRequest
from solarfleet.telemetry.where import Where, row_lookup

ROW = row_lookup(
    {"voltage": 12.7, "current": 3.0, "mode": "eco", "on": True, "count": 5, "a.b-c": 1.0},
    {"site": "north"},
)


def holds(text: str, row: Any = ROW) -> bool:
    return Where(text)(row)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("voltage > 12.5", True),
        ("voltage >= 12.7", True),
        ("voltage < 12.7", False),
        ("voltage <= 12.7 and current <= 3", True),
        ("voltage > 13 or current = 3", True),
        ("voltage > 13 or current != 3", False),
        ("current <> 3", False),
        ("current == 3.0", True),
        ("count = 5", True),
        ("voltage > -1e3", True),
        ("voltage > .5", True),
        ("mode = 'eco'", True),
        ("mode != 'eco'", False),
        ("mode > 'abc'", True),
        ("on = true", True),
        ("on != TRUE", False),
        ("on = false", False),
        ("site = 'north'", True),  # a tag
        ("NOT voltage > 13", True),
        ("not (voltage > 13 or mode = 'x')", True),
        ("(voltage > 13 or mode = 'eco') and current = 3", True),
        ("voltage > 13 or mode = 'eco' and current = 4", False),  # and binds tighter
        ('"a.b-c" = 1', True),
        ("a.b-c = 1", True),
        ("missing = 1", False),
        ("missing != 1", False),  # no value: never matches, as in InfluxQL
        ("not missing = 1", True),
        ("mode = 1", False),  # other kinds never match
        ("voltage = '12.7'", False),
        ("on = 1", False),
        ("count = true", False),
        ("mode = 'it\\'s'", False),
        ("  voltage   >12.5  ", True),
    ],
)
def test_meaning(text: str, expected: bool) -> None:
    assert holds(text) is expected


def test_names_are_collected() -> None:
    assert Where("a > 1 and (b = 'x' or not \"c.d\" != 2)").names == {"a", "b", "c.d"}


def test_string_escapes() -> None:
    row = row_lookup({"s": "it's \\ fine"}, {})
    assert holds("s = 'it\\'s \\\\ fine'", row)


@pytest.mark.parametrize(
    "text",
    [
        "'; DROP MEASUREMENT telemetry; --",
        "voltage > 1; DROP DATABASE solarfleet",
        '") or 1=1',
        "voltage > 1 or 1=1",
        "1 = 1",
        "voltage > 1 -- comment",
        "voltage > 1 /* x */",
        "voltage",
        "voltage >",
        "voltage > > 1",
        "> 1",
        "voltage ~ 1",
        "voltage =~ /x/",
        "voltage > 12.5 and",
        "and voltage > 1",
        "(voltage > 1",
        "voltage > 1)",
        "voltage > 1 voltage < 2",
        "voltage > abc",
        "mode = 'unterminated",
        'mode = "double quoted string"',
        '"bad name!" = 1',
        "on < true",
        "time > 0",
        "voltage > 12abc",
        "x" * 65 + " = 1",
        "voltage > 1 " + "and voltage > 1 " * 64,
        "(" * 40 + "voltage > 1" + ")" * 40,
        "not " * 40 + "voltage > 1",
        "a = 1 " * 200,
        "voltage\x00 > 1",
        "voltage > 1\n; DROP",
        "véhicule > 1",
    ],
)
def test_anything_else_is_a_400(text: str) -> None:
    with pytest.raises(BadRequest, match="where"):
        Where(text)


def test_error_names_the_position() -> None:
    with pytest.raises(BadRequest, match="position 10"):
        Where("voltage > ; 1")
