"""Engine tests: the real workflow code on a Temporal dev server, with stub activities (tests/engine/stubs.py).

No PostgreSQL, no sandbox, no API. One dev server for the session, with per-workflow time skipping
enabled, so timers (pause timeouts) fire without waiting in real time; a fresh task queue and worker
per test.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.engine.stubs import WORKFLOWS, RunInput, RunResult, Stubs, WorkflowDefinition
from workflows import search_attributes
from workflows.search_attributes import temporal_workflow_id

# The dev server keeps per-workflow time skipping behind this dynamic-config flag (CLI 1.9.1).
_TIME_SKIPPING = ["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true"]


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping_v2(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        dev_server_extra_args=_TIME_SKIPPING,
        dev_server_log_level="error",
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@dataclass
class Engine:
    """A worker with stub activities on its own task queue, and a client to start runs on it."""

    env: WorkflowEnvironment
    stubs: Stubs
    task_queue: str

    @property
    def client(self) -> Client:
        return self.env.client

    async def start(
        self, defn: dict[str, Any], inputs: dict[str, Any], **fields: Any
    ) -> WorkflowHandle[Any, RunResult]:
        run_id = str(uuid.uuid4())
        inp = RunInput(
            run_id=run_id,
            tenant_id=str(uuid.uuid4()),
            workflow_id=str(uuid.uuid4()),
            definition=WorkflowDefinition.model_validate(defn),
            input_payload=inputs,
            **fields,
        )
        return await self.client.start_workflow(
            "RunWorkflow",
            inp,
            id=temporal_workflow_id(run_id),
            task_queue=self.task_queue,
            result_type=RunResult,
        )

    async def run(self, defn: dict[str, Any], inputs: dict[str, Any], **fields: Any) -> RunResult:
        return await (await self.start(defn, inputs, **fields)).result()


@pytest.fixture
def stubs() -> Stubs:
    return Stubs()


@pytest.fixture
async def engine(temporal_env: WorkflowEnvironment, stubs: Stubs) -> AsyncIterator[Engine]:
    task_queue = f"engine-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal_env.client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=stubs.all(),
        # As the worker process runs it by default (settings.worker_sandboxed_workflows).
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        yield Engine(temporal_env, stubs, task_queue)
