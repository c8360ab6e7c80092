"""What a v1 run needs to exist: `/v1/folders`, `/v1/documents/ingest`, `/v1/api-keys`, `/v1/users/me`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile

from api.deps import ClientDep, PrincipalDep, SessionDep, SettingsDep
from api.guard import check_form
from api.v1 import presenters as present
from api.v1 import schemas as w
from api.v1.routes.runs import Limit, Offset
from core import v1_drafts as drafts
from core import v1_resources
from core import v1_tags as tagging
from db.models import Folder
from errors import BadRequest, PayloadTooLarge

folders = APIRouter(prefix="/v1/folders", tags=["v1 folders"])
documents = APIRouter(prefix="/v1/documents", tags=["v1 documents"])
api_keys = APIRouter(prefix="/v1/api-keys", tags=["v1 api keys"])
users = APIRouter(prefix="/v1/users", tags=["v1 users"])


@folders.post("", status_code=201, response_model=w.FolderResponse)
async def create_folder(
    body: w.CreateFolderRequest, session: SessionDep, who: PrincipalDep
) -> w.FolderResponse:
    return present.folder(await v1_resources.create_folder(session, who, body.name, body.parent_path_part_id))


@folders.get("", response_model=w.Page[w.FolderResponse])
async def list_folders(
    session: SessionDep,
    who: PrincipalDep,
    parent_path_part_id: uuid.UUID | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> w.Page[w.FolderResponse]:
    """Folders under `parent_path_part_id` (default: the tenant's root folder)."""
    rows, total = await v1_resources.list_folders(session, who, parent_path_part_id, limit, offset)
    return w.Page[w.FolderResponse](
        items=[present.folder(f) for f in rows], total=total, limit=limit, offset=offset
    )


@folders.get("/{folder_id}", response_model=w.FolderResponse)
async def get_folder(folder_id: uuid.UUID, session: SessionDep, who: PrincipalDep) -> w.FolderResponse:
    return present.folder(await v1_resources.folder_by_any_id(session, who, folder_id))


@folders.get("/{folder_id}/contents")
async def folder_contents(
    folder_id: uuid.UUID, session: SessionDep, who: PrincipalDep, limit: Limit = 20, offset: Offset = 0
) -> dict[str, Any]:
    """Sub-folders and documents, each with its `part_type`."""
    folder = await v1_resources.folder_by_any_id(session, who, folder_id)
    rows, total = await v1_resources.folder_contents(session, who, folder, limit, offset)
    items = [
        (present.folder(r) if isinstance(r, Folder) else present.document(r)).model_dump(mode="json")
        for r in rows
    ]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@folders.delete("/{folder_id}", status_code=204)
async def delete_folder(folder_id: uuid.UUID, session: SessionDep, who: PrincipalDep) -> Response:
    await v1_resources.delete_folder(session, who, folder_id)
    return Response(status_code=204)


@documents.post("/ingest", status_code=201, response_model=w.IngestDocumentResponse)
async def ingest_document(
    session: SessionDep,
    client: ClientDep,
    settings: SettingsDep,
    who: PrincipalDep,
    file: Annotated[UploadFile, File()],
    path_part_id: Annotated[uuid.UUID, Form()],
    name: Annotated[str | None, Form(min_length=1, max_length=255)] = None,
    tag_ids: Annotated[list[str] | None, Form()] = None,
    idempotency_key: Annotated[str | None, Form()] = None,
    ingestion_mode: Annotated[str | None, Form()] = None,
    chunk_type: Annotated[str | None, Form()] = None,
    secondary_taxonomy: Annotated[str | None, Form()] = None,
    page_dpi: Annotated[str | None, Form()] = None,
    workflow_run_id: Annotated[str | None, Form()] = None,
    workflow_definition_id: Annotated[str | None, Form()] = None,
) -> w.IngestDocumentResponse:
    """Store the upload and start its ingestion (a Temporal workflow). Into a run's `inputs/` folder,
    the run is PENDING until every upload settles. `tag_ids` tag the new document; the chunking and
    agent-context options are not modelled and are refused rather than ignored."""
    check_form(name=name, filename=file.filename, content_type=file.content_type)
    unsupported = {
        "idempotency_key": idempotency_key,
        "ingestion_mode": ingestion_mode,
        "chunk_type": chunk_type,
        "secondary_taxonomy": secondary_taxonomy,
        "page_dpi": page_dpi,
        "workflow_run_id": workflow_run_id,
        "workflow_definition_id": workflow_definition_id,
    }
    given = sorted(k for k, v in unsupported.items() if v is not None)
    if given:
        raise BadRequest(
            f"Not supported by this service: {', '.join(given)} (text is extracted, not chunked)"
        )
    tags = _tag_ids(tag_ids)
    content = await file.read()
    if len(content) > settings.upload_max_bytes:
        raise PayloadTooLarge(f"The file exceeds {settings.upload_max_bytes} bytes")
    folder = await v1_resources.folder_by_any_id(session, who, path_part_id)
    doc = await v1_resources.create_upload(
        session, who, folder, name or file.filename or "upload", content, file.content_type
    )
    if tags:
        await tagging.set_path_part_tags(session, who, doc.path_part_id, tags)
    await session.commit()  # the ingestion workflow reads the document, so it is stored first
    # A start Temporal refuses fails the upload and settles its draft (never left PENDING), then 503.
    await drafts.start_ingestions(session, client, settings, [doc])
    return w.IngestDocumentResponse(
        workflow_id=doc.ingest_workflow_id or "", document_id=doc.id, document_version_id=doc.version_id
    )


def _tag_ids(raw: list[str] | None) -> list[uuid.UUID]:
    """ksapi sends the list comma-separated in one form field; repeated fields are accepted too."""
    try:
        return [uuid.UUID(part.strip()) for value in raw or [] for part in value.split(",") if part.strip()]
    except ValueError:
        raise BadRequest("tag_ids: not a list of UUIDs") from None


@documents.get("/{document_id}", response_model=w.DocumentResponse)
async def get_document(document_id: uuid.UUID, session: SessionDep, who: PrincipalDep) -> w.DocumentResponse:
    return present.document(await v1_resources.document_by_any_id(session, who, document_id))


@documents.delete("/{document_id}", status_code=204)
async def delete_document(
    document_id: uuid.UUID, session: SessionDep, client: ClientDep, settings: SettingsDep, who: PrincipalDep
) -> Response:
    """A draft that waited on the deleted upload settles now (NOT_STARTED, auto-start, or FAILED)."""
    run_id = (await v1_resources.document_by_any_id(session, who, document_id)).run_id
    await v1_resources.delete_document(session, who, document_id)
    if run_id is not None:
        await drafts.settle_draft(session, client, settings, run_id)
    return Response(status_code=204)


@api_keys.post("", status_code=201, response_model=w.CreateApiKeyResponse)
async def create_api_key(
    body: w.CreateApiKeyRequest, session: SessionDep, who: PrincipalDep
) -> w.CreateApiKeyResponse:
    """The plaintext key is in this response only; it is stored hashed."""
    key, plaintext = await v1_resources.create_api_key(session, who, body.name, body.expires_at)
    return w.CreateApiKeyResponse(
        id=key.id,
        name=key.name,
        key=plaintext,
        key_suffix=key.prefix,
        created_at=key.created_at,
        expires_at=key.expires_at,
    )


@api_keys.get("", response_model=list[w.ApiKeyResponse])
async def list_api_keys(session: SessionDep, who: PrincipalDep) -> list[w.ApiKeyResponse]:
    return [present.api_key(k) for k in await v1_resources.list_api_keys(session, who)]


@api_keys.delete("/{api_key_id}", status_code=204)
async def delete_api_key(api_key_id: uuid.UUID, session: SessionDep, who: PrincipalDep) -> Response:
    await v1_resources.delete_api_key(session, who, api_key_id)
    return Response(status_code=204)


@users.get("/me", response_model=w.UserResponse)
async def me(session: SessionDep, who: PrincipalDep) -> w.UserResponse:
    return present.user(await v1_resources.me(session, who))
