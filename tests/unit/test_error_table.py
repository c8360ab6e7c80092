"""The one error table: v1 paths get `{detail, code, request_id}`, the workflow API keeps `{"detail"}`."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

import errors
from api import errors as error_table


def app() -> FastAPI:
    a = FastAPI()
    error_table.install(a)

    for prefix in ("/v1", "/wf"):

        @a.get(f"{prefix}/missing")
        async def missing() -> None:
            raise errors.NotFound("Nothing here")

        @a.get(f"{prefix}/boom")
        async def boom() -> None:
            raise RuntimeError("bug")

        @a.get(f"{prefix}/typed/{{n}}")
        async def typed(n: int) -> int:
            return n

    return a


async def get(path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path, headers=headers)


async def test_v1_domain_error_has_code_and_request_id() -> None:
    resp = await get("/v1/missing", **{"x-request-id": "abc"})
    assert resp.status_code == 404
    assert resp.json() == {"detail": "Nothing here", "code": "not_found", "request_id": "abc"}
    assert resp.headers["x-request-id"] == "abc"


async def test_workflow_api_keeps_pyspurs_body() -> None:
    resp = await get("/wf/missing")
    assert resp.status_code == 404 and resp.json() == {"detail": "Nothing here"}
    assert resp.headers["x-request-id"]


async def test_validation_errors_keep_fastapis_list_shape_on_both() -> None:
    for prefix in ("/v1", "/wf"):
        resp = await get(f"{prefix}/typed/x")
        assert resp.status_code == 422 and isinstance(resp.json()["detail"], list)


async def test_unknown_v1_path_and_unexpected_errors_use_the_envelope() -> None:
    unknown = await get("/v1/nowhere")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    boom = await get("/v1/boom")
    assert boom.status_code == 500
    assert (
        boom.json()["code"] == "internal_error" and boom.json()["request_id"] == boom.headers["x-request-id"]
    )
    plain = await get("/wf/boom")
    assert plain.status_code == 500 and plain.text == "Internal Server Error"


async def test_an_unavailable_dependency_answers_503_with_retry_after_on_both_surfaces() -> None:
    a = FastAPI()
    error_table.install(a)

    for prefix in ("/v1", "/wf"):

        @a.get(f"{prefix}/down")
        async def down() -> None:
            raise errors.Unavailable("Temporal is unavailable")

    transport = httpx.ASGITransport(app=a, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for prefix in ("/v1", "/wf"):
            resp = await client.get(f"{prefix}/down")
            assert resp.status_code == 503
            assert resp.headers["retry-after"] == str(error_table.RETRY_AFTER_SECONDS)


async def test_a_database_starting_up_answers_503_and_a_driver_bug_500() -> None:
    """asyncpg's "the database system is starting up" arrives as SQLAlchemy's generic DBAPIError
    (seen by the chaos soak right after PostgreSQL restarted): 503 with Retry-After, not 500."""
    from sqlalchemy.exc import DBAPIError

    class Orig(Exception):
        def __init__(self, sqlstate: str) -> None:
            super().__init__("driver error")
            self.sqlstate = sqlstate

    a = FastAPI()
    error_table.install(a)

    @a.get("/wf/starting")
    async def starting() -> None:
        raise DBAPIError("SELECT 1", {}, Orig("57P03"))

    @a.get("/wf/bug")
    async def bug() -> None:
        raise DBAPIError("SELECT 1", {}, Orig("42703"))

    transport = httpx.ASGITransport(app=a, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        starting_up = await client.get("/wf/starting")
        assert starting_up.status_code == 503 and starting_up.headers["retry-after"]
        assert (await client.get("/wf/bug")).status_code == 500


async def test_a_lazy_temporal_client_that_cannot_connect_answers_503_and_other_runtime_errors_500() -> None:
    """The SDK's lazy client raises a bare RuntimeError when its first connection fails (an API that
    started while Temporal was away, seen by the chaos soak): that is Temporal being unavailable."""
    a = FastAPI()
    error_table.install(a)

    @a.get("/wf/unreachable")
    async def unreachable() -> None:
        raise RuntimeError("Failed client connect: Server connection error: tcp connect error")

    @a.get("/wf/other")
    async def other() -> None:
        raise RuntimeError("some bug")

    transport = httpx.ASGITransport(app=a, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        down = await client.get("/wf/unreachable")
        assert down.status_code == 503 and down.headers["retry-after"]
        assert (await client.get("/wf/other")).status_code == 500


async def test_a_connection_to_temporal_broken_mid_call_answers_503_not_502() -> None:
    """Temporal killed while a call was in flight: UNKNOWN "transport error" (seen by the chaos soak)."""
    from temporalio.service import RPCError, RPCStatusCode

    a = FastAPI()
    error_table.install(a)

    @a.get("/wf/broken")
    async def broken() -> None:
        raise RPCError("transport error", RPCStatusCode.UNKNOWN, b"")

    @a.get("/wf/internal")
    async def internal() -> None:
        raise RPCError("something else", RPCStatusCode.INTERNAL, b"")

    transport = httpx.ASGITransport(app=a, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        broken_call = await client.get("/wf/broken")
        assert broken_call.status_code == 503 and broken_call.headers["retry-after"]
        assert (await client.get("/wf/internal")).status_code == 502
