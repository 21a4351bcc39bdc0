"""The fleet's resources (SPEC §4): entities, unit and part types, units, parts and their links,
as :class:`~solarfleet.api.spec.ResourceSpec` data. The app assembles every domain's resources
into one registry (``solarfleet/resources.py``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from solarfleet.api.registry import FACTORY_WRITES, READ, SYSTEM_WRITES, JSONObject
from solarfleet.api.spec import ResourceSpec
from solarfleet.auth.principal import Principal
from solarfleet.db import utcnow
from solarfleet.errors import BadRequest
from solarfleet.fleet.models import (
    DEVICE_KEY_LENGTH,
    Entity,
    ParameterType,
    Part,
    PartProductLinker,
    PartType,
    Product,
    ProductEntityLinker,
    ProductType,
)
from solarfleet.fleet.scope import by_part_last_seen, by_unit
from solarfleet.fleet.service import release_parts

ParameterTypeIds = Annotated[
    list[Annotated[int, Field(ge=1, lt=2**31)]],
    Field(description="parameter_type_id values allowed"),
]


def _check_parameter_types(session: Session, values: dict[str, Any], _p: Any, _row: Any) -> None:
    ids = values.get("parameter_types")
    if ids is None:
        return
    wanted = set(ids)
    found = set(
        session.scalars(
            select(ParameterType.parameter_type_id).where(
                ParameterType.parameter_type_id.in_(wanted)
            )
        )
    )
    missing = sorted(wanted - found)
    if missing:
        raise BadRequest(f"Invalid parameter_types: no parameter_type_id {missing[0]}")
    values["parameter_types"] = sorted(wanted)


def _link_to_creator(session: Session, product: Product, principal: Principal) -> None:
    """A unit made by an ENTITY user belongs to that user's entity, so the user still sees it."""
    if principal.is_global or principal.entity_id is None:
        return
    session.add(
        ProductEntityLinker(
            product_imei=product.product_imei,
            entity_id=principal.entity_id,
            date_added=utcnow(),
            created_by=principal.username,
        )
    )


ENTITIES = ResourceSpec(
    name="entities",
    model=Entity,
    methods=SYSTEM_WRITES,
    description="Organisations that own units (distributors, shops, hubs).",
    relations=("product_links",),
)

PRODUCT_TYPES = ResourceSpec(
    name="product_types",
    model=ProductType,
    methods=SYSTEM_WRITES,
    description="Kinds of unit and the parameter types each may carry.",
    relations=("products",),
    field_types={"parameter_types": ParameterTypeIds},
    before_write=_check_parameter_types,
)

PRODUCTS = ResourceSpec(
    name="products",
    model=Product,
    methods=FACTORY_WRITES,
    description="Units, keyed by IMEI. device_key is shown to FACTORY and above only.",
    scope=by_unit(),
    relations=("product_type", "entity_links", "part_links", "entities", "parts"),
    visible_from={"device_key": "FACTORY"},
    before_delete=release_parts,  # the parts' pending values expire as on a detach
    field_types={
        "device_key": Annotated[
            str, Field(min_length=DEVICE_KEY_LENGTH, max_length=DEVICE_KEY_LENGTH)
        ],
        "imsi": Annotated[str, Field(pattern=r"^[0-9]{1,15}$")],
        "iccid": Annotated[str, Field(pattern=r"^[0-9]{1,20}F?$")],
        "gps_lat": Annotated[float, Field(ge=-90, le=90)],
        "gps_lon": Annotated[float, Field(ge=-180, le=180)],
    },
    after_create=_link_to_creator,
)

PRODUCT_ENTITY_LINKER = ResourceSpec(
    name="product_entity_linker",
    model=ProductEntityLinker,
    methods=READ,
    description="Which entity each unit belonged to, when (see the entity actions).",
    scope=by_unit(),
    relations=("product", "entity"),
)

PART_TYPES = ResourceSpec(
    name="part_types",
    model=PartType,
    methods=SYSTEM_WRITES,
    description="Kinds of part (batteries, lamps, TVs) and their parameter types.",
    relations=("parts",),
    field_types={"parameter_types": ParameterTypeIds},
    before_write=_check_parameter_types,
)

PARTS = ResourceSpec(
    name="parts",
    model=Part,
    methods=FACTORY_WRITES,
    description="Parts; ENTITY users see those on their units, or last on one of them.",
    scope=by_part_last_seen(),
    relations=("part_type", "product_links", "product"),
    field_types={"properties": JSONObject},
)

PART_PRODUCT_LINKER = ResourceSpec(
    name="part_product_linker",
    model=PartProductLinker,
    methods=READ,
    description="Which unit each part was on, when (see the part actions).",
    scope=by_unit(),
    relations=("part", "product"),
)
