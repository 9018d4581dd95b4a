"""The culprit hunk: which hunk of a patch a finding comes from.

Delta debugging on hunks.  For each behaviour hunk of the patch, the
after-model is rebuilt with that hunk reverted and the finding's own
counterexample is replayed against it; a hunk whose reversion makes the
finding disappear is a culprit.  When no single hunk does, the finding is
replayed with every hunk reverted (that is the before state): if it stays,
it does not come from this patch; if it goes, the set of reverted hunks is
shrunk one hunk at a time while the finding stays gone (a 1-minimal set of
hunks that cause it together).

Reverting a hunk rebuilds only the functions it touches:

- a function whose every hunk is reverted takes its before-model body;
- a function with other hunks left is derived again (``harness.translate.derive``)
  from its before-model with the remaining hunks, or failing that, from its
  after-model with the reverted hunks applied in reverse.

A hunk that cannot be reverted this way (the change is outside the
derivable subset, the hunk adds a function) is recorded with the reason,
and the result says the culprit could not be computed when no computable
reversion answers.  Within a culprit hunk with several change blocks, each
block is reverted alone the same way, to name the changed lines.

The search replays counterexamples only; it never runs a new search, so it
adds milliseconds per hunk, and its answer is as deterministic as the
counterexample it replays.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from harness.check import checks as K
from harness.check import engine
from harness.ingest.hunks import HEADER, hunk_lines, side_code
from harness.translate import derive
from harness.errors import KconformError
from harness.translate.runtime import EnvironmentMiss
from kernel_models import registry
from kernel_models.registry import VersionSet

BEHAVIOUR = "behaviour"

FOUND = "found"                   # at least one hunk (or a set of hunks) is the culprit
NOT_THIS_PATCH = "not this patch"  # the finding stays with every hunk reverted
NOT_COMPUTABLE = "not computable"  # no reversion could be built or replayed

GONE, STAYS, UNBUILT = "gone", "stays", "not built"


@dataclass(frozen=True)
class Reversion:
    """One replay of the counterexample with some hunks reverted."""

    hunks: tuple[int, ...]
    result: str                      # GONE | STAYS | UNBUILT
    reason: str = ""


@dataclass(frozen=True)
class ChangedLine:
    hunk: int
    line: int                        # line of the patch input (0 when unknown)
    text: str                        # with its "+" or "-"


@dataclass(frozen=True)
class Culprit:
    status: str                      # FOUND | NOT_THIS_PATCH | NOT_COMPUTABLE
    hunks: tuple[int, ...]
    lines: tuple[ChangedLine, ...]
    text: str
    tried: tuple[Reversion, ...]

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------
# Hunks reverted
# ---------------------------------------------------------------------------

def reversed_hunk(hunk):
    """The hunk applied backwards: its "+" lines removed, its "-" lines added."""
    rows = hunk.text.split("\n")
    flipped = [rows[0]] + [{"+": "-", "-": "+"}.get(r[:1], r[:1]) + r[1:] for r in rows[1:]]
    match = HEADER.match(rows[0])
    if match:
        flipped[0] = rows[0].replace(f"-{match.group(1)}", "-\0", 1) \
                            .replace(f"+{match.group(2)}", f"+{match.group(1)}", 1) \
                            .replace("-\0", f"-{match.group(2)}", 1)
    return dataclasses.replace(hunk, text="\n".join(flipped), removed=hunk.added,
                               added=hunk.removed, source_blob=hunk.target_blob,
                               target_blob=hunk.source_blob)


def partial_hunk(hunk, keep: set[int]):
    """The hunk with only the changed lines at ``keep`` (indexes into
    ``hunk_lines``) applied: its other removed lines stay as context,
    its other added lines are dropped."""
    rows = [hunk.text.split("\n")[0]]
    removed, added = [], []
    for index, line in enumerate(hunk_lines(hunk)):
        if not line.mine or index in keep:
            rows.append(line.kind + line.text)
            if line.mine:
                (removed if line.kind == "-" else added).append(line.text)
        elif line.kind == "-":
            rows.append(" " + line.text)
    return dataclasses.replace(hunk, text="\n".join(rows), removed=tuple(removed),
                               added=tuple(added))


def change_blocks(hunk) -> list[list[int]]:
    """Runs of consecutive changed code lines of the hunk's function (indexes
    into ``hunk_lines``); comment and blank lines are not code and
    neither join nor split a run."""
    lines = hunk_lines(hunk)
    code = {"-": side_code(lines, "-"), "+": side_code(lines, "+")}
    blocks: list[list[int]] = []
    open_run = False
    for index, line in enumerate(lines):
        if not line.mine:
            open_run = False
            continue
        if not code[line.kind].get(index, "").strip():
            continue
        if open_run:
            blocks[-1].append(index)
        else:
            blocks.append([index])
            open_run = True
    return blocks


class Reverter:
    """After-models of one patch with some of its behaviour hunks reverted."""

    def __init__(self, hunks, before: VersionSet, after: VersionSet):
        self.before, self.after = before, after
        self.groups: dict[tuple[str, str], list] = {}
        self.skipped: dict[int, str] = {}
        for hunk in hunks:
            if hunk.kind != BEHAVIOUR:
                self.skipped.setdefault(hunk.index, f"a {hunk.kind} hunk: no behaviour")
            elif not registry.is_modelled_file(hunk.file) or hunk.function is None:
                self.skipped.setdefault(hunk.index, "not modelled")
            else:
                self.groups.setdefault((hunk.file, hunk.function), []).append(hunk)
        for group in self.groups.values():
            for hunk in group:
                self.skipped.pop(hunk.index, None)
        self._built: dict[tuple, VersionSet | str] = {}
        self.registered: list[tuple[str, str]] = []

    def forget(self) -> None:
        """Unregister the rebuilt blobs: no replay token names them, none outlives the search."""
        for file, blob in self.registered:
            registry.unregister_blob(file, blob)
        self.registered.clear()
        self._built.clear()

    @property
    def candidates(self) -> tuple[int, ...]:
        return tuple(sorted({h.index for group in self.groups.values() for h in group}))

    def hunk(self, index: int):
        return next(h for group in self.groups.values() for h in group if h.index == index)

    def versions(self, reverted: frozenset[int], partial: tuple = ()) -> VersionSet:
        """The after state with ``reverted`` hunks undone; ``partial`` is
        ``(hunk index, kept line indexes)``: that hunk applied in part.
        Raises ``derive.Miss`` when a touched function cannot be rebuilt."""
        key = (reverted, partial)
        if key not in self._built:
            try:
                self._built[key] = self._build(reverted, partial)
            except derive.Miss as exc:
                self._built[key] = str(exc)
        built = self._built[key]
        if isinstance(built, str):
            raise derive.Miss(built)
        return built

    def _build(self, reverted: frozenset[int], partial: tuple) -> VersionSet:
        replacements: dict[str, dict] = {}
        for (file, function), group in self.groups.items():
            mine = [h for h in group if h.index in reverted]
            part = [h for h in group if partial and h.index == partial[0]]
            if not mine and not part:
                continue
            rest = [h for h in group if h.index not in reverted and not
                    (partial and h.index == partial[0])]
            if part:
                rest = sorted(rest + [partial_hunk(part[0], set(partial[1]))],
                              key=lambda h: h.index)
            replacements.setdefault(file, {})[function] = self._body(file, function, mine,
                                                                     rest, bool(part))
        blobs = dict(self.after.blobs)
        for file, bodies in replacements.items():
            digest = hashlib.sha1(repr((sorted(reverted), partial, file,
                                        self.after.blob(file))).encode()).hexdigest()[:10]
            blob = f"revert-{digest}"
            registry.register_blob(file, blob, self.after.blob(file), bodies)
            self.registered.append((file, blob))
            blobs[file] = blob
        label = ", ".join(f"#{i}" for i in sorted(reverted))
        if partial:
            label = (label + ", " if label else "") + f"part of #{partial[0]}"
        return VersionSet.of(f"{self.after.name} without hunk {label}", blobs)

    def _body(self, file: str, function: str, mine: list, rest: list, partial: bool):
        if not rest:
            version = registry.lookup(file, function, self.before.blob(file))
            if version is None:
                raise derive.Miss(f"the patch adds {function}: reverting its hunk would "
                                  f"delete the function")
            return version.function
        try:
            return derive.derive_function(file, function, rest, self.before)
        except derive.Miss as from_before:
            if partial or not mine:
                raise
            try:
                return derive.derive_function(file, function,
                                              [reversed_hunk(h) for h in reversed(mine)],
                                              self.after)
            except derive.Miss as from_after:
                raise derive.Miss(f"{function} cannot be rebuilt without the hunk: from its "
                                  f"before-model with the other hunks, {from_before}; from "
                                  f"its after-model with the hunk reversed, {from_after}"
                                  ) from None


# ---------------------------------------------------------------------------
# Replaying a counterexample
# ---------------------------------------------------------------------------

def reproduces(finding, before: VersionSet, after: VersionSet, contract) -> bool:
    """Does ``finding``'s counterexample still show the same check failing on the
    same channel (and, at function level, in the same function)?"""
    data = engine.decode_replay(finding.replay)
    chosen = K.CHECKS[finding.check]
    if data["kind"] == "function":
        step, _, _ = engine._function_step(data["function"], before, after, contract,
                                           data["case"])
        return any(v.channel == finding.channel for v in chosen.function(step))
    operations = engine._operations_module()
    run = engine.Run(before, after, contract, (chosen,))
    lockstep = engine.Lockstep(run, operations, data["mode"], data["mmu"], inline=())
    for name, args in data["steps"]:
        if not lockstep.applies(name):
            return False
        lockstep.do(name, dict(args))
        if any(v.channel == finding.channel for v in chosen.function(lockstep.last)):
            return True
    return False


def _try(finding, reverter: Reverter, contract, reverted, partial=()) -> Reversion:
    hunks = tuple(sorted(reverted))
    try:
        if not partial and set(reverted) == set(reverter.candidates):
            after = reverter.before        # every hunk reverted: the state before the patch
        else:
            after = reverter.versions(frozenset(reverted), partial)
    except derive.Miss as exc:
        return Reversion(hunks, UNBUILT, str(exc))
    try:
        stays = reproduces(finding, reverter.before, after, contract)
    except (KconformError, EnvironmentMiss) as exc:
        return Reversion(hunks, UNBUILT, f"the counterexample does not run there: {exc}")
    return Reversion(hunks, STAYS if stays else GONE)


# ---------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Search:
    status: str
    hunks: tuple[int, ...]
    together: bool
    tried: tuple[Reversion, ...]


def search(candidates: tuple[int, ...], attempt) -> Search:
    """Delta debugging over ``candidates`` (hunk indexes); ``attempt(reverted)``
    replays the counterexample with the hunks in ``reverted`` undone and returns
    a ``Reversion``.  Each hunk alone first; else every hunk (the before
    state); else the reverted set shrunk one hunk at a time while the finding
    stays gone."""
    tried = [attempt(frozenset({index})) for index in candidates]
    alone = tuple(r.hunks[0] for r in tried if r.result == GONE)
    if alone:
        return Search(FOUND, alone, False, tuple(tried))
    everything = attempt(frozenset(candidates))
    tried.append(everything)
    if everything.result == STAYS:
        return Search(NOT_THIS_PATCH, (), False, tuple(tried))
    if everything.result == UNBUILT:
        return Search(NOT_COMPUTABLE, (), False, tuple(tried))
    reverted = list(candidates)
    for index in candidates:
        smaller = [i for i in reverted if i != index]
        if not smaller:
            break
        shrunk = attempt(frozenset(smaller))
        tried.append(shrunk)
        if shrunk.result == UNBUILT:
            return Search(NOT_COMPUTABLE, (), False, tuple(tried))
        if shrunk.result == GONE:
            reverted = smaller
    return Search(FOUND, tuple(reverted), len(reverted) > 1, tuple(tried))


def find(finding, hunks, before: VersionSet, after: VersionSet, contract,
         reverter: Reverter | None = None) -> Culprit:
    """The culprit hunks of ``finding`` among ``hunks`` (the patch's scoped hunks)."""
    reverter = reverter or Reverter(hunks, before, after)
    if not finding.replay:
        return Culprit(NOT_COMPUTABLE, (), (), "the finding has no counterexample to replay",
                       ())
    try:
        if not reproduces(finding, before, after, contract):
            return Culprit(NOT_COMPUTABLE, (), (), "the counterexample does not reproduce the "
                           "finding when replayed, so reverting hunks cannot be judged", ())
    except KconformError as exc:
        return Culprit(NOT_COMPUTABLE, (), (), f"the counterexample cannot be replayed: {exc}",
                       ())
    candidates = reverter.candidates
    if not candidates:
        return Culprit(NOT_COMPUTABLE, (), (), "the patch has no behaviour hunk in a modelled "
                                                "function to revert", ())
    result = search(candidates, lambda reverted: _try(finding, reverter, contract, reverted))
    tried = list(result.tried)
    unbuilt = [r for r in tried if r.result == UNBUILT and len(r.hunks) == 1]
    if result.status == FOUND:
        return _found(finding, reverter, contract, result.hunks, tried, unbuilt,
                      together=result.together)
    if result.status == NOT_THIS_PATCH:
        return Culprit(NOT_THIS_PATCH, (), (), "the finding stays with every hunk of this patch "
                       "reverted: the state before the patch has it too", tuple(tried))
    reasons = "; ".join(f"hunk #{r.hunks[0]}: {r.reason}" for r in unbuilt[:3]) or \
        "; ".join(r.reason for r in tried if r.result == UNBUILT)[:400]
    return Culprit(NOT_COMPUTABLE, (), (), "no hunk reverted alone removes the finding, and the "
                   f"hunks are not independently derivable ({reasons})", tuple(tried))


def _found(finding, reverter, contract, culprits, tried, unbuilt, together=False) -> Culprit:
    lines: list[ChangedLine] = []
    notes: list[str] = []
    for index in culprits:
        found, narrowed = _culprit_lines(finding, reverter, contract, index, tried)
        lines += found
        if not narrowed:
            notes.append(f"#{index}'s change blocks cannot be reverted one at a time, so all "
                         f"its changed lines are shown")
    names = ", ".join(f"#{i}" for i in culprits)
    if together:
        text = (f"reverting hunks {names} together removes the finding, reverting fewer "
                f"does not")
    elif len(culprits) == 1:
        text = f"reverting hunk {names} alone removes the finding"
    else:
        text = f"reverting any one of hunks {names} alone removes the finding"
    if unbuilt:
        notes.append(", ".join(f"#{r.hunks[0]}" for r in unbuilt) + " could not be reverted "
                     f"alone ({unbuilt[0].reason})")
    text += "".join(f"; {note}" for note in notes)
    return Culprit(FOUND, tuple(culprits), tuple(lines), text, tuple(tried))


def _culprit_lines(finding, reverter, contract, index: int, tried: list,
                   ) -> tuple[list[ChangedLine], bool]:
    """The changed code lines of hunk ``index`` that cause the finding: every
    block whose reversion alone removes it; else (one block, or no block
    decides) all of them.  Second: whether blocks were told apart."""
    hunk = reverter.hunk(index)
    lines = hunk_lines(hunk)
    blocks = change_blocks(hunk)
    chosen, narrowed = blocks, len(blocks) <= 1
    if len(blocks) > 1:
        every = {i for block in blocks for i in block}
        gone = []
        for block in blocks:
            attempt = _try(finding, reverter, contract, set(), (index, tuple(sorted(
                every - set(block)))))
            tried.append(dataclasses.replace(
                attempt, reason=f"only lines {_span(lines, block)} of #{index} reverted"
                + (f": {attempt.reason}" if attempt.reason else "")))
            if attempt.result == GONE:
                gone.append(block)
        if gone:
            chosen, narrowed = gone, True
    return [ChangedLine(index, lines[i].patch, lines[i].kind + lines[i].text)
            for block in chosen for i in block], narrowed


def _span(lines, block) -> str:
    numbers = [lines[i].patch for i in block if lines[i].patch]
    if not numbers:
        return "?"
    return str(numbers[0]) if len(numbers) == 1 else f"{numbers[0]}-{numbers[-1]}"


# ---------------------------------------------------------------------------
# Findings
# ---------------------------------------------------------------------------

def attach(findings, hunks, before: VersionSet, after: VersionSet, contract) -> tuple:
    """``findings`` with their culprit hunks found (one reverter per patch, so a
    rebuilt after-model serves every finding)."""
    reverter = Reverter(hunks, before, after)
    attached = []
    try:
        for finding in findings:
            found = find(finding, hunks, before, after, contract, reverter)
            attached.append(dataclasses.replace(finding, culprit_hunks=found.hunks,
                                                culprit=_summary(found)))
    finally:
        reverter.forget()
    return tuple(attached)


def _summary(found: Culprit) -> dict:
    """The culprit as results.json holds it: every reversion tried, in order."""
    return {"status": found.status, "text": found.text,
            "lines": [dataclasses.asdict(line) for line in found.lines],
            "tried": [{"hunks": list(r.hunks), "result": r.result,
                       **({"reason": r.reason} if r.reason else {})} for r in found.tried]}


def net_culprit(finding: dict, entries: list[dict]) -> dict:
    """A series' net finding has no hunks of its own: the patch of the series
    whose own finding (same check, channel, operation and function) has
    culprit hunks carries it."""
    for entry in entries:
        for own in entry.get("findings") or []:
            if all(own.get(k) == finding.get(k) for k in ("check", "channel", "operation",
                                                          "function")) \
                    and own.get("culprit_hunks"):
                return {"status": FOUND, "patch": entry.get("path"),
                        "hunks": list(own["culprit_hunks"]),
                        "text": f"the same finding of {entry.get('path')}, where "
                                f"{own['culprit']['text']}"}
    return {"status": NOT_COMPUTABLE, "text": "the series' net change has no hunks of its own, "
                                              "and no patch of the series has this finding "
                                              "with a culprit hunk"}
