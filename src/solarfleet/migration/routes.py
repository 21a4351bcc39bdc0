"""/v1/migration/backlog: how many units in the caller's scope carry readings the archive does
not hold yet (read-only; from the ingest's "dirty since" marks and product_migration_history)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from solarfleet.api.deps import SessionDep, requires
from solarfleet.api.responses import success
from solarfleet.api.schemas import Envelope, ErrorBody
from solarfleet.auth.principal import Principal
from solarfleet.fleet.scope import unit_criterion
from solarfleet.migration.models import ProductMigrationHistory
from solarfleet.telemetry.models import TelemetryDirty
from solarfleet.telemetry.points import to_us

router = APIRouter(tags=["migration"], responses={c: {"model": ErrorBody} for c in (401, 403)})
Reader = Annotated[Principal, Depends(requires("OVERVIEW"))]


def backlog(*, session: Session, principal: Principal) -> dict[str, int]:
    """Units with readings not yet archived, and among them those with *late* readings (at or
    before the unit's watermark, which the next pass must merge into what is archived)."""
    history = ProductMigrationHistory
    stmt = select(TelemetryDirty.dirty_since_us, history.latest_migration_timestamp).outerjoin(
        history, history.product_imei == TelemetryDirty.product_imei
    )
    criterion = unit_criterion(TelemetryDirty.product_imei, principal)
    if criterion is not None:
        stmt = stmt.where(criterion)
    unarchived = late = 0
    for since_us, watermark in session.execute(stmt.execution_options(yield_per=5000)):
        unarchived += 1
        late += watermark is not None and since_us <= to_us(watermark)
    return {"units_with_unarchived_readings": unarchived, "units_with_late_readings": late}


@router.get(
    "/v1/migration/backlog",
    response_model=Envelope,
    summary="How many units in scope carry readings not yet archived (late ones apart)",
)
def migration_backlog(principal: Reader, session: SessionDep) -> Response:
    data = backlog(session=session, principal=principal)
    return success("Migration backlog returned successfully", data)
