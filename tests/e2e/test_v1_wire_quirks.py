"""Raw HTTP for what the ksapi client sends but cannot be told to vary, and bad input it never sends."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import Tenant
from tests.e2e.v1_client import raw

pytestmark = pytest.mark.e2e


def definition(live_api: str, tenant: Tenant) -> dict[str, Any]:
    with raw(live_api, tenant.key) as http:
        root = http.get("/v1/folders").json()["items"][0]["path_part_id"]
        resp = http.post(
            "/v1/workflow-definitions",
            json={
                "name": f"q-{uuid.uuid4().hex[:8]}",
                "parent_path_part_id": root,
                "approval_required": False,
            },
        )
        assert resp.status_code == 201, resp.text
        body: dict[str, Any] = resp.json()
        return body


def test_create_run_accepts_an_empty_body_with_no_content_type(live_api: str, tenant: Tenant) -> None:
    d = definition(live_api, tenant)
    with raw(live_api, tenant.key) as http:
        resp = http.post(f"/v1/workflow-definitions/{d['id']}/runs", content=b"")
        assert resp.status_code == 201, resp.text
        assert resp.json()["execution_state"] == "NOT_STARTED"
        assert resp.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "text, expected", [("True", True), ("False", False), ("true", True), ("FALSE", False)]
)
def test_create_run_parses_python_style_form_booleans(
    live_api: str, tenant: Tenant, text: str, expected: bool
) -> None:
    d = definition(live_api, tenant)
    with raw(live_api, tenant.key) as http:
        resp = http.post(f"/v1/workflow-definitions/{d['id']}/runs", files={"auto_start": (None, text)})
        assert resp.status_code == 201, resp.text
        assert resp.json()["auto_start"] is expected


def test_non_boolean_boolean_and_over_long_fields_are_422_and_store_nothing(
    live_api: str, tenant: Tenant
) -> None:
    d = definition(live_api, tenant)
    url = f"/v1/workflow-definitions/{d['id']}/runs"
    with raw(live_api, tenant.key) as http:
        for fields in ({"auto_start": "maybe"}, {"name": "n" * 256}, {"user_message": "m" * 4001}):
            resp = http.post(url, files={k: (None, v) for k, v in fields.items()})
            assert resp.status_code == 422, (fields, resp.text)
            assert isinstance(resp.json()["detail"], list)
        assert http.get(url).json()["total"] == 0


def test_start_with_json_content_type_and_empty_body_is_no_body(live_api: str, tenant: Tenant) -> None:
    d = definition(live_api, tenant)
    with raw(live_api, tenant.key) as http:
        run = http.post(f"/v1/workflow-definitions/{d['id']}/runs").json()
        resp = http.post(
            f"/v1/workflow-runs/{run['id']}/start", content=b"", headers={"content-type": "application/json"}
        )
        assert resp.status_code == 202, resp.text
        assert resp.headers["location"] == f"/v1/workflow-runs/{run['id']}"


def test_start_with_a_bad_body_is_422_and_leaves_the_draft(live_api: str, tenant: Tenant) -> None:
    d = definition(live_api, tenant)
    with raw(live_api, tenant.key) as http:
        run = http.post(f"/v1/workflow-definitions/{d['id']}/runs").json()
        url = f"/v1/workflow-runs/{run['id']}/start"
        for body in (b'{"user_message": "' + b"m" * 4001 + b'"}', b"{not json", b'{"user_message": 5}'):
            resp = http.post(url, content=body, headers={"content-type": "application/json"})
            assert resp.status_code == 422, (body[:40], resp.text)
            assert isinstance(resp.json()["detail"], list)
        assert http.get(f"/v1/workflow-runs/{run['id']}").json()["execution_state"] == "NOT_STARTED"


def test_bare_cookie_and_named_cookie_both_authenticate(live_api: str, tenant: Tenant) -> None:
    with raw(live_api) as http:
        assert http.get("/v1/users/me", headers={"cookie": tenant.key}).status_code == 200
        assert http.get("/v1/users/me", headers={"cookie": f"ks_uat={tenant.key}"}).status_code == 200
        missing = http.get("/v1/users/me")
        assert missing.status_code == 401
        assert missing.json()["code"] == "unauthorized" and missing.headers["x-request-id"]


@pytest.mark.parametrize(
    "stamp",
    [
        "2025-01-02T03:04:05.000000+0000",
        "2025-01-02T03:04:05.000000",
        "2025-01-02T03:04:05Z",
        "2025-01-02T04:04:05+01:00",
    ],
)
def test_list_accepts_each_timezone_format_the_client_may_send(
    live_api: str, tenant: Tenant, stamp: str
) -> None:
    with raw(live_api, tenant.key) as http:
        resp = http.get("/v1/workflow-runs", params={"created_after": stamp, "limit": 1})
        assert resp.status_code == 200, resp.text
        assert resp.json()["limit"] == 1


def test_bad_ids_enums_and_pages_are_422_in_fastapis_list_shape(live_api: str, tenant: Tenant) -> None:
    with raw(live_api, tenant.key) as http:
        for path, params in (
            ("/v1/workflow-runs/not-a-uuid", {}),
            ("/v1/workflow-runs", {"state": "RUNNING"}),
            ("/v1/workflow-runs", {"approval_state": "PENDING"}),
            ("/v1/workflow-runs", {"limit": 0}),
            ("/v1/workflow-runs", {"limit": 101}),
            ("/v1/workflow-runs", {"offset": -1}),
            ("/v1/workflow-runs", {"mine": "perhaps"}),
            ("/v1/workflow-runs", {"sort_by": "NAME"}),
        ):
            resp = http.get(path, params=params)
            assert resp.status_code == 422, (path, params, resp.text)
            assert isinstance(resp.json()["detail"], list) and resp.headers["x-request-id"]
        assert http.get("/v1/workflow-runs/summary").status_code == 200


def test_request_bodies_the_client_refuses_to_send_are_422(live_api: str, tenant: Tenant) -> None:
    d = definition(live_api, tenant)
    with raw(live_api, tenant.key) as http:
        run = http.post(f"/v1/workflow-definitions/{d['id']}/runs").json()
        rid = run["id"]
        for path, body in (
            (f"/v1/workflow-runs/{rid}/callback", {"status": "RUNNING"}),
            (f"/v1/workflow-runs/{rid}/approval", {"state": "pending"}),
            (f"/v1/workflow-runs/{rid}/clone", {}),
            (f"/v1/workflow-runs/{rid}/clone", {"include_inputs": "true"}),
        ):
            resp = http.post(path, json=body)
            assert resp.status_code == 422, (path, body, resp.text)
        patches: list[dict[str, Any]] = [
            {"name": ""},
            {"auto_start": "false"},
            {"name": 123},
            {"input_scope": ["x"]},
        ]
        for patch in patches:
            resp = http.patch(f"/v1/workflow-runs/{rid}", json=patch)
            assert resp.status_code == 422, (patch, resp.text)
        empty = http.patch(f"/v1/workflow-runs/{rid}", json={"name": None})
        assert empty.status_code == 400 and empty.json()["code"] == "bad_request"
        after = http.get(f"/v1/workflow-runs/{rid}").json()
        assert after["name"] == run["name"] and after["auto_start"] is False


def test_error_bodies_carry_code_and_request_id_and_echo_the_callers_id(
    live_api: str, tenant: Tenant
) -> None:
    with raw(live_api, tenant.key) as http:
        resp = http.get(f"/v1/workflow-runs/{uuid.uuid4()}", headers={"x-request-id": "trace-123"})
        assert resp.status_code == 404
        assert resp.json() == {
            "detail": "Workflow run not found",
            "code": "not_found",
            "request_id": "trace-123",
        }
        assert resp.headers["x-request-id"] == "trace-123"
        # The workflow API keeps PySpur's body.
        assert http.get(f"/run/{uuid.uuid4()}/").json() == {"detail": "Run not found"}
