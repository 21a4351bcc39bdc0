"""Reading the notes kept from unit reports that changed nothing (see reports.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from solarfleet.auth.principal import Principal
from solarfleet.fleet.service import check_unit
from solarfleet.parameters.models import UnitReportNote

NOTE_FIELDS = (
    "unit_report_note_id", "product_imei", "part_key", "parameter_type_id", "value", "reason",
    "message", "created_at", "created_by",
)  # fmt: skip


def unit_notes(
    *, session: Session, principal: Principal, imei: str, limit: int = 100
) -> list[dict[str, Any]]:
    """The unit's latest report notes, newest first (scope-checked)."""
    check_unit(session=session, principal=principal, imei=imei)
    columns = [getattr(UnitReportNote, f) for f in NOTE_FIELDS]
    rows = session.execute(
        select(*columns)
        .where(UnitReportNote.product_imei == imei)
        .order_by(UnitReportNote.unit_report_note_id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]
