"""The test suite's wall and CPU time, run as the README's test command runs it.

The command is read from the README (its second ``sh`` block, the one .ci/run
runs): the part after the last ``&&``, the pytest run, with ``.venv/bin/python``
replaced by the Python running the bench.  It runs once, in a fresh process
from the repository root; wall time is ``time.perf_counter`` around it, CPU
time is what it and its children used (``RUSAGE_CHILDREN``: pytest-xdist's
workers and every process a test starts).  The load average before and after
says how much other work shared the machine.  ``--quick`` runs the same
command on ``tests/test_project.py`` only: a figure for the plumbing, not the
suite's, so it is held against no target.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time

from bench import machine, settings as S, table

README = os.path.join(S.ROOT, "README.md")
SUITE_WALL_S = 180.0          # issue 18: the README test command <= 3 minutes wall on 2 cores
QUICK_PATHS = ("tests/test_project.py",)


def readme_test_command(text: str) -> list[str]:
    """argv of the pytest part of the README's test command."""
    blocks = re.findall(r"```sh\n(.+?)\n```", text, flags=re.S)
    words = blocks[1].split("&&")[-1].split()
    return [sys.executable if w.endswith("/python") or w == "python" else w for w in words]


def outcome_counts(output: str) -> dict[str, int]:
    """pytest's last line, '1624 passed, 3 xfailed in 12.3s', as counts."""
    lines = [line for line in output.splitlines() if re.search(r"\bin [\d.]+s", line)]
    return {word: int(count) for count, word in re.findall(r"(\d+) (\w+)", lines[-1])} \
        if lines else {}


def measure(settings: S.Settings, context: dict) -> tuple[dict, list[dict]]:
    with open(README, encoding="utf-8") as handle:
        argv = readme_test_command(handle.read())
    if settings.quick:
        argv += list(QUICK_PATHS)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = machine.load_average()
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=S.ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    counts = outcome_counts(done.stdout)
    data = {"command": " ".join(argv), "returncode": done.returncode, "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "counts": counts, "load_average_before": load_before,
            "load_average_after": machine.load_average(), "cores": machine.usable_cores(),
            "quick": settings.quick}
    note = (f"{' '.join(os.path.basename(a) if a == sys.executable else a for a in argv)}: "
            f"exit {done.returncode}, {', '.join(f'{n} {w}' for w, n in counts.items())}; "
            f"CPU {cpu:.0f} s; load {load_before} before, {data['load_average_after']} after")
    if settings.quick:
        rows = [table.row("suite", "test suite, wall (quick: tests/test_project.py only)",
                          table.seconds(wall), note=note)]
    else:
        rows = [table.against("suite", "test suite, wall", table.seconds(wall),
                              wall <= SUITE_WALL_S and done.returncode == 0,
                              f"≤ {SUITE_WALL_S:.0f} s on 2 cores", note=note)]
    return data, rows
