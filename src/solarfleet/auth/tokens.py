"""API tokens: 64 random characters given once to the client, stored only as a SHA-256 hash.

A token expires after ``token_lifetime_seconds`` without use. Each request extends it, but the
new expiry is written only when the stored one is older than ``token_refresh_interval_seconds``,
so a busy client costs one write every few minutes rather than one per request.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.auth.models import Token, User
from solarfleet.auth.principal import Principal
from solarfleet.db import utcnow, write_session
from solarfleet.errors import Unauthorized
from solarfleet.settings import Settings

TOKEN_LENGTH = 64
_ALPHABET = string.ascii_letters + string.digits


# Built once: the lookup runs on every request, and building and cache-keying a fresh select
# each time cost about as much as running it.
_BY_HASH = (
    select(
        Token.token_id,
        Token.expires_at,
        User.user_id,
        User.username,
        User.permissions,
        User.user_product_visibility,
        User.entity_id,
        User.is_active,
    )
    .join(User, User.user_id == Token.user_id)
    .where(Token.token_hash == bindparam("token_hash"))
)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(*, session: Session, user: User, settings: Settings) -> tuple[str, datetime]:
    """A new token for ``user`` (added to the session, not committed) and its expiry."""
    token = "".join(secrets.choice(_ALPHABET) for _ in range(TOKEN_LENGTH))
    expires_at = utcnow() + timedelta(seconds=settings.token_lifetime_seconds)
    session.add(
        Token(
            user_id=user.user_id,
            token_hash=hash_token(token),
            expires_at=expires_at,
            created_by=user.username,
        )
    )
    return token, expires_at


def parse_authorization(header: str | None) -> str:
    """The token in ``Authorization: Token token=<token>``."""
    if not header:
        raise Unauthorized("Missing Authorization header: send 'Token token=<API_token>'")
    scheme, _, rest = header.strip().partition(" ")
    key, eq, token = rest.strip().partition("=")
    if scheme != "Token" or key != "token" or not eq:
        raise Unauthorized("Malformed Authorization header: send 'Token token=<API_token>'")
    token = token.strip().strip('"')
    if len(token) != TOKEN_LENGTH:
        raise Unauthorized("Invalid token")
    return token


def authenticate(
    *, factory: sessionmaker[Session], header: str | None, settings: Settings
) -> Principal:
    """The principal behind the Authorization header; extends the token's expiry."""
    token_hash = hash_token(parse_authorization(header))
    now = utcnow()
    with factory.kw["bind"].connect() as conn:  # a bare connection: no session to set up
        row = conn.execute(_BY_HASH, {"token_hash": token_hash}).one_or_none()
    if row is None or not row.is_active:
        raise Unauthorized("Invalid token")
    if row.expires_at <= now:
        raise Unauthorized("Token expired: log in again")
    lifetime = timedelta(seconds=settings.token_lifetime_seconds)
    refresh = timedelta(seconds=settings.token_refresh_interval_seconds)
    if row.expires_at - now < lifetime - refresh:
        with write_session(factory) as session:
            session.execute(
                update(Token)
                .where(Token.token_id == row.token_id)
                .values(expires_at=now + lifetime)
            )
            session.commit()
    return Principal(
        user_id=row.user_id,
        username=row.username,
        permissions=row.permissions,
        scope=row.user_product_visibility,
        entity_id=row.entity_id,
        token_id=row.token_id,
    )


def revoke(*, session: Session, header: str | None) -> None:
    token_hash = hash_token(parse_authorization(header))
    session.query(Token).filter(Token.token_hash == token_hash).delete()


def revoke_all(*, session: Session, user_id: int, keep: int | None = None) -> None:
    """Revoke every token of the user but ``keep`` (a token_id; not committed)."""
    stmt = delete(Token).where(Token.user_id == user_id)
    if keep is not None:
        stmt = stmt.where(Token.token_id != keep)
    session.execute(stmt)
