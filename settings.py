"""The one reader of the environment: every process builds a `Settings` and passes it down."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration for the API, the worker and the local dev stack (`.env.example` lists every field)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Storage
    data_dir: Path = Field(
        Path(".data"), description="Local state: embedded PostgreSQL, Temporal SQLite, uploads"
    )
    database_url: str | None = Field(
        None, description="postgresql+asyncpg://... ; unset means the embedded PostgreSQL in DATA_DIR/pg"
    )
    db_pool_size: int = 10

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "durable-runs"
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_api_key: str | None = None
    temporal_ui_port: int = 8233

    # API
    host: str = "127.0.0.1"
    port: int = 8000
    run_blocking_timeout_seconds: float = Field(300.0, gt=0)
    upload_max_bytes: int = Field(10 * 1024 * 1024, gt=0)
    request_body_max_bytes: int = Field(
        2 * 1024 * 1024, gt=0, description="Largest request body of a JSON route (413 before parsing)"
    )
    request_upload_max_bytes: int = Field(
        64 * 1024 * 1024,
        gt=0,
        description="Largest multipart request body (several uploads and their fields)",
    )
    temporal_payload_max_bytes: int = Field(
        2 * 1024 * 1024,
        gt=0,
        description="Temporal's blob size limit: a run whose start payload is larger is refused (413)",
    )
    allow_anonymous_local: bool = Field(
        False, description="Serve without credentials; only honoured when HOST is a loopback address"
    )
    api_embedded_worker: bool = Field(
        True, description="Host a worker in the API process so starts are eager (saves a round trip)"
    )
    api_embedded_worker_activities: bool = Field(
        False,
        description="The API's embedded worker also takes regular activities (LLM calls, slow Python "
        "nodes); off, it runs only workflow tasks and local activities and leaves the rest to workers "
        "(on, a burst of 1,000 LLM runs starved the API's loop and calls failed their heartbeat timeout)",
    )

    # Worker
    worker_max_concurrent_activities: int = 64
    worker_max_concurrent_llm_calls: int = Field(
        1000,
        ge=1,
        description="LLM calls one worker holds at once, on a task queue of their own (TEMPORAL_TASK_QUEUE "
        "plus '-llm'): a call is a wait on the provider, unlike a sandboxed Python node, which stays "
        "bounded by WORKER_MAX_CONCURRENT_ACTIVITIES",
    )
    worker_max_cached_workflows: int = Field(
        200, ge=0, description="Executions kept in worker memory; paused runs beyond it cost only storage"
    )
    worker_sandboxed_workflows: bool = Field(
        False,
        description="Run workflow code in Temporal's import sandbox (slower; our interpreter is deterministic)",
    )
    reconcile_interval_seconds: float = Field(30.0, gt=0)
    node_heartbeat_timeout_seconds: float = Field(5.0, gt=0)
    node_retry_max_attempts: int = Field(3, ge=1)
    python_fast_path_seconds: float = Field(
        1.0, ge=0, description="Python nodes first run as a local activity up to this long; 0 disables"
    )
    batch_chunk_rows: int = Field(
        500, ge=1, le=2000, description="Dataset rows per batch chunk (one child workflow each)"
    )

    # Sandbox for PythonFuncNode
    sandbox_python: str | None = Field(
        None, description="Interpreter for user code; default: first usable system python3"
    )
    sandbox_isolation: str = Field("auto", description="auto | namespaces | none")
    sandbox_wall_seconds: float = Field(60.0, gt=0)
    sandbox_cpu_seconds: int = Field(60, gt=0)
    sandbox_memory_mb: int = Field(512, gt=0)
    sandbox_output_bytes: int = Field(1024 * 1024, gt=0)

    # LLM nodes: instance-wide provider defaults under PySpur's names; a tenant's keys stored through
    # /env-mgmt/ override them for that tenant's runs.
    openai_api_key: str | None = None
    openai_api_base: str | None = None
    anthropic_api_key: str | None = None
    gemini_api_key: str | None = None
    deepseek_api_key: str | None = None
    ollama_base_url: str | None = None
    azure_openai_api_key: str | None = None
    azure_openai_endpoint: str | None = None
    azure_openai_api_version: str | None = None
    # Beyond PySpur: where anthropic/, gemini/ and deepseek/ models go (a gateway, a test stub).
    anthropic_base_url: str | None = None
    gemini_api_base: str | None = None
    deepseek_api_base: str | None = None
    llm_allowed_hosts: str = Field(
        "",
        description="Comma-separated hosts, addresses or CIDR networks a tenant's LLM base URL may point at "
        "besides public addresses (loopback, link-local and private ones are refused unless listed here; "
        "the hosts of the base URLs configured here always pass)",
    )
    provider_keys_secret: str | None = Field(
        None,
        description="Fernet key encrypting tenants' provider keys; unset: generated into DATA_DIR/provider-keys.secret",
    )
    llm_heartbeat_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="An LLM call whose worker is silent this long is retried (its worker is presumed lost)",
    )
    worker_heartbeat_throttle_seconds: float = Field(
        1.5,
        gt=0,
        description="Running activities report to Temporal at least this often; a cancel reaches them within about as long",
    )

    # Observability (docs/operating.md#observability)
    otel_exporter_otlp_endpoint: str | None = Field(
        None, description="Export traces over OTLP/gRPC to this collector (e.g. http://127.0.0.1:4317)"
    )
    otel_service_name: str = Field("durable-runs", description="service.name of exported spans")
    tracing_enabled: bool = Field(
        False, description="Trace even without an OTLP endpoint (spans go to whatever provider is installed)"
    )
    tracing_capture_content: bool = Field(
        False, description="Put LLM prompts and completions on spans (off: only model, tokens, status)"
    )
    metrics_tenant_labels: bool = Field(
        False, description="Label run and pause metrics by tenant (one series per tenant)"
    )
    worker_metrics_port: int | None = Field(
        None, description="Serve the worker's Prometheus /metrics on this port (unset: not served)"
    )
    worker_temporal_metrics_port: int | None = Field(
        None, description="Serve the Temporal SDK's own Prometheus metrics from the worker on this port"
    )
    metrics_host: str = Field("127.0.0.1", description="Address the worker's metrics ports bind to")
    log_format: str = Field(
        "text", description="text | json (one JSON object per line, with run and trace ids)"
    )
    log_level: str = "INFO"
    run_blocking_answer_in_process: bool = Field(
        True,
        description="A blocking run whose terminal write this API process made (eager start) answers "
        "from that write, without waiting for Temporal to close the execution and its long poll",
    )
    tracing_sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of new traces recorded (a trace started elsewhere follows its caller's choice)",
    )
    api_eager_max_bytes: int = Field(
        64 * 1024,
        ge=0,
        description="Largest run input (encoded bytes: definition, inputs, subworkflows) an API starts "
        "eagerly in its embedded worker; a larger run goes to the shared task queue and the worker "
        "processes (one queue round trip later, but decoding it and running its nodes never stall the "
        "API's requests: a 1.7 MB start held /health for ~1 s on the API's GIL)",
    )
    v1_start_wait_seconds: float = Field(
        0.25,
        ge=0,
        description="A v1 start whose run this API process took (eager start) waits up to this long for "
        "the run to end, so a short run's start answers COMPLETED/FAILED and the client's first poll "
        "is its last; a longer run's start answers this much later (0: answer at once)",
    )

    tracing_temporal_spans: bool = Field(
        False,
        description="Also record temporalio's own spans (StartWorkflow, StartActivity, RunActivity, "
        "CompleteWorkflow): twice the spans per run, for debugging Temporal calls themselves",
    )

    @property
    def eager_task_queue(self) -> str:
        """The task queue of runs an API starts eagerly: its embedded worker polls only this one, so it
        never takes the shared queue's (maybe large) workflow tasks; worker processes poll both, so a run
        goes on when the API that started it dies."""
        return f"{self.temporal_task_queue}-eager"

    @property
    def tracing_active(self) -> bool:
        return self.tracing_enabled or bool(self.otel_exporter_otlp_endpoint)

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.resolve()

    @property
    def effective_database_url(self) -> str:
        """DATABASE_URL, or the embedded PostgreSQL's socket in the data directory."""
        if self.database_url:
            return self.database_url
        return f"postgresql://postgres@/postgres?host={self.resolved_data_dir / 'pg'}"

    @property
    def llm_task_queue(self) -> str:
        """The task queue of LLM calls (WORKER_MAX_CONCURRENT_LLM_CALLS slots per worker)."""
        return f"{self.temporal_task_queue}-llm"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment and `.env`."""
    return Settings()
