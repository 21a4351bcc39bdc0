"""Request bodies are capped: 413 before an oversized body is read whole."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import make_settings


@pytest.fixture
def small_app(app: FastAPI) -> Iterator[TestClient]:
    """The app with a 1 KiB body limit, on the same database as the session's app."""
    from solarfleet.app import create_app

    settings = make_settings(app.state.settings.data_dir, max_body_bytes=1024)
    small = create_app(settings)
    yield TestClient(small)
    small.state.engine.dispose()


def test_declared_oversized_body_is_413(small_app: TestClient, system: dict[str, str]) -> None:
    body = {"name": "x" * 2000}
    r = small_app.post("/v1/entities", json=body, headers=system)
    assert r.status_code == 413
    assert r.json() == {"status": "error", "message": "Request body larger than 1024 bytes"}


def test_streamed_oversized_body_is_413(small_app: TestClient, system: dict[str, str]) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(20):
            yield b"y" * 100
        yield b'"}'

    headers = {**system, "Content-Type": "application/json"}
    r = small_app.post("/v1/entities", content=chunks(), headers=headers)
    assert r.status_code == 413
    assert r.json() == {"status": "error", "message": "Request body larger than 1024 bytes"}


def test_login_body_is_capped_too(small_app: TestClient) -> None:
    r = small_app.post("/v1/auth/login", data={"username": "u", "password": "p" * 5000})
    assert r.status_code == 413


def test_small_bodies_pass(small_app: TestClient, system: dict[str, str]) -> None:
    r = small_app.post("/v1/entities", json={"name": "fits"}, headers=system)
    assert r.status_code == 201
