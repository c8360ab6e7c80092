"""The one table from domain and Temporal errors to HTTP status codes.

The workflow API answers PySpur's `{"detail": ...}`; the v1 API (paths under `/v1/`) answers
`{detail, code, request_id}` with a machine-readable `code` from ksapi's closed set. Request-validation
errors keep FastAPI's `{"detail": [...]}` list shape on both, since that is what ksapi decodes.
Every response carries an `x-request-id` header (see `RequestId`).
"""

from __future__ import annotations

import logging
import reprlib
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.service import RPCError, RPCStatusCode

import errors
from db.failures import unavailable
from telemetry.logs import bind_ids
from temporal_client import connect_failure

log = logging.getLogger(__name__)

STATUS_BY_TYPE: dict[type[errors.DomainError], int] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.BadRequest: 400,
    errors.InvalidDefinition: 422,
    errors.InvalidInput: 422,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.PayloadTooLarge: 413,
    errors.Unavailable: 503,
}

# v1's `code` for each status (ksapi's `ErrorResponse.code` values).
CODE_BY_STATUS: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "bad_request",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
    429: "too_many_requests",
    500: "internal_error",
    501: "not_implemented",
    502: "service_unavailable",
    503: "service_unavailable",
}

_RPC_STATUS = {
    RPCStatusCode.NOT_FOUND: 404,
    RPCStatusCode.ALREADY_EXISTS: 409,
    RPCStatusCode.FAILED_PRECONDITION: 409,
    RPCStatusCode.UNAVAILABLE: 503,
    RPCStatusCode.DEADLINE_EXCEEDED: 503,
}


def request_id(request: Request) -> str:
    rid: str = request.scope.setdefault("state", {}).get("request_id") or uuid.uuid4().hex
    return rid


# A dependency (PostgreSQL, Temporal) that is away usually comes back within seconds (a restart); the
# caller is told when to try again rather than left to guess whether the 503 is final.
RETRY_AFTER_SECONDS = 2

# Error bodies quote the input they refuse; a few KB of it is enough to find the fault.
MAX_DETAIL_CHARS = 2000
_MAX_ERRORS = 20
_MAX_INPUT_CHARS = 200


def error_response(request: Request, status: int, detail: str) -> JSONResponse:
    """The error body of either surface (see the module docstring)."""
    return _body(request, status, detail)


def _body(request: Request, status: int, detail: str) -> JSONResponse:
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[:MAX_DETAIL_CHARS] + "... (truncated)"
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if request.url.path.startswith("/v1/"):
        content = {
            "detail": detail,
            "code": CODE_BY_STATUS.get(status, "error"),
            "request_id": request_id(request),
        }
        return JSONResponse(content, status_code=status, headers=headers)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.DomainError)
    status = next((code for typ, code in STATUS_BY_TYPE.items() if isinstance(exc, typ)), 400)
    return _body(request, status, exc.detail)


async def _rpc(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RPCError)
    status = _RPC_STATUS.get(exc.status, 502)
    if exc.status == RPCStatusCode.UNKNOWN and "transport error" in exc.message.lower():
        status = 503  # the connection to Temporal broke mid-call (the server died): it is away, not wrong
    if exc.status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.RESOURCE_EXHAUSTED) and (
        "size" in exc.message.lower() or "larger than" in exc.message.lower()
    ):
        status = 413  # Temporal's payload size limits: the caller's payload, not Temporal, is at fault
    log.warning("temporal rpc error %s: %s", exc.status, exc.message)
    return _body(request, status, f"Temporal: {exc.message}")


async def _database(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", exc)
    return _body(request, 503, "Database unavailable")


async def _driver_error(request: Request, exc: Exception) -> Response:
    # asyncpg's errors reach SQLAlchemy mostly as the generic class: the SQLSTATE says whether the
    # server was away (starting up after a crash, shutting down) or the request met a bug.
    if unavailable(exc):
        return await _database(request, exc)
    return await _unexpected(request, exc)


async def _bad_value(request: Request, exc: Exception) -> JSONResponse:
    # The database refused a value the request carried (NaN in JSON, an out-of-range number).
    log.info("value refused by the database: %s", exc)
    return _body(
        request, 422, "A value in the request cannot be stored (for example NaN or an out-of-range number)"
    )


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 shape, but never echoing more than a little of the input (a 50 MB body that fails
    validation must not come back as a 50 MB answer)."""
    assert isinstance(exc, RequestValidationError)
    errors_ = exc.errors()
    items = [_trimmed(e) for e in errors_[:_MAX_ERRORS]]
    if len(errors_) > _MAX_ERRORS:
        items.append(
            {"type": "too_many_errors", "loc": ["body"], "msg": f"{len(errors_) - _MAX_ERRORS} more"}
        )
    return JSONResponse({"detail": jsonable_encoder(items)}, status_code=422)


def _trimmed(error: Any) -> dict[str, Any]:
    item = {k: v for k, v in dict(error).items() if k not in ("input", "ctx", "url")}
    item["msg"] = str(item.get("msg", ""))[: _MAX_INPUT_CHARS * 5]
    item["loc"] = list(item.get("loc", ()))[:32]
    if "input" in error:
        given = error["input"]
        # reprlib bounds the work as well as the text: it never renders a large container whole.
        shown = given if isinstance(given, str | int | float | bool | None) else reprlib.repr(given)
        if isinstance(shown, str) and len(shown) > _MAX_INPUT_CHARS:
            shown = shown[:_MAX_INPUT_CHARS] + "... (truncated)"
        item["input"] = shown
    return item


async def _too_deep(request: Request, exc: Exception) -> JSONResponse:
    # A backstop: the request edge refuses deep bodies before any parser recurses into them.
    log.info("value nested too deeply on %s: %s", request.url.path, exc)
    return _body(request, 422, "A value in the request is nested too deeply")


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not request.url.path.startswith("/v1/"):
        return await http_exception_handler(request, exc)
    response = _body(request, exc.status_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    """A bug: v1 callers still get the envelope (with the request id to quote); others plain text."""
    if connect_failure(exc):  # not a bug: a lazy Temporal client's first connection failed
        log.warning("temporal unreachable: %s", exc)
        return _body(request, 503, "Temporal is unavailable")
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if request.url.path.startswith("/v1/"):
        response = _body(request, 500, "Internal error")
        response.headers["x-request-id"] = request_id(request)
        return response
    return PlainTextResponse("Internal Server Error", status_code=500)


class RequestId:
    """Gives every request an id (the caller's `x-request-id`, or a new one) and echoes it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming[:128] if incoming.isprintable() and incoming else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        bind_ids(request_id=rid)  # on every log line written for this request

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_id)


def _document_error_shapes(app: FastAPI) -> None:
    """The OpenAPI document's 422 body: FastAPI documents only its validation list, but a rule the
    request breaks (an invalid graph, inputs that do not fit) answers 422 with a `detail` string."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        props = (
            schema.get("components", {}).get("schemas", {}).get("HTTPValidationError", {}).get("properties")
        )
        if props is not None and "detail" in props:
            props["detail"] = {"anyOf": [props["detail"], {"type": "string"}], "title": "Detail"}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    _document_error_shapes(app)
    app.add_exception_handler(errors.DomainError, _domain)
    app.add_exception_handler(RPCError, _rpc)
    app.add_exception_handler(DataError, _bad_value)
    app.add_exception_handler(DBAPIError, _driver_error)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(RecursionError, _too_deep)
    app.add_exception_handler(Exception, _unexpected)
    for exc in (OperationalError, InterfaceError, ConnectionError):
        app.add_exception_handler(exc, _database)
    app.add_middleware(RequestId)
