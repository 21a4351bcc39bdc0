"""/v1/auth: login (form or JSON), logout, validate_user."""

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from solarfleet.api.deps import SessionDep, SettingsDep, WriteSessionDep
from solarfleet.api.responses import JSONBody, success
from solarfleet.api.schemas import Envelope, ErrorBody
from solarfleet.auth import service
from solarfleet.auth.proxies import client_address
from solarfleet.auth.tokens import revoke
from solarfleet.errors import BadRequest

router = APIRouter(prefix="/v1/auth", tags=["auth"])

_CREDENTIALS_SCHEMA = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {
        "username": {"type": "string", "maxLength": 255},
        "password": {"type": "string", "maxLength": 1024},
    },
}
_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _CREDENTIALS_SCHEMA},
            "application/x-www-form-urlencoded": {"schema": _CREDENTIALS_SCHEMA},
        },
    }
}


async def _credentials(request: Request) -> tuple[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body: Any
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        body = dict(await request.form())
    else:
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            raise BadRequest("Malformed JSON body") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be an object with username and password")
    values = []
    for name, longest in (("username", 255), ("password", 1024)):
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise BadRequest(f"{name} is required and must be a non-empty string")
        if len(value) > longest:
            raise BadRequest(f"{name} is longer than {longest} characters")
        values.append(value)
    return values[0], values[1]


@router.post(
    "/login",
    openapi_extra=_LOGIN_BODY,
    response_model=Envelope,
    responses={
        400: {"model": ErrorBody},
        401: {"model": ErrorBody},
        429: {"model": ErrorBody},
    },
    summary="Log in: a token valid for 3 hours after its last use",
)
async def login(request: Request, settings: SettingsDep) -> Response:
    username, password = await _credentials(request)
    address = client_address(
        request.client.host if request.client else None,
        request.headers.getlist("x-forwarded-for"),
        settings.trusted_proxies,
    )
    message = await service.login(
        sessions=request.app.state.sessions,
        gates=request.app.state.login_gates,
        username=username,
        password=password,
        address=address,
        settings=settings,
    )
    return JSONBody({"status": "success", "message": message})


@router.post(
    "/logout",
    response_model=Envelope,
    responses={401: {"model": ErrorBody}},
    summary="Revoke the token of this request",
)
def logout(request: Request, session: WriteSessionDep) -> Response:
    revoke(session=session, header=request.headers.get("authorization"))
    session.commit()
    return success("Logged out")


@router.get(
    "/validate_user",
    response_model=Envelope,
    responses={400: {"model": ErrorBody}},
    summary="Whether a username exists ('True' or 'False')",
)
def validate_user(session: SessionDep, username: Annotated[str, Query(max_length=255)]) -> Response:
    exists = service.username_exists(session=session, username=username)
    return success("True" if exists else "False")
