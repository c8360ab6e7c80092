"""Imports flow one way: api -> core -> db/workflows; the two REST surfaces never import each other,
and nothing below api/ imports it."""

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
