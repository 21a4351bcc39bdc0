"""Scope over users (SPEC §2): scope binds every permission level, SYSTEM included.

An ENTITY user sees and manages only the ENTITY users of its own entity: the criterion below is
the users resource's scope rule (``api/users.py``), so a user outside it answers 404 like a
unit outside scope, in lists, by id and on PUT/DELETE. What a write may make of a user is
checked by :func:`check_grant`: nobody gives more permission than it holds, and an ENTITY user
neither widens a scope (its own or another's) to GLOBAL nor moves a user to another entity.
Only GLOBAL SYSTEM users manage GLOBAL users.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_

from solarfleet.auth.permissions import allows
from solarfleet.auth.principal import Principal
from solarfleet.errors import Forbidden


def users_in_scope(entity: Any, principal: Principal) -> ColumnElement[bool] | None:
    """The users ``principal`` may see and manage (None: every user)."""
    if principal.is_global:
        return None
    return and_(entity.user_product_visibility == "ENTITY", entity.entity_id == principal.entity_id)


def check_grant(
    principal: Principal, *, permissions: str | None, scope: str, entity_id: Any
) -> None:
    """403 unless ``principal`` may make a user with these rights (its row after the write)."""
    if permissions is not None and not allows(principal.permissions, permissions):
        raise Forbidden(
            f"Invalid permissions {permissions}: you cannot give more than you hold "
            f"({principal.permissions})"
        )
    if principal.is_global:
        return
    if scope != "ENTITY":
        raise Forbidden(
            f"Invalid user_product_visibility {scope}: an ENTITY user cannot widen a scope"
        )
    if entity_id != principal.entity_id:
        raise Forbidden(
            f"Invalid entity_id {entity_id}: an ENTITY user manages the users of its own "
            f"entity ({principal.entity_id}) only"
        )
