"""Blocking calls waiting on a run's terminal write made in this same process.

A run's terminal state is decided by its first durable terminal write in PostgreSQL (`finalize_run`);
its Temporal execution then closes the way that write says. When the API's embedded worker took the
run's workflow task (eager start), that write happens in this process, and a blocking call can answer
from it at once instead of waiting for the execution to close and Temporal's long poll to return.
The call still races the long poll, which answers when the write happened in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

# Only runs a blocking call waits on are here, so outputs of other runs are never held.
_waiting: dict[str, asyncio.Future[dict[str, Any] | None]] = {}


@contextlib.contextmanager
def expect(run_id: uuid.UUID) -> Iterator[asyncio.Future[dict[str, Any] | None]]:
    """A future set once this process records the run's terminal state: the outputs of a run that
    COMPLETED, None for any other end. Enter it before the run's execution is started."""
    key = str(run_id)
    future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
    _waiting[key] = future
    try:
        yield future
    finally:
        _waiting.pop(key, None)


def recorded(run_id: str, completed: bool, outputs: dict[str, Any]) -> None:
    """Called after this process committed the run's first terminal write (never for a refused one)."""
    future = _waiting.get(run_id)
    if future is None or future.done():
        return
    value = dict(outputs) if completed else None
    loop = future.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        future.set_result(value)
    else:  # an activity run on another loop or thread
        loop.call_soon_threadsafe(_settle, future, value)


def _settle(future: asyncio.Future[dict[str, Any] | None], value: dict[str, Any] | None) -> None:
    if not future.done():
        future.set_result(value)
