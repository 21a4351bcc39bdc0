"""The InfluxDB 1.x hot store, over its HTTP API (``/write`` line protocol, ``/query`` InfluxQL).

The layout (what makes kinds unable to conflict, and fleets of any size fit)::

    <measurement>:<bucket>,imei=<imei>,<tags> <field>:<kind>=<value> <time>

* **The kind is part of the field key** (``battery_voltage:float``, ``mode:str``; kinds
  ``float int bool str``). InfluxDB fixes a field's type per measurement and shard, so with
  plain field keys the first writer of a field decided what every unit could upload (issue
  9.11), a number and a string racing for a new field were both acknowledged and one was
  never read back, and a conflicting upload was half stored (issue 16.1). A key that carries
  its kind has one type forever: no write can conflict, whoever wrote first. The one kind per
  *unit* series that identity needs is the API's rule (``series.py``).
* **The measurement carries a bucket of the imei** (the imei modulo 100, two digits:
  ``telemetry:07``). InfluxDB counts tag values per tag key and measurement
  (``max-values-per-tag``, 100,000 by default): with one measurement the 100,001st unit could
  write nothing (issue 16.3). A hundred measurements hold ten million units at the default;
  ``max-series-per-database`` (1,000,000 by default, one series per unit and tag set) is the
  limit to raise first. A read of one unit names one measurement.
* A reading is one field of one line at microsecond precision, so InfluxDB's own identity
  (series + field key + time) is ours, and a re-sent reading overwrites.

Every name and string reaching line protocol or InfluxQL is escaped here, and checked by
``rules`` first (no control characters, no backslashes), so no text can change the meaning of a
line or a query. ``solarfleet influx upgrade`` (:meth:`InfluxHotStore.upgrade_layout`) moves data
written in the former layout (``<measurement>,imei=…`` with plain field keys) into this one.

Errors: an unreachable server, a timeout or a 5xx is ``ServiceUnavailable`` (503): units keep
their buffer and send again; the answer says only that, the address and the reason are logged.
A write InfluxDB refuses after our own checks (stricter than its own) is not the unit's fault:
a capacity limit (``max-values-per-tag``, ``max-series-per-database``) is a 503 with a longer
Retry-After, anything else a 503 too, logged as an error. Missing rights are a configuration
error said at start-up (:meth:`InfluxHotStore.check_access`), not an outage per request.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from solarfleet.errors import ServiceUnavailable
from solarfleet.telemetry import rules
from solarfleet.telemetry.points import Point, Tags, Value, day_of

log = logging.getLogger("solarfleet")
# httpx logs every request at INFO: a Celery worker (root logger at INFO) would log each
# InfluxDB call of a migration pass. Failures are logged here, by us, with their reason.
logging.getLogger("httpx").setLevel(logging.WARNING)

LINES_PER_REQUEST = 5_000
CHUNK_SIZE = 10_000
BUCKETS = 100  # measurements per API measurement; fixed once data exists
INFLUX_KINDS = {"float": "float", "integer": "int", "boolean": "bool", "string": "str"}
CAPACITY = re.compile(r"max-values-per-tag limit exceeded|max-series-per-database limit exceeded")
CAPACITY_RETRY_AFTER_SECONDS = 60


class CapacityExceeded(ServiceUnavailable):
    """InfluxDB is at a configured capacity limit: the unit keeps its buffer and tries later."""

    headers = {"Retry-After": str(CAPACITY_RETRY_AFTER_SECONDS)}


class InfluxConfigurationError(RuntimeError):
    """InfluxDB refuses what the hot store needs (credentials, rights): said at start-up."""


# -- the layout --------------------------------------------------------------------------------


def bucket(imei: str) -> str:
    """The imei's bucket: the imei modulo BUCKETS, two digits."""
    return f"{int(imei) % BUCKETS:02d}"


def stored_measurement(measurement: str, imei: str) -> str:
    return f"{measurement}:{bucket(imei)}"


def api_measurement(stored: str) -> str | None:
    """The measurement of a stored one; None for one of the former layout."""
    name, sep, tail = stored.rpartition(":")
    return name if sep and len(tail) == 2 and tail.isdigit() else None


def field_key(field: str, kind: str) -> str:
    return f"{field}:{kind}"


def split_field_key(key: str) -> tuple[str, str] | None:
    """(field, kind) of a stored field key; None for one of the former layout."""
    field, sep, kind = key.rpartition(":")
    return (field, kind) if sep and kind in rules.KINDS else None


# -- line protocol -----------------------------------------------------------------------------


def escape_measurement(name: str) -> str:
    return name.replace(",", r"\,").replace(" ", r"\ ")


def escape_key(text: str) -> str:
    """A tag key, tag value or field key."""
    return text.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def format_value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_lines(points: Iterable[Point]) -> list[str]:
    """Line protocol in this module's layout, one line per (measurement, tags, time) holding
    all its fields."""
    rows: dict[tuple[str, str, Tags, int], list[str]] = {}
    for p in points:
        key = field_key(p.field, rules.kind_of(p.value))
        rows.setdefault((p.imei, p.measurement, p.tags, p.time_us), []).append(
            f"{escape_key(key)}={format_value(p.value)}"
        )
    lines = []
    for (imei, measurement, tags, time_us), fields in rows.items():
        series = sorted((*tags, ("imei", imei)))
        tag_text = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in series)
        name = escape_measurement(stored_measurement(measurement, imei))
        lines.append(f"{name}{tag_text} {','.join(fields)} {time_us}")
    return lines


# -- InfluxQL ----------------------------------------------------------------------------------


def ident(name: str) -> str:
    """A double-quoted InfluxQL identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(text: str) -> str:
    """A single-quoted InfluxQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def time_range(start_us: int, end_us: int) -> str:
    lo = max(start_us, rules.MIN_TIME_US) * 1000
    hi = min(end_us, rules.MAX_TIME_US + 1) * 1000
    return f"time >= {lo} AND time < {hi}"


class _Number(str):
    """A JSON number as its text: InfluxDB writes 1.0 as ``1``, so the kind comes from the
    field's type, and ``-0`` or big integers must not be mangled on the way."""


_DECODER = json.JSONDecoder(parse_int=_Number, parse_float=_Number)


def _documents(text: str) -> Iterable[Any]:
    """The JSON documents of a (chunked) answer, one after the other."""
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            return
        doc, pos = _DECODER.raw_decode(text, pos)
        yield doc


def _convert(kind: str | None, raw: Any) -> Value:
    if kind == "float":
        return float(raw)
    if kind == "int":
        return int(raw)
    if kind == "bool" or isinstance(raw, bool):
        return bool(raw)
    if kind == "str":
        return str(raw)
    # A field of the former layout whose type SHOW FIELD KEYS did not tell: judge by the JSON.
    if isinstance(raw, _Number):
        text = str(raw)
        return int(text) if text.lstrip("-").isdigit() else float(text)
    return str(raw)


class _QueryError(Exception):
    pass


class InfluxHotStore:
    """The hot store in InfluxDB 1.x (SOLARFLEET_INFLUX_URL, SOLARFLEET_INFLUX_DATABASE)."""

    def __init__(self, url: str, *, database: str = "solarfleet", timeout: float = 10.0) -> None:
        parsed = httpx.URL(url)
        auth = (parsed.username, parsed.password) if parsed.username else None
        base = parsed.copy_with(username=None, password=None)
        self.url = str(base).rstrip("/")
        self.user = parsed.username or None
        self.database = database
        self._client = httpx.Client(base_url=self.url, auth=auth, timeout=timeout)

    # -- HTTP ----------------------------------------------------------------------------------

    def _unavailable(self, reason: str) -> ServiceUnavailable:
        # The address and the reason are for the log; a client learns only what to do.
        log.warning("InfluxDB at %s is unavailable: %s", self.url, reason)
        return ServiceUnavailable("InfluxDB is unavailable; try again shortly")

    def _post(self, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.post(path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unavailable(f"{type(exc).__name__}: {exc}") from exc
        self._check_status(response)
        return response

    def _check_status(self, response: httpx.Response) -> None:
        if response.status_code >= 500:
            raise self._unavailable(f"HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code in (401, 403):
            # Rights taken away while we run (start-up checked them): the units keep their
            # buffers until an operator restores them.
            log.error("InfluxDB at %s refuses us: %s", self.url, response.text[:300])
            raise ServiceUnavailable("InfluxDB is unavailable; try again shortly")
        return response

    def _query(self, q: str) -> list[dict[str, Any]]:
        """The series of one statement's answer, every chunk included."""
        data = {"q": q, "db": self.database, "epoch": "u", "chunked": "true"}
        data["chunk_size"] = str(CHUNK_SIZE)
        response = self._post("/query", data=data)
        series: list[dict[str, Any]] = []
        try:
            for doc in _documents(response.text):
                if doc.get("error"):
                    raise _QueryError(doc["error"])
                for result in doc.get("results", ()):
                    if result.get("error"):
                        raise _QueryError(result["error"])
                    series.extend(result.get("series", ()))
        except ValueError as exc:
            raise self._unavailable(f"an unreadable answer: {exc}") from exc
        return series

    def _query_capped(
        self, q: str, max_values: int, per_statement: int | None = None
    ) -> list[dict[str, Any]]:
        """Like _query, but the answer is read chunk by chunk (one JSON document a line) and
        left unread once its series hold more than ``max_values`` values (counting at most
        ``per_statement`` of each statement): a read's memory is bounded whatever the window
        holds."""
        data = {"q": q, "db": self.database, "epoch": "u", "chunked": "true"}
        data["chunk_size"] = str(CHUNK_SIZE)
        series: list[dict[str, Any]] = []
        counts: dict[int, int] = {}
        try:
            with self._client.stream("POST", "/query", data=data) as response:
                if response.status_code >= 500 or response.status_code in (401, 403):
                    response.read()
                    self._check_status(response)
                for line in response.iter_lines():
                    for doc in _documents(line):
                        if doc.get("error"):
                            raise _QueryError(doc["error"])
                        for result in doc.get("results", ()):
                            if result.get("error"):
                                raise _QueryError(result["error"])
                            statement = int(result.get("statement_id", 0))
                            for s in result.get("series", ()):
                                series.append(s)
                                counts[statement] = counts.get(statement, 0) + sum(
                                    sum(c is not None for c in row[1:])
                                    for row in s.get("values") or ()
                                )
                    capped = (min(n, per_statement or n) for n in counts.values())
                    if sum(capped) > max_values:
                        break
        except httpx.HTTPError as exc:
            raise self._unavailable(f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:
            raise self._unavailable(f"an unreadable answer: {exc}") from exc
        return series

    def _read_query(
        self, q: str, max_values: int | None = None, per_statement: int | None = None
    ) -> list[dict[str, Any]]:
        """Like _query (or _query_capped); a missing database holds nothing."""
        try:
            if max_values is not None:
                return self._query_capped(q, max_values, per_statement)
            return self._query(q)
        except _QueryError as exc:
            if "database not found" in str(exc):
                return []
            raise self._unavailable(f"a query failed: {exc}") from exc

    def _create_database(self) -> None:
        try:
            self._query(f"CREATE DATABASE {ident(self.database)}")
        except _QueryError as exc:
            raise self._unavailable(f"cannot create the database: {exc}") from exc

    def drop_database(self) -> None:
        """Remove the whole database (tests, and resetting a development machine)."""
        try:
            self._query(f"DROP DATABASE {ident(self.database)}")
        except _QueryError as exc:
            raise self._unavailable(f"cannot drop the database: {exc}") from exc

    # -- start-up ------------------------------------------------------------------------------

    def check_access(self) -> None:
        """At start-up: the database exists (created when we may) and we may read and write it.

        InfluxConfigurationError saying what to do when InfluxDB refuses our credentials or a
        right: an ordinary user needs READ and WRITE on an existing database (``GRANT ALL ON
        "<db>" TO "<user>"``, which is not admin); only an admin may create it. A server that
        is down or does not answer is only logged: uploads answer 503 until it is back.
        """
        try:
            self._check_access()
        except ServiceUnavailable:
            log.warning("InfluxDB at %s did not answer the start-up check", self.url)

    def _check_access(self) -> None:
        db, user = self.database, self.user or "(no user)"
        # One privilege per user and database in InfluxDB 1.x: ALL is READ and WRITE (not admin).
        grant = f"GRANT ALL ON {ident(db)} TO {ident(user)}"

        def refused(what: str, detail: str) -> InfluxConfigurationError:
            return InfluxConfigurationError(
                f"InfluxDB at {self.url} refuses {what} (user {user}, database {db!r}): "
                f"{detail[:300]}"
            )

        response = self._raw("/query", data={"q": "SHOW DATABASES"})
        if response.status_code == 401:
            raise refused("our credentials", "check SOLARFLEET_INFLUX_URL's user and password")
        names = {row[0] for s in self._series(response) for row in s.get("values") or ()}
        if db not in names:
            response = self._raw("/query", data={"q": f"CREATE DATABASE {ident(db)}"})
            if response.status_code != 200 or "error" in response.text:
                raise refused(
                    "to create the database",
                    f"create it as an admin (CREATE DATABASE {ident(db)}; {grant}) "
                    f"({response.text.strip()})",
                )
        response = self._raw("/query", data={"q": "SHOW MEASUREMENTS LIMIT 1", "db": db})
        if response.status_code in (401, 403) or "not authorized" in response.text:
            raise refused("to read", f"{grant} ({response.text.strip()})")
        response = self._raw("/write", params={"db": db, "precision": "u"}, content=b"")
        if response.status_code in (401, 403):
            raise refused("to write", f"{grant} ({response.text.strip()})")
        legacy = self._legacy_measurements()
        if legacy:
            log.warning(
                "InfluxDB database %r holds %d measurements of the former layout (%s): their "
                "readings are not read until `solarfleet telemetry upgrade-influx` moves them",
                db, len(legacy), ", ".join(legacy[:5]),
            )  # fmt: skip

    def _raw(self, path: str, **kwargs: Any) -> httpx.Response:
        """A request whose 4xx the caller judges; unreachable or 5xx is ServiceUnavailable."""
        try:
            response = self._client.post(path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unavailable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise self._unavailable(f"HTTP {response.status_code}: {response.text[:200]}")
        return response

    @staticmethod
    def _series(response: httpx.Response) -> list[dict[str, Any]]:
        try:
            return [
                s for doc in _documents(response.text) for r in doc.get("results", ())
                for s in r.get("series", ())
            ]  # fmt: skip
        except ValueError:
            return []

    # -- the HotStore interface ----------------------------------------------------------------

    def write(self, points: Sequence[Point]) -> int:
        unique, _kinds = rules.prepare(points)
        if not unique:
            return 0
        lines = to_lines(unique)
        for i in range(0, len(lines), LINES_PER_REQUEST):
            self._write_lines("\n".join(lines[i : i + LINES_PER_REQUEST]).encode())
        return len(unique)

    def _write_lines(self, body: bytes) -> None:
        params = {"db": self.database, "precision": "u"}
        response = self._post("/write", params=params, content=body)
        if response.status_code == 404 and "database not found" in response.text:
            self._create_database()
            response = self._post("/write", params=params, content=body)
        if response.status_code in (200, 204):
            return
        try:
            message = str(response.json().get("error", response.text))
        except ValueError:
            message = response.text
        # Our checks are stricter than InfluxDB's: a refusal is not the unit's data at fault,
        # so the unit must keep its buffer (a 400 would make it drop it). Part of the lines
        # may be stored ("partial write"): sent again, they overwrite.
        log.error("InfluxDB at %s refused points: %s", self.url, message[:300])
        if CAPACITY.search(message):
            raise CapacityExceeded("InfluxDB is at a capacity limit; try again later")
        raise ServiceUnavailable("InfluxDB refused the points; try again later")

    def read(
        self,
        imei: str,
        start_us: int,
        end_us: int,
        *,
        measurement: str | None = None,
        fields: Sequence[str] | None = None,
        limit: int | None = None,
        max_points: int | None = None,
    ) -> list[Point]:
        rules.check_imei(imei)
        rules.check_selection(measurement, fields)
        if start_us >= end_us or (fields is not None and not fields):
            return []
        source = self._source(imei, measurement)
        where = f'"imei"::tag = {literal(imei)} AND {time_range(start_us, end_us)}'
        if fields is None:
            keys = None
        else:
            keys = [field_key(f, kind) for f in sorted(set(fields)) for kind in rules.KINDS]
        if limit is None:
            selection = "*" if keys is None else ", ".join(f"{ident(k)}::field" for k in keys)
            statements = [f"SELECT {selection} FROM {source} WHERE {where} GROUP BY *"]
        else:
            # LIMIT counts rows per series: one statement per field key makes it values per
            # field and tag set, and the earliest ``limit`` of the field are among those.
            if keys is None:
                keys = sorted(
                    {key for s in self._read_query(f"SHOW FIELD KEYS FROM {source}")
                     for key, _type in s.get("values") or ()}
                )  # fmt: skip
            per_key = f"FROM {source} WHERE {where} GROUP BY * LIMIT {int(limit)}"
            statements = [f"SELECT {ident(k)}::field {per_key}" for k in keys]
        if not statements:
            return []
        series = self._read_query("; ".join(statements), max_points, limit)
        points = []
        for s in series:
            name = api_measurement(s["name"])
            if name is None:
                continue
            tags = tuple(
                sorted((k, v) for k, v in (s.get("tags") or {}).items() if v and k != "imei")
            )
            columns = [split_field_key(c) for c in s["columns"][1:]]
            for row in s.get("values") or ():
                time_us = int(row[0])
                for column, raw in zip(columns, row[1:], strict=True):
                    if raw is not None and column is not None:
                        field, kind = column
                        points.append(Point(imei, name, tags, field, time_us, _convert(kind, raw)))
        points.sort(key=rules.sort_key)
        if limit is not None:  # LIMIT was per tag set: the earliest of the field's
            taken: dict[tuple[str, str], int] = {}
            earliest = []
            for p in points:
                n = taken.get((p.measurement, p.field), 0)
                if n < limit:
                    taken[(p.measurement, p.field)] = n + 1
                    earliest.append(p)
            points = earliest
        return points

    @staticmethod
    def _source(imei: str, measurement: str | None) -> str:
        """The FROM of one unit's readings: its bucket of one measurement, or of all."""
        if measurement is not None:
            return ident(stored_measurement(measurement, imei))
        return f"/:{bucket(imei)}$/"

    def counts_by_day(self, imei: str, start_us: int, end_us: int) -> dict[int, int]:
        rules.check_imei(imei)
        if start_us >= end_us:
            return {}
        series = self._read_query(
            f'SELECT count(*) FROM {self._source(imei, None)} WHERE "imei"::tag = {literal(imei)}'
            f" AND {time_range(start_us, end_us)} GROUP BY time(1d) fill(none)"
        )
        counts: dict[int, int] = {}
        for s in series:
            if api_measurement(s["name"]) is None:
                continue
            for row in s.get("values") or ():
                n = sum(int(c) for c in row[1:] if c is not None)
                if n:
                    day = day_of(int(row[0]))
                    counts[day] = counts.get(day, 0) + n
        return counts

    def drop(self, imei: str, start_us: int, end_us: int) -> int:
        rules.check_imei(imei)
        dropped = sum(self.counts_by_day(imei, start_us, end_us).values())
        if dropped:
            try:
                self._query(
                    f'DELETE FROM {self._source(imei, None)} WHERE "imei" = {literal(imei)}'
                    f" AND {time_range(start_us, end_us)}"
                )
            except _QueryError as exc:
                raise self._unavailable(f"a delete failed: {exc}") from exc
        return dropped

    # -- the former layout --------------------------------------------------------------------

    def upgrade_layout(self) -> int:
        """Move readings of the former layout (``<measurement>,imei=…`` with plain field keys,
        one type per field) into this one, unit by unit, then drop each former measurement;
        the readings moved. Run again after an interruption, it copies again (overwriting,
        never duplicating) and drops. Run it with no API process of the former version left."""
        every = time_range(rules.MIN_TIME_US, rules.MAX_TIME_US + 1)
        moved = 0
        for name in self._legacy_measurements():
            kinds: dict[str, str] = {}
            for s in self._read_query(f"SHOW FIELD KEYS FROM {ident(name)}"):
                for key, influx_type in s.get("values") or ():
                    kinds.setdefault(key, INFLUX_KINDS.get(influx_type, "str"))
            found = self._read_query(f'SHOW TAG VALUES FROM {ident(name)} WITH KEY = "imei"')
            for imei in sorted({row[1] for s in found for row in s.get("values") or ()}):
                if not (imei.isascii() and imei.isdigit() and len(imei) <= 15):
                    continue  # not a unit of ours: left out (and dropped with the measurement)
                series = self._read_query(
                    f'SELECT * FROM {ident(name)} WHERE "imei"::tag = {literal(imei)}'
                    f" AND {every} GROUP BY *"
                )
                points = []
                for s in series:
                    tags = tuple(
                        sorted(
                            (k, v) for k, v in (s.get("tags") or {}).items() if v and k != "imei"
                        )
                    )
                    for row in s.get("values") or ():
                        for field, raw in zip(s["columns"][1:], row[1:], strict=True):
                            if raw is not None:
                                value = _legacy_value(kinds.get(field), raw)
                                points.append(Point(imei, name, tags, field, int(row[0]), value))
                for kind in rules.KINDS:  # a field's type could differ between shards
                    moved += self.write([p for p in points if rules.kind_of(p.value) == kind])
            try:
                self._query(f"DROP MEASUREMENT {ident(name)}")
            except _QueryError as exc:
                raise self._unavailable(f"cannot drop {name!r}: {exc}") from exc
        return moved

    def _legacy_measurements(self) -> list[str]:
        names = self._read_query("SHOW MEASUREMENTS")
        return [
            row[0]
            for s in names
            for row in s.get("values") or ()
            if api_measurement(row[0]) is None
        ]

    def close(self) -> None:
        self._client.close()


def _legacy_value(kind: str | None, raw: Any) -> Value:
    try:
        return _convert(kind, raw)
    except ValueError:  # this shard held another type than SHOW FIELD KEYS said
        return _convert(None, raw)
