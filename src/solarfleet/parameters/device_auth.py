"""Unit authentication: HTTP Basic ``imei:device_key``; a key opens its own unit only."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBasic
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from solarfleet.api.deps import in_endpoint_thread, open_session
from solarfleet.errors import Unauthorized
from solarfleet.fleet.models import DEVICE_KEY_LENGTH, Product

_DUMMY_KEY = "x" * DEVICE_KEY_LENGTH  # compared against when the IMEI is unknown
# Built once: every unit's every request looks its key up.
_DEVICE_KEY = select(Product.device_key).where(Product.product_imei == bindparam("imei"))


class DeviceUnauthorized(Unauthorized):
    headers = {"WWW-Authenticate": 'Basic realm="solarfleet units"'}


def parse_basic(header: str | None) -> tuple[str, str]:
    """(imei, device_key) from ``Authorization: Basic <base64(imei:key)>``."""
    if not header:
        raise DeviceUnauthorized("Missing Authorization header: send HTTP Basic imei:device_key")
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise DeviceUnauthorized("Units authenticate with HTTP Basic imei:device_key")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise DeviceUnauthorized("Malformed HTTP Basic credentials") from None
    imei, colon, key = decoded.partition(":")
    if not colon:
        raise DeviceUnauthorized("Malformed HTTP Basic credentials")
    return imei, key


def authenticate_unit(*, session: Session | Connection, header: str | None) -> str:
    """The IMEI of the unit whose device key is in the header; 401 otherwise."""
    imei, key = parse_basic(header)
    stored = None
    if imei.isascii() and imei.isdigit() and len(imei) <= 15:
        stored = session.scalar(_DEVICE_KEY, {"imei": imei})
    expected = stored if stored is not None else _DUMMY_KEY
    matches = hmac.compare_digest(key.encode(), expected.encode())
    if stored is None or not matches:
        raise DeviceUnauthorized("Invalid unit credentials")
    return imei


class _DeclaredBasic(HTTPBasic):
    """HTTP Basic as declared in the OpenAPI document (and /docs' Authorize button); the header
    is read by ``parse_basic``, which names each malformed form (FastAPI's own check would not)."""

    async def __call__(self, request: HTTPConnection) -> None:  # type: ignore[override]
        return None


UNIT_BASIC = _DeclaredBasic(
    scheme_name="UnitBasic",
    description="Units: HTTP Basic with the IMEI as user name and the unit's device_key",
)


@in_endpoint_thread
def get_unit_imei(request: Request, _declared: Annotated[None, Security(UNIT_BASIC)]) -> str:
    with request.app.state.engine.connect() as conn:  # a bare connection: no session to set up
        return authenticate_unit(session=conn, header=request.headers.get("authorization"))


UnitImei = Annotated[str, Depends(get_unit_imei)]


async def get_unit_write_session(request: Request, _unit: UnitImei) -> AsyncIterator[Session]:
    """A write session (SQLite write lock from BEGIN), opened once the unit is authenticated."""
    async with open_session(request, write=True) as session:
        yield session


UnitWriteSessionDep = Annotated[Session, Depends(get_unit_write_session)]
