"""The web UI over HTTP: PySpur's static build at `/`, the login page and its cookie, and the CSRF guard.
(The same journeys in a real browser are in tests/browser/.)"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from api.web import ui
from tests.builders import double_graph
from tests.conftest import Stack, Tenant

pytestmark = pytest.mark.e2e

needs_build = pytest.mark.skipif(
    ui.find_build() is None, reason="pyspur==0.1.18 not installed (make install)"
)

Client = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def client(stack: Stack) -> Client:
    """A fresh app per test (its own login throttle), reached as `base_url`."""

    @asynccontextmanager
    async def make(
        base_url: str = "http://127.0.0.1:8000", **settings: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        from api.app import create_app

        app = create_app(stack.settings(**settings))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=30) as c:
                yield c

    return make


@needs_build
async def test_client_routes_resolve_to_the_exported_pages(client: Client, tenant: Tenant) -> None:
    async with client() as c:
        c.cookies.set("ks_uat", tenant.key)
        build = ui.find_build()
        assert build is not None
        pages = {
            "/": "index.html",
            "/dashboard": "dashboard.html",
            "/workflows/3f1c0a1e-0000-4000-8000-000000000001": "workflows/[id].html",
            "/runs/abc": "runs/[id].html",
            "/trace/abc/": "trace/[id].html",
            "/sessions/u1/s1": "sessions/[userId]/[sessionId].html",
        }
        for path, page in pages.items():
            resp = await c.get(path)
            assert resp.status_code == 200, path
            assert resp.text == (build.root / page).read_text(), path
            assert resp.headers["cache-control"] == "no-cache"
        missing = await c.get("/no/such/page")
        assert missing.status_code == 404 and "404" in missing.text


@needs_build
async def test_hashed_assets_are_cached_for_a_year_and_compressed(client: Client) -> None:
    build = ui.find_build()
    assert build is not None
    async with client() as c:  # assets need no login: they are the public build
        index = (build.root / "dashboard.html").read_text()
        script = re.findall(r'src="(/_next/static/chunks/[^"]+\.js)"', index)[0]
        resp = await c.get(script, headers={"accept-encoding": "gzip"})
        assert resp.status_code == 200
        assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert resp.headers["content-encoding"] == "gzip"
        assert resp.headers["content-type"].startswith(("text/javascript", "application/javascript"))


@needs_build
async def test_no_path_traversal_and_no_directory_listing(client: Client, tenant: Tenant) -> None:
    async with client() as c:
        c.cookies.set("ks_uat", tenant.key)
        for path in (
            "/..%2f..%2f..%2fetc/passwd",
            "/_next/static/",
            "/_next",
            "/images/",
            "/%2e%2e/pyproject.toml",
        ):
            resp = await c.get(path)
            assert resp.status_code == 404, path
            assert "root:" not in resp.text and "[project]" not in resp.text
        raw = await c.get("/_next/static/../../../../../../etc/passwd")
        assert raw.status_code == 404


async def test_unknown_api_paths_stay_json_404s(client: Client, tenant: Tenant) -> None:
    async with client() as c:
        for path in ("/api/nothing/", "/wf/x/nothing/here/", "/v1/nothing"):
            resp = await c.get(path, headers=tenant.headers)
            assert resp.status_code == 404 and resp.json()["detail"], path
        assert (await c.post("/api/nothing/here/", headers=tenant.headers)).status_code == 404
        v1 = (await c.get("/v1/nothing", headers=tenant.headers)).json()
        assert v1["code"] == "not_found" and v1["request_id"]


async def test_without_the_build_the_root_says_how_to_install_it(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ui, "find_build", lambda: None)
    async with client() as c:
        resp = await c.get("/")
        assert resp.status_code == 503
        assert "make install" in resp.text and "pyspur==0.1.18" in resp.text
        assert (await c.get("/health")).status_code == 200


@needs_build
async def test_page_loads_without_credentials_go_to_the_login_page(client: Client) -> None:
    async with client() as c:
        resp = await c.get("/workflows/abc?tab=runs")
        assert resp.status_code == 303
        assert resp.headers["location"] == "/login?next=/workflows/abc%3Ftab%3Druns"
        login = await c.get(resp.headers["location"])
        assert login.status_code == 200 and 'name="api_key"' in login.text
        assert (await c.get("/api/wf/")).status_code == 401


async def test_login_sets_an_httponly_lax_cookie_that_authenticates_the_api(
    client: Client, tenant: Tenant
) -> None:
    async with client() as c:
        resp = await c.post("/login", data={"api_key": tenant.key, "next": "/workflows/abc"})
        assert resp.status_code == 303 and resp.headers["location"] == "/workflows/abc"
        cookie = resp.headers["set-cookie"]
        assert cookie.startswith(f"ks_uat={tenant.key};")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # served on loopback: plain http must keep working
        assert (await c.get("/api/wf/")).status_code == 200

        out = await c.post("/logout")
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert (await c.get("/api/wf/")).status_code == 401


async def test_cookie_is_secure_when_not_served_on_loopback(client: Client, tenant: Tenant) -> None:
    async with client(base_url="http://runs.example.com") as c:
        resp = await c.post(
            "/login", data={"api_key": tenant.key}, headers={"origin": "http://runs.example.com"}
        )
        assert resp.status_code == 303 and resp.headers["location"] == "/dashboard"
        assert "Secure" in resp.headers["set-cookie"]
    async with client() as c:  # a proxy on the same machine that rewrites Host to loopback
        proxied = {"x-forwarded-host": "runs.example.com", "x-forwarded-proto": "https"}
        resp = await c.post("/login", data={"api_key": tenant.key}, headers=proxied)
        assert resp.status_code == 303 and "Secure" in resp.headers["set-cookie"]


async def test_login_never_redirects_off_site(client: Client, tenant: Tenant) -> None:
    async with client() as c:
        for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
            resp = await c.post("/login", data={"api_key": tenant.key, "next": target})
            assert resp.headers["location"] == "/dashboard", target


async def test_wrong_key_is_401_and_repeated_failures_are_rate_limited(
    client: Client, tenant: Tenant
) -> None:
    async with client() as c:
        for _ in range(5):
            resp = await c.post("/login", data={"api_key": "wrong-" + uuid.uuid4().hex})
            assert resp.status_code == 401
            assert "not valid" in resp.text and "set-cookie" not in resp.headers
        blocked = await c.post("/login", data={"api_key": tenant.key})
        assert blocked.status_code == 429
        assert 1 <= int(blocked.headers["retry-after"]) <= 61
        assert "set-cookie" not in blocked.headers


async def test_cookie_requests_from_a_foreign_origin_are_refused(client: Client, tenant: Tenant) -> None:
    body: dict[str, Any] = {"name": f"csrf-{uuid.uuid4().hex[:6]}", "definition": double_graph()}
    async with client() as c:
        c.cookies.set("ks_uat", tenant.key)
        foreign = await c.post("/api/wf/", json=body, headers={"origin": "http://evil.example"})
        assert foreign.status_code == 403 and "Origin" in foreign.json()["detail"]
        assert (await c.post("/api/wf/", json=body, headers={"origin": "null"})).status_code == 403
        cross = await c.post("/api/wf/", json=body, headers={"sec-fetch-site": "cross-site"})
        assert cross.status_code == 403
        # Reading is not a state change; the same origin, a bearer key and non-browser clients pass.
        assert (await c.get("/api/wf/", headers={"origin": "http://evil.example"})).status_code == 200
        same = await c.post("/api/wf/", json=body, headers={"origin": "http://127.0.0.1:8000"})
        assert same.status_code == 200, same.text
        body["name"] += "-p"
        proxied = {"origin": "https://runs.example.com", "x-forwarded-host": "runs.example.com"}
        assert (await c.post("/api/wf/", json=body, headers=proxied)).status_code == 200
        body["name"] += "-2"
        bearer = await c.post(
            "/api/wf/", json=body, headers={"origin": "http://evil.example", **tenant.headers}
        )
        assert bearer.status_code == 200
        body["name"] += "-3"
        assert (await c.post("/api/wf/", json=body)).status_code == 200
        login = await c.post(
            "/login", data={"api_key": tenant.key}, headers={"origin": "http://evil.example"}
        )
        assert login.status_code == 403


@needs_build
async def test_anonymous_local_still_works_on_loopback_and_is_guarded_against_csrf(
    client: Client, tenant: Tenant
) -> None:
    async with client(allow_anonymous_local=True, host="127.0.0.1") as c:
        assert (await c.get("/dashboard")).status_code == 200
        assert (await c.get("/api/wf/")).status_code == 200
        body = {"name": f"anon-{uuid.uuid4().hex[:6]}", "definition": double_graph()}
        foreign = await c.post("/api/wf/", json=body, headers={"origin": "http://evil.example"})
        assert foreign.status_code == 403
        assert (
            await c.post("/api/wf/", json=body, headers={"origin": "http://127.0.0.1:8000"})
        ).status_code == 200


async def test_a_cookie_of_another_tenant_sees_none_of_this_tenants_workflows(
    client: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    async with client() as c:
        c.cookies.set("ks_uat", tenant.key)
        mine = await c.post(
            "/api/wf/", json={"name": f"mine-{uuid.uuid4().hex[:6]}", "definition": double_graph()}
        )
        wf = mine.json()["id"]
        c.cookies.set("ks_uat", other_tenant.key)
        assert wf not in [w["id"] for w in (await c.get("/api/wf/", params={"page_size": 100})).json()]
        assert (await c.get(f"/api/wf/{wf}/")).status_code == 404
        assert (await c.get(f"/api/wf/{wf}/runs/")).status_code == 404
