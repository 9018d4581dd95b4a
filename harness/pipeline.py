"""The five stages joined: paths -> results document (and run record).

``check_paths`` is the one engine entry point that the CLI and the pytest
plugin share; neither has a second copy of this flow.

    ingest -> scope -> resolve -> check -> results

A file that cannot be read becomes an ERROR entry naming file, mail and hunk;
the other inputs are still checked, so one bad mail does not hide the verdicts
of the rest.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import sys
import threading
import time
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone

from harness.errors import KconformError, LimitError, PatchError
from harness.report.results import Verdict, document, patch_verdict, to_jsonable

DEFAULT_PROFILE = "gate"

# Resource limits (documented in the README).  Past them the input is refused
# with a LimitError (exit 2) instead of being half-checked.
MAX_INPUT_BYTES = 20 * 1024 * 1024      # per input file
MAX_HUNK_LINES = 20_000                 # per hunk
MAX_PATCHES = 500                       # per run
MAX_SECONDS_PER_PATCH = 120             # wall clock, per patch, any profile


@dataclass
class RunOptions:
    profile: str = DEFAULT_PROFILE
    seed: int | None = None           # None: the profile's (gate: 0; deep: drawn per run)
    checks: list[str] | None = None
    series_net: bool = True
    cover_only_is_error: bool = True   # the pytest plugin checks one file at a time
    progress: object = None     # callable(str) for terminal progress, or None
    command: str = ""
    kernel_tree: str | None = None    # a git tree to read pre-image blobs from
    extra: dict = field(default_factory=dict)


def expand_paths(paths: list[str]) -> list[str]:
    """Files as given; directories expanded to the patch-like files in them."""
    from harness.ingest import patches as ingest
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                if os.path.isfile(full) and ingest.sniff(full):
                    files.append(full)
        else:
            files.append(path)
    return files


def check_size(path: str) -> None:
    """Refuse oversized inputs and binary files before any parsing."""
    size = os.path.getsize(path)
    if size > MAX_INPUT_BYTES:
        raise LimitError(f"input is {size / 2**20:.1f} MiB, over the {MAX_INPUT_BYTES >> 20} MiB "
                         f"limit", file=path,
                         hint="split the mbox, or check the patches one by one")
    with open(path, "rb") as handle:
        data = handle.read()
    if b"\0" in data:
        line = data[:data.index(b"\0")].count(b"\n") + 1
        raise PatchError("the input holds NUL bytes: it is binary data, not a patch mail or diff",
                         file=path, line=line,
                         hint="pass the mail as text; binary content cannot be checked")


def read_inputs(paths: list[str]):
    """Patches in series order, plus one ERROR record per unreadable file."""
    from harness.ingest import patches as ingest
    oversized = []
    for path in expand_paths(paths):
        try:
            check_size(path)
        except PatchError as exc:
            oversized.append((path, exc))
    if oversized:
        paths = [p for p in expand_paths(paths) if p not in {o[0] for o in oversized}]
        patches, errors = read_inputs(paths) if paths else ([], [])
        return patches, oversized + errors
    try:
        return ingest.read_paths(paths), []
    except PatchError:
        pass
    patches, errors = [], []
    for path in expand_paths(paths):
        try:
            patches.extend(ingest.read_file(path))
        except PatchError as exc:
            errors.append((path, exc))
    if patches:
        try:
            patches = ingest.read_paths([p for p in expand_paths(paths)
                                         if p not in {e[0] for e in errors}])
        except PatchError as exc:
            errors.append((paths[0], exc))
            patches = []
    return patches, errors


def error_entry(path: str, exc: KconformError) -> dict:
    return {
        "path": path, "subject": None, "raw_subject": None, "message_id": exc.mail,
        "in_reply_to": None, "author": None, "date": None, "series": None,
        "base_commit": None, "is_cover": False, "damage": [], "repaired": False,
        "repairs": [], "notes": [], "verdict": Verdict.ERROR.name, "contract": None,
        "versions": None, "hunks": [], "coverage": [], "findings": [], "fixes": [],
        "error": exc.as_dict(),
    }


def patch_entry(patch, hunks, resolution, outcome, error: KconformError | None = None) -> dict:
    coverage_by_index = {h.index: h for h in resolution.hunks} if resolution else {}
    hunk_rows = []
    for hunk in hunks:
        cover = coverage_by_index.get(hunk.index)
        hunk_rows.append({
            "index": hunk.index, "file": hunk.file, "function": hunk.function,
            "kind": hunk.kind, "covered": bool(cover and cover.covered),
            "model": cover.model if cover else None,
            "reason": cover.reason if cover else hunk.reason,
            "scope": hunk.reason, "header": hunk.header, "line": hunk.line, "text": hunk.text,
        })
    findings = [to_jsonable(f) for f in outcome.findings] if outcome else []
    findings.sort(key=lambda f: f["severity"] != "FAIL")   # worst first, order kept otherwise
    verdict = patch_verdict(error=error is not None,
                            hunks_covered=[h["covered"] for h in hunk_rows],
                            severities=[f["severity"] for f in findings])
    return {
        "path": patch.path, "subject": patch.subject, "raw_subject": patch.raw_subject,
        "message_id": patch.message_id, "in_reply_to": patch.in_reply_to,
        "author": patch.author, "date": patch.date,
        "series": to_jsonable(patch.series) if patch.series else None,
        "base_commit": patch.base_commit, "is_cover": patch.is_cover,
        "damage": list(patch.damage), "repaired": patch.repaired,
        "repairs": to_jsonable(patch.repairs),
        "notes": list(patch.notes) + list(resolution.notes if resolution else ())
        + intent_notes(outcome, resolution),
        "verdict": verdict.name,
        "contract": outcome.contract.as_dict() if outcome and outcome.contract else None,
        "versions": resolution.as_dict() if resolution else None,
        "hunks": hunk_rows,
        "coverage": [to_jsonable(c) for c in outcome.coverage] if outcome else [],
        "findings": findings,
        "fixes": [to_jsonable(f) for f in outcome.fixes] if outcome else [],
        "error": error.as_dict() if error else None,
    }


def intent_notes(outcome, resolution) -> list[str]:
    """What the commit message made of the check, when it is not in a finding."""
    intent = outcome.contract.claims if outcome and outcome.contract else None
    if intent is None:
        return []
    notes = [intent.note] if intent.note else []
    checked = resolution is not None and resolution.before is not None \
        and resolution.after is not None
    if intent.fixes and checked and not outcome.fixes:
        notes.append(f"the message says it fixes a bug (\u201c{intent.fixes[0].sentence}\u201d), "
                     f"but no check failed before and held after in this run: the models do "
                     f"not confirm the fix (a note, not a failure)")
    return notes


def cover_entry(patch) -> dict:
    entry = patch_entry(patch, (), None, None)
    entry["verdict"] = Verdict.PASS.name    # a cover letter carries no code; not counted
    return entry


def check_patch_shape(patch, hunks) -> None:
    """Refuse what no honest patch holds: a position past the series total,
    paths that leave the tree, hunks that overlap or go backwards, and hunks
    past the size limit."""
    if patch.series and patch.series.index > patch.series.total:
        raise PatchError(f"the subject says patch {patch.series.index} of "
                         f"{patch.series.total}", file=patch.path, mail=patch.message_id,
                         hint="fix the [PATCH n/m] prefix")
    last_end: dict[str, int] = {}
    seen: set[int] = set()
    for hunk in hunks:
        if hunk.index in seen:
            continue        # the same diff hunk, scoped to a second function
        seen.add(hunk.index)
        parts = hunk.file.split("/")
        if hunk.file.startswith("/") or ".." in parts:
            raise PatchError(f"the diff names the path {hunk.file!r}, which leaves the source "
                             f"tree", file=patch.path, mail=patch.message_id,
                             hunk=f"{hunk.file} {hunk.header}", line=hunk.line,
                             hint="paths in a kernel patch are relative to the tree's top")
        if hunk.source_start < last_end.get(hunk.file, 0):
            raise PatchError("this hunk overlaps or precedes the previous hunk of the same "
                             "file", file=patch.path, mail=patch.message_id,
                             hunk=f"{hunk.file} {hunk.header}", line=hunk.line,
                             hint="regenerate the patch with git format-patch")
        if hunk.source_length:
            last_end[hunk.file] = max(last_end.get(hunk.file, 0),
                                      hunk.source_start + hunk.source_length)
    check_hunk_sizes(patch, hunks)


def check_hunk_sizes(patch, hunks) -> None:
    for hunk in hunks:
        lines = hunk.source_length + hunk.target_length
        if lines > MAX_HUNK_LINES:
            raise LimitError(f"hunk has {lines:,} lines, over the {MAX_HUNK_LINES:,}-line limit",
                             file=patch.path, mail=patch.message_id,
                             hunk=f"{hunk.file} {hunk.header}", line=hunk.line,
                             hint="no modelled kernel function is that long; split the patch")


@contextlib.contextmanager
def time_limit(seconds: int, patch):
    """Stop checking one patch after ``seconds`` (main thread only; else unlimited)."""
    if threading.current_thread() is not threading.main_thread() or not seconds:
        yield
        return

    def expire(signum, frame):
        raise LimitError(f"checking took longer than the {seconds} s limit per patch",
                         file=patch.path, mail=patch.message_id,
                         hint="use --profile gate, or --checks to run fewer checks")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_patch_entry(patch, options: RunOptions, previous: str | None, tree=None):
    """Scope, resolve and check one patch; returns (entry, after-state name)."""
    from harness.check import engine as check
    from harness.ingest import scope
    from harness.resolve.strategies import resolve

    try:
        hunks = scope.scope_patch(patch)
        check_patch_shape(patch, hunks)
    except PatchError as exc:
        return error_entry(patch.path, exc), previous
    if not hunks:
        exc = PatchError("the mail holds no diff hunks", file=patch.path, mail=patch.message_id,
                         hint="pass the patch mail itself, not a reply or cover letter")
        return error_entry(patch.path, exc), previous
    resolution = resolve(hunks, previous=previous, tree=tree)
    doc_images = None
    if tree is not None:
        from harness.check import docs
        from harness.resolve.kernel_tree import whole_images

        doc_images = whole_images(tree, hunks, lambda file: file.lower().endswith(
            docs.RST_SUFFIXES))
    try:
        with time_limit(MAX_SECONDS_PER_PATCH, patch):
            outcome = check.check_patch(patch, hunks, resolution, profile=options.profile,
                                        seed=options.seed, checks=options.checks,
                                        doc_images=doc_images)
    except LimitError as exc:
        return error_entry(patch.path, exc), previous
    after = resolution.after.name if resolution.after is not None else None
    entry = patch_entry(patch, hunks, resolution, outcome)
    entry_contracts[id(entry)] = outcome.contract
    if resolution.before is not None and resolution.after is not None:
        entry_states[id(entry)] = (resolution.before, resolution.after)
    return entry, after


# The Contract objects behind the entries of the current run, for the series'
# net contract (entries themselves hold only the contract's JSON form).
entry_contracts: dict[int, object] = {}
# The (before, after) version sets behind the entries, for the pre-existing findings.
entry_states: dict[int, tuple] = {}


def preexisting(entries: list[dict], options: RunOptions) -> list[dict]:
    """Invariant violations of the state before the first patch checked, and what each
    later patch does to them (keeps, fixes, changes).  Never a patch's own finding."""
    from harness.check import engine as check

    checked = [e for e in entries if id(e) in entry_states]
    if not checked:
        return []
    first = entry_states[id(checked[0])][0]
    found = check.check_preexisting(first, profile=options.profile, seed=options.seed,
                                    checks=_selected_checks(options.checks))
    sections = []
    for finding in found:
        item = to_jsonable(finding)
        item["state"] = first.name
        item["patches"] = [{"path": e["path"], "subject": e["subject"],
                            "status": check.preexisting_status(finding, entry_states[id(e)][1],
                                                               _selected_checks(options.checks))}
                           for e in checked]
        sections.append(item)
        for entry in checked:       # the same bug, seen again as a patch's inherited finding
            for own in entry["findings"]:
                if own["check"] == finding.check and "(inherited:" in own["summary"]:
                    own["preexisting"] = True
    return sections


def _selected_checks(names):
    from harness.check import checks
    return checks.select(names) if names else None


def series_net(entries: list[dict], options: RunOptions) -> dict | None:
    """Base -> end of series, when the series walked the modelled states."""
    from harness.check import engine as check
    from harness.check import contracts
    from kernel_models.registry import SERIES_STATES, VersionSet

    states = [e["versions"] for e in entries if e.get("versions")]
    if len(states) < 2 or not options.series_net or len(states) != len(entries):
        return None
    # Only a series whose patches chain (each one's before is the previous one's after)
    # has a net change: a missing part would mix its change into the net.
    for earlier, later in zip(states, states[1:]):
        if earlier.get("after") is None or earlier.get("after") != later.get("before"):
            return None
    first, last = states[0].get("before"), states[-1].get("after")
    if first not in SERIES_STATES or last not in SERIES_STATES or first == last:
        return None
    before, after = VersionSet.series_state(first), VersionSet.series_state(last)
    contract = contracts.series_contract([entry_contracts[id(e)] for e in entries
                                          if id(e) in entry_contracts])
    outcome = check.check_transition(f"{first} -> {last}", before, after, contract,
                                     profile=options.profile, seed=options.seed,
                                     checks=options.checks)
    findings = [to_jsonable(f) for f in outcome.findings]
    verdict = patch_verdict(error=False, hunks_covered=[True],
                            severities=[f["severity"] for f in findings])
    return {"name": f"{first} -> {last}", "before": first, "after": last,
            "verdict": verdict.name, "contract": contract.as_dict() if contract else None,
            "findings": findings, "coverage": [to_jsonable(c) for c in outcome.coverage]}


def _note_replay_inputs(entries: list[dict], paths: list[str], kernel_tree: str | None) -> None:
    """A finding on a derived model replays only with the inputs that derived it: say them."""
    from harness.check import engine as check
    inputs = list(paths) + (["--kernel-tree", kernel_tree] if kernel_tree else [])
    for entry in entries:
        for finding in entry.get("findings") or []:
            if finding.get("replay") and check.replay_needs_inputs(finding["replay"]):
                finding["replay_inputs"] = inputs


def resolve_paths(paths: list[str], kernel_tree: str | None = None) -> list[str]:
    """Ingest, scope and resolve ``paths`` as ``check_paths`` does, without checking.

    Resolving registers every after-model derived from the patches (their blob
    names depend only on the hunks), which ``kconform replay`` needs for a
    counterexample of a derived model.  Returns the after-state names.
    """
    from harness.ingest import scope
    from harness.resolve.strategies import resolve

    tree = None
    if kernel_tree is not None:
        from harness.resolve.kernel_tree import KernelTree

        tree = KernelTree(kernel_tree)
    patches, errors = read_inputs(paths)
    if errors:
        path, exc = errors[0]
        raise exc
    previous, states = None, []
    for patch in patches:
        if patch.is_cover:
            continue
        resolution = resolve(scope.scope_patch(patch), previous=previous, tree=tree)
        previous = resolution.after.name if resolution.after is not None else previous
        states.append(previous)
    return states


def check_paths(paths: list[str], options: RunOptions | None = None) -> tuple[dict, dict]:
    """Run every stage on ``paths``; returns (results document, run record)."""
    from harness.check import profiles

    options = options or RunOptions()
    seed, drawn = profiles.run_seed(options.profile, options.seed)
    options = dataclasses.replace(options, seed=seed)
    if drawn and options.progress:
        options.progress(f"deep profile: seed {seed} drawn for this run "
                         f"(rerun the same search with --seed {seed})")
    tree = None
    if options.kernel_tree is not None:
        from harness.resolve.kernel_tree import KernelTree

        tree = KernelTree(options.kernel_tree)
    started = datetime.now(timezone.utc)
    clock = time.monotonic()
    patches, errors = read_inputs(paths)
    entries = [error_entry(path, exc) for path, exc in errors]
    previous = None
    for patch in patches:
        if patch.is_cover:
            entries.append(cover_entry(patch))
            continue
        if options.progress:
            options.progress(f"checking {patch.label} ...")
        entry, previous = check_patch_entry(patch, options, previous, tree)
        entries.append(entry)
    if not errors and all(p.is_cover for p in patches) and (
            options.cover_only_is_error or not patches):
        message = ("only a cover letter: the series' patches are not in the input" if patches
                   else "no patch found in the given paths")
        exc = PatchError(message, file=", ".join(paths),
                         mail=patches[0].message_id if patches else None,
                         hint="give patch files, mboxes or directories holding them")
        entries.append(error_entry(", ".join(paths), exc))
    net = series_net([e for e in entries if not e["is_cover"] and e["verdict"] != "ERROR"],
                     options) if not errors else None
    found_before = preexisting(entries, options) if not errors else []
    _note_replay_inputs(entries, paths, options.kernel_tree)
    entry_contracts.clear()
    entry_states.clear()
    checks = options.checks or _all_check_names()
    results = document(entries, profile=options.profile, seed=options.seed, seed_drawn=drawn,
                       checks=checks, net=net, preexisting=found_before)
    run = {
        "started": started.isoformat(timespec="seconds"),
        "elapsed_s": round(time.monotonic() - clock, 3),
        "host": socket.gethostname(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "command": options.command,
        "kernel_tree": options.kernel_tree,
        "examples": sum(c.get("cases") or 0 for p in entries for c in p.get("coverage", []))
        + sum(c.get("cases") or 0 for c in (net or {}).get("coverage", [])),
    }
    return results, run


def _all_check_names() -> list[str]:
    from harness.check import checks
    return list(checks.names())
