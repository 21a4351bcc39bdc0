"""FastAPI dependencies named once: settings, sessions, the caller and permission checks."""

from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.auth.principal import Principal
from solarfleet.auth.tokens import authenticate
from solarfleet.db import request_session
from solarfleet.errors import Forbidden
from solarfleet.settings import Settings

# Dependencies that do no I/O are ``async``: they run on the event loop, where a plain ``def``
# would cost a hand-off to the thread pool and back (most routes have several).


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.sessions  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    with request_session(request.app.state.sessions) as session:
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


def get_write_session(request: Request, _caller: PrincipalDep) -> Iterator[Session]:
    """A session that holds SQLite's write lock from BEGIN (no upgrade deadlocks).

    It depends on the caller so that authentication (which may extend the token in a session of
    its own) is done before the write lock is taken.
    """
    with request_session(request.app.state.sessions, write=True) as session:
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
