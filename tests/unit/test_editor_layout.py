"""Nodes saved without `coordinates` get positions the PySpur editor can draw."""

from __future__ import annotations

from core.editor_layout import place_unplaced
from workflows.definition import WorkflowDefinition


def _defn(nodes: list[dict[str, object]], links: list[tuple[str, str]]) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "nodes": [{"node_type": "PythonFuncNode", **n} for n in nodes],
            "links": [{"source_id": s, "target_id": t} for s, t in links],
        }
    )


def _xy(defn: WorkflowDefinition) -> dict[str, tuple[float, float]]:
    return {n.id: (n.coordinates.x, n.coordinates.y) for n in defn.nodes if n.coordinates}


def test_a_chain_is_laid_out_left_to_right_in_link_order() -> None:
    defn = _defn([{"id": "c"}, {"id": "a"}, {"id": "b"}], [("a", "b"), ("b", "c")])
    place_unplaced(defn)
    xy = _xy(defn)
    assert xy["a"][0] < xy["b"][0] < xy["c"][0]
    assert xy["a"][1] == xy["b"][1] == xy["c"][1]


def test_branches_share_a_column_on_separate_rows() -> None:
    defn = _defn(
        [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d"}], [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    )
    place_unplaced(defn)
    xy = _xy(defn)
    assert xy["b"][0] == xy["c"][0] and xy["b"][1] != xy["c"][1]
    assert xy["d"][0] > xy["b"][0]
    assert len(set(xy.values())) == 4


def test_positions_the_caller_gave_are_kept() -> None:
    defn = _defn([{"id": "a", "coordinates": {"x": 7, "y": 9}}, {"id": "b"}], [("a", "b")])
    place_unplaced(defn)
    assert _xy(defn)["a"] == (7, 9)
    assert "b" in _xy(defn)


def test_a_draft_with_a_cycle_still_gets_every_node_placed() -> None:
    defn = _defn([{"id": "a"}, {"id": "b"}, {"id": "c"}], [("a", "b"), ("b", "c"), ("c", "b")])
    place_unplaced(defn)
    assert set(_xy(defn)) == {"a", "b", "c"}


def test_children_of_a_container_are_placed_inside_it() -> None:
    defn = _defn(
        [{"id": "loop"}, {"id": "inner1", "parent_id": "loop"}, {"id": "inner2", "parent_id": "loop"}],
        [("inner1", "inner2")],
    )
    place_unplaced(defn)
    xy = _xy(defn)
    # Relative to the container: small offsets, not the top-level grid's.
    assert 0 < xy["inner1"][0] < xy["inner2"][0] < 1000
