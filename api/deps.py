"""FastAPI dependencies: settings, a database session, the Temporal client and the calling principal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from core import offload
from db.accounts import Principal, first_owner, principal_for_key
from errors import Forbidden, Unauthorized
from settings import Settings

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """One unit of work per request: what the route wrote is committed when it returns, before the
    response goes out (scope "function"); a route that raises leaves nothing behind. Services commit
    early only where another process must see the rows first (a Temporal start, a worker's write)."""
    async with request.app.state.sessions() as session:
        yield session
        await session.commit()


SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]


def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    """The session factory, for a read that runs independent statements on several connections at once."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]


def _client(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


def credential(request: Request) -> str | None:
    """The API key from `Authorization: Bearer`, the `ks_uat` cookie, or a bare cookie value (ksapi sends one)."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    if token := request.cookies.get("ks_uat"):
        return token
    for part in request.headers.get("cookie", "").split(";"):
        part = part.strip()
        if part and "=" not in part:
            return part
    return None


async def principal_or_none(request: Request, session: AsyncSession) -> Principal | None:
    """Who the request acts as: its API key's user, the oldest OWNER for an anonymous local caller
    (`ALLOW_ANONYMOUS_LOCAL` on a loopback HOST), else None. Raises 401 for a key that is not valid."""
    settings = _settings(request)
    token = credential(request)
    if token:
        principal = await principal_for_key(session, token)
        if principal is None:
            raise Unauthorized("Invalid API key")
        return principal
    if settings.allow_anonymous_local and settings.host in _LOOPBACK:
        return await first_owner(session)
    return None


async def _principal(request: Request, session: SessionDep) -> Principal:
    principal = await principal_or_none(request, session)
    if principal is None:
        raise Unauthorized("Missing credentials: send 'Authorization: Bearer <api key>' or the ks_uat cookie")
    refuse_cross_site(request)
    return principal


_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _same_host(origin: str, host: str) -> bool:
    """Origin's host[:port] against the Host header, default ports dropped on both sides. The scheme is
    left out: behind a TLS-terminating proxy the Origin says https while this server sees http."""
    parts = urlsplit(origin)
    if not parts.hostname:
        return False
    default = {"http": 80, "https": 443}.get(parts.scheme)
    name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    mine = name if parts.port in (None, default) else f"{name}:{parts.port}"
    theirs = host.lower().removesuffix(":80").removesuffix(":443")
    return mine == theirs


def _served_hosts(request: Request) -> list[str]:
    """The Host header, and the host a reverse proxy says it was asked for (a proxy often rewrites Host).
    A page on another site cannot set X-Forwarded-Host: a custom header makes the browser ask CORS first,
    which this service never grants."""
    hosts = [request.headers.get("host", "")]
    if forwarded := request.headers.get("x-forwarded-host"):
        hosts.append(forwarded.split(",")[0].strip())
    return hosts


def refuse_cross_site(request: Request) -> None:
    """CSRF guard. A browser attaches the ks_uat cookie (and reaches an anonymous local server) on requests
    that other sites make it send, so a state-changing request that does not carry its key in the
    `Authorization` header is refused when its `Origin` names another site. Clients that are not browsers
    send no Origin and pass."""
    if request.method in _SAFE_METHODS or request.headers.get("authorization", "").lower().startswith(
        "bearer "
    ):
        return
    origin = request.headers.get("origin")
    if origin is None:
        # Browsers too old to send Origin on every unsafe request still send Fetch Metadata.
        if request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none"):
            return
    elif any(_same_host(origin, h) for h in _served_hosts(request)):
        return
    raise Forbidden(f"Cross-origin request refused: Origin {origin or 'of another site'} is not this server")


SettingsDep = Annotated[Settings, Depends(_settings)]
ClientDep = Annotated[Client, Depends(_client)]
PrincipalDep = Annotated[Principal, Depends(_principal)]

# PySpur's pagination: page >= 1 (bounded so OFFSET stays a valid integer), page_size 1..100.
Page = Annotated[int, Query(ge=1, le=1_000_000)]
PageSize = Annotated[int, Query(ge=1, le=100)]


def eager_start(request: Request) -> bool:
    """Whether this API process hosts a worker, so the runs it starts can start eagerly."""
    return bool(getattr(request.app.state, "embedded_worker", None))


def large_body(request: Request) -> bool:
    """Whether the request's declared body is large enough that handling it belongs off the event loop."""
    declared = request.headers.get("content-length", "")
    return declared.isdigit() and int(declared) > offload.LARGE_BODY_BYTES
