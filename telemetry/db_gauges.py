"""The gauges the database answers, set just before each `/metrics` scrape of the API."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, func, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Pause, Run
from telemetry.metrics import Metrics

_ACTIVE = ("PENDING", "RUNNING", "PAUSED")
_PAUSES = "pauses"  # the key of the pause row in the union (not a status)


async def refresh_from_db(session: AsyncSession, m: Metrics) -> None:
    """Set the gauges the database answers: runs waiting or running, open pauses and the oldest one.

    One statement (a scrape is one round trip) over indexed rows only: runs by status among the
    unfinished ones, and pauses not yet resumed, whatever the number of finished runs stored."""
    now = time.time()
    by_tenant: list[Any] = [Run.tenant_id] if m.tenant_labels else []
    runs = (
        select(Run.status.label("key"), func.count(), null().cast(DateTime(timezone=True)), *by_tenant)
        .where(Run.status.in_(_ACTIVE))
        .group_by(Run.status, *by_tenant)
    )
    pauses = select(
        literal(_PAUSES).label("key"), func.count(), func.min(Pause.pause_time), *by_tenant
    ).where(Pause.resume_time.is_(None))
    if m.tenant_labels:
        pauses = pauses.join(Run, Run.id == Pause.run_id).group_by(*by_tenant)
    rows = (await session.execute(union_all(runs, pauses))).all()
    for gauge in (m.runs_active, m.pauses_open, m.pause_oldest_age):
        gauge.clear()
    if not m.tenant_labels:  # every status shows, 0 included, so rates and alerts see the zeros
        for status in _ACTIVE:
            m.runs_active.labels(status).set(0)
        m.pauses_open.set(0)
        m.pause_oldest_age.set(0)
    for key, count, oldest, *tenant in rows:
        labels = [str(v) for v in tenant]
        if key != _PAUSES:
            m.runs_active.labels(str(key), *labels).set(int(count))
            continue
        if not count and labels:
            continue
        age = max(0.0, now - oldest.timestamp()) if isinstance(oldest, datetime) else 0.0
        (m.pauses_open.labels(*labels) if labels else m.pauses_open).set(int(count))
        (m.pause_oldest_age.labels(*labels) if labels else m.pause_oldest_age).set(age)
