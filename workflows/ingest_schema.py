"""Payloads of the document-ingestion workflow and its activities; pydantic, no I/O."""

from __future__ import annotations

from pydantic import BaseModel

from workflows.schema import RunInput

TEXTUAL = ("text/", "application/json", "application/x-yaml", "application/yaml", "application/xml")


def is_textual(media_type: str, name: str) -> bool:
    """Whether ingestion extracts an upload's text (it is then given to the graph as `text`)."""
    return media_type.startswith(TEXTUAL) or name.lower().endswith((".md", ".txt", ".csv", ".json", ".yaml"))


class IngestInput(BaseModel):
    document_id: str
    # Set when the document is an upload into a v1 run's inputs/ folder.
    run_id: str | None = None


class SettleResult(BaseModel):
    """What settling a run's inputs decided: a run to start (auto_start), or nothing to do."""

    run_input: RunInput | None = None
    execution_timeout_seconds: float | None = None
    run_type: str = "interactive"
