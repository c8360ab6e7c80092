"""Every table, in one module so relationships resolve without import cycles; timestamps are tz-aware UTC."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from run_status import (
    ApprovalState,
    DocumentOrigin,
    DraftState,
    IngestStatus,
    RunStatus,
    StateAxis,
    TaskStatus,
)

JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def one_of(column: str, states: type[StrEnum], *, table: str, nullable: bool = False) -> CheckConstraint:
    """The CHECK constraint (migration 0007) that keeps a state column inside its enum."""
    values = ", ".join(f"'{s.value}'" for s in states)
    rule = f"{column} IN ({values})"
    return CheckConstraint(f"{column} IS NULL OR {rule}" if nullable else rule, name=f"ck_{table}_{column}")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JsonType, datetime: DateTime(timezone=True)}


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # IANA zone a v1 schedule fires in when its definition names none (migration 0010).
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default=text("'UTC'"))


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))  # OWNER | ADMIN | USER
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)


class Workflow(Base):
    __tablename__ = "workflows"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        Index("ix_workflows_tenant_created", "tenant_id", "created_at"),
        Index("ix_workflows_tenant_ids", "tenant_id", postgresql_include=["id"]),  # migration 0012
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text, default="")
    definition: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkflowVersion(Base):
    __tablename__ = "workflow_versions"
    __table_args__ = (
        UniqueConstraint("workflow_id", "version"),
        Index("ix_versions_workflow_hash", "workflow_id", "definition_hash"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text, default="")
    definition: Mapped[dict[str, Any]]
    definition_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_tenant_start", "tenant_id", "start_time"),
        Index("ix_runs_workflow_start", "workflow_id", "start_time"),
        Index("ix_runs_status", "status"),
        Index("ix_runs_input_dataset", "input_dataset_id"),  # migration 0004
        # v1 (migration 0005): names unique per definition, idempotent creates, tenant lists by creation.
        Index(
            "uq_runs_definition_name",
            "workflow_id",
            "name",
            unique=True,
            postgresql_where=text("name IS NOT NULL"),
        ),
        Index(
            "uq_runs_idempotency_key",
            "workflow_id",
            "triggered_by",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index(
            "ix_runs_tenant_created",
            "tenant_id",
            "created_at",
            postgresql_include=[
                "status",
                "draft_state",
                "start_time",
                "end_time",
                "triggered_by",
                "workflow_id",
            ],
        ),
        # Migration 0011 (list pages read in index order); its expression and DESC NULLS LAST indexes on
        # runs (the v1 list's orders) are declared only there.
        Index("ix_runs_tenant_status_start", "tenant_id", "status", "start_time"),
        Index("ix_runs_tenant_approval", "tenant_id", "approval_state", "end_time"),
        Index("ix_runs_workflow_created", "workflow_id", "created_at"),
        Index(  # migration 0012
            "ix_runs_workflow_pending",
            "workflow_id",
            postgresql_where=text("(approval_state)::text = 'pending'::text"),
        ),
        one_of("status", RunStatus, table="runs"),
        one_of("draft_state", DraftState, table="runs", nullable=True),
        one_of("approval_state", ApprovalState, table="runs"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    workflow_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workflow_versions.id", ondelete="CASCADE"), default=None
    )
    parent_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), default=None, index=True
    )
    triggered_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    status: Mapped[str] = mapped_column(String(16))
    run_type: Mapped[str] = mapped_column(String(64), default="interactive")
    initial_inputs: Mapped[dict[str, Any] | None] = mapped_column(JsonType, default=None)
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JsonType, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    input_dataset_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), default=None
    )
    output_file_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("output_files.id", ondelete="SET NULL"), default=None
    )
    # Batch parents only: dataset rows in the batch, rows settled, rows that did not complete.
    rows_total: Mapped[int | None] = mapped_column(Integer, default=None)
    rows_done: Mapped[int | None] = mapped_column(Integer, default=None)
    rows_failed: Mapped[int | None] = mapped_column(Integer, default=None)
    start_time: Mapped[datetime] = mapped_column(default=utcnow)
    end_time: Mapped[datetime | None] = mapped_column(default=None)
    # v1 workflow-runs API (migration 0005). `draft_state` is NOT_STARTED or PENDING (inputs still being
    # ingested) while a v1 run is a draft, and null once started; the stored `status` is PENDING meanwhile.
    v1: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str | None] = mapped_column(String(255), default=None)
    path_part_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    draft_state: Mapped[str | None] = mapped_column(String(16), default=None)
    auto_start: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_start_user_message: Mapped[str | None] = mapped_column(Text, default=None)
    input_scope: Mapped[list[str] | None] = mapped_column(JsonType, default=None)
    selected_skill_ids: Mapped[list[str] | None] = mapped_column(JsonType, default=None)
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JsonType, default=None)
    approval_state: Mapped[str] = mapped_column(String(16), default=ApprovalState.NOT_REQUIRED.value)
    approval_reason: Mapped[str | None] = mapped_column(Text, default=None)
    approved_at: Mapped[datetime | None] = mapped_column(default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    # Executions started for this run (retry and resume start another under the same Temporal id).
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    version: Mapped[WorkflowVersion | None] = relationship(lazy="raise")
    tasks: Mapped[list[Task]] = relationship(
        lazy="raise", order_by="Task.seq", cascade="all, delete-orphan", passive_deletes=True
    )


# Migration 0011: the v1 list's orders, newest first (db/v1_repo.py renders the same expressions).
# Written as PostgreSQL prints them back (pg_get_indexdef), so autogenerate sees no difference.
def _pg_case(*whens: str, otherwise: str) -> str:
    return "(\nCASE\n" + "".join(f"    WHEN {w}\n" for w in whens) + f"    ELSE {otherwise}\nEND)"


_VARCHARS = "::character varying"
_V1_STARTED = _pg_case(
    "draft_state IS NOT NULL OR v1 IS TRUE AND COALESCE(jsonb_typeof(snapshot), 'null'::text) = 'null'::text"
    " THEN NULL::timestamp with time zone",
    otherwise="start_time",
)
_V1_STATE = _pg_case(
    "draft_state IS NOT NULL THEN draft_state",
    f"status::text = ANY (ARRAY['PENDING'{_VARCHARS}, 'RUNNING'{_VARCHARS}, 'PAUSED'{_VARCHARS}]::text[])"
    f" THEN 'IN_PROGRESS'{_VARCHARS}",
    f"status::text = 'COMPLETED'::text THEN 'COMPLETED'{_VARCHARS}",
    f"status::text = ANY (ARRAY['FAILED'{_VARCHARS}, 'CANCELED'{_VARCHARS}]::text[]) THEN 'FAILED'{_VARCHARS}",
    otherwise=f"NULL{_VARCHARS}",
)
Index(
    "ix_runs_v1_started",
    Run.tenant_id,
    text(f"{_V1_STARTED} DESC NULLS LAST"),
    Run.created_at.desc(),
    Run.id,
)
Index(
    "ix_runs_v1_state_started",
    Run.tenant_id,
    text(_V1_STATE),
    text(f"{_V1_STARTED} DESC NULLS LAST"),
    Run.created_at.desc(),
    Run.id,
)
Index("ix_runs_v1_completed", Run.tenant_id, Run.end_time.desc().nulls_last(), Run.created_at.desc(), Run.id)


class RunStateHistory(Base):
    """One row per change of a run's status, draft state or approval state (migration 0007)."""

    __tablename__ = "run_state_history"
    __table_args__ = (
        Index("ix_run_state_history_run", "run_id", "id"),
        one_of("axis", StateAxis, table="run_state_history"),
    )

    # Identity order is write order, also between the rows of one statement.
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    axis: Mapped[str] = mapped_column(String(16))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    # A user's id, or a `run_status.Cause` (engine, reconciler, schedule).
    cause: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(server_default=text("clock_timestamp()"))


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("run_id", "scope", "node_id"),
        one_of("status", TaskStatus, table="tasks"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(200))
    # "" for top-level nodes; "<loop node id>#<iteration>" (nested: joined by "/") for loop bodies.
    scope: Mapped[str] = mapped_column(String(500), default="", server_default="")
    # Scheduling order within the run, so task lists read in the order nodes were reached.
    seq: Mapped[int] = mapped_column(Integer, default=0)
    parent_task_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(16))
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JsonType, default=None)
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JsonType, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    start_time: Mapped[datetime | None] = mapped_column(default=None)
    end_time: Mapped[datetime | None] = mapped_column(default=None)
    subworkflow: Mapped[dict[str, Any] | None] = mapped_column(JsonType, default=None)
    subworkflow_output: Mapped[dict[str, Any] | None] = mapped_column(JsonType, default=None)
    # LLM nodes: {model, prompt_tokens, completion_tokens, cost_usd} (migration 0008_llm).
    usage: Mapped[dict[str, Any] | None] = mapped_column(JsonType, default=None)


class Pause(Base):
    """One human-in-the-loop pause of a run's node; written when it opens, completed when decided."""

    __tablename__ = "pauses"
    __table_args__ = (
        UniqueConstraint("run_id", "seq"),
        Index("ix_pauses_open", "run_id", "resume_time"),
        Index("ix_pauses_open_since", "pause_time", postgresql_where=text("resume_time IS NULL")),  # 0011
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(200))
    # Per-run counter: it makes update ids unique even if a node pauses more than once.
    seq: Mapped[int] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    input_data: Mapped[dict[str, Any] | None] = mapped_column(JsonType, default=None)
    pause_time: Mapped[datetime] = mapped_column(default=utcnow)
    timeout_at: Mapped[datetime | None] = mapped_column(default=None)
    resume_time: Mapped[datetime | None] = mapped_column(default=None)
    resume_user_id: Mapped[str | None] = mapped_column(String(200), default=None)
    resume_action: Mapped[str | None] = mapped_column(String(16), default=None)
    resume_inputs: Mapped[dict[str, Any] | None] = mapped_column(JsonType, default=None)
    comments: Mapped[str | None] = mapped_column(Text, default=None)
    # The authenticated user behind the decision; `resume_user_id` is what the request body said.
    decided_by: Mapped[uuid.UUID | None] = mapped_column(default=None)


class Dataset(Base):
    """An uploaded table of rows; rows are stored parsed, so any worker can read them by index."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text, default="")
    file_name: Mapped[str] = mapped_column(String(500))
    format: Mapped[str] = mapped_column(String(16))  # csv | jsonl | parquet
    columns: Mapped[list[str]] = mapped_column(JsonType)
    row_count: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetRow(Base):
    __tablename__ = "dataset_rows"

    dataset_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[dict[str, Any]]


class OutputFile(Base):
    """A batch run's JSON Lines result; its lines are rows of `output_lines`, in dataset order."""

    __tablename__ = "output_files"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # The batch parent run (no FK: the run points here, and either may be deleted first).
    run_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    file_name: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutputLine(Base):
    __tablename__ = "output_lines"

    output_file_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("output_files.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    line: Mapped[dict[str, Any]]


class Folder(Base):
    """A folder path part: a tenant's root, a user's folder, or one of a v1 run's inputs/outputs/discussions."""

    __tablename__ = "folders"
    __table_args__ = (
        Index("ix_folders_parent", "tenant_id", "parent_path_part_id"),
        Index("ix_folders_run", "run_id"),
        # One root per tenant; sibling names unique.
        Index(
            "uq_folders_root", "tenant_id", unique=True, postgresql_where=text("parent_path_part_id IS NULL")
        ),
        Index(
            "uq_folders_sibling_name",
            "parent_path_part_id",
            "name",
            unique=True,
            postgresql_where=text("parent_path_part_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    path_part_id: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    parent_path_part_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    name: Mapped[str] = mapped_column(String(255))
    materialized_path: Mapped[str] = mapped_column(Text)
    system_managed: Mapped[bool] = mapped_column(Boolean, default=False)
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), default=None)
    role: Mapped[str | None] = mapped_column(String(16), default=None)  # inputs | outputs | discussions
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Document(Base):
    """A stored document with one version: uploads (ingested by a Temporal workflow), instructions, run outputs."""

    __tablename__ = "documents"
    __table_args__ = (
        Index("ix_documents_parent", "parent_path_part_id"),
        Index("ix_documents_run", "run_id"),
        one_of("origin", DocumentOrigin, table="documents"),
        one_of("ingest_status", IngestStatus, table="documents"),
        one_of("approval_state", ApprovalState, table="documents"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    path_part_id: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    version_id: Mapped[uuid.UUID] = mapped_column(default=uuid.uuid4)
    version_path_part_id: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    parent_path_part_id: Mapped[uuid.UUID] = mapped_column()
    materialized_path: Mapped[str] = mapped_column(Text)
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), default=None)
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(16), default=DocumentOrigin.SOURCE.value)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    text: Mapped[str | None] = mapped_column(Text, default=None)
    ingest_status: Mapped[str] = mapped_column(String(16), default=IngestStatus.COMPLETED.value)
    ingest_error: Mapped[str | None] = mapped_column(Text, default=None)
    ingest_workflow_id: Mapped[str | None] = mapped_column(String(200), default=None)
    approval_state: Mapped[str] = mapped_column(String(16), default=ApprovalState.NOT_REQUIRED.value)
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class V1Definition(Base):
    """The v1-only fields of a workflow: a v1 definition is the `workflows` row with the same id."""

    __tablename__ = "v1_definitions"
    # Migration 0013: the few definitions the summary's active count leaves out.
    __table_args__ = (
        Index(
            "ix_v1_definitions_inactive", "tenant_id", postgresql_where=text("(NOT is_active) OR is_template")
        ),
    )

    workflow_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    path_part_id: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    parent_path_part_id: Mapped[uuid.UUID] = mapped_column()
    instruction_path_part_id: Mapped[uuid.UUID] = mapped_column()
    max_run_duration_seconds: Mapped[int] = mapped_column(Integer, default=1800)
    approval_required: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_template: Mapped[bool] = mapped_column(Boolean, default=False)
    created_from_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    selected_skill_ids: Mapped[list[str] | None] = mapped_column(JsonType, default=None)
    common_file_path_part_ids: Mapped[list[str] | None] = mapped_column(JsonType, default=None)
    # A Temporal Schedule per scheduled definition (migration 0010; `core/v1_schedules.py`).
    schedule_cadence: Mapped[str | None] = mapped_column(String(16), default=None)
    schedule_start_at: Mapped[datetime | None] = mapped_column(default=None)
    schedule_timezone: Mapped[str | None] = mapped_column(String(64), default=None)


class ProviderKey(Base):
    """A tenant's LLM provider setting (PySpur's env names), encrypted with Fernet (migration 0008_llm)."""

    __tablename__ = "provider_keys"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class V1Tag(Base):
    """A tenant's tag (migration 0010); attached to path parts by `V1PathPartTag`."""

    __tablename__ = "v1_tags"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    color: Mapped[str] = mapped_column(String(6), default="000000")
    description: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))


class V1PathPartTag(Base):
    """A tag on a path part (a folder, definition, run or document): it holds for everything below it."""

    __tablename__ = "v1_path_part_tags"
    __table_args__ = (Index("ix_v1_path_part_tags_tag", "tag_id"),)

    path_part_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tag_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("v1_tags.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))


class V1ThreadRun(Base):
    """A run's membership of a v1 run thread (migration 0010): its primary thread from Start, or the thread
    a follow-up USER message started it in. The thread's messages are read from its runs."""

    __tablename__ = "v1_thread_runs"
    __table_args__ = (Index("ix_v1_thread_runs_thread", "thread_id"),)

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    thread_id: Mapped[uuid.UUID] = mapped_column()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))
