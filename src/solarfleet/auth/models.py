"""Users and their API tokens (stored only as a hash)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from solarfleet.auth.permissions import LEVELS, SCOPES
from solarfleet.db import Base, MetaColumns
from solarfleet.types import choice_column


class User(MetaColumns, Base):
    __tablename__ = "users"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    permissions: Mapped[str] = choice_column("permissions", LEVELS, nullable=False)
    user_product_visibility: Mapped[str] = choice_column(
        "user_product_visibility", SCOPES, nullable=False, default="GLOBAL"
    )
    entity_id: Mapped[int | None] = mapped_column(ForeignKey("entities.entity_id"))
    hub_id: Mapped[int | None] = mapped_column(Integer)
    shop_id: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)

    # "Entity" by name: auth sits below the fleet and does not import it (SQLAlchemy finds the
    # class in the declarative registry when the mappers are configured).
    entity: Mapped[Any] = relationship("Entity")


class Token(MetaColumns, Base):
    __tablename__ = "tokens"

    token_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)

    user: Mapped[User] = relationship()


class LoginFailure(Base):
    """One failed (or still in flight) login, kept for ``login_window_seconds``.

    ``key`` is ``user_address:<address> <name>``, ``address:<address>`` or ``user:<name>`` (see
    ``solarfleet.auth.throttle``). A row per attempt rather than a counter: an attempt reserves
    its rows before the password is checked and a success deletes them again.
    """

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_failed_at", "key", "failed_at"),)

    login_failure_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(1100), nullable=False)
    failed_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, index=True)


class KnownAddress(Base):
    """An address a user last logged in from successfully, and when: from there, the user is
    held only by the limit on that (user, address) pair (``solarfleet.auth.throttle``)."""

    __tablename__ = "login_known_addresses"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    address: Mapped[str] = mapped_column(String(255), primary_key=True)
    last_success_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
