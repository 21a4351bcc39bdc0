"""Actions on a unit: entity assignment and parts (SPEC §4, action endpoints)."""

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from solarfleet.api.crud import parse_key
from solarfleet.api.deps import SessionDep, WriteSessionDep, requires
from solarfleet.api.responses import success
from solarfleet.api.schemas import Envelope, ErrorBody
from solarfleet.auth.principal import Principal
from solarfleet.fleet import service
from solarfleet.fleet.resources import PARTS, PRODUCTS

router = APIRouter(
    prefix="/v1/products/{imei}",
    tags=["products"],
    responses={c: {"model": ErrorBody} for c in (400, 401, 403, 404, 409)},
)
Admin = Annotated[Principal, Depends(requires("ADMIN"))]
Technical = Annotated[Principal, Depends(requires("TECHNICAL"))]
Reader = Annotated[Principal, Depends(requires("OVERVIEW"))]


class EntityBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entity_id: int = Field(ge=1, lt=2**31)


class PartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    part_id: int = Field(ge=1, lt=2**31)


ENTITY_ACTIONS = {
    "assign_entity": (service.assign_entity, "assigned to"),
    "change_entity": (service.change_entity, "changed to"),
    "remove_entity": (service.remove_entity, "removed from"),
}


def _entity_route(action: str) -> None:
    act, verb = ENTITY_ACTIONS[action]

    @router.put(f"/{action}", response_model=Envelope, summary=f"{action} (entity history kept)")
    def endpoint(
        imei: str, body: EntityBody, principal: Admin, session: WriteSessionDep
    ) -> Response:
        key = parse_key(PRODUCTS, imei)
        data = act(session=session, principal=principal, imei=key, entity_id=body.entity_id)
        session.commit()
        return success(f"#{key} {verb} entity {body.entity_id}", data)

    endpoint.__name__ = action


for _action in ENTITY_ACTIONS:
    _entity_route(_action)


@router.get("/parts", response_model=Envelope, summary="The parts on a unit, with their types")
def list_parts(imei: str, principal: Reader, session: SessionDep) -> Response:
    key = parse_key(PRODUCTS, imei)
    parts = service.unit_parts(session=session, principal=principal, imei=key)
    return success(f"Parts of #{key} returned successfully", parts)


@router.post("/parts", response_model=Envelope, status_code=201, summary="Attach a part")
def attach_part(
    imei: str, body: PartBody, principal: Technical, session: WriteSessionDep
) -> Response:
    key = parse_key(PRODUCTS, imei)
    service.attach_part(session=session, principal=principal, imei=key, part_id=body.part_id)
    session.commit()
    parts = service.unit_parts(session=session, principal=principal, imei=key)
    return success(f"Part {body.part_id} attached to #{key}", parts, status_code=201)


@router.delete(
    "/parts/{part_id}",
    response_model=Envelope,
    summary="Detach a part",
    description="The part's pending values were asked of this unit: they expire at this instant "
    "(its active values stay).",
)
def detach_part(
    imei: str, part_id: str, principal: Technical, session: WriteSessionDep
) -> Response:
    key = parse_key(PRODUCTS, imei)
    pid = parse_key(PARTS, part_id)
    service.detach_part(session=session, principal=principal, imei=key, part_id=pid)
    session.commit()
    parts = service.unit_parts(session=session, principal=principal, imei=key)
    return success(f"Part {pid} detached from #{key}", parts)
