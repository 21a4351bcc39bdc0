"""Operators' parameter endpoints: set values, full history, the set at an instant, diffs."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.responses import Response

from solarfleet.api.bodies import RawBodyDep, documented
from solarfleet.api.crud import parse_key
from solarfleet.api.deps import SessionDep, SessionRoute, WriteSessionDep, requires
from solarfleet.api.responses import success
from solarfleet.api.schemas import Envelope, ErrorBody
from solarfleet.auth.principal import Principal
from solarfleet.errors import BadRequest, show_value
from solarfleet.fleet.resources import PARTS, PRODUCTS
from solarfleet.parameters import history, notes, service
from solarfleet.timeparse import format_instant, parse_instant

router = APIRouter(
    tags=["parameters"],
    responses={c: {"model": ErrorBody} for c in (400, 401, 403, 404, 409)},
    route_class=SessionRoute,
)
Admin = Annotated[Principal, Depends(requires("ADMIN"))]
Reader = Annotated[Principal, Depends(requires("OVERVIEW"))]
DATE_DOC = "An instant: ISO-8601 with or without zone, a date, or epoch milliseconds"


class SetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parameter_type_id: int = Field(ge=1, lt=2**31)
    value: Annotated[
        Any, Field(description="A value of the type's data_type; stored in canonical text form")
    ]


class DateBody(BaseModel):
    date: Annotated[Any, Field(description=DATE_DOC)] = None


def instant(raw: Any, name: str) -> datetime:
    """``raw`` as an instant; 400 naming the parameter otherwise."""
    try:
        return parse_instant(raw)
    except (ValueError, OverflowError, OSError) as exc:
        raise BadRequest(f"Invalid {name} {show_value(raw)}: {exc}") from None


def _date(query: str | None, body: DateBody | None) -> datetime | None:
    from_body = body.date if body is not None else None
    if (
        query is not None
        and from_body is not None
        and instant(query, "date") != instant(from_body, "date")
    ):
        raise BadRequest("Two different dates: send the date in the body or in ?date=, not both")
    raw = query if query is not None else from_body
    return None if raw is None else instant(raw, "date")


@router.post(
    "/v1/products/{imei}/parameters",
    response_model=Envelope,
    status_code=201,
    summary="Set a parameter on a unit (pending until the unit confirms it)",
)
def set_product_parameter(
    imei: str, body: SetBody, principal: Admin, session: WriteSessionDep
) -> Response:
    key = parse_key(PRODUCTS, imei)
    row = service.set_product_parameter(
        session=session,
        principal=principal,
        imei=key,
        parameter_type_id=body.parameter_type_id,
        value=body.value,
    )
    return _pending(session, row, f"#{key}")


@router.post(
    "/v1/parts/{part_id}/parameters",
    response_model=Envelope,
    status_code=201,
    summary="Set a parameter on a part (pending until its unit confirms it)",
    description="The value is asked of the unit the part is on: a part on no unit answers 400, "
    "and taking the part off its unit expires its pending values.",
)
def set_part_parameter(
    part_id: str, body: SetBody, principal: Admin, session: WriteSessionDep
) -> Response:
    key = parse_key(PARTS, part_id)
    row = service.set_part_parameter(
        session=session,
        principal=principal,
        part_id=key,
        parameter_type_id=body.parameter_type_id,
        value=body.value,
    )
    return _pending(session, row, f"part {key}")


def _pending(session: Session, row: Any, owner: str) -> Response:
    """Commit a set value and answer it (201: a new pending row)."""
    session.commit()
    message = (
        f"Parameter {row.parameter_type_id} of {owner} set to {show_value(row.value)}: pending"
    )
    return success(message, service.as_dict(row), status_code=201)


@router.get(
    "/v1/products/{imei}/parameters/history",
    response_model=Envelope,
    summary="Full parameter history of a unit, or its parameter set at a date",
    # the original took the date in a JSON body, even on a GET: read after authentication
    openapi_extra=documented(DateBody, required=False),
)
def parameter_history(
    imei: str,
    principal: Reader,
    session: SessionDep,
    body: RawBodyDep,
    date: Annotated[str | None, Query(description=DATE_DOC)] = None,
) -> Response:
    key = parse_key(PRODUCTS, imei)
    at = _date(date, body.parse_optional(DateBody))
    data = history.parameter_history(session=session, principal=principal, imei=key, at=at)
    if at is None:
        return success(f"Full parameter history for #{key} returned successfully", data)
    message = f"Parameter set of #{key} at {format_instant(at)} returned successfully"
    return success(message, data)


@router.get(
    "/v1/products/{imei}/parameters/diff",
    response_model=Envelope,
    summary="What changed in a unit's parameter set between two instants",
)
def parameter_diff(
    imei: str,
    principal: Reader,
    session: SessionDep,
    start: Annotated[str, Query(alias="from", description=DATE_DOC)],
    end: Annotated[str, Query(alias="to", description=DATE_DOC)],
) -> Response:
    key = parse_key(PRODUCTS, imei)
    t1, t2 = instant(start, "from"), instant(end, "to")
    data = history.parameter_diff(session=session, principal=principal, imei=key, start=t1, end=t2)
    message = f"Parameter changes of #{key} from {format_instant(t1)} to {format_instant(t2)}"
    return success(message, data)


@router.get(
    "/v1/products/{imei}/parameters/notes",
    response_model=Envelope,
    summary="Values the unit reported that matched nothing pending (newest first)",
)
def report_notes(imei: str, principal: Reader, session: SessionDep) -> Response:
    key = parse_key(PRODUCTS, imei)
    data = notes.unit_notes(session=session, principal=principal, imei=key)
    return success(f"Report notes for #{key} returned successfully", data)
