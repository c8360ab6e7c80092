"""Log lines that carry the ids of what they are about: request, run, workflow, Temporal execution,
node and trace. `LOG_FORMAT=json` writes one JSON object per line; `text` (the default) stays
human-readable and appends the known ids.

The ids come from a context variable that each request, activity or run binds (`bind_ids`), from the
`temporal_workflow`/`temporal_activity` extras temporalio's loggers add, and from the current span.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from settings import Settings
from telemetry.tracing import current_trace_id

_ids: ContextVar[dict[str, str] | None] = ContextVar("log_ids", default=None)

# temporalio's logger extras -> our field names
_TEMPORAL_FIELDS = {
    "workflow_id": "temporal_workflow_id",
    "run_id": "temporal_run_id",
    "workflow_type": "temporal_workflow_type",
    "activity_id": "temporal_activity_id",
    "activity_type": "temporal_activity_type",
    "attempt": "temporal_attempt",
}
_RUN_PREFIX = "run-"


def bind_ids(**ids: object) -> None:
    """Add ids to every log line written from now on in this task (a request, an activity)."""
    current = _ids.get() or {}
    _ids.set({**current, **{k: str(v) for k, v in ids.items() if v is not None}})


def known_ids(record: logging.LogRecord) -> dict[str, str]:
    out: dict[str, str] = dict(_ids.get() or {})
    for extra in ("temporal_workflow", "temporal_activity"):
        info = getattr(record, extra, None)
        if isinstance(info, dict):
            for key, name in _TEMPORAL_FIELDS.items():
                if info.get(key) is not None:
                    out.setdefault(name, str(info[key]))
    temporal_id = out.get("temporal_workflow_id", "")
    if "run_id" not in out and temporal_id.startswith(_RUN_PREFIX):
        out["run_id"] = temporal_id.removeprefix(_RUN_PREFIX)  # executions are named run-<run id>
    trace_id = current_trace_id()
    if trace_id:
        out["trace_id"] = trace_id
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **known_ids(record),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = {k: v for k, v in known_ids(record).items() if not k.startswith("temporal_")}
        return f"{text} [{' '.join(f'{k}={v}' for k, v in ids.items())}]" if ids else text


def configure_logging(settings: Settings) -> None:
    """The root handler of a process (the API under uvicorn, the worker), uvicorn's lines included.

    In text mode a process whose root logger already has handlers (a test runner's) keeps them:
    the embedding program decides where its logs go."""
    root = logging.getLogger()
    if settings.log_format != "json" and root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # uvicorn's loggers have handlers of their own, whose lines would lack the ids: ours format them
    # too (the levels uvicorn set from --log-level stay).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


class ActivityLogIds(Interceptor):
    """Binds each activity's Temporal ids (and so the run id) for the log lines it writes."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityIds(next)


class _ActivityIds(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        bind_ids(
            temporal_workflow_id=info.workflow_id,
            temporal_run_id=info.workflow_run_id,
            temporal_activity_type=info.activity_type,
        )
        return await super().execute_activity(input)
