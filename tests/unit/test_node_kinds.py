"""The catalogue of node kinds: one handler per type, asked for roles instead of type names."""

from __future__ import annotations

from pathlib import Path

from workflows import nodes
from workflows.node_kinds.base import NodeKind


def test_each_node_type_has_one_handler_and_the_graph_one_entry_kind() -> None:
    types = [kind.node_type for kind in nodes.HANDLERS]
    assert len(types) == len(set(types))
    assert [k.node_type for k in nodes.HANDLERS if k.is_input] == ["InputNode"]


def test_kinds_that_run_outside_the_inline_pass_are_not_pure() -> None:
    for kind in nodes.HANDLERS:
        if kind.pauses or kind.runs_child or kind.has_body or kind.flushes_progress:
            assert kind.kind is not NodeKind.PURE, kind.node_type


def test_a_type_outside_the_catalogue_has_no_role() -> None:
    unknown = nodes.kind_of("LLMNode")
    assert not (unknown.is_input or unknown.is_output or unknown.pauses or unknown.runs_child)
    assert nodes.kind_of(None) is unknown


def test_the_scheduler_and_the_graph_name_no_node_type() -> None:
    workflows_dir = Path(nodes.__file__).parent
    for module in ("driver.py", "graph.py", "run_workflow.py", "batch_workflow.py"):
        source = (workflows_dir / module).read_text()
        named = [k.node_type for k in nodes.HANDLERS if f'"{k.node_type}"' in source]
        assert not named, f"{module} compares node types {named}; ask the catalogue for a role instead"
