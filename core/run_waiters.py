"""Blocking calls waiting on a run's terminal write made in this same process.

A run's terminal state is decided by its first durable terminal write in PostgreSQL (`finalize_run`);
its Temporal execution then closes the way that write says. When the API's embedded worker took the
run's workflow task (eager start), that write happens in this process, and a blocking call can answer
from it at once instead of waiting for the execution to close and Temporal's long poll to return.
The call still falls back on the long poll, which answers when the write happened in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Waiter:
    # Set once this process records the run's terminal state: the outputs of a run that COMPLETED,
    # None for any other end.
    recorded: asyncio.Future[dict[str, Any] | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    # The execution's first workflow task was handed to this process's worker (eager start), so its
    # terminal write most likely happens here too.
    started_here: bool = False


# Only runs a blocking call waits on are here, so outputs of other runs are never held.
_waiting: dict[str, Waiter] = {}


@contextlib.contextmanager
def expect(run_id: uuid.UUID) -> Iterator[Waiter]:
    """Watch for the run's terminal write in this process; enter it before the execution starts."""
    key = str(run_id)
    waiter = Waiter()
    _waiting[key] = waiter
    try:
        yield waiter
    finally:
        _waiting.pop(key, None)


def started_eagerly(run_id: str) -> None:
    if (waiter := _waiting.get(run_id)) is not None:
        waiter.started_here = True


def recorded(run_id: str, completed: bool, outputs: dict[str, Any]) -> None:
    """Called after this process committed the run's first terminal write (never for a refused one)."""
    waiter = _waiting.get(run_id)
    if waiter is None or waiter.recorded.done():
        return
    value = dict(outputs) if completed else None
    loop = waiter.recorded.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        waiter.recorded.set_result(value)
    else:  # an activity run on another loop or thread
        loop.call_soon_threadsafe(_settle, waiter.recorded, value)


def _settle(future: asyncio.Future[dict[str, Any] | None], value: dict[str, Any] | None) -> None:
    if not future.done():
        future.set_result(value)
