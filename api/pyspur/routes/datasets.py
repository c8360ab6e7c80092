"""`/ds/` datasets and `/of/` output files (PySpur's Dataset and Output File Management APIs)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import StreamingResponse

from api.deps import Page, PageSize, PrincipalDep, SessionDep, SettingsDep
from api.guard import check_form
from api.pyspur import presenters
from api.pyspur.schemas import DatasetResponse, MessageResponse, OutputFileResponse, RunResponse
from core import datasets
from db import dataset_repo
from errors import InvalidInput, PayloadTooLarge

ds_router = APIRouter(prefix="/ds", tags=["datasets"])
of_router = APIRouter(prefix="/of", tags=["output files"])

# PySpur's lists are not paginated; page_size is optional here and its absence means "all".
OptionalPageSize = Annotated[int | None, Query(ge=1, le=100)]
Name = Annotated[str | None, Query(max_length=500)]
FormName = Annotated[str | None, Form(alias="name", max_length=500)]


@ds_router.post("/", response_model=DatasetResponse)
async def upload_dataset(
    session: SessionDep,
    who: PrincipalDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File()],
    name: Name = None,
    description: Annotated[str | None, Query()] = None,
    form_name: FormName = None,
    form_description: Annotated[str | None, Form(alias="description")] = None,
) -> DatasetResponse:
    """Upload a CSV, JSON Lines or Parquet file; name and description come in the query string (as
    PySpur) or as form fields."""
    check_form(name=form_name, description=form_description, filename=file.filename)
    name = name if name is not None else form_name
    if name is None:
        raise InvalidInput("A dataset name is required: pass ?name=... or a 'name' form field")
    data = await file.read(settings.upload_max_bytes + 1)
    if len(data) > settings.upload_max_bytes:
        raise PayloadTooLarge(f"The dataset file exceeds the limit of {settings.upload_max_bytes} bytes")
    ds = await datasets.create_dataset(
        session,
        who,
        name=name,
        description=description if description is not None else (form_description or ""),
        file_name=datasets.upload_name(file.filename),
        data=data,
    )
    return presenters.dataset(ds)


@ds_router.get("/", response_model=list[DatasetResponse])
async def list_datasets(
    session: SessionDep, who: PrincipalDep, page: Page = 1, page_size: OptionalPageSize = None
) -> list[DatasetResponse]:
    rows = await datasets.list_datasets(session, who, page=page, page_size=page_size)
    return [presenters.dataset(ds) for ds in rows]


@ds_router.get("/{dataset_id}/", response_model=DatasetResponse)
async def get_dataset(dataset_id: str, session: SessionDep, who: PrincipalDep) -> DatasetResponse:
    return presenters.dataset(await datasets.get_dataset(session, who, dataset_id))


@ds_router.delete("/{dataset_id}/", response_model=MessageResponse)
async def delete_dataset(dataset_id: str, session: SessionDep, who: PrincipalDep) -> MessageResponse:
    await datasets.delete_dataset(session, who, dataset_id)
    return MessageResponse(message="Dataset deleted")


@ds_router.get("/{dataset_id}/list_runs/", response_model=list[RunResponse])
async def list_dataset_runs(
    dataset_id: str, session: SessionDep, who: PrincipalDep, page: Page = 1, page_size: PageSize = 10
) -> list[RunResponse]:
    runs = await datasets.dataset_runs(session, who, dataset_id, page=page, page_size=page_size)
    return [presenters.run(r) for r in runs]


@of_router.get("/", response_model=list[OutputFileResponse])
async def list_output_files(
    session: SessionDep, who: PrincipalDep, page: Page = 1, page_size: OptionalPageSize = None
) -> list[OutputFileResponse]:
    files = await datasets.list_output_files(session, who, page=page, page_size=page_size)
    counts = await dataset_repo.line_counts(session, [of.id for of in files])
    return [presenters.output_file(of, counts.get(of.id, 0)) for of in files]


@of_router.get("/{output_file_id}/", response_model=OutputFileResponse)
async def get_output_file(output_file_id: str, session: SessionDep, who: PrincipalDep) -> OutputFileResponse:
    of = await datasets.get_output_file(session, who, output_file_id)
    counts = await dataset_repo.line_counts(session, [of.id])
    return presenters.output_file(of, counts.get(of.id, 0))


@of_router.get("/{output_file_id}/download/")
async def download_output_file(
    output_file_id: str, request: Request, session: SessionDep, who: PrincipalDep
) -> StreamingResponse:
    """The file as JSON Lines (`application/x-ndjson`), streamed in dataset order."""
    of = await datasets.get_output_file(session, who, output_file_id)
    return StreamingResponse(
        datasets.stream_lines(request.app.state.sessions, of.id),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": _attachment(of.file_name)},
    )


@of_router.delete("/{output_file_id}/", response_model=MessageResponse)
async def delete_output_file(output_file_id: str, session: SessionDep, who: PrincipalDep) -> MessageResponse:
    await datasets.delete_output_file(session, who, output_file_id)
    return MessageResponse(message="Output file deleted")


def _attachment(file_name: str) -> str:
    # Quotes, backslashes and control characters would end or break the header value.
    safe = "".join(c for c in file_name if c.isprintable() and c not in '"\\') or "output.jsonl"
    if safe.isascii():
        return f'attachment; filename="{safe}"'
    fallback = safe.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(safe)}"
