"""A cap on request bodies (uploads included): larger ones are refused with 413 before they are
read whole, whether they announce their length or stream it in chunks."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from solarfleet.api.responses import error


class BodyTooLarge(HTTPException):
    """Raised while the body is read; the app's HTTP error handler answers it with 413."""

    def __init__(self, message: str) -> None:
        super().__init__(413, detail=message)


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._refuse(scope, receive, send, "Invalid Content-Length", 400)
                    return
                if declared > self.max_bytes:
                    await self._refuse(scope, receive, send, self._message(), 413)
                    return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self._message())
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send, self._message(), 413)

    def _message(self) -> str:
        return f"Request body larger than {self.max_bytes} bytes"

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, message: str, status: int
    ) -> None:
        await error(message, status)(scope, receive, send)
