"""Contracts: what a patch says it changes, as data.

A contract holds one rule per (channel, operations): the relation the
after-version's effects must have to the before-version's on that channel,
and *why*, in our words, from the commit message.  Relations:

- ``equal``: the same events, from the same functions;
- ``subset``: the after-version may drop events, never add (``by`` ignored);
- ``superset``: it may add events, never drop (``by`` ignored);
- ``moved``: the same events, each possibly now coming from another function
  on the same path (``Event.by`` may differ);
- ``free``: anything.

``operations`` names operation-level steps (``operations.OPERATIONS`` keys)
and, for function-level checks, C function names; ``"*"`` matches all.  A
rule naming the operation or function beats a ``"*"`` rule; no rule means
``equal`` ("the message says nothing about it").

Written contracts are bound to the normalised subject of the RFC patch they
were written for (so a resend or a later revision of the same patch finds
it).  They were written from the commit messages alone, before the patches
were run, and are never adjusted to make a patch pass: a real patch failing
its own contract is a finding.  A patch without a written contract gets one
inferred from its diff (``infer``), and says so (``source = "inferred"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.ingest.hunks import UnreadableHunk, hunk_lines
from kernel_models.effects import ACCESSED, CHANNELS, DIRTY, DIRTY_LOG, FLUSH, REFS, SPTE, STATS, WARN

EQUAL = "equal"
SUBSET = "subset"
SUPERSET = "superset"
MOVED = "moved"
FREE = "free"
RELATIONS = (EQUAL, SUBSET, SUPERSET, MOVED, FREE)

ANY = "*"
WRITTEN = "written"
INFERRED = "inferred"

# Channels where a change the message does not state is tolerated (WARN):
# page aging and LRUs tolerate false negatives and false positives.
TOLERANT_CHANNELS = frozenset({ACCESSED})

@dataclass(frozen=True)
class Rule:
    channel: str
    operations: tuple[str, ...]
    relation: str
    why: str

    def __post_init__(self):
        if self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}")
        if self.relation not in RELATIONS:
            raise ValueError(f"unknown relation {self.relation!r}")

    def as_dict(self) -> dict:
        return {"channel": self.channel, "operations": list(self.operations),
                "relation": self.relation, "why": self.why}


@dataclass(frozen=True)
class Contract:
    name: str
    source: str                 # "written" | "inferred"
    intent: str
    rules: tuple[Rule, ...] = ()
    subject: str = ""
    notes: tuple[str, ...] = field(default=())

    def rule_for(self, channel: str, operation: str | None) -> Rule:
        """The rule that governs ``channel`` on ``operation`` (a specific one beats ``*``)."""
        general = None
        for rule in self.rules:
            if rule.channel != channel:
                continue
            if operation is not None and operation in rule.operations:
                return rule
            if ANY in rule.operations and general is None:
                general = rule
        if general is not None:
            return general
        if self.source == INFERRED:
            return Rule(channel, (ANY,), EQUAL, f"no written contract, and no changed line "
                                                f"names a {channel} helper")
        return Rule(channel, (ANY,), EQUAL, "the message says nothing about this channel here")

    def relation(self, channel: str, operation: str | None) -> str:
        return self.rule_for(channel, operation).relation

    def severity(self, channel: str) -> str:
        return "WARN" if channel in TOLERANT_CHANNELS else "FAIL"

    def allows_change(self, channel: str) -> bool:
        """True if some rule lets ``channel`` differ somewhere."""
        return any(r.channel == channel and r.relation != EQUAL for r in self.rules)

    def as_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "intent": self.intent,
                "rules": [r.as_dict() for r in self.rules]}


def normalise_subject(subject: str) -> str:
    """Subject without ``[RFC PATCH v2 1/4]``-style tags, ``Re:``, case or extra spaces."""
    text = " ".join(subject.split())
    while True:
        stripped = re.sub(r"^(re|fwd?):\s*", "", text, flags=re.IGNORECASE)
        stripped = re.sub(r"^\[[^\]]*\]\s*", "", stripped)
        if stripped == text:
            break
        text = stripped
    text = text.replace("\u201c", '"').replace("\u201d", '"')
    return text.strip().lower()


# ---------------------------------------------------------------------------
# Written contracts: one per RFC patch, from its commit message.
# ---------------------------------------------------------------------------

def _rfc_1() -> Contract:
    return Contract(
        name="rfc-1-skip-try-unsync-iff-old-leaf",
        source=WRITTEN,
        subject='KVM: x86/mmu: Skip the "try unsync" path iff the old SPTE was a leaf SPTE',
        intent=("make_spte skips the try-unsync path only when the SPTE it overwrites is a "
                "writable leaf; overwriting a page-table pointer (always writable) no longer "
                "skips it, so the new SPTE may be write-protected or shadow pages unsynced. "
                "Only the TDP MMU replaces a table by a leaf directly; nothing else changes."),
        rules=(
            Rule(SPTE, ("fault", "async_pf_ready", "collapse", "make_spte"), FREE,
                 "the message says a SPTE that replaces a non-leaf SPTE now goes through the "
                 "unsync check and may come out write-protected (the bug it fixes)"),
            Rule(DIRTY_LOG, ("fault", "async_pf_ready", "collapse", "make_spte"), SUBSET,
                 "a SPTE that now comes out write-protected is not writable, so it is not "
                 "logged dirty at creation; the message's write-protection implies it"),
        ),
        notes=("After an allowed SPTE change the two VMs hold different tables; later "
               "operation steps are then compared by the invariants only.",),
    )


def _rfc_2() -> Contract:
    return Contract(
        name="rfc-2-mark-dirty-at-creation",
        source=WRITTEN,
        subject="KVM: x86/mmu: Mark folio dirty when creating SPTE, not when zapping/modifying",
        intent=("Folios are marked dirty when a writable SPTE is created (in make_spte, before "
                "access tracking) instead of when SPTEs are zapped or modified. The message "
                "argues this is safe because mmu_notifier invalidation zaps SPTEs before the "
                "guest could dirty a folio without KVM knowing. Memslot dirty logging stays."),
        rules=(
            Rule(DIRTY, ("make_spte", "FNAME(prefetch_gpte)"), SUPERSET,
                 "the message: mark the folio dirty when creating a writable SPTE "
                 "(prefetch_gpte only creates SPTEs, through mmu_set_spte and make_spte)"),
            Rule(DIRTY, ("fault", "async_pf_ready", "shadow_sync", "shadow_prefetch"), FREE,
                 "these operations create SPTEs (may now mark) and also zap, modify or "
                 "write-protect others (the modelled prefetch first shadows the guest table "
                 "gfn, write-protecting it): both halves of the message apply"),
            Rule(DIRTY, (ANY,), SUBSET,
                 "the message: no longer mark folios dirty when zapping or modifying SPTEs"),
        ),
        notes=("The message says nothing about page references or accessed marking: they "
               "must stay as they were.",),
    )


def _rfc_3() -> Contract:
    return Contract(
        name="rfc-3-mark-accessed-only-zapping-leafs",
        source=WRITTEN,
        subject="KVM: x86/mmu: Mark page/folio accessed only when zapping leaf SPTEs",
        intent=("Folios are marked accessed (beyond map time) only when leaf SPTEs are zapped "
                "in response to a possible mmu_notifier invalidation; zapping whole roots "
                "(VM teardown, memslot deletion) and collapsible SPTEs, and modifying SPTEs, "
                "no longer mark them. A locking.rst example is rewritten to match."),
        rules=(
            Rule(ACCESSED, ("unmap", "tdp_mmu_zap_leafs"), MOVED,
                 "the message keeps marking accessed when leaf SPTEs are zapped for the primary "
                 "MMU, now done explicitly by the leaf-zap code instead of the common handler"),
            Rule(ACCESSED, (ANY,), SUBSET,
                 "the message: mark accessed only when zapping leaf SPTEs; not when zapping "
                 "roots or collapsible SPTEs, nor when modifying SPTEs (the folio was marked "
                 "when the SPTE was created)"),
        ),
        notes=("Map-time accessed marking must stay: the accessed_preserved invariant "
               "checks it.",),
    )


def _rfc_4() -> Contract:
    return Contract(
        name="rfc-4-no-flush-for-accessed-clear",
        source=WRITTEN,
        subject="KVM: x86/mmu: Don't force flush if SPTE update clears Accessed bit",
        intent=("mmu_spte_update no longer asks for a TLB flush when the only reason is that "
                "the Accessed bit was cleared; write-protection and Dirty-bit clearing still "
                "force one. The message claims this is nearly a nop in practice."),
        rules=(
            Rule(FLUSH, ("mmu_spte_update", "shadow_sync", "shadow_prefetch", "fault", "async_pf_ready"),
                 SUBSET,
                 "the message: a SPTE update that clears only the Accessed bit no longer "
                 "forces a flush; the paths it names that can do that are sync, prefetch and "
                 "(async) faults"),
        ),
        notes=("The message claims spte_write_protect and spte_clear_dirty never clear the "
               "Accessed bit, so dirty-logging flushes must stay equal.",),
    )


WRITTEN_CONTRACTS: dict[str, Contract] = {}
for _make in (_rfc_1, _rfc_2, _rfc_3, _rfc_4):
    _contract = _make()
    _key = normalise_subject(_contract.subject)
    if _key in WRITTEN_CONTRACTS:
        raise ValueError(f"two contracts for {_contract.subject!r}")
    WRITTEN_CONTRACTS[_key] = _contract


def written_contract(subject: str) -> Contract | None:
    return WRITTEN_CONTRACTS.get(normalise_subject(subject))


# ---------------------------------------------------------------------------
# Inferred contracts
# ---------------------------------------------------------------------------

# Identifiers that, in a changed line, say which channel the line touches.
CHANNEL_WORDS: dict[str, tuple[str, ...]] = {
    ACCESSED: ("kvm_set_pfn_accessed", "kvm_set_page_accessed", "mark_page_accessed",
               "folio_mark_accessed", "kvm_release_pfn_clean", "kvm_release_page_clean",
               "is_accessed_spte", "shadow_accessed_mask"),
    DIRTY: ("kvm_set_pfn_dirty", "kvm_set_page_dirty", "SetPageDirty", "folio_mark_dirty",
            "kvm_release_pfn_dirty", "kvm_release_page_dirty", "is_dirty_spte",
            "shadow_dirty_mask"),
    FLUSH: ("flush", "kvm_flush_remote_tlbs"),
    REFS: ("put_page", "get_page", "kvm_release_pfn", "kvm_release_page", "gfn_to_pfn",
           "gfn_to_page", "refcount"),
    WARN: ("WARN", "BUG"),
    SPTE: ("spte", "sptep", "PT_WRITABLE", "mmu_writable", "host_writable", "make_spte",
           "mmu_set_spte"),
    DIRTY_LOG: ("mark_page_dirty", "dirty_bitmap", "kvm_slot_dirty_track_enabled"),
    STATS: ("kvm_update_page_stats",),
}


def _channels_in(lines) -> set[str]:
    found = set()
    for line in lines:
        code = line.split("//", 1)[0]
        stripped = code.strip()
        if stripped.startswith(("*", "/*")):
            continue   # comment lines change no behaviour
        for channel, words in CHANNEL_WORDS.items():
            if any(word in code for word in words):
                found.add(channel)
    return found


def _guarded_channels(hunk) -> set[str]:
    """Channels named by the statement a changed condition line guards.

    ``-  !is_writable_pte(new_spte))`` / ``+  !is_mmu_writable_spte(new_spte))``
    above an unchanged ``flush = true;`` changes when the flush happens: the
    flush channel is in the change even though no changed line names it.  A
    changed line with code but no ``;`` (part of a condition) takes the
    unchanged lines after it on its side, up to the first ``;``.
    """

    try:
        lines = hunk_lines(hunk)
    except UnreadableHunk:
        return set()
    found: set[str] = set()
    for i, line in enumerate(lines):
        code = line.text.split("//", 1)[0].strip()
        if line.kind == " " or not line.mine or ";" in code or code.strip("{}() ") == "" \
                or code.startswith(("*", "/*", "#")):
            continue
        side = (" ", line.kind)
        following = []          # unchanged lines only: changed ones count for themselves
        for later in lines[i + 1:i + 8]:
            if later.kind not in side:
                continue
            if later.kind == " ":
                following.append(later.text)
            if ";" in later.text:
                break
        found |= _channels_in(following)
    return found


def _shortened(subject: str, width: int = 72) -> str:
    subject = " ".join(subject.split())
    return subject if len(subject) <= width else subject[:width - 1].rstrip() + "…"


def infer(subject: str, hunks) -> Contract:
    """A contract from the diff alone: channels whose helpers the changed lines name may change.

    A channel named only in removed lines may lose events (``subset``), only
    in added lines may gain events (``superset``), in both: ``free``.  Every
    other channel must stay ``equal``.
    """
    removed: set[str] = set()
    added: set[str] = set()
    functions = set()
    guarded: set[str] = set()
    for hunk in hunks:
        removed |= _channels_in(getattr(hunk, "removed", ()) or ())
        added |= _channels_in(getattr(hunk, "added", ()) or ())
        if getattr(hunk, "text", None):
            guarded |= _guarded_channels(hunk)
        if getattr(hunk, "function", None):
            functions.add(hunk.function)
    rules = []
    for channel in CHANNELS:
        if channel in guarded:
            rules.append(Rule(channel, (ANY,), FREE,
                              f"inferred: a changed condition guards {channel} statements"))
            continue
        if channel in removed and channel in added:
            relation = FREE
        elif channel in removed:
            relation = SUBSET
        elif channel in added:
            relation = SUPERSET
        else:
            continue
        rules.append(Rule(channel, (ANY,), relation,
                          f"inferred: changed lines name {channel} helpers "
                          f"({'removed' if channel in removed else ''}"
                          f"{' and ' if channel in removed and channel in added else ''}"
                          f"{'added' if channel in added else ''})"))
    named = ", ".join(sorted(functions)) or "no function"
    return Contract(
        name=f"inferred: {_shortened(subject)}",
        source=INFERRED,
        subject=subject,
        intent=(f"No written contract; inferred from the diff of {named}: channels named in "
                f"changed lines may change, all others must stay equal."),
        rules=tuple(rules),
    )


def contract_for(patch, hunks) -> Contract:
    """The written contract for ``patch`` (by normalised subject), else one inferred from ``hunks``."""
    subject = getattr(patch, "subject", "") or ""
    written = written_contract(subject)
    if written is not None:
        return written
    return infer(subject, hunks)


def series_contract(contracts) -> Contract:
    """The net contract of several patches applied in order (for the series' net change).

    Per (channel, operation) the relations compose: equal is neutral, equal
    relations of the same kind stay, anything mixed becomes free.
    """
    contracts = list(contracts)
    keys = {(r.channel, op) for c in contracts for r in c.rules for op in r.operations}
    rules = []
    for channel, operation in sorted(keys):
        relations = [c.relation(channel, operation) for c in contracts]
        kinds = {r for r in relations if r != EQUAL}
        if not kinds:
            continue
        if kinds == {SUBSET} or kinds == {SUPERSET} or kinds == {MOVED}:
            relation = kinds.pop()
        elif kinds <= {SUBSET, MOVED}:
            relation = SUBSET
        elif kinds <= {SUPERSET, MOVED}:
            relation = SUPERSET
        else:
            relation = FREE
        rules.append(Rule(channel, (operation,), relation,
                          "composed from: " + "; ".join(
                              f"{c.name}: {c.relation(channel, operation)}" for c in contracts)))
    return Contract(name="series: " + " + ".join(c.name for c in contracts),
                    source=WRITTEN if all(c.source == WRITTEN for c in contracts) else INFERRED,
                    intent="The net change of the series, composed from each patch's contract.",
                    rules=tuple(rules))
