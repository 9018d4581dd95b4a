"""Benchmark: the gate operation mix on each tag's translated entry points.

    python bench/translated_operations.py [--tree /tmp/ktree] [--tags v6.9,v6.12]

For each tag of a kernel tree (default: every tag): the translated tree state
builds the operation mix's VM through its own init paths and runs the explicit
gate mix (``harness.check.fidelity.operation_mix``: the kept sequences, then
each operation once after a fault) in every mode and MMU where each sequence
applies, PML on and off, beside the hand-written models.  Per tag: sequences
run, skipped (an operation the release lacks, with the reason), stopped (a
name the environment lacks), and of those run how many agree with the models
event by event.  Only at v6.9 (the models' release) is a disagreement a bug in
one of them; at other tags it is mostly the release's own behaviour.

Writes ``bench/results/<date>-translated-operations.json`` (schema
``kconform-translated-operations/1``) and
``bench/results/translated-operations-latest.md``.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402


def tags(path: str) -> list[str]:
    return subprocess.run(["git", "-C", path, "tag", "--sort=version:refname"],
                          capture_output=True, text=True, check=True).stdout.split()


def measure(tree_path: str, tag: str) -> dict:
    from harness.check import fidelity
    from harness.resolve import tree_source
    from harness.resolve.kernel_tree import open_tree
    from kernel_models.model_source import HAND_WRITTEN

    tree = open_tree(tree_path)
    state = tree_source.translate_state(tree_source.sources_at(tree, tag), f"tree {tag}",
                                        tree.text_at(tag, "Makefile"))
    start = time.perf_counter()
    rows = fidelity.compare_operations(state, HAND_WRITTEN.state("base"))
    seconds = time.perf_counter() - start
    counts = collections.Counter(r.outcome for r in rows)
    skipped = sorted({r.detail for r in rows if r.outcome == fidelity.SKIPPED})
    stops = collections.Counter(r.detail.split("\n")[0] for r in rows
                                if r.outcome == fidelity.NOT_RUN)
    first = [f"{r.sequence} [{r.mode} {r.mmu}] {','.join(r.channels)}"
             for r in rows if r.outcome == fidelity.DIFFERS][:5]
    return {"tag": tag, "sequences": len(rows), "equal": counts[fidelity.EQUAL],
            "differs": counts[fidelity.DIFFERS], "stopped": counts[fidelity.NOT_RUN],
            "skipped": counts[fidelity.SKIPPED], "skip_reasons": skipped,
            "stops": dict(stops.most_common(3)), "first_differences": first,
            "operations_run": tree_source.operations_run(state, state), "seconds": seconds}


def table(rows: list[dict], commit: str, day: str) -> str:
    lines = [f"#### The gate mix on translated entry points "
             f"(`python bench/translated_operations.py`, {day}, commit {commit})", "",
             "| tag | sequences | run | agree with the models | differ | stopped | skipped | "
             "check's operation level | seconds |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        ran = r["equal"] + r["differs"]
        level = "runs" if r["operations_run"] is None else "not run"
        lines.append(f"| {r['tag']} | {r['sequences']} | {ran} | {r['equal']} | {r['differs']} | "
                     f"{r['stopped']} | {r['skipped']} | {level} | {r['seconds']:.1f} |")
    lines += ["", "Skipped (the release lacks the step) and the most frequent stops:", ""]
    for r in rows:
        for reason in r["skip_reasons"]:
            lines.append(f"- {r['tag']} skipped: {reason}")
        for stop, n in r["stops"].items():
            lines.append(f"- {r['tag']} stopped ({n}): {stop}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", default="/tmp/ktree")
    parser.add_argument("--tags", default="")
    args = parser.parse_args()
    chosen = args.tags.split(",") if args.tags else tags(args.tree)
    rows = [measure(args.tree, tag) for tag in chosen]
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    day = datetime.date.today().isoformat()
    out = ROOT / "bench" / "results"
    report = {"schema": "kconform-translated-operations/1", "machine": machine.describe(),
              "commit": commit, "tags": rows}
    (out / f"{day}-translated-operations.json").write_text(json.dumps(report, indent=1) + "\n")
    text = table(rows, commit, day)
    (out / "translated-operations-latest.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
