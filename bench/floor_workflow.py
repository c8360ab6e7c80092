"""The floor workflow: one regular activity doubling ``x``. Kept free of non-Temporal imports (sandbox)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def double(inp: dict[str, int]) -> dict[str, int]:
    return {"y": inp["x"] * 2}


@workflow.defn
class DoubleWorkflow:
    @workflow.run
    async def run(self, inp: dict[str, int]) -> dict[str, int]:
        return await workflow.execute_activity(double, inp, start_to_close_timeout=timedelta(seconds=10))
