"""One ResourceSpec per table: what SPEC §4 says of each, as data."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from solarfleet.api.schemas import storable_json
from solarfleet.api.spec import ExtraField, Registry, ResourceSpec
from solarfleet.auth.models import User
from solarfleet.auth.passwords import hash_password
from solarfleet.auth.principal import Principal
from solarfleet.auth.scope import by_part_history, by_part_last_seen, by_unit
from solarfleet.auth.service import check_username
from solarfleet.auth.tokens import revoke_all
from solarfleet.auth.user_scope import check_grant, users_in_scope
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
from solarfleet.fleet.service import release_parts
from solarfleet.migration.models import ProductMigrationHistory
from solarfleet.parameters.history import as_of_view
from solarfleet.parameters.models import PartParameter, ProductParameter
from solarfleet.parameters.validation import check_parameter_type
from solarfleet.rollouts.models import ParameterRollout

READ = {"GET": "OVERVIEW"}
SYSTEM_WRITES = {**READ, "POST": "SYSTEM", "PUT": "SYSTEM", "DELETE": "SYSTEM"}
FACTORY_WRITES = {**READ, "POST": "FACTORY", "PUT": "ADMIN", "DELETE": "SYSTEM"}

ParameterTypeIds = Annotated[
    list[Annotated[int, Field(ge=1, lt=2**31)]],
    Field(description="parameter_type_id values allowed"),
]
JSONObject = Annotated[dict[str, Any], AfterValidator(storable_json)]


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


def _prepare_user(
    session: Session, values: dict[str, Any], principal: Principal, row: User | None
) -> None:
    """A user as the caller may make it (``auth/user_scope``), its password hashed; changing the
    password revokes the user's other tokens, deactivating it all of them."""
    if values.get("username") is not None:
        check_username(values["username"])
    if row is None and not principal.is_global:  # an ENTITY user's users are its entity's
        values.setdefault("user_product_visibility", "ENTITY")
        values.setdefault("entity_id", principal.entity_id)
    scope = values.get("user_product_visibility") or (
        row.user_product_visibility if row else "GLOBAL"
    )
    entity_id = values.get("entity_id", row.entity_id if row else None)
    if scope == "ENTITY" and entity_id is None:
        raise BadRequest("entity_id is required when user_product_visibility is ENTITY")
    permissions = values.get("permissions") or (row.permissions if row else None)
    check_grant(principal, permissions=permissions, scope=scope, entity_id=entity_id)
    password = values.pop("password", None)
    if password is not None:
        values["password_hash"] = hash_password(password)
    if row is not None and values.get("is_active") is False:
        revoke_all(session=session, user_id=row.user_id)
    elif row is not None and password is not None:
        # The token that changed its own user's password stays valid (README, "Users").
        keep = principal.token_id if principal.user_id == row.user_id else None
        revoke_all(session=session, user_id=row.user_id, keep=keep)


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


REGISTRY = Registry(
    [
        ResourceSpec(
            name="entities",
            model=Entity,
            methods=SYSTEM_WRITES,
            description="Organisations that own units (distributors, shops, hubs).",
            relations=("product_links",),
        ),
        ResourceSpec(
            name="product_types",
            model=ProductType,
            methods=SYSTEM_WRITES,
            description="Kinds of unit and the parameter types each may carry.",
            relations=("products",),
            field_types={"parameter_types": ParameterTypeIds},
            before_write=_check_parameter_types,
        ),
        ResourceSpec(
            name="products",
            model=Product,
            methods=FACTORY_WRITES,
            description="Units, keyed by IMEI. device_key is shown to FACTORY and above only.",
            scope=by_unit(),
            relations=("product_type", "entity_links", "part_links", "entities", "parts"),
            visible_from={"device_key": "FACTORY"},
            before_delete=release_parts,
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
        ),
        ResourceSpec(
            name="product_entity_linker",
            model=ProductEntityLinker,
            methods=READ,
            description="Which entity each unit belonged to, when (see the entity actions).",
            scope=by_unit(),
            relations=("product", "entity"),
        ),
        ResourceSpec(
            name="part_types",
            model=PartType,
            methods=SYSTEM_WRITES,
            description="Kinds of part (batteries, lamps, TVs) and their parameter types.",
            relations=("parts",),
            field_types={"parameter_types": ParameterTypeIds},
            before_write=_check_parameter_types,
        ),
        ResourceSpec(
            name="parts",
            model=Part,
            methods=FACTORY_WRITES,
            description="Parts; ENTITY users see those on their units, or last on one of them.",
            scope=by_part_last_seen(),
            relations=("part_type", "product_links", "product"),
            field_types={"properties": JSONObject},
        ),
        ResourceSpec(
            name="part_product_linker",
            model=PartProductLinker,
            methods=READ,
            description="Which unit each part was on, when (see the part actions).",
            scope=by_unit(),
            relations=("part", "product"),
        ),
        ResourceSpec(
            name="parameter_types",
            model=ParameterType,
            methods=SYSTEM_WRITES,
            description="Typed settings units and parts can carry, with validation rules: a JSON "
            "object with any of min, max (int, float: numbers; datetime: instants; inclusive), "
            "choices (non-empty list of allowed values; not for bool), pattern (a regex the whole "
            "value must match; string), max_length (characters; string). Unknown rules, rules "
            "that do not apply to the data_type, or min > max are refused (400).",
            field_types={"validation_rules": JSONObject},
            before_write=check_parameter_type,
        ),
        ResourceSpec(
            name="product_parameters",
            model=ProductParameter,
            methods=SYSTEM_WRITES,
            description="Every value set on a unit. Set values through the parameters action.",
            scope=by_unit(),
            relations=("product", "parameter_type"),
            as_of=as_of_view,
        ),
        ResourceSpec(
            name="part_parameters",
            model=PartParameter,
            methods=SYSTEM_WRITES,
            description="Every value set on a part. Set values through the parameters action. "
            "ENTITY users see the rows that lived while the part was on their units only.",
            scope=by_part_history(),
            relations=("part", "parameter_type"),
            as_of=as_of_view,
        ),
        ResourceSpec(
            name="product_migration_history",
            model=ProductMigrationHistory,
            methods=READ,
            description="How far each unit's telemetry is migrated (written by the migration).",
            scope=by_unit(),
            relations=("product",),
        ),
        ResourceSpec(
            name="users",
            model=User,
            methods={m: "SYSTEM" for m in ("GET", "POST", "PUT", "DELETE")},
            description="API users. The password is write-only. An ENTITY user sees and manages "
            "only the ENTITY users of its own entity and gives no more than it holds.",
            scope=users_in_scope,
            relations=("entity",),
            hidden=("password_hash",),
            extra_fields={
                "password": ExtraField(
                    Annotated[str, Field(min_length=8, max_length=256)],
                    required_on_create=True,
                    description="Write-only; stored as an argon2 hash.",
                )
            },
            before_write=_prepare_user,
        ),
        ResourceSpec(
            name="parameter_rollouts",
            model=ParameterRollout,
            methods={"GET": "OVERVIEW", "POST": "ADMIN"},  # and PUT …/pause|resume|cancel: ADMIN
            description="A value set across many units in phases (solarfleet.rollouts).",
            scope=lambda rollout, p: None if p.is_global else rollout.entity_id == p.entity_id,
            hidden=("baseline_failed", "baseline_tried"),
            own_routes=True,
        ),
    ]
)
