"""Run independent checks in a pool of processes, results in the order asked.

The pipeline resolves every patch first, one after another (a series' patch
starts from the state the previous one left, and resolving registers derived
models in this process).  Then the checks are independent: each patch's
``engine.check_patch``, the series' net change, the pre-existing findings.
``run`` hands them to ``jobs`` worker processes forked from this one - so
each worker has every model and derived blob this process has registered,
and nothing but a task's index crosses to it - and returns the results in
the order of ``tasks``, whatever order the workers finished in: the results
document is the same byte for byte with one job or many.

A worker returns plain values (findings, coverage lines); an exception a
task raises is raised here, as if the task had run in this process.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Callable

# The tasks of the run in progress: set before the workers fork, read by index in them.
_TASKS: list[tuple[Callable, tuple]] = []


def cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def run(tasks: list[tuple[Callable, tuple]], jobs: int) -> list:
    """``[function(*args) for function, args in tasks]``, on up to ``jobs`` processes."""
    global _TASKS
    if jobs <= 1 or len(tasks) <= 1 or not can_fork():
        return [function(*args) for function, args in tasks]
    _TASKS = list(tasks)
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(min(jobs, len(tasks)), initializer=_worker_starts) as pool:
            return pool.map(_run_task, range(len(tasks)), chunksize=1)
    finally:
        _TASKS = []


def _worker_starts() -> None:
    import signal

    # the parent handles ^C and SIGTERM (cli._interrupt) and ends the pool
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run_task(index: int):
    function, args = _TASKS[index]
    return function(*args)
