"""The stubs stand for every activity the run workflows may call, under the same names."""

from __future__ import annotations

from typing import Any, cast

from temporalio import activity

from activities.run_activities import RunActivities
from tests.engine.stubs import Stubs


def names(functions: list[Any]) -> set[str]:
    # temporalio keeps the registered name on the decorated function; it has no public reader.
    return {str(activity._Definition.must_from_callable(fn).name) for fn in functions}


def test_stubs_register_every_run_activity_under_its_real_name() -> None:
    real = RunActivities(cast(Any, None), cast(Any, None), cast(Any, None)).activities()
    assert names(Stubs().all()) == names(real)
