"""Telemetry endpoints: uploads by operators and by units, and reads of a unit's readings."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response

from solarfleet.api.bodies import RawBodyDep, documented
from solarfleet.api.crud import parse_key
from solarfleet.api.deps import SessionDep, SessionRoute, SettingsDep, get_factory, requires
from solarfleet.api.responses import success
from solarfleet.api.schemas import Envelope, ErrorBody
from solarfleet.auth.principal import Principal
from solarfleet.db import utcnow, write_session
from solarfleet.fleet.resources import PRODUCTS
from solarfleet.fleet.service import check_unit
from solarfleet.parameters.device_auth import UnitImei
from solarfleet.settings import Settings
from solarfleet.telemetry import ingest, reads
from solarfleet.telemetry.points import from_us, to_us
from solarfleet.telemetry.store import ArchiveReaderDep, HotStoreDep
from solarfleet.timeparse import format_instant

router = APIRouter(
    tags=["telemetry"],
    responses={c: {"model": ErrorBody} for c in (400, 401, 403, 404, 503)},
    route_class=SessionRoute,  # the caller, the endpoint and its session in one thread
)
Admin = Annotated[Principal, Depends(requires("ADMIN"))]
Reader = Annotated[Principal, Depends(requires("OVERVIEW"))]
FactoryDep = Annotated[sessionmaker[Session], Depends(get_factory)]


class Upload(BaseModel):
    """Readings of one measurement and tag set (see solarfleet.telemetry.ingest for the rules)."""

    model_config = ConfigDict(
        extra="ignore",  # firmware may send more; we read what we know
        json_schema_extra={
            "example": {
                "measurement": "telemetry",
                "tags": {"source": "bms"},
                "fields": {
                    "battery_voltage": [[1479727096961, 12.7], ["2016-11-21T11:38:17", 12.6]],
                    "charging": [[1479727096961, True]],
                },
            }
        },
    )
    measurement: str = Field(default=ingest.DEFAULT_MEASUREMENT, description="Measurement name")
    tags: dict[str, str] = Field(default={}, description="Tags; the unit's imei is added")
    fields: dict[str, list[Any]] = Field(
        description="Field name -> [[time, value], …]; time as epoch ms, ISO-8601 or a date"
    )


def _window(settings: Settings) -> ingest.Window:
    """The instants an upload's points are stored at (the others are set aside)."""
    return ingest.Window.around(
        utcnow(),
        earliest=settings.telemetry_earliest,
        future_seconds=settings.telemetry_future_seconds,
    )


def _store(
    factory: sessionmaker[Session],
    hot: Any,
    imei: str,
    points: ingest.Upload,
    max_series: int,
    principal: Principal | None = None,
) -> Response:
    """Scope check (operators), dirty mark committed, hot write: one write transaction. The
    answer names the points set aside (outside the plausible window) but stays a 200: the unit
    drops its buffer instead of re-sending them forever."""
    with write_session(factory) as session:
        if principal is not None:
            check_unit(session=session, principal=principal, imei=imei)
        written = ingest.store_upload(
            session=session, hot=hot, imei=imei, points=points, max_series=max_series
        )
    data: dict[str, Any] = {"product_imei": imei, "points": written}
    if points:
        times = [p.time_us for p in points]
        data["oldest"] = format_instant(from_us(min(times)))
        data["newest"] = format_instant(from_us(max(times)))
    message = f"{written} points written for #{imei}"
    if points.set_aside:
        data.update(written=written, **points.tally())
        message += f"; {points.note()}"
    return success(message, data)


# Uploads are large JSON bodies: parsed (orjson) and validated (pydantic) in the endpoint's
# thread once the caller is known (solarfleet.api.bodies), not on the event loop.
UPLOAD_BODY = documented(Upload, required=True)


@router.post(
    "/v1/products/{imei}/data",
    response_model=Envelope,
    summary="Upload readings of a unit (as an operator)",
    openapi_extra=UPLOAD_BODY,
)
def upload_readings(
    imei: str,
    raw: RawBodyDep,
    principal: Admin,
    factory: FactoryDep,
    hot: HotStoreDep,
    settings: SettingsDep,
) -> Response:
    key = parse_key(PRODUCTS, imei)
    body = raw.parse(Upload)
    points = ingest.parse_upload(
        imei=key, measurement=body.measurement, tags=body.tags, fields=body.fields,
        window=_window(settings),
    )  # fmt: skip  # validated before any database work
    return _store(factory, hot, key, points, settings.telemetry_max_series_per_unit, principal)


@router.post(
    "/v1/rm_data",
    response_model=Envelope,
    summary="A unit uploads its readings",
    openapi_extra=UPLOAD_BODY,
)
def unit_upload(
    imei: UnitImei, raw: RawBodyDep, factory: FactoryDep, hot: HotStoreDep, settings: SettingsDep
) -> Response:
    body = raw.parse(Upload)
    points = ingest.parse_upload(
        imei=imei, measurement=body.measurement, tags=body.tags, fields=body.fields,
        window=_window(settings),
    )  # fmt: skip
    return _store(factory, hot, imei, points, settings.telemetry_max_series_per_unit)


INSTANT = "ISO-8601 with or without zone, a date, or epoch milliseconds"


@router.get(
    "/v1/products/{imei}/data",
    response_model=Envelope,
    summary="A unit's readings: both storage tiers, filtered and optionally downsampled",
)
def read_readings(
    imei: str,
    principal: Reader,
    session: SessionDep,
    settings: SettingsDep,
    hot: HotStoreDep,
    archive_reader: ArchiveReaderDep,
    start: Annotated[
        str | None, Query(description=f"From (inclusive; default end - 7 days): {INSTANT}")
    ] = None,
    end: Annotated[str | None, Query(description=f"To (inclusive; default now): {INSTANT}")] = None,
    fields: Annotated[str | None, Query(description="Comma-separated field names")] = None,
    measurement: Annotated[str | None, Query(description="Default: telemetry")] = None,
    limit: Annotated[str | None, Query(description="Values per field, 1 to 100000")] = None,
    tags: Annotated[str | None, Query(description='{"k": "v"} or k:v,k2:v2')] = None,
    where: Annotated[str | None, Query(description="e.g. voltage > 12.5 and mode = 'eco'")] = None,
    ds_interval: Annotated[str | None, Query(description="Bucket size: 5m, 1h, 1d, 1w…")] = None,
    ds_function: Annotated[
        str | None, Query(description="mean, sum, max, min, count, first or last")
    ] = None,
) -> Response:
    key = parse_key(PRODUCTS, imei)
    query = reads.parse_query(
        imei=key, now_us=to_us(utcnow()), start=start, end=end, fields=fields,
        measurement=measurement, limit=limit, tags=tags, where=where,
        ds_interval=ds_interval, ds_function=ds_function,
    )  # fmt: skip
    data, truncated = reads.read_data(
        session=session, principal=principal, hot=hot, archive_reader=archive_reader,
        imei=key, query=query, max_points=settings.telemetry_max_points,
    )  # fmt: skip
    cut = f" (cut at {query.limit} values per field)" if truncated else ""
    return success(f"Readings of #{key} returned successfully{cut}", data)
