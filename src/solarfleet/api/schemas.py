"""Pydantic models generated from a ResourceSpec: request bodies (validated, documented) and
response shapes (documented only: responses are serialized straight from rows)."""

from __future__ import annotations

import math
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model
from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String

from solarfleet.api.spec import ResourceSpec
from solarfleet.db import META_FIELDS

IMEI = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{1,15}$", description="IMEI: 1 to 15 digits", examples=["111010101010101"]
    ),
]
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL characters
INT32 = Annotated[int, Field(ge=-(2**31), lt=2**31)]
TIMESTAMP_DOC = "UTC, ISO-8601 with microseconds, no zone"
JSON_MAX_DEPTH = 64  # the response encoder (orjson) refuses more than 254 levels


def storable_json(value: Any) -> Any:
    """``value`` if every database stores it and the response encoder writes it back: integers
    within 64 bits, finite numbers, text without NUL (PostgreSQL's jsonb refuses it) or lone
    surrogates, at most JSON_MAX_DEPTH levels. Anything else is a 400, not a row that 500s."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > JSON_MAX_DEPTH:
            raise ValueError(f"JSON nested deeper than {JSON_MAX_DEPTH} levels")
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, int):
            if not -(2**63) <= item < 2**63:
                raise ValueError("JSON integers must fit in 64 bits")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError("JSON numbers must be finite")
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return value


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise ValueError("JSON text cannot hold NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("JSON text must be valid Unicode (no lone surrogates)") from None


JSON_VALUE = Annotated[Any, AfterValidator(storable_json)]


def _column_type(spec: ResourceSpec, key: str) -> Any:
    if key in spec.field_types:
        return spec.field_types[key]
    column = spec.table_columns[key]
    if column.info.get("imei"):
        return IMEI
    if "choices" in column.info:
        return Literal[tuple(column.info["choices"])]
    col_type = column.type
    if isinstance(col_type, Boolean):
        return bool
    if isinstance(col_type, Integer):
        return INT32
    if isinstance(col_type, Float):
        return float
    if isinstance(col_type, DateTime):
        return Annotated[str, Field(description=TIMESTAMP_DOC)]
    if isinstance(col_type, JSON):
        return JSON_VALUE
    if isinstance(col_type, String):
        return Annotated[str, Field(max_length=col_type.length, pattern=NO_NUL)]
    raise TypeError(f"no body type for {spec.name}.{key}")  # pragma: no cover


def _required(spec: ResourceSpec, key: str) -> bool:
    column = spec.table_columns[key]
    return not column.nullable and column.default is None and column.server_default is None


def _ignored() -> tuple[Any, Any]:
    return (Any, Field(default=None, description="Set by the system; ignored if sent"))


@cache
def body_models(spec: ResourceSpec) -> tuple[type[BaseModel], type[BaseModel]]:
    """(create body, update body) for ``spec``: unknown fields are refused."""
    config = ConfigDict(extra="forbid", title=spec.name)
    create: dict[str, Any] = {}
    update: dict[str, Any] = {}
    for key in spec.writable_columns:
        annotation = _column_type(spec, key)
        column = spec.table_columns[key]
        if _required(spec, key):
            create[key] = (annotation, ...)
        else:
            create[key] = (annotation | None, None) if column.nullable else (annotation, None)
        update[key] = (annotation | None, None)
    for key, extra in spec.extra_fields.items():
        create[key] = (extra.annotation, ... if extra.required_on_create else None)
        update[key] = (extra.annotation | None, None)
    for key in (*META_FIELDS, *spec.read_only, spec.primary_key.key):
        if key not in create:
            create[key] = _ignored()
            update[key] = _ignored()
    if spec.natural_key:
        update[spec.primary_key.key] = _ignored()
    base = _title(spec.name)
    return (
        create_model(f"{base}Create", __config__=config, **create),
        create_model(f"{base}Update", __config__=config, **update),
    )


@cache
def output_model(spec: ResourceSpec) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for key in spec.output_fields:
        column = spec.table_columns[key]
        annotation = _column_type(spec, key) if key not in spec.field_types else Any
        if isinstance(column.type, DateTime):
            annotation = Annotated[str, Field(description=TIMESTAMP_DOC)]
        if isinstance(column.type, String) and not column.info.get("choices"):
            annotation = str
        optional = column.nullable or key in spec.visible_from
        fields[key] = (annotation | None, None) if optional else (annotation, ...)
    return create_model(_title(spec.name), **fields)


@cache
def page_model(spec: ResourceSpec) -> type[BaseModel]:
    item = output_model(spec)
    return create_model(
        f"{_title(spec.name)}Page",
        num_results=(int, ...),
        objects=(list[item], ...),  # type: ignore[valid-type]
        page=(int, ...),
        total_pages=(int, ...),
    )


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


class ErrorBody(BaseModel):
    status: Literal["error"]
    message: str


class Envelope(BaseModel):
    status: Literal["success"]
    message: Any
    data: Any = None
