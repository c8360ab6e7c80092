"""README.md and docs/ cite only repository paths that exist (a newcomer must find what they name)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
# Made at run time by `make run` or the benchmarks, or PySpur's and the v1 API's own folder names.
RUNTIME = ("bench/.pyspur-venv", "output_files/", "inputs/", "outputs/", ".data/")
_PATH = re.compile(r"^[\w.\-]+(/[\w.\-*]+)*/?$")
_EXT = (".py", ".md", ".yml", ".yaml", ".json", ".toml", ".ini", ".example", ".mako")


def cited_paths(doc: Path) -> set[str]:
    text = doc.read_text()
    found: set[str] = set()
    for code in re.findall(r"`([^`\n]+)`", text):
        for token in code.split():
            token = token.strip("(),;:")
            if token.startswith(("/", "http", "-", "$")) or "{" in token or "<" in token:
                continue
            if _PATH.match(token) and ("/" in token or token.endswith(_EXT)):
                found.add(token)
    for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if not link.startswith("http"):
            found.add(link)
    return {p for p in found if not p.startswith(RUNTIME)}


def exists(doc: Path, path: str) -> bool:
    if "*" in path:
        return any(ROOT.glob(path))
    return (ROOT / path).exists() or (doc.parent / path).exists()


def test_readme_and_docs_cite_only_paths_that_exist() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    missing = [
        f"{d.relative_to(ROOT)}: {p}" for d in docs for p in sorted(cited_paths(d)) if not exists(d, p)
    ]
    assert missing == []


def test_readme_stays_short_enough_to_read_in_five_minutes() -> None:
    assert (ROOT / "README.md").stat().st_size <= 12 * 1024
