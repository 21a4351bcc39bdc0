"""Setting parameters on units and parts: validation, superseding, one pending row per type.

Concurrent sets of one type on one unit (or part) are serialized by locking the owner's row
first (``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite the write session already holds the
database's write lock from ``BEGIN IMMEDIATE``). The partial unique index on pending rows is the
last line of defence: should it ever fire, the request is answered 409 and nothing is written.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from solarfleet.auth.principal import Principal
from solarfleet.db import moments, utcnow
from solarfleet.errors import BadRequest, Conflict, NotFound
from solarfleet.fleet.models import (
    ParameterType,
    Part,
    PartProductLinker,
    PartType,
    Product,
    ProductType,
)
from solarfleet.fleet.scope import by_part
from solarfleet.fleet.service import check_unit
from solarfleet.parameters.expiry import expire
from solarfleet.parameters.models import PartParameter, ProductParameter
from solarfleet.parameters.validation import check_value

PRODUCT_FIELDS = (
    "product_parameter_id", "product_imei", "parameter_type_id", "value", "status",
    "date_added", "date_removed", "created_at", "created_by", "modified_at", "modified_by",
)  # fmt: skip
PART_FIELDS = (
    "part_parameter_id", "part_id", "parameter_type_id", "value", "status",
    "date_added", "date_removed", "created_at", "created_by", "modified_at", "modified_by",
)  # fmt: skip

Row = ProductParameter | PartParameter


def as_dict(row: Row) -> dict[str, Any]:
    """A parameter row with exactly the fields of seed 003."""
    fields = PRODUCT_FIELDS if isinstance(row, ProductParameter) else PART_FIELDS
    return {k: getattr(row, k) for k in fields}


def lock_unit(*, session: Session, principal: Principal, imei: str) -> Product:
    """The unit (scope-checked, 404 outside scope), its row locked until the transaction ends."""
    check_unit(session=session, principal=principal, imei=imei)
    stmt = select(Product).where(Product.product_imei == imei).with_for_update()
    return session.scalars(stmt.execution_options(populate_existing=True)).one()


def lock_part(*, session: Session, principal: Principal, part_id: int) -> Part:
    """The part (for ENTITY users: only one now on a unit in scope), its row locked."""
    stmt = select(Part).where(Part.part_id == part_id)
    criterion = by_part()(Part, principal)
    if criterion is not None:
        stmt = stmt.where(criterion)
    if session.scalars(stmt).one_or_none() is None:
        raise NotFound(f"No part with part_id {part_id}")
    locked = select(Part).where(Part.part_id == part_id).with_for_update()
    return session.scalars(locked.execution_options(populate_existing=True)).one()


def parameter_type(*, session: Session, parameter_type_id: int) -> ParameterType:
    """The type, locked FOR SHARE (PostgreSQL): its data_type cannot change until the value
    checked against it is committed (see ``validation.check_retype``)."""
    stmt = select(ParameterType).where(ParameterType.parameter_type_id == parameter_type_id)
    stmt = stmt.with_for_update(read=True).execution_options(populate_existing=True)
    ptype = session.scalars(stmt).one_or_none()
    if ptype is None:
        raise BadRequest(f"Invalid parameter_type_id: no parameter type {parameter_type_id}")
    return ptype


def _allowed(ptype: ParameterType, kind: str, owner_type: ProductType | PartType) -> None:
    if ptype.parameter_type_id not in (owner_type.parameter_types or []):
        raise BadRequest(
            f"Invalid parameter_type_id: parameter type {ptype.parameter_type_id} "
            f"({ptype.name}) is not allowed for {kind} {owner_type.name!r}"
        )


def _supersede(session: Session, pending: Row | None, principal: Principal) -> None:
    """Expire the older pending row (flushed before the new one so the unique index holds)."""
    if pending is not None:
        expire(session, [pending], principal, moments())


def _insert(session: Session, row: Row, what: str) -> Row:
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"{what} was set concurrently; try again") from None
    return row


def _set(
    *,
    session: Session,
    principal: Principal,
    model: type[Row],
    owner: dict[str, Any],
    owner_type: tuple[str, ProductType | PartType],
    parameter_type_id: int,
    value: Any,
    what: str,
) -> Row:
    """The shared body of both setters: check, expire the pending row, insert the new one."""
    ptype = parameter_type(session=session, parameter_type_id=parameter_type_id)
    _allowed(ptype, *owner_type)
    text = check_value(
        data_type=ptype.data_type, rules=ptype.validation_rules, value=value, name=ptype.name
    )
    owned = [getattr(model, k) == v for k, v in owner.items()]
    pending = session.scalars(
        select(model).where(
            *owned, model.parameter_type_id == parameter_type_id, model.status == "pending"
        )
    ).one_or_none()
    _supersede(session, pending, principal)
    row = model(
        **owner,
        parameter_type_id=parameter_type_id,
        value=text,
        status="pending",
        created_at=utcnow(),
        created_by=principal.username,
    )
    return _insert(session, row, what)


def set_product_parameter(
    *, session: Session, principal: Principal, imei: str, parameter_type_id: int, value: Any
) -> ProductParameter:
    """A new pending value on the unit; an older pending value of the type expires."""
    unit = lock_unit(session=session, principal=principal, imei=imei)
    return _set(  # type: ignore[return-value]
        session=session,
        principal=principal,
        model=ProductParameter,
        owner={"product_imei": imei},
        owner_type=("product type", session.get_one(ProductType, unit.product_type_id)),
        parameter_type_id=parameter_type_id,
        value=value,
        what=f"Parameter {parameter_type_id} of #{imei}",
    )


def set_part_parameter(
    *, session: Session, principal: Principal, part_id: int, parameter_type_id: int, value: Any
) -> PartParameter:
    """A new pending value on the part; an older pending value of the type expires. The value is
    asked of the unit the part is on (it expires when the part leaves it): a part on no unit
    answers 400. Checked with the part's row locked, as detaching locks it."""
    part = lock_part(session=session, principal=principal, part_id=part_id)
    on_unit = select(PartProductLinker.part_product_linker_id).where(
        PartProductLinker.part_id == part_id, PartProductLinker.date_removed.is_(None)
    )
    if session.scalar(on_unit) is None:
        raise BadRequest(f"Part {part_id} is on no unit: attach it to a unit first")
    return _set(  # type: ignore[return-value]
        session=session,
        principal=principal,
        model=PartParameter,
        owner={"part_id": part_id},
        owner_type=("part type", session.get_one(PartType, part.part_type_id)),
        parameter_type_id=parameter_type_id,
        value=value,
        what=f"Parameter {parameter_type_id} of part {part_id}",
    )
