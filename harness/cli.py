"""The ``kconform`` command (and ``python -m harness``).

    kconform check PATH... [--json FILE] [--report-dir DIR] [--junit FILE]
                           [--profile gate|deep] [--seed N] [--checks NAME,...]
    kconform replay TOKEN [PATCH...] [--kernel-tree PATH]
    kconform audit --kernel-tree PATH [--rev REV] [--state NAME]
    kconform checks

Exit codes are ``harness.errors.ExitCode`` (documented in the README).  Bad
input is one line on stderr, never a traceback; every output file is written
atomically, and only after every patch was checked, so an interrupted run
leaves the previous report untouched.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from harness import __version__
from harness.errors import ExitCode, KconformError, UsageError

PROFILES = ("gate", "deep")


def add_check_options(add, prefix: str = "") -> None:
    """Options shared by the CLI and the pytest plugin (``--kconform-*`` there)."""
    add(f"--{prefix}profile", choices=PROFILES, default="gate",
        help="gate: fixed seed, deterministic (CI); deep: randomised, more examples")
    add(f"--{prefix}seed", type=int, default=None,
        help="seed of the search (default: 0 for gate; deep draws a fresh one per run and "
             "prints it)")
    add(f"--{prefix}checks", default=None, metavar="NAME,...",
        help="run only these checks (see 'kconform checks')")
    add(f"--{prefix}kernel-tree", default=None, metavar="PATH",
        help="a kernel git tree: read each pre-image blob with git cat-file, check every hunk "
             "against it and translate whole changed functions")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message, hint="see 'kconform --help'")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kconform", description="Patch-conformance checks for KVM x86 MMU "
                                                  "patches.")
    parser.add_argument("--version", action="version",
                        version=f"kconform {__version__} (results schema kconform/1)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = sub.add_parser("check", help="check patches, mboxes, diffs or directories")
    check.add_argument("paths", nargs="+", metavar="PATH")
    check.add_argument("--json", metavar="FILE", help="write the kconform/1 results JSON here")
    check.add_argument("--report-dir", metavar="DIR",
                       help="write index.html, results.json, JUnit, KCIDB, patchwork and a "
                            "mail summary here")
    check.add_argument("--junit", metavar="FILE", help="write JUnit XML here")
    add_check_options(check.add_argument)
    check.add_argument("--quiet", action="store_true", help="print only the verdict lines")
    audit = sub.add_parser("audit", help="compare the models with the C of a kernel tree, "
                                         "function by function")
    audit.add_argument("--kernel-tree", required=True, metavar="PATH")
    audit.add_argument("--rev", default=None, metavar="REV",
                       help="read the modelled files at REV (default: at the blobs the "
                            "series' states name, where the tree holds them)")
    audit.add_argument("--state", default="base", metavar="NAME",
                       help="with --rev: the state whose models to compare (default base)")
    audit.add_argument("--verbose", action="store_true", help="list equal functions too")
    replay = sub.add_parser("replay", help="re-run one counterexample from its replay token")
    replay.add_argument("token")
    replay.add_argument("patches", nargs="*", metavar="PATCH",
                        help="for a counterexample of a derived model: the patch files that "
                             "were checked, in order (their models are derived again)")
    replay.add_argument("--kernel-tree", default=None, metavar="PATH",
                        help="the kernel tree the check used, if any")
    sub.add_parser("checks", help="list the checks by name")
    return parser


def parse_checks(text: str | None) -> list[str] | None:
    if not text:
        return None
    from harness.check import checks
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in checks.names()]
    if unknown:
        raise UsageError(f"unknown check(s): {', '.join(unknown)}",
                         hint=f"known: {', '.join(checks.names())}")
    return names


# The name of the first signal that asked us to stop.  A KeyboardInterrupt
# raised inside a callback (Hypothesis runs one from the garbage collector) can
# be swallowed by Python, so the flag is checked again before any output is
# written: a stop that was asked for is honoured even if its exception was lost.
_stop_requested: list[str] = []


def _interrupt(signum, frame):
    _stop_requested.append(signal.Signals(signum).name)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _honour_stop() -> None:
    if _stop_requested:
        raise KeyboardInterrupt(_stop_requested[0])


def run_check(args) -> int:
    from harness import pipeline
    from harness.report.results import dumps, write_atomic

    for path in args.paths:
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such file or directory")
    options = pipeline.RunOptions(
        profile=args.profile, seed=args.seed, checks=parse_checks(args.checks),
        kernel_tree=args.kernel_tree,
        progress=None if args.quiet else (lambda text: print(text, file=sys.stderr)),
        command=" ".join(["kconform"] + sys.argv[1:]))
    results, run = pipeline.check_paths(args.paths, options)
    _honour_stop()
    outputs = {}
    if args.json:
        outputs[args.json] = dumps(results)
    if args.junit:
        from harness.report import outputs as machine
        outputs[args.junit] = machine.junit(results)
    if args.report_dir:
        from harness.report import outputs as machine
        outputs[os.path.join(args.report_dir, "results.json")] = dumps(results)
    _honour_stop()
    for path, text in outputs.items():
        write_atomic(path, text)
    if args.report_dir:
        write_atomic(os.path.join(args.report_dir, "run.json"), dumps(run))
        from harness.report import writer
        writer.write_all(results, run, args.report_dir)
    print_summary(results, run, quiet=args.quiet)
    return results["exit_code"]


def error_line(error: dict) -> str:
    """An ERROR entry of the results as the one line the README promises."""
    where = []
    if error.get("file"):
        where.append(f"{error['file']}:{error['line']}" if error.get("line") else error["file"])
    if error.get("mail"):
        where.append(f"mail {error['mail']}")
    if error.get("hunk"):
        where.append(f"hunk {error['hunk']}")
    return ": ".join(where + [" ".join(str(error["message"]).split())])


def print_summary(results: dict, run: dict, *, quiet: bool = False) -> None:
    from harness.report import outputs as machine
    counts: dict[str, int] = {}
    for patch in results["patches"]:
        if patch.get("is_cover"):
            continue
        counts[patch["verdict"]] = counts.get(patch["verdict"], 0) + 1
        series = patch.get("series")
        position = f"[{series['index']}/{series['total']}] " if series else ""
        print(f"{patch['verdict']:<5} {position}{patch['subject'] or patch['path']}")
        if patch.get("error"):
            print(f"kconform: error: {error_line(patch['error'])}", file=sys.stderr)
        if patch.get("repaired"):
            print(f"      repaired: {'; '.join(patch['damage']) or 'whitespace damage'} "
                  f"(whitespace-only content cannot be verified)")
        if quiet:
            continue
        for note in patch.get("notes") or []:
            print(f"      note: {note}")
        for hunk in patch["hunks"]:
            if not hunk["covered"]:
                print(f"      MISS {hunk['file']}::{hunk['function'] or '?'}: {hunk['reason']}")
        for finding in patch["findings"]:
            print(f"      {finding['severity']} {finding['check']} [{finding['channel']}] "
                  f"{finding['summary']}")
            if finding.get("replay"):
                print(f"           replay: {machine.replay_command(finding)}")
    net = results.get("net")
    if net:
        print(f"{net['verdict']:<5} series net change {net['name']}")
        if not quiet:
            for finding in net["findings"]:
                print(f"      {finding['severity']} {finding['check']} [{finding['channel']}] "
                      f"{finding['summary']}")
                if finding.get("replay"):
                    print(f"           replay: {machine.replay_command(finding)}")
    tally = ", ".join(f"{counts.get(v, 0)} {v.lower()}" for v in
                      ("PASS", "WARN", "MISS", "FAIL", "ERROR"))
    drawn = f" (drawn; rerun with --seed {results['seed']})" if results.get("seed_drawn") else ""
    print(f"kconform: {results['verdict']} ({tally}; profile {results['profile']}, "
          f"seed {results['seed']}{drawn}, {run['elapsed_s']:.1f}s)")


def run_audit(args) -> int:
    """Exit 0 when every translated function equals its model, 1 when one differs."""
    from harness.translate import audit
    from harness.resolve.kernel_tree import KernelTree
    from kernel_models.registry import SERIES_STATES

    if args.state not in SERIES_STATES:
        raise UsageError(f"unknown state {args.state!r}", hint=f"known: {', '.join(SERIES_STATES)}")
    if args.state != "base" and args.rev is None:
        raise UsageError("--state needs --rev: without it each blob is compared with the "
                         "state that names it")
    tree = KernelTree(args.kernel_tree)
    if args.rev is not None and not tree.has_revision(args.rev):
        raise UsageError(f"--rev {args.rev}: no such revision in {args.kernel_tree}")
    rows = audit.audit_tree(tree, args.rev, args.state)
    print(audit.summary(rows, verbose=args.verbose))
    return ExitCode.FAIL if any(r.outcome == audit.DIFFERS for r in rows) else ExitCode.PASS


def main(argv: list[str] | None = None) -> int:
    _stop_requested.clear()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        args = build_parser().parse_args(argv)
        if args.command == "check":
            return run_check(args)
        if args.command == "replay":
            from harness import pipeline
            from harness.check import engine as check
            for path in args.patches:
                if not os.path.exists(path):
                    raise UsageError(f"{path}: no such file or directory")
            if args.patches:
                pipeline.resolve_paths(args.patches, args.kernel_tree)
            print(check.replay(args.token))
            return ExitCode.PASS
        if args.command == "audit":
            return run_audit(args)
        if args.command == "checks":
            from harness.check import checks
            for name in checks.names():
                print(f"{name:<28} {checks.CHECKS[name].description}")
            return ExitCode.PASS
        raise UsageError(f"unknown command {args.command}")
    except KconformError as exc:
        print(f"kconform: error: {exc.one_line()}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt as exc:
        reason = str(exc) or "SIGINT"
        print(f"kconform: interrupted ({reason}); no report was written or replaced",
              file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # a bug in kconform or its models: say so, keep old reports
        print(f"kconform: internal error: {type(exc).__name__}: {exc}; no report was written "
              f"or replaced (set KCONFORM_DEBUG=1 for the traceback)", file=sys.stderr)
        if os.environ.get("KCONFORM_DEBUG"):
            raise
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
