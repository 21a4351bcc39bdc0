"""product_parameters and part_parameters: every value ever set on a unit or a part."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from solarfleet.db import Base, MetaColumns
from solarfleet.fleet.models import ParameterType, Part, Product
from solarfleet.types import choice_column, imei_column

STATUSES = ("pending", "active", "removed", "expired")


class ProductParameter(MetaColumns, Base):
    __tablename__ = "product_parameters"
    __table_args__ = (
        Index("ix_product_parameters_unit_type", "product_imei", "parameter_type_id", "status"),
        # As-of: the rows of one unit in force at an instant, without reading all its history.
        Index(
            "ix_product_parameters_as_of", "product_imei", "status", "date_added", "date_removed"
        ),
        # At most one pending value per (unit, type), whatever the concurrency.
        Index(
            "uq_product_parameters_pending",
            "product_imei",
            "parameter_type_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    product_parameter_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_imei: Mapped[str] = imei_column(
        String(15), ForeignKey("products.product_imei", ondelete="CASCADE"), nullable=False
    )
    parameter_type_id: Mapped[int] = mapped_column(
        ForeignKey("parameter_types.parameter_type_id"), nullable=False, index=True
    )
    value: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = choice_column("status", STATUSES, nullable=False, default="pending")
    date_added: Mapped[datetime | None] = mapped_column(DateTime)
    date_removed: Mapped[datetime | None] = mapped_column(DateTime)

    product: Mapped[Product] = relationship()
    parameter_type: Mapped[ParameterType] = relationship()


class PartParameter(MetaColumns, Base):
    __tablename__ = "part_parameters"
    __table_args__ = (
        Index("ix_part_parameters_part_type", "part_id", "parameter_type_id", "status"),
        Index("ix_part_parameters_as_of", "part_id", "status", "date_added", "date_removed"),
        Index(
            "uq_part_parameters_pending",
            "part_id",
            "parameter_type_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    part_parameter_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    part_id: Mapped[int] = mapped_column(
        ForeignKey("parts.part_id", ondelete="CASCADE"), nullable=False
    )
    parameter_type_id: Mapped[int] = mapped_column(
        ForeignKey("parameter_types.parameter_type_id"), nullable=False, index=True
    )
    value: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = choice_column("status", STATUSES, nullable=False, default="pending")
    date_added: Mapped[datetime | None] = mapped_column(DateTime)
    date_removed: Mapped[datetime | None] = mapped_column(DateTime)

    part: Mapped[Part] = relationship()
    parameter_type: Mapped[ParameterType] = relationship()


NOTE_REASONS = ("unknown_type", "invalid_value", "not_pending", "unknown_part", "not_on_unit")


class UnitReportNote(MetaColumns, Base):
    """A reported value that changed nothing and was not a replay: kept for operators to see.

    A unit reports what it runs (``POST /v1/rc_data``). A value that was never pending, of an
    unknown type, unparseable, or for a part not on the unit is recorded here rather than refused,
    so the unit never loops on an error. ``part_id`` and ``parameter_type_id`` are what the unit
    said, not foreign keys: the note must survive even when they name nothing we know.
    """

    __tablename__ = "unit_report_notes"

    unit_report_note_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_imei: Mapped[str] = imei_column(
        String(15),
        ForeignKey("products.product_imei", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    part_key: Mapped[str | None] = mapped_column(String(64))
    parameter_type_id: Mapped[int | None] = mapped_column(Integer)
    value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = choice_column("reason", NOTE_REASONS, nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
