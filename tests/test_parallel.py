"""harness.check.parallel: results in the order asked, whatever order workers end in."""

from __future__ import annotations

import os
import time

import pytest

from harness.check import parallel


def _slow_then_pid(seconds: float, value: int):
    time.sleep(seconds)
    return value, os.getpid()


def _fails(message: str):
    raise ValueError(message)


@pytest.mark.skipif(not parallel.can_fork(), reason="no fork on this platform")
def test_results_come_back_in_task_order_from_other_processes():
    tasks = [(_slow_then_pid, (0.3, 0)), (_slow_then_pid, (0.0, 1)), (_slow_then_pid, (0.1, 2))]
    results = parallel.run(tasks, jobs=2)
    assert [value for value, _ in results] == [0, 1, 2]
    assert os.getpid() not in {pid for _, pid in results}


def test_one_job_runs_here_in_order():
    results = parallel.run([(_slow_then_pid, (0.0, 5)), (_slow_then_pid, (0.0, 6))], jobs=1)
    assert results == [(5, os.getpid()), (6, os.getpid())]


@pytest.mark.skipif(not parallel.can_fork(), reason="no fork on this platform")
def test_a_task_that_raises_raises_here():
    with pytest.raises(ValueError, match="task 2 broke"):
        parallel.run([(_slow_then_pid, (0.0, 1)), (_fails, ("task 2 broke",))], jobs=2)


def test_cores_is_what_the_process_may_use():
    assert 1 <= parallel.cores() <= (os.cpu_count() or 1)
