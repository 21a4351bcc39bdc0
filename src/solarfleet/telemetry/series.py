"""Each unit's series and the kind of their values: what makes one unit's upload unable to change
what another unit may upload (issue 9.11), and what bounds the series one unit can create.

A series is (unit, measurement, tag set, field); its kind (float, int, bool, str) is fixed by the
first reading the unit sends for it, and a later reading of another kind is a 400 naming the
field. That is the whole rule: another unit, another tag set or another measurement is free to
choose. Since every reading of a series has one kind, a reading's identity (unit, measurement,
tags, field, time) has one kind too, so the stores' "last write wins" holds across uploads
(InfluxDB keeps each kind under a field key of its own: see ``influx.py``).

Registration runs in the upload's transaction, after the unit's dirty mark: on PostgreSQL the
mark's row lock serializes one unit's uploads, on SQLite the write lock serializes everything,
so the check, the count and the insert see every earlier upload of the unit (atomic, unlike a
check against the hot store). The rows are committed before the readings go to the hot store; a
hot store that refuses leaves a row for a series without readings, which is harmless (the unit
sends the same kind again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from functools import lru_cache

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from solarfleet.errors import BadRequest
from solarfleet.telemetry import rules
from solarfleet.telemetry.models import TelemetrySeries
from solarfleet.telemetry.points import Point, Tags

# (measurement, tags, field) -> kind
SeriesKinds = dict[tuple[str, Tags, str], str]
DEFAULT_MAX_SERIES_PER_UNIT = 1_000


@lru_cache(maxsize=4096)
def tags_key(tags: Tags) -> str:
    """A short, stable digest of a canonical tag set (the registry's key; tags can be long)."""
    text = "\x1f".join(f"{k}\x1e{v}" for k, v in tags)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def kinds_of(points: Iterable[Point]) -> SeriesKinds:
    """The kind of each series of ``points`` (the parser already refused two kinds in one)."""
    if isinstance(points, rules.CheckedPoints):
        return dict(points.kinds)
    kinds: SeriesKinds = {}
    for p in points:
        kinds.setdefault((p.measurement, p.tags, p.field), rules.kind_of(p.value))
    return kinds


def register(
    *, session: Session, imei: str, kinds: Mapping[tuple[str, Tags, str], str], limit: int
) -> int:
    """Check ``kinds`` against the unit's series and record the new ones (not committed); how
    many were new. BadRequest when a series holds another kind, or when the new series would
    take the unit past ``limit``."""
    if not kinds:
        return 0
    wanted = {(m, tags_key(t), f): (m, f, k) for (m, t, f), k in kinds.items()}
    stored = _stored(session, imei, wanted)
    _check(stored, wanted, imei)
    new = [key for key in wanted if key not in stored]
    if not new:
        return 0
    count = session.scalar(
        select(func.count())
        .select_from(TelemetrySeries)
        .where(TelemetrySeries.product_imei == imei)
    )
    if (count or 0) + len(new) > limit:
        raise BadRequest(
            f"Too many series for unit #{imei}: it has {count}, this upload adds {len(new)}; "
            f"at most {limit} (telemetry_max_series_per_unit: a series is a measurement, tag "
            "set and field)"
        )
    rows = [
        {
            "product_imei": imei,
            "measurement": m,
            "tags_key": t,
            "field": f,
            "kind": wanted[m, t, f][2],
        }
        for m, t, f in new
    ]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(TelemetrySeries).on_conflict_do_nothing(), rows)
    # A concurrent first upload of the same series (possible only without the mark's lock):
    # whichever committed first holds the kind; read it back and judge against it.
    _check(_stored(session, imei, {key: wanted[key] for key in new}), wanted, imei)
    return len(new)


_TABLE = TelemetrySeries.__table__
# Every field of one series of a unit (at most the per-unit limit; a handful in practice): one
# indexed statement, compiled once, whatever the upload's fields.
_STORED = select(_TABLE.c.field, _TABLE.c.kind).where(
    _TABLE.c.product_imei == bindparam("imei"),
    _TABLE.c.measurement == bindparam("measurement"),
    _TABLE.c.tags_key == bindparam("tags_key"),
)


def _stored(
    session: Session, imei: str, wanted: Mapping[tuple[str, str, str], object]
) -> dict[tuple[str, str, str], str]:
    found = {}
    conn = session.connection()
    for measurement, key in sorted({(m, t) for m, t, _f in wanted}):
        params = {"imei": imei, "measurement": measurement, "tags_key": key}
        for field, kind in conn.execute(_STORED, params):
            if (measurement, key, field) in wanted:
                found[measurement, key, field] = kind
    return found


def _check(
    stored: Mapping[tuple[str, str, str], str],
    wanted: Mapping[tuple[str, str, str], tuple[str, str, str]],
    imei: str,
) -> None:
    for key, kind in sorted(stored.items()):
        measurement, field, sent = wanted[key]
        if kind != sent:
            raise BadRequest(
                f"Field {field!r} of measurement {measurement!r} holds {kind} values for unit "
                f"#{imei} (with these tags); this upload sends {sent}"
            )
