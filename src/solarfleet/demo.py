"""A believable demo fleet: entities, types, a few hundred units with parts and parameters.

Everything is looked up by its natural key before it is added, so loading twice adds nothing.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from solarfleet.auth.models import User
from solarfleet.auth.passwords import hash_password
from solarfleet.db import utcnow
from solarfleet.fleet.models import (
    Entity,
    ParameterType,
    Part,
    PartProductLinker,
    PartType,
    Product,
    ProductEntityLinker,
    ProductType,
)
from solarfleet.parameters.models import ProductParameter
from solarfleet.telemetry.hot import HotStore
from solarfleet.telemetry.ingest import store_upload
from solarfleet.telemetry.points import Point, to_us

DEMO_USER = "admin@solarfleet.local"
CREATOR = "demo@solarfleet.local"
UNITS = 300

ENTITIES = ["Unknown entity", "Sunrise Rwanda", "Lakeside Solar Uganda", "Savanna Power Kenya"]
PARAMETER_TYPES: list[dict[str, Any]] = [
    {"name": "battery_low_voltage", "data_type": "float", "units": "V",
     "validation_rules": {"min": 10.5, "max": 12.5}, "description": "Load disconnect voltage"},
    {"name": "max_load_watts", "data_type": "int", "units": "W",
     "validation_rules": {"min": 0, "max": 500}, "description": "Output power limit"},
    {"name": "tariff_plan", "data_type": "string",
     "validation_rules": {"choices": ["daily", "weekly", "monthly"]}, "description": "Billing"},
    {"name": "buzzer_enabled", "data_type": "bool", "validation_rules": {},
     "description": "Audible low-credit warning"},
    {"name": "credit_expiry", "data_type": "datetime", "validation_rules": {},
     "description": "When the prepaid credit runs out"},
    {"name": "firmware_channel", "data_type": "string",
     "validation_rules": {"pattern": "^(stable|beta)$", "max_length": 8},
     "description": "Firmware update channel"},
    {"name": "lamp_brightness", "data_type": "int", "units": "%",
     "validation_rules": {"min": 10, "max": 100}, "description": "LED lamp brightness"},
    {"name": "battery_capacity_ah", "data_type": "float", "units": "Ah",
     "validation_rules": {"min": 1, "max": 200}, "description": "Rated battery capacity"},
]  # fmt: skip
PRODUCT_TYPES = [
    ("BB17 Smart", "BB17-SMART", "time", ["battery_low_voltage", "max_load_watts", "tariff_plan",
                                          "buzzer_enabled", "credit_expiry", "firmware_channel"]),
    ("BB50 Home TV", "BB50-TV", "time", ["battery_low_voltage", "max_load_watts", "tariff_plan",
                                         "credit_expiry", "firmware_channel"]),
    ("Flexx Lite", "FLX-LITE", "gas", ["max_load_watts", "tariff_plan", "buzzer_enabled"]),
]  # fmt: skip
PART_TYPES = [
    ("Battery 17Ah", "Lead-acid battery", "known", ["battery_capacity_ah"]),
    ("LED lamp", "3W LED lamp with switch", "hidden", ["lamp_brightness"]),
    ("TV 24in", "24 inch DC television", "known", []),
    ("Solar panel 50W", "Polycrystalline panel", "unknown", []),
]


TELEMETRY_UNITS = 20
TELEMETRY_DAYS = 3


def load_demo_telemetry(*, session: Session, hot: HotStore) -> int:
    """Hourly readings of the last few whole days for the first units, through the real ingest
    path. The hours are aligned to midnight, so loading twice on one day adds nothing."""
    rng = random.Random(2016)
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    start = midnight - timedelta(days=TELEMETRY_DAYS)
    imeis = session.scalars(
        select(Product.product_imei).order_by(Product.product_imei).limit(TELEMETRY_UNITS)
    ).all()
    written = 0
    for imei in imeis:
        points = []
        for hour in range(TELEMETRY_DAYS * 24):
            moment = to_us(start + timedelta(hours=hour))
            daylight = 6 <= hour % 24 <= 18
            readings = {
                "battery_voltage": round(
                    rng.uniform(12.4, 13.8) if daylight else rng.uniform(11.8, 12.6), 2
                ),
                "panel_power": round(rng.uniform(5, 48), 1) if daylight else 0.0,
                "load_power": round(rng.uniform(0, 12) if daylight else rng.uniform(4, 30), 1),
            }
            points += [Point(imei, "telemetry", (), f, moment, v) for f, v in readings.items()]
        written += store_upload(session=session, hot=hot, imei=imei, points=points)
    return written


@dataclass
class DemoReport:
    units: int
    parts: int
    entities: int
    created: int
    username: str
    password: str


def _get_or_add(
    session: Session, model: type, key: dict[str, Any], **values: Any
) -> tuple[Any, bool]:
    row = session.scalars(select(model).filter_by(**key)).first()
    if row is not None:
        return row, False
    row = model(**key, **values, created_by=CREATOR)
    session.add(row)
    session.flush()
    return row, True


def load_demo(*, session: Session, units: int = UNITS) -> DemoReport:
    """Load the demo fleet (idempotent) and reset the demo SYSTEM user's password."""
    rng = random.Random(2016)
    created = 0
    entities = []
    for name in ENTITIES:
        entity, new = _get_or_add(session, Entity, {"name": name})
        entities.append(entity)
        created += new
    ptypes: dict[str, ParameterType] = {}
    for spec in PARAMETER_TYPES:
        fields = {k: v for k, v in spec.items() if k != "name"}
        ptypes[spec["name"]], new = _get_or_add(
            session, ParameterType, {"name": spec["name"]}, **fields
        )
        created += new
    product_types = []
    for name, erp, credit, names in PRODUCT_TYPES:
        ids = sorted(ptypes[n].parameter_type_id for n in names)
        pt, new = _get_or_add(
            session,
            ProductType,
            {"name": name},
            erp_code=erp,
            credit_type=credit,
            parameter_types=ids,
        )
        product_types.append(pt)
        created += new
    part_types = []
    for name, description, category, names in PART_TYPES:
        ids = sorted(ptypes[n].parameter_type_id for n in names)
        pt, new = _get_or_add(
            session, PartType, {"name": name}, description=description,
            serial_number_category=category, parameter_types=ids,
        )  # fmt: skip
        part_types.append(pt)
        created += new
    existing = set(session.scalars(select(Product.product_imei)))
    now = utcnow()
    part_serial = 0
    for i in range(units):
        imei = f"35{i:013d}"
        product_type = product_types[i % len(product_types)]
        installed = now - timedelta(days=rng.randint(30, 900), seconds=rng.randint(0, 86399))
        n_parts = rng.randint(2, 4)
        first_serial = part_serial
        part_serial += n_parts
        entity = entities[i % len(entities)] if i % 7 else None  # some units: unknown entity
        enabled = rng.random() > 0.1
        if imei in existing:
            continue
        session.add(
            Product(
                product_imei=imei,
                product_type_id=product_type.product_type_id,
                serial_number=f"SF{i:07d}",
                imsi=f"63510{i:010d}",
                iccid=f"8925010{i:012d}",
                current_enable_flag=enabled,
                desired_enable_flag=enabled,
                gps_lat=round(rng.uniform(-2.8, 1.2), 5),
                gps_lon=round(rng.uniform(29.0, 36.0), 5),
                created_at=installed,
                created_by=CREATOR,
            )
        )
        created += 1
        if entity is not None and entity.entity_id != 1:
            session.add(
                ProductEntityLinker(
                    product_imei=imei, entity_id=entity.entity_id, date_added=installed,
                    created_by=CREATOR,
                )
            )  # fmt: skip
        for n in range(n_parts):
            part_type = part_types[n % len(part_types)]
            part = Part(
                serial_number=f"PT{first_serial + n:08d}",
                part_type_id=part_type.part_type_id,
                manufacturer=rng.choice(["Sunergy", "VoltCell", "Lumos"]),
                properties={"batch": f"B{rng.randint(1, 40):02d}"},
                created_by=CREATOR,
            )
            session.add(part)
            session.flush()
            session.add(
                PartProductLinker(
                    part_id=part.part_id, product_imei=imei, date_added=installed,
                    created_by=CREATOR,
                )
            )  # fmt: skip
            created += 2
        if i % 3 == 0:
            session.add(
                ProductParameter(
                    product_imei=imei,
                    parameter_type_id=ptypes["max_load_watts"].parameter_type_id,
                    value=str(rng.choice([100, 150, 200])),
                    status="active",
                    date_added=installed + timedelta(hours=2),
                    created_at=installed + timedelta(hours=1),
                    created_by=CREATOR,
                )
            )
            created += 1
    password = secrets.token_urlsafe(12)
    user, new = _get_or_add(
        session, User, {"username": DEMO_USER}, permissions="SYSTEM",
        user_product_visibility="GLOBAL", display_name="Demo administrator",
        name="Demo administrator", password_hash=hash_password(password),
    )  # fmt: skip
    created += new
    user.password_hash = hash_password(password)
    session.commit()
    return DemoReport(
        units=session.scalar(select(func.count()).select_from(Product)) or 0,
        parts=session.scalar(select(func.count()).select_from(Part)) or 0,
        entities=len(entities),
        created=created,
        username=DEMO_USER,
        password=password,
    )
