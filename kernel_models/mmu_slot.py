"""arch/x86/kvm/mmu/mmu.c, slot-wide work and hugepage levels.

Dirty logging, hugepage recovery (collapsible zap), eager split, and the
level choice they share with the fault paths (``kvm_mmu_hugepage_adjust``).

Part of the mmu.c model (see ``mmu.py`` for the blobs and abstractions).
Every body here is the same in the four mmu.c blobs of the series (the
series changes only the rmap-level callees ``__rmap_clear_dirty`` and
``mmu_spte_update``); read in the stored v6.9-rc mmu.c (index copy 23785373).
Results that C drops (``kvm_mmu_slot_remove_write_access`` ignores the walk's
flush; the caller flushes the memslot) are dropped here too.

Module-parameter stand-ins read with defaults: ``kvm.manual_dirty_log_init_set``
(KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET, off) and
``kvm.eager_page_split`` (on, the kernel default).
"""

from __future__ import annotations

from kernel_models.kvm_main import KVM_PAGES_PER_HPAGE, PG_LEVEL_1G, PG_LEVEL_2M, PG_LEVEL_4K
from kernel_models.mmu_fault import KVM_MAX_HUGEPAGE_LEVEL, PG_LEVEL_NUM, gfn_round_for_level
from kernel_models.mmu_internal import SPTE_ENT_PER_PAGE
from kernel_models.mmu_rmap import for_each_rmap_spte, highest_bit, lowest_bit
from kernel_models.registry import MMU_C, Version


def kvm_mmu_write_protect_pt_masked(kvm, slot, gfn_offset: int, mask: int) -> None:
    """mmu.c kvm_mmu_write_protect_pt_masked (all blobs) (the rmap result is not used, as in C)."""
    if kvm.tdp_mmu_enabled:
        kvm.kvm_tdp_mmu_clear_dirty_pt_masked(slot, slot.base_gfn + gfn_offset, mask, True)
    if not kvm.kvm_memslots_have_rmaps():
        return
    while mask:
        rmap_head = kvm.gfn_to_rmap(slot.base_gfn + gfn_offset + lowest_bit(mask), PG_LEVEL_4K, slot)
        kvm.rmap_write_protect(rmap_head, False)
        mask &= mask - 1


def kvm_mmu_clear_dirty_pt_masked(kvm, slot, gfn_offset: int, mask: int) -> None:
    """mmu.c kvm_mmu_clear_dirty_pt_masked (all blobs) (PML): clear D, or W where D is unusable."""
    if kvm.tdp_mmu_enabled:
        kvm.kvm_tdp_mmu_clear_dirty_pt_masked(slot, slot.base_gfn + gfn_offset, mask, False)
    if not kvm.kvm_memslots_have_rmaps():
        return
    while mask:
        rmap_head = kvm.gfn_to_rmap(slot.base_gfn + gfn_offset + lowest_bit(mask), PG_LEVEL_4K, slot)
        kvm.__rmap_clear_dirty(rmap_head, slot)
        mask &= mask - 1


def align_up_2m(gfn: int) -> int:
    """ALIGN(gfn << PAGE_SHIFT, PMD_SIZE) in gfn units: round up to a 2M boundary."""
    pages = KVM_PAGES_PER_HPAGE(PG_LEVEL_2M)
    return (gfn + pages - 1) & -pages


def kvm_arch_mmu_enable_log_dirty_pt_masked(kvm, slot, gfn_offset: int, mask: int) -> None:
    """mmu.c kvm_arch_mmu_enable_log_dirty_pt_masked (all blobs) (dirty log get/clear, ring reset).

    With "manual protect + initially all set" (``kvm.manual_dirty_log_init_set``)
    huge pages are split (``kvm.eager_page_split``) and write-protected first.
    PML (``kvm.cpu_dirty_log_size``) picks D-clearing over write-protection.
    """
    if getattr(kvm, "manual_dirty_log_init_set", False):
        start = slot.base_gfn + gfn_offset + lowest_bit(mask)
        end = slot.base_gfn + gfn_offset + highest_bit(mask)
        if getattr(kvm, "eager_page_split", True):
            kvm.kvm_mmu_try_split_huge_pages(slot, start, end + 1, PG_LEVEL_4K)
        kvm.kvm_mmu_slot_gfn_write_protect(slot, start, PG_LEVEL_2M)
        # "Cross two large pages?": C compares ALIGN(start << PAGE_SHIFT, PMD_SIZE)
        # with ALIGN(end << PAGE_SHIFT, PMD_SIZE), i.e. both rounded *up* to 2M.
        if align_up_2m(start) != align_up_2m(end):
            kvm.kvm_mmu_slot_gfn_write_protect(slot, end, PG_LEVEL_2M)
    if kvm.cpu_dirty_log_size:
        kvm.kvm_mmu_clear_dirty_pt_masked(slot, gfn_offset, mask)
    else:
        kvm.kvm_mmu_write_protect_pt_masked(slot, gfn_offset, mask)


def kvm_mmu_slot_gfn_write_protect(kvm, slot, gfn: int, min_level: int) -> bool:
    """mmu.c kvm_mmu_slot_gfn_write_protect (all blobs) -> something was write-protected."""
    write_protected = False
    if kvm.kvm_memslots_have_rmaps():
        for level in range(min_level, KVM_MAX_HUGEPAGE_LEVEL + 1):
            rmap_head = kvm.gfn_to_rmap(gfn, level, slot)
            write_protected |= kvm.rmap_write_protect(rmap_head, True)
    if kvm.tdp_mmu_enabled:
        write_protected |= kvm.kvm_tdp_mmu_write_protect_gfn(slot, gfn, min_level)
    return write_protected


def slot_rmap_write_protect(kvm, rmap_head: list, slot) -> bool:
    """mmu.c slot_rmap_write_protect (all blobs)."""
    return kvm.rmap_write_protect(rmap_head, False)


def kvm_mmu_slot_remove_write_access(kvm, memslot, start_level: int) -> None:
    """mmu.c kvm_mmu_slot_remove_write_access (all blobs) (the caller flushes the memslot)."""
    if kvm.kvm_memslots_have_rmaps():
        kvm.walk_slot_rmaps(memslot, "slot_rmap_write_protect", start_level, KVM_MAX_HUGEPAGE_LEVEL, False)
    if kvm.tdp_mmu_enabled:
        kvm.kvm_tdp_mmu_wrprot_slot(memslot, start_level)


def kvm_mmu_slot_leaf_clear_dirty(kvm, memslot) -> None:
    """mmu.c kvm_mmu_slot_leaf_clear_dirty (all blobs): 4K rmaps only (the caller flushes)."""
    if kvm.kvm_memslots_have_rmaps():
        kvm.walk_slot_rmaps(memslot, "__rmap_clear_dirty", PG_LEVEL_4K, PG_LEVEL_4K, False)
    if kvm.tdp_mmu_enabled:
        kvm.kvm_tdp_mmu_clear_dirty_slot(memslot)


def kvm_mmu_zap_collapsible_spte(kvm, rmap_head: list, slot) -> bool:
    """mmu.c kvm_mmu_zap_collapsible_spte (all blobs): zap direct SPTEs that could be mapped huger."""
    need_tlb_flush = False
    restart = True
    while restart:
        restart = False
        for sptep in for_each_rmap_spte(kvm, rmap_head):
            sp = kvm.sptep_to_sp(sptep)
            if sp.role.direct and sp.role.level < kvm.kvm_mmu_max_mapping_level(slot, sp.gfn, PG_LEVEL_NUM):
                kvm.kvm_zap_one_rmap_spte(rmap_head, sptep)
                if kvm.kvm_available_flush_remote_tlbs_range():
                    kvm.kvm_flush_remote_tlbs_sptep(sptep)
                else:
                    need_tlb_flush = True
                restart = True
                break
    return need_tlb_flush


def kvm_rmap_zap_collapsible_sptes(kvm, slot) -> None:
    """mmu.c kvm_rmap_zap_collapsible_sptes (all blobs): 4K..2M rmaps, one memslot flush."""
    if kvm.walk_slot_rmaps(slot, "kvm_mmu_zap_collapsible_spte", PG_LEVEL_4K, KVM_MAX_HUGEPAGE_LEVEL - 1, True):
        kvm.kvm_flush_remote_tlbs_memslot(slot)


def kvm_mmu_zap_collapsible_sptes(kvm, slot) -> None:
    """mmu.c kvm_mmu_zap_collapsible_sptes (all blobs) (dirty logging disabled)."""
    if kvm.kvm_memslots_have_rmaps():
        kvm.kvm_rmap_zap_collapsible_sptes(slot)
    if kvm.tdp_mmu_enabled:
        kvm.kvm_tdp_mmu_zap_collapsible_sptes(slot)


def shadow_mmu_get_sp_for_split(kvm, huge_sptep):
    """mmu.c shadow_mmu_get_sp_for_split (all blobs): a direct child page for the huge region."""
    huge_sp = kvm.sptep_to_sp(huge_sptep)
    gfn = kvm.kvm_mmu_page_get_gfn(huge_sp, huge_sptep.index)
    access = kvm.kvm_mmu_page_get_access(huge_sp, huge_sptep.index)
    role = kvm.kvm_mmu_child_role(huge_sptep, True, access)
    return kvm.__kvm_mmu_get_shadow_page(None, None, gfn, role)


def shadow_mmu_split_huge_page(kvm, slot, huge_sptep) -> None:
    """mmu.c shadow_mmu_split_huge_page (all blobs): fill the child, then link it over the huge
    SPTE (``__link_shadow_page`` -> ``drop_large_spte`` -> ``drop_spte``)."""
    huge_spte = huge_sptep.get()
    flush = False
    sp = kvm.shadow_mmu_get_sp_for_split(huge_sptep)
    for index in range(SPTE_ENT_PER_PAGE):
        sptep = sp.sptep(index)
        gfn = kvm.kvm_mmu_page_get_gfn(sp, index)
        if kvm.is_shadow_present_pte(sptep.get()):
            flush |= not kvm.is_last_spte(sptep.get(), sp.role.level)
            continue
        spte = kvm.make_huge_page_split_spte(huge_spte, sp.role, index)
        kvm.mmu_spte_set(sptep, spte)
        kvm.__rmap_add(None, slot, sptep, gfn, sp.role.access)
    kvm.__link_shadow_page(None, huge_sptep, sp, flush)


def shadow_mmu_try_split_huge_page(kvm, slot, huge_sptep) -> int:
    """mmu.c shadow_mmu_try_split_huge_page (all blobs) (caches and page limit always suffice)."""
    kvm.shadow_mmu_split_huge_page(slot, huge_sptep)
    return 0


def shadow_mmu_try_split_huge_pages(kvm, rmap_head: list, slot) -> bool:
    """mmu.c shadow_mmu_try_split_huge_pages (all blobs): nested huge SPTEs only."""
    restart = True
    while restart:
        restart = False
        for huge_sptep in for_each_rmap_spte(kvm, rmap_head):
            sp = kvm.sptep_to_sp(huge_sptep)
            if kvm.WARN_ON_ONCE(not sp.role.guest_mode, "split: rmap page not nested"):
                continue
            if kvm.WARN_ON_ONCE(not kvm.is_large_pte(huge_sptep.get()), "split: non-leaf in rmap"):
                continue
            if kvm.WARN_ON_ONCE(sp.unsync, "split: unsync page above 4K"):
                continue
            if sp.role.invalid:
                continue
            r = kvm.shadow_mmu_try_split_huge_page(slot, huge_sptep)
            if not r:
                restart = True
                break
            break
    return False


def kvm_shadow_mmu_try_split_huge_pages(kvm, slot, start: int, end: int, target_level: int) -> None:
    """mmu.c kvm_shadow_mmu_try_split_huge_pages (all blobs): from 1G down to above target_level."""
    for level in range(KVM_MAX_HUGEPAGE_LEVEL, target_level, -1):
        kvm.__walk_slot_rmaps(slot, "shadow_mmu_try_split_huge_pages", level, level, start, end - 1, True, False)


def kvm_mmu_try_split_huge_pages(kvm, memslot, start: int, end: int, target_level: int) -> None:
    """mmu.c kvm_mmu_try_split_huge_pages (all blobs) (TDP MMU only; no flush needed)."""
    if not kvm.tdp_mmu_enabled:
        return
    if kvm.kvm_memslots_have_rmaps():
        kvm.kvm_shadow_mmu_try_split_huge_pages(memslot, start, end, target_level)
    kvm.kvm_tdp_mmu_try_split_huge_pages(memslot, start, end, target_level, False)


def kvm_mmu_slot_try_split_huge_pages(kvm, memslot, target_level: int) -> None:
    """mmu.c kvm_mmu_slot_try_split_huge_pages (all blobs): the whole slot, TDP side shared."""
    start = memslot.base_gfn
    end = start + memslot.npages
    if not kvm.tdp_mmu_enabled:
        return
    if kvm.kvm_memslots_have_rmaps():
        kvm.kvm_shadow_mmu_try_split_huge_pages(memslot, start, end, target_level)
    kvm.kvm_tdp_mmu_try_split_huge_pages(memslot, start, end, target_level, True)


# -- hugepage level -------------------------------------------------------------

def kvm_lpage_disallowed(kvm, slot, gfn: int, level: int) -> bool:
    """lpage_info_slot(gfn, slot, level)->disallow_lpage != 0, derived.

    The kernel counts: a huge region that sticks out of the memslot, and
    every indirect 4K shadow page inside it (kvm_mmu_gfn_disallow_lpage from
    account_shadowed), and every write-tracked gfn inside it (from
    __kvm_write_track_add_gfn, page_track.c f6448284c18e).  Mixed memory
    attributes are not modelled.
    """
    base = gfn_round_for_level(gfn, level)
    pages = KVM_PAGES_PER_HPAGE(level)
    if base < slot.base_gfn or base + pages > slot.base_gfn + slot.npages:
        return True
    if any(count and base <= slot.base_gfn + index < base + pages
           for index, count in slot.gfn_write_track.items()):
        return True     # __kvm_write_track_add_gfn's kvm_mmu_gfn_disallow_lpage (page_track.py)
    return any(not sp.role.direct and sp.role.level == PG_LEVEL_4K and base <= sp.gfn < base + pages
               and not kvm.is_obsolete_sp(sp) for sp in kvm.active_mmu_pages)


def host_pfn_mapping_level(kvm, gfn: int, slot) -> int:
    """mmu.c host_pfn_mapping_level (all blobs), reduced: 2M when the host maps the whole
    aligned region to consecutive pfns from a 2M-aligned pfn with one protection, else 4K.
    (A host huge page has one protection: a COW or KSM change to part of it splits it.)"""
    base = gfn_round_for_level(gfn, PG_LEVEL_2M)
    pages = KVM_PAGES_PER_HPAGE(PG_LEVEL_2M)
    first = kvm.host.get(base)
    if first is None or first[0] % pages:
        return PG_LEVEL_4K
    for i in range(pages):
        entry = kvm.host.get(base + i)
        if entry is None or entry[0] != first[0] + i or entry[1] != first[1]:
            return PG_LEVEL_4K
    return PG_LEVEL_2M


def __kvm_mmu_max_mapping_level(kvm, slot, gfn: int, max_level: int, is_private: bool) -> int:
    """mmu.c __kvm_mmu_max_mapping_level (all blobs) (max_huge_page_level = 1G, EPT/NPT)."""
    max_level = min(max_level, PG_LEVEL_1G)
    while max_level > PG_LEVEL_4K:
        if not kvm.kvm_lpage_disallowed(slot, gfn, max_level):
            break
        max_level -= 1
    if is_private:
        return max_level
    if max_level == PG_LEVEL_4K:
        return PG_LEVEL_4K
    host_level = kvm.host_pfn_mapping_level(gfn, slot)
    return min(host_level, max_level)


def kvm_mmu_max_mapping_level(kvm, slot, gfn: int, max_level: int) -> int:
    """mmu.c kvm_mmu_max_mapping_level (all blobs) (no private memory)."""
    return kvm.__kvm_mmu_max_mapping_level(slot, gfn, max_level, False)


def kvm_mmu_hugepage_adjust(kvm, vcpu, fault) -> None:
    """mmu.c kvm_mmu_hugepage_adjust (all blobs); also used by the TDP MMU's map path."""
    fault.huge_page_disallowed = False      # exec && nx_huge_page_workaround: workaround off
    if fault.max_level == PG_LEVEL_4K:
        return
    if kvm.is_error_noslot_pfn(fault.pfn):
        return
    if kvm.kvm_slot_dirty_track_enabled(fault.slot):
        return
    fault.req_level = kvm.__kvm_mmu_max_mapping_level(fault.slot, fault.gfn, fault.max_level, False)
    if fault.req_level == PG_LEVEL_4K or fault.huge_page_disallowed:
        return
    fault.goal_level = fault.req_level
    mask = KVM_PAGES_PER_HPAGE(fault.goal_level) - 1
    fault.pfn &= ~mask


def disallowed_hugepage_adjust(kvm, fault, spte: int, cur_level: int) -> None:
    """mmu.c disallowed_hugepage_adjust (all blobs): only acts for NX-split pages (never set here)."""
    if (cur_level > PG_LEVEL_4K and cur_level == fault.goal_level and kvm.is_shadow_present_pte(spte)
            and not kvm.is_large_pte(spte) and kvm.spte_to_child_sp(spte).nx_huge_page_disallowed):
        page_mask = KVM_PAGES_PER_HPAGE(cur_level) - KVM_PAGES_PER_HPAGE(cur_level - 1)
        fault.pfn |= fault.gfn & page_mask
        fault.goal_level -= 1


_ALL_BLOBS = (kvm_mmu_write_protect_pt_masked, kvm_mmu_clear_dirty_pt_masked,
              kvm_arch_mmu_enable_log_dirty_pt_masked, kvm_mmu_slot_gfn_write_protect,
              slot_rmap_write_protect, kvm_mmu_slot_remove_write_access,
              kvm_mmu_slot_leaf_clear_dirty, kvm_mmu_zap_collapsible_spte,
              kvm_rmap_zap_collapsible_sptes, kvm_mmu_zap_collapsible_sptes,
              shadow_mmu_get_sp_for_split, shadow_mmu_split_huge_page,
              shadow_mmu_try_split_huge_page, shadow_mmu_try_split_huge_pages,
              kvm_shadow_mmu_try_split_huge_pages, kvm_mmu_try_split_huge_pages,
              kvm_mmu_slot_try_split_huge_pages, kvm_lpage_disallowed, host_pfn_mapping_level,
              __kvm_mmu_max_mapping_level, kvm_mmu_max_mapping_level, kvm_mmu_hugepage_adjust,
              disallowed_hugepage_adjust)

MODEL_TABLE = tuple(Version(MMU_C, f.__name__, f) for f in _ALL_BLOBS)
