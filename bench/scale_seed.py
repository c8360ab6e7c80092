"""Rows for the scale benchmark and the plan test, written with set-based SQL (generate_series) into the
real schema, not through the API: millions of API calls would take hours and measure nothing we want.

The shape is a tenant that has used the service for a year: most rows belong to the caller's tenant
(80%), the rest to three other tenants; runs are spread evenly over 365 days (so the v1 summary's
default 7-day window holds ~2% of them); statuses are mostly terminal, a fixed number PAUSED with an
open pause, the newest few RUNNING, some v1 drafts; every run has `tasks_per_run` tasks.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db import accounts
from db.session import make_session_factory

MAIN_SHARE = 8  # of 10 workflows (and so of runs) belong to the caller's tenant
OTHER_TENANTS = 3
USERS_PER_TENANT = 5

_GRAPH = (
    '{"nodes": [{"id": "input_node", "node_type": "InputNode", "config": {"output_schema": {"x": "integer"}}},'
    ' {"id": "py1", "node_type": "PythonFuncNode", "config": {"code": "return {\\"y\\": 1}",'
    ' "output_schema": {"y": "integer"}}},'
    ' {"id": "output_node", "node_type": "OutputNode", "config": {"output_map": {"y": "py1.y"}}}],'
    ' "links": [{"source_id": "input_node", "target_id": "py1"}, {"source_id": "py1", "target_id": "output_node"}]}'
)


@dataclass
class Seeded:
    api_key: str
    tenant_id: uuid.UUID
    workflow_id: uuid.UUID  # a workflow of the caller's tenant with its share of runs
    paused_run_id: uuid.UUID  # a PAUSED run of the caller's tenant
    run_id: uuid.UUID  # a COMPLETED run of the caller's tenant with a closed pause

    def to_json(self) -> str:
        return json.dumps({k: str(v) for k, v in asdict(self).items()})

    @classmethod
    def from_json(cls, text: str) -> Seeded:
        raw = json.loads(text)
        return cls(api_key=raw.pop("api_key"), **{k: uuid.UUID(v) for k, v in raw.items()})


async def make_tenants(engine: AsyncEngine) -> tuple[str, list[uuid.UUID], list[list[uuid.UUID]]]:
    """The caller's tenant first (its first user's API key is returned), then the others; users of each."""
    tenants: list[uuid.UUID] = []
    users: list[list[uuid.UUID]] = []
    key = ""
    async with make_session_factory(engine)() as session, session.begin():
        for t in range(1 + OTHER_TENANTS):
            tenant = await accounts.create_tenant(session, f"scale-{t}-{uuid.uuid4().hex[:8]}")
            members = []
            for u in range(USERS_PER_TENANT):
                role = accounts.Role.OWNER if u == 0 else accounts.Role.USER
                user = await accounts.create_user(session, tenant.id, f"u{u}@scale.example", role)
                members.append(user.id)
                if t == 0 and u == 0:
                    _, key = await accounts.create_api_key(session, user)
            tenants.append(tenant.id)
            users.append(members)
    return key, tenants, users


# Workflow j (1-based) belongs to the caller's tenant when j % 10 < MAIN_SHARE, else to other tenant
# (j % OTHER_TENANTS); run i belongs to workflow ((i - 1) % W) + 1, so tenants follow workflows.
_TENANT_OF = """CASE WHEN {j} % 10 < :main_share THEN :t0
    ELSE (ARRAY[:t1, :t2, :t3]::uuid[])[1 + {j} % 3] END"""

_SQL = [
    # Deterministic ids (md5 of a label and the index) let later statements join without lookups.
    f"""
    INSERT INTO workflows (id, tenant_id, name, description, definition, created_at, updated_at)
    SELECT md5(:salt || 'wf' || j)::uuid, {_TENANT_OF.format(j="j")}, 'scale workflow ' || j, '',
           CAST(:graph AS jsonb), now() - interval '400 days' + j * interval '1 second',
           now() - interval '400 days' + j * interval '1 second'
    FROM generate_series(1, :workflows) AS j
    """,
    """
    INSERT INTO workflow_versions (id, workflow_id, version, name, description, definition,
                                   definition_hash, created_at, updated_at)
    SELECT md5(:salt || 'wv' || j)::uuid, md5(:salt || 'wf' || j)::uuid, 1, 'scale workflow ' || j, '',
           CAST(:graph AS jsonb), md5('h' || j), now() - interval '400 days', now() - interval '400 days'
    FROM generate_series(1, :workflows) AS j
    """,
    # Statuses: every (runs / paused)-th run PAUSED; the newest 0.1% RUNNING; 2% v1 drafts (NOT_STARTED);
    # the rest 93% COMPLETED, 5% FAILED, 2% CANCELED. 2% are children of an older run of their workflow.
    f"""
    INSERT INTO runs (id, tenant_id, workflow_id, workflow_version_id, parent_run_id, triggered_by,
                      status, run_type, initial_inputs, outputs, start_time, end_time, v1, name,
                      draft_state, auto_start, approval_state, attempt, created_at, updated_at)
    SELECT md5(:salt || 'run' || i)::uuid, {_TENANT_OF.format(j="w")}, md5(:salt || 'wf' || w)::uuid, md5(:salt || 'wv' || w)::uuid,
           CASE WHEN i % 50 = 7 AND i > :workflows THEN md5(:salt || 'run' || (i - :workflows))::uuid END,
           CASE WHEN w % 10 < :main_share THEN (CAST(:u0 AS uuid[]))[1 + i % {USERS_PER_TENANT}]
                ELSE (CAST(:u1 AS uuid[]))[1 + w % 3] END,
           s.status, 'interactive', '{{"input_node": {{"x": 1}}}}'::jsonb,
           CASE WHEN s.status = 'COMPLETED' THEN '{{"output_node": {{"y": 1}}}}'::jsonb END,
           t.at, CASE WHEN s.status IN ('COMPLETED', 'FAILED', 'CANCELED')
                      THEN t.at + (50 + i % 5000) * interval '1 millisecond' END,
           s.draft IS NOT NULL OR i % 10 = 3, CASE WHEN s.draft IS NOT NULL THEN 'draft ' || i END,
           s.draft, false, CASE WHEN s.status = 'COMPLETED' AND i % 100 = 13 THEN 'pending'
                                ELSE 'not_required' END,
           1, t.at, t.at + interval '1 second'
    FROM generate_series(1, :runs) AS i
    CROSS JOIN LATERAL (SELECT ((i - 1) % :workflows) + 1 AS w,
                               now() - (:runs - i) * (interval '365 days' / :runs) AS at) AS t
    CROSS JOIN LATERAL (SELECT
        CASE WHEN i % (:runs / :paused) = 0 THEN 'PAUSED'
             WHEN i > :runs - :runs / 1000 THEN 'RUNNING'
             WHEN i % 50 = 11 THEN 'PENDING'
             WHEN i % 100 < 5 THEN 'FAILED'
             WHEN i % 100 < 7 THEN 'CANCELED'
             ELSE 'COMPLETED' END AS status,
        CASE WHEN i % 50 = 11 THEN 'NOT_STARTED' END AS draft) AS s
    """,
    """
    INSERT INTO tasks (id, run_id, node_id, scope, seq, status, inputs, outputs, start_time, end_time)
    SELECT md5(:salt || 'task' || r.id || n)::uuid, r.id, (ARRAY['input_node', 'py1', 'output_node'])[1 + (n - 1) % 3]
               || CASE WHEN n > 3 THEN '_' || n ELSE '' END,
           '', n, CASE WHEN r.status = 'COMPLETED' THEN 'COMPLETED' ELSE 'RUNNING' END,
           '{"x": 1}'::jsonb, '{"y": 1}'::jsonb, r.start_time, r.end_time
    FROM runs r CROSS JOIN generate_series(1, :tasks_per_run) AS n
    WHERE r.draft_state IS NULL AND r.tenant_id = ANY(CAST(:tenants AS uuid[]))
    """,
    # An open pause for every PAUSED run; a decided one for ~10% of the completed runs (a human step
    # that was answered), always including those awaiting approval.
    """
    INSERT INTO pauses (id, run_id, node_id, seq, message, input_data, pause_time, resume_time,
                        resume_action)
    SELECT md5(:salt || 'pause' || r.id)::uuid, r.id, 'py1', 1, 'approve?', '{"x": 1}'::jsonb, r.start_time,
           CASE WHEN r.status = 'PAUSED' THEN NULL ELSE r.start_time + interval '1 minute' END,
           CASE WHEN r.status = 'PAUSED' THEN NULL ELSE 'APPROVE' END
    FROM runs r
    WHERE r.tenant_id = ANY(CAST(:tenants AS uuid[]))
      AND (r.status = 'PAUSED' OR r.approval_state = 'pending'
           OR (r.status = 'COMPLETED' AND get_byte(decode(md5(r.id::text), 'hex'), 0) < 26))
    """,
]


async def seed(
    engine: AsyncEngine, *, runs: int, workflows: int, paused: int, tasks_per_run: int = 2
) -> Seeded:
    """Write the rows (all tenants new), ANALYZE, and name a few rows of the caller's tenant to call."""
    if not (0 < paused <= runs and 0 < workflows <= runs):
        raise ValueError("need 0 < paused <= runs and 0 < workflows <= runs")
    key, tenants, users = await make_tenants(engine)
    params = {
        "main_share": MAIN_SHARE,
        "t0": tenants[0],
        "t1": tenants[1],
        "t2": tenants[2],
        "t3": tenants[3],
        "u0": users[0],
        "u1": [members[0] for members in users[1:]],
        "graph": _GRAPH,
        "workflows": workflows,
        "runs": runs,
        "paused": paused,
        "tasks_per_run": tasks_per_run,
        "tenants": tenants,
        "salt": uuid.uuid4().hex,
    }
    async with engine.begin() as conn:
        for sql in _SQL:
            names = {k: v for k, v in params.items() if f":{k}" in sql}
            await conn.execute(text(sql), names)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
        t0 = tenants[0]
        wf = await conn.scalar(
            text(
                "SELECT workflow_id FROM runs WHERE tenant_id = :t GROUP BY workflow_id "
                "ORDER BY count(*) DESC, workflow_id LIMIT 1"
            ),
            {"t": t0},
        )
        paused_run = await conn.scalar(
            text("SELECT id FROM runs WHERE tenant_id = :t AND status = 'PAUSED' LIMIT 1"), {"t": t0}
        )
        done = await conn.scalar(
            text(
                "SELECT r.id FROM runs r JOIN pauses p ON p.run_id = r.id "
                "WHERE r.tenant_id = :t AND r.status = 'COMPLETED' LIMIT 1"
            ),
            {"t": t0},
        )
    assert wf is not None and paused_run is not None and done is not None
    return Seeded(key, t0, wf, paused_run, done)
