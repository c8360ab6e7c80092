"""The v1 view of a run (execution state from status and draft state), in Python and in SQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from db import v1_repo
from db.models import Run
from run_status import RunStatus


@pytest.mark.parametrize(
    "status, draft, expected",
    [
        (RunStatus.PENDING, "NOT_STARTED", "NOT_STARTED"),
        (RunStatus.PENDING, "PENDING", "PENDING"),
        (RunStatus.PENDING, None, "IN_PROGRESS"),
        (RunStatus.RUNNING, None, "IN_PROGRESS"),
        (RunStatus.PAUSED, None, "IN_PROGRESS"),
        (RunStatus.COMPLETED, None, "COMPLETED"),
        (RunStatus.FAILED, None, "FAILED"),
        (RunStatus.CANCELED, None, "FAILED"),
    ],
)
def test_execution_state_follows_the_product_table(
    status: RunStatus, draft: str | None, expected: str
) -> None:
    assert v1_repo.execution_state(status.value, draft) == expected


def test_every_run_status_has_a_v1_view() -> None:
    for status in RunStatus:
        assert v1_repo.execution_state(status.value, None) in v1_repo.EXECUTION_STATES


def test_sql_view_checks_the_draft_state_first() -> None:
    sql = str(
        select(Run.id)
        .where(v1_repo.execution_state_sql() == "FAILED")
        .compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})  # type: ignore[no-untyped-call]
    )
    case = sql[sql.index("CASE") :]
    assert case.index("draft_state IS NOT NULL") < case.index("'IN_PROGRESS'") < case.index("'COMPLETED'")
