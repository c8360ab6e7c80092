"""Activities of document ingestion: text extraction, and settling a v1 run's inputs once they are in."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from core import storable
from db import ingest_repo, repo
from db import v1_repo as v1
from db.models import Run
from errors import InvalidDefinition
from run_status import IngestStatus, RunStatus
from settings import Settings
from workflows.contracts import IngestActivitiesContract, RunInput, SettleResult, is_textual


@dataclass(frozen=True)
class RunStarts:
    """The run rules that turn a settled draft into an engine input (the v1 service layer's
    `dispatch` and `again`), injected by the process so that activities do not import the API."""

    dispatch: Callable[
        [AsyncSession, Run, Settings, str | None, list[str]], Awaitable[tuple[RunInput, timedelta] | None]
    ]
    again: Callable[[AsyncSession, Run, Settings], Awaitable[tuple[RunInput, timedelta]]]
    # One firing of a v1 definition's schedule (`core.v1_schedule_firing.fire`).
    fire: Callable[[AsyncSession, Client, Settings, uuid.UUID, str], Awaitable[str | None]] | None = None


class IngestActivities(IngestActivitiesContract):
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings, starts: RunStarts
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._starts = starts

    async def ingest_document(self, document_id: str) -> str:
        """Extract text from a textual upload (UTF-8); other types are stored as they are.
        Returns the document's ingest status (COMPLETED or FAILED); repeating it changes nothing."""
        async with self._sessions() as session, session.begin():
            doc = await ingest_repo.locked_document(session, uuid.UUID(document_id))
            if doc is None:
                return "FAILED"
            if doc.ingest_status != IngestStatus.PENDING:
                return doc.ingest_status
            text, error = None, None
            if is_textual(doc.media_type, doc.name):
                try:
                    text = (doc.content or b"").decode("utf-8")
                except UnicodeDecodeError as err:
                    error = f"Not valid UTF-8 text (byte {err.start})"
                if text is not None and (problem := storable.string_problem(text)) is not None:
                    # It could not be stored (nor handed to a run): the upload fails, its draft settles.
                    text, error = None, f"The text {problem}"
            return ingest_repo.record_extraction(doc, text, error)

    async def settle_run_inputs(self, run_id: str) -> SettleResult:
        """When no upload of a PENDING draft is still ingesting: back to NOT_STARTED, or (auto_start)
        dispatch it, or fail it if an upload failed. Returns the run to start, if any."""
        rid = uuid.UUID(run_id)
        async with self._sessions() as session:
            run = await ingest_repo.locked_run(session, rid)
            if (
                run is not None
                and run.draft_state is None
                and run.status == RunStatus.PENDING
                and run.snapshot
            ):
                # Dispatched by an earlier attempt of this activity that did not return: start it again
                # (the start is idempotent: the child workflow id is the run's).
                run_input, timeout = await self._starts.again(session, run, self._settings)
                await session.commit()  # keeps any version it created for the execution's writes
                return SettleResult(
                    run_input=run_input,
                    execution_timeout_seconds=timeout.total_seconds(),
                    run_type=run.run_type,
                )
            if run is None or run.draft_state != v1.PENDING:
                await session.rollback()
                return SettleResult()
            statuses = await ingest_repo.input_statuses(session, rid)
            if any(s == IngestStatus.PENDING for _, s, _ in statuses):
                await session.rollback()
                return SettleResult()
            failed = [(n, e) for n, s, e in statuses if s == IngestStatus.FAILED]
            if not run.auto_start:
                await repo.set_draft_state(session, rid, v1.PENDING, v1.NOT_STARTED)
                await session.commit()
                return SettleResult()
            if failed:
                name, err = failed[0]
                await repo.fail_draft(session, rid, f"Input '{name}' failed ingestion: {err}")
                await session.commit()
                return SettleResult()
            await ingest_repo.touch_run(session, rid)
            try:
                dispatched = await self._starts.dispatch(session, run, self._settings, None, [v1.PENDING])
            except InvalidDefinition as err:
                # The graph was edited into a draft that cannot run since the run was created.
                await session.rollback()
                await repo.fail_draft(session, rid, err.detail)
                await session.commit()
                return SettleResult()
            if dispatched is None:
                return SettleResult()
            run_input, timeout = dispatched
            return SettleResult(
                run_input=run_input, execution_timeout_seconds=timeout.total_seconds(), run_type=run.run_type
            )
