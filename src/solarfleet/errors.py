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


class SolarfleetError(Exception):
    status_code = 500
    headers: dict[str, str] | None = None  # extra response headers (WWW-Authenticate)

    def __init__(self, message: str) -> None:
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
