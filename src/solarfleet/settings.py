"""One Settings object, read from the environment (prefix ``SOLARFLEET_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the app, the CLI and the workers need to know about their surroundings."""

    model_config = SettingsConfigDict(env_prefix="SOLARFLEET_", extra="ignore")

    data_dir: Path = Path("./solarfleet-data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite under data_dir"
    )
    influx_url: str | None = None
    archive_url: str | None = None
    broker_url: str | None = None

    token_lifetime_seconds: int = 3 * 3600
    # A token's expiry is pushed forward only when it was last pushed longer ago than this,
    # so that a busy client does not cost a database write on every request.
    token_refresh_interval_seconds: int = 300
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    default_page_size: int = 10
    max_page_size: int = 1000

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'solarfleet.sqlite').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")
