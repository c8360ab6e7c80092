"""The gauges the database answers, set just before each `/metrics` scrape of the API."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Pause, Run
from telemetry.metrics import Metrics

_ACTIVE = ("PENDING", "RUNNING", "PAUSED")


async def refresh_from_db(session: AsyncSession, m: Metrics) -> None:
    """Set the gauges the database answers: runs waiting or running, open pauses and the oldest one.

    Two queries on indexed columns (runs by status, pauses not yet resumed), whatever the number of
    finished runs stored."""
    now = time.time()
    by_tenant: list[Any] = [Run.tenant_id] if m.tenant_labels else []
    active = await session.execute(
        select(Run.status, func.count(), *by_tenant)
        .where(Run.status.in_(_ACTIVE))
        .group_by(Run.status, *by_tenant)
    )
    pauses_q = select(func.count(), func.min(Pause.pause_time), *by_tenant).where(Pause.resume_time.is_(None))
    if m.tenant_labels:
        pauses_q = pauses_q.join(Run, Run.id == Pause.run_id).group_by(*by_tenant)
    pauses = await session.execute(pauses_q)
    for gauge in (m.runs_active, m.pauses_open, m.pause_oldest_age):
        gauge.clear()
    if not m.tenant_labels:  # every status shows, 0 included, so rates and alerts see the zeros
        for status in _ACTIVE:
            m.runs_active.labels(status).set(0)
        m.pauses_open.set(0)
        m.pause_oldest_age.set(0)
    for row in active:
        m.runs_active.labels(str(row[0]), *(str(v) for v in row[2:])).set(int(row[1]))
    for row in pauses:
        count, oldest = int(row[0]), row[1]
        labels = [str(v) for v in row[2:]]
        age = max(0.0, now - oldest.timestamp()) if isinstance(oldest, datetime) else 0.0
        (m.pauses_open.labels(*labels) if labels else m.pauses_open).set(count)
        (m.pause_oldest_age.labels(*labels) if labels else m.pause_oldest_age).set(age)
