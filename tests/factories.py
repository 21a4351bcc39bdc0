"""Test data, written straight through the ORM (fast, no HTTP)."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from solarfleet.auth.models import User
from solarfleet.auth.passwords import hash_password
from solarfleet.auth.tokens import issue_token
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
from solarfleet.parameters.models import PartParameter, ProductParameter
from solarfleet.settings import Settings

PASSWORD = "correct horse battery"


class Factory:
    """Makes rows; every method commits and returns the new row (detached, attributes loaded)."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        self._n = itertools.count(1)

    def _add(self, row: Any) -> Any:
        with self.sessions() as session:
            session.add(row)
            session.commit()
            session.refresh(row)
            return row

    def entity(self, name: str | None = None, entity_id: int | None = None) -> Entity:
        return self._add(Entity(entity_id=entity_id, name=name or f"entity-{next(self._n)}"))

    def parameter_type(self, data_type: str = "int", **kw: Any) -> ParameterType:
        kw.setdefault("name", f"ptype-{next(self._n)}")
        return self._add(ParameterType(data_type=data_type, **kw))

    def product_type(self, **kw: Any) -> ProductType:
        kw.setdefault("name", f"product-type-{next(self._n)}")
        kw.setdefault("parameter_types", [])
        return self._add(ProductType(**kw))

    def part_type(self, **kw: Any) -> PartType:
        kw.setdefault("name", f"part-type-{next(self._n)}")
        kw.setdefault("parameter_types", [])
        return self._add(PartType(**kw))

    def product(
        self,
        imei: str | None = None,
        *,
        product_type: ProductType | None = None,
        entity: Entity | None = None,
        **kw: Any,
    ) -> Product:
        n = next(self._n)
        product_type = product_type or self.product_type()
        kw.setdefault("serial_number", f"SN{n:06d}")
        unit = self._add(
            Product(
                product_imei=imei or f"{990000000000000 + n}",
                product_type_id=product_type.product_type_id,
                **kw,
            )
        )
        if entity is not None:
            self.link_entity(unit, entity)
        return unit

    def link_entity(
        self,
        unit: Product,
        entity: Entity,
        date_added: datetime | None = None,
        date_removed: datetime | None = None,
    ) -> ProductEntityLinker:
        return self._add(
            ProductEntityLinker(
                product_imei=unit.product_imei,
                entity_id=entity.entity_id,
                date_added=date_added or utcnow(),
                date_removed=date_removed,
            )
        )

    def part(
        self, *, part_type: PartType | None = None, on: Product | None = None, **kw: Any
    ) -> Part:
        n = next(self._n)
        part_type = part_type or self.part_type()
        kw.setdefault("serial_number", f"PT{n:08d}")
        part = self._add(Part(part_type_id=part_type.part_type_id, **kw))
        if on is not None:
            self._add(
                PartProductLinker(
                    part_id=part.part_id, product_imei=on.product_imei, date_added=utcnow()
                )
            )
        return part

    def product_parameter(self, unit: Product, ptype: ParameterType, **kw: Any) -> ProductParameter:
        kw.setdefault("value", "1")
        kw.setdefault("status", "active")
        return self._add(
            ProductParameter(
                product_imei=unit.product_imei, parameter_type_id=ptype.parameter_type_id, **kw
            )
        )

    def part_parameter(self, part: Part, ptype: ParameterType, **kw: Any) -> PartParameter:
        kw.setdefault("value", "1")
        kw.setdefault("status", "active")
        return self._add(
            PartParameter(part_id=part.part_id, parameter_type_id=ptype.parameter_type_id, **kw)
        )

    def user(
        self,
        permissions: str = "SYSTEM",
        scope: str = "GLOBAL",
        entity: Entity | None = None,
        username: str | None = None,
        **kw: Any,
    ) -> User:
        return self._add(
            User(
                username=username or f"user-{next(self._n)}@example.com",
                password_hash=hash_password(PASSWORD),
                permissions=permissions,
                user_product_visibility=scope,
                entity_id=entity.entity_id if entity else None,
                **kw,
            )
        )

    def token(self, user: User) -> str:
        with self.sessions() as session:
            token, _ = issue_token(session=session, user=user, settings=self.settings)
            session.commit()
        return token

    def headers(
        self, permissions: str = "SYSTEM", scope: str = "GLOBAL", entity: Entity | None = None
    ) -> dict[str, str]:
        """Authorization headers of a new user with these rights."""
        user = self.user(permissions, scope, entity)
        return {"Authorization": f"Token token={self.token(user)}"}
