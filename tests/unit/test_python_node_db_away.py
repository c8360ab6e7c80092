"""A Python node runs while PostgreSQL is away: its progress write is best effort, so a database restart
does not spend the node's few attempts (the chaos soak saw a run fail after three refused progress
writes during a 6-second PostgreSQL restart)."""

from __future__ import annotations

import socket
import uuid

from temporalio.testing import ActivityEnvironment

from activities.run_activities import RunActivities
from activities.sandbox import SandboxLimits, SandboxPool
from db.session import make_engine, make_session_factory
from workflows.contracts import PythonNodeInput


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


async def test_a_python_node_completes_while_its_progress_write_finds_no_database() -> None:
    engine = make_engine(f"postgresql://soak@127.0.0.1:{closed_port()}/nowhere", pool_size=1)
    pool = SandboxPool(python=None, isolation="none", limits=SandboxLimits(60.0, 60, 512))
    await pool.start()
    try:
        activities = RunActivities(make_session_factory(engine), pool, SandboxLimits(60.0, 60, 512))
        arg = PythonNodeInput(
            run_id=str(uuid.uuid4()),
            node_id="py1",
            code='return {"y": input_model.input_node.x * 2}',
            inputs={"input_node": {"x": 21}},
            output_schema={"y": "integer"},
        )
        result = await ActivityEnvironment().run(activities.run_python_node, arg)
    finally:
        await pool.close()
        await engine.dispose()
    assert result == {"y": 42}
