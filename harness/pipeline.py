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

from harness.check import parallel
from harness.errors import KconformError, LimitError, PatchError, UsageError
from harness.report.results import Verdict, document, patch_verdict, to_jsonable

DEFAULT_PROFILE = "gate"

# Resource limits (documented in the README).  Past them the input is refused
# with a LimitError (exit 2) instead of being half-checked.
MAX_INPUT_BYTES = 20 * 1024 * 1024      # per input file
MAX_HUNK_LINES = 20_000                 # per hunk
MAX_PATCHES = 500                       # per run
MAX_SECONDS_PER_PATCH = 120             # CPU seconds of the checking process, per patch


@dataclass
class RunOptions:
    profile: str = DEFAULT_PROFILE
    seed: int | None = None           # None: the profile's (gate: 0; deep: drawn per run)
    checks: list[str] | None = None
    series_net: bool = True
    cover_only_is_error: bool = True   # the pytest plugin checks one file at a time
    progress: object = None     # callable(str) for terminal progress, or None
    command: str = ""
    kernel_tree: str | None = None    # a kernel tree to find pre-images in (git or directory)
    rev: str | None = None            # the tree's revision patches apply to (default HEAD)
    apply_first: tuple[str, ...] = ()  # patches in the tree state before the checked ones
    jobs: int | None = 1              # processes checking at once (None: the usable cores)
    extra: dict = field(default_factory=dict)


def settle_imports() -> None:
    """Import the engine, the models and Hypothesis, then move every object alive now out
    of the collector's reach (``gc.freeze``): the checks make many short-lived objects, and
    each collection would otherwise walk the whole import graph again.  For a process that
    checks once (the CLI, a pool worker); a long-lived caller need not call it.

    The collector then runs less often (a young generation of 20,000 objects, not 700):
    the kept trajectories and function-level runs (``harness.check.memo``) stay alive for
    the whole run, and each collection of the older generations walks them again; on
    ``patches/`` this halves the collector's time.  Nothing the checks do depends on when
    it runs."""
    import gc

    from harness.check import engine  # noqa: F401
    from harness.ingest import scope  # noqa: F401
    from harness.resolve import strategies  # noqa: F401
    from kernel_models import operations  # noqa: F401
    import hypothesis.stateful  # noqa: F401

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


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
    """Patches in series order, one ERROR record per unreadable file, and what was ignored.

    Each file is read on its own, so an empty or corrupt file among good ones
    is an ERROR of its own and never hides, or is hidden by, the others.
    """
    from harness.ingest import patches as ingest
    from harness.ingest.series import order_series
    files, ignored = ingest.find_inputs(paths)
    patches, errors = [], []
    for path in files:
        try:
            check_size(path)
            patches.extend(ingest.read_file(path))
        except PatchError as exc:
            errors.append((path, exc))
    return order_series(patches), errors, ignored


def error_entry(path: str, exc: KconformError, sha256: str | None = None) -> dict:
    return {
        "path": path, "sha256": sha256, "subject": None, "raw_subject": None,
        "message_id": exc.mail,
        "in_reply_to": None, "author": None, "date": None, "series": None,
        "base_commit": None, "is_cover": False, "damage": [], "repaired": False,
        "repairs": [], "notes": [], "verdict": Verdict.ERROR.name, "contract": None,
        "versions": None, "hunks": [], "coverage": [], "findings": [], "fixes": [],
        "error": exc.as_dict(),
    }


NOT_READ = "not a file kconform reads (it reads the KVM x86 MMU)"


def hunk_rows(hunks, resolution, outcome) -> list[dict]:
    """One row per hunk: where it is, whether a model checked it, and why (not)."""
    from harness.check.engine import operation_level_only, operation_level_stopped
    from harness.ingest.scope import is_read_file
    coverage_by_index = {h.index: h for h in resolution.hunks} if resolution else {}
    stopped = operation_level_stopped(outcome.coverage) if outcome else None
    unchecked = operation_level_only(outcome.coverage) if stopped else set()
    unexercised = dict(outcome.unexercised) if outcome else {}
    rows = []
    for hunk in hunks:
        cover = coverage_by_index.get(hunk.index)
        alone = sum(1 for h in hunks if h.index == hunk.index) == 1
        if cover and alone and hunk.function is None and cover.function is not None:
            hunk = dataclasses.replace(hunk, function=cover.function, reason=(  # by resolve
                f"{hunk.reason}; named {cover.function} by the pre-image it applied to"))
        if cover and cover.covered and hunk.function in unchecked:
            # only the operation level checks this function, and it did not finish
            cover = dataclasses.replace(cover, covered=False, reason=stopped)
        if cover and cover.covered and hunk.function in unexercised:
            cover = dataclasses.replace(cover, covered=False, reason=(
                f"modelled, but no check ran the change: in {hunk.function}, "
                f"{unexercised[hunk.function]}"))
        read = is_read_file(hunk.file)
        rows.append({
            "index": hunk.index, "file": hunk.file, "function": hunk.function,
            "kind": hunk.kind, "covered": bool(cover and cover.covered), "read": read,
            "model": cover.model if cover else None,
            "reason": cover.reason if cover else (
                hunk.reason if read else NOT_READ),
            "scope": hunk.reason, "header": hunk.header, "line": hunk.line, "text": hunk.text,
        })
    return rows


def patch_entry(patch, hunks, resolution, outcome, error: KconformError | None = None) -> dict:
    rows = hunk_rows(hunks, resolution, outcome)
    findings = [to_jsonable(f) for f in outcome.findings] if outcome else []
    findings.sort(key=lambda f: (f.get("inherited", False),) + worst_and_smallest_first(f))
    # worst and smallest first; an inherited finding never sets this patch's verdict
    verdict = patch_verdict(error=error is not None,
                            hunks_covered=[h["covered"] for h in rows],
                            severities=[f["severity"] for f in findings if not f.get("inherited")],
                            hunks_read=[h["read"] for h in rows])
    return {
        "path": patch.path, "sha256": patch.source_sha256,
        "subject": patch.subject, "raw_subject": patch.raw_subject,
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
        "hunks": rows,
        "coverage": [to_jsonable(c) for c in outcome.coverage] if outcome else [],
        "findings": findings,
        "fixes": [to_jsonable(f) for f in outcome.fixes] if outcome else [],
        "error": error.as_dict() if error else None,
    }


def worst_and_smallest_first(finding: dict) -> tuple:
    """FAIL before WARN; then the counterexample with the fewest steps, then the
    fewest events, so the first finding shown is the quickest to read."""
    example = finding.get("counterexample") or {}
    events = len(example.get("before") or ()) + len(example.get("after") or ())
    return (finding["severity"] != "FAIL", len(example.get("steps") or ()), events)


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
    """Stop checking one patch after ``seconds`` of the process's CPU time (user and
    system, ``ITIMER_PROF``; main thread only, else unlimited).  CPU, not wall clock: a
    loaded CI runner slows a check down but does not make it do more, so it must not turn
    a check into an ERROR."""
    if threading.current_thread() is not threading.main_thread() or not seconds:
        yield
        return

    def expire(signum, frame):
        raise LimitError(f"checking took longer than the {seconds} s (CPU) limit per patch",
                         file=patch.path, mail=patch.message_id,
                         hint="use --profile gate, or --checks to run fewer checks")

    previous = signal.signal(signal.SIGPROF, expire)
    # repeat every 0.1 s after expiry: an exception raised while the collector runs a
    # callback is printed and dropped by Python, so one alarm alone could be lost
    signal.setitimer(signal.ITIMER_PROF, seconds, 0.1)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


@dataclass(frozen=True)
class Position:
    """Where a series stands after a patch: the state it left and, with a kernel tree,
    the texts it left (in memory; the tree is never written)."""

    state: str | None = None
    memory: object = None


def open_kernel_tree(kernel_tree: str | None, rev: str | None):
    """The tree ``--kernel-tree`` names (git or plain directory), with ``--rev`` checked."""
    if kernel_tree is None:
        if rev is not None:
            raise UsageError("--rev needs --kernel-tree: it names a revision of that tree")
        return None
    from harness.resolve.kernel_tree import open_tree

    tree = open_tree(kernel_tree)
    if rev is not None and not tree.has_revision(rev):
        raise UsageError(f"--rev {rev}: no such revision in {kernel_tree}"
                         + (" (a plain directory has only its files: leave --rev out)"
                            if tree.kind == "directory" else ""))
    return tree


@dataclass
class Pending:
    """A patch scoped and resolved whose check has not run yet."""

    patch: object
    hunks: list
    resolution: object
    doc_images: dict | None
    contract: object               # engine.patch_contract: what the check will check against
    previous: Position             # where the series stood before this patch


def check_patch_entry(patch, options: RunOptions, previous: Position, tree=None):
    """Scope, resolve and check one patch; returns (entry, the Position it leaves)."""
    item, position = prepare_patch_entry(patch, options, previous, tree)
    if not isinstance(item, Pending):
        return item, position
    outcome = run_check(item, options)
    if isinstance(outcome, LimitError):
        return error_entry(patch.path, outcome, patch.source_sha256), previous
    return finish_entry(item, outcome), position


def prepare_patch_entry(patch, options: RunOptions, previous: Position, tree=None):
    """Scope and resolve one patch: (an entry, or the ``Pending`` check, and the Position
    the patch leaves)."""
    from harness.check import engine as check
    from harness.ingest import scope
    from harness.ingest.scope import is_read_file
    from harness.resolve.strategies import resolve

    try:
        hunks = scope.scope_patch(patch)
        check_patch_shape(patch, hunks)
    except PatchError as exc:
        return error_entry(patch.path, exc, patch.source_sha256), previous
    if not hunks:
        exc = PatchError("the mail holds no diff hunks", file=patch.path, mail=patch.message_id,
                         hint="pass the patch mail itself, not a reply or cover letter")
        return error_entry(patch.path, exc, patch.source_sha256), previous
    if not any(is_read_file(hunk.file) for hunk in hunks):
        # Not kconform's patch (SKIP): nothing to resolve or run; a series goes on
        # from the state the previous patch left.
        return patch_entry(patch, hunks, None, None), previous
    resolution = resolve(hunks, previous=previous.state, tree=tree, rev=options.rev or "HEAD",
                         memory=previous.memory, label=patch.label)
    doc_images = None
    if tree is not None:      # whole documentation files, from the pre-images the routes found
        from harness.check import docs

        doc_images = {p.file: (p.text, p.post) for p in resolution.preimages
                      if getattr(p, "route", None) and p.file.lower().endswith(docs.RST_SUFFIXES)}
    after = resolution.after.name if resolution.after is not None else None
    pending = Pending(patch, hunks, resolution, doc_images,
                      check.patch_contract(patch, hunks, resolution), previous)
    return pending, Position(after, resolution.memory or previous.memory)


def run_check(pending: Pending, options: RunOptions):
    """The engine's check of a pending patch: its CheckOutcome, or the LimitError."""
    from harness.check import engine as check

    try:
        with time_limit(MAX_SECONDS_PER_PATCH, pending.patch):
            return check.check_patch(pending.patch, pending.hunks, pending.resolution,
                                     profile=options.profile, seed=options.seed,
                                     checks=options.checks, doc_images=pending.doc_images)
    except LimitError as exc:
        return exc


def finish_entry(pending: Pending, outcome) -> dict:
    entry = patch_entry(pending.patch, pending.hunks, pending.resolution, outcome)
    entry_contracts[id(entry)] = outcome.contract
    resolution = pending.resolution
    if resolution.before is not None and resolution.after is not None:
        entry_states[id(entry)] = (resolution.before, resolution.after)
    return entry


# The Contract objects behind the entries of the current run, for the series'
# net contract (entries themselves hold only the contract's JSON form).
entry_contracts: dict[int, object] = {}
# The (before, after) version sets behind the entries, for the pre-existing findings.
entry_states: dict[int, tuple] = {}


def preexisting(entries: list[dict], options: RunOptions, found=None) -> list[dict]:
    """Invariant violations of the state before the first patch checked, and what each
    later patch does to them (keeps, fixes, changes).  Never a patch's own finding.
    ``found``: ``preexisting_findings`` of that state, when already run."""
    from harness.check import engine as check

    checked = [e for e in entries if id(e) in entry_states]
    if not checked:
        return []
    first = entry_states[id(checked[0])][0]
    if found is None:
        found = preexisting_findings(first, options)
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


def preexisting_findings(first, options: RunOptions) -> list:
    from harness.check import engine as check
    return check.check_preexisting(first, profile=options.profile, seed=options.seed,
                                   checks=_selected_checks(options.checks))


def _selected_checks(names):
    from harness.check import checks
    return checks.select(names) if names else None


def net_plan(states: list[dict | None], contracts: list, options: RunOptions):
    """(first, last, before, after, contract) of a series' net change, or None.

    ``states``: each patch's ``versions`` (None for one that has none), in order;
    ``contracts``: the contracts of the patches checked."""
    from harness.check import contracts as C
    from kernel_models.registry import SERIES_STATES, VersionSet

    if len(states) < 2 or not options.series_net or not all(states):
        return None
    # Only a series whose patches chain (each one's before is the previous one's after)
    # has a net change: a missing part would mix its change into the net.
    for earlier, later in zip(states, states[1:]):
        if earlier.get("after") is None or earlier.get("after") != later.get("before"):
            return None
    first, last = states[0].get("before"), states[-1].get("after")
    if first not in SERIES_STATES or last not in SERIES_STATES or first == last:
        return None
    return (first, last, VersionSet.series_state(first), VersionSet.series_state(last),
            C.series_contract(contracts))


def net_outcome(plan, options: RunOptions):
    from harness.check import engine as check

    first, last, before, after, contract = plan
    return check.check_transition(f"{first} -> {last}", before, after, contract,
                                  profile=options.profile, seed=options.seed,
                                  checks=options.checks)


def series_net(entries: list[dict], options: RunOptions, outcome=None) -> dict | None:
    """Base -> end of series, when the series walked the modelled states (``outcome``:
    its check, when already run)."""
    plan = net_plan([e.get("versions") for e in entries],
                    [entry_contracts[id(e)] for e in entries if id(e) in entry_contracts],
                    options)
    if plan is None:
        return None
    first, last, before, after, contract = plan
    if outcome is None:
        outcome = net_outcome(plan, options)
    from harness.check import culprit

    findings = sorted((to_jsonable(f) for f in outcome.findings), key=worst_and_smallest_first)
    for finding in findings:
        finding["culprit"] = culprit.net_culprit(finding, entries)
        finding["blame"] = ({"kind": "pre-existing", "state": first} if finding.get("inherited")
                            else {"kind": "introduced"})
    verdict = patch_verdict(error=False, hunks_covered=[True],
                            severities=[f["severity"] for f in findings
                                        if not f.get("inherited")])
    return {"name": f"{first} -> {last}", "before": first, "after": last,
            "verdict": verdict.name, "contract": contract.as_dict() if contract else None,
            "findings": findings, "coverage": [to_jsonable(c) for c in outcome.coverage]}


def blame_label(entry: dict) -> str:
    """How a patch is named in another patch's finding: its series position, else its file."""
    series = entry.get("series")
    if series and series.get("index") is not None and series.get("total"):
        return f"{series['index']}/{series['total']}"
    return os.path.basename(entry.get("path") or "?")


def assign_blame(entry: dict, earlier: list[dict]) -> None:
    """Say whose each finding of ``entry`` is; ``earlier`` are its series' patches before it.

    A finding the patch's own change causes is ``introduced``.  An inherited one
    (the before side fails the same check on the same channel) is traced back
    along the chain of states to the patch that introduced it (``inherited``,
    naming that patch, which lists this one in ``inherited_by``), else it was
    there before the input (``pre-existing``, naming the before state).
    """
    for finding in entry.get("findings") or []:
        if not finding.get("inherited"):
            finding.setdefault("blame", {"kind": "introduced"})
            continue
        key = (finding.get("check"), finding.get("channel"))
        state = (entry.get("versions") or {}).get("before")
        source = None
        for other in reversed(earlier):
            versions = other.get("versions") or {}
            if not versions or versions.get("after") != state:
                continue            # a SKIP or unrelated patch: the chain goes on past it
            same = [f for f in other.get("findings") or []
                    if (f.get("check"), f.get("channel")) == key]
            own = [f for f in same if not f.get("inherited")]
            if own:
                source = (other, own[0])
                break
            if not same:
                break               # the state before this one passed: nothing to trace
            state = versions.get("before")
        if source is None:
            finding["blame"] = {"kind": "pre-existing",
                                "state": (entry.get("versions") or {}).get("before")}
            continue
        other, introduced = source
        finding["blame"] = {"kind": "inherited", "patch": blame_label(other),
                            "path": other.get("path"), "message_id": other.get("message_id")}
        introduced.setdefault("blame", {"kind": "introduced"}).setdefault(
            "inherited_by", []).append(blame_label(entry))


def _note_replay_inputs(entries: list[dict], paths: list[str], kernel_tree: str | None,
                        rev: str | None = None) -> None:
    """A finding on a derived model replays only with the inputs that derived it: say them."""
    from harness.check import engine as check
    inputs = list(paths) + (["--kernel-tree", kernel_tree] if kernel_tree else []) + (
        ["--rev", rev] if kernel_tree and rev else [])
    for entry in entries:
        for finding in entry.get("findings") or []:
            if finding.get("replay") and check.replay_needs_inputs(finding["replay"]):
                finding["replay_inputs"] = inputs


def resolve_paths(paths: list[str], kernel_tree: str | None = None, rev: str | None = None,
                  ) -> list[str]:
    """Ingest, scope and resolve ``paths`` as ``check_paths`` does, without checking.

    Resolving registers every after-model derived from the patches (their blob
    names depend only on the hunks), which ``kconform replay`` needs for a
    counterexample of a derived model.  Returns the after-state names.
    """
    from harness.ingest import scope
    from harness.resolve.strategies import resolve

    tree = open_kernel_tree(kernel_tree, rev)
    patches, errors, _ = read_inputs(paths)
    if errors:
        path, exc = errors[0]
        raise exc
    previous, memory, states, group = None, None, [], None
    for patch in patches:
        if patch.series_group != group:
            previous, memory, group = None, None, patch.series_group
        if patch.is_cover:
            continue
        resolution = resolve(scope.scope_patch(patch), previous=previous, tree=tree,
                             rev=rev or "HEAD", memory=memory, label=patch.label)
        previous = resolution.after.name if resolution.after is not None else previous
        memory = resolution.memory or memory
        states.append(previous)
    return states


def first_applied(paths: tuple[str, ...], tree, rev: str | None) -> tuple[Position, list]:
    """The Position ``--apply-first`` patches leave (in memory), and their record."""
    if not paths:
        return Position(), []
    if tree is None:
        raise UsageError("--apply-first needs --kernel-tree: the patches apply to that tree")
    from harness.ingest import scope
    from harness.resolve.preimage import applied_first

    patches, errors, _ = read_inputs(list(paths))
    if errors:
        raise errors[0][1]
    done = []
    for patch in patches:
        if patch.is_cover:
            continue
        try:
            done.append((f"{patch.label} (applied first)", scope.scope_patch(patch)))
        except PatchError as exc:
            raise PatchError(f"--apply-first: {exc.message}", file=patch.path,
                             mail=patch.message_id) from None
    memory, record = applied_first(done, tree, rev or "HEAD", scope.is_read_file)
    return Position(None, memory), record


def check_paths(paths: list[str], options: RunOptions | None = None) -> tuple[dict, dict]:
    """Run every stage on ``paths``; returns (results document, run record)."""
    from harness.check import memo

    memo.start()         # function-level runs and trajectories are reused within this run only
    try:
        return _check_paths(paths, options or RunOptions())
    finally:
        memo.clear()


def _check_paths(paths: list[str], options: RunOptions) -> tuple[dict, dict]:
    from harness.check import profiles

    seed, drawn = profiles.run_seed(options.profile, options.seed)
    options = dataclasses.replace(options, seed=seed)
    if drawn and options.progress:
        options.progress(f"deep profile: seed {seed} drawn for this run "
                         f"(rerun the same search with --seed {seed})")
    tree = open_kernel_tree(options.kernel_tree, options.rev)
    started = datetime.now(timezone.utc)
    clock = time.monotonic()
    base, applied = first_applied(options.apply_first, tree, options.rev)
    patches, errors, ignored = read_inputs(paths)
    done = None
    jobs = parallel.cores() if options.jobs is None else options.jobs
    if jobs > 1 and not errors and parallel.can_fork():
        done = _check_in_pool(patches, options, tree, jobs, base)
    if done is None:         # one job (or a check ran out of time: the serial walk decides)
        done = _walk(patches, options, tree, base, defer=False) + (None, None)
    items, groups, net_run, found_run = done
    entries = [error_entry(path, exc) for path, exc in errors] + items
    for series_entries in groups:
        for index, entry in enumerate(series_entries):
            assign_blame(entry, series_entries[:index])
    if not errors and all(p.is_cover for p in patches) and (
            options.cover_only_is_error or not patches):
        message = ("only a cover letter: the series' patches are not in the input" if patches
                   else "no patch found in the given paths")
        exc = PatchError(message, file=", ".join(paths),
                         mail=patches[0].message_id if patches else None,
                         hint="give patch files, mboxes or directories holding them")
        entries.append(error_entry(", ".join(paths), exc))
    net_entries = [e for e in entries if not e["is_cover"] and e["verdict"] not in ("ERROR", "SKIP")]
    if net_run is not None and net_run[0] != [id(e) for e in net_entries]:
        net_run = None
    net = series_net(net_entries, options, net_run and net_run[1]) if not errors else None
    checked = [e for e in entries if id(e) in entry_states]
    if found_run is not None and (not checked or entry_states[id(checked[0])][0] is not
                                  found_run[0]):
        found_run = None
    found_before = preexisting(entries, options, found_run and found_run[1]) \
        if not errors else []
    _note_replay_inputs(entries, paths, options.kernel_tree, options.rev)
    entry_contracts.clear()
    entry_states.clear()
    checks = options.checks or _all_check_names()
    ignored_rows = [{"path": i.path, "reason": i.reason} for i in ignored]
    results = document(entries, profile=options.profile, seed=options.seed, seed_drawn=drawn,
                       checks=checks, net=net, preexisting=found_before, ignored=ignored_rows)
    run = {
        "started": started.isoformat(timespec="seconds"),
        "elapsed_s": round(time.monotonic() - clock, 3),
        "host": socket.gethostname(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "command": options.command,
        "kernel_tree": options.kernel_tree,
        "rev": options.rev,
        "applied_first": applied,
        "inputs": sorted({e["path"] for e in entries}),
        "ignored": ignored_rows,
        "examples": sum(c.get("cases") or 0 for p in entries for c in p.get("coverage", []))
        + sum(c.get("cases") or 0 for c in (net or {}).get("coverage", [])),
    }
    return results, run


def _walk(patches, options: RunOptions, tree, base: Position, *,
          defer: bool) -> tuple[list, list]:
    """Each patch in order, a series' patch from where the previous one left it (its first
    patch from ``base``, what ``--apply-first`` left): (the entries, with each ``Pending``
    check when ``defer``; the patches of each series)."""
    items, groups, previous, group = [], [[]], base, None
    for patch in patches:
        if patch.series_group != group:     # another series starts from its own base
            previous, group = base, patch.series_group
            groups.append([])
        if patch.is_cover:
            items.append(cover_entry(patch))
            continue
        if options.progress:
            options.progress(f"checking {patch.label} ...")
        step = prepare_patch_entry if defer else check_patch_entry
        item, previous = step(patch, options, previous, tree)
        items.append(item)
        groups[-1].append(item)
    return items, [g for g in groups if g]


def _check_in_pool(patches, options: RunOptions, tree, jobs: int, base: Position):
    """Resolve every patch here, in order; then check them, the net change and the
    pre-existing findings in ``jobs`` processes (``harness.check.parallel``).  Returns what
    the serial walk returns, plus the net and pre-existing checks already run (each with
    what it was run for), or None when a patch's check ran out of time (the serial walk
    then decides what the next patch starts from, as it always has)."""
    items, groups = _walk(patches, options, tree, base, defer=True)
    pending = [item for item in items if isinstance(item, Pending)]
    plan = net_plan([p.resolution.as_dict() for p in pending], [p.contract for p in pending],
                    options)
    first = next((p.resolution.before for p in pending if p.resolution.before is not None
                  and p.resolution.after is not None), None)
    tasks = ([(_pooled_net, (plan, options))] if plan else []) + \
        [(_pooled_check, (p, options)) for p in pending] + \
        ([(preexisting_findings, (first, options))] if first is not None else [])
    results = parallel.run(tasks, jobs)
    net = results.pop(0) if plan else None
    found = results.pop() if first is not None else None
    if any(isinstance(outcome, LimitError) for outcome in results):
        return None
    finished = {id(p): finish_entry(p, dataclasses.replace(outcome, contract=p.contract))
                for p, outcome in zip(pending, results)}
    items = [finished.get(id(item), item) for item in items]
    groups = [[finished.get(id(item), item) for item in group] for group in groups]
    return (items, groups,
            ([id(finished[id(p)]) for p in pending], net) if plan else None,
            (first, found) if first is not None else None)


def _pooled_check(pending: Pending, options: RunOptions):
    """A pool task: the check of one patch, without its contract (the caller has it)."""
    outcome = run_check(pending, options)
    return outcome if isinstance(outcome, LimitError) else \
        dataclasses.replace(outcome, contract=None)


def _pooled_net(plan, options: RunOptions):
    return dataclasses.replace(net_outcome(plan, options), contract=None)


def _all_check_names() -> list[str]:
    from harness.check import checks
    return list(checks.names())
