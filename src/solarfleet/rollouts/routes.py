"""``/v1/parameter_rollouts``: create, list and show rollouts, pause/resume/cancel them, and list
their units. Lists speak the query language like every other resource.

(No ``from __future__ import annotations``: FastAPI reads the body models from the signatures.)
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.responses import Response

from solarfleet.api import crud
from solarfleet.api.deps import SessionDep, SettingsDep, WriteSessionDep, requires
from solarfleet.api.query import parse_q
from solarfleet.api.registry import REGISTRY
from solarfleet.api.responses import JSONBody
from solarfleet.api.routes import Q_DOC
from solarfleet.api.schemas import ErrorBody
from solarfleet.api.spec import Registry, ResourceSpec
from solarfleet.auth.principal import Principal
from solarfleet.fleet.scope import by_unit
from solarfleet.parameters.resources import PART_PARAMETERS, PRODUCT_PARAMETERS
from solarfleet.rollouts import service
from solarfleet.rollouts.models import ParameterRolloutTarget
from solarfleet.rollouts.resources import PARAMETER_ROLLOUTS

SPEC = PARAMETER_ROLLOUTS
TARGETS = ResourceSpec(
    name="parameter_rollout_targets",
    model=ParameterRolloutTarget,
    methods={"GET": "OVERVIEW"},
    scope=by_unit(),
    relations=("product_parameter", "part_parameter"),
)
# The query language over a rollout's units: their columns, and the parameter rows they set.
TARGET_REGISTRY = Registry([TARGETS, PRODUCT_PARAMETERS, PART_PARAMETERS])
DAYS_30 = 30 * 86400

router = APIRouter(
    prefix="/v1/parameter_rollouts",
    tags=["parameter_rollouts"],
    responses={c: {"model": ErrorBody} for c in (400, 401, 403, 404, 405, 409)},
)
Admin = Annotated[Principal, Depends(requires("ADMIN"))]
Reader = Annotated[Principal, Depends(requires("OVERVIEW"))]
PageQuery = Annotated[str | None, Query(description="Page number, from 1")]
SizeQuery = Annotated[str | None, Query(description="Page size: default 10, at most 1000")]


class Phase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch: Annotated[
        StrictInt | StrictStr,
        Field(description='Units in this phase: a count (50) or a share of the targets ("10%")'),
    ]


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: Annotated[
        dict[str, Any],
        Field(description="The target: a query over products (filters, order_by, limit, offset)"),
    ]
    parameter_type_id: int = Field(ge=1, lt=2**31)
    value: Annotated[Any, Field(description="A value of the parameter type's data_type")]
    part_type_id: int | None = Field(
        default=None, ge=1, lt=2**31, description="Set it on each unit's part of this type"
    )
    phases: list[Phase] | None = Field(
        default=None, min_length=1, max_length=1000, description="Absent: one phase of all"
    )
    rate_per_minute: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Instead of phases: units per minute"
    )
    wait_seconds: int | None = Field(
        default=None, ge=0, le=DAYS_30, description="From one phase's start to the next's (0)"
    )
    confirm_timeout_seconds: int = Field(default=86400, ge=0, le=DAYS_30)
    abort_failure_percent: float = Field(default=10.0, ge=0, le=100)
    abort_min_units: int = Field(default=10, ge=0, lt=2**31)


class Counts(BaseModel):
    queued: int
    pending: int
    confirmed: int
    failed: int
    superseded: int
    out_of_scope: int


class PhaseCounts(BaseModel):
    phase: int
    units: int
    counts: Counts


class Event(BaseModel):
    event: str
    reason: str | None
    created_at: str
    created_by: str


class RolloutSummary(BaseModel):
    """A rollout as lists show it (its counts are also fields the query language filters on)."""

    parameter_rollout_id: int
    scope: str
    entity_id: int | None
    q: Any
    parameter_type_id: int
    part_type_id: int | None
    value: str
    phases: Any
    phase_sizes: list[int] | None
    rate_per_minute: int | None
    wait_seconds: int
    confirm_timeout_seconds: int
    abort_failure_percent: float
    abort_min_units: int
    state: str
    reason: str | None
    targets: int
    phases_total: int
    phase: int
    phase_started_at: str | None
    next_phase_at: str | None
    finished_at: str | None
    counts: Counts
    created_at: str
    created_by: str | None
    modified_at: str | None
    modified_by: str | None


class Rollout(RolloutSummary):
    """A rollout with its per-phase counts and its events."""

    phase_counts: list[PhaseCounts]
    events: list[Event]


class RolloutPage(BaseModel):
    num_results: int
    objects: list[RolloutSummary]
    page: int
    total_pages: int


def _show(session: Any, rollout: Any, principal: Principal, status: int = 200) -> Response:
    row = {k: getattr(rollout, k) for k in SPEC.fields_for(principal)}
    return JSONBody({**service.shaped(row), **service.detail(session, rollout)}, status)


@router.post(
    "",
    status_code=201,
    response_model=Rollout,
    summary="Create a rollout (ADMIN); it starts on its own",
)
def create(
    body: CreateBody, principal: Admin, session: WriteSessionDep, settings: SettingsDep
) -> Response:
    rollout = service.create_rollout(
        session=session,
        registry=REGISTRY,
        principal=principal,
        q=body.q,
        parameter_type_id=body.parameter_type_id,
        value=body.value,
        part_type_id=body.part_type_id,
        phases=None if body.phases is None else [p.model_dump() for p in body.phases],
        rate_per_minute=body.rate_per_minute,
        wait_seconds=body.wait_seconds,
        confirm_timeout_seconds=body.confirm_timeout_seconds,
        abort_failure_percent=body.abort_failure_percent,
        abort_min_units=body.abort_min_units,
        max_targets=settings.rollout_max_targets,
    )
    session.commit()
    return _show(session, rollout, principal, 201)


@router.get(
    "",
    response_model=RolloutPage | RolloutSummary,
    summary="List parameter_rollouts (counts are fields: filter on failed, …)",
)
def list_rollouts(
    principal: Reader,
    session: SessionDep,
    settings: SettingsDep,
    q: Annotated[str | None, Query(description=Q_DOC)] = None,
    page: PageQuery = None,
    results_per_page: SizeQuery = None,
) -> Response:
    result = crud.list_rows(
        session=session,
        registry=REGISTRY,
        spec=SPEC,
        principal=principal,
        q=parse_q(q),
        page=crud.page_number(page),
        per_page=crud.page_size(
            results_per_page, default=settings.default_page_size, cap=settings.max_page_size
        ),
    )
    if "objects" in result and "num_results" in result:
        result["objects"] = [service.shaped(o) for o in result["objects"]]
        return JSONBody(result)
    return JSONBody(service.shaped(result))


@router.get(
    "/{key}", response_model=Rollout, summary="One rollout: state, counts, per-phase counts, events"
)
def get_rollout(key: str, principal: Reader, session: SessionDep) -> Response:
    rollout = service.load(
        session=session,
        registry=REGISTRY,
        principal=principal,
        rollout_id=crud.parse_key(SPEC, key),
    )
    return _show(session, rollout, principal)


def _control(action: str) -> Any:
    def endpoint(key: str, principal: Admin, session: WriteSessionDep) -> Response:
        rollout = service.control(
            session=session,
            registry=REGISTRY,
            principal=principal,
            rollout_id=crud.parse_key(SPEC, key),
            action=action,
        )
        session.commit()
        return _show(session, rollout, principal)

    endpoint.__name__ = f"{action}_rollout"
    return endpoint


for _action in ("pause", "resume", "cancel"):
    router.put(
        f"/{{key}}/{_action}",
        response_model=Rollout,
        summary=f"{_action.capitalize()} a rollout (ADMIN)",
    )(_control(_action))


@router.get("/{key}/units", summary="A rollout's units: phase, state, the parameter row set")
def list_units(
    key: str,
    principal: Reader,
    session: SessionDep,
    settings: SettingsDep,
    q: Annotated[str | None, Query(description=Q_DOC)] = None,
    page: PageQuery = None,
    results_per_page: SizeQuery = None,
) -> Response:
    rollout_id = crud.parse_key(SPEC, key)
    service.load(session=session, registry=REGISTRY, principal=principal, rollout_id=rollout_id)
    query = parse_q(q)
    mine = {"name": "parameter_rollout_id", "op": "==", "val": rollout_id}
    filters = query.get("filters", [])
    if isinstance(filters, list):  # anything else: the query language's own 400
        query = {**query, "filters": [*filters, mine]}
    result = crud.list_rows(
        session=session,
        registry=TARGET_REGISTRY,
        spec=TARGETS,
        principal=principal,
        q=query,
        page=crud.page_number(page),
        per_page=crud.page_size(
            results_per_page, default=settings.default_page_size, cap=settings.max_page_size
        ),
    )
    return JSONBody(result)
