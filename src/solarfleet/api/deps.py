"""FastAPI dependencies named once: settings, sessions, the caller and permission checks.

Every hand-off to the thread pool and back costs a wake-up of a worker thread and of the event
loop; on a busy machine each is a wait for a core, so a request costs what its hand-offs cost
(issue 11). A request of a :class:`SessionRoute` whose parameters FastAPI cannot refuse (no body,
only optional text in the query) makes one: its authentication is deferred (see
:func:`in_endpoint_thread`) and runs first thing in the endpoint's thread, which also ends the
request's sessions. A route that has a body to validate authenticates before it, in a hand-off
of its own, so that 401 and 403 still come before a 400 for the body: two hand-offs.
Dependencies that do no I/O are ``async``: they run on the event loop.
"""

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import aclosing, asynccontextmanager
from typing import Annotated, Any, get_args, get_origin

from fastapi import Depends, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant, get_typed_signature
from fastapi.params import Depends as DependsParam
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


class Pending:
    """A dependency's value, worked out in the endpoint's thread (see :func:`in_endpoint_thread`).

    Shared by every dependency of the request that asked for it (FastAPI caches a dependency's
    value per request), so it is worked out once.
    """

    __slots__ = ("_work", "_value", "_done")

    def __init__(self, work: Callable[[], Any]) -> None:
        self._work = work
        self._done = False
        self._value: Any = None

    def value(self) -> Any:
        if not self._done:
            self._value = self._work()
            self._done = True
        return self._value

    def then(self, step: Callable[[Any], Any]) -> "Pending":
        return Pending(lambda: step(self.value()))


# a sync dependency -> its variant that defers the call (an async dependency returning Pending)
_DEFERRED: dict[Callable[..., Any], Callable[..., Any]] = {}


def in_endpoint_thread(dependency: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a sync dependency (authentication: a lookup in the database) as one that a
    :class:`SessionRoute` may run in its endpoint's thread instead of a hand-off of its own.

    Its deferred variant takes the same parameters, resolved by FastAPI as usual, and returns a
    :class:`Pending` call, made by the route before the endpoint runs.
    """

    @functools.wraps(dependency)
    async def deferred(*args: Any, **kwargs: Any) -> Pending:
        return Pending(lambda: dependency(*args, **kwargs))

    _DEFERRED[dependency] = deferred
    return dependency


@in_endpoint_thread
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

    def permit(principal: Principal) -> Principal:
        if not principal.can(level):
            raise Forbidden(f"{level} permission required; you have {principal.permissions}")
        return principal

    async def check(principal: PrincipalDep) -> Principal | Pending:
        # on a route that authenticates in its endpoint's thread, the caller is still Pending
        return principal.then(permit) if isinstance(principal, Pending) else permit(principal)

    check.__name__ = f"requires_{level.lower()}"
    return check


def _in_one_thread(endpoint: Callable[..., Any], *, deferred: bool) -> Callable[..., Any]:
    """``endpoint`` (a plain ``def``), its pending dependencies worked out first (in the order of
    its parameters: the caller before anything else) and its sessions closed after, all in the
    worker thread that runs it. ``deferred``: its signature asks for the deferred variants of
    the dependencies marked :func:`in_endpoint_thread`."""

    @functools.wraps(endpoint)  # FastAPI reads the parameters of the wrapped function
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            for name, value in kwargs.items():
                if isinstance(value, Pending):
                    kwargs[name] = value.value()
            return endpoint(*args, **kwargs)
        finally:
            for value in kwargs.values():
                if isinstance(value, Session):
                    close_quietly(value)

    if deferred:
        declared = inspect.signature(endpoint).return_annotation  # FastAPI reads it too
        signature = _deferring(get_typed_signature(endpoint)).replace(return_annotation=declared)
        run.__signature__ = signature  # type: ignore[attr-defined]
    return run


def _deferring(signature: inspect.Signature) -> inspect.Signature:
    """``signature`` with each dependency that has a deferred variant replaced by it (at any
    depth: a dependency that needs one is asked for again, from a dependency that is deferred)."""
    return signature.replace(
        parameters=[
            p.replace(annotation=_deferred_annotation(p.annotation))
            for p in signature.parameters.values()
        ]
    )


def _deferred_annotation(annotation: Any) -> Any:
    if get_origin(annotation) is not Annotated:
        return annotation
    kind, *extras = get_args(annotation)
    marks = [_deferred_depends(m) if isinstance(m, DependsParam) else m for m in extras]
    return Annotated[(Any if marks != extras else kind, *marks)]  # type: ignore[valid-type]


def _deferred_depends(mark: DependsParam) -> DependsParam:
    call = mark.dependency
    if call in _DEFERRED:
        return Depends(_DEFERRED[call], use_cache=mark.use_cache)
    if call is None or not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)):
        return mark  # a sync dependency still makes a hand-off of its own; none here does
    signature = get_typed_signature(call)
    deferring = _deferring(signature)
    if deferring == signature:
        return mark
    # An async dependency of a deferred one (``requires``' check, the write session that waits
    # for the caller) takes a Pending: asked for through a copy of itself that declares the
    # deferred dependencies instead. (A session makes no I/O before the endpoint's first
    # statement, which comes after the Pending caller is worked out.)
    with_deferred: Callable[..., Any]
    if inspect.isasyncgenfunction(call):

        @functools.wraps(call)
        async def with_deferred(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            async with aclosing(call(*args, **kwargs)) as values:
                async for value in values:
                    yield value

    else:

        @functools.wraps(call)
        async def with_deferred(*args: Any, **kwargs: Any) -> Any:
            return await call(*args, **kwargs)

    with_deferred.__signature__ = deferring  # type: ignore[attr-defined]
    _DEFERRED[call] = with_deferred
    return Depends(with_deferred, use_cache=mark.use_cache)


def _refuses_nothing(path: str, endpoint: Callable[..., Any]) -> bool:
    """Whether FastAPI's own validation of the route's parameters can never fail: no body, and
    only optional, unconstrained text in the query string, headers and cookies. Authentication
    then comes first even when it runs in the endpoint's thread."""
    return _refuses_nothing_in(get_dependant(path=path, call=endpoint))


def _refuses_nothing_in(dependant: Dependant) -> bool:
    if dependant.body_params:
        return False
    for field in (*dependant.query_params, *dependant.header_params, *dependant.cookie_params):
        info = field.field_info
        if info.is_required() or info.annotation not in (str | None, str) or info.metadata:
            return False
    if not all(f.field_info.annotation is str for f in dependant.path_params):
        return False
    return all(_refuses_nothing_in(sub) for sub in dependant.dependencies)


class SessionRoute(APIRoute):
    """A route whose sync endpoint authenticates (when nothing in the request can be refused
    before that), runs, and ends its sessions' transactions in one worker thread: one hand-off
    (``APIRouter(route_class=SessionRoute)``)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            deferred = _refuses_nothing(path, endpoint)
            endpoint = _in_one_thread(endpoint, deferred=deferred)
        super().__init__(path, endpoint, **kwargs)
