"""Advancing rollouts: what units confirmed, which failed, and the next phase when it is due.

:func:`advance` is idempotent and crash-safe. Each rollout is advanced in one transaction that
holds its row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so that several processes advancing at
once never take the same rollout; SQLite's write lock, from ``BEGIN IMMEDIATE``, on SQLite). A
phase's parameter rows and its targets' state changes are written together in that transaction:
a process killed at any point leaves either the whole phase or nothing of it, and the next run
sets exactly the targets still ``queued``. Every statement is set-based (one per kind of change,
whatever the number of units), not one per unit.

A phase sets values as :mod:`solarfleet.parameters.service` does for a single set: the units'
rows are locked first, an older pending value of the type expires (``date_added`` and
``date_removed`` one microsecond apart), a new ``pending`` row is inserted, so ``rc_data`` and
the history see nothing new. The rows name the rollout in ``created_by`` (``rollout:<id>``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    Text,
    and_,
    cast,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.auth.principal import Principal
from solarfleet.db import utcnow, write_session
from solarfleet.fleet.models import Part, PartProductLinker, Product
from solarfleet.fleet.scope import unit_criterion
from solarfleet.parameters.models import PartParameter, ProductParameter, UnitReportNote
from solarfleet.rollouts.models import (
    TARGET_STATES,
    ParameterRollout,
    ParameterRolloutEvent,
    ParameterRolloutTarget,
)

log = logging.getLogger("solarfleet.rollouts")
T = ParameterRolloutTarget
Checkpoint = Callable[[str], None]


def _nothing(_point: str) -> None:
    return None


@dataclass
class AdvanceReport:
    """What one call of :func:`advance` did."""

    rollouts: int = 0  # advanced (running or paused)
    phases: list[tuple[int, int]] = field(default_factory=list)  # (rollout, phase) begun
    units_set: int = 0
    paused: list[int] = field(default_factory=list)  # by the abort rule
    completed: list[int] = field(default_factory=list)


def _actor(rollout: ParameterRollout) -> str:
    return f"rollout:{rollout.parameter_rollout_id}"


def record(session: Session, rollout: ParameterRollout, event: str, who: str, now: datetime,
           reason: str | None = None) -> None:  # fmt: skip
    """One event of the rollout (not committed): by ``who``, the rollout itself or a user."""
    session.add(
        ParameterRolloutEvent(
            parameter_rollout_id=rollout.parameter_rollout_id,
            event=event,
            reason=reason,
            created_at=now,
            created_by=who,
        )
    )


def _model(rollout: ParameterRollout) -> tuple[Any, Any, Any]:
    """(parameter model, the target's link column, the owner column) of the rollout's kind."""
    if rollout.part_type_id is None:
        return ProductParameter, T.product_parameter_id, ProductParameter.product_imei
    return PartParameter, T.part_parameter_id, PartParameter.part_id


def _pk(model: Any) -> Any:
    return model.product_parameter_id if model is ProductParameter else model.part_parameter_id


def _targets(rollout: ParameterRollout, state: str, *more: Any) -> Any:
    return and_(T.parameter_rollout_id == rollout.parameter_rollout_id, T.state == state, *more)


def _move(session: Session, where: Any, state: str, now: Any, detail: Any = None) -> int:
    result = session.execute(
        update(T)
        .where(where)
        .values(state=state, finished_at=now, detail=detail)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


# -- what the units did -----------------------------------------------------------------------


def sync(session: Session, rollout: ParameterRollout, now: datetime) -> None:
    """Move pending targets on: confirmed (the unit runs the value), superseded (a newer value
    was set before the unit took this one), failed (the unit reported another value, or the
    value is still pending after the confirmation timeout)."""
    model, link, _owner = _model(rollout)
    row = _pk(model) == link  # the target's parameter row
    confirmed_at = select(model.date_added).where(row).correlate(T).scalar_subquery()
    _move(
        session,
        _targets(rollout, "pending", exists().where(row, model.status.in_(("active", "removed")))),
        "confirmed",
        confirmed_at,
    )
    _move(
        session,
        _targets(rollout, "pending", exists().where(row, model.status == "expired")),
        "superseded",
        now,
        "a newer value was set before the unit took this one",
    )
    part_key = (
        UnitReportNote.part_key.is_(None)
        if rollout.part_type_id is None
        else UnitReportNote.part_key == cast(T.part_id, String)
    )
    reported = exists().where(
        UnitReportNote.product_imei == T.product_imei,
        part_key,
        UnitReportNote.parameter_type_id == rollout.parameter_type_id,
        UnitReportNote.reason == "not_pending",
        UnitReportNote.created_at >= T.set_at,
    )
    _move(
        session,
        _targets(rollout, "pending", reported),
        "failed",
        now,
        "the unit reported a different value",
    )
    cutoff = now - timedelta(seconds=rollout.confirm_timeout_seconds)
    _move(
        session,
        _targets(rollout, "pending", T.set_at <= cutoff),
        "failed",
        now,
        f"not confirmed within {rollout.confirm_timeout_seconds} s",
    )


def recount(session: Session, rollout: ParameterRollout) -> None:
    """The rollout's six counts from its targets (they add up to ``targets``)."""
    counts = dict.fromkeys(TARGET_STATES, 0)
    rows = session.execute(
        select(T.state, func.count())
        .where(T.parameter_rollout_id == rollout.parameter_rollout_id)
        .group_by(T.state)
    )
    for state, n in rows:
        counts[state] = n
    for state, n in counts.items():
        setattr(rollout, state, n)


def lock_units(session: Session, targets: Any) -> None:
    """Lock the units of the ``targets`` rows, in IMEI order, as a single set and a report lock
    their unit first (PostgreSQL; SQLite's write lock already serializes writers): two rollouts
    writing the same units, or a rollout and a unit's report, then wait instead of deadlocking."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        select(Product.product_imei)
        .where(Product.product_imei.in_(select(T.product_imei).where(targets)))
        .order_by(Product.product_imei)
        .with_for_update()
    ).all()


def expire_pending(session: Session, rollout: ParameterRollout, now: datetime) -> int:
    """Cancel: the rollout's values still pending expire (values units run are untouched);
    their targets go back to ``queued`` (the unit never got the value). How many expired."""
    model, link, _owner = _model(rollout)
    pk = _pk(model)
    lock_units(session, _targets(rollout, "pending"))
    mine = select(link).where(_targets(rollout, "pending"))
    result = session.execute(
        update(model)
        .where(pk.in_(mine), model.status == "pending")
        .values(
            status="expired",
            date_added=now,
            date_removed=now + timedelta(microseconds=1),
            modified_at=now,
            modified_by=_actor(rollout),
        )
        .execution_options(synchronize_session=False)
    )
    expired = exists().where(pk == link, model.status == "expired")
    _move(session, _targets(rollout, "pending", expired), "queued", None, "cancelled")
    sync(session, rollout, now)  # any that a unit confirmed meanwhile
    return int(result.rowcount or 0)


# -- the next phase ---------------------------------------------------------------------------


def _abort_reason(rollout: ParameterRollout) -> str | None:
    """Why the rollout must pause before its next phase, or None."""
    failed = rollout.failed - rollout.baseline_failed
    tried = rollout.failed + rollout.confirmed - rollout.baseline_tried
    if tried < max(1, rollout.abort_min_units) or failed == 0:
        return None
    if failed * 100 <= rollout.abort_failure_percent * tried:
        return None
    return (
        f"{failed} of {tried} units tried failed ({failed * 100 / tried:.0f}%), above the "
        f"abort threshold of {rollout.abort_failure_percent:g}% (after "
        f"{rollout.abort_min_units} units)"
    )


def launch(session: Session, rollout: ParameterRollout, phase: int, now: datetime,
           checkpoint: Checkpoint = _nothing) -> int:  # fmt: skip
    """Set the value on the phase's queued targets (not committed); how many were set."""
    mine = _targets(rollout, "queued", T.phase == phase)
    actor = _actor(rollout)
    lock_units(session, mine)
    _move(
        session,
        and_(mine, not_(exists().where(Product.product_imei == T.product_imei))),
        "out_of_scope",
        now,
        "the unit no longer exists",
    )
    if rollout.scope == "ENTITY":
        owner = Principal(0, actor, "ADMIN", "ENTITY", rollout.entity_id)
        criterion = unit_criterion(T.product_imei, owner)
        assert criterion is not None
        _move(session, and_(mine, not_(criterion)), "out_of_scope", now,
              "the unit left the rollout's scope")  # fmt: skip
    if rollout.part_type_id is not None:
        part = (
            select(func.min(PartProductLinker.part_id))
            .join(Part, Part.part_id == PartProductLinker.part_id)
            .where(
                PartProductLinker.product_imei == T.product_imei,
                PartProductLinker.date_removed.is_(None),
                Part.part_type_id == rollout.part_type_id,
            )
            .correlate(T)
            .scalar_subquery()
        )
        session.execute(
            update(T).where(mine).values(part_id=part).execution_options(synchronize_session=False)
        )
        _move(session, and_(mine, T.part_id.is_(None)), "out_of_scope", now,
              f"no part of part type {rollout.part_type_id} on the unit")  # fmt: skip
    checkpoint("launch.scoped")
    model, link, owner_col = _model(rollout)
    owner_of_target = T.product_imei if rollout.part_type_id is None else T.part_id
    later = exists().where(
        owner_col == owner_of_target,
        model.parameter_type_id == rollout.parameter_type_id,
        model.created_at > rollout.created_at,
        or_(model.created_by.is_(None), model.created_by != actor),
    )
    _move(session, and_(mine, later), "superseded", now,
          "set by someone else after the rollout was created")  # fmt: skip
    owners = select(owner_of_target).where(mine)
    session.execute(
        update(model)
        .where(
            owner_col.in_(owners),
            model.parameter_type_id == rollout.parameter_type_id,
            model.status == "pending",
        )
        .values(
            status="expired",
            date_added=now,
            date_removed=now + timedelta(microseconds=1),
            modified_at=now,
            modified_by=actor,
        )
        .execution_options(synchronize_session=False)
    )
    checkpoint("launch.expired")
    session.execute(
        insert(model).from_select(
            [owner_col.key, "parameter_type_id", "value", "status", "created_at", "created_by"],
            select(
                owner_of_target,
                literal(rollout.parameter_type_id, Integer),
                literal(rollout.value, Text),
                literal("pending", String),
                literal(now, DateTime),
                literal(actor, String),
            ).where(mine),
        )
    )
    checkpoint("launch.inserted")
    pk = _pk(model)
    new_row = (
        select(pk)
        .where(
            owner_col == owner_of_target,
            model.parameter_type_id == rollout.parameter_type_id,
            model.status == "pending",
        )
        .correlate(T)
        .scalar_subquery()
    )
    linked = session.execute(
        update(T)
        .where(mine)
        .values(state="pending", set_at=now, **{link.key: new_row})
        .execution_options(synchronize_session=False)
    )
    checkpoint("launch.linked")
    return int(linked.rowcount or 0)


def _step(session: Session, rollout: ParameterRollout, now: datetime, report: AdvanceReport,
          checkpoint: Checkpoint) -> None:  # fmt: skip
    """Sync, then begin the next phase if it is due and the abort rule allows, then complete."""
    sync(session, rollout, now)
    checkpoint("advance.synced")
    recount(session, rollout)
    if rollout.state != "running":
        return
    if rollout.phase_started_at is None:
        due = rollout.phase
    elif rollout.phase < rollout.phases_total and now >= rollout.phase_started_at + timedelta(
        seconds=rollout.wait_seconds
    ):
        reason = _abort_reason(rollout)
        if reason is not None:
            rollout.state = "paused"
            rollout.reason = reason
            rollout.modified_at = now
            rollout.modified_by = _actor(rollout)
            record(session, rollout, "paused", _actor(rollout), now, reason)
            report.paused.append(rollout.parameter_rollout_id)
            return
        due = rollout.phase + 1
    else:
        due = None
    if due is not None:
        report.units_set += launch(session, rollout, due, now, checkpoint)
        rollout.phase = due
        rollout.phase_started_at = now
        rollout.modified_at = now
        rollout.modified_by = _actor(rollout)
        report.phases.append((rollout.parameter_rollout_id, due))
        sync(session, rollout, now)  # a zero confirmation timeout fails them at once
        recount(session, rollout)
    last_begun = rollout.phase >= rollout.phases_total and rollout.phase_started_at is not None
    if last_begun and rollout.pending == 0 and rollout.queued == 0:
        rollout.state = "completed"
        rollout.finished_at = now
        rollout.modified_at = now
        rollout.modified_by = _actor(rollout)
        record(session, rollout, "completed", _actor(rollout), now)
        report.completed.append(rollout.parameter_rollout_id)


def advance_one(sessions: sessionmaker[Session], rollout_id: int, now: datetime,
                report: AdvanceReport, checkpoint: Checkpoint = _nothing) -> None:  # fmt: skip
    """One rollout, in one transaction; skipped when another process holds it."""
    with write_session(sessions) as session:
        rollout = session.scalars(
            select(ParameterRollout)
            .where(
                ParameterRollout.parameter_rollout_id == rollout_id,
                ParameterRollout.state.in_(("running", "paused")),
            )
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        ).one_or_none()
        if rollout is None:
            return  # finished meanwhile, or another process is advancing it
        checkpoint("advance.locked")
        _step(session, rollout, now, report, checkpoint)
        checkpoint("advance.before_commit")
        session.commit()
        report.rollouts += 1
        checkpoint("advance.committed")


def advance(sessions: sessionmaker[Session], now: datetime | None = None,
            checkpoint: Checkpoint = _nothing) -> AdvanceReport:  # fmt: skip
    """Advance every running or paused rollout once (see the module's docstring)."""
    now = now or utcnow()
    report = AdvanceReport()
    with sessions() as session:
        ids = session.scalars(
            select(ParameterRollout.parameter_rollout_id)
            .where(ParameterRollout.state.in_(("running", "paused")))
            .order_by(ParameterRollout.parameter_rollout_id)
        ).all()
    for rollout_id in ids:
        advance_one(sessions, rollout_id, now, report, checkpoint)
    return report


def due_soon(sessions: sessionmaker[Session]) -> bool:
    """Whether any rollout is running or paused (the ticker skips its write lock otherwise)."""
    with sessions() as session:
        return (
            session.scalar(
                select(ParameterRollout.parameter_rollout_id)
                .where(or_(ParameterRollout.state == "running", ParameterRollout.state == "paused"))
                .limit(1)
            )
            is not None
        )
