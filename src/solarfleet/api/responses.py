"""Fast JSON responses (orjson) in the wire formats of SPEC §1."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from starlette.responses import Response

from solarfleet.timeparse import format_instant

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_instant(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, default=_default, option=_OPTIONS)


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def success(message: Any, data: Any = None, status_code: int = 200) -> JSONBody:
    """The action envelope: ``{"status": "success", "message", "data"}``."""
    return JSONBody({"status": "success", "message": message, "data": data}, status_code)


def error(message: str, status_code: int, headers: dict[str, str] | None = None) -> JSONBody:
    return JSONBody({"status": "error", "message": message}, status_code, headers=headers)
