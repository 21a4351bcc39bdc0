"""Alembic environment: the engine comes from solarfleet.schema (never from a URL in a file)."""

from alembic import context

import solarfleet.models  # noqa: F401  (every table on Base.metadata)
from solarfleet.db import Base

config = context.config
target_metadata = Base.metadata


def _ours(name: str | None, type_: str, _parents: object) -> bool:
    """Only our tables: the archive's Iceberg catalog keeps its own tables in this database."""
    return type_ != "table" or name in target_metadata.tables


def run() -> None:
    engine = config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_name=_ours,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("solarfleet migrations run online only: use `solarfleet db upgrade`")
run()
