"""Parameter values: parsing per data_type, canonical text forms, and validation_rules.

Canonical forms (how a value is stored in ``value``, a text column, and compared):

=========  ==========================================================================
data_type  accepted input                                   stored as
=========  ==========================================================================
int        a JSON integer or a string of decimal digits     ``'42'``, ``'-7'``
           (optional sign); |n| < 2**63
float      a JSON number or a numeric string; finite        Python's shortest round-trip
                                                            ``repr``: ``'5.0'``, ``'0.1'``
bool       true/false, 0/1, or the strings true/false/1/0   ``'True'`` / ``'False'``
           (any case)
string     a JSON string without NUL characters             the string itself
datetime   ISO-8601 with or without zone, a date, or epoch  the wire format, UTC without zone
           milliseconds                                     ``'2016-10-21T11:38:16.961100'``
=========  ==========================================================================

``validation_rules`` vocabulary (a JSON object on the parameter type; every key optional,
unknown keys refused; checked when the type is created or updated):

``min`` / ``max``
    inclusive bounds, for ``int``, ``float`` (numbers) and ``datetime`` (instants, in any accepted
    input form); ``min`` may not exceed ``max``.
``choices``
    a non-empty list of the only values allowed, each a valid value of the data_type (compared in
    canonical form), for every data_type but ``bool``.
``pattern``
    a regular expression (Python syntax, at most 200 characters) the whole value must match,
    for ``string``. Matched with the ``regex`` library and a time limit
    (``PATTERN_TIMEOUT_SECONDS``): a pattern that backtracks catastrophically on some value
    answers 400 for that value instead of holding a worker.
``max_length``
    the greatest number of characters, a non-negative integer, for ``string``.

Example: ``{"min": 0, "max": 100}``, ``{"choices": ["eco", "boost"]}``,
``{"pattern": "^[A-Z]{3}$", "max_length": 3}``.
"""

from __future__ import annotations

import math
import re
from typing import Any

import regex
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from solarfleet.errors import BadRequest, Conflict, show_value
from solarfleet.fleet.models import ParameterType
from solarfleet.parameters.models import PartParameter, ProductParameter
from solarfleet.timeparse import format_instant, parse_instant

DATA_TYPES = ("float", "datetime", "int", "string", "bool")
RULES = ("min", "max", "choices", "pattern", "max_length")
PATTERN_TIMEOUT_SECONDS = 0.05
RULES_FOR = {
    "int": {"min", "max", "choices"},
    "float": {"min", "max", "choices"},
    "datetime": {"min", "max", "choices"},
    "string": {"choices", "pattern", "max_length"},
    "bool": set(),
}
MAX_VALUE_LENGTH = 4096
MAX_PATTERN_LENGTH = 200
_INT = re.compile(r"^[+-]?[0-9]+$")
_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


class InvalidValue(ValueError):
    """A value that is not of its data_type (the message says why)."""


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidValue("expected an integer, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INT.match(value.strip()) and len(value) < 40:
        number = int(value.strip())
    else:
        raise InvalidValue(f"expected an integer, got {show_value(value)}")
    if not -(2**63) <= number < 2**63:
        raise InvalidValue(f"integer {number} out of range")
    return number


def _parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidValue("expected a number, got a boolean")
    if isinstance(value, int) and abs(value) > 2**1000:
        raise InvalidValue("number out of range")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and len(value) < 100:
        try:
            number = float(value.strip())
        except ValueError:
            raise InvalidValue(f"expected a number, got {show_value(value)}") from None
    else:
        raise InvalidValue(f"expected a number, got {show_value(value)}")
    if not math.isfinite(number):
        raise InvalidValue(f"expected a finite number, got {show_value(value)}")
    return number


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise InvalidValue(f"expected a boolean (true/false), got {show_value(value)}")


def _parse_string(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"expected a string, got {show_value(value)}")
    if "\x00" in value:
        raise InvalidValue("strings may not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue("strings must be valid Unicode (no lone surrogates)") from None
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidValue(f"strings are limited to {MAX_VALUE_LENGTH} characters")
    return value


def _parse_datetime(value: Any) -> Any:
    try:
        return parse_instant(value)
    except (ValueError, OverflowError, OSError) as exc:
        raise InvalidValue(f"expected a time, {exc}") from None


_PARSERS = {
    "int": _parse_int,
    "float": _parse_float,
    "bool": _parse_bool,
    "string": _parse_string,
    "datetime": _parse_datetime,
}


def parse(data_type: str, value: Any) -> Any:
    """``value`` as a Python value of ``data_type``; InvalidValue when it is not one."""
    if value is None:
        raise InvalidValue("value cannot be null")
    return _PARSERS[data_type](value)


def to_text(data_type: str, parsed: Any) -> str:
    """The canonical stored text of an already parsed value."""
    if data_type == "datetime":
        return format_instant(parsed)
    if data_type == "float":
        return repr(parsed)
    return str(parsed)


def canonical(data_type: str, value: Any) -> str:
    """The canonical text of ``value``; InvalidValue when it is not of ``data_type``."""
    return to_text(data_type, parse(data_type, value))


def same_value(data_type: str, stored: str, reported: str) -> bool:
    """Whether two texts denote the same value of ``data_type`` (``reported`` is canonical)."""
    try:
        return canonical(data_type, stored) == reported
    except InvalidValue:  # a raw write that is not canonical: compare as text
        return stored == reported


def check_value(*, data_type: str, rules: dict[str, Any] | None, value: Any, name: str) -> str:
    """The canonical text of a value set on a parameter of type ``name``; 400 naming the rule."""
    try:
        parsed = parse(data_type, value)
    except InvalidValue as exc:
        raise BadRequest(f"Invalid value for {name} ({data_type}): {exc}") from None
    try:
        rules = check_rules(data_type, rules) or {}
    except BadRequest as exc:
        raise BadRequest(f"Parameter type {name} has unusable rules: {exc.message}") from None
    shown = f"Invalid value for {name}: {show_value(value)}"
    if "min" in rules and parsed < parse(data_type, rules["min"]):
        raise BadRequest(f"{shown} is below the min {show_value(rules['min'])}")
    if "max" in rules and parsed > parse(data_type, rules["max"]):
        raise BadRequest(f"{shown} is above the max {show_value(rules['max'])}")
    text = to_text(data_type, parsed)
    if "choices" in rules and text not in {canonical(data_type, c) for c in rules["choices"]}:
        raise BadRequest(f"{shown} is not one of the choices {show_value(rules['choices'])}")
    if "max_length" in rules and len(text) > rules["max_length"]:
        raise BadRequest(
            f"Invalid value for {name}: longer than max_length {rules['max_length']} characters"
        )
    if "pattern" in rules and not _matches(rules["pattern"], text, name):
        raise BadRequest(f"{shown} does not match the pattern {rules['pattern']!r}")
    return text


def _matches(pattern: str, text: str, name: str) -> bool:
    try:
        return regex.fullmatch(pattern, text, timeout=PATTERN_TIMEOUT_SECONDS) is not None
    except TimeoutError:
        raise BadRequest(
            f"Invalid value for {name}: matching it against the pattern {pattern!r} takes too "
            "long; the parameter type's pattern needs simplifying"
        ) from None


def check_rules(data_type: str, rules: Any) -> dict[str, Any] | None:
    """``rules`` if they are a valid validation_rules object for ``data_type``; 400 otherwise."""
    if rules is None:
        return None
    if not isinstance(rules, dict):
        raise BadRequest("Invalid validation_rules: expected a JSON object")
    for key in rules:
        if key not in RULES:
            raise BadRequest(
                f"Invalid validation_rules: unknown rule {show_value(key)} (known: {RULES})"
            )
        if key not in RULES_FOR[data_type]:
            raise BadRequest(
                f"Invalid validation_rules: {show_value(key)} does not apply to {data_type}"
            )
    for key in ("min", "max"):
        if key in rules:
            if data_type != "datetime" and (
                isinstance(rules[key], bool) or not isinstance(rules[key], int | float)
            ):
                raise BadRequest(f"Invalid validation_rules: {show_value(key)} must be a number")
            _rule_value(data_type, key, rules[key])
    if "min" in rules and "max" in rules:
        low, high = (_rule_value(data_type, k, rules[k]) for k in ("min", "max"))
        if low > high:
            raise BadRequest("Invalid validation_rules: 'min' is greater than 'max'")
    if "choices" in rules:
        choices = rules["choices"]
        if not isinstance(choices, list) or not choices:
            raise BadRequest("Invalid validation_rules: 'choices' must be a non-empty list")
        for choice in choices:
            _rule_value(data_type, "choices", choice)
    if "max_length" in rules:
        limit = rules["max_length"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise BadRequest("Invalid validation_rules: 'max_length' must be an integer >= 0")
    if "pattern" in rules:
        pattern = rules["pattern"]
        if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN_LENGTH:
            raise BadRequest(
                f"Invalid validation_rules: 'pattern' must be a string of at most "
                f"{MAX_PATTERN_LENGTH} characters"
            )
        try:
            regex.compile(pattern)
        except (regex.error, RecursionError, OverflowError, ValueError) as exc:
            raise BadRequest(f"Invalid validation_rules: 'pattern' is not a regex: {exc}") from None
    return rules


def _rule_value(data_type: str, key: str, value: Any) -> Any:
    try:
        return parse(data_type, value)
    except InvalidValue as exc:
        raise BadRequest(f"Invalid validation_rules: {show_value(key)}: {exc}") from None


def check_parameter_type(session: Session, values: dict[str, Any], _p: Any, row: Any) -> None:
    """before_write of the parameter_types resource: the rules must fit the data_type, and the
    data_type of a type changes only while no value of it exists (see :func:`check_retype`)."""
    if "validation_rules" not in values and "data_type" not in values:
        return
    if row is not None and values.get("data_type", row.data_type) != row.data_type:
        check_retype(session, row, values["data_type"])
    data_type = values.get("data_type") or (row.data_type if row is not None else None)
    if data_type not in DATA_TYPES:
        return  # missing or unknown: the null check or the column's choices refuse it
    if "validation_rules" in values or row is None:
        rules = values.get("validation_rules")
    else:
        rules = row.validation_rules
    check_rules(data_type, rules)


def check_retype(session: Session, ptype: Any, data_type: Any) -> None:
    """409 if any value of ``ptype`` exists, on a unit or a part, in any status.

    Stored values are canonical texts of the old data_type: under another they would be pending
    values a unit cannot parse, active values compared wrongly, a history read as something it
    never was. A type that carries values keeps its data_type; a new type is made instead.
    The type's row is locked first (PostgreSQL): a set of a value locks it FOR SHARE
    (``service.parameter_type``), so no value of the old type can be added meanwhile.
    """
    type_id = ptype.parameter_type_id
    session.execute(
        select(ParameterType.parameter_type_id)
        .where(ParameterType.parameter_type_id == type_id)
        .with_for_update()
    )
    for model, where in ((ProductParameter, "units"), (PartParameter, "parts")):
        if session.scalar(select(exists().where(model.parameter_type_id == type_id))):
            raise Conflict(
                f"Cannot change data_type of parameter type {type_id} ({ptype.name}) from "
                f"{ptype.data_type!r} to {show_value(data_type)}: values of it exist on {where}; "
                "create a new parameter type instead"
            )
