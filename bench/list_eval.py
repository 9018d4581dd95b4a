"""Evaluate kconform on the real list patches of tests/data/list (issue 15, item 5).

```sh
python bench/list_eval.py --kernel-tree /tmp/ktree          # each patch at its index.json rev
python bench/list_eval.py --label baseline                  # no tree: what the models alone do
```

Each mail is checked on its own, as a CI would check a posted patch: ``kconform check MAIL
--json FILE --quiet`` in a child process, with ``--kernel-tree PATH`` and, when the CLI has it,
``--rev REV`` (the mail's ``rev`` in index.json: the newest tree tag not after its date).  Per
patch it records the verdict, the route to each pre-image (or why none was found), every finding
(check, channel, severity), every hunk's MISS reason, the fixes confirmed, and the wall and CPU
time of the child.  Per Fixes pair it records whether the buggy patch got a finding on some
channel and whether the fix was confirmed.  Nothing is tuned to these patches: this only runs the
CLI and reads its JSON.

Writes ``bench/results/list-eval[-LABEL].md`` (table, machine line first) and ``.json``
(schema ``kconform-list-eval/1``: machine, commit, settings, every row and pair).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402

LIST = ROOT / "tests" / "data" / "list"
SCHEMA = "kconform-list-eval/1"
PER_PATCH_TIMEOUT_S = 900


# --- running ---------------------------------------------------------------------------


def cli_has_rev() -> bool:
    """Does this checkout's ``kconform check`` take ``--rev``?"""
    done = subprocess.run([sys.executable, "-m", "harness", "check", "--help"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    return "--rev" in done.stdout


def command(mail: Path, json_out: Path, tree: str | None, rev: str | None,
            profile: str) -> list[str]:
    argv = [sys.executable, "-m", "harness", "check", str(mail), "--json", str(json_out),
            "--quiet", "--profile", profile]
    if tree:
        argv += ["--kernel-tree", tree]
        if rev:
            argv += ["--rev", rev]
    return argv


def run_one(argv: list[str]) -> tuple[subprocess.CompletedProcess | None, float, float]:
    """Run one check; wall and CPU seconds of the child (CPU from RUSAGE_CHILDREN)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                              timeout=PER_PATCH_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        done = None
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done, wall, cpu


# --- reading the results JSON ------------------------------------------------------------


# kconform's MISS reasons quote the tree's line and the hunk's line ("line 4747 reads '...'
# where the hunk has '...'"); the committed results keep the line numbers, not kernel text.
QUOTED_LINES = re.compile(r"reads '.*?' where the hunk has '.*?'(?=, and |, so |\)|;|$)")


def redact(text: str | None) -> str | None:
    """A reason without the kernel source lines it quotes."""
    return QUOTED_LINES.sub("reads '\u2026' where the hunk has '\u2026'", text) if text else text


def routes(item: dict) -> list[dict]:
    """Each pre-image: file, route taken (None: not found) and the reason."""
    versions = item.get("versions") or {}
    return [{"file": p.get("file"), "route": p.get("route"), "reason": redact(p.get("reason"))}
            for p in versions.get("preimages") or []]


def findings(item: dict) -> list[dict]:
    return [{"check": f.get("check"), "channel": f.get("channel"),
             "severity": f.get("severity"), "function": f.get("function"),
             "operation": f.get("operation")}
            for f in item.get("findings") or []]


def fixes_confirmed(item: dict) -> list[str]:
    """The 'fix confirmed' notes (branch intent: item['fixes']; else NOTE findings)."""
    notes = [f.get("summary") or "" for f in item.get("fixes") or []]
    notes += [f.get("summary") or "" for f in item.get("findings") or []
              if (f.get("summary") or "").startswith("fix confirmed")]
    return [n for n in notes if n]


def miss_reasons(item: dict) -> list[str]:
    """Why hunks (or the whole patch) are not covered, each reason once."""
    reasons = []
    for hunk in item.get("hunks") or []:
        if not hunk.get("covered") and hunk.get("reason"):
            where = f"{hunk.get('file')}:{hunk.get('function') or '-'}"
            reasons.append(f"{where}: {redact(hunk['reason'])}")
    if item.get("error"):
        reasons.append(f"error: {item['error']}")
    return list(dict.fromkeys(reasons))


# Classes of MISS reason, by the generic phrases kconform's reasons use (first match wins).
REASON_CLASSES = (
    ("does not apply to", "no pre-image: the hunks do not apply at the revision"),
    ("not checked: the pre-image of", "waits on another file's missing pre-image"),
    ("match no modelled state", "pre-image found, but no modelled state equals its functions"),
    ("does not fit state", "no modelled state fits the hunks"),
    ("is not read", "a file kconform does not read"),
    ("is not a modelled file", "a file no model covers"),
    ("outside any function", "a change outside any function"),
)


def reason_class(reason: str) -> str:
    return next((name for phrase, name in REASON_CLASSES if phrase in reason), "other")


def row_for(mail: dict, done, wall: float, cpu: float, json_out: Path,
            argv: list[str]) -> dict:
    row = {"file": mail["file"], "subject": mail["subject"], "rev": mail["rev"],
           "command": " ".join(argv[2:]).replace(str(ROOT) + "/", ""),
           "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}
    if done is None:
        return row | {"verdict": "TIMEOUT", "exit_code": None, "routes": [], "findings": [],
                      "fixes_confirmed": [], "miss_reasons": [f"over {PER_PATCH_TIMEOUT_S} s"]}
    row["exit_code"] = done.returncode
    try:
        result = json.loads(json_out.read_text())
    except (OSError, ValueError):
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return row | {"verdict": "NO RESULT", "routes": [], "findings": [],
                      "fixes_confirmed": [], "miss_reasons": tail}
    items = [p for p in result.get("patches") or [] if not p.get("is_cover")]
    item = items[0] if items else {}
    return row | {"verdict": item.get("verdict") or result.get("verdict"),
                  "routes": routes(item), "findings": findings(item),
                  "fixes_confirmed": fixes_confirmed(item), "miss_reasons": miss_reasons(item),
                  "notes": [redact(note) for note in item.get("notes") or []]}


def pair_rows(index: dict, rows: dict[str, dict]) -> list[dict]:
    result = []
    for pair in index["pairs"]:
        buggy, fix = rows.get(pair["buggy"]), rows.get(pair["fix"])
        buggy_channels = sorted({f["channel"] for f in (buggy or {}).get("findings", [])
                                 if f["severity"] in ("FAIL", "WARN") and f["channel"]})
        result.append({"pair": pair["pair"], "buggy": pair["buggy"], "fix": pair["fix"],
                       "buggy_verdict": (buggy or {}).get("verdict"),
                       "buggy_finding_channels": buggy_channels,
                       "fix_verdict": (fix or {}).get("verdict"),
                       "fix_confirmed": bool((fix or {}).get("fixes_confirmed"))})
    return result


# --- writing ---------------------------------------------------------------------------


def commit() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()
    return {"sha": git("rev-parse", "--short=12", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def cell(text: str, width: int = 110) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= width else text[:width - 1] + "\u2026"


def route_text(row: dict) -> str:
    parts = []
    for route in row["routes"]:
        name = route["file"].rsplit("/", 1)[-1] if route["file"] else "?"
        parts.append(f"{name}: {route['route'] or 'none'}")
    return "; ".join(parts) or "–"


def markdown(report: dict) -> str:
    settings = report["settings"]
    rows, pairs = report["rows"], report["pairs"]
    verdicts = Counter(r["verdict"] for r in rows)
    walls = sorted(r["wall_s"] for r in rows)
    tree = settings["kernel_tree"] or "none"
    lines = [
        f"# kconform on the real list patches ({settings['label']})", "",
        f"Machine: {machine.one_line(report['machine'])}.  Commit {report['commit']['sha']}"
        + (" (uncommitted changes)" if report["commit"]["dirty"] else "") + ".", "",
        f"`python bench/list_eval.py{' --kernel-tree ' + tree if settings['kernel_tree'] else ''}"
        f" --label {settings['label']}`: each of the {len(rows)} mails of `tests/data/list/` "
        f"checked alone, profile {settings['profile']}, kernel tree {tree}, "
        f"`--rev` {'from index.json' if settings['rev_used'] else 'not passed'}"
        f"{'' if settings['cli_has_rev'] else ' (this CLI has no --rev)'}.", "",
        "Machine line: " + "; ".join(f"{v} {k}" for k, v in sorted(verdicts.items()))
        + f"; not MISS: {sum(1 for r in rows if r['verdict'] not in ('MISS', 'TIMEOUT', 'NO RESULT'))}"
        f"/{len(rows)}; wall per patch: median {walls[len(walls) // 2]:.1f} s, "
        f"max {walls[-1]:.1f} s; total {sum(walls):.0f} s wall, "
        f"{sum(r['cpu_s'] for r in rows):.0f} s CPU.", "",
        "| file | rev | verdict | pre-image route | findings (check: channel) | fixes confirmed "
        "| wall s | CPU s | MISS reason (first) |",
        "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        found = ", ".join(f"{f['severity']} {f['check']}: {f['channel']}" for f in r["findings"])
        lines.append(
            f"| `{r['file']}` | {r['rev'] if settings['rev_used'] else '–'} | {r['verdict']} "
            f"| {cell(route_text(r), 60)} | {cell(found or '–', 80)} "
            f"| {len(r['fixes_confirmed']) or '–'} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} "
            f"| {cell(r['miss_reasons'][0]) if r['miss_reasons'] else '–'} |")
    lines += ["", "## Fixes pairs", "",
              "| pair | buggy | verdict | finding channels | fix | verdict | fix confirmed |",
              "|---|---|---|---|---|---|---|"]
    for p in pairs:
        lines.append(f"| {p['pair']} | `{p['buggy']}` | {p['buggy_verdict']} "
                     f"| {', '.join(p['buggy_finding_channels']) or 'none'} | `{p['fix']}` "
                     f"| {p['fix_verdict']} | {'yes' if p['fix_confirmed'] else 'no'} |")
    classes = Counter(name for r in rows
                      for name in {reason_class(reason) for reason in r["miss_reasons"]})
    lines += ["", "## MISS reasons by kind (patches with at least one hunk of the kind)", ""]
    lines += [f"- {n}: {name}" for name, n in classes.most_common()] or ["- none"]
    return "\n".join(lines) + "\n"


def next_tag(tags: dict[str, str], rev: str) -> str:
    """The tag after ``rev`` in date order (``rev`` itself when it is the last)."""
    ordered = sorted(tags, key=tags.get)
    return ordered[min(ordered.index(rev) + 1, len(ordered) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernel-tree", help="a kernel tree (git) for --kernel-tree")
    parser.add_argument("--label", help="name of this run (default: tree or baseline)")
    parser.add_argument("--profile", default="gate", choices=("gate", "deep"))
    parser.add_argument("--only", help="comma-separated file prefixes (e.g. 001,019)")
    parser.add_argument("--next-tag", action="store_true",
                        help="diagnostic: use the first tag AFTER each mail's date, not its "
                             "rev (a patch written against -next is in the next release)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)

    index = json.loads((LIST / "index.json").read_text())
    mails = index["mails"]
    if args.only:
        wanted = tuple(args.only.split(","))
        mails = [m for m in mails if m["file"].startswith(wanted)]
    has_rev = cli_has_rev()
    label = args.label or ("tree" if args.kernel_tree else "baseline")
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for number, mail in enumerate(mails, 1):
            json_out = Path(tmp) / f"{number}.json"
            rev = next_tag(index["tags"], mail["rev"]) if args.next_tag else mail["rev"]
            argv = command(LIST / mail["file"], json_out, args.kernel_tree,
                           rev if has_rev else None, args.profile)
            done, wall, cpu = run_one(argv)
            rows[mail["file"]] = row_for(mail | {"rev": rev}, done, wall, cpu, json_out, argv)
            row = rows[mail["file"]]
            print(f"{mail['file']:<52} {row['verdict']:<9} {wall:6.1f}s", flush=True)
    report = {"schema": SCHEMA, "machine": machine.describe(), "commit": commit(),
              "settings": {"label": label, "kernel_tree": args.kernel_tree,
                           "profile": args.profile, "cli_has_rev": has_rev,
                           "next_tag": args.next_tag,
                           "rev_used": bool(args.kernel_tree and has_rev),
                           "per_patch_timeout_s": PER_PATCH_TIMEOUT_S},
              "rows": list(rows.values()), "pairs": pair_rows(index, rows)}
    report["machine"]["load_average_at_end"] = machine.load_average()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "list-eval" if label == "tree" else f"list-eval-{label}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{stem}.md").write_text(markdown(report))
    print(f"wrote {out / stem}.md and .json", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
