"""The unit's side of the lifecycle: what it should run (rc_data GET) and what it runs (POST).

A reported value equal to the pending value of its type (compared as the type's data_type)
becomes ``active`` with ``date_added`` = now, and the row active before it becomes ``removed``
with ``date_removed`` = the same instant: at every instant at most one row of a type is active.
A value equal to the active one is a replay and changes nothing. Anything else is kept as a
:class:`UnitReportNote` (never an error the unit could loop on); a note identical to the
latest one for the same unit, part and type is not repeated, unless a value of that type was
set (became pending) after that latest note: the unit then rejects the new pending value, and
the note saying so is what a rollout counts as a failure (``rollouts/advance.py``).

Bounded work per report, whatever the unit sends (a unit's key is in a box anyone can open):
a report holds at most ``max_report_values`` values and part keys (a 400 naming the limit above
that; a real unit reports one value per parameter type it carries, a handful); the types, parts
and latest notes it needs are read in one statement each, never per value; the notes are
inserted in one statement; and a unit keeps its newest ``max_notes_per_unit`` notes, the oldest
dropped by the report that goes beyond them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.orm import Session

from solarfleet.db import utcnow
from solarfleet.errors import BadRequest, Unauthorized
from solarfleet.fleet.models import ParameterType, Part, PartProductLinker, Product
from solarfleet.parameters.models import PartParameter, ProductParameter, UnitReportNote
from solarfleet.parameters.validation import InvalidValue, canonical, same_value

Reported = tuple[int, Any]  # (parameter_type_id, value) as the unit sent them
NoteKey = tuple[str | None, int | None]  # (part_key, parameter_type_id) of a note
Latest = tuple[str | None, str, datetime]  # (value, reason, created_at) of a latest note
NOTE_VALUE_LIMIT = 4096
MAX_REPORT_VALUES = 1000  # defaults of settings.max_report_values and .max_notes_per_unit
MAX_NOTES_PER_UNIT = 1000


def check_report_size(
    product_values: Sequence[Reported], part_values: dict[str, list[Reported]], limit: int
) -> None:
    """400 naming the limit when a report holds more than ``limit`` values and part keys."""
    size = len(product_values) + len(part_values) + sum(len(v) for v in part_values.values())
    if size > limit:
        raise BadRequest(
            f"Too many values in one report: {size} values and part keys; at most {limit} "
            "(max_report_values)"
        )


def storable(text: str) -> str:
    """``text`` as the database can store it: no NUL, no lone surrogate, bounded."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe.replace("\x00", "\\x00")[:NOTE_VALUE_LIMIT]


# What a unit polls for, built once with bind parameters (issue 11): every unit asks often, and
# building and cache-keying these selects cost more than running them.
_IMEI = bindparam("imei")
_ENABLE_FLAG = select(Product.desired_enable_flag).where(Product.product_imei == _IMEI)
_CURRENT_PARTS = (
    select(PartProductLinker.part_id)
    .where(PartProductLinker.product_imei == _IMEI, PartProductLinker.date_removed.is_(None))
    .order_by(PartProductLinker.part_id)
)
_PENDING_PRODUCT = (
    select(
        ProductParameter.product_parameter_id,
        ProductParameter.parameter_type_id,
        ProductParameter.value,
    )
    .where(ProductParameter.product_imei == _IMEI, ProductParameter.status == "pending")
    .order_by(ProductParameter.product_parameter_id)
)
_PENDING_PARTS = (
    select(
        PartParameter.part_parameter_id,
        PartParameter.part_id,
        PartParameter.parameter_type_id,
        PartParameter.value,
    )
    .join(PartProductLinker, PartProductLinker.part_id == PartParameter.part_id)
    .where(
        PartProductLinker.product_imei == _IMEI,
        PartProductLinker.date_removed.is_(None),
        PartParameter.status == "pending",
    )
    .order_by(PartParameter.part_parameter_id)
)


def current_parts(session: Session, imei: str) -> list[int]:
    return list(session.connection().scalars(_CURRENT_PARTS, {"imei": imei}))


def remote_config(*, session: Session, imei: str) -> dict[str, Any]:
    """What the unit should run: its desired enable flag and every pending value."""
    conn = session.connection()  # column selects: Core, not the ORM's execution
    unit = conn.execute(_ENABLE_FLAG, {"imei": imei}).one_or_none()
    if unit is None:  # deleted since the credentials were checked
        raise Unauthorized("Invalid unit credentials")
    product_rows = conn.execute(_PENDING_PRODUCT, {"imei": imei})
    parts: dict[str, list[dict[str, Any]]] = {str(p): [] for p in current_parts(session, imei)}
    for row in conn.execute(_PENDING_PARTS, {"imei": imei}):
        parts[str(row.part_id)].append(
            {
                "part_parameter_id": row.part_parameter_id,
                "parameter_type_id": row.parameter_type_id,
                "value": row.value,
            }
        )
    return {
        "product_imei": imei,
        "desired_enable_flag": unit.desired_enable_flag,
        "product_parameters": [dict(r._mapping) for r in product_rows],
        "part_parameters": parts,
    }


@dataclass
class Outcome:
    """What a report did."""

    activated: int = 0
    unchanged: int = 0
    notes: int = 0
    enable_flag_changed: bool = False
    details: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "activated": self.activated,
            "unchanged": self.unchanged,
            "notes": self.notes,
            "enable_flag_changed": self.enable_flag_changed,
        }


class _Report:
    """One report being applied: the unit, the instant, the types and the outcome."""

    def __init__(self, session: Session, imei: str, now: datetime, max_notes: int) -> None:
        self.session = session
        self.imei = imei
        self.now = now
        self.actor = f"unit:{imei}"
        self.types: dict[int, ParameterType] = {}
        self.outcome = Outcome()
        self.max_notes = max_notes
        self.notes: list[dict[str, Any]] = []  # written by save_notes, in one statement
        # per note: when the pending value it contradicts was set (None: nothing pending)
        self.pending_since: list[datetime | None] = []

    def load_types(self, ids: Iterable[int]) -> None:
        wanted = set(ids)
        if wanted:
            found = self.session.scalars(
                select(ParameterType).where(ParameterType.parameter_type_id.in_(wanted))
            )
            self.types = {t.parameter_type_id: t for t in found}

    def note(
        self, part_key: str | None, type_id: int | None, value: Any, reason: str, msg: str,
        pending_since: datetime | None = None,
    ) -> None:  # fmt: skip
        """Keep a note for :meth:`save_notes`; ``pending_since``: when the pending value the
        report contradicts was set."""
        text = storable(value if isinstance(value, str) else json.dumps(value))
        part_key = None if part_key is None else storable(part_key)[:64]
        self.notes.append(
            {
                "product_imei": self.imei,
                "part_key": part_key,
                "parameter_type_id": type_id,
                "value": text,
                "reason": reason,
                "message": storable(msg),
                "created_at": self.now,
                "created_by": self.actor,
            }
        )
        self.pending_since.append(pending_since)

    def save_notes(self) -> None:
        """Insert the notes that repeat no latest note of their (part, type), then drop the
        unit's oldest notes beyond ``max_notes``: a few statements, whatever the count."""
        if not self.notes:
            return
        latest = self._latest_notes()
        fresh = []
        for note, since in zip(self.notes, self.pending_since, strict=True):
            key = (note["part_key"], note["parameter_type_id"])
            last = latest.get(key)
            # A replay of a report already noted, unless noted before the pending value it now
            # rejects was set.
            same = last is not None and last[:2] == (note["value"], note["reason"])
            if same and (since is None or last[2] >= since):  # type: ignore[index]
                continue
            latest[key] = (note["value"], note["reason"], self.now)
            fresh.append(note)
        fresh = fresh[-self.max_notes :]  # the oldest would be dropped at once
        if not fresh:
            return
        self.session.execute(insert(UnitReportNote), fresh)
        self.outcome.notes += len(fresh)
        mine = UnitReportNote.product_imei == self.imei
        newest_kept = (
            select(UnitReportNote.unit_report_note_id)
            .where(mine)
            .order_by(UnitReportNote.unit_report_note_id.desc())
            .offset(self.max_notes - 1)
            .limit(1)
            .scalar_subquery()
        )
        self.session.execute(
            delete(UnitReportNote).where(mine, UnitReportNote.unit_report_note_id < newest_kept)
        )

    def _latest_notes(self) -> dict[NoteKey, Latest]:
        """(value, reason, created_at) of the unit's latest note per (part, type): at most
        max_notes rows."""
        latest_ids = (
            select(func.max(UnitReportNote.unit_report_note_id))
            .where(UnitReportNote.product_imei == self.imei)
            .group_by(UnitReportNote.part_key, UnitReportNote.parameter_type_id)
        )
        rows = self.session.execute(
            select(
                UnitReportNote.part_key,
                UnitReportNote.parameter_type_id,
                UnitReportNote.value,
                UnitReportNote.reason,
                UnitReportNote.created_at,
            ).where(UnitReportNote.unit_report_note_id.in_(latest_ids))
        )
        return {(r.part_key, r.parameter_type_id): (r.value, r.reason, r.created_at) for r in rows}

    def apply(self, rows: Sequence[Any], reported: list[Reported], part_key: str | None) -> None:
        """Apply reported values to one owner's pending/active ``rows`` (unit or part)."""
        where = f"part {part_key}" if part_key is not None else f"#{self.imei}"
        pending = {r.parameter_type_id: r for r in rows if r.status == "pending"}
        active: dict[int, list[Any]] = {}
        for r in rows:
            if r.status == "active":
                active.setdefault(r.parameter_type_id, []).append(r)
        for type_id, value in reported:
            ptype = self.types.get(type_id)
            if ptype is None:
                self.note(
                    part_key,
                    type_id,
                    value,
                    "unknown_type",
                    f"{where} reported parameter type {type_id}, which does not exist",
                )
                continue
            try:
                text = canonical(ptype.data_type, value)
            except InvalidValue as exc:
                self.note(
                    part_key,
                    type_id,
                    value,
                    "invalid_value",
                    f"{where} reported an invalid {ptype.name}: {exc}",
                )
                continue
            row = pending.get(type_id)
            if row is not None and same_value(ptype.data_type, row.value, text):
                for old in active.get(type_id, []):
                    self._retire(old)
                row.status = "active"
                row.date_added = self.now
                self._touch(row)
                active[type_id] = [row]
                del pending[type_id]
                self.outcome.activated += 1
            elif any(same_value(ptype.data_type, r.value, text) for r in active.get(type_id, [])):
                self.outcome.unchanged += 1
            else:
                expected = f"pending {row.value!r}" if row is not None else "nothing pending"
                self.note(
                    part_key,
                    type_id,
                    value,
                    "not_pending",
                    f"{where} reported {ptype.name} = {text!r} ({expected})",
                    pending_since=None if row is None else row.created_at,
                )

    def _retire(self, row: Any) -> None:
        row.status = "removed"
        row.date_removed = self.now
        self._touch(row)

    def _touch(self, row: Any) -> None:
        row.modified_at = self.now
        row.modified_by = self.actor


def apply_report(
    *,
    session: Session,
    imei: str,
    enable_flag: bool | None = None,
    product_values: list[Reported] = (),  # type: ignore[assignment]
    part_values: dict[str, list[Reported]] | None = None,
    max_values: int = MAX_REPORT_VALUES,
    max_notes: int = MAX_NOTES_PER_UNIT,
) -> Outcome:
    """Record what the unit runs (one transaction; the caller commits)."""
    part_values = part_values or {}
    check_report_size(product_values, part_values, max_values)
    stmt = select(Product).where(Product.product_imei == imei).with_for_update()
    unit = session.scalars(stmt.execution_options(populate_existing=True)).one_or_none()
    if unit is None:  # deleted since the credentials were checked
        raise Unauthorized("Invalid unit credentials")
    report = _Report(session, imei, utcnow(), max_notes)
    report.load_types(
        [t for t, _ in product_values] + [t for vs in part_values.values() for t, _ in vs]
    )
    if enable_flag is not None and unit.current_enable_flag != enable_flag:
        unit.current_enable_flag = enable_flag
        unit.modified_at = report.now
        unit.modified_by = report.actor
        report.outcome.enable_flag_changed = True
    if product_values:
        rows = session.scalars(
            select(ProductParameter)
            .where(
                ProductParameter.product_imei == imei,
                ProductParameter.status.in_(("pending", "active")),
            )
            .order_by(ProductParameter.product_parameter_id)
        ).all()
        report.apply(rows, list(product_values), None)
    _apply_parts(session, report, part_values)
    session.flush()
    report.save_notes()
    return report.outcome


def _apply_parts(session: Session, report: _Report, part_values: dict[str, list[Reported]]) -> None:
    on_unit = set(current_parts(session, report.imei))
    asked = {key: _part_id(key) for key in part_values}
    elsewhere = {i for i in asked.values() if i is not None and i not in on_unit}
    if elsewhere:  # one statement for every part named that is not on the unit
        elsewhere = set(session.scalars(select(Part.part_id).where(Part.part_id.in_(elsewhere))))
    ids: dict[str, int] = {}
    for key, values in part_values.items():
        part_id = asked[key]
        if part_id is not None and part_id in on_unit:
            ids[key] = part_id
            continue
        known = part_id in elsewhere
        reason, msg = (
            ("not_on_unit", f"#{report.imei} reported part {key}, which is not on it")
            if known
            else ("unknown_part", f"#{report.imei} reported part {key!r}, which does not exist")
        )
        for type_id, value in values:
            report.note(key, type_id, value, reason, msg)
    if not ids:
        return
    session.scalars(
        select(Part.part_id)
        .where(Part.part_id.in_(ids.values()))
        .order_by(Part.part_id)
        .with_for_update()
    ).all()
    rows = session.scalars(
        select(PartParameter)
        .where(
            PartParameter.part_id.in_(ids.values()),
            PartParameter.status.in_(("pending", "active")),
        )
        .order_by(PartParameter.part_parameter_id)
    ).all()
    for key, part_id in ids.items():
        mine = [r for r in rows if r.part_id == part_id]
        report.apply(mine, part_values[key], str(part_id))


def _part_id(key: str) -> int | None:
    return int(key) if key.isascii() and key.isdigit() and len(key) < 10 else None
