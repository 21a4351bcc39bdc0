"""A small fleet for the parameter tests: types, a unit with parts, callers and unit credentials."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.fleet.models import Entity, ParameterType, Part, Product
from solarfleet.parameters.models import PartParameter, ProductParameter, UnitReportNote
from tests.factories import Factory


def unit_auth(unit: Product) -> dict[str, str]:
    """HTTP Basic headers of the unit itself."""
    raw = f"{unit.product_imei}:{unit.device_key}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@dataclass
class Fleet:
    entity: Entity
    level: ParameterType  # int, like seed 003's type 52
    enabled: ParameterType  # bool
    unit: Product
    part: Part
    spare: Part  # a part of the same type, on no unit
    admin: dict[str, str]

    @property
    def imei(self) -> str:
        return self.unit.product_imei

    @property
    def device(self) -> dict[str, str]:
        return unit_auth(self.unit)


@pytest.fixture
def fleet(factory: Factory) -> Fleet:
    entity = factory.entity("Fleet Co")
    level = factory.parameter_type(
        "int", name="charge_level", validation_rules={"min": 0, "max": 100}
    )
    enabled = factory.parameter_type("bool", name="enabled")
    ptype = factory.product_type(
        parameter_types=sorted([level.parameter_type_id, enabled.parameter_type_id])
    )
    part_type = factory.part_type(parameter_types=[level.parameter_type_id])
    unit = factory.product("111010101010101", product_type=ptype, entity=entity)
    part = factory.part(part_type=part_type, on=unit)
    spare = factory.part(part_type=part_type)
    return Fleet(entity, level, enabled, unit, part, spare, factory.headers("ADMIN"))


def set_unit(
    client: TestClient,
    fleet: Fleet,
    value: Any,
    ptype: ParameterType | None = None,
    imei: str | None = None,
) -> Any:
    body = {"parameter_type_id": (ptype or fleet.level).parameter_type_id, "value": value}
    return client.post(
        f"/v1/products/{imei or fleet.imei}/parameters", json=body, headers=fleet.admin
    )


def set_part(client: TestClient, fleet: Fleet, value: Any, part: Part | None = None) -> Any:
    body = {"parameter_type_id": fleet.level.parameter_type_id, "value": value}
    part_id = (part or fleet.part).part_id
    return client.post(f"/v1/parts/{part_id}/parameters", json=body, headers=fleet.admin)


def report(client: TestClient, fleet: Fleet, **body: Any) -> Any:
    r = client.post("/v1/rc_data", json=body, headers=fleet.device)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def history(
    client: TestClient, fleet: Fleet, headers: dict[str, str] | None = None, **params: Any
) -> Any:
    return client.get(
        f"/v1/products/{fleet.imei}/parameters/history",
        params=params,
        headers=headers or fleet.admin,
    )


def counts(sessions: sessionmaker[Session]) -> tuple[int, int, int]:
    """Rows in product_parameters, part_parameters and unit_report_notes."""
    with sessions() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(m)) or 0
            for m in (ProductParameter, PartParameter, UnitReportNote)
        )
