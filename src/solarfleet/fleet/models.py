"""Entities, product and part types, products (units), parts and the linkers between them."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    and_,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from solarfleet.db import Base, MetaColumns
from solarfleet.types import IMEI_LENGTH, choice_column, imei_column, json_column

DEVICE_KEY_LENGTH = 24


def new_device_key() -> str:
    return secrets.token_urlsafe(18)  # 18 bytes -> 24 characters


class Entity(MetaColumns, Base):
    __tablename__ = "entities"

    entity_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)

    product_links: Mapped[list[ProductEntityLinker]] = relationship(
        back_populates="entity", viewonly=True
    )


class ProductType(MetaColumns, Base):
    __tablename__ = "product_types"

    product_type_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    erp_code: Mapped[str | None] = mapped_column(String(64))
    parameter_types: Mapped[list[int]] = json_column(nullable=False, default=list)
    credit_type: Mapped[str | None] = choice_column("credit_type", ("gas", "time"))

    products: Mapped[list[Product]] = relationship(back_populates="product_type", viewonly=True)


class Product(MetaColumns, Base):
    __tablename__ = "products"

    product_imei: Mapped[str] = imei_column(String(IMEI_LENGTH), primary_key=True)
    product_type_id: Mapped[int] = mapped_column(
        ForeignKey("product_types.product_type_id"), nullable=False, index=True
    )
    serial_number: Mapped[str | None] = mapped_column(String(64), unique=True)
    imsi: Mapped[str | None] = mapped_column(String(15), unique=True)
    iccid: Mapped[str | None] = mapped_column(String(22))
    device_key: Mapped[str] = mapped_column(
        String(DEVICE_KEY_LENGTH), nullable=False, default=new_device_key
    )
    current_enable_flag: Mapped[bool | None] = mapped_column(Boolean)
    desired_enable_flag: Mapped[bool | None] = mapped_column(Boolean)
    gps_lat: Mapped[float | None] = mapped_column(Float)
    gps_lon: Mapped[float | None] = mapped_column(Float)

    product_type: Mapped[ProductType] = relationship(back_populates="products")
    entity_links: Mapped[list[ProductEntityLinker]] = relationship(
        back_populates="product", viewonly=True
    )
    part_links: Mapped[list[PartProductLinker]] = relationship(
        back_populates="product", viewonly=True
    )
    entities: Mapped[list[Entity]] = relationship(
        secondary="product_entity_linker",
        primaryjoin=lambda: and_(
            Product.product_imei == ProductEntityLinker.product_imei,
            ProductEntityLinker.date_removed.is_(None),
        ),
        viewonly=True,
    )
    parts: Mapped[list[Part]] = relationship(
        secondary="part_product_linker",
        primaryjoin=lambda: and_(
            Product.product_imei == PartProductLinker.product_imei,
            PartProductLinker.date_removed.is_(None),
        ),
        viewonly=True,
    )


class ProductEntityLinker(MetaColumns, Base):
    __tablename__ = "product_entity_linker"
    __table_args__ = (
        # A unit belongs to at most one entity at a time.
        Index(
            "uq_product_entity_linker_current",
            "product_imei",
            unique=True,
            sqlite_where=text("date_removed IS NULL"),
            postgresql_where=text("date_removed IS NULL"),
        ),
    )

    product_entity_linker_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_imei: Mapped[str] = imei_column(
        ForeignKey("products.product_imei", ondelete="CASCADE"), nullable=False, index=True
    )
    entity_id: Mapped[int] = mapped_column(
        ForeignKey("entities.entity_id"), nullable=False, index=True
    )
    date_added: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    date_removed: Mapped[datetime | None] = mapped_column(DateTime)

    product: Mapped[Product] = relationship(back_populates="entity_links")
    entity: Mapped[Entity] = relationship(back_populates="product_links")


class PartType(MetaColumns, Base):
    __tablename__ = "part_types"

    part_type_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    serial_number_category: Mapped[str] = choice_column(
        "serial_number_category", ("known", "hidden", "unknown"), nullable=False, default="known"
    )
    parameter_types: Mapped[list[int]] = json_column(nullable=False, default=list)

    parts: Mapped[list[Part]] = relationship(back_populates="part_type", viewonly=True)


class Part(MetaColumns, Base):
    __tablename__ = "parts"

    part_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial_number: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    part_type_id: Mapped[int] = mapped_column(
        ForeignKey("part_types.part_type_id"), nullable=False, index=True
    )
    properties: Mapped[dict[str, Any] | None] = json_column()
    manufacturer: Mapped[str | None] = mapped_column(String(255))

    part_type: Mapped[PartType] = relationship(back_populates="parts")
    product_links: Mapped[list[PartProductLinker]] = relationship(
        back_populates="part", viewonly=True
    )
    product: Mapped[Product | None] = relationship(
        secondary="part_product_linker",
        primaryjoin=lambda: and_(
            Part.part_id == PartProductLinker.part_id, PartProductLinker.date_removed.is_(None)
        ),
        uselist=False,
        viewonly=True,
    )


class PartProductLinker(MetaColumns, Base):
    __tablename__ = "part_product_linker"
    __table_args__ = (
        # A part is on at most one unit at a time.
        Index(
            "uq_part_product_linker_current",
            "part_id",
            unique=True,
            sqlite_where=text("date_removed IS NULL"),
            postgresql_where=text("date_removed IS NULL"),
        ),
    )

    part_product_linker_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    part_id: Mapped[int] = mapped_column(
        ForeignKey("parts.part_id", ondelete="CASCADE"), nullable=False, index=True
    )
    product_imei: Mapped[str] = imei_column(
        ForeignKey("products.product_imei", ondelete="CASCADE"), nullable=False, index=True
    )
    date_added: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    date_removed: Mapped[datetime | None] = mapped_column(DateTime)

    part: Mapped[Part] = relationship(back_populates="product_links")
    product: Mapped[Product] = relationship(back_populates="part_links")


class ParameterType(MetaColumns, Base):
    __tablename__ = "parameter_types"

    parameter_type_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    data_type: Mapped[str] = choice_column(
        "data_type", ("float", "datetime", "int", "string", "bool"), nullable=False
    )
    validation_rules: Mapped[dict[str, Any] | None] = json_column()
    description: Mapped[str | None] = mapped_column(Text)
    units: Mapped[str | None] = mapped_column(String(32))
    repeatable: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    setting: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
