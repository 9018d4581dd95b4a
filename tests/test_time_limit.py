"""The per-patch time limit (``pipeline.time_limit``) stops a check even when its first
alarm lands while the garbage collector runs a callback, where Python prints an exception
and drops it."""
from __future__ import annotations

import gc
import time
from types import SimpleNamespace

import pytest

from harness import pipeline
from harness.errors import LimitError

PATCH = SimpleNamespace(path="patches/x.patch", message_id="<x@example>")


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_an_alarm_dropped_inside_a_collector_callback_comes_again():
    swallowed = []

    def slow_callback(phase, info):
        if phase == "start" and not swallowed:
            swallowed.append(True)
            _spin(1.5)          # the 1 s alarm fires here, inside the callback

    gc.callbacks.append(slow_callback)
    try:
        with pytest.raises(LimitError, match=r"1 s \(CPU\) limit per patch"):
            with pipeline.time_limit(1, PATCH):
                gc.collect()
                _spin(3)        # the check goes on: only a repeated alarm stops it
    finally:
        gc.callbacks.remove(slow_callback)
    assert swallowed


def test_a_check_within_its_limit_is_not_stopped():
    with pipeline.time_limit(5, PATCH):
        _spin(0.2)


def test_waiting_is_not_checking_time():
    """The limit counts the process's CPU time: a check slowed by a loaded machine (here:
    not running at all) is not stopped; wall-clock time past the limit raises nothing."""
    with pipeline.time_limit(1, PATCH):
        time.sleep(1.5)
