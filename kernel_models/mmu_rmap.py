"""arch/x86/kvm/mmu/mmu.c, rmaps: who maps a gfn, and the walks over them.

Part of the mmu.c model (see ``mmu.py`` for the blobs and abstractions).
Every body here is the same in the four mmu.c blobs of the series; read in
the stored v6.9-rc mmu.c (index copy 23785373).

Reduction: an rmap head is a Python list in ``slot.rmap`` keyed by (level,
level-aligned gfn); ``pte_list_desc`` chains are not modelled.  The walks
(``for_each_rmap_spte``, ``for_each_slot_rmap_range``) are plain generators
standing for the C macros; handlers are passed by C name and called through
the VM, so a handler's version follows the version set.
"""

from __future__ import annotations

from kernel_models.kvm_main import PG_LEVEL_4K
from kernel_models.mmu_fault import KVM_MAX_HUGEPAGE_LEVEL, RMAP_RECYCLE_THRESHOLD, gfn_round_for_level
from kernel_models.registry import MMU_C, MMU_INTERNAL_H, Version


def gfn_to_rmap(kvm, gfn: int, level: int, slot) -> list:
    """mmu.c gfn_to_rmap (all blobs): the rmap head (a list) of ``gfn`` at ``level`` in ``slot``."""
    return slot.rmap.setdefault((level, gfn_round_for_level(gfn, level)), [])


def pte_list_add(kvm, cache, spte, rmap_head: list) -> int:
    """mmu.c pte_list_add (all blobs) -> entries already on the list (not counting the new one)."""
    count = len(rmap_head)
    rmap_head.append(spte)
    return count


def pte_list_remove(kvm, spte, rmap_head: list) -> None:
    """mmu.c pte_list_remove (all blobs): data-corruption BUG on an empty list or a missing entry."""
    if kvm.KVM_BUG_ON_DATA_CORRUPTION(not rmap_head, "pte_list_remove: empty rmap"):
        return
    if kvm.KVM_BUG_ON_DATA_CORRUPTION(spte not in rmap_head, f"pte_list_remove: {spte!r} not in rmap"):
        return
    rmap_head.remove(spte)


def for_each_rmap_spte(kvm, rmap_head: list):
    """mmu.c for_each_rmap_spte over a snapshot; rmap_get_first/next BUG on non-present."""
    for sptep in list(rmap_head):
        if not kvm.is_shadow_present_pte(sptep.get()):
            kvm.BUG(f"rmap_get_first/next: {sptep!r} not present")
        yield sptep


def for_each_slot_rmap_range(slot, start_level: int, end_level: int, start_gfn: int, end_gfn: int):
    """mmu.c for_each_slot_rmap_range -> (gfn, level, rmap_head), non-empty rmaps only.

    The C walk also hands the first rmap of each level to the handler when it
    is empty; every handler does nothing on an empty rmap, so skipping it
    changes no effect.  ``gfn`` is the iterator's (start gfn plus whole steps).
    """
    for level in range(start_level, end_level + 1):
        first = gfn_round_for_level(start_gfn, level)
        last = gfn_round_for_level(end_gfn, level)
        for key in sorted(key for key in slot.rmap if key[0] == level and first <= key[1] <= last):
            if slot.rmap[key]:
                yield start_gfn + (key[1] - first), level, slot.rmap[key]


def rmap_remove(kvm, spte) -> None:
    """mmu.c rmap_remove (all blobs): drop ``spte`` from the rmap of the gfn it maps."""
    sp = kvm.sptep_to_sp(spte)
    gfn = kvm.kvm_mmu_page_get_gfn(sp, spte.index)
    slot = kvm.gfn_to_memslot(gfn)
    rmap_head = kvm.gfn_to_rmap(gfn, sp.role.level, slot)
    kvm.pte_list_remove(spte, rmap_head)


def __rmap_add(kvm, cache, slot, spte, gfn: int, access: int) -> None:
    """mmu.c __rmap_add (all blobs): record, count the page, and recycle an overlong rmap."""
    sp = kvm.sptep_to_sp(spte)
    kvm.kvm_mmu_page_set_translation(sp, spte.index, gfn, access)
    kvm.kvm_update_page_stats(sp.role.level, 1)
    rmap_head = kvm.gfn_to_rmap(gfn, sp.role.level, slot)
    rmap_count = kvm.pte_list_add(cache, spte, rmap_head)
    if rmap_count > RMAP_RECYCLE_THRESHOLD:
        kvm.kvm_zap_all_rmap_sptes(rmap_head)
        kvm.kvm_flush_remote_tlbs_gfn(gfn, sp.role.level)


def mmu_page_add_parent_pte(kvm, cache, sp, parent_pte) -> None:
    """mmu.c mmu_page_add_parent_pte (all blobs)."""
    if parent_pte is None:
        return
    kvm.pte_list_add(cache, parent_pte, sp.parent_ptes)


def drop_parent_pte(kvm, sp, parent_pte) -> None:
    """mmu.c drop_parent_pte (all blobs): unlink, clear without A/D tracking."""
    kvm.pte_list_remove(parent_pte, sp.parent_ptes)
    kvm.mmu_spte_clear_no_track(parent_pte)


def kvm_memslots_have_rmaps(kvm) -> bool:
    """mmu.h kvm_memslots_have_rmaps: shadow MMU in use, or a shadow root was
    allocated (nested; ``kvm.shadow_root_allocated``).

    mmu.h is not changed by the series and has no blob chain; like kvm_main.py
    does for mmu.h helpers, the row uses the unchanged mmu_internal.h
    pseudo-file.  Body from KERNEL-FACTS (not read in source here).
    """
    return not kvm.tdp_mmu_enabled or getattr(kvm, "shadow_root_allocated", False)


def kvm_handle_gfn_range(kvm, range_, handler: str) -> bool:
    """mmu.c kvm_handle_gfn_range (all blobs): run the rmap handler (by C name) at 4K..1G."""
    ret = False
    for gfn, level, rmap_head in for_each_slot_rmap_range(range_.slot, PG_LEVEL_4K, KVM_MAX_HUGEPAGE_LEVEL,
                                                          range_.start, range_.end - 1):
        ret |= getattr(kvm, handler)(rmap_head, range_.slot, gfn, level, range_.arg)
    return ret


def __walk_slot_rmaps(kvm, slot, fn: str, start_level: int, end_level: int, start_gfn: int,
                      end_gfn: int, flush_on_yield: bool, flush: bool) -> bool:
    """mmu.c __walk_slot_rmaps (all blobs): OR the handler's results (never yields here)."""
    for _, _, rmap_head in for_each_slot_rmap_range(slot, start_level, end_level, start_gfn, end_gfn):
        flush |= getattr(kvm, fn)(rmap_head, slot)
    return flush


def walk_slot_rmaps(kvm, slot, fn: str, start_level: int, end_level: int, flush_on_yield: bool) -> bool:
    """mmu.c walk_slot_rmaps (all blobs): the whole slot."""
    return kvm.__walk_slot_rmaps(slot, fn, start_level, end_level, slot.base_gfn,
                                 slot.base_gfn + slot.npages - 1, flush_on_yield, False)


def lowest_bit(mask: int) -> int:
    """__ffs: index of the lowest set bit."""
    return (mask & -mask).bit_length() - 1


def highest_bit(mask: int) -> int:
    """__fls: index of the highest set bit."""
    return mask.bit_length() - 1


_ALL_BLOBS = (gfn_to_rmap, pte_list_add, pte_list_remove, rmap_remove, __rmap_add,
              mmu_page_add_parent_pte, drop_parent_pte, kvm_handle_gfn_range, __walk_slot_rmaps,
              walk_slot_rmaps)

MODEL_TABLE = (tuple(Version(MMU_C, f.__name__, f) for f in _ALL_BLOBS)
               + (Version(MMU_INTERNAL_H, "kvm_memslots_have_rmaps", kvm_memslots_have_rmaps),))
