"""Speed of the gate run against a baseline commit: CPU and wall apart, runs interleaved.

    python bench/speed.py [--baseline 93dcc57] [--repeats 3] [--jobs 1,2]
                          [--mbox [--mbox-jobs 1]] [--tree /tmp/ktree] [--suite]
                          [--out bench/results]

Each measured run is ``kconform check ...`` in a fresh process (so imports,
garbage collection and the process pool are all in the figure), timed from
outside: wall clock, and CPU as user + system time of the process and every
child it waited for (``os.wait4``), pool workers included.  The baseline is
the tree of ``--baseline`` extracted with ``git archive`` into a temporary
directory (nothing in the repository changes); the two are run alternately,
baseline then current, ``--repeats`` times, so a change of machine load
falls on both.  The load average is recorded before every run.  Each run's
``results.json`` (the tool's version left out) is compared with the
baseline's: a speed-up that changes a result is reported as such.

Rows:

- bundled series, gate: ``patches/``, baseline and current (each ``--jobs``);
  CPU ratio current / baseline (target <= 0.25);
- per patch, 84-patch series (``--mbox``): the mbox of ``bench/mbox.py``
  (21 copies of the 4 patches), current only (the baseline would take most
  of an hour), CPU / 84 (target <= 1 s);
- real patch with a tree (``--tree``): one real list patch with
  ``--kernel-tree``, cold (an empty cache directory) and warm (the same
  directory again), with the number of translations each run made
  (target <= 5 s cold, <= 1 s warm, warm translating nothing);
- test suite, wall (``--suite``): the README's test command, once (about
  twenty minutes before this work: not run unless asked).

Writes ``<out>/speed-<date>.json`` and ``<out>/speed-latest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.machine import describe, one_line  # noqa: E402

REAL_PATCH = "tests/data/list/001-helper-spte-need-atomic-write.eml"
REAL_REV = "v6.1.15"

# Counts the translations a run makes (harness.translate.tree.translate_units calls).
COUNTING = """
import sys
import harness.translate.tree as tree
made = [0]
real = tree.translate_units
def counted(*args, **kwargs):
    made[0] += 1
    return real(*args, **kwargs)
tree.translate_units = counted
from harness import cli
try:
    code = cli.main(sys.argv[1:])
finally:
    print(f"translations made: {made[0]}", file=sys.stderr)
sys.exit(code)
"""


def timed(argv: list[str], cwd: str, env: dict | None = None) -> dict:
    """Run ``argv``; its wall time, CPU time (with waited-for children) and exit code."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    stderr_text = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    return {"wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "exit": process.returncode, "load_before": round(load, 2),
            "stderr_tail": stderr_text.strip().splitlines()[-1:] if stderr_text else []}


def kconform(tree: str, args: list[str], env: dict | None = None, counting: bool = False
             ) -> list[str]:
    if counting:
        return [sys.executable, "-c", COUNTING] + args
    return [sys.executable, "-m", "harness.cli"] + args


def environment(tree: str, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = tree
    env.update(extra or {})
    return env


def results_of(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return None
    document.get("tool", {}).pop("version", None)
    return document


def extract(commit: str, into: str) -> str:
    """The tree of ``commit`` (``git archive``), unpacked under ``into``."""
    target = os.path.join(into, commit)
    os.makedirs(target, exist_ok=True)
    archive = subprocess.run(["git", "-C", ROOT, "archive", commit], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", target], input=archive, check=True)
    return target


def supports_jobs(tree: str) -> bool:
    with open(os.path.join(tree, "harness", "cli.py"), encoding="utf-8") as handle:
        return "--jobs" in handle.read()


def series_rows(baseline_tree: str, repeats: int, jobs_list: list[int], scratch: str
                ) -> tuple[list[dict], dict]:
    """The bundled series, interleaved: baseline, then current at each --jobs, repeated."""
    variants = [("baseline", baseline_tree, None)] + [("current", ROOT, j) for j in jobs_list]
    runs: dict[str, list[dict]] = {}
    documents: dict[str, dict | None] = {}
    for repeat in range(repeats):
        for label, tree, jobs in variants:
            name = label if jobs is None else f"{label} --jobs {jobs}"
            out = os.path.join(scratch, f"{name.replace(' ', '_')}-{repeat}.json")
            args = ["check", "patches/", "--quiet", "--json", out]
            if jobs is not None:
                args += ["--jobs", str(jobs)]
            run = timed(kconform(tree, args), cwd=tree, env=environment(tree))
            runs.setdefault(name, []).append(run)
            document = results_of(out)
            if name in documents and documents[name] != document:
                run["note"] = "results differ from this variant's first run"
            documents.setdefault(name, document)
            print(f"  {name:<20} run {repeat + 1}: CPU {run['cpu_s']:6.2f} s, wall "
                  f"{run['wall_s']:6.2f} s, load {run['load_before']}", flush=True)
    base_cpu = statistics.median(r["cpu_s"] for r in runs["baseline"])
    rows = []
    for name, measured in runs.items():
        cpu = statistics.median(r["cpu_s"] for r in measured)
        wall = statistics.median(r["wall_s"] for r in measured)
        same = documents[name] == documents["baseline"]
        rows.append({"measure": f"bundled series, gate: {name}", "cpu_s": cpu, "wall_s": wall,
                     "cpu_ratio": round(cpu / base_cpu, 3) if base_cpu else None,
                     "target": "CPU <= 0.25x baseline" if name != "baseline" else "",
                     "same_results": same, "runs": len(measured)})
    return rows, runs


def mbox_row(scratch: str, jobs_list: list[int]) -> list[dict]:
    from bench.mbox import write_mbox

    path = os.path.join(scratch, "series-84.mbox")
    write_mbox(os.path.join(ROOT, "patches"), 21, path)
    rows = []
    for jobs in jobs_list:
        out = os.path.join(scratch, f"mbox-{jobs}.json")
        run = timed(kconform(ROOT, ["check", path, "--quiet", "--json", out, "--jobs",
                                    str(jobs)]), cwd=ROOT, env=environment(ROOT))
        document = results_of(out) or {}
        patches = [p for p in document.get("patches", []) if not p.get("is_cover")]
        count = len(patches) or 84
        print(f"  84-patch mbox --jobs {jobs}: CPU {run['cpu_s']:.1f} s, wall "
              f"{run['wall_s']:.1f} s", flush=True)
        rows.append({"measure": f"per patch, 84-patch series (--jobs {jobs})",
                     "cpu_s": round(run["cpu_s"] / count, 3),
                     "wall_s": round(run["wall_s"] / count, 3), "target": "CPU <= 1 s",
                     "patches": count, "total_cpu_s": run["cpu_s"],
                     "total_wall_s": run["wall_s"], "load_before": run["load_before"]})
    return rows


def tree_rows(kernel_tree: str, scratch: str) -> list[dict]:
    cache = os.path.join(scratch, "cache")
    shutil.rmtree(cache, ignore_errors=True)
    rows = []
    for label in ("cold", "warm"):
        env = environment(ROOT, {"XDG_CACHE_HOME": cache})
        env.pop("KCONFORM_NO_CACHE", None)
        run = timed(kconform(ROOT, ["check", REAL_PATCH, "--quiet", "--kernel-tree",
                                    kernel_tree, "--rev", REAL_REV, "--jobs", "1"],
                             counting=True), cwd=ROOT, env=env)
        made = next((int(line.rsplit(":", 1)[1]) for line in run["stderr_tail"]
                     if line.startswith("translations made:")), None)
        print(f"  real patch with a tree, {label}: CPU {run['cpu_s']:.1f} s, wall "
              f"{run['wall_s']:.1f} s, translations {made}", flush=True)
        rows.append({"measure": f"real patch with a tree ({label} cache)",
                     "cpu_s": run["cpu_s"], "wall_s": run["wall_s"],
                     "target": "wall <= 5 s" if label == "cold" else "wall <= 1 s, 0 translations",
                     "translations": made, "patch": REAL_PATCH, "rev": REAL_REV,
                     "load_before": run["load_before"]})
    return rows


def suite_row() -> dict:
    """The README's test command (as ``bench/suite_timing.py`` reads it), once."""
    from bench.suite_timing import README, SUITE_WALL_S, readme_test_command
    with open(README, encoding="utf-8") as handle:
        command = readme_test_command(handle.read())
    run = timed(command, cwd=ROOT, env=environment(ROOT))
    return {"measure": "test suite, wall", "cpu_s": run["cpu_s"], "wall_s": run["wall_s"],
            "target": f"wall <= {SUITE_WALL_S:.0f} s", "exit": run["exit"],
            "load_before": run["load_before"]}


def markdown(document: dict) -> str:
    m = document["machine"]
    lines = [f"# Speed: gate run against {document['baseline']}", "",
             f"Machine: {one_line(m)}; load average {document['load'][0]} at the start, "
             f"{document['load'][1]} at the end; commit {document['commit']}.", "",
             "CPU = user + system time of the process and its children (pool workers); each "
             "figure is the median of the interleaved runs.", "",
             "| measure | CPU s | wall s | CPU vs baseline | target | same results | note |",
             "| --- | ---: | ---: | ---: | --- | --- | --- |"]
    for row in document["rows"]:
        note = ", ".join(f"{k} {row[k]}" for k in ("runs", "translations", "patches")
                         if k in row)
        lines.append(f"| {row['measure']} | {row['cpu_s']:.2f} | {row['wall_s']:.2f} | "
                     f"{row.get('cpu_ratio') if row.get('cpu_ratio') is not None else ''} | "
                     f"{row.get('target', '')} | "
                     f"{'yes' if row.get('same_results') else ('NO' if 'same_results' in row else '')}"
                     f" | {note} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--baseline", default="93dcc57")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", default="1,2", help="the current tree's --jobs values")
    parser.add_argument("--mbox", action="store_true", help="also the 84-patch mbox")
    parser.add_argument("--mbox-jobs", default="1", help="the --jobs values for the mbox")
    parser.add_argument("--tree", default=None, help="a kernel tree: the real-patch rows")
    parser.add_argument("--suite", action="store_true", help="also the test suite, once")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = parser.parse_args(argv)
    jobs_list = [int(j) for j in args.jobs.split(",") if j]
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kconform-speed-") as scratch:
        baseline_tree = extract(args.baseline, scratch)
        print(f"bundled series: baseline {args.baseline} vs current, interleaved", flush=True)
        rows, runs = series_rows(baseline_tree, args.repeats, jobs_list, scratch)
        if args.mbox:
            rows += mbox_row(scratch, [int(j) for j in args.mbox_jobs.split(",") if j])
        if args.tree:
            rows += tree_rows(args.tree, scratch)
        if args.suite:
            rows.append(suite_row())
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    document = {"schema": "kconform-speed/1", "baseline": args.baseline, "commit": commit,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": describe(),
                "load": [round(load_start, 2), round(os.getloadavg()[0], 2)],
                "rows": rows, "series_runs": runs}
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    with open(os.path.join(args.out, f"speed-{stamp}.json"), "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
    text = markdown(document)
    with open(os.path.join(args.out, "speed-latest.md"), "w", encoding="utf-8") as handle:
        handle.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
