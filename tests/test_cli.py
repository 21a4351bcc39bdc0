"""The solarfleet command: db upgrade, users create, demo (idempotent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from solarfleet.auth.models import User
from solarfleet.cli import app
from solarfleet.db import make_engine, make_sessionmaker
from solarfleet.fleet.models import Part, Product, ProductEntityLinker
from solarfleet.telemetry.embedded import EmbeddedHotStore


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An embedded installation of its own (the CLI reads its settings from the environment)."""
    return {
        "SOLARFLEET_DATA_DIR": str(tmp_path),
        "SOLARFLEET_DATABASE_URL": "",
        "SOLARFLEET_ARGON2_TIME_COST": "1",
        "SOLARFLEET_ARGON2_MEMORY_KIB": "64",
    }


def counts(tmp: str) -> dict[str, int]:
    engine = make_engine(f"sqlite:///{Path(tmp) / 'solarfleet.sqlite'}")
    with make_sessionmaker(engine)() as session:
        out = {
            m.__tablename__: session.scalar(select(func.count()).select_from(m)) or 0
            for m in (Product, Part, ProductEntityLinker, User)
        }
    engine.dispose()
    return out


def test_demo_twice_adds_nothing_the_second_time(env: dict[str, str]) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["demo"], env=env)
    assert first.exit_code == 0, first.output
    assert "Log in as admin@solarfleet.local with password" in first.output
    after_first = counts(env["SOLARFLEET_DATA_DIR"])
    assert after_first["products"] == 300 and after_first["parts"] >= 600
    second = runner.invoke(app, ["demo"], env=env)
    assert second.exit_code == 0, second.output
    assert "(0 rows added this run)" in second.output
    assert counts(env["SOLARFLEET_DATA_DIR"]) == after_first
    hot = EmbeddedHotStore(Path(env["SOLARFLEET_DATA_DIR"]) / "hot" / "telemetry.sqlite")
    try:
        readings = hot.read("350000000000000", 0, 2**62)
    finally:
        hot.close()
    assert len(readings) == 3 * 24 * 3  # three days, hourly, three fields: not loaded twice


def test_users_create_and_login(env: dict[str, str]) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    args = ["users", "create", "--username", "ops", "--password", "longenough",
            "--permissions", "admin", "--scope", "GLOBAL"]  # fmt: skip
    r = runner.invoke(app, args, env=env)
    assert r.exit_code == 0, r.output
    assert "Created ops (ADMIN, GLOBAL)" in r.output
    again = runner.invoke(app, args, env=env)
    assert again.exit_code == 2 and "already exists" in again.output
    bad = runner.invoke(app, [*args[:3], "other", *args[4:6], "GOD"], env=env)
    assert bad.exit_code == 2


def test_entity_user_needs_entity_id(env: dict[str, str]) -> None:
    r = CliRunner().invoke(
        app,
        ["users", "create", "--username", "e", "--password", "longenough", "--scope", "ENTITY"],
        env=env,
    )
    assert r.exit_code == 2
    assert "An ENTITY user needs an entity_id" in r.output
