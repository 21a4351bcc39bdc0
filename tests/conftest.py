"""One app and one database per test run; every table emptied after each test.

The database is SQLite in a temporary folder, or PostgreSQL when SOLARFLEET_TEST_DATABASE_URL is
set. With SOLARFLEET_REQUIRE_SERVICES=1 (set by .ci/run) a skipped test fails the run: a missing
server is an error in CI, not a reason to skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

import solarfleet.models  # noqa: F401
from solarfleet.app import create_app
from solarfleet.db import Base, make_engine
from solarfleet.schema import upgrade
from solarfleet.settings import Settings
from tests.factories import Factory

REQUIRE_SERVICES = os.environ.get("SOLARFLEET_REQUIRE_SERVICES") == "1"
TEST_DATABASE_URL = os.environ.get("SOLARFLEET_TEST_DATABASE_URL")


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=TEST_DATABASE_URL,
        argon2_time_cost=1,
        argon2_memory_kib=64,
        **overrides,  # type: ignore[arg-type]
    )


def reset_schema(engine: Engine) -> None:
    """An empty database at the head migration."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    reset_schema(engine)
    engine.dispose()
    return create_app(settings)


@pytest.fixture(scope="session")
def engine(app: FastAPI) -> Engine:
    return app.state.engine  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def sessions(app: FastAPI) -> sessionmaker[Session]:
    return app.state.sessions  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _empty_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    engine: Engine | None = (
        request.getfixturevalue("engine") if "app" in request.fixturenames else None
    )
    yield
    if engine is None:
        return
    tables = list(reversed(Base.metadata.sorted_tables))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(t.name for t in tables)  # our own table names, not input
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())


@pytest.fixture(scope="session")
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


@pytest.fixture
def factory(sessions: sessionmaker[Session], settings: Settings) -> Factory:
    return Factory(sessions, settings)


@pytest.fixture
def system(factory: Factory) -> dict[str, str]:
    """Headers of a GLOBAL SYSTEM user."""
    return factory.headers("SYSTEM")


def pytest_report_header() -> str:
    return f"solarfleet test database: {TEST_DATABASE_URL or 'SQLite (temporary)'}"


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REQUIRE_SERVICES and _skipped:
        print(f"\nSOLARFLEET_REQUIRE_SERVICES=1 and {len(_skipped)} tests skipped:")
        for nodeid in _skipped:
            print(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
