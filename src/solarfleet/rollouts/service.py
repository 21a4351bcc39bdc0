"""Creating a rollout (its targets resolved once, its value checked once), controlling it
(pause, resume, cancel, each recorded as an event) and showing its progress.

Advancing it (phases, confirmations, failures) is :mod:`solarfleet.rollouts.advance`.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Integer, case, func, insert, literal, select
from sqlalchemy.orm import Session

from solarfleet.api.query import compile_query, parse_q
from solarfleet.api.schemas import storable_json
from solarfleet.api.spec import Registry
from solarfleet.auth.principal import Principal
from solarfleet.db import utcnow
from solarfleet.errors import BadRequest, Conflict, NotFound
from solarfleet.fleet.models import PartType, Product, ProductType
from solarfleet.parameters.service import _allowed, parameter_type
from solarfleet.parameters.validation import check_value
from solarfleet.rollouts.advance import expire_pending, record, recount, sync
from solarfleet.rollouts.models import (
    TARGET_STATES,
    ParameterRollout,
    ParameterRolloutEvent,
    ParameterRolloutTarget,
)

_SHARE = re.compile(r"^([0-9]{1,3}(?:\.[0-9]{1,6})?)%$")
RATE_WAIT_SECONDS = 60  # a rate per minute is phases of that many units, a minute apart
MAX_PER_PHASE_SHOWN = 100  # phases listed one by one in a rollout's detail
MAX_TARGETS = 100_000  # default of settings.rollout_max_targets


# -- creating ---------------------------------------------------------------------------------


def _batches(phases: list[Any]) -> list[tuple[str, float]]:
    """Each phase as ("count", n) or ("share", percent); 400 naming the phase otherwise."""
    out: list[tuple[str, float]] = []
    for i, phase in enumerate(phases, 1):
        batch = phase.get("batch") if isinstance(phase, dict) else None
        if isinstance(batch, int) and not isinstance(batch, bool) and 1 <= batch < 2**31:
            out.append(("count", batch))
            continue
        match = _SHARE.match(batch) if isinstance(batch, str) else None
        if match and 0 < float(match.group(1)) <= 100:
            out.append(("share", float(match.group(1))))
            continue
        raise BadRequest(
            f"Invalid phases[{i - 1}].batch {batch!r}: expected a count of units (1 or more) "
            'or a share such as "10%"'
        )
    return out


def phase_sizes(phases: list[Any], targets: int) -> list[int]:
    """Units per phase; units the listed phases leave over form one last phase.

    Shares are rounded up (a phase of "10%" of 15 units is 2); a 400 when the phases add up to
    more than every target.
    """
    batches = _batches(phases)
    exact = sum(n if kind == "count" else targets * n / 100 for kind, n in batches)
    if exact > targets + 1e-9:
        raise BadRequest(
            f"Invalid phases: they add up to {exact:g} units, more than the {targets} targets"
        )
    sizes: list[int] = []
    left = targets
    for kind, n in batches:
        size = min(left, int(n) if kind == "count" else math.ceil(targets * n / 100))
        if size > 0:
            sizes.append(size)
            left -= size
    if left > 0:
        sizes.append(left)
    return sizes


def _target_select(
    session: Session, registry: Registry, principal: Principal, q: Any
) -> tuple[Any, Any]:
    """The units ``q`` matches in the caller's scope: (a subquery of them, for counting, and
    one with each unit once, numbered in order as ``n`` from 1)."""
    try:
        storable_json(q)
    except ValueError as exc:
        raise BadRequest(f"Invalid q: {exc}") from None
    query = parse_q(orjson.dumps(q).decode())
    for key in ("single", "group_by"):
        if query.get(key):
            raise BadRequest(f"Invalid q: {key!r} does not apply to a rollout's targets")
    compiled = compile_query(query, Product, registry.catalog(principal))
    order = [*compiled.order_by, Product.product_imei]
    rank = func.row_number().over(order_by=order).label("rank")

    def matching(*columns: Any) -> Any:
        stmt = select(Product.product_imei, Product.product_type_id, *columns)
        stmt = stmt.select_from(Product)
        for alias, onclause in compiled.joins:
            stmt = stmt.outerjoin(alias, onclause)
        stmt = stmt.where(*compiled.where)
        if compiled.offset or compiled.limit is not None:
            stmt = stmt.order_by(*order).offset(compiled.offset).limit(compiled.limit)
        return stmt.subquery("matched")

    plain = matching()
    matched = matching(rank)
    if not compiled.joins:  # one row per unit: the rank, less the offset, numbers them
        numbered = select(
            matched.c.product_imei,
            matched.c.product_type_id,
            (matched.c.rank - compiled.offset).label("n"),
        )
        return plain, numbered.subquery("numbered")
    # An ordering through a relation may repeat a unit: keep its first place, number again.
    first = (
        select(
            matched.c.product_imei,
            matched.c.product_type_id,
            func.min(matched.c.rank).label("rank"),
        )
        .group_by(matched.c.product_imei, matched.c.product_type_id)
        .subquery("first")
    )
    numbered = select(
        first.c.product_imei,
        first.c.product_type_id,
        func.row_number().over(order_by=first.c.rank).label("n"),
    )
    return plain, numbered.subquery("numbered")


def _count_targets(session: Session, plain: Any, max_targets: int) -> int:
    """The units ``plain`` holds, counted up to ``max_targets + 1`` at most (a bounded count,
    whatever the fleet's size)."""
    first = select(plain.c.product_imei).distinct().limit(max_targets + 1).subquery("first")
    return session.scalar(select(func.count()).select_from(first)) or 0


def _phase_of(n: Any, sizes: list[int] | None, rate: int | None) -> Any:
    """The phase of the ``n``-th target, as SQL."""
    if rate is not None:
        return (n - 1) // rate + 1
    assert sizes
    whens = []
    bound = 0
    for i, size in enumerate(sizes[:-1], 1):
        bound += size
        whens.append((n <= bound, i))
    if not whens:
        return literal(1, Integer)
    return case(*whens, else_=len(sizes))


def create_rollout(
    *,
    session: Session,
    registry: Registry,
    principal: Principal,
    q: dict[str, Any],
    parameter_type_id: int,
    value: Any,
    part_type_id: int | None = None,
    phases: list[Any] | None = None,
    rate_per_minute: int | None = None,
    wait_seconds: int | None = None,
    confirm_timeout_seconds: int = 86400,
    abort_failure_percent: float = 10.0,
    abort_min_units: int = 10,
    max_targets: int = MAX_TARGETS,
    now: datetime | None = None,
) -> ParameterRollout:
    """A running rollout with its targets resolved and queued (flushed, not committed); 400 and
    nothing written when the value, the parameter type, the phases or ``q`` are wrong."""
    now = now or utcnow()
    if phases is not None and rate_per_minute is not None:
        raise BadRequest("Send phases or rate_per_minute, not both")
    if rate_per_minute is not None and wait_seconds is not None:
        raise BadRequest("wait_seconds does not apply to rate_per_minute (a phase a minute)")
    if phases is not None and not phases:
        raise BadRequest("Invalid phases: an empty list (leave phases out for a single phase)")
    ptype = parameter_type(session=session, parameter_type_id=parameter_type_id)
    if part_type_id is not None:
        part_type = session.get(PartType, part_type_id)
        if part_type is None:
            raise BadRequest(f"Invalid part_type_id: no part type {part_type_id}")
        _allowed(ptype, "part type", part_type)
    text = check_value(
        data_type=ptype.data_type, rules=ptype.validation_rules, value=value, name=ptype.name
    )
    plain, numbered = _target_select(session, registry, principal, q)
    targets = _count_targets(session, plain, max_targets)
    if targets == 0:
        raise BadRequest("Invalid q: it matches no unit in your scope")
    if targets > max_targets:
        raise BadRequest(
            f"Invalid q: it matches more than {max_targets} units; at most {max_targets} per "
            "rollout (SOLARFLEET_ROLLOUT_MAX_TARGETS): narrow q or split the rollout"
        )
    if part_type_id is None:
        type_ids = session.scalars(select(plain.c.product_type_id).distinct()).all()
        for product_type in session.scalars(
            select(ProductType).where(ProductType.product_type_id.in_(type_ids))
        ):
            _allowed(ptype, "product type", product_type)
    sizes = phase_sizes(phases, targets) if phases is not None else None
    if rate_per_minute is None and sizes is None:
        sizes = [targets]
    total = len(sizes) if sizes is not None else math.ceil(targets / (rate_per_minute or 1))
    rollout = ParameterRollout(
        scope="GLOBAL" if principal.is_global else "ENTITY",
        entity_id=None if principal.is_global else principal.entity_id,
        q=q,
        parameter_type_id=parameter_type_id,
        part_type_id=part_type_id,
        value=text,
        phases=phases,
        phase_sizes=sizes,
        rate_per_minute=rate_per_minute,
        wait_seconds=RATE_WAIT_SECONDS if rate_per_minute is not None else (wait_seconds or 0),
        confirm_timeout_seconds=confirm_timeout_seconds,
        abort_failure_percent=abort_failure_percent,
        abort_min_units=abort_min_units,
        state="running",
        targets=targets,
        phases_total=total,
        phase=1,
        queued=targets,
        created_at=now,
        created_by=principal.username,
    )
    session.add(rollout)
    session.flush()
    T = ParameterRolloutTarget
    session.execute(
        insert(T).from_select(
            ["parameter_rollout_id", "product_imei", "phase", "state"],
            select(
                literal(rollout.parameter_rollout_id, Integer),
                numbered.c.product_imei,
                _phase_of(numbered.c.n, sizes, rate_per_minute),
                literal("queued"),
            ),
        )
    )
    record(session, rollout, "created", principal.username, now)
    session.flush()
    return rollout


# -- finding and controlling --------------------------------------------------------------------


def load(
    *, session: Session, registry: Registry, principal: Principal, rollout_id: int,
    lock: bool = False,
) -> ParameterRollout:  # fmt: skip
    """The rollout if the caller may see it (404 otherwise); ``lock``: its row locked."""
    stmt = select(ParameterRollout).where(ParameterRollout.parameter_rollout_id == rollout_id)
    criterion = registry.scope(ParameterRollout, principal)
    if criterion is not None:
        stmt = stmt.where(criterion)
    if lock:
        stmt = stmt.with_for_update()
    rollout = session.scalars(stmt.execution_options(populate_existing=True)).one_or_none()
    if rollout is None:
        raise NotFound(f"No parameter_rollouts with parameter_rollout_id {rollout_id}")
    return rollout


ACTIONS = {"pause": ("running",), "resume": ("paused",), "cancel": ("running", "paused")}


def control(
    *, session: Session, registry: Registry, principal: Principal, rollout_id: int, action: str,
    now: datetime | None = None,
) -> ParameterRollout:  # fmt: skip
    """Pause, resume or cancel (not committed); 409 when the rollout's state does not allow it."""
    now = now or utcnow()
    rollout = load(
        session=session, registry=registry, principal=principal, rollout_id=rollout_id, lock=True
    )
    if rollout.state not in ACTIONS[action]:
        raise Conflict(
            f"Rollout {rollout_id} is {rollout.state}: it cannot be {action}d"
            if action != "cancel"
            else f"Rollout {rollout_id} is {rollout.state}: it cannot be cancelled"
        )
    sync(session, rollout, now)
    if action == "pause":
        rollout.state = "paused"
        rollout.reason = f"paused by {principal.username}"
        event = "paused"
    elif action == "resume":
        recount(session, rollout)
        rollout.state = "running"
        rollout.reason = None
        # The abort rule starts afresh: the failures so far were seen by whoever resumed it.
        rollout.baseline_failed = rollout.failed
        rollout.baseline_tried = rollout.failed + rollout.confirmed
        event = "resumed"
    else:
        expire_pending(session, rollout, now)
        rollout.state = "cancelled"
        rollout.reason = f"cancelled by {principal.username}"
        rollout.finished_at = now
        event = "cancelled"
    rollout.modified_at = now
    rollout.modified_by = principal.username
    recount(session, rollout)
    record(session, rollout, event, principal.username, now)
    session.flush()
    return rollout


# -- showing ----------------------------------------------------------------------------------

COUNT_FIELDS = TARGET_STATES
HIDDEN = ("baseline_failed", "baseline_tried")


def shaped(row: dict[str, Any]) -> dict[str, Any]:
    """A rollout row as the API shows it: the six counts gathered under ``counts``."""
    out = {k: v for k, v in row.items() if k not in COUNT_FIELDS and k not in HIDDEN}
    out["counts"] = {k: row[k] for k in COUNT_FIELDS if k in row}
    started, wait = row.get("phase_started_at"), row.get("wait_seconds")
    more = row.get("phase", 0) < row.get("phases_total", 0)
    out["next_phase_at"] = (
        started + timedelta(seconds=wait)
        if started is not None and wait is not None and more and row.get("state") == "running"
        else None
    )
    return out


def detail(session: Session, rollout: ParameterRollout) -> dict[str, Any]:
    """Per-phase counts and the rollout's events, for its own page."""
    T = ParameterRolloutTarget
    rid = rollout.parameter_rollout_id
    first = max(1, rollout.phases_total - MAX_PER_PHASE_SHOWN + 1)
    if rollout.phases_total > MAX_PER_PHASE_SHOWN:
        first = max(1, rollout.phase - MAX_PER_PHASE_SHOWN // 2)
    last = min(rollout.phases_total, first + MAX_PER_PHASE_SHOWN - 1)
    per: dict[int, dict[str, int]] = {
        p: dict.fromkeys(TARGET_STATES, 0) for p in range(first, last + 1)
    }
    rows = session.execute(
        select(T.phase, T.state, func.count())
        .where(T.parameter_rollout_id == rid, T.phase.between(first, last))
        .group_by(T.phase, T.state)
    )
    for phase, state, n in rows:
        per[phase][state] = n
    events = session.execute(
        select(
            ParameterRolloutEvent.event,
            ParameterRolloutEvent.reason,
            ParameterRolloutEvent.created_at,
            ParameterRolloutEvent.created_by,
        )
        .where(ParameterRolloutEvent.parameter_rollout_id == rid)
        .order_by(ParameterRolloutEvent.parameter_rollout_event_id)
    )
    return {
        "phase_counts": [
            {"phase": p, "units": sum(c.values()), "counts": c} for p, c in per.items()
        ],
        "events": [dict(e._mapping) for e in events],
    }
