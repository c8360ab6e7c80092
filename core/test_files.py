"""Test files (PySpur's `upload_test_files`, read back through `/files/…`): stored per workflow under
`<data dir>/test_files/<workflow id>/`, listed and read only by the workflow's tenant."""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from core.stored_workflows import get_workflow, test_files_dir
from core.workflow_versions import parse_id
from db import workflow_repo
from db.accounts import Principal
from errors import NotFound

# What `upload_test_files` makes of a name: no separators, no leading dot (so no "..", no hidden files).
STORED_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class StoredFile:
    name: str
    path: str  # relative to the data directory, as upload_test_files returned it
    size: int
    created: datetime
    workflow_id: str


def _listing(data_dir: Path, workflow_id: uuid.UUID) -> list[StoredFile]:
    folder = test_files_dir(data_dir, workflow_id)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and STORED_NAME.fullmatch(path.name):
            stat = path.stat()
            found.append(
                StoredFile(
                    name=path.name,
                    path=f"test_files/{workflow_id}/{path.name}",
                    size=stat.st_size,
                    created=datetime.fromtimestamp(stat.st_ctime, tz=UTC),
                    workflow_id=str(workflow_id),
                )
            )
    return found


async def workflow_files(
    session: AsyncSession, who: Principal, data_dir: Path, workflow_id: str
) -> list[StoredFile]:
    """The test files of one workflow of the caller's tenant.

    Raises:
        NotFound: no such workflow in the tenant.
    """
    wf = await get_workflow(session, who, workflow_id)
    return _listing(data_dir, wf.id)


async def tenant_files(session: AsyncSession, who: Principal, data_dir: Path) -> list[StoredFile]:
    """The test files of every workflow of the caller's tenant."""
    root = data_dir / "test_files"
    ids = []
    for folder in root.iterdir() if root.is_dir() else []:
        try:
            ids.append(uuid.UUID(folder.name))
        except ValueError:
            continue
    mine = await workflow_repo.tenant_workflow_ids(session, who.tenant_id, ids)
    return [f for wid in sorted(mine, key=str) for f in _listing(data_dir, wid)]


async def file_path(session: AsyncSession, who: Principal, data_dir: Path, relative: str) -> Path:
    """The stored file a `test_files/<workflow id>/<name>` path names, for the workflow's tenant only.

    Raises:
        NotFound: any other path, a workflow of another tenant, or no such file.
    """
    kind, _, rest = relative.partition("/")
    workflow_id, _, name = rest.partition("/")
    if kind != "test_files" or not STORED_NAME.fullmatch(name):
        raise NotFound("File not found")
    wf = await get_workflow(session, who, str(parse_id(workflow_id, "File")))
    path = test_files_dir(data_dir, wf.id) / name
    if not path.is_file():
        raise NotFound("File not found")
    return path


async def delete_file(
    session: AsyncSession, who: Principal, data_dir: Path, workflow_id: str, name: str
) -> None:
    """Raises:
    NotFound: no such workflow in the tenant, or no such file."""
    path = await file_path(session, who, data_dir, f"test_files/{workflow_id}/{name}")
    path.unlink(missing_ok=True)


async def delete_workflow_files(
    session: AsyncSession, who: Principal, data_dir: Path, workflow_id: str
) -> None:
    """Raises:
    NotFound: no such workflow in the tenant, or it has no test files."""
    wf = await get_workflow(session, who, workflow_id)
    folder = test_files_dir(data_dir, wf.id)
    if not folder.is_dir():
        raise NotFound("Workflow directory not found")
    shutil.rmtree(folder, ignore_errors=True)
