"""Pure graph logic: definition validation, the run plan, and the scheduling state of one run.

No Temporal import: the workflow asks `RunState` what is ready, executes it, and reports back;
unit tests drive the same object without a server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from errors import InvalidDefinition, InvalidInput
from run_status import RunStatus, TaskStatus
from workflows import nodes
from workflows.contracts import TaskRecord
from workflows.definition import SpurType, WorkflowDefinition, WorkflowLink, WorkflowNode

UPSTREAM_FAILURE = "Upstream failure"
SETTLED = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELED})


# A graph's size is bounded so that validating and scheduling it stays cheap and its run fits in a
# Temporal payload: far beyond any hand-built graph, far below what stalls the API.
MAX_NODES = 1000
MAX_LINKS = 5000
MAX_NODE_CONFIG_BYTES = 256 * 1024


def check_size(defn: WorkflowDefinition) -> None:
    """Refuse a graph over the size limits (cheap: counts first, then each node's config).

    Raises:
        InvalidDefinition: naming the limit exceeded.
    """
    if len(defn.nodes) > MAX_NODES:
        raise InvalidDefinition(f"The graph has {len(defn.nodes)} nodes; at most {MAX_NODES} are allowed")
    if len(defn.links) > MAX_LINKS:
        raise InvalidDefinition(f"The graph has {len(defn.links)} links; at most {MAX_LINKS} are allowed")
    for node in defn.nodes:
        size = len(json.dumps(node.config, default=str))
        if size > MAX_NODE_CONFIG_BYTES:
            raise InvalidDefinition(
                f"Node '{node.id}': its config is {size} bytes as JSON; at most {MAX_NODE_CONFIG_BYTES} are allowed"
            )


@dataclass(frozen=True)
class Problem:
    """A fault that keeps a stored definition (a draft) from running: the node it is on, if one, and what."""

    node_id: str | None
    detail: str


def check_shape(defn: WorkflowDefinition) -> None:
    """Refuse what cannot be stored even as a draft: a graph over the size limits (`check_size`),
    duplicate node ids, reserved ids, unknown node types.

    Raises:
        InvalidDefinition: naming the node and the fault.
    """
    check_size(defn)
    seen: set[str] = set()
    for node in defn.nodes:
        if node.id in seen:
            raise InvalidDefinition(f"Duplicate node id '{node.id}'")
        seen.add(node.id)
        nodes.check_node_shape(node)


def validate_definition(defn: WorkflowDefinition) -> None:
    """Refuse a definition that cannot run, naming the first fault found.

    Raises:
        InvalidDefinition: a shape fault (`check_shape`), or the first of `definition_problems`.
    """
    check_shape(defn)
    problems = definition_problems(defn)
    if problems:
        raise InvalidDefinition(problems[0].detail)


def definition_problems(
    defn: WorkflowDefinition, _depth: int = 0, _nodes_checked: bool = False
) -> list[Problem]:
    """Every fault that keeps a well-shaped definition (`check_shape`) from running, in the order
    they are checked: node configs, parents, links, then each graph level (one root InputNode,
    router routes, no cycle, chatbot fields) and each loop body (`_depth` is the loop nesting; a
    body made of child nodes has had its nodes checked with the level above). Empty: it can run."""
    found: list[Problem] = []
    by_id = {n.id: n for n in defn.nodes}
    for node in defn.nodes:
        problem = None if _nodes_checked else nodes.node_problem(node)
        if problem is not None:
            found.append(Problem(node.id, problem))
        if node.parent_id is None or _nodes_checked:
            continue
        parent = by_id.get(node.parent_id)
        if parent is None:
            found.append(
                Problem(node.id, f"Node '{node.id}' has parent_id '{node.parent_id}', which is not a node")
            )
        elif not nodes.kind_of(parent.node_type).has_body:
            containers = " or ".join(k.node_type for k in nodes.HANDLERS if k.has_body)
            found.append(
                Problem(
                    node.id,
                    f"Node '{node.id}' has parent_id '{node.parent_id}', which is a {parent.node_type}; "
                    f"only a {containers} has a body",
                )
            )
    links: list[WorkflowLink] = []
    for link in defn.links:
        missing = next((end for end in (link.source_id, link.target_id) if end not in by_id), None)
        if missing is not None:
            present = link.target_id if missing == link.source_id else link.source_id
            found.append(
                Problem(
                    present if present in by_id else None,
                    f"Link {link.source_id} -> {link.target_id} points at missing node '{missing}'",
                )
            )
        elif by_id[link.source_id].parent_id != by_id[link.target_id].parent_id:
            found.append(
                Problem(
                    link.target_id,
                    f"Link {link.source_id} -> {link.target_id} crosses a loop body's boundary "
                    "(a body is fed by its loop's input map)",
                )
            )
        else:
            links.append(link)
    found += _graph_problems(defn, links)
    for node in defn.nodes:
        kind = nodes.kind_of(node.node_type)
        if kind.has_tools and node.parent_id is None:
            found += [Problem(node.id, p) for p in kind.tool_problems(node, loop_body(defn, node))]
        elif kind.has_body and node.parent_id is None:
            found += _body_problems(defn, node, _depth + 1)
    return found


MAX_LOOP_NESTING = 3


def _body_problems(defn: WorkflowDefinition, loop: WorkflowNode, depth: int) -> list[Problem]:
    where = f"The body of loop '{loop.id}'"
    # Loop ids make up the scope of their body's tasks ("<loop id>#<iteration>", nested with "/").
    if len(loop.id) > 100 or "/" in loop.id or "#" in loop.id:
        return [
            Problem(
                loop.id, f"Loop node id '{loop.id[:100]}' must be at most 100 characters without '/' or '#'"
            )
        ]
    if depth > MAX_LOOP_NESTING:
        return [Problem(loop.id, f"Loops may be nested at most {MAX_LOOP_NESTING} deep ('{loop.id}')")]
    children = any(n.parent_id == loop.id for n in defn.nodes)
    try:
        body = loop_body(defn, loop)
        check_shape(body)
    except ValidationError as err:
        return [Problem(loop.id, f"{where} (config.subworkflow) is not a workflow definition: {err}")]
    except InvalidDefinition as err:
        return [Problem(loop.id, f"{where}: {err.detail}")]
    if not body.nodes:
        return [Problem(loop.id, f"{where} is empty: give it child nodes (parent_id '{loop.id}')")]
    found: list[Problem] = []
    if sum(1 for n in body.nodes if n.parent_id is None and nodes.kind_of(n.node_type).is_output) != 1:
        found.append(Problem(loop.id, f"{where} needs exactly one OutputNode"))
    # Nobody can answer a pause inside a loop body.
    pausing = next((n for n in body.nodes if nodes.kind_of(n.node_type).pauses), None)
    if pausing is not None:
        found.append(Problem(pausing.id, f"{where} cannot contain a {pausing.node_type}"))
    found += [
        Problem(p.node_id or loop.id, f"{where}: {p.detail}")
        for p in definition_problems(body, depth, children)
    ]
    return found


def loop_body(defn: WorkflowDefinition, loop: WorkflowNode) -> WorkflowDefinition:
    """A ForLoopNode's body as a definition of its own: its children (parent_id cleared), their
    descendants (nested loop bodies), and the links among them; else the config's `subworkflow`.

    Raises:
        ValidationError: the config's `subworkflow` is not a workflow definition.
    """
    members: set[str] = set()
    frontier = {loop.id}
    while frontier:
        frontier = {n.id for n in defn.nodes if n.parent_id in frontier} - members
        members |= frontier
    if not members:
        raw = loop.config.get("subworkflow")
        if isinstance(raw, dict) and raw.get("nodes"):
            return WorkflowDefinition.model_validate(raw)
        return WorkflowDefinition(nodes=[], links=[])
    body_nodes = [
        n.model_copy(update={"parent_id": None}) if n.parent_id == loop.id else n
        for n in defn.nodes
        if n.id in members
    ]
    links = [link for link in defn.links if link.source_id in members and link.target_id in members]
    return WorkflowDefinition(nodes=body_nodes, links=links)


def _graph_problems(defn: WorkflowDefinition, links: list[WorkflowLink]) -> list[Problem]:
    """The checks of one graph level (the workflow, or one loop body), over its well-formed links."""
    found: list[Problem] = []
    top = [n for n in defn.nodes if n.parent_id is None]
    targets = {link.target_id for link in links}
    inputs = [n for n in top if nodes.kind_of(n.node_type).is_input]
    if len(inputs) != 1:
        found.append(
            Problem(
                inputs[1].id if inputs else None,
                f"A workflow needs exactly one root InputNode; found {len(inputs)}",
            )
        )
    for entry in inputs:
        if entry.id in targets:
            found.append(Problem(entry.id, f"The InputNode '{entry.id}' cannot have incoming links"))
    by_id = {n.id: n for n in defn.nodes}
    for link in links:
        source = by_id[link.source_id]
        kind = nodes.kind_of(source.node_type)
        if not kind.routes:
            continue
        routes = kind.route_names(source)
        if not link.source_handle:
            found.append(
                Problem(
                    link.source_id,
                    f"Link {link.source_id} -> {link.target_id} leaves router '{link.source_id}' without a "
                    "source_handle naming a route",
                )
            )
        elif link.source_handle not in routes:
            found.append(
                Problem(
                    link.source_id,
                    f"Link {link.source_id} -> {link.target_id} names route '{link.source_handle}', which "
                    f"router '{link.source_id}' does not define",
                )
            )
    # Incoming titles per node, gathered once: a scan of every link per node made saving a
    # 1,000-node chain take ~100 ms of CPU on the event loop.
    incoming: dict[str, set[str]] = {}
    for link in links:
        incoming.setdefault(link.target_id, set()).add(by_id[link.source_id].title)
    for node in top:
        if nodes.node_problem(node) is None:  # a node with a bad config has its problem already
            titles = incoming.get(node.id, set())
            kind = nodes.kind_of(node.node_type)
            try:
                kind.check_in_graph(node, kind.config(node), titles)
            except InvalidDefinition as err:
                found.append(Problem(node.id, err.detail))
    cycle = _cycle(top, links)
    if cycle:
        found.append(Problem(cycle[0], "The graph has a cycle: " + " -> ".join(cycle)))
    if defn.spur_type == SpurType.CHATBOT and len(inputs) == 1:
        found += _chatbot_problems(inputs[0], [n for n in top if nodes.kind_of(n.node_type).is_output])
    return found


def _cycle(top: list[WorkflowNode], links: list[WorkflowLink]) -> list[str]:
    """A cycle among the nodes (its first node repeated at the end), or [] when there is none."""
    ids = {n.id for n in top}
    succ: dict[str, list[str]] = {n.id: [] for n in top}
    for link in links:
        if link.source_id in ids and link.target_id in ids:
            succ[link.source_id].append(link.target_id)
    colour: dict[str, int] = dict.fromkeys(ids, 0)
    for start in (n.id for n in top):
        if colour[start]:
            continue
        stack: list[tuple[str, Iterable[str]]] = [(start, iter(succ[start]))]
        colour[start] = 1
        path = [start]
        while stack:
            node, it = stack[-1]
            nxt = next(iter(it), None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour[nxt] == 1:
                return [*path[path.index(nxt) :], nxt]
            elif colour[nxt] == 0:
                colour[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
                path.append(nxt)
    return []


def _declared_types(node: WorkflowNode) -> dict[str, str]:
    raw = node.config.get("output_json_schema")
    if not raw:
        return {}
    try:
        schema = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise InvalidDefinition(f"Invalid JSON schema in node '{node.id}' output_json_schema") from exc
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    return {k: str(v.get("type", "")) for k, v in props.items() if isinstance(v, dict)}


def _chatbot_problems(input_node: WorkflowNode, outputs: list[WorkflowNode]) -> list[Problem]:
    found: list[Problem] = []
    try:
        declared = _declared_types(input_node)
        missing = [f for f in ("user_message", "session_id") if declared.get(f) != "string"]
        if missing:
            found.append(
                Problem(
                    input_node.id,
                    "Chatbot input node must have the following mandatory fields: " + ", ".join(missing),
                )
            )
        for out in outputs:
            if _declared_types(out).get("assistant_message") != "string":
                found.append(
                    Problem(
                        out.id,
                        "Chatbot output node must have the following mandatory fields: assistant_message",
                    )
                )
    except InvalidDefinition as err:
        found.append(Problem(input_node.id, err.detail))
    return found


@dataclass
class GraphPlan:
    """The top-level graph of a definition, indexed for scheduling (container children excluded)."""

    definition: WorkflowDefinition
    order: list[str]
    by_id: dict[str, WorkflowNode]
    preds: dict[str, list[WorkflowLink]]
    succs: dict[str, list[str]]
    input_node_id: str
    # The plan's OutputNodes, in order.
    output_ids: list[str]

    @classmethod
    def build(cls, defn: WorkflowDefinition, include: set[str] | None = None) -> GraphPlan:
        """The plan of the top-level graph, or of only the nodes in `include` (partial runs)."""
        top = [n for n in defn.nodes if n.parent_id is None and (include is None or n.id in include)]
        by_id = {n.id: n for n in top}
        preds: dict[str, list[WorkflowLink]] = {n.id: [] for n in top}
        succs: dict[str, list[str]] = {n.id: [] for n in top}
        for link in defn.links:
            if link.source_id in by_id and link.target_id in by_id:
                preds[link.target_id].append(link)
                succs[link.source_id].append(link.target_id)
        order = _topological(top, preds)
        input_id = next(n.id for n in top if nodes.kind_of(n.node_type).is_input)
        outputs = [nid for nid in order if nodes.kind_of(by_id[nid].node_type).is_output]
        return cls(defn, order, by_id, preds, succs, input_id, outputs)

    @classmethod
    def single(cls, defn: WorkflowDefinition, node_id: str) -> GraphPlan:
        """A plan of one node of `defn` alone, fed directly (an agent's tool call): it has no entry
        of its own, so it is never driven, only run node by node."""
        node = next(n for n in defn.nodes if n.id == node_id)
        return cls(defn, [node_id], {node_id: node}, {node_id: []}, {node_id: []}, node_id, [])

    def descendants(self, node_id: str) -> set[str]:
        found: set[str] = set()
        stack = list(self.succs[node_id])
        while stack:
            nid = stack.pop()
            if nid not in found:
                found.add(nid)
                stack.extend(self.succs[nid])
        return found


def human_step(defns: Iterable[WorkflowDefinition]) -> str | None:
    """The id of a node that waits for a person in any of the definitions, if one has one (runs
    that nobody can answer, such as batch rows and partial runs, must not reach one)."""
    for d in defns:
        for node in d.nodes:
            if waits_for_person(d, node):
                return node.id
    return None


def waits_for_person(defn: WorkflowDefinition, node: WorkflowNode) -> bool:
    """Whether the node may wait for a person: a pausing kind, or an agent with a tool needing approval."""
    kind = nodes.kind_of(node.node_type)
    return kind.pauses or (kind.has_tools and kind.waits_for_approval(loop_body(defn, node)))


def node_by_reference(defn: WorkflowDefinition, ref: str, what: str) -> str:
    """The id of the top-level node `ref` names: its id, else its title (PySpur's editor sends
    titles; its nodes have UUID ids).

    Raises:
        InvalidInput: no such node, or the title is shared by several nodes (`what` says where
            the reference came from).
    """
    top = [n for n in defn.nodes if n.parent_id is None]
    if any(n.id == ref for n in top):
        return ref
    titled = [n.id for n in top if n.title == ref]
    if len(titled) == 1:
        return titled[0]
    if titled:
        raise InvalidInput(
            f"{what} '{ref}' is the title of several nodes ({', '.join(titled)}); give the node id"
        )
    raise InvalidInput(f"{what} '{ref}' is not a node of this workflow")


def partial_run_nodes(defn: WorkflowDefinition, target: str, precomputed: set[str]) -> set[str]:
    """The nodes a partial run of `target` needs: the target, the upstream nodes reached from it
    without passing through a node that has a precomputed output (those are included, not passed),
    and the InputNode.

    Raises:
        InvalidInput: `target` is not a top-level node of the definition.
    """
    top = {n.id: n for n in defn.nodes if n.parent_id is None}
    if target not in top:
        raise InvalidInput(f"Node '{target}' is not a node of this workflow")
    preds: dict[str, list[str]] = {nid: [] for nid in top}
    for link in defn.links:
        if link.source_id in top and link.target_id in top:
            preds[link.target_id].append(link.source_id)
    needed = {next(nid for nid, n in top.items() if nodes.kind_of(n.node_type).is_input), target}
    stack = [target]
    while stack:
        nid = stack.pop()
        for src in preds[nid]:
            if src not in needed:
                needed.add(src)
                if src not in precomputed:
                    stack.append(src)
    return needed


def _topological(top: list[WorkflowNode], preds: dict[str, list[WorkflowLink]]) -> list[str]:
    # Layer by layer, ties broken by definition order, so every replay schedules identically: a node's
    # layer is one more than its deepest source's, found in one pass over the links (Kahn's
    # algorithm), then the nodes are sorted by (layer, definition order). Linear, so a long chain
    # costs no more than a wide graph.
    sources = {n.id: {link.source_id for link in preds[n.id]} for n in top}
    waiting = {nid: len(srcs) for nid, srcs in sources.items()}
    succs: dict[str, list[str]] = {n.id: [] for n in top}
    for nid, srcs in sources.items():
        for src in srcs:
            succs[src].append(nid)
    layer = dict.fromkeys((nid for nid, count in waiting.items() if count == 0), 0)
    ready = list(layer)
    while ready:
        nid = ready.pop()
        for nxt in succs[nid]:
            layer[nxt] = max(layer.get(nxt, 0), layer[nid] + 1)
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
    if len(layer) < len(top) or any(waiting.values()):
        raise InvalidDefinition("The graph has a cycle")
    position = {n.id: i for i, n in enumerate(top)}
    return sorted(layer, key=lambda nid: (layer[nid], position[nid]))


@dataclass
class Start:
    """The node should run with these inputs (`{predecessor_title: output}`)."""

    inputs: dict[str, Any]


@dataclass
class RunState:
    """Per-run scheduling state: one `TaskRecord` per top-level node, settled in dependency order."""

    plan: GraphPlan
    records: dict[str, TaskRecord] = field(default_factory=dict)
    # Where this graph sits: "" for the run's own graph, "<loop id>#<iteration>" for a loop body.
    scope: str = ""
    # Task sequence numbers start here, so the tasks of loop bodies read after what came before.
    seq_base: int = 0
    failed_node: str | None = None
    canceled: bool = False
    # A person declined a pause (without continue_on_decline): the run ends CANCELED.
    declined: str | None = None

    def __post_init__(self) -> None:
        if not self.records:
            self.records = {
                nid: TaskRecord(node_id=nid, seq=self.seq_base + i, scope=self.scope)
                for i, nid in enumerate(self.plan.order)
            }

    # -- queries ---------------------------------------------------------------------------------
    def ready(self) -> list[str]:
        """PENDING nodes whose predecessors have all settled, in topological order."""
        if self.failed_node is not None or self.canceled:
            return []
        return [
            nid
            for nid in self.plan.order
            if self.records[nid].status == TaskStatus.PENDING
            and all(self.records[link.source_id].status in SETTLED for link in self.plan.preds[nid])
        ]

    def unsettled(self) -> list[str]:
        return [nid for nid in self.plan.order if self.records[nid].status not in SETTLED]

    @property
    def done(self) -> bool:
        return not self.unsettled()

    def outputs(self) -> dict[str, Any]:
        return {
            nid: r.outputs
            for nid, r in self.records.items()
            if r.status == TaskStatus.COMPLETED and r.outputs is not None
        }

    def run_status(self) -> RunStatus:
        if self.canceled:
            return RunStatus.CANCELED
        if self.failed_node is not None:
            return RunStatus.FAILED
        if not self.done:
            return RunStatus.PAUSED if self.paused() else RunStatus.RUNNING
        return RunStatus.CANCELED if self.declined else RunStatus.COMPLETED

    def paused(self) -> list[str]:
        return [nid for nid in self.plan.order if self.records[nid].status == TaskStatus.PAUSED]

    def task_list(self) -> list[TaskRecord]:
        return sorted(self.records.values(), key=lambda r: r.seq)

    # -- start or skip ---------------------------------------------------------------------------
    def start_or_skip(self, node_id: str) -> Start | None:
        """Inputs for a ready node, or None when it must be skipped (an untaken route upstream).

        A node is skipped when any predecessor was skipped or sent it nothing, except a kind that
        takes partial inputs (CoalesceNode), which is skipped only when every predecessor sent nothing.
        """
        inputs: dict[str, Any] = {}
        missing = 0
        links = self.plan.preds[node_id]
        for link in links:
            source = self.records[link.source_id]
            payload: Any = source.outputs if source.status == TaskStatus.COMPLETED else None
            kind = nodes.kind_of(self.plan.by_id[link.source_id].node_type)
            if payload is not None and kind.routes:
                payload = kind.route_payload(payload, link.source_handle or "")
            if payload is None:
                missing += 1
                continue
            inputs[self.plan.by_id[link.source_id].title] = payload
        if nodes.kind_of(self.plan.by_id[node_id].node_type).takes_partial_inputs:
            return Start(inputs) if inputs else None
        if missing:
            return None
        return Start(inputs)

    # -- transitions -----------------------------------------------------------------------------
    def start(self, node_id: str, inputs: dict[str, Any], now: datetime) -> None:
        rec = self.records[node_id]
        rec.status, rec.inputs, rec.start_time = TaskStatus.RUNNING, inputs, now

    def complete(self, node_id: str, outputs: dict[str, Any], now: datetime) -> None:
        rec = self.records[node_id]
        rec.status, rec.outputs, rec.end_time = TaskStatus.COMPLETED, outputs, now
        rec.start_time = rec.start_time or now

    def pause(self, node_id: str, passthrough: dict[str, Any], now: datetime) -> None:
        """A HumanInterventionNode waits; its downstream stays PENDING until it is decided."""
        rec = self.records[node_id]
        rec.status, rec.outputs = TaskStatus.PAUSED, passthrough
        rec.start_time = rec.start_time or now

    def decline(self, node_id: str, reason: str, now: datetime) -> None:
        """A declined pause cancels its node and everything downstream; other branches go on."""
        self.declined = node_id
        rec = self.records[node_id]
        rec.status, rec.error, rec.end_time = TaskStatus.CANCELED, reason, now
        for nid in self.plan.descendants(node_id):
            other = self.records[nid]
            if other.status not in SETTLED:
                other.status, other.error, other.end_time = TaskStatus.CANCELED, reason, now

    def skip(self, node_id: str, now: datetime) -> None:
        rec = self.records[node_id]
        rec.status, rec.start_time, rec.end_time = TaskStatus.CANCELED, rec.start_time or now, now

    def fail(self, node_id: str, error: str, now: datetime) -> None:
        """Fail a node and, with it, the run: every other unsettled node is canceled."""
        rec = self.records[node_id]
        rec.status, rec.error, rec.end_time = TaskStatus.FAILED, error, now
        rec.start_time = rec.start_time or now
        self.failed_node = node_id
        downstream = self.plan.descendants(node_id)
        for nid in self.unsettled():
            other = self.records[nid]
            other.status, other.end_time = TaskStatus.CANCELED, now
            other.error = UPSTREAM_FAILURE if nid in downstream else f"Canceled: node '{node_id}' failed"

    def cancel(self, reason: str, now: datetime) -> None:
        """Cancel the run: every unsettled node becomes CANCELED with the reason."""
        self.canceled = True
        for nid in self.unsettled():
            other = self.records[nid]
            other.status, other.error, other.end_time = TaskStatus.CANCELED, reason, now
