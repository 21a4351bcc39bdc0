"""Uploads of readings: ``{"measurement", "tags", "fields": {"<field>": [[time, value], …]}}``.

Rules (a request breaking any of them is a 400 naming the first culprit, and nothing is written):

* ``measurement`` (default ``telemetry``), tag keys and field names match ``NAME``
  (letters, digits, ``_ . -``, at most 64); ``time``, ``imei``, ``measurement`` and ``tags`` are
  no field names (the last two are keys of the read answer), ``time`` is no tag key.
* Tag values are strings of 1 to 256 characters without control characters or backslashes.
  The unit's imei is added as the tag ``imei``; a client ``imei`` tag equal to the unit's is
  accepted (and redundant), any other value is refused.
* A point is ``[time, value]``. Time: epoch milliseconds (a number or a string of digits),
  ISO-8601 with or without zone, or a date; between 1970-01-01 and 2200-01-01 (UTC).
* Plausible instants: a point whose time lies outside the upload's :class:`Window` (from
  ``telemetry_earliest``, default 2000-01-01, to ``telemetry_future_seconds`` past the server's
  clock) is *set aside*: not stored, counted, and named in the answer, which stays a 2xx so that
  the unit drops its buffer rather than re-send a clock error forever, and keeps its other
  readings. Epoch seconds sent where milliseconds are expected land in January 1970: set aside.
* Values: JSON numbers are stored as floats (InfluxDB's own default: ``12`` and ``12.5`` are the
  same kind, so a unit never trips over a type conflict between uploads), booleans as booleans,
  strings (at most 4096 characters, no NUL) as strings; ``null``, NaN and infinities are refused.
  All values of one field in a request have one kind. Across uploads a *unit's* series
  (measurement, tags, field) keeps the kind of its first reading (a later conflict is a 400
  naming the field); other units, tag sets and measurements choose freely (``series.py``).
* Bounded work: at most ``MAX_FIELDS`` fields and ``MAX_POINTS`` points per request (one
  measurement and one tag set: at most ``MAX_FIELDS`` series), and at most
  ``telemetry_max_series_per_unit`` series per unit; each limit is a 400 naming it. The same
  (field, time) twice in a request: the last one wins; the answer counts distinct readings.

Order of writes, which is what makes losing a reading impossible: everything is validated first;
then the unit's dirty-since mark (the oldest time of the upload) and its new series are committed
(one transaction: the mark's lock makes the kind check atomic per unit); only then do the
points go to the hot store; only then does the client get a 2xx. A hot store that is down is a
503 after the mark was committed: the mark is harmless (the migration finds nothing new) and the
unit keeps its buffer and sends again; re-sent readings overwrite, never duplicate.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from solarfleet.errors import BadRequest
from solarfleet.telemetry import rules, series
from solarfleet.telemetry.dirty import commit_mark
from solarfleet.telemetry.hot import HotStore
from solarfleet.telemetry.points import Point, Value, from_us, normal_tags, to_us
from solarfleet.timeparse import format_instant, parse_instant

log = logging.getLogger(__name__)

MAX_POINTS = 50_000
MAX_FIELDS = 256
MAX_TAGS = 32
MAX_TAG_VALUE = 256
MAX_STRING = 4096
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
RESERVED_FIELDS = frozenset({"time", "imei", "measurement", "tags"})
EARLIEST_US = 0
LATEST_US = to_us(datetime(2200, 1, 1))
DEFAULT_MEASUREMENT = "telemetry"


def lone_surrogate(text: str) -> str | None:
    """The first lone surrogate in ``text`` as ``\\udXXX`` (JSON escapes one may hold; no store
    can encode it as UTF-8), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"\\u{ord(text[exc.start]):04x}"
    return None


def check_api_name(name: object, what: str) -> str:
    """A measurement, tag key or field name from a request; 400 naming it otherwise."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise BadRequest(f"Invalid {what} {name!r}: use 1 to 64 letters, digits, '_', '.' or '-'")
    return name


def check_field_name(name: object) -> str:
    check_api_name(name, "field name")
    if name in RESERVED_FIELDS:
        raise BadRequest(f"Invalid field name {name!r}: reserved")
    return name  # type: ignore[return-value]


def check_tags(raw: Mapping[str, Any], imei: str) -> dict[str, str]:
    """The client's tags, checked, without the imei tag (which every reading gets anyway)."""
    if len(raw) > MAX_TAGS:
        raise BadRequest(f"Too many tags: {len(raw)}; at most {MAX_TAGS}")
    tags = {}
    for key, value in raw.items():
        check_api_name(key, "tag key")
        if not isinstance(value, str):
            raise BadRequest(f"Invalid value of tag {key!r}: expected a string")
        if key == "imei":
            if value != imei:
                raise BadRequest(f"Invalid tag imei {value!r}: this unit is #{imei}")
            continue
        if key == "time":
            raise BadRequest("Invalid tag key 'time': reserved")
        if len(value) > MAX_TAG_VALUE:
            raise BadRequest(f"Invalid value of tag {key!r}: longer than {MAX_TAG_VALUE}")
        rules.check_name(value, f"value of tag {key!r}")
        surrogate = lone_surrogate(value)
        if surrogate:
            raise BadRequest(f"Invalid value of tag {key!r}: a lone surrogate {surrogate}")
        tags[key] = value
    return tags


def parse_time(raw: object) -> int:
    """A point's time as epoch microseconds; ValueError with the reason otherwise."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        time_us = raw * 1000  # epoch milliseconds, exactly
    else:
        try:
            time_us = to_us(parse_instant(raw))
        except (ValueError, OverflowError, OSError) as exc:
            raise ValueError(f"invalid time {raw!r}: {exc}") from None
    if not EARLIEST_US <= time_us < LATEST_US:
        raise ValueError(f"time {raw!r} is out of range (1970-01-01 to 2200-01-01)")
    return time_us


@dataclass(frozen=True)
class Window:
    """The instants an upload's points may have to be stored: ``earliest`` to ``latest``, both
    included (naive UTC)."""

    earliest: datetime
    latest: datetime

    @classmethod
    def around(cls, now: datetime, *, earliest: datetime, future_seconds: float) -> Window:
        return cls(earliest=earliest, latest=now + timedelta(seconds=future_seconds))


class Upload(rules.CheckedPoints):
    """The points of an upload to store, and a tally of those set aside outside its window."""

    def __init__(self, window: Window | None = None) -> None:
        super().__init__()
        self.window = window
        self.too_early = 0
        self.too_late = 0
        self.earliest_set_aside: int | None = None
        self.latest_set_aside: int | None = None

    @property
    def set_aside(self) -> int:
        return self.too_early + self.too_late

    def keep(self, time_us: int, earliest_us: int, latest_us: int) -> bool:
        """Whether a point at ``time_us`` is stored; counts it as set aside otherwise."""
        if earliest_us <= time_us <= latest_us:
            return True
        if time_us < earliest_us:
            self.too_early += 1
        else:
            self.too_late += 1
        if self.earliest_set_aside is None or time_us < self.earliest_set_aside:
            self.earliest_set_aside = time_us
        if self.latest_set_aside is None or time_us > self.latest_set_aside:
            self.latest_set_aside = time_us
        return False

    def note(self) -> str:
        """Why points were set aside, e.g. for the answer's message ('' when none were)."""
        if not self.set_aside or self.window is None:
            return ""
        reasons = []
        for count, where, why in (
            (
                self.too_early,
                self.window.earliest,
                "epoch seconds where milliseconds are expected?",
            ),
            (self.too_late, self.window.latest, "a clock ahead?"),
        ):
            if count:
                side = "before" if where is self.window.earliest else "after"
                their = "their times lie" if count == self.set_aside else f"{count} lie"
                reasons.append(f"{their} {side} {_day_or_instant(where)} ({why})")
        points = "point" if self.set_aside == 1 else "points"
        return f"{self.set_aside} {points} set aside: " + "; ".join(reasons)

    def tally(self) -> dict[str, object]:
        """The answer's keys about points set aside."""
        return {
            "set_aside": self.set_aside,
            "earliest_set_aside": _instant(self.earliest_set_aside),
            "latest_set_aside": _instant(self.latest_set_aside),
        }


def _day_or_instant(moment: datetime) -> str:
    return (
        moment.date().isoformat()
        if moment.time() == datetime.min.time()
        else (format_instant(moment))
    )


def _instant(time_us: int | None) -> str | None:
    return None if time_us is None else format_instant(from_us(time_us))


def parse_value(raw: object) -> Value:
    """A point's value as stored; ValueError with the reason otherwise."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float):
        try:
            value = float(raw)
        except OverflowError:
            raise ValueError("the number is too large") from None
        if not math.isfinite(value):
            raise ValueError("NaN and infinities are not values")
        return value
    if isinstance(raw, str):
        if len(raw) > MAX_STRING:
            raise ValueError(f"the string is longer than {MAX_STRING} characters")
        if "\x00" in raw:
            raise ValueError("the string contains a NUL character")
        surrogate = lone_surrogate(raw)
        if surrogate:
            raise ValueError(f"the string contains a lone surrogate {surrogate}")
        return raw
    if raw is None:
        raise ValueError("null is not a value")
    raise ValueError("a value is a number, a boolean or a string")


_LATEST_MS = LATEST_US // 1000


def _reading(pair: object) -> tuple[int, Value, str]:
    """One ``[time, value]``: (time in epoch microseconds, value, its kind); ValueError with the
    reason otherwise. The form units send (epoch milliseconds, a finite float) is checked
    directly; every other form goes through :func:`parse_time` and :func:`parse_value`."""
    if type(pair) is not list or len(pair) != 2:
        raise ValueError("expected [time, value]")
    raw_time, raw_value = pair
    if type(raw_time) is int and 0 <= raw_time < _LATEST_MS:
        time_us = raw_time * 1000
    else:
        time_us = parse_time(raw_time)
    if type(raw_value) is float and math.isfinite(raw_value):
        return time_us, raw_value, "float"
    value = parse_value(raw_value)
    return time_us, value, rules.kind_of(value)


def parse_upload(
    *,
    imei: str,
    measurement: object,
    tags: Mapping[str, Any],
    fields: Mapping[str, Any],
    window: Window | None = None,
) -> Upload:
    """The readings of one upload, every rule checked (see the module's docstring; they are
    stricter than the hot stores' own, which need not check these points again); those outside
    ``window`` (when given) are set aside, counted, and logged once (INFO)."""
    name = check_api_name(measurement, "measurement")
    tag_tuple = normal_tags(check_tags(tags, imei))
    if not isinstance(fields, Mapping):
        raise BadRequest("Invalid fields: expected an object of field name -> [[time, value], …]")
    if len(fields) > MAX_FIELDS:
        raise BadRequest(f"Too many fields: {len(fields)}; at most {MAX_FIELDS} per request")
    total = sum(len(v) for v in fields.values() if isinstance(v, Sequence))
    if total > MAX_POINTS:
        raise BadRequest(f"Too many points: {total}; at most {MAX_POINTS} per request")
    points = Upload(window)
    earliest_us, latest_us = EARLIEST_US, LATEST_US - 1
    if window is not None:
        earliest_us = max(earliest_us, to_us(window.earliest))
        latest_us = min(latest_us, to_us(window.latest))
    for field, pairs in fields.items():
        check_field_name(field)
        if not isinstance(pairs, list):
            raise BadRequest(f"Invalid field {field!r}: expected a list of [time, value]")
        kind = None
        for i, pair in enumerate(pairs):
            try:
                time_us, value, this = _reading(pair)
                if kind is not None and this != kind:
                    raise ValueError(f"a {this} value in a field of {kind} values")
                kind = this
            except ValueError as exc:
                raise BadRequest(f"Invalid point {field}[{i}]: {exc}") from None
            if points.keep(time_us, earliest_us, latest_us):
                points.append(Point(imei, name, tag_tuple, field, time_us, value))
                points.kinds[(name, tag_tuple, field)] = this
    if points.set_aside:
        log.info(
            "Upload for #%s: %s (of %d; earliest %s, latest %s)",
            imei, points.note(), points.set_aside + len(points),
            _instant(points.earliest_set_aside), _instant(points.latest_set_aside),
        )  # fmt: skip
    return points


def store_upload(
    *,
    session: Session,
    hot: HotStore,
    imei: str,
    points: Sequence[Point],
    max_series: int = series.DEFAULT_MAX_SERIES_PER_UNIT,
) -> int:
    """Mark the unit dirty, check and record its series' kinds, COMMIT, then write to the hot
    store; the readings written.

    The mark goes first so that the migration can never miss a reading the hot store holds,
    and again after the write: a pass that read the hot store between the first mark and the
    write, and then cleared the mark, would otherwise leave these readings unmarked.
    """
    if not points:
        return 0
    oldest = min(p.time_us for p in points)
    # The mark locks the unit's mark row first; the series' kinds are registered behind it.
    commit_mark(
        session=session,
        imei=imei,
        oldest_us=oldest,
        then=lambda: series.register(
            session=session, imei=imei, kinds=series.kinds_of(points), limit=max_series
        ),
    )  # 404 if the unit is gone
    written = hot.write(points)
    commit_mark(session=session, imei=imei, oldest_us=oldest)
    return written
