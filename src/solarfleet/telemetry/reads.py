"""Reads of a unit's readings: both tiers stitched, then filtered, downsampled and shaped.

``read_points`` is the stitch: the union of what the hot store and then the archive reader
return for the same window, de-duplicated by a reading's identity with the hot store winning (it
holds the newest write of a reading: a late overwrite lands there, and the hot store drops only
what the archive holds). No gap (the union, read in that order: see ``read_points``), no
duplicate (the identity). A read takes at most SOLARFLEET_TELEMETRY_MAX_POINTS readings from
the stores; a window holding more is a 400 saying how to narrow it.

Then, in this order: the tag filter, ``where`` (on rows: the fields of one tag set at one time),
the field selection, downsampling (buckets aligned to the epoch as InfluxQL's ``GROUP BY
time()``, each reported at its start, empty buckets left out), and ``limit`` (values per field,
earliest first). Parameters:

* ``start`` (default: 7 days before ``end``), ``end`` (default: now), inclusive both;
* ``fields``: comma-separated names (default: every field found); a name without readings
  answers an empty list;
* ``measurement`` (default ``telemetry``);
* ``tags``: a JSON object ``{"site": "north"}`` or ``site:north,phase:1`` (no commas or colons
  in keys; JSON for values holding commas);
* ``where``: see ``telemetry/where.py``;
* ``ds_interval`` (``<n>s|m|h|d|w``, 1 second to 52 weeks) and ``ds_function`` (mean, sum, max,
  min, count, first, last): an interval alone means mean; a function alone aggregates the whole
  window into one value at ``start``. mean/sum/max/min use the numeric values only (a bucket
  without any is left out); count, first and last take every kind;
* ``limit``: 1 to 100000 values per field (the default and the most a read answers). Without
  ``where``, ``tags`` and ``ds_*``, each store returns only the earliest ``limit`` readings of
  each field, so a small limit over a window of any size stays cheap.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from solarfleet.auth.principal import Principal
from solarfleet.errors import BadRequest
from solarfleet.fleet.service import check_unit
from solarfleet.telemetry import ingest, rules
from solarfleet.telemetry.hot import HotStore, TooManyReadings
from solarfleet.telemetry.points import US_PER_DAY, Point, Tags, Value, from_us, to_us
from solarfleet.telemetry.store import ArchiveReader
from solarfleet.telemetry.where import Where, parse_where, row_lookup
from solarfleet.timeparse import format_instant, parse_instant

DEFAULT_SPAN_US = 7 * US_PER_DAY
MAX_LIMIT = 100_000
MAX_FIELDS = 100
FUNCTIONS = ("mean", "sum", "max", "min", "count", "first", "last")
INTERVAL = re.compile(r"([1-9][0-9]{0,5})([smhdw])")
UNIT_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": US_PER_DAY}
UNIT_US["w"] = 7 * US_PER_DAY
MAX_INTERVAL_US = 52 * UNIT_US["w"]


def read_points(
    hot: HotStore,
    archive_reader: ArchiveReader | None,
    imei: str,
    start_us: int,
    end_us: int,
    *,
    measurement: str | None = None,
    fields: Sequence[str] | None = None,
    limit: int | None = None,
    max_points: int | None = None,
) -> list[Point]:
    """Hot store ∪ archive in ``[start_us, end_us)``, one point per identity (hot wins),
    ordered by time, measurement, tags and field.

    ``limit``: only the earliest ``limit`` readings of each (measurement, field) are needed
    (each tier is asked for its own earliest ones: the union's earliest are among them).
    ``max_points``: a window holding more readings than this is a 400 (``TooManyReadings``);
    each tier stops reading one past it, so a read's memory is bounded whatever the window.

    The hot store is read FIRST. A migration pass may run meanwhile: it commits readings to the
    archive and only then drops them from the hot store, and the archive never loses a
    reading. So a reading the hot store no longer holds when it is read is already in the
    archive when the archive is read after it: no gap. (Archive first, a pass could archive and
    drop a day between the two reads, and the read would miss it.) Last write wins: the hot
    store holds the newest write of every reading it has (the archive gets its values from
    there), so its value wins; a reading it lacks comes with the archive's value, which is the
    newest one unless written after the hot store was read.
    """
    found = hot.read(
        imei, start_us, end_us, measurement=measurement, fields=fields, limit=limit,
        max_points=max_points,
    )  # fmt: skip
    if max_points is not None and len(found) > max_points:
        raise TooManyReadings(max_points)
    merged: dict[tuple[str, str, Tags, str, int], Point] = {}
    if archive_reader is not None:
        for point in archive_reader(
            imei, start_us, end_us, measurement, fields, limit=limit, max_points=max_points
        ):
            merged[point.key] = point
    for point in found:
        merged[point.key] = point
    if max_points is not None and len(merged) > max_points:
        raise TooManyReadings(max_points)
    return sorted(merged.values(), key=rules.sort_key)


@dataclass(frozen=True)
class DataQuery:
    start_us: int
    end_us: int  # exclusive
    measurement: str = ingest.DEFAULT_MEASUREMENT
    fields: tuple[str, ...] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    where: Where | None = None
    limit: int = MAX_LIMIT
    interval_us: int | None = None
    function: str | None = None
    limit_given: bool = False  # an explicit limit: the stores may be asked for it

    @property
    def store_limit(self) -> int | None:
        """The limit the stores can apply themselves: per field, earliest first, when nothing
        filters or aggregates the readings after them (one more than ``limit``: a field cut at
        the limit is said so in the answer)."""
        plain = self.where is None and not self.tags and self.function is None
        return self.limit + 1 if plain and self.limit_given else None

    @property
    def store_fields(self) -> list[str] | None:
        """What to ask the stores for: the fields, and the names ``where`` reads."""
        if self.fields is None:
            return None
        return sorted(set(self.fields) | (self.where.names if self.where else set()))


def _instant_us(raw: str, name: str) -> int:
    try:
        return to_us(parse_instant(raw))
    except (ValueError, OverflowError, OSError) as exc:
        raise BadRequest(f"Invalid {name} {raw!r}: {exc}") from None


def parse_fields(raw: str) -> tuple[str, ...]:
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        raise BadRequest("Invalid fields: name at least one field, or leave fields out")
    if len(names) > MAX_FIELDS:
        raise BadRequest(f"Invalid fields: at most {MAX_FIELDS} names")
    for name in names:
        ingest.check_field_name(name)
    return tuple(dict.fromkeys(names))


def _nesting(text: str) -> int:
    """How deep JSON ``text`` nests arrays and objects (brackets inside strings not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def parse_tags(raw: str, imei: str) -> dict[str, str]:
    text = raw.strip()
    if text.startswith("{"):
        if _nesting(text) > 1:  # the JSON decoder would recurse as deep as it is nested
            raise BadRequest("Invalid tags: nested deeper than 1 level (a flat object of strings)")
        try:
            given: Any = json.loads(text)
        except ValueError:
            raise BadRequest("Invalid tags: malformed JSON object") from None
        if not isinstance(given, dict):
            raise BadRequest("Invalid tags: expected a JSON object or key:value,…")
    else:
        given = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, colon, value = item.partition(":")
            if not colon:
                raise BadRequest(f"Invalid tags item {item!r}: expected key:value")
            given[key.strip()] = value.strip()
    return ingest.check_tags(given, imei)


def parse_limit(raw: str) -> int:
    text = raw.strip()
    if not (text.isascii() and text.isdigit()):  # int() also takes other scripts' digits
        raise BadRequest(f"Invalid limit {raw!r}: expected an integer")
    limit = int(text[:12])
    if len(text) > 12 or not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"Invalid limit {raw!r}: expected 1 to {MAX_LIMIT}")
    return limit


def parse_interval(raw: str) -> int:
    match = INTERVAL.fullmatch(raw.strip())
    if match is None:
        raise BadRequest(f"Invalid ds_interval {raw!r}: expected <n>s, <n>m, <n>h, <n>d or <n>w")
    interval = int(match[1]) * UNIT_US[match[2]]
    if interval > MAX_INTERVAL_US:
        raise BadRequest(f"Invalid ds_interval {raw!r}: at most 52w")
    return interval


def parse_query(
    *,
    imei: str,
    now_us: int,
    start: str | None = None,
    end: str | None = None,
    fields: str | None = None,
    measurement: str | None = None,
    limit: str | None = None,
    tags: str | None = None,
    where: str | None = None,
    ds_interval: str | None = None,
    ds_function: str | None = None,
) -> DataQuery:
    """The read's parameters, each checked; 400 naming the first bad one."""
    end_us = now_us if end is None else _instant_us(end, "end")
    start_us = end_us - DEFAULT_SPAN_US if start is None else _instant_us(start, "start")
    if start_us > end_us:
        raise BadRequest("Invalid start: it is after end")
    function = None
    if ds_function is not None:
        function = ds_function.strip().lower()
        if function not in FUNCTIONS:
            raise BadRequest(f"Invalid ds_function {ds_function!r}: one of {', '.join(FUNCTIONS)}")
    interval = None if ds_interval is None else parse_interval(ds_interval)
    if interval is not None and function is None:
        function = "mean"
    return DataQuery(
        start_us=start_us,
        end_us=end_us + 1,
        measurement=ingest.check_api_name(measurement or ingest.DEFAULT_MEASUREMENT, "measurement"),
        fields=None if fields is None else parse_fields(fields),
        tags={} if tags is None else parse_tags(tags, imei),
        where=parse_where(where),
        limit=MAX_LIMIT if limit is None else parse_limit(limit),
        limit_given=limit is not None,
        interval_us=interval,
        function=function,
    )


def aggregate(function: str, values: Sequence[Value]) -> Value | None:
    """One bucket's value; None when the function has nothing to work on."""
    if function == "count":
        return len(values)
    if function == "first":
        return values[0]
    if function == "last":
        return values[-1]
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        return None
    if function == "min":
        return min(numbers)
    if function == "max":
        return max(numbers)
    if all(isinstance(v, int) for v in numbers):
        total: Value = sum(numbers)
    else:
        total = math.fsum(numbers)
    return total if function == "sum" else total / len(numbers)


def downsample(
    series: Sequence[tuple[int, Value]], function: str, interval_us: int | None, start_us: int
) -> list[tuple[int, Value]]:
    buckets: dict[int, list[Value]] = {}
    for time_us, value in series:
        bucket = time_us - time_us % interval_us if interval_us else start_us
        buckets.setdefault(bucket, []).append(value)
    out = []
    for bucket, values in buckets.items():
        result = aggregate(function, values)
        if result is not None:
            out.append((bucket, result))
    return out


def shape(imei: str, points: Sequence[Point], query: DataQuery) -> tuple[dict[str, Any], bool]:
    """The answer ``{"measurement", "tags", "<field>": [[value, time], …]}``, and whether a
    field was cut at the limit."""
    rows: dict[tuple[int, Tags], dict[str, Value]] = {}
    wanted_tags = query.tags.items()
    for p in points:
        if p.measurement != query.measurement:
            continue
        if wanted_tags and not wanted_tags <= dict(p.tags).items():
            continue
        rows.setdefault((p.time_us, p.tags), {})[p.field] = p.value
    series: dict[str, list[tuple[int, Value]]] = {name: [] for name in query.fields or ()}
    found: set[str] = set()
    for (time_us, tags), values in rows.items():
        if query.where is not None and not query.where(row_lookup(values, dict(tags))):
            continue
        for name, value in values.items():
            if query.fields is None:
                found.add(name)
                series.setdefault(name, [])
            if name in series:
                series[name].append((time_us, value))
    answer: dict[str, Any] = {
        "measurement": query.measurement,
        "tags": {"imei": imei, **query.tags},
    }
    truncated = False
    for name in query.fields or sorted(found):
        values = series[name]
        if query.function is not None:
            values = downsample(values, query.function, query.interval_us, query.start_us)
        truncated |= len(values) > query.limit
        answer[name] = [[v, format_instant(from_us(t))] for t, v in values[: query.limit]]
    return answer, truncated


def read_data(
    *,
    session: Session,
    principal: Principal,
    hot: HotStore,
    archive_reader: ArchiveReader | None,
    imei: str,
    query: DataQuery,
    max_points: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """A unit's readings as the API answers them (scope-checked: 404 outside the scope); a
    window holding more than ``max_points`` readings is a 400."""
    check_unit(session=session, principal=principal, imei=imei)
    points = read_points(
        hot,
        archive_reader,
        imei,
        query.start_us,
        query.end_us,
        measurement=query.measurement,
        fields=query.store_fields,
        limit=query.store_limit,
        max_points=max_points,
    )
    return shape(imei, points, query)
