"""The ``kconform`` command (and ``python -m harness``).

    kconform check PATH... [--json FILE] [--report-dir DIR] [--junit FILE]
                           [--profile gate|deep] [--seed N] [--checks NAME,...]
    kconform replay TOKEN [PATCH...] [--kernel-tree PATH [--rev REV]]
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
from harness.errors import EXIT_CODE_MEANINGS, ExitCode, KconformError, UsageError

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
        help="a kernel tree (a git tree or a plain source directory): find each pre-image "
             "there as git am -3 would, check every hunk against it and translate whole "
             "changed functions")
    add(f"--{prefix}rev", default=None, metavar="REV",
        help="with --kernel-tree: the revision a patch is applied to when the tree lacks its "
             "index blob (default HEAD)")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message, hint="see 'kconform --help'")


def exit_codes_text(codes=None) -> str:
    """The exit codes, for --help (from ``ExitCode``, the one place they are defined)."""
    codes = list(codes or ExitCode)
    return "exit codes:\n" + "\n".join(f"  {int(code)}  {EXIT_CODE_MEANINGS[code]}"
                                        for code in codes)


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="kconform", description="Patch-conformance checks for KVM x86 MMU "
                                                  "patches.",
                     epilog=exit_codes_text(), formatter_class=formatter)
    parser.add_argument("--version", action="version",
                        version=f"kconform {__version__} (results schema kconform/1)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                metavar="COMMAND")
    check = sub.add_parser("check", help="check patches, mboxes, diffs or directories",
                           description="Check patches and say which behaviour each changed "
                                       "and whether that is the change its message claims.",
                           epilog=exit_codes_text(), formatter_class=formatter)
    check.add_argument("paths", nargs="+", metavar="PATH",
                       help="a patch mail, an mbox, a bare diff, a web-archive copy, or a "
                            "directory of them (.patch .diff .mbox .mbx .eml, and .txt files "
                            "that look like patches; other files are listed as ignored)")
    check.add_argument("--json", metavar="FILE",
                       help="write the kconform/1 results JSON here ('-': standard output, "
                            "and the summary goes to standard error)")
    check.add_argument("--report-dir", metavar="DIR",
                       help="write index.html, results.json, run.json, JUnit, KCIDB, "
                            "patchwork, summary.txt and summary.md here")
    check.add_argument("--junit", metavar="FILE", help="write JUnit XML here")
    check.add_argument("--target-url", metavar="URL",
                       help="the URL where the report will be published (http or https): "
                            "each patchwork check's target_url is URL#patch-N")
    check.add_argument("--patchwork-skipped", action="store_true",
                       help="also write a patchwork check (state success) for a SKIP patch; "
                            "by default a patch kconform does not read gets none")
    add_check_options(check.add_argument)
    check.add_argument("--apply-first", action="append", default=[], metavar="PATCH",
                       help="with --kernel-tree: a patch the checked ones were written on top "
                            "of (an earlier part of their series, the commit a Fixes: names), "
                            "applied in memory before them and not judged; repeat in order")
    check.add_argument("--quiet", action="store_true", help="print only the verdict lines")
    audit = sub.add_parser("audit", help="compare the models with the C of a kernel tree, "
                                         "function by function",
                           epilog="exit codes:\n  0  every function it could translate "
                                  "equals its model\n  1  a function differs from its model"
                                  "\n  2  a usage error", formatter_class=formatter)
    audit.add_argument("--kernel-tree", required=True, metavar="PATH",
                       help="a kernel git tree holding the modelled files")
    audit.add_argument("--rev", default=None, metavar="REV",
                       help="read the modelled files at REV (default: at the blobs the "
                            "series' states name, where the tree holds them)")
    audit.add_argument("--state", default="base", metavar="NAME",
                       help="with --rev: the state whose models to compare (default base)")
    audit.add_argument("--verbose", action="store_true", help="list equal functions too")
    replay = sub.add_parser("replay", help="re-run one counterexample from its replay token",
                            epilog="exit codes:\n  0  the counterexample was re-run (what it "
                                   "prints is the evidence)\n  2  the token or its inputs "
                                   "cannot be used", formatter_class=formatter)
    replay.add_argument("token", metavar="TOKEN",
                        help="the token of a finding's 'replay:' or 'Reproduce with:' line")
    replay.add_argument("patches", nargs="*", metavar="PATCH",
                        help="for a counterexample of a derived model: the patch files that "
                             "were checked, in order (their models are derived again)")
    replay.add_argument("--kernel-tree", default=None, metavar="PATH",
                        help="the kernel tree the check used, if any")
    replay.add_argument("--rev", default=None, metavar="REV",
                        help="the --rev the check used, if any")
    sub.add_parser("checks", help="list the checks by name",
                   epilog="exit codes:\n  0  always", formatter_class=formatter)
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


def check_output_path(path: str, option: str, *, directory: bool) -> None:
    """Refuse, before any checking, an output path that cannot be written.

    A directory (``--report-dir``) may exist as a directory or be creatable; a
    file (``--json``, ``--junit``) may exist as a file or be creatable.
    """
    if os.path.exists(path):
        if directory and not os.path.isdir(path):
            raise UsageError(f"{option} {path}: exists and is not a directory")
        if not directory and os.path.isdir(path):
            raise UsageError(f"{option} {path}: is a directory, not a file")
        target = path if directory else os.path.dirname(os.path.abspath(path))
        if not os.access(target, os.W_OK | os.X_OK):
            raise UsageError(f"{option} {path}: not writable")
        return
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UsageError(f"{option} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot create it under {parent} (not writable)")


def check_target_url(url: str | None) -> None:
    """patchwork stores target_url in a URL field: only an absolute http(s) URL is accepted."""
    if url is None:
        return
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(
            c.isspace() for c in url):
        raise UsageError(f"--target-url {url!r}: not an absolute http or https URL",
                         hint="e.g. --target-url https://ci.example/kconform/42/index.html")


def run_check(args) -> int:
    from harness import pipeline
    from harness.report.results import dumps, write_atomic

    for path in args.paths:
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such file or directory")
    if args.report_dir:
        check_output_path(args.report_dir, "--report-dir", directory=True)
    for option, path in (("--json", args.json), ("--junit", args.junit)):
        if path and path != "-":
            check_output_path(path, option, directory=False)
    if args.junit == "-":
        raise UsageError("--junit -: JUnit goes to a file (only --json may be '-')")
    check_target_url(args.target_url)
    checks = parse_checks(args.checks)
    to_stdout = args.json == "-"
    options = pipeline.RunOptions(
        profile=args.profile, seed=args.seed, checks=checks,
        kernel_tree=args.kernel_tree, rev=args.rev, apply_first=tuple(args.apply_first),
        progress=None if args.quiet else (lambda text: print(text, file=sys.stderr)),
        command=" ".join(["kconform"] + sys.argv[1:]))
    results, run = pipeline.check_paths(args.paths, options)
    _honour_stop()
    outputs = {}
    if args.json and not to_stdout:
        outputs[args.json] = dumps(results)
    if args.junit:
        from harness.report import outputs as machine
        outputs[args.junit] = machine.junit(results)
    if args.report_dir:
        outputs[os.path.join(args.report_dir, "results.json")] = dumps(results)
    _honour_stop()
    for path, text in outputs.items():
        write_atomic(path, text)
    if args.report_dir:
        write_atomic(os.path.join(args.report_dir, "run.json"), dumps(run))
        from harness.report import writer
        writer.write_all(results, run, args.report_dir, target_url=args.target_url,
                         patchwork_skipped=args.patchwork_skipped)
    try:
        if to_stdout:
            sys.stdout.write(dumps(results))
        print_summary(results, run, quiet=args.quiet,
                      stream=sys.stderr if to_stdout else sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``kconform check ... | head -1``): the verdict stands.
        silence_stdout()
    return results["exit_code"]


def silence_stdout() -> None:
    """After a broken pipe: send what is left to /dev/null, so exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


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


def print_summary(results: dict, run: dict, *, quiet: bool = False, stream=None) -> None:
    from harness.report import outputs as machine
    out = stream or sys.stdout

    def say(text: str) -> None:
        print(text, file=out)

    def findings(item: dict) -> None:
        for finding in item["findings"]:
            label = machine.blame_label(finding)
            mark = f" ({label})" if label else ""
            word = "inherited" if machine.is_inherited(finding) else finding["severity"]
            say(f"      {word} {finding['check']} [{finding['channel']}] "
                f"{finding['summary']}{mark}")
            if finding.get("replay"):
                say(f"           replay: {machine.replay_command(finding)}")

    counts: dict[str, int] = {}
    for patch in results["patches"]:
        if patch.get("is_cover"):
            continue
        counts[patch["verdict"]] = counts.get(patch["verdict"], 0) + 1
        series = patch.get("series")
        position = f"[{series['index']}/{series['total']}] " if series else ""
        say(f"{patch['verdict']:<5} {position}{patch['subject'] or patch['path']}")
        if patch.get("error"):
            print(f"kconform: error: {error_line(patch['error'])}", file=sys.stderr)
        if patch.get("repaired"):
            say(f"      repaired: {'; '.join(patch['damage']) or 'whitespace damage'} "
                f"(whitespace-only content cannot be verified)")
        if patch["verdict"] == "SKIP":
            say(f"      {machine.reasons(patch)}")
        if quiet:
            continue
        for note in patch.get("notes") or []:
            say(f"      note: {note}")
        for line in machine.claim_lines(patch, sentence_width=90):
            say(f"      claim: {line}")
        for fix in patch.get("fixes") or []:
            if fix.get("replay"):
                say(f"           replay: {machine.replay_command(fix)}")
        for hunk in machine.uncovered_hunks(patch):
            say(f"      MISS {hunk['file']}::{hunk['function'] or '?'}: {hunk['reason']}")
        findings(patch)
    for row in results.get("ignored") or []:
        print(f"kconform: ignored {row['path']}: {row['reason']}", file=sys.stderr)
    net = results.get("net")
    if net:
        say(f"{net['verdict']:<5} series net change {net['name']}")
        if not quiet:
            findings(net)
    tally = ", ".join(f"{counts.get(v, 0)} {v.lower()}" for v in machine.VERDICTS)
    drawn = f" (drawn; rerun with --seed {results['seed']})" if results.get("seed_drawn") else ""
    say(f"kconform: {results['verdict']} ({tally}; profile {results['profile']}, "
        f"seed {results['seed']}{drawn}, {run['elapsed_s']:.1f}s)")


def run_audit(args) -> int:
    """Exit 0 when every translated function equals its model, 1 when one differs."""
    from harness.translate import audit
    from harness.resolve.kernel_tree import open_tree
    from kernel_models.registry import SERIES_STATES

    if args.state not in SERIES_STATES:
        raise UsageError(f"unknown state {args.state!r}", hint=f"known: {', '.join(SERIES_STATES)}")
    if args.state != "base" and args.rev is None:
        raise UsageError("--state needs --rev: without it each blob is compared with the "
                         "state that names it")
    tree = open_tree(args.kernel_tree)
    if args.rev is not None and not tree.has_revision(args.rev):
        raise UsageError(f"--rev {args.rev}: no such revision in {args.kernel_tree}")
    differs = False
    if args.rev is not None:
        differs = print_tree_audit(tree, args.rev, args.state)
    rows = audit.audit_tree(tree, args.rev, args.state)
    if args.rev is not None:
        print("statement comparison (C subset) with the models of "
              f"'{args.state}':")
    differs = differs or any(r.outcome == audit.DIFFERS for r in rows)
    code = ExitCode.FAIL if differs else ExitCode.PASS
    try:
        print(audit.summary(rows, verbose=args.verbose))
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    return code


def print_tree_audit(tree, rev: str, state_name: str) -> bool:
    """The whole-file translation of ``rev`` and its behaviour against the models; True
    when a translated function behaves differently from its model."""
    from harness.check import fidelity
    from harness.translate import coverage, translate_tree
    from kernel_models.registry import VersionSet

    from harness.translate.tree import TreeError
    try:
        state = translate_tree(tree, rev)
    except TreeError as exc:
        raise UsageError(str(exc)) from None
    print(f"translation of {rev}:")
    print(coverage.summary(coverage.coverage(state), state.seconds))
    rows = fidelity.compare_state(state, VersionSet.series_state(state_name))
    print(f"behaviour against the models of '{state_name}' (exhaustive domain, every mode):")
    undriven = [r.function for r in rows if r.outcome == fidelity.NO_DRIVER]
    rows = [r for r in rows if r.outcome != fidelity.NO_DRIVER]
    for row in rows:
        cases = f" ({row.cases} cases)" if row.cases else ""
        print(f"  {row.outcome:<12} {row.function}{cases}")
        for line in row.detail.split("\n") if row.detail and row.outcome != fidelity.EQUAL else ():
            print(f"      {line}")
    if undriven:
        print(f"  {len(undriven)} more modelled functions translate but have no driver "
              f"(compared only by the statement comparison below): {', '.join(undriven)}")
    return any(r.outcome == fidelity.DIFFERS for r in rows)


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
                pipeline.resolve_paths(args.patches, args.kernel_tree, args.rev)
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
        # The reader of our output went away (``kconform checks | head -1``): what was
        # asked was done, so no failure is claimed; the rest goes to /dev/null.
        silence_stdout()
        return int(ExitCode.PASS)
    except Exception as exc:  # a bug in kconform or its models: say so, keep old reports
        print(f"kconform: internal error: {type(exc).__name__}: {exc}; no report was written "
              f"or replaced (set KCONFORM_DEBUG=1 for the traceback)", file=sys.stderr)
        if os.environ.get("KCONFORM_DEBUG"):
            raise
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
