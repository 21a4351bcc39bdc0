"""What every hot store accepts, checked the same way by both so that they keep one contract.

These are the limits of InfluxDB 1.x line protocol, applied to the embedded store too: a text
that one store could hold and the other not would make the two disagree.

* Names (measurement, tag keys, field names) and tag values are non-empty texts without control
  characters (a newline ends a line-protocol line) and without backslashes (InfluxDB keeps a
  backslash in a tag literally, except before a space, comma or ``=``, and a trailing one
  swallows the separator: no escaping makes every text round-trip).
* A measurement does not start with ``#`` (a comment line in line protocol).
* ``time`` is neither a tag key nor a field name; ``imei`` is no tag key (the store adds it).
* Values: finite floats, 64-bit integers, booleans, strings (any text, up to 64 KiB).
* One kind of value per (measurement, field) within one write, a conflict being a 400. Across
  writes the stores keep any kind: the API holds each unit's series to one kind (``series.py``).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence

from solarfleet.errors import BadRequest
from solarfleet.telemetry.points import Point, Tags, Value

KINDS = ("float", "int", "bool", "str")
MAX_STRING = 65_536
INT64 = 2**63
# InfluxDB holds int64 nanoseconds; our microseconds stay inside that with a margin.
MIN_TIME_US = -(INT64 // 1000) + 1
MAX_TIME_US = INT64 // 1000 - 1


def kind_of(value: Value) -> str:
    """The kind of a value: float, int, bool or str (bool before int: True is an int)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    raise BadRequest(f"Unsupported value type {type(value).__name__}")


def _text_problem(text: object) -> str | None:
    if not isinstance(text, str) or not text:
        return "is empty"
    if "\\" in text:
        return "contains a backslash"
    if any(unicodedata.category(c) == "Cc" for c in text):
        return "contains a control character"
    return None


def check_name(text: object, what: str) -> str:
    """``text`` if it can be a name or tag value in every store; BadRequest otherwise."""
    problem = _text_problem(text)
    if problem:
        raise BadRequest(f"Invalid {what} {text!r}: it {problem}")
    return text  # type: ignore[return-value]


def check_imei(imei: object) -> str:
    if not (isinstance(imei, str) and imei.isascii() and imei.isdigit() and len(imei) <= 15):
        raise BadRequest(f"Invalid IMEI {imei!r}: expected 1 to 15 digits")
    return imei


class CheckedPoints(list[Point]):
    """Points already held to every rule of this module (and to stricter ones): the upload
    parser makes these, and the stores do not check them again, point by point. ``kinds``:
    the kind of each (measurement, tags, field) among them, as the parser found it (one per
    series: it refuses two), so that nothing asks each point again."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: dict[tuple[str, Tags, str], str] = {}


def check_series(point: Point) -> None:
    """The rules on what names a point: unit, measurement, tags and field."""
    check_imei(point.imei)
    check_name(point.measurement, "measurement")
    if point.measurement.startswith("#"):
        raise BadRequest(f"Invalid measurement {point.measurement!r}: it starts with '#'")
    for key, value in point.tags:
        check_name(key, "tag key")
        check_name(value, f"value of tag {key!r}")
        if key in ("time", "imei"):
            raise BadRequest(f"Invalid tag key {key!r}: reserved")
    check_name(point.field, "field name")
    if point.field == "time":
        raise BadRequest("Invalid field name 'time': reserved")


def check_reading(point: Point) -> str:
    """The rules on a point's time and value; its kind."""
    if not MIN_TIME_US <= point.time_us <= MAX_TIME_US:
        raise BadRequest(f"Time {point.time_us} of field {point.field!r} is out of range")
    kind = kind_of(point.value)
    if kind == "float" and not math.isfinite(point.value):  # type: ignore[arg-type]
        raise BadRequest(f"Value of field {point.field!r} is not a finite number")
    if kind == "int" and not -INT64 <= point.value < INT64:  # type: ignore[operator]
        raise BadRequest(f"Value of field {point.field!r} does not fit in 64 bits")
    if kind == "str" and len(point.value) > MAX_STRING:  # type: ignore[arg-type]
        raise BadRequest(f"Value of field {point.field!r} is longer than {MAX_STRING} characters")
    return kind


def prepare(points: Iterable[Point]) -> tuple[list[Point], dict[tuple[str, str], str]]:
    """Checked points, de-duplicated by identity (the last one wins), and the kind of each
    (measurement, field); BadRequest when a field gets two kinds. The names of a series are
    checked once per series; :class:`CheckedPoints` are not checked again."""
    kinds: dict[tuple[str, str], str] = {}
    if isinstance(points, CheckedPoints):
        for (measurement, _tags, field), kind in points.kinds.items():
            _one_kind(kinds, measurement, field, kind)
        # a Point's first five fields are its identity (Point.key)
        return list({p[:5]: p for p in points}.values()), kinds
    unique: dict[tuple[str, str, tuple[tuple[str, str], ...], str, int], Point] = {}
    series: set[tuple[str, str, tuple[tuple[str, str], ...], str]] = set()
    for point in points:
        name = (point.imei, point.measurement, point.tags, point.field)
        if name not in series:
            check_series(point)
            series.add(name)
        _one_kind(kinds, point.measurement, point.field, check_reading(point))
        unique[point.key] = point
    return list(unique.values()), kinds


def _one_kind(kinds: dict[tuple[str, str], str], measurement: str, field: str, kind: str) -> None:
    seen = kinds.setdefault((measurement, field), kind)
    if seen != kind:
        raise BadRequest(
            f"Field {field!r} of measurement {measurement!r} gets both {seen} and {kind} values"
        )


def check_selection(measurement: str | None, fields: Sequence[str] | None) -> None:
    """Names a read may ask for (they reach a query language in InfluxDB)."""
    if measurement is not None:
        check_name(measurement, "measurement")
    for field in fields or ():
        check_name(field, "field name")


def sort_key(point: Point) -> tuple[int, str, tuple[tuple[str, str], ...], str]:
    """The order reads return: time, then measurement, tags and field (deterministic)."""
    return (point.time_us, point.measurement, point.tags, point.field)
