"""Domain exceptions. Services raise these; one handler in ``app.py`` turns them into responses.

===================  ======  ==============================================================
exception            status  raised when
===================  ======  ==============================================================
BadRequest           400     malformed JSON, bad query, invalid value (message names it)
Unauthorized         401     missing, malformed, unknown or expired token; bad credentials
Forbidden            403     the caller's permission level is too low
NotFound             404     unknown resource or id, or a unit outside the caller's scope
MethodNotAllowed     405     a method the resource does not offer
Conflict             409     a unique constraint would be violated
TooManyRequests      429     login throttling
ServiceUnavailable   503     a backing service is down (with Retry-After)
===================  ======  ==============================================================
"""

from __future__ import annotations

from typing import Any

# An error message echoes the value at fault, never all of it: an 8 MB value made a 12 MB answer.
SHOW_LIMIT = 80  # characters of a value shown by show_value
MESSAGE_LIMIT = 2000  # characters of a message: the backstop for values not shown by show_value
_SHOW_DEPTH = 50  # containers deeper than this are shown as [...] / {...}


def show_value(value: Any, limit: int = SHOW_LIMIT) -> str:
    """``value`` as an error message shows it: its ``repr`` (what ``!r`` gives) when that is at
    most ``limit`` characters, else cut there with "…" (a long string says how long it was).

    The work is bounded by ``limit`` too, whatever the value: a string is cut before it is
    quoted, a container is written only until ``limit`` characters are out, nesting deeper than
    50 is not descended into, and an integer too long for ``repr`` is described instead.
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value)} characters)"
    out: list[str] = []
    try:
        _write(value, out, [limit + 1], 0)
    except ValueError:  # an integer beyond sys.get_int_max_str_digits()
        if isinstance(value, int):
            return f"<an integer of {value.bit_length()} bits>"
        return f"<a {type(value).__name__} holding a very long integer>"
    text = "".join(out)
    return text if len(text) <= limit else f"{text[:limit]}…"


def _write(value: Any, out: list[str], budget: list[int], depth: int) -> None:
    """Append ``repr(value)`` to ``out`` until ``budget[0]`` characters were written."""
    if budget[0] <= 0:
        return
    if isinstance(value, list | dict):
        opening, closing = ("[", "]") if isinstance(value, list) else ("{", "}")
        if depth >= _SHOW_DEPTH and value:
            piece = f"{opening}...{closing}"
            out.append(piece)
            budget[0] -= len(piece)
            return
        out.append(opening)
        budget[0] -= 1
        items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
        for i, (key, item) in enumerate(items):
            if budget[0] <= 0:
                return
            if i:
                out.append(", ")
                budget[0] -= 2
            if isinstance(value, dict):
                _write(key, out, budget, depth + 1)
                out.append(": ")
                budget[0] -= 2
            _write(item, out, budget, depth + 1)
        out.append(closing)
        budget[0] -= 1
        return
    piece = repr(value[: budget[0]]) if isinstance(value, str) else repr(value)
    out.append(piece)
    budget[0] -= len(piece)


def _bounded(message: str) -> str:
    if len(message) <= MESSAGE_LIMIT:
        return message
    return f"{message[:MESSAGE_LIMIT]}… (message cut at {MESSAGE_LIMIT} characters)"


class SolarfleetError(Exception):
    status_code = 500
    headers: dict[str, str] | None = None  # extra response headers (WWW-Authenticate)

    def __init__(self, message: str) -> None:
        message = _bounded(message)
        super().__init__(message)
        self.message = message


class BadRequest(SolarfleetError):
    status_code = 400


class Unauthorized(SolarfleetError):
    status_code = 401


class Forbidden(SolarfleetError):
    status_code = 403


class NotFound(SolarfleetError):
    status_code = 404


class MethodNotAllowed(SolarfleetError):
    status_code = 405

    def __init__(self, method: str) -> None:
        super().__init__(f"{method} requests are not allowed at this endpoint")


class Conflict(SolarfleetError):
    status_code = 409


class TooManyRequests(SolarfleetError):
    status_code = 429


# Seconds a client is told to wait when a backing service (the database, InfluxDB) is down.
RETRY_AFTER_SECONDS = 5


class ServiceUnavailable(SolarfleetError):
    status_code = 503
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}  # shared, never mutated
