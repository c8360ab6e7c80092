"""The login page in front of the web UI: it turns an API key into the `ks_uat` cookie the UI's calls carry.

PySpur's UI sends no `Authorization` header, but its same-origin calls carry cookies, and `ks_uat` is a
credential the API already accepts. The form takes an API key today; other methods would be other forms
that end in the same cookie. Wrong keys answer 401, and after `MAX_FAILURES` of them within `WINDOW_SECONDS`
from one client address every attempt answers 429 until the window has passed.
"""

from __future__ import annotations

import html
import ipaddress
import time
from collections import deque
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import refuse_cross_site
from db.accounts import principal_for_key

router = APIRouter(include_in_schema=False)

COOKIE = "ks_uat"
COOKIE_MAX_AGE = 7 * 24 * 3600
MAX_FAILURES = 5
WINDOW_SECONDS = 60.0
_MAX_TRACKED_CLIENTS = 10_000


class LoginThrottle:
    """Failed logins per client address in a sliding window (kept in the API process's memory)."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.get(client, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, client: str) -> int:
        """Seconds until this client may try again; 0 when it may now."""
        now = time.monotonic()
        times = self._recent(client, now)
        if len(times) < self.max_failures:
            return 0
        return max(1, int(times[0] + self.window - now + 1))

    def failed(self, client: str) -> None:
        now = time.monotonic()
        if client not in self._failures and len(self._failures) >= _MAX_TRACKED_CLIENTS:
            # Bounded memory: forget clients whose failures have all aged out, else the oldest entry.
            stale = [c for c, t in self._failures.items() if not self._recent(c, now)]
            for c in stale or [next(iter(self._failures))]:
                del self._failures[c]
        times = self._recent(client, now)
        times.append(now)
        self._failures[client] = times


def _throttle(request: Request) -> LoginThrottle:
    state = request.app.state
    if not hasattr(state, "login_throttle"):
        state.login_throttle = LoginThrottle()
    throttle: LoginThrottle = state.login_throttle
    return throttle


def _safe_next(target: str | None) -> str:
    """Only a path on this server: an absolute or scheme-relative URL would make the login an open redirect."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/dashboard"
    return target


def _secure(request: Request) -> bool:
    """Secure unless the browser is on loopback: a proxy in front may rewrite Host to a loopback address,
    so its X-Forwarded-Host and X-Forwarded-Proto count too."""
    forwarded = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
    if forwarded:
        forwarded = urlsplit(f"//{forwarded}").hostname or forwarded
    https = request.headers.get("x-forwarded-proto", "").split(",")[0].strip() == "https"
    return https or not _is_loopback(request.url.hostname) or bool(forwarded and not _is_loopback(forwarded))


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address((host or "").strip("[]")).is_loopback
    except ValueError:
        return False


def _page(next_path: str, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Sign in</title>
<style>
 body {{ font-family: system-ui, sans-serif; background: #f4f4f5; display: grid; place-items: center;
        min-height: 100vh; margin: 0; }}
 main {{ background: #fff; padding: 2rem; border-radius: 12px; box-shadow: 0 2px 12px #0002; width: 22rem; }}
 h1 {{ font-size: 1.3rem; margin-top: 0; }}
 label {{ display: block; margin-bottom: .4rem; }}
 input[type=password] {{ width: 100%; box-sizing: border-box; padding: .5rem; font-size: 1rem; }}
 button {{ margin-top: 1rem; padding: .5rem 1.2rem; font-size: 1rem; }}
 .error {{ color: #b91c1c; }}
</style></head>
<body><main>
<h1>Sign in to the workflow service</h1>
{message}
<section>
<form method="post" action="/login">
 <label for="api_key">API key</label>
 <input id="api_key" name="api_key" type="password" autocomplete="current-password" required autofocus>
 <input type="hidden" name="next" value="{html.escape(next_path)}">
 <button type="submit">Sign in</button>
</form>
</section>
</main></body></html>"""
    return HTMLResponse(body, status_code=status_code, headers={"cache-control": "no-store"})


@router.get("/login")
async def login_page(next: str | None = None) -> HTMLResponse:
    return _page(_safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=512)],
    next: Annotated[str, Form(max_length=2000)] = "/dashboard",
) -> Response:
    refuse_cross_site(request)  # no one else's page may sign a browser in with their key
    throttle = _throttle(request)
    client = request.client.host if request.client else "unknown"
    if wait := throttle.retry_after(client):
        refused = _page(
            _safe_next(next), f"Too many failed attempts; try again in {wait} s.", status_code=429
        )
        refused.headers["retry-after"] = str(wait)
        return refused
    async with request.app.state.sessions() as session:
        principal = await principal_for_key(session, api_key.strip())
    if principal is None:
        throttle.failed(client)
        return _page(_safe_next(next), "That API key is not valid.", status_code=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        api_key.strip(),
        max_age=COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    return response


@router.api_route("/logout", methods=["GET", "POST"])
async def logout(request: Request) -> RedirectResponse:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=_secure(request))
    return response
