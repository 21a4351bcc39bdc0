"""The hot store: where uploads land first. One small interface, two implementations
(embedded, under SOLARFLEET_DATA_DIR; InfluxDB 1.x at SOLARFLEET_INFLUX_URL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from solarfleet.errors import BadRequest
from solarfleet.telemetry.points import Point


class TooManyReadings(BadRequest):
    """A read whose window holds more readings than it may take (a 400 saying how to narrow
    it). A store may raise it as soon as it knows, instead of returning ``max_points + 1``."""

    def __init__(self, max_points: int) -> None:
        super().__init__(
            f"Too many readings: the window holds more than {max_points} (the most a read "
            "takes, SOLARFLEET_TELEMETRY_MAX_POINTS); narrow it with start and end, name fewer "
            "fields, or ask for the earliest values with limit (without where, tags or ds_*)"
        )


class HotStore(Protocol):
    """Every method raises solarfleet.errors.ServiceUnavailable when the store is unreachable."""

    def write(self, points: Sequence[Point]) -> int:
        """Store ``points`` durably (same identity overwrites); the number written."""

    def read(
        self,
        imei: str,
        start_us: int,
        end_us: int,
        *,
        measurement: str | None = None,
        fields: Sequence[str] | None = None,
        limit: int | None = None,
        max_points: int | None = None,
    ) -> list[Point]:
        """The unit's readings with ``start_us <= time_us < end_us``, ordered by time.
        ``limit``: only the earliest ``limit`` of each (measurement, field) (by time, then
        tags). ``max_points``: stop after ``max_points + 1`` readings (the caller refuses a
        window that holds more), so that no read holds more than that in memory."""

    def counts_by_day(self, imei: str, start_us: int, end_us: int) -> dict[int, int]:
        """Readings per day number (points.day_of) in ``[start_us, end_us)``."""

    def drop(self, imei: str, start_us: int, end_us: int) -> int:
        """Delete the unit's readings in ``[start_us, end_us)`` (once archived and verified)."""

    def close(self) -> None: ...
