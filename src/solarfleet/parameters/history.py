"""Parameter history of a unit (seed 003): every row, or the set active at an instant; diffs.

A row was active at instant ``t`` when its status is ``active`` or ``removed`` and
``date_added <= t < date_removed`` (or no ``date_removed``). Expired rows also carry both dates
and are excluded by status. :func:`as_of_view` is the table as it was at ``t``: the rows active
then, each shown as it was then in every field; the per-unit answer (``?date=``) and the fleet-wide
lists (``?as_of=``) both read it, so a filter applies to what the rows were, never to what they
became.

A unit's full history lists every part that was ever on it, each with the rows that lived while
the part was on it; the set at ``t`` lists the parts on the unit at ``t``. For ENTITY users a part
row also passes :func:`~solarfleet.fleet.scope.by_part_history` (no row from another entity's time).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    literal_column,
    null,
    or_,
    select,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session, aliased

from solarfleet.auth.principal import Principal
from solarfleet.fleet.models import PartProductLinker
from solarfleet.fleet.scope import by_part_history
from solarfleet.fleet.service import check_unit
from solarfleet.parameters.models import PartParameter, ProductParameter
from solarfleet.parameters.service import PART_FIELDS, PRODUCT_FIELDS

ACTIVE_STATES = ("active", "removed")


def active_at(model: Any, at: datetime) -> ColumnElement[bool]:
    """``model``'s rows that were active at ``at``."""
    return and_(
        model.status.in_(ACTIVE_STATES),
        model.date_added <= at,
        or_(model.date_removed.is_(None), model.date_removed > at),
    )


def _linked_at(part_id: Any, at: Any) -> ColumnElement[bool]:
    link = aliased(PartProductLinker)
    return exists().where(
        link.part_id == part_id,
        link.date_added <= at,
        or_(link.date_removed.is_(None), link.date_removed > at),
    )


def _activator(model: Any) -> Any:
    """Who made a row active: the unit that reported it (for a part: the unit it was on)."""
    if model is ProductParameter:
        imei: Any = model.product_imei
    else:
        link = aliased(PartProductLinker)
        imei = (
            select(link.product_imei)
            .where(link.part_id == model.part_id, link.date_added <= model.date_added)
            .order_by(link.date_added.desc())
            .limit(1)
            .scalar_subquery()
        )
    return literal_column("'unit:'", String) + imei


def as_of_view(model: Any, at: Any, *only: ColumnElement[bool]) -> Any:
    """``model`` as it was at ``at`` (an instant or a bind parameter): an entity over a
    subquery, to query as the model itself. ``only``: criteria on the stored rows, applied
    inside (one unit's rows, by its index).

    Its rows are those active at ``at`` (for part rows: of a part that was on a unit then, as a
    unit's answer for ``at`` lists only the parts on it then), with every field as it was then:
    status ``active``, no ``date_removed``, and ``modified_at`` / ``modified_by`` of the last
    change up to ``at``. A row changed after ``at`` (its removal, by the unit that reported the
    new value) was last changed, up to ``at``, when it became active: ``modified_at`` is then
    ``date_added`` and ``modified_by`` the unit that reported it (``unit:<imei>``).
    """
    changed_later = model.modified_at > at
    rewritten = {
        "status": literal_column("'active'", String),
        "date_removed": cast(null(), DateTime),
        "modified_at": case((changed_later, model.date_added), else_=model.modified_at),
        "modified_by": case((changed_later, _activator(model)), else_=model.modified_by),
    }
    columns = [rewritten.get(c.key, c).label(c.key) for c in sa_inspect(model).columns]
    where = [active_at(model, at), *only]
    if model is PartParameter:
        where.append(_linked_at(model.part_id, at))
    return aliased(model, select(*columns).where(*where).subquery(), adapt_on_names=True)


_LINK = PartProductLinker
# Built once with bind parameters (issue 11), run as Core on the session's connection.
_PARTS_AT = (
    select(_LINK.part_id)
    .where(
        _LINK.product_imei == bindparam("imei"),
        _LINK.date_added <= bindparam("at", type_=DateTime),
        or_(_LINK.date_removed.is_(None), _LINK.date_removed > bindparam("at", type_=DateTime)),
    )
    .distinct()
    .order_by(_LINK.part_id)
)
_PARTS_EVER = (
    select(_LINK.part_id)
    .where(_LINK.product_imei == bindparam("imei"))
    .distinct()
    .order_by(_LINK.part_id)
)


def parts_at(session: Session, imei: str, at: datetime) -> list[int]:
    """The parts linked to the unit at ``at``."""
    return list(session.connection().scalars(_PARTS_AT, {"imei": imei, "at": at}))


def parts_ever(session: Session, imei: str) -> list[int]:
    """Every part that was ever on the unit."""
    return list(session.connection().scalars(_PARTS_EVER, {"imei": imei}))


def _lived_on(model: Any, imei: str) -> ColumnElement[bool]:
    """Part rows that lived (``created_at`` to ``date_removed``) while the part was on the unit."""
    link = aliased(PartProductLinker)
    return exists().where(
        link.part_id == model.part_id,
        link.product_imei == imei,
        or_(link.date_removed.is_(None), link.date_removed > model.created_at),
        or_(model.date_removed.is_(None), link.date_added < model.date_removed),
    )


def _select(model: Any, fields: Sequence[str], *where: Any) -> Any:
    """``fields`` of ``model`` (a model or a view of one; the first field is the primary key)."""
    columns = [getattr(model, f) for f in fields]
    return select(*columns).where(*where).order_by(columns[0])


# A unit's history statements, built once with bind parameters (issue 11): building the views
# and cache-keying them cost about forty times what running them costs.
_IMEI = bindparam("imei")
_AT = bindparam("at", type_=DateTime)
_PART_IDS = bindparam("part_ids", expanding=True)


@functools.cache
def _history_statements(timed: bool) -> tuple[Any, Any, Any]:
    """(the unit's rows, its parts' rows, the part entity); ``timed``: the set active at ``at``."""
    if timed:
        product = as_of_view(ProductParameter, _AT, ProductParameter.product_imei == _IMEI)
        part = as_of_view(PartParameter, _AT, PartParameter.part_id.in_(_PART_IDS))
        part_where = []
    else:
        product, part = ProductParameter, PartParameter
        part_where = [_lived_on(part, _IMEI)]
    products = _select(product, PRODUCT_FIELDS, product.product_imei == _IMEI)
    parts = _select(part, PART_FIELDS, part.part_id.in_(_PART_IDS), *part_where)
    return products, parts, part


def parameter_history(
    *, session: Session, principal: Principal, imei: str, at: datetime | None = None
) -> dict[str, Any]:
    """Every parameter row of the unit and the parts ever on it, or the set active at ``at``."""
    check_unit(session=session, principal=principal, imei=imei)
    part_ids = parts_ever(session, imei) if at is None else parts_at(session, imei, at)
    product_stmt, part_stmt, part = _history_statements(at is not None)
    params = {"imei": imei, "part_ids": part_ids} | ({} if at is None else {"at": at})
    scope = by_part_history()(part, principal)
    if scope is not None:
        part_stmt = part_stmt.where(scope)
    # dict(zip(...)) rather than dict(r._mapping): the same keys (the select's columns are the
    # fields, in order) at a fraction of the cost, which counts for a unit with 10,000 rows.
    conn = session.connection()  # column selects: Core, not the ORM's execution
    products = [
        dict(zip(PRODUCT_FIELDS, r, strict=True)) for r in conn.execute(product_stmt, params)
    ]
    parts: dict[str, list[dict[str, Any]]] = {str(p): [] for p in part_ids}
    if part_ids:
        for r in conn.execute(part_stmt, params):
            parts[str(r.part_id)].append(dict(zip(PART_FIELDS, r, strict=True)))
    return {"part_parameters": parts, "product_parameters": products}


def _changes(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    old = {r["parameter_type_id"]: r for r in before}
    new = {r["parameter_type_id"]: r for r in after}
    return {
        "added": [new[t] for t in sorted(new.keys() - old.keys())],
        "removed": [old[t] for t in sorted(old.keys() - new.keys())],
        "changed": [
            {"parameter_type_id": t, "from": old[t], "to": new[t]}
            for t in sorted(old.keys() & new.keys())
            if old[t]["value"] != new[t]["value"]
        ],
    }


def parameter_diff(
    *, session: Session, principal: Principal, imei: str, start: datetime, end: datetime
) -> dict[str, Any]:
    """What changed in the unit's active set between two instants (parts: either instant's)."""
    before = parameter_history(session=session, principal=principal, imei=imei, at=start)
    after = parameter_history(session=session, principal=principal, imei=imei, at=end)
    part_keys = sorted(before["part_parameters"].keys() | after["part_parameters"].keys(), key=int)
    return {
        "from": start,
        "to": end,
        "product_parameters": _changes(before["product_parameters"], after["product_parameters"]),
        "part_parameters": {
            k: _changes(before["part_parameters"].get(k, []), after["part_parameters"].get(k, []))
            for k in part_keys
        },
    }
