"""Positions for nodes saved without `coordinates`.

PySpur's editor reads `node.coordinates.x` for every node it draws and shows a blank page with a
TypeError when one lacks them, so a workflow written through the API (where coordinates are optional,
as in PySpur's own schema) could be run but never opened. We place such nodes where a reader expects
them: columns by distance from the graph's sources, in link order, left to right.
"""

from __future__ import annotations

from collections import defaultdict, deque

from workflows.definition import NodeCoordinates, WorkflowDefinition, WorkflowNode

_LEFT, _TOP = 100.0, 100.0
_COLUMN, _ROW = 360.0, 220.0
# A child's position is relative to its container (React Flow's parentId); inside the frame's header.
_CHILD_LEFT, _CHILD_TOP, _CHILD_COLUMN = 40.0, 80.0, 320.0


def place_unplaced(defn: WorkflowDefinition) -> None:
    """Give every node without `coordinates` a position; nodes that have one keep it."""
    depth = _depths(defn)
    columns: dict[tuple[str | None, int], list[WorkflowNode]] = defaultdict(list)
    for n in defn.nodes:
        if n.subworkflow is not None:
            place_unplaced(n.subworkflow)
        if n.coordinates is None:
            columns[(n.parent_id, depth[n.id])].append(n)
    for (parent, column), nodes in columns.items():
        for row, n in enumerate(nodes):
            if parent is None:
                n.coordinates = NodeCoordinates(x=_LEFT + column * _COLUMN, y=_TOP + row * _ROW)
            else:
                n.coordinates = NodeCoordinates(
                    x=_CHILD_LEFT + column * _CHILD_COLUMN, y=_CHILD_TOP + row * _ROW
                )


def _depths(defn: WorkflowDefinition) -> dict[str, int]:
    """Longest distance from a node without predecessors (Kahn's order); nodes on a cycle, which a
    draft may hold, stay in the column after the last predecessor that was placed."""
    ids = {n.id for n in defn.nodes}
    succs: dict[str, list[str]] = defaultdict(list)
    waiting = dict.fromkeys(ids, 0)
    for link in defn.links:
        if link.source_id in ids and link.target_id in ids and link.source_id != link.target_id:
            succs[link.source_id].append(link.target_id)
            waiting[link.target_id] += 1
    depth = dict.fromkeys(ids, 0)
    ready = deque(n.id for n in defn.nodes if waiting[n.id] == 0)
    while ready:
        source = ready.popleft()
        for target in succs[source]:
            depth[target] = max(depth[target], depth[source] + 1)
            waiting[target] -= 1
            if waiting[target] == 0:
                ready.append(target)
    return depth
