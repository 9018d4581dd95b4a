"""Contracts: what a patch says it changes, as data.

A contract holds one rule per (channel, operations): the relation the
after-version's effects must have to the before-version's on that channel,
and *why*, from the commit message.  Relations:

- ``equal``: the same events, from the same functions;
- ``subset``: the after-version may drop events, never add (``by`` ignored);
- ``superset``: it may add events, never drop (``by`` ignored);
- ``moved``: the same events, each possibly now coming from another function
  on the same path (``Event.by`` may differ);
- ``free``: anything.

``operations`` names operation-level steps (``operations.OPERATIONS`` keys)
and, for function-level checks, C function names; ``"*"`` matches all.  A
rule naming the operation or function beats a ``"*"`` rule; no rule means
``equal``: the message does not say so.

Where a contract comes from (``Contract.source``):

- ``written``: the four RFC patches have contracts written by hand from their
  commit messages, bound to their normalised subjects (a resend or a later
  revision finds them).  They were written before the patches were run and
  are never adjusted to make a patch pass.
- ``message``: every other patch.  Every channel must stay ``equal`` except
  what the commit message claims, read through the claims table
  (``harness.check.claims``): each claim becomes a rule on its channel, at the
  places its sentence names, else where the diff is (the changed functions,
  and the operations and driven functions that reach them).  The diff only
  says *where*; it never says what may change.  A must-hold channel (every
  channel but ``accessed``) that changes without a claim is a FAIL, "changed,
  and the message does not say so"; ``accessed`` is tolerant (WARN), except
  under "no functional change", where every difference is a FAIL.

API, for the engine and for anyone writing patches to test it:

- ``contract_for(patch, hunks, where=None) -> Contract``: the written contract
  for the patch's subject, else ``from_message(read_intent(patch), where)``.
- ``read_intent(patch) -> claims.Intent``: the claims of the patch's message
  (every patch has one, written contract or not).
- ``Where(functions, reach)``: the changed C functions and a function giving,
  for a C function, the operations and driven functions that reach it.
- ``Contract.rule_for(channel, operation)``, ``relation``, ``severity``;
  ``Contract.intent`` the claims behind a ``message`` contract;
  ``Contract.as_dict()`` with ``claims``, ``unread`` and ``message``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Callable

from harness.check.claims import Intent, read_message
from kernel_models.effects import ACCESSED, CHANNELS, DIRTY, DIRTY_LOG, FLUSH, SPTE

EQUAL = "equal"
SUBSET = "subset"
SUPERSET = "superset"
MOVED = "moved"
FREE = "free"
RELATIONS = (EQUAL, SUBSET, SUPERSET, MOVED, FREE)

ANY = "*"
WRITTEN = "written"
MESSAGE = "message"

# Channels where a change the message does not state is tolerated (WARN):
# page aging and LRUs tolerate false negatives and false positives.
TOLERANT_CHANNELS = frozenset({ACCESSED})

@dataclass(frozen=True)
class Rule:
    channel: str
    operations: tuple[str, ...]
    relation: str
    why: str
    sentences: tuple[str, ...] = ()     # the message's sentences behind a claimed rule

    def __post_init__(self):
        if self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}")
        if self.relation not in RELATIONS:
            raise ValueError(f"unknown relation {self.relation!r}")

    def as_dict(self) -> dict:
        out = {"channel": self.channel, "operations": list(self.operations),
               "relation": self.relation, "why": self.why}
        if self.sentences:
            out["sentences"] = list(self.sentences)
        return out


@dataclass(frozen=True)
class Contract:
    name: str
    source: str                 # "written" | "message"
    intent: str
    rules: tuple[Rule, ...] = ()
    subject: str = ""
    notes: tuple[str, ...] = field(default=())
    claims: Intent | None = None     # what the message claims (every patch's, shown)
    strict: bool = False               # "no functional change": accessed must hold too

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
        if self.source == WRITTEN:
            return Rule(channel, (ANY,), EQUAL,
                        "the message says nothing about this channel here")
        return Rule(channel, (ANY,), EQUAL, UNCLAIMED)

    def relation(self, channel: str, operation: str | None) -> str:
        return self.rule_for(channel, operation).relation

    def severity(self, channel: str) -> str:
        return "WARN" if channel in TOLERANT_CHANNELS and not self.strict else "FAIL"

    def allows_change(self, channel: str) -> bool:
        """True if some rule lets ``channel`` differ somewhere."""
        return any(r.channel == channel and r.relation != EQUAL for r in self.rules)

    def as_dict(self) -> dict:
        out = {"name": self.name, "source": self.source, "intent": self.intent,
               "rules": [r.as_dict() for r in self.rules]}
        if self.claims is not None:
            out["message"] = self.claims.status
            out["claims"] = [c.as_dict() | {"allows": c.allows} for c in self.claims.claims]
            out["unread"] = [u.as_dict() for u in self.claims.unread]
        if self.strict:
            out["strict"] = True
        return out


# What a rule_for without a rule says on a message contract: the words of every
# unclaimed-change finding.
UNCLAIMED = "changed, and the message does not say so"


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
            Rule(SPTE, ("fault", "slot_access", "async_pf_ready", "collapse", "make_spte"), FREE,
                 "the message says a SPTE that replaces a non-leaf SPTE now goes through the "
                 "unsync check and may come out write-protected (the bug it fixes)"),
            Rule(DIRTY_LOG, ("fault", "slot_access", "async_pf_ready", "collapse", "make_spte"),
                 SUBSET,
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
            Rule(DIRTY, ("fault", "slot_access", "async_pf_ready", "shadow_sync", "shadow_prefetch"),
                 FREE,
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
            Rule(FLUSH, ("mmu_spte_update", "shadow_sync", "shadow_prefetch", "fault", "slot_access",
                       "async_pf_ready"),
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
# Contracts read from the commit message
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Where:
    """Where a patch's diff is: the C functions it changes, and what reaches a function.

    ``reach(function)`` gives the operations and the driven C functions that
    call ``function`` (directly or through callees) in the before or the after
    version set; the engine computes it from the models.
    """

    functions: tuple[str, ...] = ()
    reach: Callable[[str], tuple[str, ...]] = field(default=lambda function: (),
                                                    compare=False, repr=False)

    def places(self, names) -> tuple[str, ...]:
        """``names`` (operations and C functions) as the steps they govern.

        A C function brings the operations and driven functions that reach it;
        an operation brings the changed functions it reaches (and their driven
        callers), whose function-level checks run that code outside any
        operation.
        """
        from kernel_models.operations import OPERATIONS
        out: list[str] = []

        def add(place):
            if place not in out:
                out.append(place)

        for name in names:
            add(name)
            if name in OPERATIONS:
                for function in self.functions:
                    reached = self.reach(function)
                    if name in reached:
                        add(function)
                        for caller in reached:
                            if caller not in OPERATIONS:
                                add(caller)
            else:
                for place in self.reach(name):
                    add(place)
        return tuple(out)

    @property
    def diff(self) -> tuple[str, ...]:
        return self.places(self.functions)


def read_intent(patch) -> Intent:
    """The claims of ``patch``'s commit message (its subject only if the mail had one)."""
    subject = getattr(patch, "subject", "") or ""
    if hasattr(patch, "raw_subject") and not (patch.raw_subject or "").strip():
        subject = ""        # a bare diff: the subject is a file name or the body's first words
    return read_message(subject, getattr(patch, "body", "") or "")


def _operation_names() -> frozenset[str]:
    from kernel_models.operations import OPERATIONS
    return frozenset(OPERATIONS)


def _combined(one: str, other: str) -> str:
    """Two claims on the same channel and place: what both together allow."""
    if one == other:
        return one
    kinds = {one, other}
    if kinds <= {SUBSET, MOVED}:
        return SUBSET
    if kinds <= {SUPERSET, MOVED}:
        return SUPERSET
    return FREE


def claim_rules(intent: Intent, where: Where) -> tuple[Rule, ...]:
    """One rule per (channel, relation, sentences) from the change claims, at their places."""
    table: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for claim in intent.changes:
        places = where.places(claim.places) if claim.places else where.diff
        if claim.excludes:
            # "only when X": X's operations (and the functions X names) keep their
            # behaviour; a changed function X shares with other paths does not.
            excluded = set(claim.excludes) | {p for p in where.places(claim.excludes)
                                              if p in _operation_names()}
            places = tuple(p for p in places if p not in excluded)
        for place in places:
            relation, sentences = table.get((claim.channel, place), (claim.relation, []))
            relation = _combined(relation, claim.relation)
            if claim.sentence not in sentences:
                sentences = sentences + [claim.sentence]
            table[(claim.channel, place)] = (relation, sentences)
    grouped: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    for (channel, place), (relation, sentences) in table.items():
        grouped.setdefault((channel, relation, tuple(sentences)), []).append(place)
    rules = []
    for (channel, relation, sentences), places in grouped.items():
        quoted = "; ".join(f"\u201c{s}\u201d" for s in sentences)
        rules.append(Rule(channel, tuple(places), relation, f"the message: {quoted}", sentences))
    return tuple(sorted(rules, key=lambda r: (CHANNELS.index(r.channel), r.operations)))


def _shortened(subject: str, width: int = 72) -> str:
    subject = " ".join(subject.split())
    return subject if len(subject) <= width else subject[:width - 1].rstrip() + "\u2026"


def from_message(subject: str, intent: Intent, where: Where | None = None) -> Contract:
    """The contract of a patch without a written one: all equal but what the message claims."""
    where = where or Where()
    rules = claim_rules(intent, where)
    claimed = sorted({r.channel for r in rules}, key=CHANNELS.index)
    if intent.note:
        said = intent.note + "."
    elif intent.no_functional_change:
        said = ("The message says there is no functional change: every channel must stay "
                "equal, accessed marking too" +
                (f", except what its other sentences claim ({', '.join(claimed)})."
                 if claimed else "."))
    elif claimed:
        said = (f"Every channel must stay equal except what the message claims: "
                f"{', '.join(claimed)}.")
    else:
        said = "The message claims no change the claims table can read: every channel must stay equal."
    if intent.unread:
        said += (f" {len(intent.unread)} sentence{'s' if len(intent.unread) != 1 else ''} "
                 f"naming a channel could not be used (listed under 'unread').")
    return Contract(name=f"message: {_shortened(subject) or '(no subject)'}", source=MESSAGE,
                    subject=subject, intent=said, rules=rules, claims=intent,
                    strict=intent.no_functional_change)


def contract_for(patch, hunks=(), where: Where | None = None) -> Contract:
    """The written contract for ``patch`` (by normalised subject), else the message's."""
    subject = getattr(patch, "subject", "") or ""
    intent = read_intent(patch)
    written = written_contract(subject)
    if written is not None:
        return replace(written, claims=intent)
    if where is None:
        where = Where(tuple(dict.fromkeys(h.function for h in hunks
                                          if getattr(h, "function", None))))
    return from_message(subject, intent, where)


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
                    source=WRITTEN if all(c.source == WRITTEN for c in contracts) else MESSAGE,
                    strict=bool(contracts) and all(c.strict for c in contracts),
                    intent="The net change of the series, composed from each patch's contract.",
                    rules=tuple(rules))
