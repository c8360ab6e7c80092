"""The v1 fields of workflows (`v1_definitions`): defaults for workflows made through `/wf/`, and the
instruction document every definition has."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import v1_repo as v1
from db.models import Document, V1Definition, Workflow

INSTRUCTION_NAME = "instruction.md"


def text_document(tenant_id: uuid.UUID, parent: uuid.UUID, path: str, name: str, text: str) -> Document:
    """A markdown document (already ingested: its text is given), not yet added to a session."""
    return Document(
        id=uuid.uuid4(),
        path_part_id=uuid.uuid4(),
        tenant_id=tenant_id,
        parent_path_part_id=parent,
        materialized_path=v1.child_path(path, name),
        name=name,
        media_type="text/markdown",
        size_bytes=len(text.encode()),
        content=text.encode(),
        text=text,
        ingest_status="COMPLETED",
    )


async def without_v1_fields(session: AsyncSession, tenant_id: uuid.UUID) -> list[Workflow]:
    rows = await session.scalars(
        select(Workflow).where(
            Workflow.tenant_id == tenant_id, Workflow.id.not_in(select(V1Definition.workflow_id))
        )
    )
    return list(rows.all())


async def add_v1_defaults(session: AsyncSession, tenant_id: uuid.UUID, workflows: Sequence[Workflow]) -> None:
    """Give workflows of one tenant their v1 defaults (in the root folder, an empty instruction) in a
    few statements however many there are; commits. Those a concurrent request gave theirs keep them."""
    if not workflows:
        return
    root = await v1.root_folder(session, tenant_id)
    rows: list[Document | V1Definition] = []
    for wf in workflows:
        path_part = uuid.uuid4()
        doc = text_document(
            tenant_id, path_part, v1.child_path(root.materialized_path, wf.name), INSTRUCTION_NAME, ""
        )
        definition = V1Definition(
            workflow_id=wf.id,
            tenant_id=tenant_id,
            path_part_id=path_part,
            parent_path_part_id=root.path_part_id,
            instruction_path_part_id=doc.path_part_id,
        )
        rows += [doc, definition]
    try:
        async with session.begin_nested():
            session.add_all(rows)
    except IntegrityError:
        pass  # a racing request stored them first (its insert committed before ours failed)
    await session.commit()
