"""Datasets (rows stored parsed) and output files (batch results as JSON lines): reads and writes."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from db.models import Dataset, DatasetRow, OutputFile, OutputLine, Run
from run_status import TERMINAL, RunStatus

_UNFINISHED = [s.value for s in RunStatus if s not in TERMINAL]
_INSERT_CHUNK = 1000  # rows per INSERT statement: bounds the bind parameters of one statement


async def name_taken(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> bool:
    found = await session.scalar(
        select(Dataset.id).where(Dataset.tenant_id == tenant_id, Dataset.name == name).limit(1)
    )
    return found is not None


async def store(session: AsyncSession, ds: Dataset, rows: list[dict[str, Any]]) -> bool:
    """Add the dataset with all its rows; False if the name was taken meanwhile (the transaction can
    then only be rolled back)."""
    session.add(ds)
    try:
        await session.flush()
    except IntegrityError:
        return False
    for start in range(0, len(rows), _INSERT_CHUNK):
        chunk = rows[start : start + _INSERT_CHUNK]
        await session.execute(
            insert(DatasetRow),
            [{"dataset_id": ds.id, "idx": start + i, "data": row} for i, row in enumerate(chunk)],
        )
    return True


async def tenant_dataset(
    session: AsyncSession, tenant_id: uuid.UUID, dataset_id: uuid.UUID
) -> Dataset | None:
    return await session.scalar(
        select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
    )


async def datasets(
    session: AsyncSession, tenant_id: uuid.UUID, page: int, page_size: int | None
) -> list[Dataset]:
    """Newest first; all of them when `page_size` is None."""
    q = select(Dataset).where(Dataset.tenant_id == tenant_id).order_by(Dataset.uploaded_at.desc(), Dataset.id)
    if page_size is not None:
        q = q.offset((page - 1) * page_size).limit(page_size)
    return list((await session.scalars(q)).all())


async def delete_unused_dataset(session: AsyncSession, dataset_id: uuid.UUID) -> bool:
    """Delete the dataset unless a run reading it has not finished (then False).

    The dataset row is locked first: a run inserted with `input_dataset_id` set takes a key-share lock
    on it through the foreign key, so a batch start and this delete cannot interleave."""
    await session.execute(select(Dataset.id).where(Dataset.id == dataset_id).with_for_update())
    busy = await session.scalar(
        select(Run.id).where(Run.input_dataset_id == dataset_id, Run.status.in_(_UNFINISHED)).limit(1)
    )
    if busy is not None:
        return False
    await session.execute(delete(Dataset).where(Dataset.id == dataset_id))
    return True


async def dataset_runs(
    session: AsyncSession, tenant_id: uuid.UUID, dataset_id: uuid.UUID, page: int, page_size: int
) -> list[Run]:
    """Runs whose input is the dataset, newest first, with tasks and version loaded."""
    q = (
        select(Run)
        .where(Run.tenant_id == tenant_id, Run.input_dataset_id == dataset_id)
        .order_by(Run.start_time.desc(), Run.id)
        .offset((page - 1) * page_size)
        .limit(page_size)
        .options(selectinload(Run.tasks), selectinload(Run.version))
    )
    return list((await session.scalars(q)).all())


async def tenant_output_file(
    session: AsyncSession, tenant_id: uuid.UUID, output_file_id: uuid.UUID
) -> OutputFile | None:
    return await session.scalar(
        select(OutputFile).where(OutputFile.id == output_file_id, OutputFile.tenant_id == tenant_id)
    )


async def output_files(
    session: AsyncSession, tenant_id: uuid.UUID, page: int, page_size: int | None
) -> list[OutputFile]:
    """Newest first; all of them when `page_size` is None."""
    q = (
        select(OutputFile)
        .where(OutputFile.tenant_id == tenant_id)
        .order_by(OutputFile.created_at.desc(), OutputFile.id)
    )
    if page_size is not None:
        q = q.offset((page - 1) * page_size).limit(page_size)
    return list((await session.scalars(q)).all())


async def line_counts(session: AsyncSession, file_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many lines each output file has (files without lines are absent: count 0)."""
    if not file_ids:
        return {}
    rows = await session.execute(
        select(OutputLine.output_file_id, func.count().label("lines"))
        .where(OutputLine.output_file_id.in_(file_ids))
        .group_by(OutputLine.output_file_id)
    )
    return {row.output_file_id: row.lines for row in rows}


async def output_lines(
    session: AsyncSession, output_file_id: uuid.UUID, after: int, limit: int
) -> list[tuple[int, dict[str, Any]]]:
    """Up to `limit` `(idx, line)` pairs with idx > `after`, in order (keyset paging; start at -1)."""
    rows = await session.execute(
        select(OutputLine.idx, OutputLine.line)
        .where(OutputLine.output_file_id == output_file_id, OutputLine.idx > after)
        .order_by(OutputLine.idx)
        .limit(limit)
    )
    return [(row.idx, row.line) for row in rows]


async def lock_output_file(
    session: AsyncSession, output_file_id: uuid.UUID, run_id: uuid.UUID | None
) -> tuple[uuid.UUID | None, str] | None:
    """Lock the output file's row; the triggering user and status of its batch run (None: no run)."""
    await session.execute(select(OutputFile.id).where(OutputFile.id == output_file_id).with_for_update())
    if run_id is None:
        return None
    row = (await session.execute(select(Run.triggered_by, Run.status).where(Run.id == run_id))).first()
    return (row.triggered_by, row.status) if row is not None else None


async def delete_output_file(session: AsyncSession, output_file_id: uuid.UUID) -> None:
    await session.execute(delete(OutputFile).where(OutputFile.id == output_file_id))
