"""Committed histories still replay on the current interpreter (a change that would break in-flight runs fails here)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.batch_workflow import BatchChunkWorkflow, BatchWorkflow
from workflows.ingest_workflow import IngestDocumentWorkflow
from workflows.run_workflow import RunWorkflow

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, await asyncio.to_thread(path.read_text))
    replayer = Replayer(
        workflows=[RunWorkflow, BatchWorkflow, BatchChunkWorkflow, IngestDocumentWorkflow],
        data_converter=pydantic_data_converter,
    )
    await replayer.replay_workflow(history)


def test_histories_are_committed() -> None:
    assert len(HISTORIES) >= 3
