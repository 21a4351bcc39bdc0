"""Alembic environment: the engine comes from solarfleet.schema (never from a URL in a file)."""

from alembic import context

import solarfleet.models  # noqa: F401  (every table on Base.metadata)
from solarfleet.db import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    engine = config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("solarfleet migrations run online only: use `solarfleet db upgrade`")
run()
