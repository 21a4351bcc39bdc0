"""Routes for every ResourceSpec: the generic list/get/create/update/delete endpoints.

(No ``from __future__ import annotations`` here: FastAPI reads the generated body models from
the endpoint signatures at route creation.)
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from solarfleet.api import crud
from solarfleet.api.deps import SessionDep, SessionRoute, SettingsDep, WriteSessionDep, requires
from solarfleet.api.query import QueryLimits, parse_q
from solarfleet.api.responses import JSONBody
from solarfleet.api.schemas import ErrorBody, body_models, output_model, page_model
from solarfleet.api.spec import Registry, ResourceSpec
from solarfleet.auth.principal import Principal
from solarfleet.db import META_FIELDS

Q_DOC = (
    'JSON search object (Flask-Restless format): {"filters": [...], "order_by": [...], '
    '"group_by": [...], "limit": n, "offset": n, "single": bool}'
)
AS_OF_DOC = (
    "An instant (ISO-8601, date or epoch ms): only the rows in force then, shown as they were"
)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 405, 409)
}


def _values(spec: ResourceSpec, body: BaseModel, *, update: bool = False) -> dict[str, Any]:
    """The client's values, meta data and system-set fields dropped (and the key on update)."""
    ignored = {*META_FIELDS, *spec.read_only}
    if update or not spec.natural_key:
        ignored.add(spec.primary_key.key)
    return {k: v for k, v in body.model_dump(exclude_unset=True).items() if k not in ignored}


def resource_router(registry: Registry, spec: ResourceSpec) -> APIRouter:
    router = APIRouter(
        prefix=f"/v1/{spec.name}", tags=[spec.name], responses=ERRORS, route_class=SessionRoute
    )
    if spec.own_routes:
        return router
    create_body, update_body = body_models(spec)
    has_history = spec.as_of is not None

    if "GET" in spec.methods:
        Reader = Annotated[Principal, Depends(requires(spec.methods["GET"]))]

        @router.get(
            "",
            # a page, or the bare object when q asks for "single": true (SPEC §3)
            response_model=page_model(spec) | output_model(spec),  # type: ignore[operator]
            responses={200: {"description": 'A page, or one object when q has "single": true'}},
            summary=f"List {spec.name}",
        )
        def list_rows(
            request: Request,
            principal: Reader,
            session: SessionDep,
            settings: SettingsDep,
            q: Annotated[str | None, Query(description=Q_DOC)] = None,
            page: Annotated[str | None, Query(description="Page number, from 1")] = None,
            results_per_page: Annotated[
                str | None, Query(description="Page size: default 10, at most 1000")
            ] = None,
            as_of: Annotated[
                str | None, Query(description=AS_OF_DOC, include_in_schema=has_history)
            ] = None,
        ) -> Response:
            limits = QueryLimits.from_settings(settings)
            with request.app.state.in_flight.slot(principal.user_id):
                result = crud.list_rows(
                    session=session,
                    registry=registry,
                    spec=spec,
                    principal=principal,
                    q=parse_q(q, limits),
                    page=crud.page_number(page),
                    per_page=crud.page_size(
                        results_per_page,
                        default=settings.default_page_size,
                        cap=settings.max_page_size,
                    ),
                    as_of=None if as_of is None else crud.parse_as_of(as_of),
                    limits=limits,
                )
            return JSONBody(result)

        @router.get("/{key}", response_model=output_model(spec), summary=f"Get one of {spec.name}")
        def get_row(principal: Reader, session: SessionDep, key: str) -> Response:
            row = crud.get_row(
                session=session,
                registry=registry,
                spec=spec,
                principal=principal,
                key=crud.parse_key(spec, key),
            )
            return JSONBody(row)

    if "POST" in spec.methods:
        Creator = Annotated[Principal, Depends(requires(spec.methods["POST"]))]

        @router.post(
            "",
            status_code=201,
            response_model=output_model(spec),
            summary=f"Create one of {spec.name}",
        )
        def create_row(
            principal: Creator,
            session: WriteSessionDep,
            body: create_body,  # type: ignore[valid-type]
        ) -> Response:
            row = crud.create_row(
                session=session,
                registry=registry,
                spec=spec,
                principal=principal,
                values=_values(spec, body),
            )
            return JSONBody(row, status_code=201)

    if "PUT" in spec.methods:
        Updater = Annotated[Principal, Depends(requires(spec.methods["PUT"]))]

        @router.put("/{key}", response_model=output_model(spec), summary=f"Update {spec.name}")
        def update_row(
            principal: Updater,
            session: WriteSessionDep,
            key: str,
            body: update_body,  # type: ignore[valid-type]
        ) -> Response:
            row = crud.update_row(
                session=session,
                registry=registry,
                spec=spec,
                principal=principal,
                key=crud.parse_key(spec, key),
                values=_values(spec, body, update=True),
            )
            return JSONBody(row)

    if "DELETE" in spec.methods:
        Deleter = Annotated[Principal, Depends(requires(spec.methods["DELETE"]))]

        @router.delete("/{key}", status_code=204, summary=f"Delete one of {spec.name}")
        def delete_row(principal: Deleter, session: WriteSessionDep, key: str) -> Response:
            crud.delete_row(
                session=session,
                registry=registry,
                spec=spec,
                principal=principal,
                key=crud.parse_key(spec, key),
            )
            return Response(status_code=204)

    return router
