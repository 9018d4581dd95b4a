"""Repeat a measurement and keep every run: best, median, and peak memory.

Each run records wall-clock time (what the targets are about) and this
process's CPU time (``time.process_time``): when other work shares the
machine, wall time grows and CPU time much less, so the pair shows it.

Timed runs never trace memory (tracemalloc slows Python code severalfold);
``peak_memory`` runs the function once more, traced, and reports the peak of
Python allocations plus the process's maximum resident set so far.
"""

from __future__ import annotations

import gc
import resource
import statistics
import time
import tracemalloc
from dataclasses import dataclass, field


@dataclass
class Timing:
    runs: list[float]                 # wall-clock seconds
    value: object = None              # what the last run returned
    cpu_runs: list[float] = field(default_factory=list)   # this process's CPU seconds

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu_runs) if self.cpu_runs else None

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def as_dict(self) -> dict:
        return {"best_s": round(self.best, 4), "median_s": round(self.median, 4),
                "runs": len(self.runs), "runs_s": [round(r, 4) for r in self.runs],
                "cpu_median_s": round(self.cpu_median, 4) if self.cpu_runs else None}


def repeat(function, times: int = 3, budget_s: float | None = None) -> Timing:
    """Call ``function()`` ``times`` times; wall-clock seconds of each call.

    With ``budget_s``, stop repeating once the runs so far plus one more
    would pass it (the first run always happens); ``runs`` says how many ran.
    """
    runs, cpu_runs, value = [], [], None
    for _ in range(max(1, times)):
        if runs and budget_s is not None and sum(runs) + runs[-1] > budget_s:
            break
        gc.collect()
        start, cpu_start = time.perf_counter(), time.process_time()
        value = function()
        runs.append(time.perf_counter() - start)
        cpu_runs.append(time.process_time() - cpu_start)
    return Timing(runs, value, cpu_runs)


def peak_memory(function) -> dict:
    """Peak traced Python memory of one call, and the process max RSS after it."""
    gc.collect()
    tracemalloc.start()
    try:
        function()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    max_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_traced_mib": round(peak / 2**20, 2),
            "process_max_rss_mib": round(max_rss_kib / 1024, 1)}
