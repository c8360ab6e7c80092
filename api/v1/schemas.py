"""Wire models of the v1 API, with ksapi 3.18.2's field names, enums and strictness."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

import run_status as states

if TYPE_CHECKING:
    ExecutionState = str
    ApprovalState = str
else:
    # Literals (not the enums) keep the wire schema and the validation errors ksapi knows; their
    # values come from the state module, in its order.
    ExecutionState = Literal[tuple(s.value for s in states.ExecutionState)]
    ApprovalState = Literal[tuple(s.value for s in states.ApprovalState)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=255)]
Message = Annotated[StrictStr, Field(max_length=4000)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- requests ------------------------------------------------------------------------------------------


class CreateDefinitionRequest(_Request):
    name: Name
    description: StrictStr | None = None
    max_run_duration_seconds: Annotated[StrictInt, Field(ge=60, le=7200)] | None = 1800
    parent_path_part_id: uuid.UUID
    instruction_path_part_id: uuid.UUID | None = None
    approval_required: StrictBool
    is_template: StrictBool | None = False
    selected_skill_ids: Annotated[list[uuid.UUID], Field(max_length=20)] | None = None
    common_file_path_part_ids: Annotated[list[uuid.UUID], Field(max_length=20)] | None = None
    schedule_cadence: Literal["DAILY", "WEEKLY", "MONTHLY"] | None = None
    schedule_start_at: datetime | None = None
    schedule_timezone: Annotated[StrictStr, Field(max_length=64)] | None = None


class UpdateDefinitionRequest(_Request):
    name: Name
    description: StrictStr | None = None
    max_run_duration_seconds: Annotated[StrictInt, Field(ge=60, le=7200)] | None = 1800
    instruction_path_part_id: uuid.UUID | None = None
    parent_path_part_id: uuid.UUID | None = None
    is_active: StrictBool
    approval_required: StrictBool
    selected_skill_ids: Annotated[list[uuid.UUID], Field(max_length=20)] | None = None
    common_file_path_part_ids: Annotated[list[uuid.UUID], Field(max_length=20)] | None = None
    schedule_cadence: Literal["DAILY", "WEEKLY", "MONTHLY"] | None = None
    schedule_start_at: datetime | None = None
    schedule_timezone: Annotated[StrictStr, Field(max_length=64)] | None = None


class InstantiateRequest(_Request):
    parent_path_part_id: uuid.UUID
    name: Annotated[StrictStr, Field(min_length=1, max_length=255)] | None = None


class UpdateRunRequest(_Request):
    input_scope: Annotated[list[uuid.UUID], Field(max_length=200)] | None = None
    name: Name | None = None
    auto_start: StrictBool | None = None
    user_message: Message | None = None


class StartRunRequest(_Request):
    user_message: Message | None = None


class CloneRunRequest(_Request):
    include_inputs: StrictBool


class SetApprovalRequest(_Request):
    state: Literal["approved"]
    reason: Annotated[StrictStr, Field(max_length=2048)] | None = None


class CallbackRequest(_Request):
    status: Literal["COMPLETED", "FAILED"]
    error: Annotated[StrictStr, Field(max_length=8192)] | None = None


class CreateFolderRequest(_Request):
    name: Name
    parent_path_part_id: uuid.UUID


class CreateApiKeyRequest(_Request):
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    expires_at: datetime | None = None


# -- responses -----------------------------------------------------------------------------------------


class UserInfo(BaseModel):
    user_id: uuid.UUID
    first_name: str | None = None
    last_name: str | None = None


class ItemPermissions(BaseModel):
    can_read: bool
    can_write: bool
    can_delete: bool
    can_approve: bool


class RunAsset(BaseModel):
    id: uuid.UUID
    path_part_id: uuid.UUID
    name: str
    part_type: str
    materialized_path: str
    approval_state: ApprovalState
    origin: str | None = None


class RunFolderRef(BaseModel):
    id: uuid.UUID
    path_part_id: uuid.UUID
    materialized_path: str


class RunFolder(RunFolderRef):
    assets: list[RunAsset] | None = None


class WorkflowRunResponse(BaseModel):
    part_type: Literal["WORKFLOW_RUN"] = "WORKFLOW_RUN"
    id: uuid.UUID
    path_part_id: uuid.UUID
    parent_path_part_id: uuid.UUID | None
    materialized_path: str
    tenant_id: uuid.UUID
    name: str
    workflow_definition_id: uuid.UUID
    triggered_by: UserInfo
    owner: UserInfo | None
    execution_state: ExecutionState
    approval_state: ApprovalState
    started_at: datetime | None
    completed_at: datetime | None
    run_snapshot: dict[str, Any] | None
    error: str | None
    auto_start: bool
    auto_start_user_message: str | None
    inputs: RunFolder
    outputs: RunFolder
    discussions: RunFolderRef
    excluded_common_files: list[dict[str, Any]] | None = None
    run_thread_id: uuid.UUID | None = None
    created_at: datetime
    updated_at: datetime
    permissions: ItemPermissions | None = None
    # Not in ksapi 3.18.2 (ignored by it); kept for older clients.
    input_path_part_ids: list[uuid.UUID] | None = None
    # Ours: the LLM usage of the run's tasks summed {prompt_tokens, completion_tokens, cost_usd}; ksapi ignores it.
    usage: dict[str, Any] | None = None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class CallbackResponse(BaseModel):
    status: str


class AdoptionStats(BaseModel):
    runs: int
    active_definitions: int
    distinct_triggerers: int


class RunSummaryResponse(BaseModel):
    window_start: datetime
    window_end: datetime | None
    total: int
    counts_by_state: dict[str, int]
    failure_rate: float | None
    duration_p50_seconds: float | None
    duration_p95_seconds: float | None
    pending_approval_count: int
    oldest_pending_age_seconds: float | None
    adoption: AdoptionStats


class LastRunSummary(BaseModel):
    id: uuid.UUID
    execution_state: ExecutionState
    approval_state: ApprovalState
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None


class WorkflowDefinitionResponse(BaseModel):
    part_type: Literal["WORKFLOW_DEFINITION"] = "WORKFLOW_DEFINITION"
    id: uuid.UUID
    path_part_id: uuid.UUID
    parent_path_part_id: uuid.UUID | None
    materialized_path: str
    tenant_id: uuid.UUID
    name: str
    description: str | None
    max_run_duration_seconds: int
    instruction_path_part_id: uuid.UUID
    is_active: bool
    approval_required: bool
    is_template: bool
    selected_skill_ids: list[uuid.UUID] | None = None
    common_file_path_part_ids: list[uuid.UUID] | None = None
    created_from_id: uuid.UUID | None
    copy_count: int = 0
    last_run: LastRunSummary | None = None
    pending_approval_count: int = 0
    approval_state: ApprovalState = "not_required"
    owner: UserInfo | None = None
    schedule_cadence: Literal["DAILY", "WEEKLY", "MONTHLY"] | None = None
    schedule_start_at: datetime | None = None
    schedule_timezone: str | None = None
    created_at: datetime
    updated_at: datetime
    permissions: ItemPermissions | None = None


class FolderResponse(BaseModel):
    part_type: Literal["FOLDER"] = "FOLDER"
    id: uuid.UUID
    path_part_id: uuid.UUID
    name: str
    parent_path_part_id: uuid.UUID | None
    materialized_path: str
    system_managed: bool
    approval_state: ApprovalState = "not_required"
    exclude_from_qdrant: bool = False
    tenant_id: uuid.UUID
    owner: UserInfo | None = None
    created_at: datetime
    updated_at: datetime
    permissions: ItemPermissions | None = None


class DocumentVersionResponse(BaseModel):
    id: uuid.UUID
    path_part_id: uuid.UUID
    version: int = 1
    name: str
    parent_path_id: uuid.UUID | None
    materialized_path: str
    system_managed: bool = False
    tenant_id: uuid.UUID
    uploader: UserInfo
    created_at: datetime
    updated_at: datetime


class DocumentResponse(BaseModel):
    part_type: Literal["DOCUMENT"] = "DOCUMENT"
    id: uuid.UUID
    path_part_id: uuid.UUID
    name: str
    parent_path_part_id: uuid.UUID | None
    document_type: str
    document_origin: str
    active_version_id: uuid.UUID
    active_version: DocumentVersionResponse
    materialized_path: str
    system_managed: bool = False
    approval_state: ApprovalState
    exclude_from_qdrant: bool = False
    tenant_id: uuid.UUID
    owner: UserInfo | None = None
    created_at: datetime
    updated_at: datetime
    # Not in ksapi's model (ignored by it): where ingestion stands.
    ingest_status: str | None = None


class IngestDocumentResponse(BaseModel):
    workflow_id: str
    document_id: uuid.UUID
    document_version_id: uuid.UUID


class ApiKeyResponse(BaseModel):
    id: uuid.UUID
    name: str
    key_suffix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = None


class CreateApiKeyResponse(BaseModel):
    id: uuid.UUID
    name: str
    key: str
    key_suffix: str
    created_at: datetime
    expires_at: datetime | None


class UserResponse(BaseModel):
    id: uuid.UUID
    email: str | None
    first_name: str | None
    last_name: str | None
    idp_type: str = "PASSWORD"
    current_tenant_id: uuid.UUID
    current_tenant_role: str
    default_tenant_id: uuid.UUID
    language_preference: str = "en"
    join_method: str = "CREATOR"


# -- tags ----------------------------------------------------------------------------------------------

Color = Annotated[StrictStr, Field(min_length=6, max_length=6, pattern=r"^[0-9A-Fa-f]{6}$")]


class CreateTagRequest(_Request):
    name: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    color: Color | None = "000000"
    description: Annotated[StrictStr, Field(max_length=500)] | None = None


class UpdateTagRequest(_Request):
    name: Annotated[StrictStr, Field(min_length=1, max_length=100)] | None = None
    color: Color | None = None
    description: Annotated[StrictStr, Field(max_length=500)] | None = None


class BulkTagRequest(_Request):
    tag_ids: Annotated[list[uuid.UUID], Field(max_length=10)]


class TagResponse(BaseModel):
    id: uuid.UUID
    name: str
    color: str
    description: str | None = None
    tenant_id: uuid.UUID
    created_at: datetime
    updated_at: datetime


class PathPartTagsResponse(BaseModel):
    tags: list[TagResponse]


# -- threads -------------------------------------------------------------------------------------------


class UserMessageRequest(_Request):
    input_text: StrictStr | None = ""
    fast_mode: StrictBool | None = None
    output_language: StrictStr | None = None


class UserMessageResponse(BaseModel):
    workflow_id: str
    user_message_id: uuid.UUID


class ThreadResponse(BaseModel):
    id: uuid.UUID
    path_part_id: uuid.UUID
    title: str
    parent_thread_id: uuid.UUID | None = None
    materialized_path: str
    tenant_id: uuid.UUID
    owner: UserInfo | None = None
    created_at: datetime
    updated_at: datetime


class ThreadMessageContent(BaseModel):
    text: str
    is_error: bool | None = None


class ThreadMessageResponse(BaseModel):
    id: uuid.UUID
    path_part_id: uuid.UUID
    sequence: int
    role: Literal["USER", "ASSISTANT", "SYSTEM"]
    content: ThreadMessageContent
    details: dict[str, Any] | None = None
    parent_path_id: uuid.UUID
    materialized_path: str
    tenant_id: uuid.UUID
    author_tenant_user_id: uuid.UUID | None = None
    created_at: datetime
    updated_at: datetime
