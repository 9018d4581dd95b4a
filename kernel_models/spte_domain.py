"""The abstract SPTE domain: every SPTE value worth telling apart, per mode.

The engine enumerates (old, new) pairs from this domain exhaustively, so the
domain is small and built by equivalence: two values that answer every
spte.h/spte.c predicate the same way (present, MMIO, removed, large, leaf at
its level, W, MMU-writable, host-writable, executable, A/D type, accessed,
dirty, access-tracked, volatile bits) and map the same pfn are one value.

What varies, and where:

- level: 0 and REMOVED_SPTE at levels 1-4 (a slot at any level can hold
  them); MMIO at 4K only (MMIO SPTEs are installed at 4K); non-leaf at
  levels 2-4; leaves at 4K (full cross product), 2M (reduced) and 1G (two).
- writability: the four valid (host-writable, MMU-writable, W) combinations
  (1,1,1), (1,1,0), (1,0,0), (0,0,0); the four others appear once each,
  flagged ``valid=False``, to check the WARNs.
- A and D: all four combinations at 4K where the SPTE has A/D bits (D
  without A is real: a prefetched writable SPTE).
- A/D type: "enabled" everywhere; in ``ept_ad`` also A/D-disabled SPTEs
  (a nested L2 without EPT A/D) and write-protect-only SPTEs (PML + nested);
  in ``ept_noad`` every SPTE is A/D-disabled.  Legacy SPTEs are always
  "enabled".
- access tracking: A/D-disabled SPTEs appear both live and access-tracked
  (RWX cleared, R/X saved in bits 54/56), with and without saved X.
- exec: the mode's default (X on EPT, NX clear on legacy) except a few
  values, because only ``is_executable_pte`` and access-track restore read it.
- pfn: 1 for every present leaf (scaled to the page size: 0x200 for 2M,
  0x40000 for 1G, see ``huge_pfn``); a second pfn (2) for a few present
  4K leaves, enough for "pfn changed" checks.  Non-leaf SPTEs point at table pfn
  ``NONLEAF_CHILD_PFN``.

Domain sizes (all / valid), pinned by tests/test_spte.py:
legacy 50 / 46, ept_ad 62 / 58, ept_noad 38 / 34.

A translated tree state of another release has its own spte.h
(``harness.resolve.spte_layout``): inside ``following(layout)`` the fixed
values are that release's (not-present ``SHADOW_NONPRESENT_VALUE`` from
v6.10, ``FROZEN_SPTE``), and ``describe_spte`` names the bits by its macros.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache

from hypothesis import strategies as st

from kernel_models import spte as S

NONLEAF_CHILD_PFN = 0x900       # a page-table page, far from guest pfns 1 and 2
LEVEL_NAMES = {1: "4K", 2: "2M", 3: "1G", 4: "512G"}

WRITABLE_COMBOS = ((1, 1, 1), (1, 1, 0), (1, 0, 0), (0, 0, 0))   # (host, mmu, W): valid
INVALID_COMBOS = ((0, 1, 1), (0, 1, 0), (0, 0, 1), (1, 0, 1))    # break an invariant


@dataclass(frozen=True)
class AbstractSpte:
    """One domain value: an SPTE ``value`` as it would sit at ``level``."""

    mode: str
    level: int
    value: int
    label: str
    valid: bool = True

    def __repr__(self) -> str:
        flag = "" if self.valid else " INVALID"
        return f"<{self.mode} L{self.level} {self.value:#x} {self.label}{flag}>"


def leaf_value(masks: S.SpteMasks, level: int, pfn: int, host: int, mmu: int, w: int,
               a: int, d: int, exec_: bool = True, ad_type: int = S.SPTE_TDP_AD_ENABLED,
               tracked: bool = False) -> int:
    """A leaf SPTE laid out as make_spte lays it out (user access always on).

    ``pfn`` is a 4K-page index scaled by the page size of ``level``
    (``huge_pfn``): at 2M, pfn 3 maps pfn 3 * 512, so huge leaves stay aligned.
    """
    value = S.SPTE_MMU_PRESENT_MASK | ad_type | masks.present | masks.user
    value |= masks.x if exec_ else masks.nx
    if level > 1:
        value |= S.PT_PAGE_SIZE_MASK
    value |= masks.host_writable if host else 0
    value |= masks.mmu_writable if mmu else 0
    value |= S.PT_WRITABLE_MASK if w else 0
    if ad_type != S.SPTE_TDP_AD_DISABLED:
        value |= masks.accessed if a else 0
        value |= masks.dirty if d else 0
    value |= huge_pfn(level, pfn) << S.PAGE_SHIFT
    if tracked:
        saved = value & S.SHADOW_ACC_TRACK_SAVED_BITS_MASK
        value |= saved << S.SHADOW_ACC_TRACK_SAVED_BITS_SHIFT
        value &= ~masks.acc_track
    return value


def huge_pfn(level: int, pfn: int) -> int:
    """The pfn a leaf at ``level`` maps for domain pfn ``pfn``: aligned to the page size.

    4K leaves map pfn 1 or 2; a 2M leaf maps pfn 1*512, a 1G leaf 1*512*512,
    as huge mappings start on their own alignment.
    """
    return pfn << ((level - 1) * 9)


def nonleaf_value(masks: S.SpteMasks, ad_disabled: bool) -> int:
    """What make_nonleaf_spte builds for a child table at NONLEAF_CHILD_PFN."""
    value = S.SPTE_MMU_PRESENT_MASK | (NONLEAF_CHILD_PFN << S.PAGE_SHIFT)
    value |= masks.present | S.PT_WRITABLE_MASK | masks.user | masks.x
    value |= S.SPTE_TDP_AD_DISABLED if ad_disabled else masks.accessed
    return value


def mmio_value(masks: S.SpteMasks) -> int:
    """make_mmio_spte for gfn 0, generation 0, access ACC_ALL."""
    return masks.mmio_value | (S.ACC_ALL & masks.mmio_access)


def leaf_label(level: int, host: int, mmu: int, w: int, a: int, d: int, pfn: int, *,
               exec_: bool = True, ad: str = "", tracked: bool = False) -> str:
    words = ["leaf", LEVEL_NAMES[level]]
    words += [name for name, bit in (("W", w), ("mmuW", mmu), ("hostW", host)) if bit]
    if not (host or mmu or w):
        words.append("ro")
    if ad:
        words.append(ad)
    words += [name for name, bit in (("A", a), ("D", d)) if bit]
    if tracked:
        words.append("tracked")
    if not exec_:
        words.append("noexec")
    words.append(f"pfn={huge_pfn(level, pfn):#x}" if level > 1 else f"pfn={pfn}")
    return " ".join(words)


# The SPTE layout of the state being checked (None: kernel_models.spte's own bits).
_LAYOUT: ContextVar = ContextVar("spte_layout", default=None)


@contextmanager
def following(layout):
    """Build domains and describe SPTEs with ``layout``'s fixed values (None: spte.py's)."""
    token = _LAYOUT.set(layout)
    try:
        yield
    finally:
        _LAYOUT.reset(token)


def _fixed_values(masks: S.SpteMasks, layout=None) -> list[AbstractSpte]:
    """Not-present (0, or SHADOW_NONPRESENT_VALUE) and the frozen value (REMOVED_SPTE, or
    FROZEN_SPTE) at every level, MMIO at 4K."""
    mode = masks.mode
    not_present = layout.not_present if layout is not None else 0
    frozen = layout.frozen if layout is not None and layout.frozen is not None \
        else S.REMOVED_SPTE
    frozen_label = layout.frozen_name if layout is not None else "removed"
    present_label = "SHADOW_NONPRESENT_VALUE" if not_present else "0"
    items = []
    for level in (1, 2, 3, 4):
        items.append(AbstractSpte(mode, level, not_present, f"not-present {present_label} "
                                                            f"L{level}"))
        items.append(AbstractSpte(mode, level, frozen, f"{frozen_label} L{level}"))
    items.append(AbstractSpte(mode, 1, mmio_value(masks), "mmio"))
    return items


def _nonleaf_values(masks: S.SpteMasks, ad_disabled: bool) -> list[AbstractSpte]:
    items = [AbstractSpte(masks.mode, level, nonleaf_value(masks, ad_disabled),
                          f"nonleaf L{level}" + (" AD-off" if ad_disabled else ""))
             for level in (2, 3, 4)]
    return items


def _ad_leaves(masks: S.SpteMasks) -> list[AbstractSpte]:
    """Leaves with A/D bits enabled."""
    mode, items = masks.mode, []
    for host, mmu, w in WRITABLE_COMBOS:
        for a in (1, 0):
            for d in (1, 0):
                items.append(AbstractSpte(mode, 1, leaf_value(masks, 1, 1, host, mmu, w, a, d),
                                          leaf_label(1, host, mmu, w, a, d, 1)))
    for host, mmu, w in ((1, 1, 1), (1, 0, 0)):      # exec differs
        items.append(AbstractSpte(mode, 1, leaf_value(masks, 1, 1, host, mmu, w, 1, w,
                                                      exec_=False),
                                  leaf_label(1, host, mmu, w, 1, w, 1, exec_=False)))
    for host, mmu, w in WRITABLE_COMBOS:              # 2M: A D, A only, one not accessed
        for a, d in ((1, 1), (1, 0)):
            items.append(AbstractSpte(mode, 2, leaf_value(masks, 2, 1, host, mmu, w, a, d),
                                      leaf_label(2, host, mmu, w, a, d, 1)))
    items.append(AbstractSpte(mode, 2, leaf_value(masks, 2, 1, 1, 1, 0, 0, 0),
                              leaf_label(2, 1, 1, 0, 0, 0, 1)))
    for host, mmu, w in ((1, 1, 1), (0, 0, 0)):       # 1G: writable, read-only
        items.append(AbstractSpte(mode, 3, leaf_value(masks, 3, 1, host, mmu, w, 1, w),
                                  leaf_label(3, host, mmu, w, 1, w, 1)))
    for host, mmu, w in WRITABLE_COMBOS:              # second pfn, typical after a fault
        items.append(AbstractSpte(mode, 1, leaf_value(masks, 1, 2, host, mmu, w, 1, w),
                                  leaf_label(1, host, mmu, w, 1, w, 2)))
    items.append(AbstractSpte(mode, 1, leaf_value(masks, 1, 2, 1, 1, 1, 0, 1),
                              leaf_label(1, 1, 1, 1, 0, 1, 2)))
    return items


def _wrprot_only_leaves(masks: S.SpteMasks) -> list[AbstractSpte]:
    """Write-protect-only leaves (PML + nested): A/D bits exist, W must be trapped."""
    ad_type = S.SPTE_TDP_AD_WRPROT_ONLY
    return [AbstractSpte(masks.mode, 1, leaf_value(masks, 1, 1, host, mmu, w, a, d, ad_type=ad_type),
                         leaf_label(1, host, mmu, w, a, d, 1, ad="AD-wrprot"))
            for host, mmu, w, a, d in ((1, 1, 1, 1, 1), (1, 1, 1, 1, 0), (1, 1, 0, 1, 1),
                                       (1, 0, 0, 1, 0))]


def _ad_disabled_leaves(masks: S.SpteMasks, full: bool) -> list[AbstractSpte]:
    """A/D-disabled leaves: live and access-tracked (tracking clears W, so no W there)."""
    mode, items, ad = masks.mode, [], "AD-off"
    disabled = S.SPTE_TDP_AD_DISABLED

    def add(level, pfn, host, mmu, w, *, exec_=True, tracked=False):
        value = leaf_value(masks, level, pfn, host, mmu, w, 0, 0, exec_=exec_,
                           ad_type=disabled, tracked=tracked)
        items.append(AbstractSpte(mode, level, value,
                                  leaf_label(level, host, mmu, w, 0, 0, pfn, exec_=exec_,
                                             ad=ad, tracked=tracked)))

    for host, mmu, w in WRITABLE_COMBOS:
        add(1, 1, host, mmu, w)
    for host, mmu, _ in ((1, 1, 0), (1, 0, 0), (0, 0, 0)):
        add(1, 1, host, mmu, 0, tracked=True)
    if not full:
        return items
    add(1, 1, 1, 1, 1, exec_=False)
    add(1, 1, 1, 1, 0, exec_=False, tracked=True)
    for host, mmu, w in WRITABLE_COMBOS:
        add(2, 1, host, mmu, w)
    add(2, 1, 1, 1, 0, tracked=True)
    add(2, 1, 1, 0, 0, tracked=True)
    add(3, 1, 1, 1, 1)
    add(3, 1, 0, 0, 0)
    for host, mmu, w in WRITABLE_COMBOS:
        add(1, 2, host, mmu, w)
    add(1, 2, 1, 1, 0, tracked=True)
    return items


def _invalid_leaves(masks: S.SpteMasks, ad_disabled: bool) -> list[AbstractSpte]:
    ad_type = S.SPTE_TDP_AD_DISABLED if ad_disabled else S.SPTE_TDP_AD_ENABLED
    return [AbstractSpte(masks.mode, 1,
                         leaf_value(masks, 1, 1, host, mmu, w, 1, w, ad_type=ad_type),
                         leaf_label(1, host, mmu, w, 0 if ad_disabled else 1,
                                    0 if ad_disabled else w, 1,
                                    ad="AD-off" if ad_disabled else ""), valid=False)
            for host, mmu, w in INVALID_COMBOS]


def spte_domain(mode: str) -> tuple[AbstractSpte, ...]:
    """Every domain value of ``mode`` (valid and invalid), in a fixed order."""
    return _spte_domain(mode, _LAYOUT.get())


@lru_cache(maxsize=None)
def _spte_domain(mode: str, layout) -> tuple[AbstractSpte, ...]:
    masks = S.MODES[mode]
    items = _fixed_values(masks, layout)
    if mode == "legacy":
        items += _nonleaf_values(masks, False)
        items += _ad_leaves(masks)
        items += _invalid_leaves(masks, False)
    elif mode == "ept_ad":
        items += _nonleaf_values(masks, False)
        items.append(AbstractSpte(mode, 2, nonleaf_value(masks, True), "nonleaf L2 AD-off"))
        items += _ad_leaves(masks)
        items += _wrprot_only_leaves(masks)
        items += _ad_disabled_leaves(masks, full=False)
        items += _invalid_leaves(masks, False)
    elif mode == "ept_noad":
        items += _nonleaf_values(masks, True)
        items += _ad_disabled_leaves(masks, full=True)
        items += _invalid_leaves(masks, True)
    else:
        raise KeyError(f"unknown SPTE encoding mode {mode!r}; known: {sorted(S.MODES)}")
    values = {(item.level, item.value) for item in items}
    assert len(values) == len(items), f"duplicate values in the {mode} domain"
    return tuple(items)


def valid_domain(mode: str) -> tuple[AbstractSpte, ...]:
    return tuple(item for item in spte_domain(mode) if item.valid)


def domain_at_level(mode: str, level: int, valid_only: bool = True) -> tuple[AbstractSpte, ...]:
    """The values that can sit in an SPTE slot at ``level`` (old/new pairs share a slot)."""
    return tuple(item for item in spte_domain(mode)
                 if item.level == level and (item.valid or not valid_only))


def sptes(mode: str | None = None, valid_only: bool = True) -> st.SearchStrategy[AbstractSpte]:
    """Hypothesis strategy over the domain; shrinks towards the first (simplest) values."""
    modes = (mode,) if mode else tuple(S.MODES)
    items = [item for m in modes for item in spte_domain(m) if item.valid or not valid_only]
    return st.sampled_from(items)


@lru_cache(maxsize=None)
def _describer(mode: str):
    """A private VM whose predicates answer describe_spte (never the caller's VM:
    describing must not add events to anyone's log)."""
    from kernel_models.registry import VersionSet
    from kernel_models.vm import VM
    return VM(VersionSet.series_state("base"), mode)


def describe_spte(mode_or_kvm, value: int) -> dict:
    """Name what ``value`` says, for counterexamples: raw bits and predicate answers."""
    mode = mode_or_kvm if isinstance(mode_or_kvm, str) else mode_or_kvm.mode
    kvm = _describer(mode)
    masks = S.MODES[mode]
    present = kvm.is_shadow_present_pte(value)
    facts = {
        "value": hex(value),
        "present": present,
        "mmio": kvm.is_mmio_spte(value),
        "removed": kvm.is_removed_spte(value),
        "large": kvm.is_large_pte(value),
        "W": kvm.is_writable_pte(value),
        "mmuW": kvm.is_mmu_writable_spte(value),
        "hostW": bool(value & masks.host_writable),
        "A": bool(value & masks.accessed) if masks.accessed else False,
        "D": bool(value & masks.dirty) if masks.dirty else False,
        "pfn": kvm.spte_to_pfn(value),
    }
    if present:         # the rest only means something for a present SPTE
        ad_field = value & S.SPTE_TDP_AD_MASK
        facts["ad"] = {S.SPTE_TDP_AD_ENABLED: "enabled", S.SPTE_TDP_AD_DISABLED: "disabled",
                       S.SPTE_TDP_AD_WRPROT_ONLY: "wrprot-only"}.get(ad_field, "reserved")
        facts["X"] = kvm.is_executable_pte(value)
        facts["accessed"] = kvm.is_accessed_spte(value)
        facts["dirty"] = kvm.is_dirty_spte(value)
        facts["tracked"] = kvm.is_access_track_spte(value)
        facts["volatile"] = kvm.spte_has_volatile_bits(value)
        facts["saved_R"] = bool(value & (S.SPTE_EPT_READABLE_MASK << S.SHADOW_ACC_TRACK_SAVED_BITS_SHIFT))
        facts["saved_X"] = bool(value & (S.SPTE_EPT_EXECUTABLE_MASK << S.SHADOW_ACC_TRACK_SAVED_BITS_SHIFT))
    layout = _LAYOUT.get()
    if layout is not None:      # the bits by the names the state's own spte.h gives them
        facts["spte.h"] = " ".join(layout.names(value)) or None
    return facts
