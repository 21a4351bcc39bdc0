"""Two servers over one SQLite file holding the demo fleet: solarfleet (``solarfleet serve``) and
the original's stack (Flask-Restless 0.17 under Python 3.8, ``original.py``). The database file
is the compat test's own, whatever SOLARFLEET_TEST_DATABASE_URL says: the original ran on one
file, and both read the same rows. No Python 3.8 is a skip, a failure under
SOLARFLEET_REQUIRE_SERVICES=1."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.compat.model import original_model
from tests.compat.original_env import SERVER, original_python
from tests.faults.services import BIN, Server, free_port, server_env

PASSWORD = "compat-overview-password"
NO_GPS = ("350000000000004", "350000000000011", "350000000000012", "350000000000200")


@dataclass(frozen=True)
class Answer:
    """What the two must agree on: the status class, and of a page its size and ordered keys."""

    status: int  # 2, 4 or 5
    num_results: int | None = None
    total_pages: int | None = None
    page: int | None = None
    keys: tuple[Any, ...] | None = None


class Pair:
    def __init__(self, ours: httpx.Client, original: httpx.Client, keys: dict[str, str]) -> None:
        self.ours, self.original, self.keys = ours, original, keys

    def ask(self, resource: str, params: dict[str, Any]) -> tuple[Answer, Answer]:
        return (
            self._answer(self.original, resource, params),
            self._answer(self.ours, resource, params),
        )

    def _answer(self, http: httpx.Client, resource: str, params: dict[str, Any]) -> Answer:
        r = http.get(f"/v1/{resource}", params=params)
        if r.status_code >= 300:
            return Answer(r.status_code // 100)
        body = r.json()
        key = self.keys[resource]
        if "objects" not in body:  # single: the bare object
            return Answer(2, keys=(body[key],))
        return Answer(
            2,
            body["num_results"],
            body["total_pages"],
            body["page"],
            tuple(o[key] for o in body["objects"]),
        )


def _wait(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the original's server exited:\n{log.read_text(errors='replace')}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"the original's server did not start:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    python = original_python()
    if python is None:
        pytest.skip("no Python 3.8 (set SOLARFLEET_PY38): cannot run Flask-Restless 0.17")
    folder = tmp_path_factory.mktemp("compat")
    env = server_env(folder)
    subprocess.run([str(BIN), "demo"], env=env, check=True, capture_output=True)
    subprocess.run(
        [str(BIN), "users", "create", "--username", "compat", "--password", PASSWORD],
        env=env,
        check=True,
        capture_output=True,
    )
    with sqlite3.connect(folder / "solarfleet.sqlite") as db:  # some NULLs to filter and order
        db.execute(f"UPDATE products SET gps_lat = NULL WHERE product_imei IN {NO_GPS}")
    model = original_model()
    (folder / "model.json").write_text(json.dumps(model))
    port = free_port()
    log = folder / "original.log"
    with log.open("wb") as out:
        original = subprocess.Popen(
            [str(python), str(SERVER), str(folder / "solarfleet.sqlite"), str(port),
             str(folder / "model.json")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    ours = Server(folder)
    try:
        _wait(f"http://127.0.0.1:{port}/v1/entities", original, log)
        login = httpx.post(
            f"{ours.url}/v1/auth/login", data={"username": "compat", "password": PASSWORD}
        )
        token = login.json()["message"]["login_successful"]["API_token"]
        keys = {table: spec["primary_key"] for table, spec in model.items()}
        with (
            httpx.Client(base_url=ours.url, timeout=30,
                         headers={"Authorization": f"Token token={token}"}) as mine,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as theirs,
        ):  # fmt: skip
            yield Pair(mine, theirs, keys)
    finally:
        ours.stop()
        original.terminate()
        original.wait(timeout=20)
