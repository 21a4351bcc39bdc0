"""Hostile requests against a real ``solarfleet serve`` (uvicorn in a process of its own), on the
test database: SQLite in the session's data folder, or PostgreSQL when SOLARFLEET_TEST_DATABASE_URL
is set; its hot store and archive are its own (a fresh data folder). Users and units are made
with the in-process ``factory`` on the same database, so a test arranges its fleet as any other
test does and then attacks the server over real HTTP.

``serve(**env)`` starts a server with extra settings (limits lowered for a test); ``served`` is
one with the defaults, shared by a module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI

from solarfleet.settings import Settings
from tests.faults.services import Server

Serve = Callable[..., Server]


@pytest.fixture(scope="module")
def serve(
    app: FastAPI, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serve]:
    started: list[Server] = []

    def start(**env: str) -> Server:
        # The session's database, but a data folder of its own: the hot store and the archive
        # start empty, whatever earlier tests wrote for the same (factory-made) IMEIs.
        env.setdefault("SOLARFLEET_DATABASE_URL", settings.effective_database_url)
        server = Server(tmp_path_factory.mktemp("served"), **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def served(serve: Serve) -> Server:
    return serve()
