"""Benchmark: whole-tree translation per release tag, and the audit against the models.

    python bench/translate_tree.py [--tree /tmp/ktree] [--tags v6.1.15,v6.9] [--no-fidelity]

For each tag of a kernel tree (default: every tag; the tree assembled from
``/work/shared/kernel-trees`` has one per release): the time to translate the
whole tree state cold (no cache, a fresh process state) and warm (the
in-memory cache), and per file the functions translated / defined with the
blob id; at ``--fidelity-tag`` (default ``v6.9``, nearest the RFC series'
base) the behaviour of every driven function against the hand-written
models of the ``base`` state on the exhaustive domain.

Writes ``bench/results/<date>-translate.json`` (schema ``kconform-translate/1``:
machine, commit, per tag: seconds, files with blob ids, misses; the audit
rows) and ``bench/results/translate-latest.md`` (the table for the README).
When ``--manifest`` names the kernel-trees manifest, each file's blob id
is checked against it and the JSON says whether they match.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["KCONFORM_NO_CACHE"] = "1"          # cold means cold: no disk cache

from bench import machine  # noqa: E402
from harness.translate import coverage, tree  # noqa: E402

SHORT = {f: f.rsplit("/", 1)[-1] for f in coverage.TARGET_FILES}


def tags(path: str) -> list[str]:
    out = subprocess.run(["git", "-C", path, "tag", "--sort=version:refname"], capture_output=True,
                         text=True, check=True).stdout.split()
    return out


def manifest_blobs(path: str | None) -> dict:
    if not path or not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    return {v["tag"]: {f["path"]: f["blob"] for f in v["files"]} for v in data["versions"]}


def measure_tag(path: str, tag: str, manifest: dict) -> dict:
    tree._MEMORY.clear()
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    state = tree.translate_tree(path, tag, cache=False)
    cold, cold_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    tree.translate_tree(path, tag, cache=False)
    warm = time.perf_counter() - start
    files = []
    for row in coverage.coverage(state):
        expected = manifest.get(tag, {}).get(row.file)
        files.append({"file": row.file, "blob": row.blob, "defined": row.defined,
                      "translated": row.translated, "share": round(row.share, 4),
                      "environment_gaps": row.environment_gaps,
                      "manifest_blob_matches": (expected == row.blob) if expected else None,
                      "misses": [{"function": f, "miss": m} for f, m in row.misses]})
    return {"tag": tag, "seconds_cold": round(cold, 2), "cpu_seconds_cold": round(cold_cpu, 2),
            "seconds_warm": round(warm, 4), "functions_translated": sum(
                f.translated for f in state.functions.values()),
            "functions": len(state.functions), "files": files}, state


def audit(state) -> list[dict]:
    from harness.check import fidelity
    from kernel_models.registry import VersionSet
    rows = []
    for row in fidelity.compare_state(state, VersionSet.series_state("base")):
        rows.append({"function": row.function, "file": row.file, "outcome": row.outcome,
                     "cases": row.cases, "detail": row.detail})
    return rows


def markdown(result: dict) -> str:
    lines = [f"Machine: {machine.one_line(result['machine'])}; commit {result['commit'][:12]}",
             "",
             "| tag | " + " | ".join(SHORT.values()) + " | cold s (CPU s) | warm s |",
             "|---|" + "---|" * (len(SHORT) + 2)]
    for row in result["tags"]:
        by_file = {f["file"]: f for f in row["files"]}
        cells = []
        for file in SHORT:
            f = by_file.get(file)
            cells.append(f"{f['translated']}/{f['defined']}" if f else "-")
        lines.append(f"| {row['tag']} | " + " | ".join(cells)
                     + f" | {row['seconds_cold']} ({row['cpu_seconds_cold']}) | "
                       f"{row['seconds_warm']} |")
    if result.get("audit"):
        lines += ["", f"Audit at {result['fidelity_tag']} against the hand-written models "
                      "of 'base' (exhaustive domain, every mode):", "",
                  "| function | outcome | cases | detail |", "|---|---|---|---|"]
        undriven = [row["function"] for row in result["audit"] if row["outcome"] == "no driver"]
        for row in result["audit"]:
            if row["outcome"] == "no driver":
                continue
            detail = row["detail"].split("\n")[0][:120].replace("|", "\\|")
            lines.append(f"| {row['function']} | {row['outcome']} | {row['cases']} | {detail} |")
        if undriven:
            lines += ["", f"{len(undriven)} more modelled functions translate but have no "
                          "driver (operation level only): not compared here."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", default="/tmp/ktree")
    parser.add_argument("--tags", default=None, help="comma-separated (default: every tag)")
    parser.add_argument("--fidelity-tag", default="v6.9")
    parser.add_argument("--no-fidelity", action="store_true")
    parser.add_argument("--manifest", default="/work/shared/kernel-trees/MANIFEST.json")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    wanted = args.tags.split(",") if args.tags else tags(args.tree)
    manifest = manifest_blobs(args.manifest)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    result = {"schema": "kconform-translate/1", "machine": machine.describe(), "commit": commit,
              "tree": args.tree, "tags": [], "fidelity_tag": args.fidelity_tag, "audit": []}
    for tag in wanted:
        row, state = measure_tag(args.tree, tag, manifest)
        result["tags"].append(row)
        shares = ", ".join(f"{SHORT[f['file']]} {f['translated']}/{f['defined']}"
                           for f in row["files"] if f["file"] in SHORT)
        print(f"{tag}: {row['seconds_cold']}s cold, {row['seconds_warm']}s warm; {shares}",
              flush=True)
        if tag == args.fidelity_tag and not args.no_fidelity:
            result["audit"] = audit(state)
            for a in result["audit"]:
                print(f"  {a['outcome']:<12} {a['function']} ({a['cases']} cases)", flush=True)
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    with open(os.path.join(args.out, f"{stamp}-translate.json"), "w", encoding="utf-8") as out:
        json.dump(result, out, indent=1)
    with open(os.path.join(args.out, "translate-latest.md"), "w", encoding="utf-8") as out:
        out.write(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
