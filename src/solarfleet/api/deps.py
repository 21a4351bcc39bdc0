"""FastAPI dependencies named once: settings, sessions, the caller and permission checks.

Every hand-off to the thread pool and back costs a wake-up of a worker thread and of the event
loop; on a busy machine each is a wait for a core, so a request costs what its hand-offs cost
(issue 11). A request makes two: authentication (``get_principal``, before the body is read,
so that 401 and 403 come first) and the endpoint, which also ends its sessions' transactions
in its own thread (:class:`SessionRoute`). Dependencies that do no I/O are ``async``: they run
on the event loop.
"""

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from solarfleet.auth.principal import Principal
from solarfleet.auth.tokens import authenticate
from solarfleet.db import close_quietly, request_session
from solarfleet.errors import Forbidden
from solarfleet.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.sessions  # type: ignore[no-any-return]


@asynccontextmanager
async def open_session(request: Request, *, write: bool = False) -> AsyncIterator[Session]:
    """A request's session: made on the event loop (no I/O: the first statement, in the
    endpoint's thread, checks a connection out and BEGINs; see ``request_session``).

    Closed in the endpoint's thread by :class:`SessionRoute`; a session still in a transaction
    here (a route of another class) is closed in the thread pool, as closing it rolls back.
    """
    session = request_session(request.app.state.sessions, write=write)
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(close_quietly, session)
        else:
            session.close()  # nothing to roll back: no I/O


async def get_session(request: Request) -> AsyncIterator[Session]:
    async with open_session(request) as session:
        yield session


# Declared as a security scheme so that the OpenAPI document (and /docs' Authorize button) knows
# how callers authenticate; the header's value is checked by ``authenticate``, not by FastAPI.
TOKEN_HEADER = APIKeyHeader(
    name="Authorization",
    scheme_name="Token",
    description="`Token token=<API_token>`, the API_token from POST /v1/auth/login",
    auto_error=False,
)


def get_principal(
    request: Request, authorization: Annotated[str | None, Security(TOKEN_HEADER)]
) -> Principal:
    return authenticate(
        factory=request.app.state.sessions,
        header=authorization,
        settings=request.app.state.settings,
    )


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_write_session(request: Request, _caller: PrincipalDep) -> AsyncIterator[Session]:
    """A session that holds SQLite's write lock from BEGIN (no upgrade deadlocks).

    It depends on the caller so that authentication (which may extend the token in a session of
    its own) is done before the write lock is taken.
    """
    async with open_session(request, write=True) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
WriteSessionDep = Annotated[Session, Depends(get_write_session)]


def requires(level: str) -> Callable[[Principal], Coroutine[None, None, Principal]]:
    """A dependency: the caller, who must hold at least ``level``."""

    async def check(principal: PrincipalDep) -> Principal:
        if not principal.can(level):
            raise Forbidden(f"{level} permission required; you have {principal.permissions}")
        return principal

    check.__name__ = f"requires_{level.lower()}"
    return check


def _closing_sessions(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` (a plain ``def``), then its sessions closed, in the same worker thread."""

    @functools.wraps(endpoint)  # FastAPI reads the parameters of the wrapped function
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return endpoint(*args, **kwargs)
        finally:
            for value in kwargs.values():
                if isinstance(value, Session):
                    close_quietly(value)

    return run


class SessionRoute(APIRoute):
    """A route whose sync endpoint ends its sessions' transactions in its own thread, so that
    closing them costs no second hand-off (``APIRouter(route_class=SessionRoute)``)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _closing_sessions(endpoint)
        super().__init__(path, endpoint, **kwargs)
