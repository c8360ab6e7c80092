"""`/files/`: the test files uploaded through `/wf/upload_test_files/`, per workflow, for its tenant only
(PySpur's file routes; this service keeps no other files there)."""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.deps import PrincipalDep, SessionDep, SettingsDep
from api.pyspur.schemas import FileResponseSchema
from core import test_files
from core.test_files import StoredFile

router = APIRouter(prefix="/files", tags=["files"])

# Shown inline (previews in the run modal); anything else, HTML and SVG included, is a download, so an
# uploaded file never runs script in the service's origin.
_INLINE = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain", "text/csv")


def _schema(f: StoredFile) -> FileResponseSchema:
    return FileResponseSchema(
        name=f.name, path=f.path, size=f.size, created=f.created, workflow_id=f.workflow_id
    )


@router.get("/", response_model=list[FileResponseSchema])
async def list_all_files(
    session: SessionDep, who: PrincipalDep, settings: SettingsDep
) -> list[FileResponseSchema]:
    return [_schema(f) for f in await test_files.tenant_files(session, who, settings.resolved_data_dir)]


@router.get("/{workflow_id}", response_model=list[FileResponseSchema])
async def list_workflow_files(
    workflow_id: str, session: SessionDep, who: PrincipalDep, settings: SettingsDep
) -> list[FileResponseSchema]:
    files = await test_files.workflow_files(session, who, settings.resolved_data_dir, workflow_id)
    return [_schema(f) for f in files]


@router.delete("/{workflow_id}/{filename}")
async def delete_file(
    workflow_id: str, filename: str, session: SessionDep, who: PrincipalDep, settings: SettingsDep
) -> dict[str, str]:
    await test_files.delete_file(session, who, settings.resolved_data_dir, workflow_id, filename)
    return {"message": "File deleted successfully"}


@router.delete("/{workflow_id}")
async def delete_workflow_files(
    workflow_id: str, session: SessionDep, who: PrincipalDep, settings: SettingsDep
) -> dict[str, str]:
    await test_files.delete_workflow_files(session, who, settings.resolved_data_dir, workflow_id)
    return {"message": "All workflow files deleted successfully"}


@router.get("/{file_path:path}", response_class=FileResponse)
async def get_file(
    file_path: str, session: SessionDep, who: PrincipalDep, settings: SettingsDep
) -> FileResponse:
    path = await test_files.file_path(session, who, settings.resolved_data_dir, file_path)
    media_type, _ = mimetypes.guess_type(path.name)
    inline = media_type in _INLINE
    return FileResponse(
        path,
        media_type=media_type if inline else "application/octet-stream",
        filename=path.name,
        content_disposition_type="inline" if inline else "attachment",
        headers={"X-Content-Type-Options": "nosniff"},
    )
