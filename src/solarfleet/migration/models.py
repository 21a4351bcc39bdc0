"""product_migration_history: how far each unit's telemetry is safe in long-term storage."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from solarfleet.db import Base, MetaColumns
from solarfleet.fleet.models import Product
from solarfleet.types import imei_column


class ProductMigrationHistory(MetaColumns, Base):
    __tablename__ = "product_migration_history"

    product_migration_history_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_imei: Mapped[str] = imei_column(
        String(15),
        ForeignKey("products.product_imei", ondelete="CASCADE"),
        unique=True,
        nullable=False,
    )
    latest_migration_timestamp: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    last_migrated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)

    product: Mapped[Product] = relationship()


class MigrationLease(Base):
    """A worker's claim on a unit while it migrates it: taken by compare-and-set (free, expired,
    or already ours), renewed while the work goes on, deleted when done. Two workers never hold
    the same unit at once, whatever sharding each of them was started with."""

    __tablename__ = "migration_leases"

    product_imei: Mapped[str] = imei_column(
        String(15), ForeignKey("products.product_imei", ondelete="CASCADE"), primary_key=True
    )
    holder: Mapped[str] = mapped_column(String(255), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)


class MigrationPending(Base):
    """A unit whose new readings a batch is about to *append* to the archive (no read, no
    rewrite: the archive holds nothing of the unit from ``since_us`` on). Committed before the
    archive commit and deleted with the bookkeeping: a unit still listed here after a crash may
    have its readings in the archive already, so the next pass merges it instead of appending."""

    __tablename__ = "migration_pending"

    product_imei: Mapped[str] = imei_column(
        String(15), ForeignKey("products.product_imei", ondelete="CASCADE"), primary_key=True
    )
    since_us: Mapped[int] = mapped_column(BigInteger, nullable=False)
