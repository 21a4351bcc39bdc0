"""One Settings object, read from the environment (prefix ``SOLARFLEET_``)."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    # Series (measurement, tag set, field) one unit may create; past it an upload adding new
    # ones is a 400 naming the limit (bounds the hot store's series and the kinds table).
    telemetry_max_series_per_unit: int = 1000
    # The most readings one telemetry read takes from the stores (a bound on its memory and
    # time); a read whose window holds more answers 400 saying how to narrow it.
    telemetry_max_points: int = Field(default=200_000, ge=1)
    # Plausible instants of uploaded readings (naive UTC): points before telemetry_earliest
    # (e.g. epoch seconds sent as milliseconds: January 1970) or more than
    # telemetry_future_seconds past the server's clock are set aside, not stored, and the answer
    # (still 200) says how many and why.
    telemetry_earliest: datetime = datetime(2000, 1, 1)
    telemetry_future_seconds: float = Field(default=86_400.0, ge=0)

    # Parameter rollouts: how often they are advanced (by `solarfleet serve` itself when no
    # broker is configured, by `solarfleet worker --beat` otherwise); 0 stops serve's ticker.
    rollout_tick_seconds: float = 10.0
    # The most units one rollout may target: a q matching more answers 400 naming this limit
    # (creating a rollout writes one row per target, in one request).
    rollout_max_targets: int = Field(default=100_000, ge=1)

    token_lifetime_seconds: int = 3 * 3600
    # A token's expiry is pushed forward only when it was last pushed longer ago than this,
    # so that a busy client does not cost a database write on every request.
    token_refresh_interval_seconds: int = 300
    # Login throttling (see solarfleet.auth.throttle): failed logins within the sliding window
    # answer 429 before the password is checked. 0 turns a limit off. The last two limits do not
    # apply to a username from an address it logged in from within login_known_address_days,
    # so that an attacker elsewhere cannot lock the real user out.
    login_max_failures_per_user_address: int = Field(default=5, ge=0)
    login_max_failures_per_address: int = Field(default=20, ge=0)
    login_max_failures_per_user: int = Field(default=100, ge=0)
    login_window_seconds: int = Field(default=900, ge=1)
    login_known_address_days: float = Field(default=30.0, ge=0)
    # At most this many password hashes (argon2: argon2_memory_kib each) run at once in one API
    # process; a login waits up to login_hash_wait_seconds for a turn, then answers 429.
    login_max_concurrent_hashes: int = Field(default=2, ge=1)
    login_hash_wait_seconds: float = Field(default=5.0, ge=0)
    # Peers (addresses or networks, comma-separated) whose X-Forwarded-For is believed: the
    # client address is the last hop not in this list. Empty: X-Forwarded-For is never read.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    max_body_bytes: int = 16 * 1024 * 1024  # uploads of 50,000 points fit well within this
    # A unit's report (POST /v1/rc_data): at most this many values and part keys (400 above);
    # a unit keeps its newest this many report notes, the oldest dropped.
    max_report_values: int = 1000
    max_notes_per_unit: int = 1000
    default_page_size: int = 10
    max_page_size: int = 1000
    # The query language's cost limits (api/query.py): past one, a list answers 400 naming it.
    query_max_length: int = 256 * 1024  # characters of the raw q
    query_max_filters: int = 256  # filter objects, boolean ones included
    query_max_nesting: int = 16  # levels of and/or/has/any
    query_max_relation_hops: int = 3  # relations followed from the listed table, has/any included
    query_max_relations: int = 32  # relations followed in one q (each a subquery or join)
    query_max_values: int = 10_000  # in / not_in values (PostgreSQL binds at most 65535)
    query_max_order_by: int = 16
    query_max_group_by: int = 16
    # Every SQL statement of a request is stopped after this long (PostgreSQL statement_timeout,
    # an SQLite progress handler) and answers 400 naming the limit; 0 turns it off.
    statement_timeout_seconds: float = 10.0
    # List requests one user may have running at once (per API process); more answer 429.
    query_max_in_flight_per_user: int = 4

    @field_validator("telemetry_earliest")
    @classmethod
    def _naive_utc(cls, value: datetime) -> datetime:
        """A zone given (``…Z``, ``…+02:00``) is honoured; the value kept is naive UTC."""
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        """A comma-separated string (how the environment gives it) or a list; each entry an
        address or a network (``10.0.0.0/8``)."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        for entry in value:
            try:
                ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"not an address or network: {entry!r}") from None
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'solarfleet.sqlite').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")
