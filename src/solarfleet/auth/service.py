"""Logging in and out, and looking users up."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.auth import throttle
from solarfleet.auth.models import User
from solarfleet.auth.passwords import burn_time, hash_password, verify_password
from solarfleet.auth.permissions import LEVELS, SCOPES
from solarfleet.auth.tokens import issue_token
from solarfleet.db import utcnow, write_session
from solarfleet.errors import BadRequest, Conflict, Unauthorized
from solarfleet.settings import Settings
from solarfleet.timeparse import format_instant

BAD_CREDENTIALS = "Invalid username or password"


def login(
    *,
    sessions: sessionmaker[Session],
    username: str,
    password: str,
    address: str,
    settings: Settings,
) -> dict[str, Any]:
    """A new token for valid credentials, in the original's ``login_successful`` shape.

    Throttled (429) before the password is verified; see ``solarfleet.auth.throttle``.
    """
    # No username holds a NUL (PostgreSQL refuses one in text): such a name is an unknown user.
    username = username.replace("\x00", "\N{REPLACEMENT CHARACTER}")
    with sessions() as session:
        throttle.check(
            session=session, username=username, address=address, settings=settings, now=utcnow()
        )
        user = session.scalars(select(User).where(User.username == username)).one_or_none()
    # The password is verified outside any transaction: argon2 is slow on purpose.
    if user is None:
        burn_time(password)
        ok = False
    else:
        ok = verify_password(user.password_hash, password) and user.is_active
    with write_session(sessions) as session:
        if not ok:
            throttle.record_failure(
                session=session,
                username=username,
                address=address,
                settings=settings,
                now=utcnow(),
            )
            session.commit()
            raise Unauthorized(BAD_CREDENTIALS)
        assert user is not None
        throttle.clear_username(session=session, username=username)
        token, expires_at = issue_token(session=session, user=user, settings=settings)
        session.commit()
    return {
        "login_successful": {
            "username": user.username,
            "entity_id": user.entity_id,
            "display_name": user.display_name,
            "name": user.name,
            "user_product_visibility": user.user_product_visibility,
            "hub_id": user.hub_id,
            "shop_id": user.shop_id,
            "API_token": token,
            "token_expiry": format_instant(expires_at),
            "permissions": user.permissions,
        }
    }


def username_exists(*, session: Session, username: str) -> bool:
    return bool(session.scalar(select(exists().where(User.username == username))))


def create_user(
    *,
    session: Session,
    username: str,
    password: str,
    permissions: str,
    scope: str = "GLOBAL",
    entity_id: int | None = None,
    created_by: str = "solarfleet",
    display_name: str | None = None,
) -> User:
    """A new user (committed); used by the CLI and the demo."""
    if permissions not in LEVELS:
        raise BadRequest(f"Invalid permissions {permissions!r}: one of {', '.join(LEVELS)}")
    if scope not in SCOPES:
        raise BadRequest(f"Invalid scope {scope!r}: GLOBAL or ENTITY")
    if scope == "ENTITY" and entity_id is None:
        raise BadRequest("An ENTITY user needs an entity_id")
    if username_exists(session=session, username=username):
        raise Conflict(f"A user named {username!r} already exists")
    user = User(
        username=username,
        password_hash=hash_password(password),
        permissions=permissions,
        user_product_visibility=scope,
        entity_id=entity_id,
        display_name=display_name or username,
        name=display_name or username,
        created_by=created_by,
    )
    session.add(user)
    session.commit()
    return user
