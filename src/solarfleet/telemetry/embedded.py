"""The embedded hot store: one SQLite file (WAL) of its own, under the data folder.

One row per reading, keyed by its identity; a write is ``INSERT … ON CONFLICT DO UPDATE`` (last
write wins) committed with ``synchronous = FULL`` before ``write`` returns. The primary key starts
with (imei, time_us) because every access is "one unit, a time range". Values keep their kind in
a ``kind`` column beside an untyped ``value`` column, so any reading may have any kind: the one
kind per series is the API's rule, per unit (``series.py``), not the store's. (Files made before
that rule hold a ``field_kinds`` table of one kind per measurement and field for every unit: it
is no longer read or written.) Each thread gets its own connection (the API's
threadpool): readers never wait for each other, writers queue on SQLite's lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path

from solarfleet.errors import ServiceUnavailable
from solarfleet.telemetry import rules
from solarfleet.telemetry.hot import TooManyReadings
from solarfleet.telemetry.points import US_PER_DAY, Point, Tags, Value

SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    imei TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    measurement TEXT NOT NULL,
    tags TEXT NOT NULL,
    field TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('float', 'int', 'bool', 'str')),
    value NOT NULL,
    PRIMARY KEY (imei, time_us, measurement, tags, field)
) WITHOUT ROWID;
"""

UPSERT = """
INSERT INTO points (imei, time_us, measurement, tags, field, kind, value)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (imei, time_us, measurement, tags, field)
DO UPDATE SET kind = excluded.kind, value = excluded.value
"""

# Day number with floor division (SQLite's integer division truncates toward zero).
DAY = f"(CASE WHEN time_us >= 0 THEN time_us / {US_PER_DAY} ELSE -((-time_us - 1) / {US_PER_DAY}) - 1 END)"  # noqa: E501


# A fleet has few distinct tag sets: each is encoded and decoded once, not once per reading.
@lru_cache(maxsize=4096)
def encode_tags(tags: Tags) -> str:
    return json.dumps([list(pair) for pair in tags], ensure_ascii=False, separators=(",", ":"))


@lru_cache(maxsize=4096)
def decode_tags(text: str) -> Tags:
    return tuple((str(k), str(v)) for k, v in json.loads(text))


def _decode(kind: str, raw: object) -> Value:
    if kind == "float":
        return float(raw)  # type: ignore[arg-type]
    if kind == "int":
        return int(raw)  # type: ignore[call-overload, no-any-return]
    if kind == "bool":
        return bool(raw)
    return str(raw)


class EmbeddedHotStore:
    """The default hot store (SOLARFLEET_DATA_DIR/hot/telemetry.sqlite)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self._schema_ready = False

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("The embedded hot store is closed")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")  # durable when write() returns
                if not self._schema_ready:
                    conn.executescript(SCHEMA)
                    self._schema_ready = True
            except (sqlite3.Error, OSError) as exc:
                raise ServiceUnavailable(f"The embedded hot store is unavailable: {exc}") from exc
            self._connections.append(conn)
            self._local.conn = conn
            return conn

    @contextmanager
    def _cursor(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        try:
            if not write:
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:  # an error, or a COMMIT that failed
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise ServiceUnavailable(f"The embedded hot store is unavailable: {exc}") from exc

    def write(self, points: Sequence[Point]) -> int:
        unique, kinds = rules.prepare(points)
        if not unique:
            return 0
        rows = [
            (
                p.imei,
                p.time_us,
                p.measurement,
                encode_tags(p.tags),
                p.field,
                kinds[(p.measurement, p.field)],
                int(p.value) if isinstance(p.value, bool) else p.value,
            )
            for p in unique
        ]
        with self._cursor(write=True) as conn:
            conn.executemany(UPSERT, rows)
        return len(unique)

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
        rules.check_selection(measurement, fields)
        columns = "SELECT measurement, tags, field, time_us, kind, value FROM points"
        where = " WHERE imei = ? AND time_us >= ? AND time_us < ?"
        args: list[object] = [imei, start_us, end_us]
        if measurement is not None:
            where += " AND measurement = ?"
            args.append(measurement)
        if fields is not None:
            wanted = sorted(set(fields))
            if not wanted:
                return []
            where += f" AND field IN ({', '.join('?' * len(wanted))})"
            args.extend(wanted)
        cap = -1 if max_points is None else max_points + 1  # LIMIT -1: no limit
        rows: list[tuple[str, str, str, int, str, object]] = []
        with self._cursor() as conn:
            if limit is None:
                if max_points is not None:  # too many? asked without making a single row
                    probe = "SELECT 1 FROM points" + where + " LIMIT 1 OFFSET ?"
                    if conn.execute(probe, [*args, max_points]).fetchone() is not None:
                        raise TooManyReadings(max_points)
                # In time order along the primary key: SQLite stops at the cap.
                sql = columns + where + " ORDER BY time_us LIMIT ?"
                rows = conn.execute(sql, [*args, cap]).fetchall()
            else:
                # The earliest ``limit`` of each series (measurement, field), one query each;
                # the tag sets tied at the last time are all read and cut in Python, which
                # orders tags as tuples (their JSON text sorts otherwise).
                series = conn.execute(
                    "SELECT DISTINCT measurement, field FROM points" + where, args
                ).fetchall()
                sql = columns + where + " AND measurement = ? AND field = ?"
                for m, f in sorted(series):
                    found = conn.execute(
                        sql + " ORDER BY time_us LIMIT ?", [*args, m, f, limit]
                    ).fetchall()
                    if len(found) == limit:
                        last = found[-1][3]
                        found = [r for r in found if r[3] < last] + conn.execute(
                            sql + " AND time_us = ?", [*args, m, f, last]
                        ).fetchall()
                        found.sort(key=lambda r: (r[3], decode_tags(r[1])))
                    rows += found[:limit]
                    if max_points is not None and len(rows) > max_points:
                        break
        points = [
            Point(imei, m, decode_tags(tags), f, t, _decode(kind, value))
            for m, tags, f, t, kind, value in rows
        ]
        points.sort(key=rules.sort_key)
        return points

    def counts_by_day(self, imei: str, start_us: int, end_us: int) -> dict[int, int]:
        sql = (
            f"SELECT {DAY} AS day, count(*) FROM points"
            " WHERE imei = ? AND time_us >= ? AND time_us < ? GROUP BY day"
        )
        with self._cursor() as conn:
            return {day: n for day, n in conn.execute(sql, (imei, start_us, end_us))}

    def drop(self, imei: str, start_us: int, end_us: int) -> int:
        with self._cursor(write=True) as conn:
            cursor = conn.execute(
                "DELETE FROM points WHERE imei = ? AND time_us >= ? AND time_us < ?",
                (imei, start_us, end_us),
            )
            return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._connections:
                conn.close()
            self._connections.clear()
