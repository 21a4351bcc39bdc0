"""The ``solarfleet`` command: serve, db, users, demo."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

import solarfleet.resources  # noqa: F401  (assembles the registry the commands read)
from solarfleet.migration.cli import register as register_migration
from solarfleet.rollouts.cli import register as register_rollouts
from solarfleet.schema import engine_for as _engine
from solarfleet.schema import upgrade_for as _upgrade
from solarfleet.settings import Settings

app = typer.Typer(help="solarfleet: backend for fleets of pay-as-you-go solar home systems.")
db_app = typer.Typer(help="The database schema.")
users_app = typer.Typer(help="API users.")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
register_migration(app)  # telemetry migrate|verify|compact, worker
register_rollouts(app)  # rollouts create|list|show|pause|resume|cancel, simulate
console = Console()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database to the newest schema."""
    settings = Settings()
    _upgrade(settings)
    console.print(f"[green]Database at head[/green]: {_safe_url(settings)}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL only)")] = 1,
    access_log: Annotated[
        bool, typer.Option(help="Log every request (a busy server spends a core's share on it)")
    ] = True,
) -> None:
    """Run the API (an embedded SQLite database is upgraded first)."""
    import uvicorn

    settings = Settings()
    if settings.is_sqlite:
        _upgrade(settings)
        if workers > 1:
            console.print("[yellow]SQLite runs one worker process; use PostgreSQL to scale[/]")
            workers = 1
    _check_influx(settings)
    console.print(f"solarfleet on http://{host}:{port} (docs at /docs), {_safe_url(settings)}")
    uvicorn.run(
        "solarfleet.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=access_log,
        server_header=False,
        # The app decides whom to believe about the client's address (SOLARFLEET_TRUSTED_PROXIES,
        # solarfleet.auth.proxies); uvicorn's default would trust X-Forwarded-For from 127.0.0.1.
        proxy_headers=False,
    )


def _check_influx(settings: Settings) -> None:
    """Missing InfluxDB rights stop the start here, once, with what to grant (each worker
    process checks again at its start-up, see app.py)."""
    if not settings.influx_url:
        return
    from solarfleet.telemetry.influx import InfluxConfigurationError
    from solarfleet.telemetry.store import influx_store

    store = influx_store(settings)
    try:
        store.check_access()
    except InfluxConfigurationError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        store.close()


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option(help="Login name")],
    password: Annotated[str, typer.Option(help="Password (8 characters or more)")],
    permissions: Annotated[
        str, typer.Option(help="OVERVIEW, TECHNICAL, ADMIN, FACTORY or SYSTEM")
    ] = "OVERVIEW",
    scope: Annotated[str, typer.Option(help="GLOBAL or ENTITY")] = "GLOBAL",
    entity_id: Annotated[int | None, typer.Option(help="The entity of an ENTITY user")] = None,
) -> None:
    """Create an API user."""
    from solarfleet.auth import passwords
    from solarfleet.auth.service import create_user
    from solarfleet.db import make_sessionmaker
    from solarfleet.errors import SolarfleetError

    settings = Settings()
    passwords.configure(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib)
    if len(password) < 8:
        console.print("[red]The password needs 8 characters or more[/red]")
        raise typer.Exit(2)
    if settings.is_sqlite:
        _upgrade(settings)
    with make_sessionmaker(_engine(settings))() as session:
        try:
            user = create_user(
                session=session,
                username=username,
                password=password,
                permissions=permissions.upper(),
                scope=scope.upper(),
                entity_id=entity_id,
            )
        except SolarfleetError as exc:
            console.print(f"[red]{exc.message}[/red]")
            raise typer.Exit(2) from None
    console.print(f"[green]Created[/green] {user.username} ({user.permissions}, {scope.upper()})")


@app.command()
def demo() -> None:
    """Load a demo fleet (running it again adds nothing twice)."""
    from solarfleet.auth import passwords
    from solarfleet.db import make_sessionmaker
    from solarfleet.demo import load_demo, load_demo_telemetry
    from solarfleet.telemetry.store import make_hot_store

    settings = Settings()
    passwords.configure(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib)
    _upgrade(settings)
    hot = make_hot_store(settings)
    with make_sessionmaker(_engine(settings))() as session:
        report = load_demo(session=session)
        points = load_demo_telemetry(session=session, hot=hot)
    hot.close()
    console.print(
        f"[green]Demo fleet ready[/green]: {report.units} units, {report.parts} parts, "
        f"{report.entities} entities ({report.created} rows added this run), "
        f"{points} telemetry readings"
    )
    console.print(
        f"Log in as [bold]{report.username}[/bold] with password [bold]{report.password}[/bold]"
    )


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.effective_database_url).render_as_string(hide_password=True)
