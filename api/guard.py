"""The request edge: a body limit on every route (413 before anything is parsed), and one check of every
JSON body, path and query for what cannot be stored (`core.storable`: U+0000, lone surrogates, NaN and
Infinity, nesting deeper than `storable.MAX_DEPTH`), answered 422 in FastAPI's validation shape.

Routes then parse a body known to be small, finite and shallow. Multipart form fields are checked by
their routes (`check_form`), since only they parse the form.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any
from urllib.parse import unquote

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from core import storable
from settings import Settings

_OFF_LOOP_BYTES = 64 * 1024
_OFF_PROCESS_BYTES = 256 * 1024
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class _TooLarge(Exception):
    pass


def json_problem(body: bytes) -> dict[str, Any] | None:
    """FastAPI's validation error item for a JSON body that cannot be stored, or None if it is fine
    (or is not JSON at all: FastAPI's own parser then answers 422)."""
    found = storable.json_text_problem(body)
    return None if found is None else _item(*found)


def _item(loc: storable.Loc, msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"type": kind, "loc": list(loc), "msg": f"{storable.where(loc)} {msg}"[:1000]}


def _content_type(scope: Scope) -> str:
    raw: bytes = dict(scope.get("headers") or []).get(b"content-type", b"")
    return raw.decode("latin-1").lower()


def _is_json(scope: Scope) -> bool:
    media = _content_type(scope).split(";")[0].strip()
    # FastAPI parses a body without a content type as JSON too.
    return media in ("", "application/json") or media.endswith("+json")


def _is_multipart(scope: Scope) -> bool:
    return _content_type(scope).startswith("multipart/")


class RequestGuard:
    """ASGI middleware enforcing the body limit and the storable check (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if (where := _url_problem(scope)) is not None:
            await _validation(where)(scope, receive, send)
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = (
            self.settings.request_upload_max_bytes
            if _is_multipart(scope)
            else self.settings.request_body_max_bytes
        )
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(request, limit)(scope, receive, send)
            return
        try:
            body = await _read(receive, limit)
        except _TooLarge:
            await _too_large(request, limit)(scope, receive, send)
            return
        if body and _is_json(scope):
            found = await _checked(body)
            if found is not None:
                await JSONResponse({"detail": [found]}, status_code=422)(scope, receive, send)
                return
        await self.app(scope, _replay(body, receive), send)


async def _checked(body: bytes) -> dict[str, Any] | None:
    if len(body) <= _OFF_LOOP_BYTES:
        return json_problem(body)
    if len(body) <= _OFF_PROCESS_BYTES:
        # A thread still takes the GIL, but gives it back every switch interval (5 ms), so /health
        # and small requests are served meanwhile; a process pays ~1 ms of pickling per 100 KB.
        return await asyncio.to_thread(json_problem, body)
    # Checking a large body takes long enough (scanning and maybe parsing it all, holding the GIL) to
    # stall every other request of this process, /health included: another process does it.
    loop = asyncio.get_running_loop()
    try:
        found = await loop.run_in_executor(_checker(), storable.json_text_problem, body)
    except BrokenProcessPool:
        # A checker process died (killed, out of memory): a new pool serves the next request, and
        # this one is checked here rather than refused for the service's own fault.
        _checker.cache_clear()
        found = storable.json_text_problem(body)
    return None if found is None else _item(*found)


@functools.cache
def _checker() -> ProcessPoolExecutor:
    # Spawned, not forked: this process runs threads (the Temporal worker's among them). A checker
    # imports little beyond core.storable; the pool is made on the first large body.
    return ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))


def _url_problem(scope: Scope) -> dict[str, Any] | None:
    """A NUL or lone surrogate in the path or a query value (they would reach a query unescaped)."""
    path: str = scope.get("path", "")
    if (p := storable.string_problem(path)) is not None:
        return _item(("path",), p, "value_error")
    query = unquote(scope.get("query_string", b"").decode("latin-1"), errors="surrogateescape")
    if (p := storable.string_problem(query)) is not None:
        return _item(("query",), p, "value_error")
    return None


def _validation(item: dict[str, Any]) -> Response:
    return JSONResponse({"detail": [item]}, status_code=422)


def _too_large(request: Request, limit: int) -> Response:
    return error_response(request, 413, f"The request body exceeds the limit of {limit} bytes")


async def _read(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # a disconnect, for routes that watch for one

    return replay


def check_form(**fields: str | None) -> None:
    """The storable check for multipart form fields and file names, named as FastAPI names them.

    Raises:
        RequestValidationError: a field holds U+0000 or a lone surrogate.
    """
    for name, value in fields.items():
        if value is not None and (p := storable.string_problem(value)) is not None:
            raise RequestValidationError([_item(("body", name), p, "value_error")])
