"""Scope: which units an ENTITY user may reach, as SQL criteria on any model that holds unit data.

Every query on unit data gets its criterion from here, through the resource catalog
(``api/registry.py``), which the query language consults for the root model *and* for every model
it reaches through a relation, a join for ordering, or ``has``/``any``. A unit with no current
entity belongs to the unknown entity (id 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, not_, or_, select
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
