"""The web UI's pure parts: how a path finds its page in the Next.js export, the same-host check of the
CSRF guard, and the login throttle."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.deps import _same_host
from api.web.login import LoginThrottle, _safe_next
from api.web.ui import UiBuild

FILES = frozenset(
    {
        "index.html",
        "404.html",
        "dashboard.html",
        "workflows/[id].html",
        "rag/collections/new.html",
        "rag/collections/[id].html",
        "sessions/[userId]/[sessionId].html",
        "_next/static/chunks/main-abc.js",
    }
)
BUILD = UiBuild(
    root=Path("/nowhere"),
    version="0.1.18",
    files=FILES,
    dynamic=tuple(
        sorted(
            (tuple(f.removesuffix(".html").split("/")), f) for f in FILES if "[" in f and f.endswith(".html")
        )
    ),
)


@pytest.mark.parametrize(
    ("path", "page", "status"),
    [
        ("/", "index.html", 200),
        ("/dashboard", "dashboard.html", 200),
        ("/dashboard/", "dashboard.html", 200),
        ("/workflows/0b6c", "workflows/[id].html", 200),
        ("/rag/collections/new", "rag/collections/new.html", 200),
        ("/rag/collections/42", "rag/collections/[id].html", 200),
        ("/sessions/u/s", "sessions/[userId]/[sessionId].html", 200),
        ("/_next/static/chunks/main-abc.js", "_next/static/chunks/main-abc.js", 200),
        ("/workflows/a/b", "404.html", 404),
        ("/../../etc/passwd", "404.html", 404),
        ("/_next/static/chunks", "404.html", 404),
    ],
)
def test_a_path_resolves_as_the_nextjs_export_lays_out_its_pages(path: str, page: str, status: int) -> None:
    assert BUILD.resolve(path) == (page, status)


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("https://runs.example.com", "runs.example.com", True),  # TLS ends at a proxy
        ("https://runs.example.com:443", "runs.example.com", True),
        ("http://[::1]:8000", "[::1]:8000", True),
        ("http://127.0.0.1:9000", "127.0.0.1:8000", False),
        ("http://evil.example", "runs.example.com", False),
        ("null", "runs.example.com", False),
    ],
)
def test_same_host_compares_host_and_port_without_the_scheme(origin: str, host: str, same: bool) -> None:
    assert _same_host(origin, host) is same


def test_throttle_blocks_after_the_limit_and_only_that_client() -> None:
    throttle = LoginThrottle(max_failures=3, window=60)
    for _ in range(3):
        assert throttle.retry_after("a") == 0
        throttle.failed("a")
    assert 1 <= throttle.retry_after("a") <= 61
    assert throttle.retry_after("b") == 0


def test_throttle_forgets_failures_older_than_the_window() -> None:
    throttle = LoginThrottle(max_failures=1, window=0.0)
    throttle.failed("a")
    assert throttle.retry_after("a") == 0


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil.example", "", None])
def test_login_redirects_only_to_paths_of_this_server(target: str | None) -> None:
    assert _safe_next(target) == "/dashboard"
    assert _safe_next("/workflows/1?x=2") == "/workflows/1?x=2"
