"""The TDP MMU (arch/x86/kvm/mmu/tdp_mmu.c), part 3: memslot work and lockless walks.

Write-protection (``kvm_tdp_mmu_wrprot_slot``, ``kvm_tdp_mmu_write_protect_gfn``),
dirty-state clearing (``kvm_tdp_mmu_clear_dirty_slot``,
``kvm_tdp_mmu_clear_dirty_pt_masked``), eager huge-page splitting
(``kvm_tdp_mmu_try_split_huge_pages``), zapping collapsible tables
(``kvm_tdp_mmu_zap_collapsible_sptes``) and the walks used without mmu_lock
(``kvm_tdp_mmu_get_walk``, ``kvm_tdp_mmu_fast_pf_get_last_sptep``).  Split
from ``tdp_mmu.py`` for size; the abstractions are in its docstring.

Facts: bodies read in torvalds/linux b1a8d2b02b69 (index id 24362102).  That
copy has the v6.9-rc4 dirty-bit rule (``tdp_mmu_need_write_protect``); the
base d078157e62aa rule modelled here was read in the diff that replaced it
(index id 39552294025): ``clear_dirty_gfn_range`` clears D if
``kvm_ad_enabled()`` else W, ``clear_dirty_pt_masked`` clears W if ``wrprot``
or A/D is off, else D, and both warn (PROVE_MMU only) when A/D is on but
the SPTE needs write-protection.  The 2/4 change to ``clear_dirty_pt_masked``
is the hunk of rfc-2-of-4.patch.

The "Confirmed: [R]" tags are explained in ``tdp_mmu.py``.
"""

from __future__ import annotations

from kernel_models.kvm_main import PG_LEVEL_2M, PG_LEVEL_4K
from kernel_models.mmu_fault import KVM_MAX_HUGEPAGE_LEVEL, PG_LEVEL_NUM
from kernel_models.mmu_internal import kvm_mmu_page, kvm_mmu_page_role
from kernel_models.registry import TDP_MMU_C, Version
from kernel_models.spte import PAGE_SHIFT, PT_WRITABLE_MASK
from kernel_models.tdp_mmu_iter import (for_each_tdp_pte, for_each_tdp_pte_min_level,
                                        for_each_valid_tdp_mmu_root,
                                        for_each_valid_tdp_mmu_root_yield_safe,
                                        tdp_root_for_each_leaf_pte)

BASE = "d078157e62aa"
AFTER_2 = "5866a664f46e"
AFTER_3 = "340d5af454c6"

ENOMEM = 12
BITS_PER_LONG = 64


def __ffs(word: int) -> int:  # noqa: N807 - kernel name
    """__ffs: index of the lowest set bit (undefined for 0 in C; -1 here)."""
    return (word & -word).bit_length() - 1


# ---------------------------------------------------------------------------
# write-protection
# ---------------------------------------------------------------------------

def wrprot_gfn_range(kvm, root, start: int, end: int, min_level: int) -> bool:
    """tdp_mmu.c wrprot_gfn_range (all blobs) -> an SPTE changed (flush needed).

    Clears W on present writable leafs at or above ``min_level`` with
    ``tdp_mmu_set_spte_atomic``, retrying a lost cmpxchg.  Zero entries may
    be skipped (the body skips non-present ones first).

    Confirmed: [R].
    """
    spte_set = False
    if min_level > KVM_MAX_HUGEPAGE_LEVEL:
        kvm.BUG("wrprot_gfn_range: BUG_ON(min_level > KVM_MAX_HUGEPAGE_LEVEL)")
        return spte_set
    for iter in for_each_tdp_pte_min_level(kvm, root, min_level, start, end, skip_zero=True):
        while True:     # retry:
            if kvm.tdp_mmu_iter_cond_resched(iter, False, True):
                break
            if (not kvm.is_shadow_present_pte(iter.old_spte)
                    or not kvm.is_last_spte(iter.old_spte, iter.level)
                    or not (iter.old_spte & PT_WRITABLE_MASK)):
                break
            new_spte = iter.old_spte & ~PT_WRITABLE_MASK
            if kvm.tdp_mmu_set_spte_atomic(iter, new_spte):
                continue
            spte_set = True
            break
    return spte_set


def kvm_tdp_mmu_wrprot_slot(kvm, slot, min_level: int) -> bool:
    """tdp_mmu.c kvm_tdp_mmu_wrprot_slot (all blobs) -> flush needed.

    Confirmed: [R].
    """
    spte_set = False
    for root in for_each_valid_tdp_mmu_root_yield_safe(kvm, slot.as_id):
        spte_set |= kvm.wrprot_gfn_range(root, slot.base_gfn, slot.base_gfn + slot.npages,
                                         min_level)
    return spte_set


def write_protect_gfn(kvm, root, gfn: int, min_level: int) -> bool:
    """tdp_mmu.c write_protect_gfn (all blobs): clear W and MMU-writable on the gfn's leaf.

    Stops at the first leaf already without both bits.  Zero entries may be
    skipped (the body skips non-present ones first).

    Confirmed: [R].
    """
    spte_set = False
    if min_level > KVM_MAX_HUGEPAGE_LEVEL:
        kvm.BUG("write_protect_gfn: BUG_ON(min_level > KVM_MAX_HUGEPAGE_LEVEL)")
        return spte_set
    for iter in for_each_tdp_pte_min_level(kvm, root, min_level, gfn, gfn + 1, skip_zero=True):
        if not kvm.is_shadow_present_pte(iter.old_spte) or not kvm.is_last_spte(iter.old_spte,
                                                                                  iter.level):
            continue
        new_spte = iter.old_spte & ~(PT_WRITABLE_MASK | kvm.shadow_mmu_writable_mask)
        if new_spte == iter.old_spte:
            break
        kvm.tdp_mmu_iter_set_spte(iter, new_spte)
        spte_set = True
    return spte_set


def kvm_tdp_mmu_write_protect_gfn(kvm, slot, gfn: int, min_level: int) -> bool:
    """tdp_mmu.c kvm_tdp_mmu_write_protect_gfn (all blobs) -> flush needed.

    Confirmed: [R].
    """
    spte_set = False
    for root in for_each_valid_tdp_mmu_root(kvm, slot.as_id):
        spte_set |= kvm.write_protect_gfn(root, gfn, min_level)
    return spte_set


# ---------------------------------------------------------------------------
# dirty-state clearing
# ---------------------------------------------------------------------------

def clear_dirty_gfn_range(kvm, root, start: int, end: int) -> bool:
    """tdp_mmu.c clear_dirty_gfn_range (all three blobs; base dirty-bit rule).

    Clears D (A/D on) or W (A/D off) on present leafs with
    ``tdp_mmu_set_spte_atomic``.  The body never changes in the series;
    folio marking happens (base only) in handle_changed_spte, because the
    old SPTE was dirty and the new one is not.  Zero entries may be skipped.

    Confirmed: [R], dirty-bit rule [D].
    """
    dbit = kvm.shadow_dirty_mask if kvm.kvm_ad_enabled() else PT_WRITABLE_MASK
    spte_set = False
    for iter in for_each_tdp_pte(kvm, root, start, end, skip_zero=True):
        while True:     # retry:
            if not kvm.is_shadow_present_pte(iter.old_spte) or not kvm.is_last_spte(iter.old_spte,
                                                                                      iter.level):
                break
            if kvm.tdp_mmu_iter_cond_resched(iter, False, True):
                break
            kvm.KVM_MMU_WARN_ON(kvm.kvm_ad_enabled() and kvm.spte_ad_need_write_protect(
                iter.old_spte), "clear_dirty_gfn_range: clearing D on an SPTE that needs wrprot")
            if not (iter.old_spte & dbit):
                break
            if kvm.tdp_mmu_set_spte_atomic(iter, iter.old_spte & ~dbit):
                continue
            spte_set = True
            break
    return spte_set


def kvm_tdp_mmu_clear_dirty_slot(kvm, slot) -> bool:
    """tdp_mmu.c kvm_tdp_mmu_clear_dirty_slot (all blobs) -> flush needed.

    Confirmed: [R].
    """
    spte_set = False
    for root in for_each_valid_tdp_mmu_root_yield_safe(kvm, slot.as_id):
        spte_set |= kvm.clear_dirty_gfn_range(root, slot.base_gfn, slot.base_gfn + slot.npages)
    return spte_set


# clear_dirty_pt_masked: 2/4 deletes the statement after the clear, taken as a
# small function.

def mark_cleared_pfn_dirty(kvm, iter) -> None:
    """clear_dirty_pt_masked at base: mark the pfn dirty once a bit was cleared,
    whatever the D state.  Confirmed: [R]."""
    kvm.kvm_set_pfn_dirty(kvm.spte_to_pfn(iter.old_spte))


def nothing_after_clear(kvm, iter) -> None:
    """clear_dirty_pt_masked after RFC 2/4: the dirty mark is gone."""


def clear_dirty_pt_masked_body(kvm, after_clear, root, gfn: int, mask: int,
                               wrprot: bool) -> None:
    """The statements of tdp_mmu.c clear_dirty_pt_masked shared by all blobs, in C order.

    For each 4K leaf whose gfn bit is in ``mask``: clear the dirty bit (W
    when ``wrprot`` or A/D is off, else D) with ``tdp_mmu_clear_spte_bits``.
    No handle_changed_spte, no flush (the caller decides).
    Confirmed: [R], dirty-bit rule [D].
    """
    dbit = PT_WRITABLE_MASK if (wrprot or not kvm.kvm_ad_enabled()) else kvm.shadow_dirty_mask
    for iter in tdp_root_for_each_leaf_pte(kvm, root, gfn + __ffs(mask), gfn + BITS_PER_LONG):
        if not mask:
            break
        kvm.KVM_MMU_WARN_ON(kvm.kvm_ad_enabled() and kvm.spte_ad_need_write_protect(
            iter.old_spte), "clear_dirty_pt_masked: clearing D on an SPTE that needs wrprot")
        if iter.level > PG_LEVEL_4K or not (mask & (1 << (iter.gfn - gfn))):
            continue
        mask &= ~(1 << (iter.gfn - gfn))
        if not (iter.old_spte & dbit):
            continue
        iter.old_spte = kvm.tdp_mmu_clear_spte_bits(iter.sptep, iter.old_spte, dbit, iter.level)
        after_clear(kvm, iter)


def clear_dirty_pt_masked(kvm, root, gfn: int, mask: int, wrprot: bool) -> None:
    """tdp_mmu.c clear_dirty_pt_masked at base d078157e62aa (and after 1/4).

    Marks the pfn dirty unconditionally once a bit was cleared.
    Confirmed: [R], dirty-bit rule [D].
    """
    clear_dirty_pt_masked_body(kvm, mark_cleared_pfn_dirty, root, gfn, mask, wrprot)


def clear_dirty_pt_masked_no_dirty_mark(kvm, root, gfn: int, mask: int, wrprot: bool) -> None:
    """tdp_mmu.c clear_dirty_pt_masked after RFC 2/4 (5866a664f46e, 340d5af454c6).

    As at base without the ``kvm_set_pfn_dirty``: the folio was marked when
    the writable SPTE was made.
    Confirmed: [R] for the shared lines; the change is the rfc-2-of-4.patch hunk [P2].
    """
    clear_dirty_pt_masked_body(kvm, nothing_after_clear, root, gfn, mask, wrprot)


def kvm_tdp_mmu_clear_dirty_pt_masked(kvm, slot, gfn: int, mask: int, wrprot: bool) -> None:
    """tdp_mmu.c kvm_tdp_mmu_clear_dirty_pt_masked (all blobs): every valid root.

    Confirmed: [R].
    """
    for root in for_each_valid_tdp_mmu_root(kvm, slot.as_id):
        kvm.clear_dirty_pt_masked(root, gfn, mask, wrprot)


# ---------------------------------------------------------------------------
# eager huge-page splitting
# ---------------------------------------------------------------------------

def tdp_mmu_alloc_sp_for_split(kvm, iter, shared: bool):
    """tdp_mmu.c tdp_mmu_alloc_sp_for_split (all blobs), reduced.

    The GFP_NOWAIT allocation always succeeds in the model, so the branch
    that drops mmu_lock (and sets ``iter.yielded``) never runs.

    Confirmed: [R].
    """
    return kvm_mmu_page(kvm, kvm_mmu_page_role(level=0), 0, tdp_mmu_page=True)


def tdp_mmu_split_huge_pages_root(kvm, root, start: int, end: int, target_level: int,
                                  shared: bool) -> int:
    """tdp_mmu.c tdp_mmu_split_huge_pages_root (all blobs) -> 0 or -ENOMEM.

    Pre-order, so a 1G page split into 2M pages is visited again and split
    further when the target is 4K.  Zero entries may be skipped (the body
    skips non-present ones first).

    Confirmed: [R].
    """
    sp = None
    ret = 0
    for iter in for_each_tdp_pte_min_level(kvm, root, target_level + 1, start, end,
                                           skip_zero=True):
        while True:     # retry:
            if kvm.tdp_mmu_iter_cond_resched(iter, False, shared):
                break
            if not kvm.is_shadow_present_pte(iter.old_spte) or not kvm.is_large_pte(iter.old_spte):
                break
            if sp is None:
                sp = kvm.tdp_mmu_alloc_sp_for_split(iter, shared)
                if sp is None:
                    ret = -ENOMEM
                    break
                if iter.yielded:
                    break
            kvm.tdp_mmu_init_child_sp(sp, iter)
            if kvm.tdp_mmu_split_huge_page(iter, sp, shared):
                continue
            sp = None
            break
        if ret:
            break
    if sp is not None:
        kvm.tdp_mmu_free_sp(sp)
    return ret


def kvm_tdp_mmu_try_split_huge_pages(kvm, slot, start: int, end: int, target_level: int,
                                     shared: bool) -> None:
    """tdp_mmu.c kvm_tdp_mmu_try_split_huge_pages (all blobs).

    On failure the root's reference is put here, as the C does when it
    leaves the root walk early.

    Confirmed: [R].
    """
    for root in for_each_valid_tdp_mmu_root_yield_safe(kvm, slot.as_id):
        r = kvm.tdp_mmu_split_huge_pages_root(root, start, end, target_level, shared)
        if r:
            kvm.kvm_tdp_mmu_put_root(root)
            break


# ---------------------------------------------------------------------------
# collapsible SPTEs (dirty logging turned off)
# ---------------------------------------------------------------------------

def zap_collapsible_spte_range(kvm, root, slot) -> None:
    """tdp_mmu.c zap_collapsible_spte_range (all blobs).

    Zaps (atomically, with a flush per zap) non-leaf SPTEs at 2M and 1G
    inside the slot whose region could be mapped huge
    (``kvm_mmu_max_mapping_level``); their children go through
    handle_removed_pt.  Zero entries may be skipped (the first test skips
    non-present ones).

    Confirmed: [R].
    """
    start = slot.base_gfn
    end = start + slot.npages
    for iter in for_each_tdp_pte_min_level(kvm, root, PG_LEVEL_2M, start, end, skip_zero=True):
        while True:     # retry:
            if kvm.tdp_mmu_iter_cond_resched(iter, False, True):
                break
            if iter.level > KVM_MAX_HUGEPAGE_LEVEL or not kvm.is_shadow_present_pte(iter.old_spte):
                break
            if kvm.is_last_spte(iter.old_spte, iter.level):
                break
            if iter.gfn < start or iter.gfn >= end:
                break
            max_mapping_level = kvm.kvm_mmu_max_mapping_level(slot, iter.gfn, PG_LEVEL_NUM)
            if max_mapping_level < iter.level:
                break
            if kvm.tdp_mmu_zap_spte_atomic(iter):
                continue
            break


def kvm_tdp_mmu_zap_collapsible_sptes(kvm, slot) -> None:
    """tdp_mmu.c kvm_tdp_mmu_zap_collapsible_sptes (all blobs).

    Confirmed: [R].
    """
    for root in for_each_valid_tdp_mmu_root_yield_safe(kvm, slot.as_id):
        kvm.zap_collapsible_spte_range(root, slot)


# ---------------------------------------------------------------------------
# walks without mmu_lock (fast page fault, MMIO checks)
# ---------------------------------------------------------------------------

def kvm_tdp_mmu_get_walk(kvm, vcpu, addr: int, sptes: dict) -> tuple[int, int]:
    """tdp_mmu.c kvm_tdp_mmu_get_walk (all blobs) -> ``(leaf level or -1, root level)``.

    ``sptes`` (level -> SPTE) is filled as the C array; ``*root_level`` is
    returned as the second element.  Visits zero entries.

    Confirmed: [R].
    """
    gfn = addr >> PAGE_SHIFT
    leaf = -1
    root_level = vcpu.arch.mmu.root_level
    for iter in for_each_tdp_pte(kvm, vcpu.arch.mmu.root, gfn, gfn + 1):
        leaf = iter.level
        sptes[leaf] = iter.old_spte
    return leaf, root_level


def kvm_tdp_mmu_fast_pf_get_last_sptep(kvm, vcpu, addr: int):
    """tdp_mmu.c kvm_tdp_mmu_fast_pf_get_last_sptep (all blobs) -> ``(sptep, spte)``.

    The last SPTE on the walk to ``addr`` (possibly not present); the C
    returns the pointer and writes the value through ``u64 *spte``.
    Visits zero entries.

    Confirmed: [R].
    """
    gfn = addr >> PAGE_SHIFT
    sptep = None
    spte = 0
    for iter in for_each_tdp_pte(kvm, vcpu.arch.mmu.root, gfn, gfn + 1):
        spte = iter.old_spte
        sptep = iter.sptep
    return sptep, spte


_ALL_BLOBS = (wrprot_gfn_range, kvm_tdp_mmu_wrprot_slot, write_protect_gfn,
              kvm_tdp_mmu_write_protect_gfn, clear_dirty_gfn_range, kvm_tdp_mmu_clear_dirty_slot,
              kvm_tdp_mmu_clear_dirty_pt_masked, tdp_mmu_alloc_sp_for_split,
              tdp_mmu_split_huge_pages_root, kvm_tdp_mmu_try_split_huge_pages,
              zap_collapsible_spte_range, kvm_tdp_mmu_zap_collapsible_sptes, kvm_tdp_mmu_get_walk,
              kvm_tdp_mmu_fast_pf_get_last_sptep)

MODEL_TABLE = (
    tuple(Version(TDP_MMU_C, f.__name__, f) for f in _ALL_BLOBS)
    + (
        Version(TDP_MMU_C, "clear_dirty_pt_masked", clear_dirty_pt_masked, (BASE,)),
        Version(TDP_MMU_C, "clear_dirty_pt_masked", clear_dirty_pt_masked_no_dirty_mark,
                (AFTER_2, AFTER_3)),
    )
)
