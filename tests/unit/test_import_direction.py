"""Imports flow one way: api -> core -> db/workflows; the two REST surfaces never import each other,
nothing below api/ imports it, and SQL runs only in db/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def _offenders(package: str, forbidden: str) -> list[str]:
    return sorted(
        f"{p.relative_to(ROOT)} imports {m}"
        for p in (ROOT / package).rglob("*.py")
        for m in _imports(p)
        if m == forbidden or m.startswith(forbidden + ".")
    )


def test_nothing_below_the_api_imports_it() -> None:
    offenders = [o for pkg in ("core", "db", "workflows", "activities") for o in _offenders(pkg, "api")]
    offenders += [f"worker.py imports {m}" for m in _imports(ROOT / "worker.py") if m.split(".")[0] == "api"]
    assert offenders == []


def test_the_two_surfaces_do_not_import_each_other() -> None:
    assert _offenders("api/pyspur", "api.v1") == []
    assert _offenders("api/v1", "api.pyspur") == []


def test_the_check_sees_an_import_of_the_api(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from api.v1 import schemas\nimport api.app\n")
    assert {"api.v1", "api.v1.schemas", "api.app"} <= _imports(probe)


# Outside db/ a module may hold a session (to pass it on and end its transaction) and catch the
# database's errors, but builds no query and runs none.
_SESSION_TYPES = ("sqlalchemy.ext.asyncio", "sqlalchemy.exc")
_QUERY_CALLS = {"execute", "scalar", "scalars", "get", "delete"}
_SQL_SCOPE = (
    "api",
    "core",
    "workflows",
    "activities",
    "worker.py",
    "admin.py",
    "devstack.py",
    "temporal_client.py",
)


def _sql_outside_db(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        else:
            modules = []
        found += [
            f"imports {m}"
            for m in modules
            if m.split(".")[0] == "sqlalchemy" and not m.startswith(_SESSION_TYPES)
        ]
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _QUERY_CALLS
            and isinstance(node.func.value, ast.Name)
            and "session" in node.func.value.id
        ):
            found.append(f"calls {node.func.value.id}.{node.func.attr} on line {node.lineno}")
    return found


def test_sql_runs_only_in_db() -> None:
    paths = [
        p
        for name in _SQL_SCOPE
        for p in ((ROOT / name).rglob("*.py") if (ROOT / name).is_dir() else [ROOT / name])
    ]
    assert len(paths) > 50
    offenders = [f"{p.relative_to(ROOT)} {what}" for p in paths for what in _sql_outside_db(p)]
    assert offenders == []


def test_the_sql_check_sees_a_query(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from sqlalchemy import select\nfrom sqlalchemy.exc import IntegrityError\n"
        "async def f(session):\n    return await session.scalar(select(1))\n"
    )
    assert _sql_outside_db(probe) == ["imports sqlalchemy", "calls session.scalar on line 4"]
