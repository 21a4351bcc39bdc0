"""``solarfleet rollouts create|list|show|pause|resume|cancel`` and ``solarfleet simulate``.

The rollout commands work on the database directly (as ``users create`` does), acting as the
user named by ``--user`` (its permissions and scope) or, without it, as a GLOBAL SYSTEM
operator called ``cli``. ``simulate`` talks to a running API over HTTP, as units do.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from solarfleet.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from solarfleet.auth.principal import Principal

rollouts_app = typer.Typer(help="Parameter rollouts: a value across many units, in phases.")
console = Console()
UserOption = Annotated[
    str | None, typer.Option("--user", help="Act as this user (default: GLOBAL SYSTEM 'cli')")
]


def register(app: typer.Typer) -> None:
    """Add ``rollouts`` and ``simulate`` to the ``solarfleet`` command."""
    app.add_typer(rollouts_app, name="rollouts")
    app.command("simulate")(simulate)


def _sessions() -> sessionmaker[Session]:
    from solarfleet.db import make_sessionmaker
    from solarfleet.schema import engine_for as _engine
    from solarfleet.schema import upgrade_for as _upgrade

    settings = Settings()
    if settings.is_sqlite:
        _upgrade(settings)
    return make_sessionmaker(_engine(settings))


def _principal(session: Session, username: str | None) -> Principal:
    from sqlalchemy import select

    from solarfleet.auth.models import User
    from solarfleet.auth.principal import Principal

    if username is None:
        return Principal(0, "cli", "SYSTEM", "GLOBAL", None)
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None or not user.is_active:
        _fail(f"No active user {username!r}")
    principal = Principal(
        user.user_id, user.username, user.permissions, user.user_product_visibility, user.entity_id
    )
    if not principal.can("ADMIN"):
        _fail(f"{username} has {user.permissions}; rollouts need ADMIN")
    return principal


def _fail(message: str) -> Any:
    console.print(f"[red]{message}[/red]")
    raise typer.Exit(2)


def _json(raw: str, name: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        return _fail(f"{name} is not valid JSON: {exc}")


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw  # a bare word: a string


def _batch(raw: str) -> dict[str, Any]:
    return {"batch": int(raw) if raw.isdigit() else raw}


def _counts(r: dict[str, Any]) -> str:
    c = r["counts"]
    return (
        f"{c['confirmed']} confirmed, {c['pending']} pending, {c['queued']} queued, "
        f"{c['failed']} failed, {c['superseded']} superseded, {c['out_of_scope']} out of scope"
    )


def _view(session: Session, rollout: Any, principal: Principal) -> dict[str, Any]:
    from solarfleet.api.registry import REGISTRY
    from solarfleet.rollouts.service import detail, shaped

    spec = REGISTRY.by_name["parameter_rollouts"]
    row = {k: getattr(rollout, k) for k in spec.fields_for(principal)}
    return {**shaped(row), **detail(session, rollout)}


def _run(action: Any) -> Any:
    """``action(session)`` with domain errors shown as the API would word them."""
    from solarfleet.errors import SolarfleetError

    with _sessions()() as session:
        try:
            return action(session)
        except SolarfleetError as exc:
            return _fail(exc.message)


@rollouts_app.command("create")
def create(
    q: Annotated[
        str, typer.Option(help="Target units: a query over products, e.g. '{\"filters\": […]}'")
    ],  # noqa: E501
    parameter_type_id: Annotated[int, typer.Option(help="The parameter type")],
    value: Annotated[str, typer.Option(help="The value (JSON, or a bare string)")],
    part_type_id: Annotated[int | None, typer.Option(help="Set it on this part type")] = None,
    phase: Annotated[
        list[str] | None, typer.Option(help='A phase: a count ("50") or a share ("10%"); repeat')
    ] = None,
    rate_per_minute: Annotated[int | None, typer.Option(help="Instead of phases")] = None,
    wait_seconds: Annotated[int | None, typer.Option(help="Between phase starts")] = None,
    confirm_timeout_seconds: Annotated[int, typer.Option()] = 86400,
    abort_failure_percent: Annotated[float, typer.Option()] = 10.0,
    abort_min_units: Annotated[int, typer.Option()] = 10,
    user: UserOption = None,
) -> None:
    """Create a rollout; the server (or the workers) advance it."""
    from solarfleet.api.registry import REGISTRY
    from solarfleet.rollouts.service import create_rollout

    query = _json(q, "--q")

    def action(session: Session) -> dict[str, Any]:
        principal = _principal(session, user)
        rollout = create_rollout(
            session=session,
            registry=REGISTRY,
            principal=principal,
            q=query,
            parameter_type_id=parameter_type_id,
            value=_value(value),
            part_type_id=part_type_id,
            phases=[_batch(p) for p in phase] if phase else None,
            rate_per_minute=rate_per_minute,
            wait_seconds=wait_seconds,
            confirm_timeout_seconds=confirm_timeout_seconds,
            abort_failure_percent=abort_failure_percent,
            abort_min_units=abort_min_units,
            max_targets=Settings().rollout_max_targets,
        )
        session.commit()
        return _view(session, rollout, principal)

    r = _run(action)
    console.print(
        f"[green]Rollout {r['parameter_rollout_id']}[/green]: {r['targets']} units in "
        f"{r['phases_total']} phase(s), value {r['value']!r}"
    )


@rollouts_app.command("list")
def list_(
    state: Annotated[str | None, typer.Option(help="running, paused, cancelled, completed")] = None,
    user: UserOption = None,
) -> None:
    """Rollouts, newest first."""
    from sqlalchemy import select

    from solarfleet.api.registry import REGISTRY
    from solarfleet.rollouts.models import ParameterRollout

    def action(session: Session) -> list[dict[str, Any]]:
        principal = _principal(session, user)
        stmt = select(ParameterRollout).order_by(ParameterRollout.parameter_rollout_id.desc())
        criterion = REGISTRY.scope(ParameterRollout, principal)
        if criterion is not None:
            stmt = stmt.where(criterion)
        if state:
            stmt = stmt.where(ParameterRollout.state == state)
        return [_view(session, r, principal) for r in session.scalars(stmt.limit(200))]

    table = Table("id", "state", "phase", "value", "progress", "created by")
    for r in _run(action):
        table.add_row(
            str(r["parameter_rollout_id"]),
            r["state"] + (f" ({r['reason']})" if r["reason"] else ""),
            f"{r['phase']}/{r['phases_total']}",
            f"type {r['parameter_type_id']} = {r['value']}",
            _counts(r),
            r["created_by"] or "",
        )
    console.print(table)


def _load(session: Session, rollout_id: int, user: str | None) -> dict[str, Any]:
    from solarfleet.api.registry import REGISTRY
    from solarfleet.rollouts.service import load

    principal = _principal(session, user)
    rollout = load(session=session, registry=REGISTRY, principal=principal, rollout_id=rollout_id)
    return _view(session, rollout, principal)


def _print(r: dict[str, Any]) -> None:
    console.print(
        f"[bold]Rollout {r['parameter_rollout_id']}[/bold]: {r['state']}"
        + (f" — {r['reason']}" if r["reason"] else "")
    )
    console.print(
        f"  type {r['parameter_type_id']} = {r['value']!r} on {r['targets']} units; phase "
        f"{r['phase']} of {r['phases_total']}; {_counts(r)}"
    )
    for p in r["phase_counts"]:
        console.print(f"  phase {p['phase']}: {p['units']} units; " + _counts(p))
    for e in r["events"]:
        why = f" ({e['reason']})" if e["reason"] else ""
        console.print(
            f"  {e['created_at']:%Y-%m-%d %H:%M:%S} {e['event']} by {e['created_by']}{why}"
        )


@rollouts_app.command("show")
def show(
    rollout_id: Annotated[int, typer.Argument(help="The rollout")],
    watch: Annotated[
        bool, typer.Option(help="A progress bar until it ends (Ctrl-C stops)")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes")] = 2.0,
    user: UserOption = None,
) -> None:
    """A rollout's state, counts per phase and events; ``--watch`` follows it."""
    r = _run(lambda session: _load(session, rollout_id, user))
    if not watch:
        _print(r)
        return
    columns = (
        TextColumn(f"[bold]rollout {rollout_id}[/bold] {{task.fields[state]}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("units done · phase {task.fields[phase]} · {task.fields[counts]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("rollout", total=r["targets"], state="", phase="", counts="")
        while True:
            c = r["counts"]
            done = c["confirmed"] + c["failed"] + c["superseded"] + c["out_of_scope"]
            progress.update(
                task,
                completed=done,
                state=r["state"],
                phase=f"{r['phase']}/{r['phases_total']}",
                counts=_counts(r),
            )
            if r["state"] in ("completed", "cancelled"):
                break
            time.sleep(interval)
            r = _run(lambda session: _load(session, rollout_id, user))
    _print(r)


def _control(action_name: str) -> Any:
    def command(
        rollout_id: Annotated[int, typer.Argument(help="The rollout")],
        user: UserOption = None,
    ) -> None:
        from solarfleet.api.registry import REGISTRY
        from solarfleet.rollouts.service import control

        def action(session: Session) -> dict[str, Any]:
            principal = _principal(session, user)
            rollout = control(
                session=session,
                registry=REGISTRY,
                principal=principal,
                rollout_id=rollout_id,
                action=action_name,
            )
            session.commit()
            return _view(session, rollout, principal)

        _print(_run(action))

    command.__doc__ = f"{action_name.capitalize()} a rollout (recorded with who and when)."
    return command


for _name in ("pause", "resume", "cancel"):
    rollouts_app.command(_name)(_control(_name))


def simulate(
    units: Annotated[int, typer.Option(help="How many units to simulate")] = 50,
    url: Annotated[str, typer.Option(help="The API")] = "http://127.0.0.1:8000",
    duration: Annotated[float, typer.Option(help="Seconds to run")] = 60.0,
    poll_minutes: Annotated[float, typer.Option(help="Simulated minutes between polls")] = 5.0,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second")] = 60.0,
    reject_share: Annotated[float, typer.Option(help="Values reported back as another")] = 0.05,
    ignore_share: Annotated[float, typer.Option(help="Values never answered")] = 0.05,
    drop_share: Annotated[float, typer.Option(help="Polls the link drops")] = 0.2,
    product_type_id: Annotated[int | None, typer.Option(help="Only units of this type")] = None,
    threads: Annotated[int, typer.Option(help="Concurrent connections")] = 8,
    seed: Annotated[int, typer.Option(help="Random seed")] = 1,
) -> None:
    """Virtual units (the first N of the database, with their device keys) polling the API:
    they confirm most values, reject or ignore a share, and upload buffered telemetry late."""
    import httpx
    from sqlalchemy import select

    from solarfleet.fleet.models import Product
    from solarfleet.rollouts.simulate import Behaviour, VirtualUnit, run

    for name, share in (("reject", reject_share), ("ignore", ignore_share), ("drop", drop_share)):
        if not 0 <= share <= 1:
            _fail(f"--{name}-share must be between 0 and 1")
    if reject_share + ignore_share > 1:
        _fail("--reject-share and --ignore-share add up to more than 1")
    with _sessions()() as session:
        stmt = select(Product.product_imei, Product.device_key).order_by(Product.product_imei)
        if product_type_id is not None:
            stmt = stmt.where(Product.product_type_id == product_type_id)
        found = session.execute(stmt.limit(units)).all()
    if not found:
        _fail("No units in the database: run `solarfleet demo` first")
    behaviour = Behaviour(reject_share, ignore_share, drop_share)
    fleet = [VirtualUnit(imei, key, behaviour, seed * 1_000_003 + i)
             for i, (imei, key) in enumerate(found)]  # fmt: skip
    poll_seconds = poll_minutes * 60 / speed
    console.print(
        f"Simulating {len(fleet)} units against {url} for {duration:.0f}s: a poll every "
        f"{poll_seconds:.1f}s ({poll_minutes:g} simulated minutes)"
    )
    last = [0.0]

    def show_round(stats: Any) -> None:
        if time.monotonic() - last[0] >= 5:
            last[0] = time.monotonic()
            console.print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(stats.counts.items())))

    with httpx.Client(base_url=url, timeout=10.0) as client:
        stats = run(fleet, client, duration=duration, poll_seconds=poll_seconds,
                    threads=threads, on_round=show_round)  # fmt: skip
    table = Table("what", "count")
    for key, n in sorted(stats.counts.items()):
        table.add_row(key, str(n))
    console.print(table)
    if any(key.endswith(tuple(f" {c}" for c in range(500, 600))) for key in stats.counts):
        raise typer.Exit(1)
