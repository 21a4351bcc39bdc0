"""The "dirty since" marks: written by ingest *before* the points go to the hot store, read and
cleared (compare-and-set on the version) by the migration."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

from sqlalchemy import Insert, bindparam, delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from solarfleet.errors import NotFound
from solarfleet.telemetry.models import TelemetryDirty

Mark = tuple[int, int]  # (dirty_since_us, version)


def mark_dirty(*, session: Session, imei: str, oldest_us: int) -> None:
    """Record an upload whose oldest reading is at ``oldest_us`` (not committed)."""
    stmt = _upsert(session.get_bind().dialect.name)
    session.execute(stmt, {"imei": imei, "oldest_us": oldest_us})


def commit_mark(
    *, session: Session, imei: str, oldest_us: int, then: Callable[[], None] | None = None
) -> None:
    """:func:`mark_dirty`, ``then()`` in the same transaction, and COMMIT; 404 when the unit
    was deleted meanwhile.

    An upload marks its unit twice, in two transactions (see ``ingest.store_upload``): the unit
    can be deleted before either, which the mark's foreign key refuses. The upload is then not
    acknowledged, so nothing acknowledged is lost; readings of the deleted unit already written
    to the hot store stay there unmarked, as those of any deleted unit do.
    """
    try:
        mark_dirty(session=session, imei=imei, oldest_us=oldest_us)
        if then is not None:
            then()
        session.commit()
    except IntegrityError:
        session.rollback()
        raise NotFound(f"No product with product_imei {imei}: deleted during the upload") from None


@lru_cache(maxsize=4)
def _upsert(dialect: str) -> Insert:
    """The mark's upsert, built once (every upload runs it twice)."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = TelemetryDirty.__table__
    stmt = insert(table).values(
        product_imei=bindparam("imei"), dirty_since_us=bindparam("oldest_us"), version=1
    )
    least = func.min if dialect == "sqlite" else func.least
    return stmt.on_conflict_do_update(
        index_elements=[table.c.product_imei],
        set_={
            "dirty_since_us": least(table.c.dirty_since_us, stmt.excluded.dirty_since_us),
            "version": table.c.version + 1,
        },
    )


def read_mark(*, session: Session, imei: str) -> Mark | None:
    row = session.execute(
        select(TelemetryDirty.dirty_since_us, TelemetryDirty.version).where(
            TelemetryDirty.product_imei == imei
        )
    ).one_or_none()
    return None if row is None else (row.dirty_since_us, row.version)


def clear_if_unchanged(*, session: Session, imei: str, version: int) -> bool:
    """Delete the mark if no upload moved it since it was read (not committed)."""
    return clear_if_unchanged_many(session=session, versions={imei: version}) == 1


def clear_if_unchanged_many(*, session: Session, versions: Mapping[str, int]) -> int:
    """:func:`clear_if_unchanged` for many units (imei -> version read) in one statement; how
    many marks were cleared (not committed)."""
    if not versions:
        return 0
    result = session.execute(
        delete(TelemetryDirty).where(
            tuple_(TelemetryDirty.product_imei, TelemetryDirty.version).in_(
                sorted(versions.items())
            )
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def dirty_units(*, session: Session, imeis: Sequence[str] | None = None) -> list[str]:
    """Units with a mark (optionally among ``imeis``), in IMEI order."""
    stmt = select(TelemetryDirty.product_imei).order_by(TelemetryDirty.product_imei)
    if imeis is not None:
        stmt = stmt.where(TelemetryDirty.product_imei.in_(imeis))
    return list(session.scalars(stmt))
