"""Datasets (uploaded tables stored as rows) and output files (batch results stored as JSON lines)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import PurePosixPath

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import access
from core.dataset_files import parse_dataset
from core.workflow_versions import parse_id
from db import dataset_repo
from db.accounts import Principal
from db.models import Dataset, OutputFile, Run
from errors import Conflict, InvalidInput, NotFound
from run_status import is_terminal

DOWNLOAD_PAGE = 1000  # output lines read per query while streaming a download


def upload_name(raw: str | None) -> str:
    """The client's file name without any directories (a name, never a path)."""
    name = PurePosixPath((raw or "").replace("\\", "/")).name.strip()
    return (name or "dataset")[-500:]  # the column's size; the end keeps the extension


# ---- datasets --------------------------------------------------------------------------------------


async def create_dataset(
    session: AsyncSession, who: Principal, *, name: str, description: str, file_name: str, data: bytes
) -> Dataset:
    """Parse the upload and store the dataset with all its rows in one transaction.

    Raises:
        InvalidInput: empty name, or the file cannot be parsed (see `dataset_files`); nothing is stored.
        Conflict: the tenant already has a dataset with this name.
    """
    name = name.strip()
    if not name:
        raise InvalidInput("A dataset name is required")
    if await dataset_repo.name_taken(session, who.tenant_id, name):
        raise Conflict(f"A dataset named '{name}' already exists")
    # Parsing a large file is CPU work; keep the event loop serving other requests meanwhile.
    parsed = await asyncio.to_thread(parse_dataset, file_name, data)
    ds = Dataset(
        id=uuid.uuid4(),
        tenant_id=who.tenant_id,
        name=name,
        description=description,
        file_name=file_name,
        format=parsed.format,
        columns=parsed.columns,
        row_count=len(parsed.rows),
        size_bytes=len(data),
        uploaded_by=who.user_id,
    )
    if not await dataset_repo.store(session, ds, parsed.rows):
        raise Conflict(f"A dataset named '{name}' already exists")
    return ds


async def get_dataset(session: AsyncSession, who: Principal, dataset_id: str | uuid.UUID) -> Dataset:
    """The caller's tenant's dataset.

    Raises:
        NotFound: "Dataset not found" for unknown or malformed ids and other tenants' datasets.
    """
    ds = await dataset_repo.tenant_dataset(session, who.tenant_id, parse_id(dataset_id, "Dataset"))
    if ds is None:
        raise NotFound("Dataset not found")
    return ds


async def list_datasets(
    session: AsyncSession, who: Principal, *, page: int = 1, page_size: int | None = None
) -> list[Dataset]:
    """Newest first; all of them when `page_size` is None (PySpur's list is not paginated)."""
    return await dataset_repo.datasets(session, who.tenant_id, page, page_size)


async def delete_dataset(session: AsyncSession, who: Principal, dataset_id: str) -> None:
    """Delete a dataset and its rows; runs that used it keep existing (their `input_dataset_id` is nulled).

    The dataset row is locked first: a run inserted with `input_dataset_id` set takes a key-share lock on
    it through the foreign key, so a batch start and this delete cannot interleave.

    Raises:
        NotFound: as `get_dataset`.
        Forbidden: a USER deleting a dataset someone else uploaded.
        Conflict: a run that reads this dataset has not finished.
    """
    ds = await get_dataset(session, who, dataset_id)
    access.ensure_may_change(
        who, ds.uploaded_by, "Only the user who uploaded this dataset, or an owner or admin, may delete it"
    )
    if not await dataset_repo.delete_unused_dataset(session, ds.id):
        raise Conflict("The dataset is used by runs that have not finished; cancel them or wait, then delete")


async def dataset_runs(
    session: AsyncSession, who: Principal, dataset_id: str, *, page: int, page_size: int
) -> list[Run]:
    """Runs whose input is the dataset, newest first, with tasks and version loaded for `presenters.run`.

    Raises:
        NotFound: as `get_dataset`.
    """
    ds = await get_dataset(session, who, dataset_id)
    return await dataset_repo.dataset_runs(session, who.tenant_id, ds.id, page, page_size)


# ---- output files ----------------------------------------------------------------------------------


async def get_output_file(
    session: AsyncSession, who: Principal, output_file_id: str | uuid.UUID
) -> OutputFile:
    """The caller's tenant's output file.

    Raises:
        NotFound: "Output file not found" for unknown or malformed ids and other tenants' files.
    """
    of = await dataset_repo.tenant_output_file(
        session, who.tenant_id, parse_id(output_file_id, "Output file")
    )
    if of is None:
        raise NotFound("Output file not found")
    return of


async def list_output_files(
    session: AsyncSession, who: Principal, *, page: int = 1, page_size: int | None = None
) -> list[OutputFile]:
    """Newest first; all of them when `page_size` is None."""
    return await dataset_repo.output_files(session, who.tenant_id, page, page_size)


async def stream_lines(
    sessions: async_sessionmaker[AsyncSession], output_file_id: uuid.UUID, page: int = DOWNLOAD_PAGE
) -> AsyncIterator[bytes]:
    """The file as JSON Lines, one compact JSON object per line, read a page at a time.

    Each page uses its own short session, so a slow client never holds a database connection between
    pages, and a file of any length is never loaded at once."""
    after = -1
    while True:
        async with sessions() as session:
            lines = await dataset_repo.output_lines(session, output_file_id, after, page)
        if not lines:
            return
        yield "".join(
            json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for _, line in lines
        ).encode()
        after = lines[-1][0]
        if len(lines) < page:
            return


async def delete_output_file(session: AsyncSession, who: Principal, output_file_id: str) -> None:
    """Delete an output file and its lines; its batch run is kept (its `output_file_id` becomes null).

    Raises:
        NotFound: as `get_output_file`.
        Forbidden: a USER deleting the output of a run someone else triggered (or of a deleted run).
        Conflict: the batch run writing the file has not finished.
    """
    of = await get_output_file(session, who, output_file_id)
    run = await dataset_repo.lock_output_file(session, of.id, of.run_id)
    access.ensure_may_change(
        who,
        run[0] if run is not None else None,
        "Only the user who started this output file's batch run, or an owner or admin, may delete it",
    )
    if run is not None and not is_terminal(run[1]):
        raise Conflict(f"The run writing this output file is {run[1]}; cancel it or wait, then delete")
    await dataset_repo.delete_output_file(session, of.id)
