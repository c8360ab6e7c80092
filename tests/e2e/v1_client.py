"""Helpers for driving the v1 API through the unmodified ksapi 3.18.2 client (synchronous, real HTTP)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import ksapi
from ksapi import (
    ApiClient,
    Configuration,
    DocumentsApi,
    FoldersApi,
    WorkflowDefinitionsApi,
    WorkflowRunsApi,
)

from tests.builders import definition, input_node, link, output_node, python_node

T = TypeVar("T")


@dataclass
class V1:
    """The ksapi APIs for one caller."""

    client: ApiClient
    runs: WorkflowRunsApi
    defs: WorkflowDefinitionsApi
    folders: FoldersApi
    docs: DocumentsApi

    def api(self, cls: type[T]) -> T:
        return cls(self.client)  # type: ignore[call-arg]


def connect(base_url: str, key: str, *, cookie: bool = False) -> V1:
    config = (
        Configuration(host=base_url, api_key={"cookieAuth": key})
        if cookie
        else Configuration(host=base_url, access_token=key)
    )
    client = ApiClient(config)
    return V1(
        client,
        WorkflowRunsApi(client),
        WorkflowDefinitionsApi(client),
        FoldersApi(client),
        DocumentsApi(client),
    )


def root_folder(v1: V1) -> uuid.UUID:
    """The tenant's root folder's path part: the top of `list_folders()`."""
    root: uuid.UUID = v1.folders.list_folders().items[0].path_part_id
    return root


def new_definition(v1: V1, root: uuid.UUID, *, approval_required: bool = False, **extra: Any) -> Any:
    return v1.defs.create_workflow_definition(
        ksapi.CreateWorkflowDefinitionRequest(
            name=f"wf-{uuid.uuid4().hex[:8]}",
            parent_path_part_id=root,
            approval_required=approval_required,
            **extra,
        )
    )


def poll(fetch: Callable[[], T], done: Callable[[T], bool], within: float = 30.0, interval: float = 0.1) -> T:
    deadline = time.monotonic() + within
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s (last value {value!r})")
        time.sleep(interval)


def settled(v1: V1, run_id: Any, state: str, within: float = 30.0) -> Any:
    return poll(lambda: v1.runs.get_workflow_run(run_id), lambda r: r.execution_state.value == state, within)


def set_graph(base_url: str, key: str, definition_id: Any, definition: dict[str, Any]) -> None:
    """Edit a v1 definition's graph through the workflow API (`PUT /wf/{id}/`): they are one object."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        wf = http.get(f"/wf/{definition_id}/").json()
        resp = http.put(
            f"/wf/{definition_id}/",
            json={"name": wf["name"], "description": wf["description"] or "", "definition": definition},
        )
        assert resp.status_code == 200, resp.text


def raw(base_url: str, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=30)


def v1_graph(code: str | None = None) -> dict[str, Any]:
    """input → (Python) → output; the output echoes the user message (and the Python result)."""
    fields = {"user_message": "string", "instruction": "string", "inputs": "array"}
    if code is None:
        return definition(
            [
                input_node(fields),
                output_node({"message": "input_node.user_message", "inputs": "input_node.inputs"}),
            ],
            [link("input_node", "output_node")],
        )
    return definition(
        [input_node(fields), python_node("py1", code, {"y": "integer"}), output_node({"y": "py1.y"})],
        [link("input_node", "py1"), link("py1", "output_node")],
    )


SLEEP = "import time\ntime.sleep({secs})\nreturn {{'y': 7}}"


def upload(v1: V1, run: Any, name: str, content: bytes) -> Any:
    """Ingest a file into a run's `inputs/` folder."""
    return v1.docs.ingest_document(file=(name, content), path_part_id=run.inputs.path_part_id)
