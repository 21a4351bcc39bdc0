"""Login throttling per username and per client address, shared by every API process.

Failed logins are rows of ``login_failures`` (one per failure, so recording is a plain insert
and atomic under concurrency). Before a password is verified, the username and the client
address are each checked: when ``login_max_failures_per_user`` (resp. ``_per_address``) failures
fall within the last ``login_window_seconds``, the login is refused with 429 and a
``Retry-After`` header, whether or not the password would have been right. The window slides:
a key is let in again as soon as enough of its failures are older than the window.

A successful login clears the username's failures (not the address's: one valid account must
not reset the counter of an address guessing at others). Old rows are pruned as failures are
recorded. Concurrent guesses that all pass the check before any of them is recorded can exceed
a limit by at most the number of requests in flight at that moment.

The client address is ``request.client.host``: the peer address as uvicorn reports it. Behind a
reverse proxy, run uvicorn with ``--proxy-headers --forwarded-allow-ips=<proxy address>`` so
that it is taken from ``X-Forwarded-For``; otherwise every client shares the proxy's address.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from solarfleet.auth.models import LoginFailure
from solarfleet.errors import TooManyRequests
from solarfleet.settings import Settings


def username_key(username: str) -> str:
    return f"username:{username}"


def address_key(address: str) -> str:
    return f"address:{address}"


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


def check(
    *, session: Session, username: str, address: str, settings: Settings, now: datetime
) -> None:
    """Raise 429 when the username or the address has failed too often lately."""
    window = timedelta(seconds=settings.login_window_seconds)
    for what, key, limit in (
        ("username", username_key(username), settings.login_max_failures_per_user),
        ("address", address_key(address), settings.login_max_failures_per_address),
    ):
        wait = _retry_after(session, key, limit, window, now)
        if wait:
            exc = TooManyRequests(
                f"Too many failed logins for this {what}; try again in {wait} seconds"
            )
            exc.headers = {"Retry-After": str(wait)}
            raise exc


def record_failure(
    *, session: Session, username: str, address: str, settings: Settings, now: datetime
) -> None:
    """Add a failure for the username and the address, and prune expired ones (not committed)."""
    window = timedelta(seconds=settings.login_window_seconds)
    session.execute(delete(LoginFailure).where(LoginFailure.failed_at <= now - window))
    session.add_all(
        [
            LoginFailure(key=username_key(username), failed_at=now),
            LoginFailure(key=address_key(address), failed_at=now),
        ]
    )


def clear_username(*, session: Session, username: str) -> None:
    """Forget the username's failures (after a successful login; not committed)."""
    session.execute(delete(LoginFailure).where(LoginFailure.key == username_key(username)))
