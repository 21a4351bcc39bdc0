"""A fleet for the rollout tests: a parameter type, units of an entity, callers, and helpers
to create and advance rollouts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.db import utcnow
from solarfleet.fleet.models import Entity, ParameterType, Product, ProductType
from solarfleet.parameters.models import ProductParameter
from solarfleet.rollouts.advance import AdvanceReport, advance
from solarfleet.rollouts.simulate import Behaviour, VirtualUnit
from tests.factories import Factory

UNITS = 20


@dataclass
class Fleet:
    entity: Entity
    other: Entity
    limit: ParameterType  # int, 0..500
    product_type: ProductType
    units: list[Product]
    admin: dict[str, str]  # GLOBAL ADMIN

    @property
    def imeis(self) -> list[str]:
        return [u.product_imei for u in self.units]

    def body(self, **kw: Any) -> dict[str, Any]:
        """A valid rollout over every unit of the product type."""
        q = {"filters": [{"name": "product_type_id", "op": "==",
                          "val": self.product_type.product_type_id}]}  # fmt: skip
        return {"q": q, "parameter_type_id": self.limit.parameter_type_id, "value": 150, **kw}

    def virtual(self, behaviour: Behaviour | None = None) -> list[VirtualUnit]:
        b = behaviour or Behaviour(0, 0, 0)
        return [VirtualUnit(u.product_imei, u.device_key, b, i) for i, u in enumerate(self.units)]


@pytest.fixture
def rfleet(factory: Factory) -> Fleet:
    entity = factory.entity("Rollout Co")
    other = factory.entity("Elsewhere Ltd")
    limit = factory.parameter_type(
        "int", name="max_load_watts", validation_rules={"min": 0, "max": 500}
    )
    product_type = factory.product_type(parameter_types=[limit.parameter_type_id])
    units = [
        factory.product(f"35000000000{i:04d}", product_type=product_type, entity=entity)
        for i in range(UNITS)
    ]
    return Fleet(entity, other, limit, product_type, units, factory.headers("ADMIN"))


def create(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/v1/parameter_rollouts", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def show(client: TestClient, headers: dict[str, str], rollout_id: int) -> dict[str, Any]:
    r = client.get(f"/v1/parameter_rollouts/{rollout_id}", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert sum(body["counts"].values()) == body["targets"]
    return body  # type: ignore[no-any-return]


def tick(sessions: sessionmaker[Session], now: datetime | None = None) -> AdvanceReport:
    return advance(sessions, now or utcnow())


def later(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


def unit_rows(sessions: sessionmaker[Session], imei: str) -> list[tuple[str, str, str]]:
    """(value, status, created_by) of every row of the unit, oldest first."""
    with sessions() as session:
        rows = session.execute(
            select(ProductParameter.value, ProductParameter.status, ProductParameter.created_by)
            .where(ProductParameter.product_imei == imei)
            .order_by(ProductParameter.product_parameter_id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]
