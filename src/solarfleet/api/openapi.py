"""The OpenAPI document as the app really answers: FastAPI documents a 422 for every validation
error, which we send as 400 (SPEC §1); the 503 of an unreachable database or hot store and the
413 of an oversized body can come from any route (or any route with a body)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from solarfleet.api import bodies

ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}
ADDED = {
    "400": {
        "description": "Invalid request: the message names the field or value",
        "content": ERROR,
    },
    "413": {"description": "Request body too large", "content": ERROR},
    "503": {
        "description": "A store (database, hot store) is unavailable; try again shortly",
        "content": ERROR,
        "headers": RETRY_AFTER,
    },
}
UNUSED = ("HTTPValidationError", "ValidationError")


def refine(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with 422 replaced by 400, and 413 and 503 where they can happen."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            had_422 = responses.pop("422", None) is not None
            if had_422 or "requestBody" in operation:
                responses.setdefault("400", ADDED["400"])
            if "requestBody" in operation:
                responses.setdefault("413", ADDED["413"])
            responses.setdefault("503", ADDED["503"])
            for status in ("429", "503"):
                if status in responses:
                    responses[status].setdefault("headers", RETRY_AFTER)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in UNUSED:
        schemas.pop(name, None)
    for name, schema in bodies.schemas().items():  # bodies the endpoints read themselves
        schemas.setdefault(name, schema)
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    return document


def install(app: FastAPI) -> None:
    """Serve the refined document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = refine(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
