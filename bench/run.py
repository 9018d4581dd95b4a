"""The kconform benchmark: ``python bench/run.py [--quick]``.

Runs every measurement once (each timing repeated, see bench/README.md),
prints a table, and writes ``bench/results/<date>-<host>.json`` (the machine,
the settings and every figure) and ``bench/results/latest.md`` (the table in
Markdown, with the machine, for the main README).  ``--quick`` is a small
setting that still runs every section; its files are named ``...-quick``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import (check_timing, domain_timing, head_to_head, ingest_timing,  # noqa: E402
                   machine, mutant_suite, scaling, settings as S, suite_timing, table)

SCHEMA = "kconform-bench/1"
RESULTS = os.path.join(ROOT, "bench", "results")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small setting: 1 run per timing, 2-copy mbox, 2 mutants, "
                             "5 s CrossHair budget")
    parser.add_argument("--sections", default=",".join(S.SECTIONS),
                        help=f"comma-separated subset of {','.join(S.SECTIONS)}")
    parser.add_argument("--out", default=RESULTS, help="where to write the JSON and Markdown")
    parser.add_argument("--repeats", type=int, help="runs per timing (default 3; --quick 1)")
    parser.add_argument("--crosshair-timeout", type=float,
                        help="CrossHair per-condition budget in s (default 60; --quick 5)")
    return parser.parse_args(argv)


def build_settings(args: argparse.Namespace) -> S.Settings:
    chosen = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = [s for s in chosen if s not in S.SECTIONS]
    if unknown:
        raise SystemExit(f"bench/run.py: unknown section(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(S.SECTIONS)}")
    values = {"sections": chosen}
    if args.repeats:
        values["repeats"] = args.repeats
    if args.crosshair_timeout:
        values["crosshair_timeout"] = args.crosshair_timeout
    return S.Settings.quick_run(**values) if args.quick else S.Settings(**values)


def git_state() -> dict:
    def git(*words):
        try:
            return subprocess.run(["git", *words], cwd=ROOT, capture_output=True, text=True,
                                  timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def run_section(name: str, settings: S.Settings, context: dict, workdir: str):
    """(data, rows) of one section; a crash in it becomes a row, not a lost run."""
    measures = {
        "ingest": lambda: ingest_timing.measure(settings, workdir),
        "check": lambda: check_timing.measure(settings, context),
        "domain": lambda: domain_timing.measure(settings, context),
        "mutants": lambda: mutant_suite.measure(settings, context),
        "head_to_head": lambda: head_to_head.measure(settings, context),
        "scaling": lambda: scaling.measure(settings, workdir),
        "suite": lambda: suite_timing.measure(settings, context),
    }
    started = time.perf_counter()
    try:
        data, rows = measures[name]()
    except Exception as exc:  # report it in the table and carry on with the other sections
        data = {"available": False, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}
        rows = [table.row(name.replace("_", " "), "section failed", table.FAILED,
                          status=table.FAILED, note=f"{type(exc).__name__}: {exc}")]
    data["section_seconds"] = round(time.perf_counter() - started, 2)
    data["load_average_after"] = machine.load_average()
    return data, rows


def targets_of(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("target")]


def write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def markdown_report(report: dict) -> str:
    host = report["machine"]
    when = report["started"][:16].replace("T", " ")
    kind = "quick run" if report["settings"]["quick"] else "full run"
    code = report["git"]
    header = (f"### kconform benchmark ({kind}, {when} UTC, commit "
              f"{(code['commit'] or '?')[:12]}{' + local changes' if code['dirty'] else ''})")
    if report.get("git_at_end", code) != code:
        header += (f"\n\nThe checkout changed during the run (commit "
                   f"{(report['git_at_end']['commit'] or '?')[:12]} at the end): modules "
                   f"imported after the start may come from the newer tree.")
    targets = targets_of(report["rows"])
    text = f"{header}\n\nMachine: {machine.one_line(host)}\n\n"
    text += table.markdown(targets, header="Targets (2 cores):")
    text += "\n" + table.markdown(report["rows"], header="Every measurement:")
    loads = [report["machine"].get("load_average_at_start"), report.get("load_average_at_end")]
    if all(loads):
        text += (f"\nLoad average (1 min) at start {loads[0][0]}, at end {loads[1][0]} on "
                 f"{host['cores']} cores: a load above the core count means other work shared "
                 f"the machine and the times are inflated.\n")
    text += (f"\nCommand: `{report['command']}`; {report['elapsed_s']:.0f} s in all. "
             f"Figures are medians of up to {report['settings']['repeats']} runs unless the row "
             f"says otherwise; see bench/README.md for what each row means.\n")
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = build_settings(args)
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    host = machine.describe()
    code_at_start = git_state()     # what was measured: the tree as the run began
    print(f"kconform benchmark on {machine.one_line(host)}", file=sys.stderr)
    context: dict = {}
    sections, rows = {}, []
    with tempfile.TemporaryDirectory(prefix="kconform-bench-") as workdir:
        for name in S.SECTIONS:
            if name not in settings.sections:
                continue
            print(f"[{time.perf_counter() - clock:7.1f} s] {name} ...", file=sys.stderr,
                  flush=True)
            data, section_rows = run_section(name, settings, context, workdir)
            sections[name] = data
            rows += section_rows
            sys.stderr.write(table.plain(section_rows, "").split("\n", 2)[2])
    elapsed = time.perf_counter() - clock
    command = "python bench/run.py" + ("" if argv is None else " " + " ".join(argv)) \
        if argv is not None else "python " + " ".join(["bench/run.py"] + sys.argv[1:])
    report = {
        "schema": SCHEMA,
        "started": started.isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed, 1),
        "command": command,
        "machine": host,
        "git": code_at_start,
        "git_at_end": git_state(),
        "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k != "notes"},
        "load_average_at_end": machine.load_average(),
        "process_max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "targets": targets_of(rows),
        "rows": rows,
        "sections": sections,
    }
    suffix = "-quick" if settings.quick else ""
    stem = f"{started:%Y-%m-%d}-{host['host']}{suffix}"
    json_path = os.path.join(args.out, f"{stem}.json")
    markdown_path = os.path.join(args.out, f"latest{suffix}.md")
    write_atomically(json_path, json.dumps(report, indent=1, default=str) + "\n")
    write_atomically(markdown_path, markdown_report(report))
    print(table.plain(rows, machine.one_line(host)))
    missed = [r for r in rows if r["status"] == table.MISSED]
    absent = [r for r in rows if r["status"] in (table.NOT_AVAILABLE, table.FAILED)]
    print(f"{len(missed)} target(s) MISSED, {len(absent)} row(s) not available or failed; "
          f"wrote {os.path.relpath(json_path, ROOT)} and {os.path.relpath(markdown_path, ROOT)} "
          f"in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
