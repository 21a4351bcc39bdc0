"""Logging in and out, and looking users up."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.auth import throttle
from solarfleet.auth.gates import LoginGates
from solarfleet.auth.models import User
from solarfleet.auth.passwords import burn_time, hash_password, verify_password
from solarfleet.auth.permissions import LEVELS, SCOPES
from solarfleet.auth.tokens import issue_token
from solarfleet.db import utcnow, write_session
from solarfleet.errors import BadRequest, Conflict, TooManyRequests, Unauthorized
from solarfleet.settings import Settings
from solarfleet.timeparse import format_instant

BAD_CREDENTIALS = "Invalid username or password"


async def login(
    *,
    sessions: sessionmaker[Session],
    gates: LoginGates,
    username: str,
    password: str,
    address: str,
    settings: Settings,
) -> dict[str, Any]:
    """A new token for valid credentials, in the original's ``login_successful`` shape.

    The attempt is reserved (or refused, 429) before the password is checked, and the check
    waits for a turn to hash (429 when none comes): see ``solarfleet.auth.throttle`` and
    ``solarfleet.auth.gates``. No transaction is open while argon2 runs.
    """
    # No username holds a NUL (PostgreSQL refuses one in text): such a name is an unknown user.
    username = username.replace("\x00", "\N{REPLACEMENT CHARACTER}")

    def begin() -> tuple[throttle.Reservation, User | None]:
        with write_session(sessions) as session:
            user = session.scalars(select(User).where(User.username == username)).one_or_none()
            reservation = throttle.reserve(
                session=session, username=username, address=address, settings=settings, now=utcnow()
            )
            return reservation, user

    reservation, user = await gates.database.run(begin)

    def check() -> bool:
        if user is None:
            burn_time(password)  # as long as a real check: the answer must not tell
            return False
        return verify_password(user.password_hash, password) and user.is_active

    try:
        ok = await gates.hashes.run(check)
    except TooManyRequests:  # nothing was checked: give the reservation back
        await gates.database.run(lambda: _release(sessions, reservation), wait=False)
        raise
    if not ok:
        raise Unauthorized(BAD_CREDENTIALS)  # the reservation stays: it is the failure
    assert user is not None
    return await gates.database.run(
        lambda: _succeed(sessions, reservation, user, settings), wait=False
    )


def _release(sessions: sessionmaker[Session], reservation: throttle.Reservation) -> None:
    with write_session(sessions) as session:
        throttle.release(session=session, reservation=reservation)
        session.commit()


def _succeed(
    sessions: sessionmaker[Session],
    reservation: throttle.Reservation,
    user: User,
    settings: Settings,
) -> dict[str, Any]:
    with write_session(sessions) as session:
        throttle.succeeded(
            session=session, reservation=reservation, user_id=user.user_id, now=utcnow()
        )
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


def check_username(username: str) -> None:
    """400 for a username nobody could log in with: empty or only whitespace."""
    if not username.strip():
        raise BadRequest("Invalid username: it must not be empty or only whitespace")


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
    check_username(username)
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
