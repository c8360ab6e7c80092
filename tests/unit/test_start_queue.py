"""Which task queue a run starts on (`run_start.start_queue`)."""

from __future__ import annotations

from core.run_start import start_queue
from settings import Settings


def _settings() -> Settings:
    return Settings(_env_file=None, temporal_task_queue="q", api_eager_max_bytes=1000)


def test_a_small_start_by_an_api_hosting_a_worker_is_eager_on_the_eager_queue() -> None:
    assert start_queue(_settings(), True, 1000) == ("q-eager", True)


def test_a_start_over_the_eager_size_goes_to_the_shared_queue_not_eagerly() -> None:
    assert start_queue(_settings(), True, 1001) == ("q", False)


def test_a_start_by_an_api_without_a_worker_goes_to_the_shared_queue() -> None:
    assert start_queue(_settings(), False, 10) == ("q", False)
