"""Template files: what is listed (pure: reads a folder, no server)."""

from __future__ import annotations

import json
from pathlib import Path

from core import templates
from tests.builders import double_graph, node


def write(folder: Path, name: str, body: object) -> None:
    (folder / name).write_text(json.dumps(body))


def test_the_bundled_templates_are_listed_with_their_metadata() -> None:
    listed = {t.file_name: t for t in templates.available()}
    assert listed["number_router.json"].name == "Number Router"
    assert "Router" in listed["number_router.json"].features


def test_a_template_for_a_kind_this_service_cannot_run_yet_is_not_listed(tmp_path: Path) -> None:
    llm = double_graph()
    llm["nodes"].append(node("retriever", "RetrieverNode", top_k=5))
    write(tmp_path, "llm.json", {"metadata": {"name": "Writer"}, "definition": llm})
    write(tmp_path, "double.json", {"metadata": {"name": "Double"}, "definition": double_graph()})
    assert [t.name for t in templates.available(tmp_path)] == ["Double"]


def test_malformed_template_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    write(tmp_path, "shapeless.json", {"definition": {"nodes": "no"}})
    write(tmp_path, "plain.json", {"definition": double_graph()})
    assert [(t.name, t.description, t.features) for t in templates.available(tmp_path)] == [("plain", "", [])]
