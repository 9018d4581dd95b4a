"""The TDP MMU (arch/x86/kvm/mmu/tdp_mmu.c), part 2: the mmu_notifier handlers.

Unmap (``kvm_tdp_mmu_unmap_gfn_range``), aging (``kvm_tdp_mmu_age_gfn_range``,
``kvm_tdp_mmu_test_age_gfn``) and change_pte (``kvm_tdp_mmu_set_spte_gfn``),
with the gfn-handler walker they share.  Split from ``tdp_mmu.py`` for size;
its module docstring states the abstractions and the sources (all bodies read
in torvalds/linux b1a8d2b02b69, index id 24362102; the 2/4 change to
``age_gfn_range`` is the hunk of rfc-2-of-4.patch).

Notifier handlers return "flush needed" (unmap, change_pte) or "young"
(aging), exactly as in C; the generic notifier code, not modelled here,
acts on that value.

The "Confirmed: [R]" tags are explained in ``tdp_mmu.py``.
"""

from __future__ import annotations

from kernel_models.kvm_main import PG_LEVEL_4K
from kernel_models.registry import TDP_MMU_C, Version
from kernel_models.tdp_mmu_iter import (__for_each_tdp_mmu_root_yield_safe, for_each_tdp_mmu_root,
                                        tdp_root_for_each_leaf_pte)

BASE = "d078157e62aa"
AFTER_2 = "5866a664f46e"
AFTER_3 = "340d5af454c6"


def kvm_tdp_mmu_unmap_gfn_range(kvm, range, flush: bool) -> bool:
    """tdp_mmu.c kvm_tdp_mmu_unmap_gfn_range (all blobs): zap leafs in every root
    of the slot's address space, invalid roots included; may yield iff
    ``range.may_block``.

    Confirmed: [R].
    """
    for root in __for_each_tdp_mmu_root_yield_safe(kvm, range.slot.as_id, False):
        flush = kvm.tdp_mmu_zap_leafs(root, range.start, range.end, range.may_block, flush)
    return flush


def kvm_tdp_mmu_handle_gfn(kvm, range, handler) -> bool:
    """tdp_mmu.c kvm_tdp_mmu_handle_gfn (all blobs): OR of ``handler`` over present leafs.

    ``handler`` is a VM-dispatched function (``kvm.age_gfn_range``...), so the
    body that holds in the VM's version set runs.  No yielding (C neither).

    Confirmed: [R].
    """
    ret = False
    for root in for_each_tdp_mmu_root(kvm, range.slot.as_id):
        for iter in tdp_root_for_each_leaf_pte(kvm, root, range.start, range.end):
            ret |= handler(iter, range)
    return ret


# age_gfn_range: 2/4 deletes one statement before access tracking, taken as a
# small function.

def mark_dirty_if_writable(kvm, iter) -> None:
    """age_gfn_range at base: a writable SPTE marks its pfn dirty before access
    tracking clears W.  Confirmed: [R]."""
    if kvm.is_writable_pte(iter.old_spte):
        kvm.kvm_set_pfn_dirty(kvm.spte_to_pfn(iter.old_spte))


def nothing_before_access_track(kvm, iter) -> None:
    """age_gfn_range after RFC 2/4: the dirty mark is gone."""


def age_gfn_range_body(kvm, before_access_track, iter, range) -> bool:
    """The statements of tdp_mmu.c age_gfn_range shared by all blobs -> "was young".

    A/D SPTEs lose A (``tdp_mmu_clear_spte_bits``); others are marked for
    access tracking.  No handle_changed_spte, no flush.  Confirmed: [R].
    """
    if not kvm.is_accessed_spte(iter.old_spte):
        return False
    if kvm.spte_ad_enabled(iter.old_spte):
        iter.old_spte = kvm.tdp_mmu_clear_spte_bits(iter.sptep, iter.old_spte,
                                                    kvm.shadow_accessed_mask, iter.level)
        new_spte = iter.old_spte & ~kvm.shadow_accessed_mask
    else:
        before_access_track(kvm, iter)
        new_spte = kvm.mark_spte_for_access_track(iter.old_spte)
        iter.old_spte = kvm.kvm_tdp_mmu_write_spte(iter.sptep, iter.old_spte, new_spte, iter.level)
    return True


def age_gfn_range(kvm, iter, range) -> bool:
    """tdp_mmu.c age_gfn_range at base d078157e62aa -> "was young".

    Without A/D bits, a writable SPTE first marks its pfn dirty (W is lost
    with the access-track bits).  Confirmed: [R].
    """
    return age_gfn_range_body(kvm, mark_dirty_if_writable, iter, range)


def age_gfn_range_no_dirty_mark(kvm, iter, range) -> bool:
    """tdp_mmu.c age_gfn_range after RFC 2/4 (5866a664f46e, 340d5af454c6).

    The dirty mark before access tracking is gone: the folio was marked
    dirty when the writable SPTE was made.
    Confirmed: [R] for the shared lines; the change is the rfc-2-of-4.patch hunk [P2].
    """
    return age_gfn_range_body(kvm, nothing_before_access_track, iter, range)


def kvm_tdp_mmu_age_gfn_range(kvm, range) -> bool:
    """tdp_mmu.c kvm_tdp_mmu_age_gfn_range (all blobs).

    Confirmed: [R].
    """
    return kvm.kvm_tdp_mmu_handle_gfn(range, kvm.age_gfn_range)


def test_age_gfn(kvm, iter, range) -> bool:
    """tdp_mmu.c test_age_gfn (all blobs): accessed?  No writes.

    Confirmed: [R].
    """
    return kvm.is_accessed_spte(iter.old_spte)


def kvm_tdp_mmu_test_age_gfn(kvm, range) -> bool:
    """tdp_mmu.c kvm_tdp_mmu_test_age_gfn (all blobs).

    Confirmed: [R].
    """
    return kvm.kvm_tdp_mmu_handle_gfn(range, kvm.test_age_gfn)


def set_spte_gfn(kvm, iter, range) -> bool:
    """tdp_mmu.c set_spte_gfn (all blobs; change_pte, removed in v6.10) -> flush needed.

    ``range.arg`` is the new host PTE as ``(pfn, writable)``; the model's
    host has no huge PTEs, so ``pte_huge`` is false.  Zaps the 4K SPTE,
    then, for a read-only new PTE, installs a read-only SPTE for the new pfn.
    As in C the second set passes ``iter.old_spte``, which after the zap
    holds the *zapped* value, not 0: when that value had no volatile bits
    the store is plain and handle_changed_spte sees old leaf -> new leaf
    with another pfn (BUG).  The path is dead in the kernel because
    change_pte always follows an invalidation that zapped the SPTE.

    Confirmed: [R].
    """
    new_pfn, new_writable = range.arg
    kvm.WARN_ON_ONCE(range.start + 1 != range.end, "set_spte_gfn: range is not one page")
    if iter.level != PG_LEVEL_4K or not kvm.is_shadow_present_pte(iter.old_spte):
        return False
    kvm.tdp_mmu_iter_set_spte(iter, 0)
    if not new_writable:
        new_spte = kvm.kvm_mmu_changed_pte_notifier_make_spte(iter.old_spte, new_pfn)
        kvm.tdp_mmu_iter_set_spte(iter, new_spte)
    return True


def kvm_tdp_mmu_set_spte_gfn(kvm, range) -> bool:
    """tdp_mmu.c kvm_tdp_mmu_set_spte_gfn (all blobs) -> flush needed.

    Confirmed: [R].
    """
    return kvm.kvm_tdp_mmu_handle_gfn(range, kvm.set_spte_gfn)


_ALL_BLOBS = (kvm_tdp_mmu_unmap_gfn_range, kvm_tdp_mmu_handle_gfn, kvm_tdp_mmu_age_gfn_range,
              test_age_gfn, kvm_tdp_mmu_test_age_gfn, set_spte_gfn, kvm_tdp_mmu_set_spte_gfn)

MODEL_TABLE = (
    tuple(Version(TDP_MMU_C, f.__name__, f) for f in _ALL_BLOBS)
    + (
        Version(TDP_MMU_C, "age_gfn_range", age_gfn_range, (BASE,)),
        Version(TDP_MMU_C, "age_gfn_range", age_gfn_range_no_dirty_mark, (AFTER_2, AFTER_3)),
    )
)
