"""Bringing a database to the head of the Alembic migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from solarfleet.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(year)d-%%(month).2d-%%(day).2d_%%(rev)s")
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> None:
    """Apply every migration the database lacks."""
    command.upgrade(alembic_config(engine), "head")


def engine_for(settings: Settings) -> Engine:
    """An engine on the configured database (SQLite: its directory made)."""
    from solarfleet.db import make_engine

    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.effective_database_url)


def upgrade_for(settings: Settings) -> None:
    """Bring the configured database to head (the commands' first step)."""
    engine = engine_for(settings)
    upgrade(engine)
    engine.dispose()
