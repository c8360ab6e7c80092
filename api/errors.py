"""The one table from domain and Temporal errors to HTTP status codes, with PySpur's `{"detail": ...}` body."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from temporalio.service import RPCError, RPCStatusCode

import errors

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

_RPC_STATUS = {
    RPCStatusCode.NOT_FOUND: 404,
    RPCStatusCode.ALREADY_EXISTS: 409,
    RPCStatusCode.FAILED_PRECONDITION: 409,
    RPCStatusCode.UNAVAILABLE: 503,
    RPCStatusCode.DEADLINE_EXCEEDED: 503,
}


def _body(status: int, detail: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.DomainError)
    status = next((code for typ, code in STATUS_BY_TYPE.items() if isinstance(exc, typ)), 400)
    return _body(status, exc.detail)


async def _rpc(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RPCError)
    status = _RPC_STATUS.get(exc.status, 502)
    log.warning("temporal rpc error %s: %s", exc.status, exc.message)
    return _body(status, f"Temporal: {exc.message}")


async def _database(_: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", exc)
    return _body(503, "Database unavailable")


async def _bad_value(_: Request, exc: Exception) -> JSONResponse:
    # The database refused a value the request carried (NaN in JSON, an out-of-range number).
    log.info("value refused by the database: %s", exc)
    return _body(422, "A value in the request cannot be stored (for example NaN or an out-of-range number)")


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.DomainError, _domain)
    app.add_exception_handler(RPCError, _rpc)
    app.add_exception_handler(DataError, _bad_value)
    for exc in (OperationalError, InterfaceError, ConnectionError):
        app.add_exception_handler(exc, _database)
