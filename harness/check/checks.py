"""Named checks: plain functions with one signature, registered in one table.

A check takes a ``Step`` (one operation, or one function call, run on the
before and the after version set side by side) and returns the
``Violation``s it sees.  Users select checks by name (``--checks
refs_balanced,dirty_preserved``).  Each check is named for the property it
holds (``dirty_preserved``); its ``failure`` names the defect
(``DirtyLost``).

Two kinds:

- ``matches_contract`` compares the two effect logs of a step channel by
  channel, with the relation the patch's contract states (function and
  operation level);
- invariants hold on every version by themselves (operation level): they
  look at one side's log and state, and a violation on the after side is a
  finding.  If the before side violates the same invariant in the same step,
  the violation is *inherited* (it was there before this patch).  Every
  invariant must hold on the base version set; tests/test_check.py runs them
  there.

The invariants, and the decisions behind them.  Each holds on every bundled
series state; an invariant is never narrowed so that a state passes: a
state that fails one has a pre-existing finding, and an exception is a
kernel fact with its source (C function, file, blob):

- ``refs_balanced``: page references are counted per folio (a huge mapping's
  pfn range is one folio); after every operation the count is back to 0, and
  nothing is released without a reference held.
- ``dirty_preserved``: when a mapping that was writable or dirty at any time
  goes away (not present, another pfn, or replaced by a table), its folio must
  have been marked dirty at some point since the folio became mapped (a mark
  at creation counts: the host cannot clean a folio without first zapping
  KVM's mappings through the mmu_notifier).
- ``accessed_preserved`` (WARN): accessed information as page aging needs
  it.  Every access since the last aging of a mapping (A set, or an
  access-tracked SPTE restored) reaches the primary MMU before it is gone
  (the mapping ends, or a non-aging operation clears A in place): by an
  accessed mark on the folio since that aging, by the aging reporting it
  young (an aging operation that clears A is taken to report it), or by still
  being in an SPTE.  A mark at mapping creation covers accesses up to the
  next aging, not after.  Aging tolerates false negatives, so this is never
  a FAIL.
- ``flush_after_write_protect`` (the name is kept for the selectors that use
  it; the property is wider): a present leaf SPTE that is zapped (made
  non-present, or pointed at another pfn) or loses a permission (W, R/U, X,
  or gains NX), or a dirty-logging operation clearing D, must be followed by
  a flush (or a "flush needed" handed to the caller) in the same operation.
  The exceptions are kernel facts, each with its source in ``NO_FLUSH_NEEDED``
  below: aging (A cleared, or access tracking), roots no vCPU uses again
  (VM teardown, memslot deletion), a huge leaf split into a table of
  children that map the same pages with the same permissions.
- ``no_warnings``: no WARN or BUG fires in any operation.  Operation sequences
  are things a guest and the host do to a correct KVM, so a WARN there is a
  bug on every version; a WARN only at function level (a function called
  with an SPTE its callers never pass) is compared by the contract instead.

How the invariants read SPTEs: with small pure predicates written from
KERNEL-FACTS section 1 (present = MMU-present bit, W = bit 1, A/D per the
SPTE's A/D type), never through the VM, so checking adds nothing to a log;
they and the mapping tracker live in ``harness.check.mappings``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from kernel_models.effects import (ACCESSED, CHANNELS, DIRTY, FLUSH, REFS, WARN, Bug,
                                   FolioAccessed, FolioDirty, FlushRequested, PageRefGet,
                                   PageRefPut, SpteWrite, TlbFlush, Warn)

from harness.check import contracts as C
from harness.check.mappings import (  # noqa: F401 - state_checks and tests read them here
    Mapping, Mappings, Reading, _AD_DISABLED, _AD_MASK, _LARGE, _MMU_PRESENT, _PFN_MASK,
    _WHERE, _WRITABLE, read_spte, spte_gfn, spte_level)


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    check: str
    channel: str
    summary: str
    side: str = "after"            # "after" | "pair"
    severity: str = "FAIL"
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    inherited: bool = False
    defect: str = ""               # the defect in words, when not the check's own
    fixed: bool = False            # the before side fails it and the after side holds it

    @property
    def key(self) -> tuple[str, str, bool, bool]:
        """What makes two violations "the same bug" when searching for more."""
        return (self.check, self.channel, self.inherited, self.fixed)


@dataclass
class Side:
    """One version set's view of a step."""

    name: str                      # "before" | "after"
    vm: object
    start: int                     # log position when the step began
    memory: dict = field(default_factory=dict)   # per-check state kept across steps
    # what the invariants say of this side's step, when already worked out (a kept
    # trajectory, harness.check.lockstep.Track): per_side's one-side function -> violations
    said: dict | None = None

    @property
    def events(self) -> list:
        return self.vm.log.since(self.start)

    def window(self, start: int) -> list:
        return self.vm.log.events[start:]


@dataclass
class Step:
    """One operation (or one function call) run on both sides."""

    level: str                     # "operation" | "function"
    operation: str                 # operation name or C function name
    before: Side
    after: Side
    contract: C.Contract
    compare: bool = True           # False once the two VMs' states diverged by design
    extra_before: tuple = ()       # pseudo-events (return values) for function calls
    extra_after: tuple = ()
    # comparisons of the two logs already made on this step (checks._compared)
    compared: dict = field(default_factory=dict, compare=False, repr=False)

    def sides(self):
        return (self.before, self.after)


@dataclass(frozen=True)
class Check:
    name: str
    failure: str
    channels: tuple[str, ...]
    levels: tuple[str, ...]
    description: str
    function: Callable[[Step], list[Violation]]
    defect: str = ""               # the failure in plain words; may name {channel}


CHECKS: dict[str, Check] = {}


def check(name: str, *, failure: str, channels: tuple[str, ...], levels: tuple[str, ...],
          description: str, defect: str):
    """Register a check under ``name``; refuses a duplicate name."""
    def register(function):
        if name in CHECKS:
            raise ValueError(f"check {name!r} is already registered")
        CHECKS[name] = Check(name, failure, channels, levels, description, function, defect)
        return function
    return register


def names() -> tuple[str, ...]:
    return tuple(CHECKS)


def select(selected) -> tuple[Check, ...]:
    """The checks named in ``selected`` (None = all), in registry order."""
    from harness.errors import UsageError
    if selected is None:
        return tuple(CHECKS.values())
    if isinstance(selected, str):
        selected = [s for s in selected.split(",") if s.strip()]
    wanted = [s.strip() for s in selected]
    unknown = [s for s in wanted if s not in CHECKS]
    if unknown:
        raise UsageError(f"unknown check(s) {', '.join(unknown)}",
                         hint=f"known checks: {', '.join(CHECKS)}")
    return tuple(c for c in CHECKS.values() if c.name in wanted)


# ---------------------------------------------------------------------------
# Comparing two logs on one channel
# ---------------------------------------------------------------------------

def describe(event) -> str:
    return event.describe()


def compare_channel(relation: str, before: list, after: list, common: set | None = None
                    ) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
    """(holds, missing, extra) for ``relation`` between two event lists of one channel.

    ``equal`` compares events with the function they came from (``by``);
    the other relations ignore ``by``.  Multisets: a mark made twice is two.
    ``common``: functions that exist on both sides; an event whose ``by``
    exists on one side only (a function deleted or added, e.g. inlined into
    its caller) is compared without ``by`` - the code moved because the
    function is gone, which is not a change of behaviour.
    """
    if len(before) == len(after) and all(b == a and b.by == a.by
                                         for b, a in zip(before, after)):
        return True, (), ()        # the same events in the same order: every relation holds
    if relation == C.EQUAL:
        b = Counter((e, e.by) for e in before)
        a = Counter((e, e.by) for e in after)
        b, a = b - a, a - b
        if common is not None and b and a:      # nothing to pair when one side is empty
            b, a = _cancel_one_sided(b, a, common)
        missing = _lines(b, with_by=True)
        extra = _lines(a, with_by=True)
        return (not missing and not extra), missing, extra
    b = Counter(before)
    a = Counter(after)
    missing = _lines(b - a)
    extra = _lines(a - b)
    if relation == C.MOVED:
        return (not missing and not extra), missing, extra
    if relation == C.SUBSET:
        return (not extra), missing, extra
    if relation == C.SUPERSET:
        return (not missing), missing, extra
    return True, missing, extra


def _cancel_one_sided(missing: Counter, extra: Counter, common: set) -> tuple[Counter, Counter]:
    """Pair a missing and an extra event that differ only in ``by`` when one of the
    two functions exists on one side only (deleted, added or inlined).  Each missing
    event, in order, pairs with the extra copies of the same event, in order."""
    missing, extra = Counter(missing), Counter(extra)
    same: dict = {}                 # event -> the extra (event, by) keys, in order
    for key in extra:
        same.setdefault(key[0], []).append(key)
    for (event, by), count in list(missing.items()):
        for other in same.get(event, ()):
            if count <= 0:
                break
            other_count = extra[other]
            if other_count <= 0 or (by in common and other[1] in common):
                continue
            paired = min(count, other_count)
            missing[(event, by)] -= paired
            extra[other] -= paired
            count -= paired
    return +missing, +extra


def _lines(counter: Counter, with_by: bool = False) -> tuple[str, ...]:
    lines = []
    for key, count in counter.items():
        event = key[0] if with_by else key
        text = event.describe() if with_by else _describe_without_by(event)
        lines.extend([text] * count)
    return tuple(sorted(lines))


def _describe_without_by(event) -> str:
    args = ", ".join(f"{k}={_show(v)}" for k, v in event.payload().items())
    return f"{type(event).__name__}({args})"


def _show(value):
    if isinstance(value, int) and not isinstance(value, bool) and value > 9:
        return hex(value)
    return repr(value)


def difference(before: list, after: list) -> dict:
    """{channel: {missing, extra}} for every channel where the two logs differ (with ``by``)."""
    out = {}
    for channel in CHANNELS:
        b = [e for e in before if e.channel == channel]
        a = [e for e in after if e.channel == channel]
        _, missing, extra = compare_channel(C.EQUAL, b, a)
        if missing or extra:
            out[channel] = {"missing": list(missing), "extra": list(extra)}
    return out


# ---------------------------------------------------------------------------
# matches_contract
# ---------------------------------------------------------------------------

@check("matches_contract", failure="UnstatedChange", channels=CHANNELS,
       levels=("function", "operation"),
       description="each channel changes only as the patch's contract states",
       defect="unstated change in {channel}")
def matches_contract(step: Step) -> list[Violation]:
    if not step.compare:
        return []
    before = list(step.before.events) + list(step.extra_before)
    after = list(step.after.events) + list(step.extra_after)
    if len(before) == len(after) and all(b == a and b.by == a.by for b, a in zip(before, after)):
        return []           # identical logs: every relation holds
    found = []
    for channel in CHANNELS:
        if channel not in _channels(step, before, after):
            continue            # no event on either side: every relation holds
        rule = step.contract.rule_for(channel, step.operation)
        holds, missing, extra = _compared(step, rule.relation, channel, before, after)
        if holds:
            continue
        found.append(Violation(
            "matches_contract", channel, _unstated(step, channel, rule),
            side="pair", severity=step.contract.severity(channel),
            missing=missing, extra=extra))
    return found


def _unstated(step: Step, channel: str, rule) -> str:
    """The words of a contract violation: unclaimed, beyond the claim, or against a written rule."""
    contract = step.contract
    if contract.source == C.WRITTEN:
        return (f"{channel} changed on {step.operation} where the contract says "
                f"'{rule.relation}' ({rule.why})")
    if rule.relation == C.EQUAL:
        if contract.strict:
            # a contract rebuilt from a replay token has no claims to quote
            read = contract.claims.claims if contract.claims is not None else ()
            said = next((c.sentence for c in read if c.kind == "no functional change"),
                        "no functional change")
            return (f"{channel} changed, and the message does not say so: it says "
                    f"\u201c{said}\u201d (on {step.operation})")
        return f"{channel} changed, and the message does not say so (on {step.operation})"
    return (f"{channel} changed on {step.operation} beyond what the message claims "
            f"('{rule.relation}': {rule.why})")


def changed_channels(step: Step) -> set[str]:
    """The channels on which the step's two logs differ (a function that exists on
    one side only does not make a difference by itself)."""
    before = list(step.before.events) + list(step.extra_before)
    after = list(step.after.events) + list(step.extra_after)
    if len(before) == len(after) and all(b == a and b.by == a.by for b, a in zip(before, after)):
        return set()
    return {channel for channel in _channels(step, before, after)
            if channel in CHANNELS and not _compared(step, C.EQUAL, channel, before, after)[0]}


def _channels(step: Step, before: list, after: list) -> dict[str, tuple[list, list]]:
    """``_by_channel`` of the step's two logs, worked out once per step."""
    found = step.compared.get("channels")
    if found is None:
        found = step.compared["channels"] = _by_channel(before, after)
    return found


def _compared(step: Step, relation: str, channel: str, before: list, after: list):
    """``compare_channel`` on one channel of the step, worked out once per relation
    (``changed_channels`` and ``matches_contract`` both ask for ``equal``)."""
    key = (relation, channel)
    found = step.compared.get(key)
    if found is None:
        b, a = _channels(step, before, after)[channel]
        found = step.compared[key] = compare_channel(relation, b, a, _common_functions(step))
    return found


def _by_channel(before: list, after: list) -> dict[str, tuple[list, list]]:
    """channel -> (before's events, after's events), for the channels with an event."""
    found: dict[str, tuple[list, list]] = {}
    for index, events in ((0, before), (1, after)):
        for event in events:
            found.setdefault(event.channel, ([], []))[index].append(event)
    return found


def _common_functions(step: Step) -> set[str]:
    before = step.before.vm.functions
    after = step.after.vm.functions
    key = (id(before), id(after))
    kept = _COMMON.get(key)
    if kept is None or kept[0] is not before or kept[1] is not after:
        if len(_COMMON) > 64:
            _COMMON.clear()
        kept = _COMMON[key] = (before, after, {name for name in before if name in after} | {""})
    return kept[2]


# (id of one side's functions, id of the other's) -> (the two, the names both have); the
# two are held, so an id is not reused while it is a key
_COMMON: dict[tuple[int, int], tuple[dict, dict, set]] = {}


_ACCESSED_WINDOW = "accessed since the mapping's last aging (or its creation)"

# Operations that age: the mmu_notifier clear_young / clear_flush_young /
# test_young handlers (kvm_age_gfn, kvm_test_age_gfn).
AGING_OPERATIONS = frozenset({"clear_young", "clear_flush_young", "test_young"})


def _mappings(side: Side, operation: str = "") -> tuple[Mappings, list]:
    """The side's tracker, advanced over this step once (shared by the lifetime checks)."""
    memory = side.memory
    if memory.get("advanced_for") is not side:
        tracker = memory.setdefault("mappings", Mappings())
        tracker.settle()
        memory["ended"] = tracker.advance(side.vm, side.events, side.start,
                                          aging=operation in AGING_OPERATIONS)
        memory["advanced_for"] = side
    return memory["mappings"], memory["ended"]


def _marked(tracker: Mappings, side: Side, kind, mapping: Mapping) -> bool:
    """A ``kind`` mark on the mapping's folio since the folio (as known when the
    mapping began, or as known now that more huge mappings were seen) was mapped."""
    folio = tracker.folio(mapping.pfn)
    start = min(mapping.since, tracker.since.get(folio, mapping.since))
    if kind is FolioAccessed:
        start = max(start, mapping.aged_at)     # a mark covers accesses up to the next aging
    positions, pfns = _marks(side, kind)
    return any(pfn == mapping.pfn or tracker.folio(pfn) == folio
               or tracker.folio(pfn) == mapping.folio
               for pfn in pfns[bisect_left(positions, start):])


def _marks(side: Side, kind) -> tuple[list, list]:
    """(log positions, pfns) of the ``kind`` marks in the side's whole log, in order,
    indexed once per event in the side's memory: a zap ending 512 mappings looks
    at the marks since each one began, not at every event since."""
    index = side.memory.setdefault(("marks", kind), [[], [], 0])
    positions, pfns, seen = index
    events = side.vm.log.events
    if len(events) < seen:          # a log started afresh: index it again
        positions.clear()
        pfns.clear()
        seen = 0
    for position in range(seen, len(events)):
        event = events[position]
        if isinstance(event, kind):
            positions.append(position)
            pfns.append(event.pfn)
    index[2] = len(events)
    return positions, pfns


def per_side(function):
    """Run a one-side invariant on both sides; report the after side, noting inheritance.

    ``function(step, side)`` looks at one side only (its log, state and memory, and the
    step's operation) and words its violations without naming the side; this adds the
    side's name.  A side that already knows what ``function`` says (``Side.said``) is
    not looked at again.

    A violation on the before side whose channel the after side holds in the
    same step is returned too, marked ``fixed`` (the evidence a fix is
    confirmed by); every consumer but the fix search skips those."""
    def one_side(step: Step, side: Side) -> tuple[Violation, ...]:
        said = side.said
        if said is not None and function in said:
            return said[function]
        return tuple(function(step, side))

    def run(step: Step) -> list[Violation]:
        before = one_side(step, step.before)
        after = one_side(step, step.after)
        before_channels = {v.channel for v in before}
        after_channels = {v.channel for v in after}
        return [Violation(v.check, v.channel, f"{step.after.name}: {v.summary}", side="after",
                          severity=v.severity, missing=v.missing, extra=v.extra,
                          inherited=v.channel in before_channels, defect=v.defect)
                for v in after] + \
            [Violation(v.check, v.channel, f"{step.before.name}: {v.summary}", side="before",
                       severity="NOTE", missing=v.missing, extra=v.extra, fixed=True)
             for v in before if v.channel not in after_channels]
    run.__name__ = function.__name__
    run.__doc__ = function.__doc__
    run.one_side = function
    return run


def _lost_marks(step: Step, side: Side, *, check_name: str, channel: str, event_type,
                held: str, words: str, severity: str = "FAIL") -> list[Violation]:
    """Mappings that ended with ``held`` (an attribute of the mapping) true but
    whose folio never got an ``event_type`` mark while mapped."""
    tracker, ended = _mappings(side, step.operation)
    found = []
    for where, mapping in ended:
        if getattr(mapping, held) and not _marked(tracker, side, event_type, mapping):
            found.append(Violation(
                check_name, channel,
                f"the mapping {where} of pfn {mapping.pfn:#x} was {words} and "
                f"went away in {step.operation}, but the folio was never marked "
                f"{'dirty while mapped' if event_type is FolioDirty else _ACCESSED_WINDOW}",
                severity=severity,
                missing=(f"{event_type.__name__}(pfn={_show(mapping.pfn)})",)))
    return found


@check("dirty_preserved", failure="DirtyLost", channels=(DIRTY,), levels=("operation",),
       description="a folio mapped writable or dirty is marked dirty before the mapping goes",
       defect="dirty marking lost")
@per_side
def dirty_preserved(step: Step, side: Side) -> list[Violation]:
    return _lost_marks(step, side, check_name="dirty_preserved", channel=DIRTY,
                       event_type=FolioDirty, held="wrote", words="writable or dirty")


@check("accessed_preserved", failure="AccessedLost", channels=(ACCESSED,),
       levels=("operation",),
       description="every access since a mapping's last aging reaches the folio (a mark, "
                   "aging reporting it young, or still in an SPTE) before it is gone",
       defect="accessed marking lost")
@per_side
def accessed_preserved(step: Step, side: Side) -> list[Violation]:
    """Every access since the last aging of a mapping (A set by the guest, or an
    access-tracked SPTE restored) reaches the primary MMU before it is gone: a
    folio mark since that aging, aging reporting it young, or still in an SPTE.
    Gone is the mapping ending, or A cleared in place by an operation that is
    not aging."""
    found = _lost_marks(step, side, check_name="accessed_preserved", channel=ACCESSED,
                        event_type=FolioAccessed, held="touched", words="accessed",
                        severity="WARN")
    tracker, _ = _mappings(side, step.operation)
    for where, mapping in tracker.cleared:
        if not _marked(tracker, side, FolioAccessed, mapping):
            found.append(Violation(
                "accessed_preserved", ACCESSED,
                f"the mapping {where} of pfn {mapping.pfn:#x} was accessed since "
                f"its last aging and {step.operation} cleared its accessed state, but the folio "
                f"was never marked accessed since that aging", severity="WARN",
                missing=(f"FolioAccessed(pfn={_show(mapping.pfn)})",)))
    return found


@check("refs_balanced", failure="PageRefLeak", channels=(REFS,), levels=("operation",),
       description="every page reference taken is released exactly once",
       defect="page-reference leak")
@per_side
def refs_balanced(step: Step, side: Side) -> list[Violation]:
    """Counted per folio, as the kernel does (a reference on a tail page pins the folio):
    a fault that takes a reference on the faulting pfn and releases the huge-aligned
    pfn it mapped is balanced.  The model's own per-pfn Bug events are not used."""
    tracker, _ = _mappings(side, step.operation)
    counts = side.memory.setdefault("folio_refs", Counter())
    found = []
    for event in side.events:
        if isinstance(event, PageRefGet):
            counts[tracker.folio(event.pfn)] += 1
        elif isinstance(event, PageRefPut):
            folio = tracker.folio(event.pfn)
            if counts[folio] <= 0:
                found.append(Violation("refs_balanced", REFS,
                                       f"pfn {event.pfn:#x} released with no "
                                       f"reference held (double release) in {step.operation}",
                                       extra=(event.describe(),), defect="double page release"))
            counts[folio] -= 1
    held = {folio: n for folio, n in counts.items() if n}
    if held:
        shown = ", ".join(f"folio {pfn:#x}: {n:+d}" for pfn, n in sorted(held.items()))
        found.append(Violation("refs_balanced", REFS,
                               f"page references not back to 0 after "
                               f"{step.operation} ({shown})",
                               extra=tuple(f"references held on folio {_show(p)}: {n}"
                                           for p, n in sorted(held.items()))))
        counts.clear()      # report a leak once, not again at every later step
    return found


@check("flush_after_write_protect", failure="StaleTlbEntry", channels=(FLUSH,),
       levels=("operation",),
       description=("an operation that zaps a present leaf SPTE or takes a permission away "
                    "from one (W, R, X; or a dirty-logging operation that clears D) flushes "
                    "the TLB or tells its caller to (aging, roots no vCPU uses again and "
                    "equal-children splits excepted, as kernel facts)"),
       defect="stale TLB entry")
@per_side
def flush_after_write_protect(step: Step, side: Side) -> list[Violation]:
    if step.operation in NO_VCPU_AFTER:
        return []
    events = side.events
    last_flush = max((i for i, e in enumerate(events) if isinstance(e, (TlbFlush, FlushRequested))),
                     default=-1)
    found = []
    for index, event in enumerate(events):
        if not isinstance(event, SpteWrite) or index < last_flush:
            continue
        reason = _needs_flush(side.vm, event, step.operation in DIRTY_LOG_OPERATIONS)
        if reason is None:
            continue
        found.append(Violation(
            "flush_after_write_protect", FLUSH,
            f"{event.where} {reason} in {step.operation} and no TLB flush "
            f"followed", missing=("TlbFlush or FlushRequested",),
            extra=(event.describe(),)))
    return found


# Where the kernel zaps or restricts a present leaf SPTE and, by design, does not
# flush: kernel facts, each with the C that shows it (v6.9 blobs; the RFC patch
# files' pre-images for what those describe).  Nothing else is exempt.
NO_FLUSH_NEEDED = {
    "aging": ("mmu.c mmu_spte_age (v6.9 blob db007a4dffa2): clears A, or marks the SPTE "
              "for access tracking through mmu_spte_update_no_track, and only returns "
              "'young'; tdp_mmu.c age_gfn_range (v6.9 blob 04c1f0957fea) likewise. Generic "
              "code flushes only for clear_flush_young; RFC 4/4 (patches/rfc-4-of-4.patch, "
              "its comment on mmu_spte_update) states that access tracking tolerates "
              "false negatives"),
    "roots no vCPU uses again": (
        "tdp_mmu.c tdp_mmu_zap_leafs (v6.9 blob 04c1f0957fea) sets flush only for a root "
        "that is not invalid ('zapping SPTEs in invalid roots doesn't require a TLB "
        "flush', pointing at kvm_tdp_mmu_zap_invalidated_roots); mmu.c kvm_mmu_zap_all_fast "
        "(v6.9 blob db007a4dffa2) invalidates every root and has vCPUs reload before "
        "running; VM teardown (kvm_mmu_zap_all) runs with no vCPU left"),
    "split into equal children": (
        "tdp_mmu.c tdp_mmu_split_huge_page (v6.9 blob 04c1f0957fea) links a table whose "
        "children map the huge page's range with its permissions (make_huge_page_split_spte, "
        "spte.c blob 4a599130e9c9), so no translation is taken away; it flushes nothing"),
}


# Operations whose zaps hit only roots no vCPU will use again: VM teardown
# (zap_all) and memslot deletion or move, which run kvm_arch_flush_shadow_memslot
# -> kvm_mmu_zap_all_fast: every root is invalidated first, so vCPUs load new
# ones before running (NO_FLUSH_NEEDED["roots no vCPU uses again"]).
NO_VCPU_AFTER = frozenset({"zap_all", "memslot_delete", "memslot_remove", "memslot_move"})


# Operations that clear D as a promise of dirty logging (PML needs the CPU to set D
# again, so the TLB must forget the old D).  Elsewhere base KVM does not flush for a
# D-bit change (a prefetch fault that rewrites a writable SPTE without D), and the
# D bit only feeds folio dirtiness, which dirty_preserved checks.
DIRTY_LOG_OPERATIONS = frozenset({"dirty_log_enable", "dirty_log_clear"})


def _needs_flush(vm, event: SpteWrite, dirty_logging: bool = False) -> str | None:
    level = spte_level(event.where)
    old = read_spte(vm, event.old, level)
    new = read_spte(vm, event.new, level)
    if not old.present_leaf:
        return None
    if new.nonleaf:
        return None          # NO_FLUSH_NEEDED["split into equal children"]
    same = new.present_leaf and new.pfn == old.pfn
    if same and new.tracked and not old.tracked:
        return None          # NO_FLUSH_NEEDED["aging"]: access tracking
    if not new.present_leaf:
        return "was zapped"
    if not same:
        return f"was pointed from pfn {old.pfn:#x} to {new.pfn:#x}"
    lost = lost_permissions(vm, event.old, event.new)
    if lost:
        return "lost " + " and ".join(lost)
    dirty_mask = vm.shadow_dirty_mask
    if (dirty_logging and old.ad_enabled and old.dirty and same
            and event.new == event.old & ~dirty_mask and _dirty_logged(vm, event.where)):
        return "had D cleared for dirty logging"
    return None


def lost_permissions(vm, old: int, new: int) -> tuple[str, ...]:
    """The permissions a present leaf had in ``old`` and lacks in ``new`` (KERNEL-FACTS
    1.1: W is bit 1 everywhere; R is the present/user mask on EPT, U the user bit on
    legacy; X is the EPT X bit, or NX set on legacy)."""
    lost = []
    if old & _WRITABLE and not new & _WRITABLE:
        lost.append("write access")
    user = vm.shadow_user_mask
    if user and old & user and not new & user:
        lost.append("read access" if user == vm.shadow_present_mask else "user access")
    if vm.shadow_x_mask and old & vm.shadow_x_mask and not new & vm.shadow_x_mask:
        lost.append("execute access")
    if vm.shadow_nx_mask and new & vm.shadow_nx_mask and not old & vm.shadow_nx_mask:
        lost.append("execute access")
    return tuple(lost)


def _dirty_logged(vm, where: str) -> bool:
    gfn = spte_gfn(where)
    slot = vm.gfn_to_memslot(gfn) if gfn is not None else None
    return slot is not None and bool(slot.flags & 1)


@check("no_warnings", failure="WarningFired", channels=(WARN,), levels=("operation",),
       description="no WARN or BUG fires while the guest and the host use KVM",
       defect="a WARN or BUG fires")
@per_side
def no_warnings(step: Step, side: Side) -> list[Violation]:
    fired = [e for e in side.events if isinstance(e, (Warn, Bug))]
    if not fired:
        return []
    shown = "; ".join(sorted({e.describe() for e in fired}))
    return [Violation("no_warnings", WARN,
                      f"{len(fired)} WARN/BUG fired in {step.operation}: {shown}",
                      extra=tuple(e.describe() for e in fired))]


# The state invariants (write tracking, MMIO generations) register into CHECKS here.
from harness.check import state_checks  # noqa: E402,F401 - needs check() and per_side above

OPERATION_CHECKS = tuple(name for name, c in CHECKS.items() if "operation" in c.levels)
FUNCTION_CHECKS = tuple(name for name, c in CHECKS.items() if "function" in c.levels)


@check("rst_parses", failure="DocumentationBroken", channels=("docs",),
       levels=("documentation",),
       description="a reStructuredText hunk parses with docutils without an error or warning "
                   "that the text before the patch did not have",
       defect="documentation that no longer parses")
def rst_parses(step: Step) -> list[Violation]:
    """Documentation is not run per step: ``harness.check.docs`` parses the hunks' text."""
    return []
