"""Reading SPTEs without the VM, and following mapping lifetimes, for the invariants.

Split from ``harness.check.checks`` (which re-exports every name here): pure
predicates written from KERNEL-FACTS section 1, and ``Mappings``, the tracker
``dirty_preserved`` and ``accessed_preserved`` advance over each step's SPTE writes.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from kernel_models.effects import SpteWrite


# ---------------------------------------------------------------------------
# Reading SPTEs without the VM (pure, from KERNEL-FACTS section 1)
# ---------------------------------------------------------------------------

_MMU_PRESENT = 1 << 11
_WRITABLE = 1 << 1
_LARGE = 1 << 7
_AD_MASK = 3 << 52
_AD_DISABLED = 1 << 52
_PFN_MASK = ((1 << 52) - 1) & ~0xFFF
_WHERE = re.compile(r"^[a-z]+(\d)@(0x[0-9a-f]+|\d+)\[(\d+)\]")


def spte_level(where: str) -> int:
    match = _WHERE.match(where)
    return int(match.group(1)) if match else 1


def spte_gfn(where: str) -> int | None:
    """The first gfn an SPTE maps, from its ``where`` (direct tables)."""
    match = _WHERE.match(where)
    if not match:
        return None
    level, base, index = int(match.group(1)), int(match.group(2), 0), int(match.group(3))
    return base + index * (1 << (9 * (level - 1)))


@dataclass(frozen=True)
class Reading:
    """What an invariant needs to know about one SPTE value at one place."""

    present_leaf: bool
    nonleaf: bool
    pfn: int
    pages: int
    writable: bool
    dirty: bool
    accessed: bool
    tracked: bool
    ad_enabled: bool


def read_spte(vm, value: int, level: int) -> Reading:
    present = bool(value & _MMU_PRESENT)
    leaf = present and (level == 1 or bool(value & _LARGE))
    ad_enabled = (value & _AD_MASK) != _AD_DISABLED
    accessed_mask = vm.shadow_accessed_mask if ad_enabled else 0
    dirty_mask = vm.shadow_dirty_mask if ad_enabled else 0
    tracked = (not ad_enabled) and (value & vm.shadow_acc_track_mask) == 0
    accessed = bool(value & accessed_mask) if accessed_mask else not tracked
    dirty = bool(value & dirty_mask) if dirty_mask else bool(value & _WRITABLE)
    return Reading(present_leaf=leaf, nonleaf=present and not leaf,
                   pfn=(value & _PFN_MASK) >> 12, pages=1 << (9 * (level - 1)),
                   writable=bool(value & _WRITABLE), dirty=leaf and dirty,
                   accessed=leaf and accessed, tracked=tracked, ad_enabled=ad_enabled)


# ---------------------------------------------------------------------------
# Mapping lifetimes (dirty_preserved, accessed_preserved)
# ---------------------------------------------------------------------------

@dataclass
class Mapping:
    pfn: int
    pages: int
    wrote: bool          # W or D seen at any time while mapped
    touched: bool        # accessed seen at any time while mapped
    folio: int = 0       # the folio key counted when the mapping began
    since: int = 0       # log position from which a mark counts for this mapping
    aged_at: int = 0     # log position after the last aging that cleared its A (accessed)


class Mappings:
    """Present leaf SPTEs of one VM and the folios they map, followed step by step.

    A folio is the pfn range of the largest huge mapping seen over it (a
    huge SPTE needs a huge host folio), else its single pfn.  ``since`` holds,
    per folio, the log position at the start of the step in which the folio
    went from unmapped to mapped: a mark made anywhere from there counts for
    every mapping of the folio ("marked at creation counts"), because the
    host cannot clean or reclaim a folio without first zapping KVM's
    mappings of it (mmu_notifier).
    """

    def __init__(self):
        self.live: dict[str, Mapping] = {}
        self.ranges: dict[int, int] = {}        # head pfn -> pages (huge folios)
        self.since: dict[int, int] = {}
        self.count: Counter = Counter()
        self.cleared: list[tuple[str, Mapping]] = []    # A cleared in place this step

    def folio(self, pfn: int) -> int:
        best_head, best_pages = pfn, 1
        for head, pages in self.ranges.items():
            if head <= pfn < head + pages and pages > best_pages:
                best_head, best_pages = head, pages
        return best_head

    def advance(self, vm, events: list, step_start: int, aging: bool = False
                ) -> list[tuple[str, Mapping]]:
        """Apply a step's SPTE writes; return the mappings that ended in it.

        Two cases the log alone does not show: SPTEs some models fill in
        silently (the children of a huge page being split are written into a
        table before it is linked), and a huge leaf replaced by a table of its
        own children.  A write whose old value is a present leaf we never saw
        starts tracking that mapping from the folio's history (or the start of
        the run); a huge leaf turned into a table hands its folio on to the
        children, so the folio stays mapped and keeps its history.

        Accessed information follows page aging: when an aging operation
        (``aging``) clears a mapping's A (or access-tracks it), the access is
        taken as reported young, ``touched`` starts afresh and only marks made
        after the step count for later accesses (``aged_at``).  When any other
        operation clears A in place, the mapping lands in ``self.cleared``: the
        access left the SPTE and must have reached the folio by then.
        """
        ended = []
        self.cleared = []
        step_end = step_start + len(events)
        for event in events:
            if not isinstance(event, SpteWrite):
                continue
            level = spte_level(event.where)
            old = read_spte(vm, event.old, level)
            new = read_spte(vm, event.new, level)
            current = self.live.get(event.where)
            if current is None and old.present_leaf:
                current = self._begin(event.where, old, 0)
            if current is not None and new.nonleaf:
                del self.live[event.where]      # split: the children carry the folio on
                current = None
            elif current is not None and (not new.present_leaf or new.pfn != current.pfn):
                del self.live[event.where]
                self.count[current.folio] -= 1
                ended.append((event.where, current))
                current = None
            if new.present_leaf:
                if current is None:
                    current = self._begin(event.where, new, step_start)
                current.wrote |= new.writable or new.dirty
                if current.touched and old.present_leaf and old.accessed and not new.accessed:
                    if aging:
                        current.aged_at = step_end
                    else:
                        self.cleared.append((event.where, current))
                    current.touched = False
                current.touched |= new.accessed
        return ended

    def _begin(self, where: str, reading: Reading, step_start: int) -> Mapping:
        if reading.pages > 1:
            self.ranges[reading.pfn] = max(self.ranges.get(reading.pfn, 1), reading.pages)
        folio = self.folio(reading.pfn)
        if self.count[folio] <= 0:
            # unmapped folios are forgotten only between steps (settle), so a
            # mapping replaced within one step keeps the folio's history
            self.since.setdefault(folio, step_start)
            self.count[folio] = 0
        self.count[folio] += 1
        mapping = Mapping(reading.pfn, reading.pages, reading.writable or reading.dirty,
                          reading.accessed, folio, self.since[folio])
        self.live[where] = mapping
        return mapping

    def settle(self) -> None:
        """Forget folios that are no longer mapped (after the step was checked)."""
        for folio, count in list(self.count.items()):
            if count <= 0:
                self.count.pop(folio, None)
                self.since.pop(folio, None)
