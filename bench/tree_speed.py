"""The "real patch with a tree" rows alone, against a baseline commit, interleaved.

    python bench/tree_speed.py --tree /tmp/ktree [--baseline 136d2ed] [--repeats 3]
                               [--patch tests/data/list/001-....eml --rev v6.1.15]...
                               [--bytecode] [--out bench/results]

``bench/speed.py --tree`` runs these rows after the whole bundled-series
section; this runs only them, for work on the translator, the translation
cache and resolve's git plumbing.  Per repeat and per variant (the baseline's
tree from ``git archive``, then the current tree): ``kconform check PATCH
--quiet --kernel-tree TREE --rev REV --jobs 1 --json`` with an empty
translation cache (cold), then again on that cache (warm), each in a fresh
process, timed from outside as ``bench/speed.py`` times it (CPU = user +
system of the process and its children; wall; the load average before each
run; the number of translations made).  Each run's JSON (the tool's version
left out) is compared with the baseline's cold run of the same patch: a
speed-up that changes a result is reported as such.

``--bytecode``: the project's modules are compiled once before the runs
(``PYTHONPYCACHEPREFIX`` in a scratch directory), as an installed package
has them; without it the environment decides (``PYTHONDONTWRITEBYTECODE=1``
makes every run compile every module it imports, about half a second here).

Writes ``<out>/tree-speed-<date>.json`` and ``<out>/tree-speed-latest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.machine import describe, one_line  # noqa: E402
from bench.speed import COUNTING, REAL_PATCH, REAL_REV, environment, extract, results_of, \
    timed  # noqa: E402


def run_once(tree: str, patch: str, rev: str, kernel_tree: str, cache: str, out: str,
             extra_env: dict) -> dict:
    env = environment(tree, {"XDG_CACHE_HOME": cache, **extra_env})
    env.pop("KCONFORM_NO_CACHE", None)
    argv = [sys.executable, "-c", COUNTING, "check", patch, "--quiet", "--kernel-tree",
            kernel_tree, "--rev", rev, "--jobs", "1", "--json", out]
    run = timed(argv, cwd=tree, env=env)
    run["translations"] = next((int(line.rsplit(":", 1)[1]) for line in run["stderr_tail"]
                                if line.startswith("translations made:")), None)
    return run


def compile_modules(tree: str, extra_env: dict) -> None:
    env = environment(tree, extra_env)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "harness", "kernel_models"],
                   cwd=tree, env=env, check=False, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tree", required=True, help="the kernel tree (git)")
    parser.add_argument("--baseline", default="136d2ed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--patch", action="append", default=None,
                        help="a patch to check (repeatable; default the speed row's)")
    parser.add_argument("--rev", action="append", default=None,
                        help="its --rev (one per --patch)")
    parser.add_argument("--bytecode", action="store_true",
                        help="compile the modules once first, as an installed package has them")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = parser.parse_args(argv)
    patches = args.patch or [REAL_PATCH]
    revs = args.rev or [REAL_REV]
    if len(revs) != len(patches):
        parser.error("give one --rev per --patch")
    load_start = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {}
    same: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="kconform-tree-speed-") as scratch:
        variants = [("baseline", extract(args.baseline, scratch)), ("current", ROOT)]
        extra_env = {}
        if args.bytecode:
            extra_env = {"PYTHONPYCACHEPREFIX": os.path.join(scratch, "pycache"),
                         "PYTHONDONTWRITEBYTECODE": ""}
            for _, tree in variants:
                compile_modules(tree, extra_env)
        reference: dict[str, dict | None] = {}
        for repeat in range(args.repeats):
            for patch, rev in zip(patches, revs):
                for label, tree in variants:
                    cache = os.path.join(scratch, f"cache-{label}-{repeat}")
                    for kind in ("cold", "warm"):
                        out = os.path.join(scratch, f"{label}-{kind}-{repeat}.json")
                        run = run_once(tree, os.path.join(ROOT, patch), rev, args.tree,
                                       cache, out, extra_env)
                        document = results_of(out)
                        key = f"{patch} {rev}"
                        reference.setdefault(key, document)
                        name = f"{os.path.basename(patch)} @ {rev}: {label}, {kind}"
                        run["same_results"] = document is not None and \
                            document == reference[key]
                        same[name] = same.get(name, True) and run["same_results"]
                        runs.setdefault(name, []).append(run)
                        print(f"  {name:<60} CPU {run['cpu_s']:6.2f} s, wall "
                              f"{run['wall_s']:6.2f} s, load {run['load_before']:5.2f}, "
                              f"translations {run['translations']}, same "
                              f"{run['same_results']}", flush=True)
    rows = []
    for name, measured in runs.items():
        rows.append({"measure": name,
                     "cpu_s": statistics.median(r["cpu_s"] for r in measured),
                     "wall_s": statistics.median(r["wall_s"] for r in measured),
                     "translations": measured[-1]["translations"],
                     "same_results": same[name], "runs": len(measured),
                     "load_before": [r["load_before"] for r in measured]})
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    document = {"schema": "kconform-tree-speed/1", "baseline": args.baseline, "commit": commit,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": describe(), "bytecode": args.bytecode,
                "load": [round(load_start, 2), round(os.getloadavg()[0], 2)],
                "rows": rows, "runs": runs}
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    with open(os.path.join(args.out, f"tree-speed-{stamp}.json"), "w",
              encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
    lines = [f"# Real patch with a tree: {args.baseline} vs {commit}", "",
             f"Machine: {one_line(document['machine'])}; load average {document['load'][0]} "
             f"at the start, {document['load'][1]} at the end; modules "
             f"{'compiled once first' if args.bytecode else 'as the environment leaves them'}.",
             "", "Each run a fresh `kconform check PATCH --quiet --kernel-tree TREE --rev REV "
             "--jobs 1`; cold = empty translation cache, warm = the same cache again; baseline "
             "and current interleaved; figures are medians; CPU = user + system.  Same results "
             "= the JSON equals the baseline's cold run, byte for byte but the tool version.", "",
             "| run | CPU s | wall s | translations | same results | runs | load before |",
             "| --- | ---: | ---: | ---: | --- | ---: | --- |"]
    for row in rows:
        lines.append(f"| {row['measure']} | {row['cpu_s']:.2f} | {row['wall_s']:.2f} | "
                     f"{row['translations']} | {'yes' if row['same_results'] else 'NO'} | "
                     f"{row['runs']} | {', '.join(str(x) for x in row['load_before'])} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "tree-speed-latest.md"), "w", encoding="utf-8") as handle:
        handle.write(text)
    print(text)
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
