"""The units' own endpoints (HTTP Basic imei:device_key): remote configuration and reports."""

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from solarfleet.api.deps import SessionDep, SessionRoute, SettingsDep
from solarfleet.api.responses import success
from solarfleet.api.schemas import Envelope, ErrorBody
from solarfleet.parameters import reports
from solarfleet.parameters.device_auth import UnitImei, UnitWriteSessionDep

router = APIRouter(
    prefix="/v1/rc_data",
    tags=["units"],
    responses={c: {"model": ErrorBody} for c in (400, 401)},
    route_class=SessionRoute,
)


class ReportedValue(BaseModel):
    model_config = ConfigDict(extra="ignore")  # firmware may send more; we read what we know
    parameter_type_id: int = Field(ge=0, lt=2**31)
    value: Annotated[Any, Field(description="The value the unit runs")]


class Report(BaseModel):
    model_config = ConfigDict(extra="ignore")
    enable_flag: bool | None = None
    product_parameters: list[ReportedValue] = []
    part_parameters: dict[str, list[ReportedValue]] = {}


def _pairs(values: list[ReportedValue]) -> list[tuple[int, Any]]:
    return [(v.parameter_type_id, v.value) for v in values]


@router.get("", response_model=Envelope, summary="What the unit should run: pending values")
def remote_config(imei: UnitImei, session: SessionDep) -> Response:
    data = reports.remote_config(session=session, imei=imei)
    return success(f"Remote configuration for #{imei} returned successfully", data)


@router.post("", response_model=Envelope, summary="The unit reports what it now runs")
def report(
    imei: UnitImei, body: Report, session: UnitWriteSessionDep, settings: SettingsDep
) -> Response:
    outcome = reports.apply_report(
        session=session,
        imei=imei,
        enable_flag=body.enable_flag,
        product_values=_pairs(body.product_parameters),
        part_values={k: _pairs(v) for k, v in body.part_parameters.items()},
        max_values=settings.max_report_values,
        max_notes=settings.max_notes_per_unit,
    )
    session.commit()
    return success(f"Report from #{imei} recorded", outcome.as_dict())
