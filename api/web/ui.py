"""PySpur 0.1.18's web UI, served unmodified at `/` from the static Next.js export in its wheel.

The `pyspur` distribution is installed without its dependencies (`make install`) and never imported: its
file list (importlib.metadata) says where `pyspur/static/` is. Requests that no API route matched come here
(the router's fallback). A page's path resolves as the export lays it out: `index.html` for `/`, then
`<path>.html`, `<path>/index.html`, the file itself, then a dynamic page such as `workflows/[id].html` for
`/workflows/<id>`; anything else is the export's `404.html` with status 404. Only files in the
distribution's list are ever served, so there is no path traversal and no directory listing.
"""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from api.deps import principal_or_none
from errors import Unauthorized

log = logging.getLogger(__name__)

PYSPUR_UI_VERSION = "0.1.18"
_STATIC = PurePosixPath("pyspur/static")
# Paths of the APIs: an unknown one is a 404 in its surface's error shape, never a page.
API_PREFIXES = ("/api/", "/wf/", "/run/", "/node/", "/ds/", "/of/", "/v1/", "/health", "/docs", "/openapi")
# Next.js puts a content hash in every file name under _next/static/, so they never change.
_IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class UiBuild:
    root: Path
    version: str
    files: frozenset[str]
    # Dynamic pages as (segments of the page's path, the HTML file), e.g. (("workflows", "[id]"), ...).
    dynamic: tuple[tuple[tuple[str, ...], str], ...] = field(default=())

    def resolve(self, path: str) -> tuple[str, int]:
        """The file that answers a request path, and the status to answer with."""
        rel = path.strip("/") or "index.html"
        for candidate in (rel, f"{rel}.html", f"{rel}/index.html"):
            if candidate in self.files:
                return candidate, 200
        segments = tuple(rel.split("/"))
        for pattern, page in self.dynamic:
            if len(pattern) == len(segments) and all(
                p == s or (p.startswith("[") and p.endswith("]"))
                for p, s in zip(pattern, segments, strict=True)
            ):
                return page, 200
        return "404.html", 404


def find_build() -> UiBuild | None:
    """The UI files of the installed `pyspur` distribution, or None when it is not installed."""
    try:
        dist = importlib.metadata.distribution("pyspur")
    except importlib.metadata.PackageNotFoundError:
        return None
    files = {
        PurePosixPath(str(f)).relative_to(_STATIC).as_posix()
        for f in dist.files or ()
        if PurePosixPath(str(f)).is_relative_to(_STATIC) and not PurePosixPath(str(f)).name.startswith(".")
    }
    if "index.html" not in files:
        return None
    root = Path(str(dist.locate_file(_STATIC))).resolve()
    if dist.version != PYSPUR_UI_VERSION:
        log.warning(
            "serving the web UI of pyspur %s; this service is tested with %s", dist.version, PYSPUR_UI_VERSION
        )
    dynamic = sorted(
        (tuple(f.removesuffix(".html").split("/")), f) for f in files if f.endswith(".html") and "[" in f
    )
    return UiBuild(root=root, version=dist.version, files=frozenset(files), dynamic=tuple(dynamic))


_MISSING = f"""<!doctype html><title>Web UI not installed</title>
<h1>The PySpur web UI is not installed</h1>
<p>The API is running. The web UI is the static build inside the <code>pyspur=={PYSPUR_UI_VERSION}</code>
wheel. Install it with <code>make install</code>, or into this environment with
<code>pip install --no-deps pyspur=={PYSPUR_UI_VERSION}</code>, then restart the server.</p>"""


class WebUi:
    """The ASGI fallback of the application's router: the UI's pages and assets, behind the login page."""

    def __init__(self, build: UiBuild | None) -> None:
        self.build = build
        self.static = StaticFiles(directory=build.root, check_dir=False) if build else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._respond(request)
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> Response:
        path = request.url.path
        if path.startswith(API_PREFIXES) or request.method not in ("GET", "HEAD"):
            raise HTTPException(404)  # answered by the app's error table, in the surface's shape
        if self.build is None or self.static is None:
            return HTMLResponse(_MISSING, status_code=503)
        rel, status = self.build.resolve(path)
        if rel.endswith(".html") and not await _signed_in(request):
            target = path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
        response = await self.static.get_response(rel, request.scope)
        if response.status_code == 200:
            response.status_code = status
        if rel.startswith("_next/static/"):
            response.headers["cache-control"] = _IMMUTABLE
        elif rel.endswith(".html"):
            response.headers["cache-control"] = "no-cache"
        else:
            response.headers["cache-control"] = "public, max-age=3600"
        return response


async def _signed_in(request: Request) -> bool:
    async with request.app.state.sessions() as session:
        try:
            return await principal_or_none(request, session) is not None
        except Unauthorized:  # a stale or revoked cookie: log in again
            return False
