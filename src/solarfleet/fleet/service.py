"""Entity and part actions on a unit, each keeping its linker history."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from solarfleet.auth.permissions import UNKNOWN_ENTITY_ID
from solarfleet.auth.principal import Principal
from solarfleet.db import moments, utcnow
from solarfleet.errors import BadRequest, Conflict, Forbidden, NotFound
from solarfleet.fleet.models import Entity, Part, PartProductLinker, PartType, Product
from solarfleet.fleet.models import ProductEntityLinker as EntityLink
from solarfleet.fleet.scope import by_part_last_seen, unit_criterion


def get_unit(*, session: Session, principal: Principal, imei: str) -> Product:
    """The unit, if the principal may see it; 404 otherwise."""
    stmt = _in_scope(select(Product).where(Product.product_imei == imei), principal)
    unit = session.scalars(stmt).one_or_none()
    if unit is None:
        raise NotFound(f"No product with product_imei {imei}")
    return unit


# Built once (issue 11): whether a unit exists, the principal's scope added when it has one.
_UNIT_EXISTS = select(Product.product_imei).where(Product.product_imei == bindparam("imei"))


def check_unit(*, session: Session, principal: Principal, imei: str) -> None:
    """404 unless the unit exists and the principal may see it (as :func:`get_unit`, without
    loading the row: a Core statement on the session's connection)."""
    stmt = _in_scope(_UNIT_EXISTS, principal)
    if session.connection().execute(stmt, {"imei": imei}).first() is None:
        raise NotFound(f"No product with product_imei {imei}")


def _in_scope(stmt: Select[Any], principal: Principal) -> Select[Any]:
    """``stmt`` on products, narrowed to the units the principal may see."""
    criterion = unit_criterion(Product.product_imei, principal)
    return stmt if criterion is None else stmt.where(criterion)


def _entity(session: Session, principal: Principal, entity_id: int) -> Entity:
    entity = session.get(Entity, entity_id)
    if entity is None:
        raise BadRequest(f"Invalid entity_id: no entity {entity_id}")
    if not principal.is_global and entity_id != principal.entity_id:
        raise Forbidden("ENTITY users can assign units to their own entity only")
    return entity


def _current_link(session: Session, imei: str) -> EntityLink | None:
    return session.scalars(
        select(EntityLink).where(EntityLink.product_imei == imei, EntityLink.date_removed.is_(None))
    ).one_or_none()


def current_entities(*, session: Session, imei: str) -> list[str]:
    """Names of the unit's entities now (the unknown entity when it has none)."""
    link = _current_link(session, imei)
    entity = session.get(Entity, link.entity_id if link else UNKNOWN_ENTITY_ID)
    return [entity.name] if entity else []


def _close(link: EntityLink, principal: Principal) -> None:
    now = utcnow()
    link.date_removed = now
    link.modified_at = now
    link.modified_by = principal.username


def _open(session: Session, principal: Principal, imei: str, entity_id: int) -> None:
    session.add(
        EntityLink(
            product_imei=imei,
            entity_id=entity_id,
            date_added=utcnow(),
            created_by=principal.username,
        )
    )


def _flush(session: Session, message: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(message) from None


def assign_entity(
    *, session: Session, principal: Principal, imei: str, entity_id: int
) -> dict[str, Any]:
    unit = get_unit(session=session, principal=principal, imei=imei)
    _entity(session, principal, entity_id)
    link = _current_link(session, imei)
    if link is not None and link.entity_id != entity_id:
        raise Conflict(
            f"#{imei} already belongs to entity {link.entity_id}: use change_entity to move it"
        )
    if link is None:
        _open(session, principal, imei, entity_id)
        _flush(session, f"#{imei} was assigned concurrently; try again")
    return _entity_answer(session, unit)


def change_entity(
    *, session: Session, principal: Principal, imei: str, entity_id: int
) -> dict[str, Any]:
    unit = get_unit(session=session, principal=principal, imei=imei)
    _entity(session, principal, entity_id)
    link = _current_link(session, imei)
    if link is None or link.entity_id != entity_id:
        if link is not None:
            _close(link, principal)
            session.flush()
        _open(session, principal, imei, entity_id)
        _flush(session, f"#{imei} was changed concurrently; try again")
    return _entity_answer(session, unit)


def remove_entity(
    *, session: Session, principal: Principal, imei: str, entity_id: int
) -> dict[str, Any]:
    unit = get_unit(session=session, principal=principal, imei=imei)
    _entity(session, principal, entity_id)
    link = _current_link(session, imei)
    if link is None or link.entity_id != entity_id:
        raise BadRequest(f"#{imei} does not belong to entity {entity_id}")
    _close(link, principal)
    session.flush()
    return _entity_answer(session, unit)


def _entity_answer(session: Session, unit: Product) -> dict[str, Any]:
    return {
        "product_imei": unit.product_imei,
        "entities": current_entities(session=session, imei=unit.product_imei),
    }


def attach_part(*, session: Session, principal: Principal, imei: str, part_id: int) -> None:
    """Put a part on the unit. ENTITY users attach only parts they may see: on one of their
    units, or taken off one and on no unit since; any other part answers as one that does not
    exist (400), so the answer never tells whose it is."""
    check_unit(session=session, principal=principal, imei=imei)
    link = session.scalars(
        select(PartProductLinker).where(
            PartProductLinker.part_id == part_id, PartProductLinker.date_removed.is_(None)
        )
    ).one_or_none()
    # Checked after the link is read: a link made in between is the part's latest, so a part
    # moved out of scope meanwhile answers 400, never names where it went.
    stmt = select(Part.part_id).where(Part.part_id == part_id)
    criterion = by_part_last_seen()(Part, principal)
    if criterion is not None:
        stmt = stmt.where(criterion)
    if session.scalar(stmt) is None:
        raise BadRequest(f"Invalid part_id: no part {part_id}")
    if link is not None:  # on a unit the caller may see (the part's latest link is in scope)
        raise Conflict(f"Part {part_id} is already on #{link.product_imei}: detach it first")
    session.add(
        PartProductLinker(
            part_id=part_id, product_imei=imei, date_added=utcnow(), created_by=principal.username
        )
    )
    _flush(session, f"Part {part_id} was attached concurrently; try again")


def detach_part(*, session: Session, principal: Principal, imei: str, part_id: int) -> None:
    """Take the part off the unit. Its pending values were asked of this unit: they expire at
    the instant the link ends, so the next unit never receives them (active values stay: the
    history of what the part ran). The part's row is locked first, as setting a value locks it,
    so a value set concurrently is either expired here or refused as on no unit."""
    check_unit(session=session, principal=principal, imei=imei)
    session.scalars(select(Part.part_id).where(Part.part_id == part_id).with_for_update()).all()
    link = session.scalars(
        select(PartProductLinker).where(
            PartProductLinker.part_id == part_id,
            PartProductLinker.product_imei == imei,
            PartProductLinker.date_removed.is_(None),
        )
    ).one_or_none()
    if link is None:
        raise NotFound(f"Part {part_id} is not on #{imei}")
    at = moments()
    link.date_removed = link.modified_at = at[1]
    link.modified_by = principal.username
    _released(session, [part_id], principal, at)


def release_parts(session: Session, unit: Product, principal: Principal) -> None:
    """Before a unit is deleted (its part links are deleted with it): the pending values of the
    parts on it were asked of it, and expire as on a detach. The parts' rows are locked first,
    as a detach locks them."""
    on_unit = select(PartProductLinker.part_id).where(
        PartProductLinker.product_imei == unit.product_imei,
        PartProductLinker.date_removed.is_(None),
    )
    locked = select(Part.part_id).where(Part.part_id.in_(on_unit)).order_by(Part.part_id)
    part_ids = session.scalars(locked.with_for_update()).all()
    _released(session, part_ids, principal, moments())


# Told, in the same transaction, when parts leave the unit they sat on (a detach, or their unit
# deleted): the parameters domain expires the values asked of them there. Domains above fleet
# register themselves (fleet imports none of them).
PartsReleased = Callable[[Session, Collection[int], Principal, tuple[datetime, datetime]], None]
_listeners: list[PartsReleased] = []


def on_parts_released(listener: PartsReleased) -> PartsReleased:
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def _released(
    session: Session, part_ids: Collection[int], principal: Principal, at: tuple[datetime, datetime]
) -> None:
    for listener in _listeners:
        listener(session, part_ids, principal, at)


PART_FIELDS = ("part_id", "serial_number", "part_type_id", "properties", "manufacturer")


def unit_parts(*, session: Session, principal: Principal, imei: str) -> list[dict[str, Any]]:
    """The parts on the unit now, each with its type and when it was attached."""
    check_unit(session=session, principal=principal, imei=imei)
    rows = session.execute(
        select(Part, PartType, PartProductLinker.date_added)
        .join(PartProductLinker, PartProductLinker.part_id == Part.part_id)
        .join(PartType, PartType.part_type_id == Part.part_type_id)
        .where(PartProductLinker.product_imei == imei, PartProductLinker.date_removed.is_(None))
        .order_by(Part.part_id)
    )
    return [
        {
            **{k: getattr(part, k) for k in PART_FIELDS},
            "date_added": date_added,
            "part_type": {
                "part_type_id": part_type.part_type_id,
                "name": part_type.name,
                "description": part_type.description,
                "serial_number_category": part_type.serial_number_category,
            },
        }
        for part, part_type, date_added in rows
    ]
