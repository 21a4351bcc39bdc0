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
    influx_url: str | None = Field(
        default=None, description="InfluxDB 1.x for the hot store; default: embedded under data_dir"
    )
    influx_database: str = "solarfleet"
    influx_timeout_seconds: float = 10.0
    archive_url: str | None = None
    broker_url: str | None = None

    # The long-term archive (Iceberg) and the migration that fills it.
    archive_table: str = "solarfleet.telemetry"
    archive_buckets: int = 16  # bucket(imei, N) partitions; fixed once the table exists
    migration_batch_size: int = 500  # units per archive commit
    migration_interval_seconds: float = 300.0  # between passes of `telemetry migrate`
    migration_shards: int = 16  # Celery tasks per pass (units by a stable hash of the imei)
    migration_lease_seconds: int = 900  # a worker's claim on a unit expires after this
    migration_queue: str = "solarfleet.migration"  # the Celery queue of the migration tasks
    # The hot store drops a unit's day once the archive is verified to hold it and it is older
    # than this many days; 0 keeps everything in the hot store.
    hot_retention_days: float = 30.0

    # Parameter rollouts: how often they are advanced (by `solarfleet serve` itself when no
    # broker is configured, by `solarfleet worker --beat` otherwise); 0 stops serve's ticker.
    rollout_tick_seconds: float = 10.0

    token_lifetime_seconds: int = 3 * 3600
    # A token's expiry is pushed forward only when it was last pushed longer ago than this,
    # so that a busy client does not cost a database write on every request.
    token_refresh_interval_seconds: int = 300
    # Login throttling: more failed logins than these within the window (sliding) answer 429
    # before the password is checked. 0 turns a limit off. The address is the peer address
    # uvicorn reports; behind a reverse proxy, run uvicorn with --proxy-headers and
    # --forwarded-allow-ips=<proxy> so that it is the client's, not the proxy's.
    login_max_failures_per_user: int = 5
    login_max_failures_per_address: int = 20
    login_window_seconds: int = 900
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    max_body_bytes: int = 16 * 1024 * 1024  # uploads of 50,000 points fit well within this
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
