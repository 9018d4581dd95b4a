"""Real list patches against a kernel tree: route to the pre-image, verdict, findings, time.

    python bench/list_patches.py --kernel-tree /tmp/ktree [--list tests/data/list]
                                 [--out bench/results/list-<date>.json]

The mails of the list directory's ``index.json`` are checked with
``--kernel-tree TREE --rev REV``, REV being the newest tag of the tree not
after the (first) mail's date (``index.json``'s ``rev``): the parts of one
series (the same Message-ID stem) together and in order, as a CI applies a
series patch after patch; every other mail on its own.  Per patch the table shows
the route each file's pre-image took (or the MISS reason), the verdict, the
findings (check/channel), and the wall-clock time of the whole check.
Nothing here is tuned to a patch: it runs the pipeline as the CLI does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def series_stem(message_id: str) -> str:
    """``<date.pid-N-author>`` without ``N``: the same for every part of one series."""
    return re.sub(r"-\d+-([^-@]+@)", r"-\1", message_id)


def check_one(paths: list[str], tree: str, rev: str) -> dict:
    from harness.pipeline import RunOptions, check_paths

    started = time.perf_counter()
    results, _ = check_paths(paths, RunOptions(kernel_tree=tree, rev=rev))
    seconds = time.perf_counter() - started
    entries = [e for e in results["patches"] if not e.get("is_cover")]
    rows = []
    for entry in entries:
        versions = entry.get("versions") or {}
        routes = [f"{p['file'].rsplit('/', 1)[-1]}:{p['route'] or 'MISS'}"
                  for p in versions.get("preimages") or []]
        misses = sorted({h["reason"] for h in entry["hunks"] if not h["covered"]})
        rows.append({
            "file": os.path.basename(entry["path"]), "message_id": entry.get("message_id"),
            "verdict": entry["verdict"], "routes": routes,
            "commits": sorted({(p.get("commit") or "")[:12] for p in versions.get("preimages") or []
                               if p.get("commit")}),
            "models": versions.get("before"),
            "findings": [f"{f['severity']} {f['check']} [{f['channel']}]"
                         for f in entry.get("findings") or [] if not f.get("inherited")],
            "miss_reasons": misses[:3],
        })
    return {"seconds": round(seconds, 2), "patches": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kernel-tree", required=True)
    parser.add_argument("--list", default=os.path.join(ROOT, "tests", "data", "list"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    with open(os.path.join(args.list, "index.json"), encoding="utf-8") as handle:
        index = json.load(handle)
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                         f"{platform.python_version()}",
              "kernel_tree": args.kernel_tree, "mails": []}
    groups: dict[str, list[dict]] = {}
    for mail in index["mails"]:
        groups.setdefault(series_stem(mail["message_id"]), []).append(mail)
    for mails in groups.values():
        rev = mails[0]["rev"]
        row = {"files": [m["file"] for m in mails], "rev": rev}
        row.update(check_one([os.path.join(args.list, m["file"]) for m in mails],
                             args.kernel_tree, rev))
        report["mails"].append(row)
        for patch in row["patches"]:
            print(f"{patch['file'][:44]:<44} {rev:<8} {patch['verdict']:<5} "
                  f"{row['seconds'] / len(mails):>6.1f}s {' '.join(patch['routes'])}",
                  flush=True)
    verdicts = [p["verdict"] for m in report["mails"] for p in m["patches"]]
    judged = sum(v != "MISS" for v in verdicts)
    report["summary"] = {"patches": len(verdicts), "not_miss": judged,
                         "by_verdict": {v: verdicts.count(v) for v in sorted(set(verdicts))},
                         "seconds_per_patch": round(sum(m["seconds"] for m in report["mails"])
                                                    / max(1, len(verdicts)), 2)}
    print(json.dumps(report["summary"]))
    out = args.out or os.path.join(ROOT, "bench", "results",
                                   f"list-{datetime.now(timezone.utc):%Y-%m-%d}.json")
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
        handle.write("\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
