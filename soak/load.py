"""The mixed load: users that each pick a scenario at random (seeded) and drive it to its end through
either API process — Python runs blocking and not, human pauses and decisions, cancels, batches,
subworkflows, the v1 run lifecycle, LLM runs against the flaky provider, and hostile inputs."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from soak.recorder import Recorder
from tests.builders import definition, double_graph, input_node, link, node, output_node, python_node

TERMINAL = {"COMPLETED", "FAILED", "CANCELED"}
LLM_SCHEMA = '{"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}'


def gated() -> dict[str, Any]:
    return definition(
        [
            input_node(),
            node("approve", "HumanInterventionNode", message="Check it"),
            python_node("after", "return {'seen': 1}", {"seen": "integer"}),
            output_node({"seen": "after.seen"}),
        ],
        [link("input_node", "approve"), link("approve", "after"), link("after", "output_node")],
    )


def slow(seconds: float) -> dict[str, Any]:
    return double_graph(f"import time\ntime.sleep({seconds})\nreturn {{'y': input_model.input_node.x * 2}}")


def llm_graph() -> dict[str, Any]:
    config = {
        "llm_info": {"model": "openai/gpt-4o-mini", "max_tokens": 32},
        "system_message": "Answer briefly.",
        "user_message": "{{input_node.q}}",
        "output_schema": {"answer": "string"},
        "output_json_schema": LLM_SCHEMA,
        # The stub refuses about a quarter of the calls: enough attempts that a run survives its luck.
        "max_attempts": 10,
    }
    return definition(
        [
            input_node({"q": "string"}),
            node("llm", "SingleLLMCallNode", **config),
            output_node({"a": "llm.answer"}),
        ],
        [link("input_node", "llm"), link("llm", "output_node")],
    )


def calls(workflow_id: str) -> dict[str, Any]:
    return definition(
        [
            input_node(),
            node("sub", "SubworkflowNode", workflow_id=workflow_id, input_map={"x": "input_node.x"}),
            output_node({"y": "sub.y"}),
        ],
        [link("input_node", "sub"), link("sub", "output_node")],
    )


@dataclass
class Tracked:
    kind: str
    expect: set[str] | None  # final statuses the scenario allows (None: any terminal one)


@dataclass
class Load:
    rec: Recorder
    workflows: dict[str, str] = field(default_factory=dict)
    dataset_id: str = ""
    v1_definition: str = ""
    runs: dict[str, Tracked] = field(default_factory=dict)
    llm_tokens: dict[str, str] = field(default_factory=dict)  # token -> run id
    hostile_accepted: list[str] = field(default_factory=list)
    scenarios: dict[str, int] = field(default_factory=dict)

    # -- set-up (before the chaos) ---------------------------------------------------------------------

    async def setup(self) -> None:
        graphs = {
            "py": double_graph(),
            "slow": slow(3),
            "gated": gated(),
            "llm": llm_graph(),
            "nul": double_graph('return {"y": "a\\x00b"}'),
        }
        for name, graph in graphs.items():
            self.workflows[name] = await self._create(name, graph)
        self.workflows["outer"] = await self._create("outer", calls(self.workflows["py"]))
        rows = "x\n" + "".join(f"{i}\n" for i in range(20))
        resp = await self.rec.call(
            "POST",
            "/ds/",
            "POST /ds/",
            params={"name": "soak-rows"},
            files={"file": ("rows.csv", rows.encode())},
        )
        self.dataset_id = _ok(resp)["id"]
        folders = _ok(await self.rec.call("GET", "/v1/folders", "GET /v1/folders"))
        created = await self.rec.call(
            "POST",
            "/v1/workflow-definitions",
            "POST /v1/workflow-definitions",
            json={
                "name": "soak-v1",
                "parent_path_part_id": folders["items"][0]["path_part_id"],
                "approval_required": False,
            },
        )
        self.v1_definition = _ok(created)["id"]
        graph = definition(
            [
                input_node({"user_message": "string"}),
                python_node("stamp", "return {'t': 1}", {"t": "integer"}),
                python_node("slow", "import time\ntime.sleep(1.5)\nreturn {'y': 1}", {"y": "integer"}),
                output_node({"t": "stamp.t", "y": "slow.y"}),
            ],
            [
                link("input_node", "stamp"),
                link("input_node", "slow"),
                link("stamp", "output_node"),
                link("slow", "output_node"),
            ],
        )
        current = _ok(await self.rec.call("GET", f"/wf/{self.v1_definition}/", "GET /wf/{id}/"))
        _ok(
            await self.rec.call(
                "PUT",
                f"/wf/{self.v1_definition}/",
                "PUT /wf/{id}/",
                json={"name": current["name"], "description": "", "definition": graph},
            )
        )

    async def _create(self, name: str, graph: dict[str, Any]) -> str:
        resp = await self.rec.call(
            "POST", "/wf/", "POST /wf/", json={"name": f"soak-{name}", "definition": graph}
        )
        workflow_id: str = _ok(resp)["id"]
        return workflow_id

    # -- users -----------------------------------------------------------------------------------------

    def catalogue(self) -> list[tuple[str, int, Callable[[], Awaitable[None]]]]:
        return [
            ("blocking", 12, self.blocking),
            ("non_blocking", 10, self.non_blocking),
            ("pause", 12, self.pause),
            ("cancel", 8, self.cancel),
            ("batch", 4, self.batch),
            ("subworkflow", 8, self.subworkflow),
            ("v1", 12, self.v1),
            ("llm", 12, self.llm),
            ("hostile", 10, self.hostile),
            ("unstorable_output", 3, self.unstorable_output),
        ]

    async def user(self, until: float) -> None:
        names, weights, actions = zip(*self.catalogue(), strict=True)
        while time.time() < until:
            i = self.rec.rng.choices(range(len(names)), weights)[0]
            self.scenarios[names[i]] = self.scenarios.get(names[i], 0) + 1
            try:
                await actions[i]()
            except (KeyError, ValueError, TypeError):  # an answer not shaped as expected: recorded already
                await asyncio.sleep(0.5)

    def _inputs(self, x: int | None = None) -> dict[str, Any]:
        return {"initial_inputs": {"input_node": {"x": self.rec.rng.randrange(100) if x is None else x}}}

    async def _start(
        self, kind: str, workflow: str, body: dict[str, Any], expect: set[str] | None
    ) -> str | None:
        resp = await self.rec.call(
            "POST", f"/wf/{self.workflows[workflow]}/start_run/", "POST /wf/{id}/start_run/", json=body
        )
        if resp is None or resp.status_code != 200:
            return None
        run_id: str = resp.json()["id"]
        self.runs[run_id] = Tracked(kind, expect)
        return run_id

    async def _status(self, run_id: str) -> str | None:
        resp = await self.rec.call("GET", f"/run/{run_id}/status/", "GET /run/{id}/status/")
        if resp is None or resp.status_code != 200:
            return None
        status: str = resp.json()["status"]
        return status

    async def _wait(self, run_id: str, until: set[str], within: float = 30.0) -> str | None:
        deadline = time.monotonic() + within
        status = None
        while time.monotonic() < deadline:
            status = await self._status(run_id)
            if status in until or status in TERMINAL:
                return status
            await asyncio.sleep(0.5)
        return status

    # -- scenarios -------------------------------------------------------------------------------------

    async def blocking(self) -> None:
        resp = await self.rec.call(
            "POST", f"/wf/{self.workflows['py']}/run/", "POST /wf/{id}/run/", json=self._inputs()
        )
        if resp is not None and resp.status_code == 200:
            listed = await self.rec.call(
                "GET", f"/wf/{self.workflows['py']}/runs/", "GET /wf/{id}/runs/", params={"page_size": 5}
            )
            del listed  # the run's id is not in a blocking answer; the checks cover every stored run

    async def non_blocking(self) -> None:
        run_id = await self._start("non_blocking", "py", self._inputs(), {"COMPLETED"})
        if run_id:
            await self._wait(run_id, set())

    async def pause(self) -> None:
        run_id = await self._start("pause", "gated", self._inputs(), None)
        if not run_id or await self._wait(run_id, {"PAUSED"}) != "PAUSED":
            return
        action = self.rec.rng.choice(["APPROVE", "DECLINE"])
        self.runs[run_id] = Tracked(f"pause_{action.lower()}", {"COMPLETED"} if action == "APPROVE" else None)
        await self.rec.call(
            "POST",
            f"/wf/process_pause_action/{run_id}/",
            "POST /wf/process_pause_action/{id}/",
            json={"inputs": {}, "user_id": "soak", "action": action, "node_id": "approve"},
        )
        await self._wait(run_id, set())

    async def cancel(self) -> None:
        run_id = await self._start("cancel", "slow", self._inputs(), {"CANCELED", "COMPLETED"})
        if not run_id:
            return
        await asyncio.sleep(self.rec.rng.uniform(0.2, 2.0))
        await self.rec.call("POST", f"/wf/cancel_workflow/{run_id}/", "POST /wf/cancel_workflow/{id}/")
        await self._wait(run_id, set())

    async def batch(self) -> None:
        resp = await self.rec.call(
            "POST",
            f"/wf/{self.workflows['py']}/start_batch_run/",
            "POST /wf/{id}/start_batch_run/",
            json={"dataset_id": self.dataset_id, "mini_batch_size": 4},
        )
        if resp is None or resp.status_code != 200:
            return
        run_id = resp.json()["id"]
        self.runs[run_id] = Tracked("batch", {"COMPLETED"})
        await self._wait(run_id, set(), within=60)

    async def subworkflow(self) -> None:
        run_id = await self._start("subworkflow", "outer", self._inputs(), {"COMPLETED"})
        if run_id:
            await self._wait(run_id, set())

    async def llm(self) -> None:
        token = f"soak-{uuid.uuid4().hex}"
        run_id = await self._start(
            "llm", "llm", {"initial_inputs": {"input_node": {"q": token}}}, {"COMPLETED"}
        )
        if run_id:
            self.llm_tokens[token] = run_id
            await self._wait(run_id, set(), within=60)

    async def unstorable_output(self) -> None:
        run_id = await self._start("unstorable_output", "nul", self._inputs(), {"FAILED"})
        if run_id:
            await self._wait(run_id, set())

    async def v1(self) -> None:
        """Create and start a v1 run; then let it finish, or stop it and retry or resume it."""
        created = await self.rec.call(
            "POST",
            f"/v1/workflow-definitions/{self.v1_definition}/runs",
            "POST /v1/workflow-definitions/{id}/runs",
        )
        if created is None or created.status_code != 201:
            return
        run_id = created.json()["id"]
        self.runs[run_id] = Tracked("v1", {"COMPLETED"})
        started = await self.rec.call(
            "POST",
            f"/v1/workflow-runs/{run_id}/start",
            "POST /v1/workflow-runs/{id}/start",
            json={"user_message": "hi"},
        )
        if started is None or started.status_code != 202:
            self.runs[run_id] = Tracked("v1_unstarted", None)
            return
        then = self.rec.rng.choice(["finish", "retry", "resume"])
        if then != "finish":
            await asyncio.sleep(self.rec.rng.uniform(0.2, 1.0))
            await self.rec.call(
                "POST", f"/v1/workflow-runs/{run_id}/stop", "POST /v1/workflow-runs/{id}/stop"
            )
            await self._wait(run_id, set())
            again = await self.rec.call(
                "POST", f"/v1/workflow-runs/{run_id}/{then}", f"POST /v1/workflow-runs/{{id}}/{then}"
            )
            if again is None or again.status_code != 202:
                self.runs[run_id] = Tracked(f"v1_stop_{then}_refused", None)
                return
            self.runs[run_id] = Tracked(f"v1_stop_{then}", {"COMPLETED"})
        await self._wait(run_id, set())

    async def hostile(self) -> None:
        """Inputs the service must refuse with a 4xx (never store, never 5xx)."""
        url, route = f"/wf/{self.workflows['py']}/start_run/", "hostile POST /wf/{id}/start_run/"
        variant = self.rec.rng.choice(["nul", "surrogate", "deep", "huge", "nan", "nul_name"])
        kw: dict[str, Any]
        if variant == "nul":
            kw = {"json": {"initial_inputs": {"input_node": {"x": "a\x00b"}}}}
        elif variant == "surrogate":
            kw = {"content": b'{"initial_inputs": {"input_node": {"x": "\\ud800"}}}'}
        elif variant == "deep":
            deep: Any = 1
            for _ in range(600):
                deep = [deep]
            kw = {"content": json.dumps({"initial_inputs": {"input_node": {"x": deep}}}).encode()}
        elif variant == "huge":
            kw = {"json": {"initial_inputs": {"input_node": {"x": "y" * (3 * 1024 * 1024)}}}}
        elif variant == "nan":
            kw = {"content": b"NaN"}
        else:
            url, route = "/wf/", "hostile POST /wf/"
            kw = {"json": {"name": "bad\x00name", "definition": double_graph()}}
        headers = {"content-type": "application/json"}
        resp = await self.rec.call("POST", url, f"{route} ({variant})", headers=headers, **kw)
        if resp is not None and resp.status_code < 400:
            self.hostile_accepted.append(f"{variant}: {resp.status_code} {resp.text[:200]}")


def _ok(resp: Any) -> dict[str, Any]:
    if resp is None or resp.status_code >= 300:
        raise RuntimeError(
            f"set-up request failed: {resp.status_code if resp else 'no answer'} {resp.text[:300] if resp else ''}"
        )
    body: dict[str, Any] = resp.json()
    return body
