"""Per-unit bookkeeping of the hot store: since when a unit has readings not yet archived."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from solarfleet.db import Base
from solarfleet.types import imei_column


class TelemetryDirty(Base):
    """A unit's "dirty since" mark: the oldest reading time of every upload since the last
    archived pass. Readings older than the watermark are found again through it."""

    __tablename__ = "telemetry_dirty"

    product_imei: Mapped[str] = imei_column(
        String(15), ForeignKey("products.product_imei", ondelete="CASCADE"), primary_key=True
    )
    dirty_since_us: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Bumped by every upload: the migration clears the mark only if it is unchanged (CAS).
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)


class TelemetrySeries(Base):
    """A series a unit has written (measurement, tag set, field) and the kind of its values.

    One kind per row, fixed by the unit's first reading of it: a unit's choice binds only that
    unit's series, never another unit's (issue 9.11). The rows also bound how many series one
    unit may create (``telemetry_max_series_per_unit``)."""

    __tablename__ = "telemetry_series"

    product_imei: Mapped[str] = imei_column(
        String(15), ForeignKey("products.product_imei", ondelete="CASCADE"), primary_key=True
    )
    measurement: Mapped[str] = mapped_column(String(64), primary_key=True)
    # A digest of the canonical tag set (tags are up to 32 x 256 characters: too long a key).
    tags_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(5), nullable=False)
