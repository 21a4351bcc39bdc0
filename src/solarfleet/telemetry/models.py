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
