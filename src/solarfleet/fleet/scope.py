"""Scope: which units an ENTITY user may reach, as SQL criteria on any model that holds unit data.

Every query on unit data gets its criterion from here, through the resource catalog
(``api/registry.py``, assembled in ``solarfleet/resources.py``), which the query language consults
for the root model *and* for every model it reaches through a relation, a join for ordering, or
``has``/``any``. A unit with no current
entity belongs to the unknown entity (id 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, not_, or_, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import aliased

from solarfleet.auth.permissions import UNKNOWN_ENTITY_ID
from solarfleet.auth.principal import Principal
from solarfleet.fleet.models import PartProductLinker, ProductEntityLinker

ScopeRule = Callable[[Any, Principal], ColumnElement[bool] | None]


def unit_criterion(imei: Any, principal: Principal) -> ColumnElement[bool] | None:
    """The criterion that the IMEI expression ``imei`` names a unit the principal may see."""
    if principal.is_global:
        return None
    link = aliased(ProductEntityLinker)
    current = link.date_removed.is_(None)
    mine = exists().where(link.product_imei == imei, current, link.entity_id == principal.entity_id)
    if principal.entity_id != UNKNOWN_ENTITY_ID:
        return mine
    other = aliased(ProductEntityLinker)
    linked = exists().where(other.product_imei == imei, other.date_removed.is_(None))
    return or_(mine, not_(linked))


def visible_units(principal: Principal) -> Select[Any] | None:
    """A select of the IMEIs the principal may see (None: every unit)."""
    from solarfleet.fleet.models import Product

    criterion = unit_criterion(Product.product_imei, principal)
    return None if criterion is None else select(Product.product_imei).where(criterion)


def by_unit(attribute: str = "product_imei") -> ScopeRule:
    """Rows whose ``attribute`` names a unit in scope."""

    def rule(entity: Any, principal: Principal) -> ColumnElement[bool] | None:
        return unit_criterion(getattr(entity, attribute), principal)

    return rule


def by_part(attribute: str = "part_id") -> ScopeRule:
    """Rows whose ``attribute`` names a part now on a unit in scope."""

    def rule(entity: Any, principal: Principal) -> ColumnElement[bool] | None:
        if principal.is_global:
            return None
        link = aliased(PartProductLinker)
        on_unit = unit_criterion(link.product_imei, principal)
        return exists().where(
            and_(link.part_id == getattr(entity, attribute), link.date_removed.is_(None), on_unit)
        )

    return rule


def by_part_last_seen(attribute: str = "part_id") -> ScopeRule:
    """Parts whose latest link (the current one, or the last before it was taken off) is on a
    unit in scope: the parts an ENTITY user may see and attach. A part never put on a unit is
    no entity's: GLOBAL users only."""

    def rule(entity: Any, principal: Principal) -> ColumnElement[bool] | None:
        if principal.is_global:
            return None
        link, later = aliased(PartProductLinker), aliased(PartProductLinker)
        part_id = getattr(entity, attribute)
        newer = exists().where(later.part_id == link.part_id, later.date_added > link.date_added)
        on_unit = unit_criterion(link.product_imei, principal)
        return exists().where(link.part_id == part_id, on_unit, not_(newer))

    return rule


def by_part_history() -> ScopeRule:
    """Part parameter rows whose part was, during the row's life, on units in scope only.

    A row lives from ``created_at`` to ``date_removed`` (pending and active rows: until now). It
    is shown to an ENTITY user when at least one unit the part was on during that time is in
    scope and none is outside it: a part's history from its time on another entity's unit stays
    with that unit, and a row in force across a move between entities is no entity's (GLOBAL
    users only). ``entity`` may be an as-of view of the table (its dates rewritten as they were
    then): the rule reads the stored row, by primary key, so it does not depend on the instant.
    """

    def rule(entity: Any, principal: Principal) -> ColumnElement[bool] | None:
        if principal.is_global:
            return None
        mapper = sa_inspect(entity).mapper
        (pk,) = mapper.primary_key
        row = aliased(mapper.class_)
        link = aliased(PartProductLinker)
        during = and_(
            link.part_id == row.part_id,
            or_(link.date_removed.is_(None), link.date_removed > row.created_at),
            or_(row.date_removed.is_(None), link.date_added < row.date_removed),
        )
        on_unit = unit_criterion(link.product_imei, principal)
        assert on_unit is not None
        return exists().where(
            getattr(row, pk.key) == getattr(entity, pk.key),
            exists().where(during, on_unit),
            not_(exists().where(during, not_(on_unit))),
        )

    return rule
