"""The users resource: auth's table served by the generic API (above ``auth/``, below every
domain; the user's entity is checked by the foreign key, so no domain is imported)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from sqlalchemy.orm import Session

from solarfleet.api.spec import ExtraField, ResourceSpec
from solarfleet.auth.models import User
from solarfleet.auth.passwords import hash_password
from solarfleet.auth.principal import Principal
from solarfleet.auth.service import check_username
from solarfleet.auth.tokens import revoke_all
from solarfleet.auth.user_scope import check_grant, users_in_scope
from solarfleet.errors import BadRequest


def _prepare_user(
    session: Session, values: dict[str, Any], principal: Principal, row: User | None
) -> None:
    """A user as the caller may make it (``auth/user_scope``), its password hashed; changing the
    password revokes the user's other tokens, deactivating it all of them."""
    if values.get("username") is not None:
        check_username(values["username"])
    if row is None and not principal.is_global:  # an ENTITY user's users are its entity's
        values.setdefault("user_product_visibility", "ENTITY")
        values.setdefault("entity_id", principal.entity_id)
    scope = values.get("user_product_visibility") or (
        row.user_product_visibility if row else "GLOBAL"
    )
    entity_id = values.get("entity_id", row.entity_id if row else None)
    if scope == "ENTITY" and entity_id is None:
        raise BadRequest("entity_id is required when user_product_visibility is ENTITY")
    permissions = values.get("permissions") or (row.permissions if row else None)
    check_grant(principal, permissions=permissions, scope=scope, entity_id=entity_id)
    password = values.pop("password", None)
    if password is not None:
        values["password_hash"] = hash_password(password)
    if row is not None and values.get("is_active") is False:
        revoke_all(session=session, user_id=row.user_id)
    elif row is not None and password is not None:
        # The token that changed its own user's password stays valid (README, "Users").
        keep = principal.token_id if principal.user_id == row.user_id else None
        revoke_all(session=session, user_id=row.user_id, keep=keep)


USERS = ResourceSpec(
    name="users",
    model=User,
    methods={m: "SYSTEM" for m in ("GET", "POST", "PUT", "DELETE")},
    description="API users. The password is write-only. An ENTITY user sees and manages "
    "only the ENTITY users of its own entity and gives no more than it holds.",
    scope=users_in_scope,
    relations=("entity",),
    hidden=("password_hash",),
    extra_fields={
        "password": ExtraField(
            Annotated[str, Field(min_length=8, max_length=256)],
            required_on_create=True,
            description="Write-only; stored as an argon2 hash.",
        )
    },
    before_write=_prepare_user,
)
