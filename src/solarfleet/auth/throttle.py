"""Login throttling, atomic and shared by every API process, keyed so that an attacker cannot
lock the real user out.

Every attempt counts against three keys, each with its own limit of failures within the last
``login_window_seconds`` (sliding; 0 turns a limit off):

* the (username, address) pair: ``login_max_failures_per_user_address`` (5). Always applies;
  this is what holds a guesser at one address to a handful of guesses per user.
* the address: ``login_max_failures_per_address`` (20), over every username (password spraying);
* the username: ``login_max_failures_per_user`` (100), from every address (a botnet).

The last two are waived for a username at an address it logged in from successfully within
``login_known_address_days`` (``login_known_addresses``). So failures from elsewhere, however
many, never refuse the real user at an address of theirs; an attacker who owns the address
(the same NAT) can still lock that pair, for one window. This follows OWASP's advice against
account lockout as a denial-of-service lever (Authentication Cheat Sheet, "Account Lockout";
Blocking Brute Force Attacks: lock out untrusted clients, not the account), with the last good
address standing for its "device cookie", which an API client has no place for.

Atomic: an attempt *reserves* its three failure rows before the password is checked, in one
transaction that first takes a lock on each key (PostgreSQL: transaction-scoped advisory locks,
in a fixed order; SQLite: the write lock from BEGIN IMMEDIATE), counts the key's recent rows,
answers 429 if one is at its limit, and inserts. Attempts in flight thus count as failures; a
success deletes its reservation and the pair's failures and records the address. Sixty
concurrent guesses get exactly the limit of 401s. Refusals (429) are not recorded.

The client address comes from ``solarfleet.auth.proxies`` (trusted proxies only).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from solarfleet.auth.models import KnownAddress, LoginFailure, User
from solarfleet.errors import TooManyRequests
from solarfleet.settings import Settings

ADDRESS_MAX = 255


def pair_key(username: str, address: str) -> str:
    return f"user_address:{address[:ADDRESS_MAX]} {username}"


def address_key(address: str) -> str:
    return f"address:{address[:ADDRESS_MAX]}"


def username_key(username: str) -> str:
    return f"username:{username}"


@dataclass(frozen=True)
class Reservation:
    """The failure rows an attempt holds while its password is checked."""

    username: str
    address: str
    row_ids: tuple[int, ...]


def _lock(session: Session, keys: list[str]) -> None:
    """Serialize attempts on the same keys (SQLite: the transaction already holds the lock)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    ids = sorted(
        int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "big", signed=True)
        for k in keys
    )
    for lock_id in ids:  # one order for every transaction: no deadlock
        session.execute(select(func.pg_advisory_xact_lock(lock_id)))


def _retry_after(session: Session, key: str, limit: int, window: timedelta, now: datetime) -> int:
    """Seconds until ``key`` has fewer than ``limit`` failures in the window; 0 if it has."""
    if limit <= 0:
        return 0
    recent = session.scalars(
        select(LoginFailure.failed_at)
        .where(LoginFailure.key == key, LoginFailure.failed_at > now - window)
        .order_by(LoginFailure.failed_at.desc())
        .limit(limit)
    ).all()
    if len(recent) < limit:
        return 0
    # The limit-th newest failure is the one whose ageing out lets the key in again.
    return max(1, math.ceil((recent[limit - 1] + window - now).total_seconds()))


def _known(session: Session, username: str, address: str, since: datetime) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    KnownAddress.user_id == User.user_id,
                    User.username == username,
                    KnownAddress.address == address[:ADDRESS_MAX],
                    KnownAddress.last_success_at > since,
                )
            )
        )
    )


def reserve(
    *, session: Session, username: str, address: str, settings: Settings, now: datetime
) -> Reservation:
    """Check the attempt's keys and hold a failure on each (committed), or raise 429.

    ``session`` must be a write session (SQLite's lock from BEGIN) with nothing else pending.
    """
    window = timedelta(seconds=settings.login_window_seconds)
    pair, by_address, by_user = (
        pair_key(username, address),
        address_key(address),
        username_key(username),
    )
    _lock(session, [pair, by_address, by_user])
    limits = [
        (pair, settings.login_max_failures_per_user_address, "this username from this address")
    ]
    since = now - timedelta(days=settings.login_known_address_days)
    if not _known(session, username, address, since):
        limits += [
            (by_address, settings.login_max_failures_per_address, "this address"),
            (by_user, settings.login_max_failures_per_user, "this username"),
        ]
    for key, limit, what in limits:
        wait = _retry_after(session, key, limit, window, now)
        if wait:
            exc = TooManyRequests(
                f"Too many failed logins for {what} (limit {limit} in "
                f"{settings.login_window_seconds} seconds); try again in {wait} seconds"
            )
            exc.headers = {"Retry-After": str(wait)}
            raise exc
    session.execute(delete(LoginFailure).where(LoginFailure.failed_at <= now - window))
    rows = [LoginFailure(key=key, failed_at=now) for key in (pair, by_address, by_user)]
    session.add_all(rows)
    session.flush()
    session.commit()
    return Reservation(username, address, tuple(r.login_failure_id for r in rows))


def release(*, session: Session, reservation: Reservation) -> None:
    """Give back a reservation whose password was never checked (not committed)."""
    session.execute(
        delete(LoginFailure).where(LoginFailure.login_failure_id.in_(reservation.row_ids))
    )


def succeeded(*, session: Session, reservation: Reservation, user_id: int, now: datetime) -> None:
    """A success: not a failure, the pair's failures forgotten (not the address's nor the
    username's: they may be someone else's), the address known (not committed)."""
    release(session=session, reservation=reservation)
    key = pair_key(reservation.username, reservation.address)
    session.execute(delete(LoginFailure).where(LoginFailure.key == key))
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(KnownAddress).values(
        user_id=user_id, address=reservation.address[:ADDRESS_MAX], last_success_at=now
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[KnownAddress.user_id, KnownAddress.address],
            set_={"last_success_at": stmt.excluded.last_success_at},
        )
    )
