"""The InfluxDB 1.x hot store, over its HTTP API (``/write`` line protocol, ``/query`` InfluxQL).

A reading is one field of one line: ``<measurement>,imei=<imei>,<tags> <field>=<value> <time>``
at microsecond precision, so InfluxDB's own identity (series + field + time) is ours and a
re-sent reading overwrites. Every name and string reaching line protocol or InfluxQL is escaped
here, and checked by ``rules`` first (no control characters, no backslashes), so no text can
change the meaning of a line or a query.

InfluxDB keeps one type per (measurement, field); a write that contradicts it would be a
*partial* write (the other points land). Before writing, the field types are checked against
``SHOW FIELD KEYS`` (cached), so that a conflict is a 400 with nothing written; one that slips
through (a concurrent first write) is still a 400 naming the field.

An unreachable server, a timeout or a 5xx is ``ServiceUnavailable`` (503): units keep their
buffer and send again. The answer says only that; the address and the reason are logged.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from solarfleet.errors import BadRequest, ServiceUnavailable
from solarfleet.telemetry import rules
from solarfleet.telemetry.points import Point, Tags, Value, day_of

log = logging.getLogger("solarfleet")

LINES_PER_REQUEST = 5_000
CHUNK_SIZE = 10_000
INFLUX_KINDS = {"float": "float", "integer": "int", "boolean": "bool", "string": "str"}
KIND_NAMES = {"float": "float", "int": "integer", "bool": "boolean", "str": "string"}
TYPE_CONFLICT = re.compile(
    r'input field "(?P<field>.*)" on measurement "(?P<measurement>.*)" is type (?P<sent>\w+),'
    r" already exists as type (?P<stored>\w+)"
)


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
    """Line protocol, one line per (measurement, tags, time) holding all its fields."""
    rows: dict[tuple[str, str, Tags, int], list[str]] = {}
    for p in points:
        rows.setdefault((p.imei, p.measurement, p.tags, p.time_us), []).append(
            f"{escape_key(p.field)}={format_value(p.value)}"
        )
    lines = []
    for (imei, measurement, tags, time_us), fields in rows.items():
        series = sorted((*tags, ("imei", imei)))
        tag_text = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in series)
        lines.append(f"{escape_measurement(measurement)}{tag_text} {','.join(fields)} {time_us}")
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
    # A field written after SHOW FIELD KEYS answered: judge by the JSON itself.
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
        self.database = database
        self._client = httpx.Client(base_url=self.url, auth=auth, timeout=timeout)
        self._lock = threading.Lock()
        self._database_ready = False
        self._kinds: dict[tuple[str, str], str] = {}  # (measurement, field) -> kind

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
            raise self._unavailable("it refused our credentials")

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

    def _ensure_database(self, *, again: bool = False) -> None:
        with self._lock:
            if self._database_ready and not again:
                return
            try:
                self._query(f"CREATE DATABASE {ident(self.database)}")
            except _QueryError as exc:
                raise self._unavailable(f"cannot create the database: {exc}") from exc
            self._database_ready = True

    def drop_database(self) -> None:
        """Remove the whole database (tests, and resetting a development machine)."""
        try:
            self._query(f"DROP DATABASE {ident(self.database)}")
        except _QueryError as exc:
            raise self._unavailable(f"cannot drop the database: {exc}") from exc
        self._database_ready = False
        self._kinds.clear()

    # -- field types ---------------------------------------------------------------------------

    def _load_kinds(self, measurement: str | None) -> dict[tuple[str, str], str]:
        source = f" FROM {ident(measurement)}" if measurement is not None else ""
        found: dict[tuple[str, str], str] = {}
        for s in self._read_query(f"SHOW FIELD KEYS{source}"):
            for key, influx_type in s.get("values") or ():
                found.setdefault((s["name"], key), INFLUX_KINDS.get(influx_type, "str"))
        if measurement is not None:
            for stale in [k for k in self._kinds if k[0] == measurement]:
                del self._kinds[stale]
        self._kinds.update(found)
        return found

    def _check_kinds(self, kinds: dict[tuple[str, str], str]) -> None:
        def unsure() -> set[str]:
            return {m for (m, f), k in kinds.items() if self._kinds.get((m, f)) != k}

        for measurement in sorted(unsure()):
            self._load_kinds(measurement)
        for (measurement, field), kind in kinds.items():
            stored = self._kinds.get((measurement, field))
            if stored is not None and stored != kind:
                raise rules.kind_conflict(measurement, field, stored, kind)

    # -- the HotStore interface ----------------------------------------------------------------

    def write(self, points: Sequence[Point]) -> int:
        unique, kinds = rules.prepare(points)
        if not unique:
            return 0
        self._ensure_database()
        self._check_kinds(kinds)
        lines = to_lines(unique)
        for i in range(0, len(lines), LINES_PER_REQUEST):
            self._write_lines("\n".join(lines[i : i + LINES_PER_REQUEST]).encode())
        self._kinds.update(kinds)
        return len(unique)

    def _write_lines(self, body: bytes) -> None:
        params = {"db": self.database, "precision": "u"}
        response = self._post("/write", params=params, content=body)
        if response.status_code == 404 and "database not found" in response.text:
            self._ensure_database(again=True)
            response = self._post("/write", params=params, content=body)
        if response.status_code in (200, 204):
            return
        try:
            message = str(response.json().get("error", response.text))
        except ValueError:
            message = response.text
        conflict = TYPE_CONFLICT.search(message)
        if conflict:
            self._kinds.pop((conflict["measurement"], conflict["field"]), None)
            raise rules.kind_conflict(
                conflict["measurement"],
                conflict["field"],
                INFLUX_KINDS.get(conflict["stored"], conflict["stored"]),
                INFLUX_KINDS.get(conflict["sent"], conflict["sent"]),
            )
        if 400 <= response.status_code < 500:
            raise BadRequest(f"InfluxDB refused the points: {message[:300]}")
        raise self._unavailable(f"HTTP {response.status_code}: {message[:200]}")

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
        # One statement per measurement: InfluxDB gives a field name one type per query, so a
        # name with other types in other measurements would lose values in a single SELECT.
        kinds = self._load_kinds(measurement)
        wanted = None if fields is None else set(fields)
        statements = []
        for name in sorted({m for m, _ in kinds}):
            present = sorted(f for m, f in kinds if m == name and (wanted is None or f in wanted))
            if not present:
                continue
            where = f'"imei"::tag = {literal(imei)} AND {time_range(start_us, end_us)}'
            if limit is not None:
                # LIMIT counts rows per series: one statement per field makes it values per
                # field and tag set, and the earliest ``limit`` of the field are among those.
                statements += [
                    f"SELECT {ident(f)}::field FROM {ident(name)} WHERE {where}"
                    f" GROUP BY * LIMIT {int(limit)}"
                    for f in present
                ]
                continue
            selection = "*" if wanted is None else ", ".join(f"{ident(f)}::field" for f in present)
            statements.append(f"SELECT {selection} FROM {ident(name)} WHERE {where} GROUP BY *")
        if not statements:
            return []
        series = self._read_query("; ".join(statements), max_points, limit)
        points = []
        for s in series:
            name = s["name"]
            tags = tuple(
                sorted((k, v) for k, v in (s.get("tags") or {}).items() if v and k != "imei")
            )
            columns = s["columns"]
            for row in s.get("values") or ():
                time_us = int(row[0])
                for field, raw in zip(columns[1:], row[1:], strict=True):
                    if raw is not None:
                        value = _convert(kinds.get((name, field)), raw)
                        points.append(Point(imei, name, tags, field, time_us, value))
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

    def counts_by_day(self, imei: str, start_us: int, end_us: int) -> dict[int, int]:
        rules.check_imei(imei)
        if start_us >= end_us:
            return {}
        measurements = sorted({m for m, _ in self._load_kinds(None)})  # one type per query
        if not measurements:
            return {}
        series = self._read_query(
            "; ".join(
                f'SELECT count(*) FROM {ident(m)} WHERE "imei"::tag = {literal(imei)}'
                f" AND {time_range(start_us, end_us)} GROUP BY time(1d) fill(none)"
                for m in measurements
            )
        )
        counts: dict[int, int] = {}
        for s in series:
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
                    f'DELETE WHERE "imei" = {literal(imei)} AND {time_range(start_us, end_us)}'
                )
            except _QueryError as exc:
                raise self._unavailable(f"a delete failed: {exc}") from exc
        return dropped

    def close(self) -> None:
        self._client.close()
