"""The operator console at ``/console``: a single page and its ES modules, served as static
files, and the charting library (plotly.js) served from its installed Python package.

It imports nothing of the API: the page talks to the public API from the browser with the
user's token, so permissions, scope and validation stay where the API decides them.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def plotly_js() -> Path:
    """plotly.min.js as shipped in plotly's Python package (nothing fetched at run time)."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@lru_cache(maxsize=1)
def _plotly_gzip() -> tuple[bytes, str]:
    raw = plotly_js().read_bytes()
    return gzip.compress(raw, compresslevel=6), f'"{len(raw)}-{hash(raw) & 0xFFFFFFFF:x}"'


async def _index(_request: Request) -> Response:
    # Revalidated on every load, so a new release's page is picked up at once.
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _plotly(request: Request) -> Response:
    """plotly.min.js (4.8 MB; 1.4 MB gzipped, compressed once per process)."""
    body, etag = _plotly_gzip()
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(body, media_type="text/javascript", headers=headers)
    return FileResponse(plotly_js(), media_type="text/javascript", headers=headers)


def console_app() -> Starlette:
    """The ASGI app mounted at ``/console`` by ``create_app``."""
    return Starlette(
        routes=[
            Route("/", _index),
            Route("/vendor/plotly.min.js", _plotly),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
