"""Eight processes opening the archive at once on a fresh database (issue 16.6): each gets the
table, none fails creating the catalog's tables. On PostgreSQL the fresh database is a schema
of its own (``search_path``) in the test database; on SQLite a new file."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from solarfleet.db import make_engine
from tests.conftest import TEST_DATABASE_URL

PROCESSES = 8

CHILD = """
import sys, time
from pathlib import Path
from solarfleet.telemetry.archive import Archive
url, warehouse, gate, me, n = sys.argv[1:6]
gate = Path(gate)
(gate / f"ready.{me}").touch()
deadline = time.monotonic() + 120
while len(list(gate.glob("ready.*"))) < int(n) and time.monotonic() < deadline:
    time.sleep(0.005)
archive = Archive(database_url=url, warehouse=warehouse)
print(archive.table.metadata.table_uuid)
archive.close()
"""


@pytest.fixture
def fresh_url(tmp_path: Path) -> Iterator[str]:
    if not TEST_DATABASE_URL or not TEST_DATABASE_URL.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'fresh.sqlite'}"
        return
    schema = f"catalog_race_{uuid.uuid4().hex[:10]}"
    admin = make_engine(TEST_DATABASE_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(TEST_DATABASE_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_eight_processes_open_the_archive_at_once_on_a_fresh_database(
    fresh_url: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    warehouse = (tmp_path / "warehouse").as_uri()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, fresh_url, warehouse, str(gate), str(i), str(PROCESSES)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(PROCESSES)
    ]
    results = [(child.wait(timeout=300), *child.communicate()) for child in children]
    failures = [err[-2000:] for code, _out, err in results if code != 0]
    assert failures == []
    assert len({out.strip() for _code, out, _err in results}) == 1  # one table for all
