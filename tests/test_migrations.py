"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from solarfleet.db import Base
from solarfleet.schema import MIGRATIONS


def _ours(name: str | None, type_: str, _parents: object) -> bool:
    # The archive's Iceberg catalog (pyiceberg's SqlCatalog) adds its own tables to the database.
    return type_ != "table" or name in Base.metadata.tables


def test_models_and_migrations_agree(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": _ours}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_every_table_exists(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_migration_files_are_named_by_date() -> None:
    names = sorted(p.name for p in (MIGRATIONS / "versions").glob("*.py"))
    assert names and all(n[:4].isdigit() and n[4] == "-" and n[10] == "_" for n in names)
