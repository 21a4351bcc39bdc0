"""create_app(settings) -> the ASGI app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import DataError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from solarfleet import __version__
from solarfleet.api import openapi
from solarfleet.api.auth_routes import router as auth_router
from solarfleet.api.in_flight import InFlight
from solarfleet.api.limits import BodySizeLimit
from solarfleet.api.responses import error
from solarfleet.api.routes import resource_router
from solarfleet.auth import passwords
from solarfleet.auth.gates import login_gates
from solarfleet.console import console_app
from solarfleet.db import make_engine, make_sessionmaker
from solarfleet.errors import MethodNotAllowed, ServiceUnavailable, SolarfleetError
from solarfleet.fleet.routes import router as fleet_router
from solarfleet.migration.routes import router as migration_router
from solarfleet.parameters.routes import router as parameters_router
from solarfleet.parameters.unit_routes import router as unit_router
from solarfleet.resources import REGISTRY
from solarfleet.rollouts.routes import router as rollouts_router
from solarfleet.rollouts.ticker import run_ticker
from solarfleet.settings import Settings
from solarfleet.telemetry.routes import router as telemetry_router
from solarfleet.telemetry.store import make_archive_reader, make_hot_store

log = logging.getLogger("solarfleet")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    passwords.configure(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib)
    engine = make_engine(
        settings.effective_database_url, statement_timeout=settings.statement_timeout_seconds
    )
    # /docs and /redoc with their scripts served from the installed package, not from a CDN:
    # they work on a site with no internet.
    app = FastAPIOffline(
        title="solarfleet",
        version=__version__,
        description="Backend for fleets of pay-as-you-go solar home systems; "
        "wire-compatible with the SMARTSolar API.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = make_sessionmaker(engine)
    app.state.registry = REGISTRY
    app.state.in_flight = InFlight(settings.query_max_in_flight_per_user)
    app.state.hot_store = make_hot_store(settings)
    app.state.archive_reader = make_archive_reader(settings)
    app.state.login_gates = login_gates(settings)
    routers = [auth_router, fleet_router, parameters_router, unit_router, telemetry_router,
               migration_router, rollouts_router]  # fmt: skip
    routers += [resource_router(REGISTRY, spec) for spec in REGISTRY.specs]
    for router in routers:
        _add_routes(app, router)
    app.mount("/console", console_app())  # the browser console; the API never imports it
    _install_error_handlers(app)
    openapi.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """``router``'s routes in the app's own list, each matched by its regular expression.

    ``app.include_router`` keeps a router as one entry whose routes are matched through a layer
    of per-request bookkeeping: with our ~40 routers that layer was the whole of a 404's 1 ms
    and a third of a millisecond before any resource's route (issue 11). Our routers carry their
    prefix, tags, responses and route class themselves and are included with no options of their
    own, so their routes are the same routes either way (the OpenAPI document is unchanged).
    """
    app.router.routes.extend(router.routes)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # A hot store that refuses our credentials or rights is a configuration error: the server
    # does not start (InfluxConfigurationError says what to grant), rather than answering 503.
    check_access = getattr(app.state.hot_store, "check_access", None)
    if check_access is not None:
        await run_in_threadpool(check_access)
    async with run_ticker(app.state.settings, app.state.sessions):  # rollouts, without a broker
        yield
    # Close the store, and leave a fresh one (stores connect on first use) for a later start-up
    # of the same app object: a test client entered twice, a server restarted in-process.
    store = app.state.hot_store
    app.state.hot_store = make_hot_store(app.state.settings)
    store.close()


def app_from_environment() -> FastAPI:
    """The app with settings from the environment (what ``solarfleet serve`` runs)."""
    return create_app(Settings())


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SolarfleetError)
    async def domain_error(_request: Request, exc: SolarfleetError) -> Response:
        return error(exc.message, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> Response:
        return error(_describe(exc.errors()), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            return error(MethodNotAllowed(request.method).message, 405, headers=exc.headers)
        if exc.status_code == 404:
            return error(f"No such endpoint: {request.url.path}", 404)
        return error(str(exc.detail), exc.status_code, headers=exc.headers)

    @app.exception_handler(DataError)
    async def data_error(_request: Request, exc: DataError) -> Response:
        log.info("value refused by the database: %s", exc.orig)
        return error("A value is out of range or not valid for the database", 400)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> Response:
        # A defect: logged with its trace here, never shown to the client.
        log.exception("unhandled error", exc_info=exc)
        return error("Internal error; it has been logged", 500)

    @app.exception_handler(OperationalError)
    async def database_down(_request: Request, exc: OperationalError) -> Response:
        log.error("database unavailable: %s", exc.orig)
        return error(
            "The database is unavailable; try again shortly",
            503,
            headers=ServiceUnavailable.headers,
        )


def _describe(errors: Any) -> str:
    """The first validation error as one sentence naming the field."""
    if not errors:
        return "Invalid request"
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    kind = first.get("type", "")
    if kind == "json_invalid":
        return "Malformed JSON body"
    if kind == "extra_forbidden":
        return f"Unknown field {'.'.join(loc)!r}"
    if kind == "missing":
        if not loc:  # the body itself
            return "Missing JSON body: send a JSON object (Content-Type: application/json)"
        return f"Missing field {'.'.join(loc)!r}"
    where = f" for {'.'.join(loc)!r}" if loc else ""
    return f"Invalid value{where}: {first.get('msg', 'invalid')}"
