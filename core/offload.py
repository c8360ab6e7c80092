"""CPU-bound work on large inputs, moved off the event loop.

Validating and checking a large graph takes tens of milliseconds of CPU (a 1,000-node chain: ~70 ms
to save). On the event loop that stalls every request of the process, /health included; in a thread
it still takes the GIL, but gives it back every switch interval (5 ms), so other requests are served
meanwhile. Small inputs stay on the loop: a thread hop costs more than their check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# Past this many nodes (the graph and its loop bodies) a graph's checks go to a thread.
LARGE_GRAPH_NODES = 100
# Past this many bytes a request's body (and what is built from it) is handled in a thread.
LARGE_BODY_BYTES = 64 * 1024


def is_large(definition: Mapping[str, Any] | None) -> bool:
    return definition is not None and len(definition.get("nodes") or ()) > LARGE_GRAPH_NODES


async def run(large: bool, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)`, in a thread when `large`."""
    if large:
        return await asyncio.to_thread(fn, *args, **kwargs)
    return fn(*args, **kwargs)
