"""Evaluate kconform on the real list patches of tests/data/list (issue 15, item 5).

```sh
python bench/list_eval.py --kernel-tree /tmp/ktree          # each patch at its index.json rev
python bench/list_eval.py --kernel-tree /tmp/ktree --record # ... and pin the outcome in index.json
python bench/list_eval.py --label baseline                  # no tree: what the models alone do
```

Each mail is checked on its own, as a CI would check a posted patch: ``kconform check MAIL
--json FILE --quiet`` in a child process, with ``--kernel-tree PATH``, ``--rev REV`` (the mail's
``rev`` in index.json: the newest tree tag not after its date) and ``--apply-first`` for each
patch it was written on top of that the collection holds (``prerequisites``: the earlier parts
of its series, here or in ``earlier/``, and the patch its ``Fixes:`` trailer names, each with its
own; one rule for every mail).  Per patch it records the verdict, the route and fuzz of each
pre-image (or why none was found), every finding (check, channel, severity), every hunk's MISS
reason and its class, the fixes confirmed, and the wall and CPU time of the child.  Per Fixes
pair it records whether the buggy patch got a finding on some channel and whether the fix was
confirmed.  Nothing is tuned to these patches: this only runs the CLI and reads its JSON.

``index.json`` holds, per mail, ``expected``: what the last ``--record`` run produced (verdict,
route and fuzz per file, finding checks and channels, MISS classes).  Every run lists the mails
whose outcome differs from it, so a change shows; ``tests/test_list_patches.py`` checks the
pre-image routes against it with the tree at hand.

Writes ``bench/results/list-latest.md`` (table, machine line first) and ``.json`` (schema
``kconform-list-eval/2``: machine, commit, settings, every row and pair); another ``--label``
writes ``list-eval-LABEL.*``.
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
SCHEMA = "kconform-list-eval/2"
EARLIER = LIST / "earlier"          # earlier parts of a series, applied first, never judged
PER_PATCH_TIMEOUT_S = 900


# --- running ---------------------------------------------------------------------------


def cli_has_rev() -> bool:
    """Does this checkout's ``kconform check`` take ``--rev``?"""
    done = subprocess.run([sys.executable, "-m", "harness", "check", "--help"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    return "--rev" in done.stdout


def command(mail: Path, json_out: Path, tree: str | None, rev: str | None,
            profile: str, first: tuple[Path, ...] = ()) -> list[str]:
    argv = [sys.executable, "-m", "harness", "check", str(mail), "--json", str(json_out),
            "--quiet", "--profile", profile]
    if tree:
        argv += ["--kernel-tree", tree]
        if rev:
            argv += ["--rev", rev]
        for path in first:
            argv += ["--apply-first", str(path)]
    return argv


# --- what a patch was written on top of ----------------------------------------------------


def series_stem(message_id: str) -> str:
    """``<date.pid-N-author>`` without ``N``: the same for every part of one posting."""
    return re.sub(r"-\d+-([^-@]+@)", r"-\1", message_id)


def part_number(subject: str) -> int | None:
    match = re.search(r"\[[^\]]*?(\d+)/\d+\]", subject)
    return int(match.group(1)) if match else None


def prerequisites(mail: dict, mails: list[dict]) -> list[dict]:
    """The collected patches ``mail`` was written on top of, oldest first: the earlier parts
    of its posting, and the patch each ``Fixes:`` trailer names (by subject), with theirs."""
    found: dict[str, dict] = {}

    def add(target: dict, depth: int) -> None:
        if depth > 4:
            return
        stem, part = series_stem(target["message_id"]), part_number(target["subject"])
        for other in mails:
            other_part = part_number(other["subject"])
            if (other is not target and series_stem(other["message_id"]) == stem
                    and part is not None and other_part is not None and other_part < part):
                found.setdefault(other["file"], other)
        for fix in target.get("fixes") or []:
            for other in mails:
                if other is not target and other["subject"].endswith("] " + fix["subject"]) \
                        and other["date"] < target["date"]:
                    if other["file"] not in found:
                        found[other["file"]] = other
                        add(other, depth + 1)
    add(mail, 0)
    found.pop(mail["file"], None)
    return sorted(found.values(), key=lambda m: (m["date"], part_number(m["subject"]) or 0))


def mail_path(mail: dict) -> Path:
    return (EARLIER if mail.get("earlier") else LIST) / mail["file"]


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
QUOTED_REMOVED = re.compile(r"its removed line '.*?' is nowhere")


def redact(text: str | None) -> str | None:
    """A reason without the kernel source lines it quotes."""
    if not text:
        return text
    text = QUOTED_LINES.sub("reads '\u2026' where the hunk has '\u2026'", text)
    return QUOTED_REMOVED.sub("its removed line '\u2026' is nowhere", text)


def routes(item: dict) -> list[dict]:
    """Each pre-image: file, route taken (None: not found) and the reason."""
    versions = item.get("versions") or {}
    return [{"file": p.get("file"), "route": p.get("route"), "fuzz": p.get("fuzz"),
             "applied": p.get("applied"), "commit": (p.get("commit") or "")[:12] or None,
             "reason": redact(p.get("reason"))}
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


def fix_channels(item: dict) -> list[str]:
    """The channels on which the patch's check confirmed a fix (held after, failed before)."""
    fixes = list(item.get("fixes") or []) + [
        f for f in item.get("findings") or []
        if (f.get("summary") or "").startswith("fix confirmed")]
    return sorted({f.get("channel") for f in fixes if f.get("channel")})


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


# Classes of MISS reason, by the generic phrases kconform's reasons use (first match wins):
# what blocks a verdict first - no pre-image, a file no model reads, a function the subset
# cannot translate, a translated function nothing drives.
REASON_CLASSES = (
    ("is in no version of", "no applicable pre-image (a removed line in no version of the tree)"),
    ("does not apply to", "no applicable pre-image"),
    ("is nowhere in the file", "no applicable pre-image"),
    ("already in", "no applicable pre-image"),
    ("not checked: the pre-image of", "no applicable pre-image (of another file of the patch)"),
    ("is not read", "a file kconform does not read"),
    ("is not a modelled file", "a file no model covers"),
    ("outside any function", "a change outside any function"),
    ("cannot be translated", "function not translated"),
    ("has no function driver", "no driver for the function"),
    ("match no modelled state", "no modelled state equals the pre-image's functions"),
    ("does not fit state", "no modelled state fits the hunks"),
)
NO_DRIVER = re.compile(r"nothing runs the translated ([\w()]+)|([\w()]+) has no function driver")
NOT_TRANSLATED = re.compile(r"the tree's ([\w(), ]+?) cannot be translated")


def reason_class(reason: str) -> str:
    """The class of one MISS reason, naming the function for the two per-function classes."""
    name = next((name for phrase, name in REASON_CLASSES if phrase in reason), "other")
    if name == "no driver for the function":
        found = NO_DRIVER.search(reason)
        return f"no driver for {found.group(1) or found.group(2)}" if found else name
    if name == "function not translated":
        found = NOT_TRANSLATED.search(reason)
        return f"function not translated: {found.group(1)}" if found else name
    return name


def reason_kind(reason_class_name: str) -> str:
    """The class without the function it names (for counting)."""
    return ("no driver for a function" if reason_class_name.startswith("no driver for ")
            else reason_class_name.split(":")[0])


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
    reasons = miss_reasons(item)
    return row | {"verdict": item.get("verdict") or result.get("verdict"),
                  "routes": routes(item), "findings": findings(item),
                  "fixes_confirmed": fixes_confirmed(item), "fix_channels": fix_channels(item),
                  "miss_reasons": reasons,
                  "miss_classes": sorted({reason_class(r) for r in reasons}),
                  "notes": [redact(note) for note in item.get("notes") or []]}


def pair_rows(index: dict, rows: dict[str, dict]) -> list[dict]:
    result = []
    for pair in index["pairs"]:
        buggy, fix = rows.get(pair["buggy"]), rows.get(pair["fix"])
        buggy_channels = sorted({f["channel"] for f in (buggy or {}).get("findings", [])
                                 if f["severity"] in ("FAIL", "WARN") and f["channel"]})
        confirmed_on = (fix or {}).get("fix_channels") or []
        # the right channel: one the fix's own check confirmed the fix on (None: it confirmed
        # none, so nothing says which channel the bug shows on)
        right = bool(set(buggy_channels) & set(confirmed_on)) if confirmed_on else None
        result.append({"pair": pair["pair"], "buggy": pair["buggy"], "fix": pair["fix"],
                       "buggy_verdict": (buggy or {}).get("verdict"),
                       "buggy_finding_channels": buggy_channels,
                       "fix_verdict": (fix or {}).get("verdict"),
                       "fix_confirmed": bool((fix or {}).get("fixes_confirmed")),
                       "fix_channels": confirmed_on, "right_channel": right})
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
        how = f" ({route['applied']})" if route.get("route") and route.get("applied") else ""
        parts.append(f"{name}: {route['route'] or 'none'}{how}")
    return "; ".join(parts) or "\u2013"


def outcome(row: dict) -> dict:
    """What a run produced for one mail, as ``index.json``'s ``expected`` pins it."""
    return {"verdict": row["verdict"],
            "routes": {r["file"]: [r["route"], r["fuzz"]] for r in row["routes"]},
            "findings": sorted({f"{f['severity']} {f['check']}: {f['channel']}"
                                for f in row["findings"]}),
            "miss_classes": row.get("miss_classes", [])}


def changes(index: dict, rows: dict[str, dict]) -> list[str]:
    """One line per mail whose outcome differs from its ``expected`` in index.json."""
    lines = []
    for mail in index["mails"]:
        row, expected = rows.get(mail["file"]), mail.get("expected")
        if row is None or expected is None:
            continue
        now = outcome(row)
        for key in ("verdict", "routes", "findings", "miss_classes"):
            if now[key] != expected.get(key):
                lines.append(f"{mail['file']}: {key} {expected.get(key)} -> {now[key]}")
    return lines


def not_miss(rows) -> int:
    return sum(1 for r in rows if r["verdict"] not in ("MISS", "TIMEOUT", "NO RESULT"))


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
        f"`--rev` {'from index.json' if settings['rev_used'] else 'not passed'}, "
        f"`--apply-first` for the collected patches each was written on top of "
        f"(earlier parts of its posting, the patch its `Fixes:` names).", "",
        "Machine line: " + "; ".join(f"{v} {k}" for k, v in sorted(verdicts.items()))
        + f"; not MISS: {not_miss(rows)}/{len(rows)}; every read file's pre-image found: "
        f"{sum(1 for r in rows if r['routes'] and all(x['route'] for x in r['routes']))}"
        f"/{sum(1 for r in rows if r['routes'])}; wall per patch: median "
        f"{walls[len(walls) // 2]:.1f} s, max {walls[-1]:.1f} s; total {sum(walls):.0f} s "
        f"wall, {sum(r['cpu_s'] for r in rows):.0f} s CPU; translation cache "
        f"{settings.get('translation_cache', 'not recorded')}.", "",
        "Route per file: `index` (the blob the index line names), `rev` (the file at the tag), "
        "`history` (an older tag), `series` (what an earlier patch left, in memory), "
        "`reverse` (a later tag that holds the patch as merged, with the patch taken out "
        "again: an approximate base), `none`; "
        "in brackets how the hunks fit (exactly, at an offset, with fuzz N: N outer context "
        "lines ignored, as GNU patch does).", "",
        "| file | rev | applied first | verdict | pre-image route (fit) | findings (check: channel) "
        "| fixes confirmed | wall s | CPU s | first reason not covered (class) |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        found = ", ".join(f"{f['severity']} {f['check']}: {f['channel']}" for f in r["findings"])
        first = ", ".join(re.match(r"\d+(-\d+(?=-))?", f).group(0)
                          for f in r.get("apply_first") or []) or "\u2013"
        reason = "\u2013"
        if r["miss_reasons"]:
            reason = f"{cell(r['miss_reasons'][0], 90)} ({reason_class(r['miss_reasons'][0])})"
        dash = "\u2013"
        lines.append(
            f"| `{r['file']}` | {r['rev'] if settings['rev_used'] else dash} | {first} "
            f"| {r['verdict']} | {cell(route_text(r), 90)} | {cell(found or dash, 80)} "
            f"| {len(r['fixes_confirmed']) or dash} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} "
            f"| {reason} |")
    lines += ["", "## Fixes pairs", "",
              "The right channel is one on which the fix's own check confirmed the fix (held "
              "after, failed before); '\u2013' where the fix's check confirmed none.", "",
              "| pair | buggy | verdict | finding channels | fix | verdict | fix confirmed "
              "(channels) | buggy found on the right channel |",
              "|---|---|---|---|---|---|---|---|"]
    for p in pairs:
        right = {True: "yes", False: "no", None: "\u2013"}[p.get("right_channel")]
        lines.append(f"| {p['pair']} | `{p['buggy']}` | {p['buggy_verdict']} "
                     f"| {', '.join(p['buggy_finding_channels']) or 'none'} | `{p['fix']}` "
                     f"| {p['fix_verdict']} | {'yes' if p['fix_confirmed'] else 'no'}"
                     f"{' (' + ', '.join(p.get('fix_channels') or []) + ')' if p.get('fix_channels') else ''}"
                     f" | {right} |")
    missed = [r for r in rows if r["verdict"] == "MISS"]
    kinds = Counter(kind for r in missed
                    for kind in {reason_kind(c) for c in r.get("miss_classes", [])})
    first_kind = Counter(reason_kind(reason_class(r["miss_reasons"][0])) if r["miss_reasons"]
                         else "none given" for r in missed)
    drivers = Counter(c[len("no driver for "):] for r in missed
                      for c in r.get("miss_classes", []) if c.startswith("no driver for "))
    lines += ["", f"## Why the {len(missed)} MISS patches are MISS", "",
              "Each MISS patch by the class of its first uncovered hunk's reason:", ""]
    lines += [f"- {n}: {name}" for name, n in first_kind.most_common()] or ["- none"]
    lines += ["", "Patches with at least one uncovered hunk of the class:", ""]
    lines += [f"- {n}: {name}" for name, n in kinds.most_common()] or ["- none"]
    lines += ["", "Functions whose hunks no driver runs (patches):", ""]
    lines += [f"- {n}: {name}" for name, n in drivers.most_common()] or ["- none"]
    lines += ["", "## Changes against index.json's expected outcomes", ""]
    lines += [f"- {line}" for line in report.get("changes") or []] or ["- none"]
    return "\n".join(lines) + "\n"


def next_tag(tags: dict[str, str], rev: str) -> str:
    """The tag after ``rev`` in date order (``rev`` itself when it is the last)."""
    ordered = sorted(tags, key=tags.get)
    return ordered[min(ordered.index(rev) + 1, len(ordered) - 1)]


def record(index: dict, rows: dict[str, dict]) -> None:
    """Pin each mail's outcome in index.json as its ``expected`` (``--record``)."""
    for mail in index["mails"]:
        if mail["file"] in rows:
            mail["expected"] = outcome(rows[mail["file"]])
    (LIST / "index.json").write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernel-tree", help="a kernel tree (git) for --kernel-tree")
    parser.add_argument("--label", help="name of this run (default: tree or baseline)")
    parser.add_argument("--profile", default="gate", choices=("gate", "deep"))
    parser.add_argument("--only", help="comma-separated file prefixes (e.g. 001,019)")
    parser.add_argument("--next-tag", action="store_true",
                        help="diagnostic: use the first tag AFTER each mail's date, not its "
                             "rev (a patch written against -next is in the next release)")
    parser.add_argument("--record", action="store_true",
                        help="write each mail's outcome into index.json as its 'expected'")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)

    index = json.loads((LIST / "index.json").read_text())
    mails = index["mails"]
    collected = mails + [m | {"earlier": True} for m in index.get("earlier") or []]
    if args.only:
        wanted = tuple(args.only.split(","))
        mails = [m for m in mails if m["file"].startswith(wanted)]
    has_rev = cli_has_rev()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kconform"
    cache_state = "warm" if cache.is_dir() and any(cache.iterdir()) else "cold"
    label = args.label or ("tree" if args.kernel_tree else "baseline")
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for number, mail in enumerate(mails, 1):
            json_out = Path(tmp) / f"{number}.json"
            rev = next_tag(index["tags"], mail["rev"]) if args.next_tag else mail["rev"]
            first = prerequisites(mail, collected) if args.kernel_tree else []
            argv = command(LIST / mail["file"], json_out, args.kernel_tree,
                           rev if has_rev else None, args.profile,
                           tuple(mail_path(m) for m in first))
            done, wall, cpu = run_one(argv)
            rows[mail["file"]] = row_for(mail | {"rev": rev}, done, wall, cpu, json_out, argv)
            row = rows[mail["file"]]
            row["apply_first"] = [m["file"] for m in first]
            print(f"{mail['file']:<52} {row['verdict']:<9} {wall:6.1f}s "
                  f"{route_text(row)}", flush=True)
    report = {"schema": SCHEMA, "machine": machine.describe(), "commit": commit(),
              "settings": {"label": label, "kernel_tree": args.kernel_tree,
                           "profile": args.profile, "cli_has_rev": has_rev,
                           "next_tag": args.next_tag,
                           "rev_used": bool(args.kernel_tree and has_rev),
                           "per_patch_timeout_s": PER_PATCH_TIMEOUT_S,
                           "translation_cache": f"{cache_state} at start ({cache})"},
              "rows": list(rows.values()), "pairs": pair_rows(index, rows),
              "changes": changes(index, rows)}
    report["machine"]["load_average_at_end"] = machine.load_average()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "list-latest" if label == "tree" else f"list-eval-{label}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{stem}.md").write_text(markdown(report))
    print(f"wrote {out / stem}.md and .json; not MISS {not_miss(report['rows'])}/"
          f"{len(report['rows'])}; {len(report['changes'])} changes against index.json",
          flush=True)
    if args.record and not args.only:
        record(index, rows)
        print("recorded the outcomes in tests/data/list/index.json", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
