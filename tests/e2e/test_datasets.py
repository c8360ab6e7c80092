"""Datasets (`/ds/`) and output files (`/of/`) through HTTP, with batch results written straight to the DB."""

from __future__ import annotations

import io
import json
import random
import uuid
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import datasets as dataset_service
from db import batch_repo
from db.accounts import Principal, Role
from db.models import Dataset, DatasetRow, OutputFile, OutputLine, Run
from tests.conftest import Stack, Tenant, add_user

pytestmark = pytest.mark.e2e

CSV = b"question,answer\nwhat?,that\nwhy?,because\n"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def upload(api: httpx.AsyncClient, name: str, file_name: str, data: bytes, **kw: Any) -> httpx.Response:
    return await api.post("/ds/", params={"name": name}, files={"file": (file_name, data)}, **kw)


async def stored_datasets(db: async_sessionmaker[AsyncSession], name: str) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).where(Dataset.name == name)) or 0)


async def make_run(
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    status: str,
    **fields: Any,
) -> uuid.UUID:
    """A run row as the batch engine would leave it (status written directly: no execution behind it)."""
    wf = (await api.post("/wf/", json={"name": unique("batch")})).json()
    async with db() as session, session.begin():
        run = Run(
            tenant_id=tenant.tenant_id,
            workflow_id=uuid.UUID(wf["id"]),
            triggered_by=tenant.user_id,
            status=status,
            run_type="batch",
            **fields,
        )
        session.add(run)
    return run.id


async def set_status(db: async_sessionmaker[AsyncSession], run_id: uuid.UUID, status: str) -> None:
    async with db() as session, session.begin():
        await session.execute(update(Run).where(Run.id == run_id).values(status=status))


async def make_output_file(
    db: async_sessionmaker[AsyncSession], tenant: Tenant, run_id: uuid.UUID | None, lines: int
) -> uuid.UUID:
    """An output file with `lines` lines inserted in shuffled order (order must come from idx)."""
    order = list(range(lines))
    random.shuffle(order)
    async with db() as session, session.begin():
        of = OutputFile(tenant_id=tenant.tenant_id, run_id=run_id, file_name=f"output_{run_id}.jsonl")
        session.add(of)
        await session.flush()
        if run_id is not None:
            await session.execute(update(Run).where(Run.id == run_id).values(output_file_id=of.id))
        for start in range(0, lines, 1000):
            await session.execute(
                insert(OutputLine),
                [
                    {
                        "output_file_id": of.id,
                        "idx": i,
                        "line": {"_row": i, "_error": None, "n": {"v": f"é{i}"}},
                    }
                    for i in order[start : start + 1000]
                ],
            )
    return of.id


async def test_csv_upload_stores_every_row_in_order(
    api: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    name = unique("qa")
    resp = await api.post(
        "/ds/",
        params={"name": name, "description": "questions"},
        files={"file": ("../secret/dir/qa.csv", CSV, "text/csv")},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["name"] == name and body["description"] == "questions"
    assert body["filename"] == "qa.csv"  # the client's name without directories, never a server path
    assert body["format"] == "csv" and body["columns"] == ["question", "answer"] and body["row_count"] == 2
    assert body["created_at"] == body["updated_at"]

    who = Principal(tenant.tenant_id, tenant.user_id, Role.OWNER)
    async with db() as session:
        ds = await dataset_service.get_dataset(session, who, body["id"])
        assert await batch_repo.load_rows(session, ds.id, 0, 10) == [
            {"question": "what?", "answer": "that"},
            {"question": "why?", "answer": "because"},
        ]
        assert await batch_repo.load_rows(session, ds.id, 1, 10) == [
            {"question": "why?", "answer": "because"}
        ]
    assert (await api.get(f"/ds/{body['id']}/")).json() == body


async def test_jsonl_upload_takes_name_and_description_from_form_fields(api: httpx.AsyncClient) -> None:
    name = unique("lines")
    resp = await api.post(
        "/ds/",
        data={"name": name, "description": "from the form"},
        files={"file": ("rows.jsonl", b'{"x": 1}\n{"x": 2, "y": [true]}\n')},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["name"], body["description"], body["format"]) == (name, "from the form", "jsonl")
    assert body["columns"] == ["x", "y"] and body["row_count"] == 2


async def test_parquet_upload_rows_are_json_native(
    api: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"n": [1, 2, 3], "s": ["a", "b", None]}), sink)
    resp = await upload(api, unique("pq"), "t.parquet", sink.getvalue())
    assert resp.status_code == 200, resp.text
    async with db() as session:
        rows = await batch_repo.load_rows(session, uuid.UUID(resp.json()["id"]), 0, 100)
    assert rows == [{"n": 1, "s": "a"}, {"n": 2, "s": "b"}, {"n": 3, "s": None}]


@pytest.mark.parametrize(
    ("file_name", "data", "fragment"),
    [
        ("data.xlsx", b"a\n1\n", "must end in one of .csv, .jsonl, .ndjson, .parquet"),
        ("empty.csv", b"", "is empty"),
        ("header.csv", b"a,b\n", "has no rows"),
        ("dup.csv", b"a,a\n1,2\n", "duplicate column name 'a'"),
        ("short.csv", b"a,b\n1,2\n3\n", "Line 3: 1 fields, but the header has 2"),
        ("latin1.csv", b"a\n\xe9\n", "not valid UTF-8"),
        ("bad.jsonl", b'{"a": 1}\n{oops\n', "Line 2: not valid JSON"),
        ("nan.jsonl", b'{"a": NaN}\n', "NaN is not valid JSON"),
        ("fake.parquet", b"not parquet at all", "Not a readable Parquet file"),
        ("big-row.csv", b"a\n" + b"x" * (300 * 1024) + b"\n", "over the limit of 262144"),
    ],
)
async def test_bad_files_are_refused_with_422_and_nothing_is_stored(
    api: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], file_name: str, data: bytes, fragment: str
) -> None:
    name = unique("bad")
    resp = await upload(api, name, file_name, data)
    assert resp.status_code == 422, resp.text
    assert fragment in resp.json()["detail"]
    assert await stored_datasets(db, name) == 0


async def test_upload_without_a_name_gives_422(api: httpx.AsyncClient) -> None:
    resp = await api.post("/ds/", files={"file": ("a.csv", CSV)})
    assert resp.status_code == 422
    assert "name is required" in resp.json()["detail"]


async def test_duplicate_dataset_name_gives_409_and_keeps_the_first(
    api: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    name = unique("dup")
    first = await upload(api, name, "a.csv", CSV)
    assert first.status_code == 200
    again = await upload(api, name, "b.csv", b"z\n1\n")
    assert again.status_code == 409
    assert name in again.json()["detail"]
    assert await stored_datasets(db, name) == 1


async def test_upload_over_the_size_limit_gives_413_naming_the_limit(
    api: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    name = unique("huge")
    resp = await upload(api, name, "huge.csv", b"a\n" + b"1\n" * (5 * 1024 * 1024 + 1))
    assert resp.status_code == 413
    assert str(10 * 1024 * 1024) in resp.json()["detail"]
    assert await stored_datasets(db, name) == 0


async def test_list_is_newest_first_and_delete_removes_rows(
    api: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    older = (await upload(api, unique("old"), "a.csv", CSV)).json()
    newer = (await upload(api, unique("new"), "a.csv", CSV)).json()
    ids = [d["id"] for d in (await api.get("/ds/")).json()]
    assert ids.index(newer["id"]) < ids.index(older["id"])
    assert len((await api.get("/ds/", params={"page_size": 1})).json()) == 1

    resp = await api.delete(f"/ds/{older['id']}/")
    assert resp.status_code == 200 and resp.json() == {"message": "Dataset deleted"}
    assert (await api.get(f"/ds/{older['id']}/")).status_code == 404
    async with db() as session:
        left = await session.scalar(
            select(func.count()).where(DatasetRow.dataset_id == uuid.UUID(older["id"]))
        )
    assert left == 0


@pytest.mark.parametrize("dataset_id", ["not-a-uuid", "00000000-0000-4000-8000-00000000dead"])
async def test_unknown_dataset_gives_404(api: httpx.AsyncClient, dataset_id: str) -> None:
    for resp in (
        await api.get(f"/ds/{dataset_id}/"),
        await api.delete(f"/ds/{dataset_id}/"),
        await api.get(f"/ds/{dataset_id}/list_runs/"),
    ):
        assert resp.status_code == 404
        assert resp.json() == {"detail": "Dataset not found"}


async def test_datasets_are_invisible_to_other_tenants(api: httpx.AsyncClient, other_tenant: Tenant) -> None:
    ds = (await upload(api, unique("mine"), "a.csv", CSV)).json()
    hdr = other_tenant.headers
    assert (await api.get(f"/ds/{ds['id']}/", headers=hdr)).status_code == 404
    assert (await api.delete(f"/ds/{ds['id']}/", headers=hdr)).status_code == 404
    assert (await api.get(f"/ds/{ds['id']}/list_runs/", headers=hdr)).status_code == 404
    assert ds["id"] not in {d["id"] for d in (await api.get("/ds/", headers=hdr)).json()}
    # The same name is free in another tenant.
    assert (await upload(api, ds["name"], "a.csv", CSV, headers=hdr)).status_code == 200


async def test_dataset_delete_is_refused_while_a_run_reading_it_is_unfinished(
    api: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    ds = (await upload(api, unique("busy"), "a.csv", CSV)).json()
    ds_id = uuid.UUID(ds["id"])
    older = await make_run(api, db, tenant, "COMPLETED", input_dataset_id=ds_id)
    busy = await make_run(api, db, tenant, "RUNNING", input_dataset_id=ds_id)

    listed = (await api.get(f"/ds/{ds['id']}/list_runs/")).json()
    assert [r["id"] for r in listed] == [str(busy), str(older)]
    assert all(r["input_dataset_id"] == ds["id"] for r in listed)

    refused = await api.delete(f"/ds/{ds['id']}/")
    assert refused.status_code == 409
    assert "not finished" in refused.json()["detail"]
    await set_status(db, busy, "FAILED")
    assert (await api.delete(f"/ds/{ds['id']}/")).status_code == 200
    async with db() as session:
        assert await session.scalar(select(Run.input_dataset_id).where(Run.id == busy)) is None


async def test_a_user_may_delete_only_datasets_they_uploaded(
    api: httpx.AsyncClient, stack: Stack, tenant: Tenant
) -> None:
    member = await add_user(stack.database_url, tenant, "USER")
    admin = await add_user(stack.database_url, tenant, "ADMIN")
    owners = (await upload(api, unique("owners"), "a.csv", CSV)).json()
    assert (await api.delete(f"/ds/{owners['id']}/", headers=member.headers)).status_code == 403
    own = (await upload(api, unique("own"), "a.csv", CSV, headers=member.headers)).json()
    assert (await api.delete(f"/ds/{own['id']}/", headers=member.headers)).status_code == 200
    assert (await api.delete(f"/ds/{owners['id']}/", headers=admin.headers)).status_code == 200


async def test_dataset_routes_work_under_api_prefix_and_without_trailing_slash(
    api: httpx.AsyncClient,
) -> None:
    ds = (await upload(api, unique("slash"), "a.csv", CSV)).json()
    assert (await api.get("/api/ds")).status_code == 200
    assert (await api.get(f"/api/ds/{ds['id']}")).json()["id"] == ds["id"]
    assert (await api.get("/of")).status_code == 200


async def test_output_file_downloads_every_line_in_order_as_json_lines(
    api: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    run_id = await make_run(api, db, tenant, "COMPLETED")
    of_id = await make_output_file(db, tenant, run_id, 2500)

    meta = (await api.get(f"/of/{of_id}/")).json()
    assert meta["file_name"] == f"output_{run_id}.jsonl"
    assert (meta["run_id"], meta["line_count"]) == (str(run_id), 2500)
    listed = {f["id"]: f for f in (await api.get("/of/")).json()}
    assert listed[str(of_id)] == meta

    resp = await api.get(f"/of/{of_id}/download/")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/x-ndjson"
    assert resp.headers["content-disposition"] == f'attachment; filename="output_{run_id}.jsonl"'
    assert resp.text.endswith("}\n")
    lines = resp.text.split("\n")[:-1]
    assert len(lines) == 2500
    # Compact, UTF-8 as is (key order is JSONB's, not the writer's).
    assert " " not in lines[0] and "é0" in lines[0]
    assert json.loads(lines[0]) == {"_row": 0, "_error": None, "n": {"v": "é0"}}
    assert [json.loads(line)["_row"] for line in lines] == list(range(2500))


async def test_empty_output_file_downloads_as_an_empty_body(
    api: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    of_id = await make_output_file(db, tenant, None, 0)
    resp = await api.get(f"/of/{of_id}/download/")
    assert resp.status_code == 200 and resp.content == b""
    assert (await api.get(f"/of/{of_id}/")).json()["line_count"] == 0


async def test_output_file_delete_waits_for_its_run_and_keeps_the_run(
    api: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    run_id = await make_run(api, db, tenant, "RUNNING")
    of_id = await make_output_file(db, tenant, run_id, 3)

    refused = await api.delete(f"/of/{of_id}/")
    assert refused.status_code == 409
    assert "RUNNING" in refused.json()["detail"]
    await set_status(db, run_id, "COMPLETED")
    resp = await api.delete(f"/of/{of_id}/")
    assert resp.status_code == 200 and resp.json() == {"message": "Output file deleted"}

    assert (await api.get(f"/of/{of_id}/")).status_code == 404
    run = (await api.get(f"/run/{run_id}/")).json()
    assert run["status"] == "COMPLETED" and run["output_file_id"] is None
    async with db() as session:
        lines = await session.scalar(select(func.count()).where(OutputLine.output_file_id == of_id))
    assert lines == 0


async def test_a_user_may_delete_only_output_files_of_runs_they_triggered(
    api: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], stack: Stack, tenant: Tenant
) -> None:
    member = await add_user(stack.database_url, tenant, "USER")
    of_id = await make_output_file(db, tenant, await make_run(api, db, tenant, "COMPLETED"), 1)
    assert (await api.delete(f"/of/{of_id}/", headers=member.headers)).status_code == 403
    assert (await api.delete(f"/of/{of_id}/")).status_code == 200


async def test_output_files_are_invisible_to_other_tenants(
    api: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], tenant: Tenant, other_tenant: Tenant
) -> None:
    of_id = await make_output_file(db, tenant, None, 1)
    hdr = other_tenant.headers
    for resp in (
        await api.get(f"/of/{of_id}/", headers=hdr),
        await api.get(f"/of/{of_id}/download/", headers=hdr),
        await api.delete(f"/of/{of_id}/", headers=hdr),
    ):
        assert resp.status_code == 404
        assert resp.json() == {"detail": "Output file not found"}
    assert str(of_id) not in {f["id"] for f in (await api.get("/of/", headers=hdr)).json()}
    assert (await api.get("/of/not-a-uuid/")).status_code == 404


async def test_batch_pages_of_large_rows_stop_at_the_byte_budget(
    api: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    big = "z" * 100_000
    data = ("text\n" + "".join(f"{big}{i}\n" for i in range(12))).encode()
    resp = await upload(api, unique("big"), "big.csv", data)
    assert resp.status_code == 200, resp.text
    async with db() as session:
        page = await batch_repo.load_rows(session, uuid.UUID(resp.json()["id"]), 0, 100)
        assert 1 <= len(page) <= 6  # about 512 KB of rows, so the page fits one history payload
        assert page[0]["text"] == big + "0"
        one = await batch_repo.load_rows(session, uuid.UUID(resp.json()["id"]), 3, 100, max_bytes=10)
        assert [r["text"] for r in one] == [big + "3"]  # never an empty page
