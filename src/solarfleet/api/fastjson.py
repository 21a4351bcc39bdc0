"""Request bodies parsed with orjson instead of the standard library (uploads of thousands of
readings spend a millisecond or more in ``json.loads``).

orjson refuses some bodies the standard library reads (integers beyond 64 bits, ``NaN``): those
go to ``json.loads`` as before, so that the route can still name the reading at fault instead of
answering "malformed JSON".
"""

import json
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


class OrjsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = orjson.loads(body)
            except orjson.JSONDecodeError:
                self._json = json.loads(body)
        return self._json


class OrjsonRoute(APIRoute):
    """A route whose JSON body is parsed by orjson (``APIRouter(route_class=OrjsonRoute)``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(OrjsonRequest(request.scope, request.receive))

        return route
