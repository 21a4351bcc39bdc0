"""Which hot store the app uses, and the dependencies that hand it (and the archive reader) to
routes."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Annotated, Protocol

from fastapi import Depends, Request

from solarfleet.settings import Settings
from solarfleet.telemetry.embedded import EmbeddedHotStore
from solarfleet.telemetry.hot import HotStore
from solarfleet.telemetry.influx import InfluxHotStore
from solarfleet.telemetry.points import Point


class ArchiveReader(Protocol):
    """The archived readings in ``[start_us, end_us)`` (see ``Archive.read``)."""

    def __call__(
        self,
        imei: str,
        start_us: int,
        end_us: int,
        measurement: str | None,
        fields: Sequence[str] | None,
        *,
        limit: int | None = None,
        max_points: int | None = None,
    ) -> list[Point]: ...


def influx_store(settings: Settings) -> InfluxHotStore:
    """The InfluxDB hot store that SOLARFLEET_INFLUX_URL names (which must be set)."""
    assert settings.influx_url
    return InfluxHotStore(
        settings.influx_url,
        database=settings.influx_database,
        timeout=settings.influx_timeout_seconds,
    )


def make_hot_store(settings: Settings) -> HotStore:
    """InfluxDB when SOLARFLEET_INFLUX_URL is set, else the embedded store under the data folder."""
    if settings.influx_url:
        return influx_store(settings)
    return EmbeddedHotStore(settings.data_dir / "hot" / "telemetry.sqlite")


def make_archive_reader(settings: Settings) -> ArchiveReader:
    """The archive's reader; the archive (its catalog, its table) is opened on first use."""
    from solarfleet.telemetry.archive import Archive

    archive: Archive | None = None
    lock = threading.Lock()

    def read(
        imei: str,
        start_us: int,
        end_us: int,
        measurement: str | None,
        fields: Sequence[str] | None,
        *,
        limit: int | None = None,
        max_points: int | None = None,
    ) -> list[Point]:
        nonlocal archive
        with lock:
            if archive is None:
                archive = Archive.from_settings(settings)
        return archive.read(
            imei, start_us, end_us, measurement, fields, limit=limit, max_points=max_points
        )

    return read


async def get_hot_store(request: Request) -> HotStore:  # no I/O: on the event loop
    return request.app.state.hot_store  # type: ignore[no-any-return]


async def get_archive_reader(request: Request) -> ArchiveReader | None:
    """The long-term store's reader, once one is plugged in (``app.state.archive_reader``)."""
    return getattr(request.app.state, "archive_reader", None)


HotStoreDep = Annotated[HotStore, Depends(get_hot_store)]
ArchiveReaderDep = Annotated[ArchiveReader | None, Depends(get_archive_reader)]
