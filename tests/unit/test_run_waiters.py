"""A blocking call answered from this process's own terminal write (`core.run_waiters`)."""

from __future__ import annotations

import asyncio
import threading
import uuid

from core import run_waiters


async def test_a_completed_terminal_write_hands_its_outputs_to_the_waiting_call() -> None:
    run_id = uuid.uuid4()
    with run_waiters.expect(run_id) as here:
        run_waiters.recorded(str(run_id), True, {"out": {"y": 2}})
        assert await asyncio.wait_for(here.recorded, 1) == {"out": {"y": 2}}


async def test_any_other_end_tells_the_call_to_read_the_stored_run() -> None:
    run_id = uuid.uuid4()
    with run_waiters.expect(run_id) as here:
        run_waiters.recorded(str(run_id), False, {})
        assert await asyncio.wait_for(here.recorded, 1) is None


async def test_a_write_on_another_thread_reaches_the_waiting_call() -> None:
    run_id = uuid.uuid4()
    with run_waiters.expect(run_id) as here:
        writer = threading.Thread(target=run_waiters.recorded, args=(str(run_id), True, {"o": {}}))
        writer.start()
        assert await asyncio.wait_for(here.recorded, 1) == {"o": {}}
        writer.join()


async def test_runs_nobody_waits_on_are_not_held() -> None:
    run_id = uuid.uuid4()
    run_waiters.recorded(str(run_id), True, {"big": "x" * 1000})
    with run_waiters.expect(run_id) as here:
        assert not here.recorded.done()
    assert str(run_id) not in run_waiters._waiting


async def test_an_eager_start_is_marked_on_the_waiting_call_only() -> None:
    run_id, other = uuid.uuid4(), uuid.uuid4()
    with run_waiters.expect(run_id) as here:
        run_waiters.started_eagerly(str(other))
        assert not here.started_here
        run_waiters.started_eagerly(str(run_id))
        assert here.started_here
