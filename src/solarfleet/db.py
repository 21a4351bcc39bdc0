"""Engine, sessions, SQLite pragmas and the declarative Base every model derives from."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, MetaData, String, create_engine, event
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from solarfleet.errors import BadRequest

log = logging.getLogger("solarfleet")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Execution option asking SQLite for a write lock at BEGIN: a deferred transaction that
# upgrades to a writer later fails at once with "database is locked" instead of waiting.
WRITE = {"sqlite_immediate": True}


def utcnow() -> datetime:
    """Now, in UTC, without a zone (how every timestamp is stored)."""
    return datetime.now(UTC).replace(tzinfo=None)


def moments() -> tuple[datetime, datetime]:
    """Two instants, the second strictly after the first (an expiry's date_added, date_removed)."""
    first = utcnow()
    second = utcnow()
    return first, max(second, first + timedelta(microseconds=1))


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class MetaColumns:
    """The meta data every table carries; set by the system, never by the client."""

    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(255))
    modified_at: Mapped[datetime | None] = mapped_column(DateTime)
    modified_by: Mapped[str | None] = mapped_column(String(255))


META_FIELDS = ("created_at", "created_by", "modified_at", "modified_by")


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, see _sqlite_begin
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.execute("PRAGMA busy_timeout = 30000")
    cur.execute("PRAGMA case_sensitive_like = ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    immediate = conn.get_execution_options().get("sqlite_immediate")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, *, statement_timeout: float = 0, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, WAL and proper write locking.

    ``statement_timeout`` (seconds, 0: none) stops every statement that runs longer, on the
    database's side, and raises :class:`BadRequest` naming the limit (see :func:`_deadline`).
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        if statement_timeout > 0:
            options = f"-c statement_timeout={max(1, round(statement_timeout * 1000))}"
            kwargs["connect_args"] = {**kwargs.get("connect_args", {}), "options": options}
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)
    if statement_timeout > 0:
        _deadline(engine, statement_timeout)
    return engine


STATEMENT_TIMEOUT_SETTING = "SOLARFLEET_STATEMENT_TIMEOUT_SECONDS"
# SQLite calls the progress handler every this many virtual machine instructions (~0.1 ms).
_PROGRESS_STEPS = 10_000
_QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement stopped by statement_timeout


class _SqliteDeadline:
    """When the statement running on one SQLite connection must stop (None: no deadline)."""

    __slots__ = ("at", "hit")

    def __init__(self) -> None:
        self.at: float | None = None
        self.hit = False

    def __call__(self) -> int:  # the progress handler: non-zero interrupts the statement
        if self.at is not None and time.monotonic() > self.at:
            self.hit = True
            return 1
        return 0

    def reset(self, *_args: Any) -> None:
        self.at = None
        self.hit = False


def _deadline(engine: Engine, seconds: float) -> None:
    """Every statement on ``engine`` stops past ``seconds`` and raises a 400 naming the limit.

    PostgreSQL stops it itself (``statement_timeout``, set on each connection). SQLite has no
    such setting: a progress handler interrupts the statement once its deadline has passed, so
    the thread running it stops working too. The deadline is set when a statement starts and
    holds while its rows are fetched; COMMIT and ROLLBACK are never interrupted.
    """
    message = (
        f"A statement of this request ran longer than {seconds:g} s; the limit is {seconds:g} s"
        f" ({STATEMENT_TIMEOUT_SETTING}): narrow the query"
    )
    sqlite = engine.dialect.name == "sqlite"

    if sqlite:

        @event.listens_for(engine, "connect")
        def install(dbapi_conn: Any, record: Any) -> None:
            state = _SqliteDeadline()
            record.info["solarfleet_deadline"] = state
            dbapi_conn.set_progress_handler(state, _PROGRESS_STEPS)

        @event.listens_for(engine, "before_cursor_execute")
        def start(conn: Any, *_args: Any) -> None:
            state = conn.info.get("solarfleet_deadline")
            if state is not None:
                state.hit = False
                state.at = time.monotonic() + seconds

        def clear(conn: Any, *_args: Any) -> None:
            state = conn.info.get("solarfleet_deadline")
            if state is not None:
                state.reset()

        event.listen(engine, "commit", clear)
        event.listen(engine, "rollback", clear)
        event.listen(engine.pool, "checkin", lambda _c, record: clear(record))

    @event.listens_for(engine, "handle_error")
    def timed_out(ctx: ExceptionContext) -> None:
        orig = ctx.original_exception
        if sqlite:
            conn = ctx.connection
            state = conn.info.get("solarfleet_deadline") if conn is not None else None
            if state is None or not state.hit:
                return
        elif getattr(orig, "sqlstate", None) != _QUERY_CANCELED:
            return
        log.warning("statement stopped after %g s: %s", seconds, orig)
        raise BadRequest(message) from None


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


@contextmanager
def write_session(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose transaction holds the write lock from its start (on SQLite)."""
    with factory() as session:
        session.connection(execution_options=WRITE)
        yield session


_WRITE_FACTORIES: weakref.WeakKeyDictionary[sessionmaker[Session], sessionmaker[Session]] = (
    weakref.WeakKeyDictionary()
)


def write_factory(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions like ``factory``'s whose every transaction takes SQLite's write lock at BEGIN.

    Unlike :func:`write_session`, nothing happens when such a session is made: the lock is taken
    by its first statement, in the thread that runs it (see :func:`request_session`).
    """
    writer = _WRITE_FACTORIES.get(factory)
    if writer is None:
        kw = dict(factory.kw)
        bind = kw.pop("bind")
        writer = sessionmaker(bind.execution_options(**WRITE), class_=factory.class_, **kw)
        _WRITE_FACTORIES[factory] = writer
    return writer


_READ_FACTORIES: weakref.WeakKeyDictionary[sessionmaker[Session], sessionmaker[Session]] = (
    weakref.WeakKeyDictionary()
)


def read_factory(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions like ``factory``'s whose every transaction reads one snapshot of the database.

    A read that combines statements (a count and its page, a unit's parts and their pending
    values) must not see a write land between them: on PostgreSQL, READ COMMITTED takes a
    snapshot per statement, so these sessions run REPEATABLE READ (one snapshot per
    transaction; a transaction that only reads never fails to serialize). SQLite's deferred
    BEGIN in WAL mode already reads one snapshot, from the first SELECT to the end.
    """
    reader = _READ_FACTORIES.get(factory)
    if reader is None:
        kw = dict(factory.kw)
        bind = kw.pop("bind")
        if bind.dialect.name == "postgresql":
            bind = bind.execution_options(isolation_level="REPEATABLE READ")
        reader = sessionmaker(bind, class_=factory.class_, **kw)
        _READ_FACTORIES[factory] = reader
    return reader


def close_quietly(session: Session) -> None:
    """Close ``session`` even if the database went away since its last statement.

    Closing only ever rolls back what was not committed, and a server rolls back the
    transaction of a connection it loses, so a failure here loses nothing; it is logged and the
    connection thrown away. A request dependency closes its session after the answer was sent,
    where an exception would cut the connection of a request that succeeded.
    """
    try:
        session.close()
    except DBAPIError as exc:
        log.warning("closing a session on a lost database connection: %s", exc.orig)
        session.invalidate()


def request_session(factory: sessionmaker[Session], *, write: bool = False) -> Session:
    """The session of a request dependency (``write``: SQLite's write lock from BEGIN).

    Nothing is done with the database here: the first statement, in the endpoint's thread,
    checks a connection out and BEGINs (``write``: BEGIN IMMEDIATE, see :func:`write_factory`).
    A dependency that took the write lock held it while its request waited for a free thread;
    when every thread was taken by requests waiting for that lock, nothing moved until SQLite's
    busy timeout answered them 503 "database is locked" (found by bench/load.py: 50 clients, one
    process). Likewise a pooled connection is held only while the endpoint runs. The caller
    closes it (:func:`close_quietly`).
    """
    return (write_factory(factory) if write else read_factory(factory))()
