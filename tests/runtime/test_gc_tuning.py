"""The serving processes' cycle collector: collected less often, with what exists at start
frozen out of its walks."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from vulfix.gc_tuning import OLDER_THRESHOLDS, YOUNG_THRESHOLD, tune_for_many_connections


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_the_collector_runs_less_often_and_skips_what_was_built(restored_collector: None) -> None:
    built = [{"connection": n} for n in range(1000)]  # stands for the application's objects
    tune_for_many_connections()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
    assert gc.get_freeze_count() >= len(built)
