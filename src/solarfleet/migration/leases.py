"""Leases: which worker is migrating which unit right now.

A lease is taken by one compare-and-set statement (``INSERT … ON CONFLICT DO UPDATE … WHERE the
lease is expired or already ours … RETURNING``): PostgreSQL re-checks the WHERE on the newest row
version under a row lock, SQLite runs it under its single write lock, so of two workers racing
for a unit exactly one gets it. A worker that dies keeps its units until the lease expires, with
two exceptions: a worker restarted under the same holder name takes them back at once, and so
does any claimant on the same machine when the holder was a process of that machine that no
longer runs. Holder names are ``<hostname>:<pid>:<random>`` (``default_holder``); the claimant
checks the pid itself (``os.kill(pid, 0)``; a zombie counts as dead) and then takes the lease by
the same compare-and-set, on the holder name it saw. A pid reused by another process only makes
the claimant wait for the expiry, as before. Hosts must have distinct hostnames (containers
sharing one hostname and not their pid namespace would each think the other's workers dead).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from solarfleet.db import utcnow
from solarfleet.migration.models import MigrationLease


def default_holder() -> str:
    """A name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _process_gone(pid: int) -> bool:
    """True when no process ``pid`` runs on this machine (a zombie is gone too)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: it runs
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def dead_holders(holders: Sequence[str], me: str) -> list[str]:
    """The holder names among ``holders`` of processes of this machine that are gone."""
    host = socket.gethostname()
    dead = []
    for holder in set(holders) - {me}:
        their_host, _, rest = holder.rpartition(":")[0].rpartition(":")
        pid = rest if their_host else ""
        if their_host == host and pid.isascii() and pid.isdigit() and _process_gone(int(pid)):
            dead.append(holder)
    return sorted(dead)


def acquire(
    *,
    session: Session,
    imeis: Sequence[str],
    holder: str,
    seconds: float,
    now: datetime | None = None,
) -> list[str]:
    """Take the leases on ``imeis`` that are free, expired, ours, or held by a process of this
    machine that is gone (not committed); the units now held, in IMEI order."""
    if not imeis:
        return []
    now = now or utcnow()
    held_by = session.scalars(
        select(MigrationLease.holder)
        .where(MigrationLease.product_imei.in_(imeis), MigrationLease.expires_at >= now)
        .distinct()
    ).all()
    dead = dead_holders(held_by, holder)
    expires = now + timedelta(seconds=seconds)
    table = MigrationLease.__table__
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).values(
        [{"product_imei": imei, "holder": holder, "expires_at": expires} for imei in imeis]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.product_imei],
        set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at},
        where=or_(
            table.c.expires_at < now,
            table.c.holder == holder,
            *([table.c.holder.in_(dead)] if dead else []),
        ),
    ).returning(table.c.product_imei)
    return sorted(session.scalars(stmt))


def still_held(*, session: Session, imeis: Sequence[str], holder: str, seconds: float) -> list[str]:
    """Renew our leases on ``imeis`` (not committed) and return the units we still hold, in IMEI
    order: a unit whose lease expired and went to another worker is not ours to write any more."""
    if not imeis:
        return []
    held = session.scalars(
        update(MigrationLease)
        .where(MigrationLease.product_imei.in_(imeis), MigrationLease.holder == holder)
        .values(expires_at=utcnow() + timedelta(seconds=seconds))
        .returning(MigrationLease.product_imei)
    )
    return sorted(held)


def release(*, session: Session, imeis: Sequence[str], holder: str) -> None:
    """Give up our leases on ``imeis`` (not committed)."""
    if imeis:
        session.execute(
            delete(MigrationLease).where(
                MigrationLease.product_imei.in_(imeis), MigrationLease.holder == holder
            )
        )
