"""Expiring pending values: superseded by a newer value, or asked of a part taken off its unit.

A pending value is asked of the unit (or of a part while it sits on a unit); it expires when a
newer value of its type is set, or when its part leaves that unit, so no other unit receives a
value asked for on this one. Expiry sets ``date_added`` and ``date_removed`` at that moment, one
immediately after the other.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from solarfleet.auth.principal import Principal
from solarfleet.fleet.service import on_parts_released
from solarfleet.parameters.models import PartParameter, ProductParameter


def expire(
    session: Session,
    rows: Iterable[ProductParameter | PartParameter],
    principal: Principal,
    at: tuple[datetime, datetime],
) -> None:
    """Expire pending ``rows`` at ``at`` (from ``db.moments()``), flushed at once so that a new
    pending row of the same type may follow (the unique index on pending rows holds)."""
    added, removed = at
    for row in rows:
        row.status = "expired"
        row.date_added = added
        row.date_removed = removed
        row.modified_at = removed
        row.modified_by = principal.username
    session.flush()


def expire_part_pending(
    session: Session, part_ids: Collection[int], principal: Principal, at: tuple[datetime, datetime]
) -> None:
    """Expire every pending value of the parts: they are leaving the unit they were asked on."""
    if not part_ids:
        return
    pending = session.scalars(
        select(PartParameter).where(
            PartParameter.part_id.in_(part_ids), PartParameter.status == "pending"
        )
    ).all()
    expire(session, pending, principal, at)


on_parts_released(expire_part_pending)  # a detach, or a unit deleted, expires these
