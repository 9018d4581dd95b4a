"""arch/x86/kvm/mmu/mmu.c: SPTE primitives, rmaps, zapping and the arch entry points.

The shadow page and page-fault half of mmu.c lives in ``mmu_fault.py``; its
``MODEL_TABLE`` is appended to this one (the registry loads this module only).

mmu.c blobs of the series (from the patches' index lines): e4cc7f764980
(base, and after RFC 1/4 which does not touch mmu.c), bd2240b94ff6 (after
2/4), 0a6c6619d213 (after 3/4), 77d1072b130d (after 4/4).  Bodies that
change: ``mmu_spte_update`` (4 versions), ``mmu_spte_clear_track_bits`` (2),
``mmu_spte_age`` (2), ``spte_wrprot_for_clear_dirty`` (base only) and
``__rmap_clear_dirty`` (2).  Everything else is one body for all four blobs.

Facts were read in the stored v6.9-rc mmu.c (index copy 23785373; every
pre-image of the RFC's mmu.c hunks matches it, see KERNEL-FACTS.md section 6)
and in the RFC patches themselves for the later blobs (rfc-2-of-4.patch, the
web copy of 3/4 ``000_e8ee204d4a7b7ba7.txt``, rfc-4-of-4.patch).  Each
docstring says what it rests on.

Abstractions (for all of mmu.c's models, here and in ``mmu_fault.py``):

- One thread.  Atomic exchanges, test-and-clear and cmpxchg leave memory as
  a plain store would; they differ only in the value they return.  Locks,
  yielding (``cond_resched_rwlock_write``, ``flush_on_yield``), RCU and the
  lockless-walk bracketing are left out, and mmu_notifier retry checks never
  fire.
- The shadow-page hash is reduced to ``kvm.active_mmu_pages`` (newest first,
  as list_add does): a lookup scans it for (gfn, role).
- rmaps are ``slot.rmap[(level, level-aligned gfn)]`` lists of SPTE pointers;
  ``pte_list_desc`` chains are not modelled (the order of a list is kept).
- No reserved-bit checks, no MMIO generation checks, no page limit or
  shrinker, no async page faults, no private memory, no Hyper-V ranged flush
  (``kvm_available_flush_remote_tlbs_range`` is false), no NX hugepage
  workaround or recovery, no APIC access page.
- "Refcount 0" in ``mmu_spte_clear_track_bits`` is modelled as: the page has
  no KVM reference (``kvm.page_refcount``) and the host maps no gfn to it
  (``kvm.host``); each host mapping counts as one reference.
- Left out: shadow paging roots, unsync-children walks beyond one level of
  bookkeeping (``mmu_zap_unsync_children`` zaps unsync children it can
  reach), write-flooding detection (``kvm_mmu_track_write``), INVLPG,
  ``kvm_mmu_zap_oldest_mmu_pages``.
"""

from __future__ import annotations

from kernel_models.kvm_main import KVM_PAGES_PER_HPAGE, PG_LEVEL_2M, PG_LEVEL_4K
from kernel_models.mmu_fault import (KVM_MAX_HUGEPAGE_LEVEL, PG_LEVEL_NUM, RMAP_RECYCLE_THRESHOLD,
                                     SPTE_ENT_PER_PAGE, gfn_round_for_level)
from kernel_models.mmu_fault import MODEL_TABLE as FAULT_MODEL_TABLE
from kernel_models.registry import MMU_C, Version
from kernel_models.spte import PT_WRITABLE_MASK, PT_WRITABLE_SHIFT

BASE = "e4cc7f764980"          # base, and after 1/4
AFTER_2 = "bd2240b94ff6"       # after 2/4: no folio dirty marking on zap/modify
AFTER_3 = "0a6c6619d213"       # after 3/4: mmu_spte_update no longer marks accessed
AFTER_4 = "77d1072b130d"       # after 4/4: clearing A no longer forces a flush

# kvm_mmu_reset_all_pte_masks: GENMASK_ULL(shadow_phys_bits - 1, PAGE_SHIFT), 46-bit host.
SHADOW_NONPRESENT_OR_RSVD_LOWER_GFN_MASK = ((1 << 46) - 1) & ~0xfff


def test_and_clear_bit(nr: int, sptep) -> bool:
    """bitops test_and_clear_bit on an SPTE: clear bit ``nr``, say whether it was set."""
    old = sptep.get()
    sptep.set(old & ~(1 << nr))
    return bool(old & (1 << nr))


def clear_bit(nr: int, sptep) -> None:
    """bitops clear_bit on an SPTE."""
    sptep.set(sptep.get() & ~(1 << nr))


def page_count(kvm, page: int) -> int:
    """page_count(page): KVM's references plus one per host mapping of the pfn."""
    host_maps = sum(1 for pfn, _ in kvm.host.values() if pfn == page)
    return kvm.page_refcount[page] + host_maps


# -- the SPTE store primitives (CONFIG_X86_64 forms) --------------------------

def __set_spte(kvm, sptep, spte: int) -> None:
    """mmu.c __set_spte: WRITE_ONCE."""
    sptep.set(spte)


def __update_clear_spte_fast(kvm, sptep, spte: int) -> None:
    """mmu.c __update_clear_spte_fast: WRITE_ONCE."""
    sptep.set(spte)


def __update_clear_spte_slow(kvm, sptep, spte: int) -> int:
    """mmu.c __update_clear_spte_slow: xchg, returns the value replaced."""
    return sptep.exchange(spte)


def __get_spte_lockless(kvm, sptep) -> int:
    """mmu.c __get_spte_lockless: READ_ONCE."""
    return sptep.get()


def mmu_spte_set(kvm, sptep, new_spte: int) -> None:
    """mmu.c mmu_spte_set: install over a non-present SPTE (all blobs; copy 23785373)."""
    kvm.WARN_ON_ONCE(kvm.is_shadow_present_pte(sptep.get()), "mmu_spte_set: SPTE already present")
    kvm.__set_spte(sptep, new_spte)


def mmu_spte_update_no_track(kvm, sptep, new_spte: int) -> int:
    """mmu.c mmu_spte_update_no_track -> old SPTE; no A/D marking, no flush.

    All blobs; read in copy 23785373.
    """
    old_spte = sptep.get()
    kvm.WARN_ON_ONCE(not kvm.is_shadow_present_pte(new_spte), "mmu_spte_update_no_track: new not present")
    kvm.check_spte_writable_invariants(new_spte)
    if not kvm.is_shadow_present_pte(old_spte):
        kvm.mmu_spte_set(sptep, new_spte)
        return old_spte
    if not kvm.spte_has_volatile_bits(old_spte):
        kvm.__update_clear_spte_fast(sptep, new_spte)
    else:
        old_spte = kvm.__update_clear_spte_slow(sptep, new_spte)
    kvm.WARN_ON_ONCE(kvm.spte_to_pfn(old_spte) != kvm.spte_to_pfn(new_spte), "mmu_spte_update_no_track: pfn changed")
    return old_spte


def mmu_spte_update(kvm, sptep, new_spte: int) -> bool:
    """mmu.c mmu_spte_update at e4cc7f764980 (base, after 1/4) -> flush needed.

    Flush when an MMU-writable SPTE loses W, when A is cleared (and mark the
    old pfn accessed), when D is cleared (and mark it dirty).  Copy 23785373.
    """
    flush = False
    old_spte = kvm.mmu_spte_update_no_track(sptep, new_spte)
    if not kvm.is_shadow_present_pte(old_spte):
        return False
    if kvm.is_mmu_writable_spte(old_spte) and not kvm.is_writable_pte(new_spte):
        flush = True
    if kvm.is_accessed_spte(old_spte) and not kvm.is_accessed_spte(new_spte):
        flush = True
        kvm.kvm_set_pfn_accessed(kvm.spte_to_pfn(old_spte))
    if kvm.is_dirty_spte(old_spte) and not kvm.is_dirty_spte(new_spte):
        flush = True
        kvm.kvm_set_pfn_dirty(kvm.spte_to_pfn(old_spte))
    return flush


def mmu_spte_update_without_dirty_mark(kvm, sptep, new_spte: int) -> bool:
    """mmu.c mmu_spte_update at bd2240b94ff6 (after 2/4): clearing D only flushes.

    rfc-2-of-4.patch, first mmu.c hunk.
    """
    flush = False
    old_spte = kvm.mmu_spte_update_no_track(sptep, new_spte)
    if not kvm.is_shadow_present_pte(old_spte):
        return False
    if kvm.is_mmu_writable_spte(old_spte) and not kvm.is_writable_pte(new_spte):
        flush = True
    if kvm.is_accessed_spte(old_spte) and not kvm.is_accessed_spte(new_spte):
        flush = True
        kvm.kvm_set_pfn_accessed(kvm.spte_to_pfn(old_spte))
    if kvm.is_dirty_spte(old_spte) and not kvm.is_dirty_spte(new_spte):
        flush = True
    return flush


def mmu_spte_update_without_accessed_mark(kvm, sptep, new_spte: int) -> bool:
    """mmu.c mmu_spte_update at 0a6c6619d213 (after 3/4): clearing A only flushes too.

    Web copy of 3/4 (000_e8ee204d4a7b7ba7.txt), mmu.c hunk.
    """
    flush = False
    old_spte = kvm.mmu_spte_update_no_track(sptep, new_spte)
    if not kvm.is_shadow_present_pte(old_spte):
        return False
    if kvm.is_mmu_writable_spte(old_spte) and not kvm.is_writable_pte(new_spte):
        flush = True
    if kvm.is_accessed_spte(old_spte) and not kvm.is_accessed_spte(new_spte):
        flush = True
    if kvm.is_dirty_spte(old_spte) and not kvm.is_dirty_spte(new_spte):
        flush = True
    return flush


def mmu_spte_update_wrprot_or_dirty_flush(kvm, sptep, new_spte: int) -> bool:
    """mmu.c mmu_spte_update at 77d1072b130d (after 4/4): flush only for wrprot or D cleared.

    rfc-4-of-4.patch: clearing the Accessed bit no longer forces a flush.
    """
    old_spte = kvm.mmu_spte_update_no_track(sptep, new_spte)
    if not kvm.is_shadow_present_pte(old_spte):
        return False
    return ((kvm.is_mmu_writable_spte(old_spte) and not kvm.is_writable_pte(new_spte))
            or (kvm.is_dirty_spte(old_spte) and not kvm.is_dirty_spte(new_spte)))


def mmu_spte_clear_track_bits(kvm, sptep) -> int:
    """mmu.c mmu_spte_clear_track_bits at e4cc7f764980 -> old SPTE; marks A and D.

    WARNs when the pfn has a struct page whose refcount is 0 (see the module
    docstring for how "refcount" is modelled).  Copy 23785373.
    """
    old_spte = sptep.get()
    level = kvm.sptep_to_sp(sptep).role.level
    if not kvm.is_shadow_present_pte(old_spte) or not kvm.spte_has_volatile_bits(old_spte):
        kvm.__update_clear_spte_fast(sptep, 0)
    else:
        old_spte = kvm.__update_clear_spte_slow(sptep, 0)
    if not kvm.is_shadow_present_pte(old_spte):
        return old_spte
    kvm.kvm_update_page_stats(level, -1)
    pfn = kvm.spte_to_pfn(old_spte)
    page = kvm.kvm_pfn_to_refcounted_page(pfn)
    kvm.WARN_ON_ONCE(page is not None and not page_count(kvm, page), "mmu_spte_clear_track_bits: page refcount is 0")
    if kvm.is_accessed_spte(old_spte):
        kvm.kvm_set_pfn_accessed(pfn)
    if kvm.is_dirty_spte(old_spte):
        kvm.kvm_set_pfn_dirty(pfn)
    return old_spte


def mmu_spte_clear_track_bits_without_dirty_mark(kvm, sptep) -> int:
    """mmu.c mmu_spte_clear_track_bits at bd2240b94ff6, 0a6c6619d213, 77d1072b130d.

    2/4 removed the dirty mark; the accessed mark stays (3/4 does not touch
    this function).  rfc-2-of-4.patch, second mmu.c hunk.
    """
    old_spte = sptep.get()
    level = kvm.sptep_to_sp(sptep).role.level
    if not kvm.is_shadow_present_pte(old_spte) or not kvm.spte_has_volatile_bits(old_spte):
        kvm.__update_clear_spte_fast(sptep, 0)
    else:
        old_spte = kvm.__update_clear_spte_slow(sptep, 0)
    if not kvm.is_shadow_present_pte(old_spte):
        return old_spte
    kvm.kvm_update_page_stats(level, -1)
    pfn = kvm.spte_to_pfn(old_spte)
    page = kvm.kvm_pfn_to_refcounted_page(pfn)
    kvm.WARN_ON_ONCE(page is not None and not page_count(kvm, page), "mmu_spte_clear_track_bits: page refcount is 0")
    if kvm.is_accessed_spte(old_spte):
        kvm.kvm_set_pfn_accessed(pfn)
    return old_spte


def mmu_spte_clear_no_track(kvm, sptep) -> None:
    """mmu.c mmu_spte_clear_no_track: store 0, no tracking (all blobs)."""
    kvm.__update_clear_spte_fast(sptep, 0)


def mmu_spte_get_lockless(kvm, sptep) -> int:
    """mmu.c mmu_spte_get_lockless (all blobs)."""
    return kvm.__get_spte_lockless(sptep)


def mmu_spte_age(kvm, sptep) -> bool:
    """mmu.c mmu_spte_age at e4cc7f764980 -> young; never flushes.

    A/D on: clear the A bit in place.  A/D off: mark the pfn dirty if the SPTE
    is writable, then access-track it.  Copy 23785373.
    """
    spte = kvm.mmu_spte_get_lockless(sptep)
    if not kvm.is_accessed_spte(spte):
        return False
    if kvm.spte_ad_enabled(spte):
        clear_bit((kvm.shadow_accessed_mask & -kvm.shadow_accessed_mask).bit_length() - 1, sptep)
    else:
        if kvm.is_writable_pte(spte):
            kvm.kvm_set_pfn_dirty(kvm.spte_to_pfn(spte))
        spte = kvm.mark_spte_for_access_track(spte)
        kvm.mmu_spte_update_no_track(sptep, spte)
    return True


def mmu_spte_age_without_dirty_mark(kvm, sptep) -> bool:
    """mmu.c mmu_spte_age at bd2240b94ff6 and later: no dirty mark before access tracking.

    rfc-2-of-4.patch, third mmu.c hunk.
    """
    spte = kvm.mmu_spte_get_lockless(sptep)
    if not kvm.is_accessed_spte(spte):
        return False
    if kvm.spte_ad_enabled(spte):
        clear_bit((kvm.shadow_accessed_mask & -kvm.shadow_accessed_mask).bit_length() - 1, sptep)
    else:
        spte = kvm.mark_spte_for_access_track(spte)
        kvm.mmu_spte_update_no_track(sptep, spte)
    return True


# -- rmaps ---------------------------------------------------------------------

def gfn_to_rmap(kvm, gfn: int, level: int, slot) -> list:
    """mmu.c gfn_to_rmap: the rmap head (a list) of ``gfn`` at ``level`` in ``slot``."""
    return slot.rmap.setdefault((level, gfn_round_for_level(gfn, level)), [])


def pte_list_add(kvm, cache, spte, rmap_head: list) -> int:
    """mmu.c pte_list_add -> entries already on the list (not counting the new one)."""
    count = len(rmap_head)
    rmap_head.append(spte)
    return count


def pte_list_remove(kvm, spte, rmap_head: list) -> None:
    """mmu.c pte_list_remove: data-corruption BUG on an empty list or a missing entry."""
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
    """mmu.c rmap_remove: drop ``spte`` from the rmap of the gfn it maps."""
    sp = kvm.sptep_to_sp(spte)
    gfn = kvm.kvm_mmu_page_get_gfn(sp, spte.index)
    slot = kvm.gfn_to_memslot(gfn)
    rmap_head = kvm.gfn_to_rmap(gfn, sp.role.level, slot)
    kvm.pte_list_remove(spte, rmap_head)


def __rmap_add(kvm, cache, slot, spte, gfn: int, access: int) -> None:
    """mmu.c __rmap_add: record, count the page, and recycle an overlong rmap."""
    sp = kvm.sptep_to_sp(spte)
    kvm.kvm_mmu_page_set_translation(sp, spte.index, gfn, access)
    kvm.kvm_update_page_stats(sp.role.level, 1)
    rmap_head = kvm.gfn_to_rmap(gfn, sp.role.level, slot)
    rmap_count = kvm.pte_list_add(cache, spte, rmap_head)
    if rmap_count > RMAP_RECYCLE_THRESHOLD:
        kvm.kvm_zap_all_rmap_sptes(rmap_head)
        kvm.kvm_flush_remote_tlbs_gfn(gfn, sp.role.level)


def kvm_flush_remote_tlbs_sptep(kvm, sptep) -> None:
    """mmu.c kvm_flush_remote_tlbs_sptep: flush the range the SPTE maps."""
    sp = kvm.sptep_to_sp(sptep)
    gfn = kvm.kvm_mmu_page_get_gfn(sp, sptep.index)
    kvm.kvm_flush_remote_tlbs_gfn(gfn, sp.role.level)


def kvm_available_flush_remote_tlbs_range(kvm) -> bool:
    """mmu.c kvm_available_flush_remote_tlbs_range: Hyper-V only, never here."""
    return False


def drop_spte(kvm, sptep) -> None:
    """mmu.c drop_spte: clear with A/D tracking, then leave the rmap."""
    old_spte = kvm.mmu_spte_clear_track_bits(sptep)
    if kvm.is_shadow_present_pte(old_spte):
        kvm.rmap_remove(sptep)


def drop_large_spte(kvm, sptep, flush: bool) -> None:
    """mmu.c drop_large_spte."""
    sp = kvm.sptep_to_sp(sptep)
    kvm.WARN_ON_ONCE(sp.role.level == PG_LEVEL_4K, "drop_large_spte: 4K SPTE")
    kvm.drop_spte(sptep)
    if flush:
        kvm.kvm_flush_remote_tlbs_sptep(sptep)


def mmu_page_add_parent_pte(kvm, cache, sp, parent_pte) -> None:
    """mmu.c mmu_page_add_parent_pte."""
    if parent_pte is None:
        return
    kvm.pte_list_add(cache, parent_pte, sp.parent_ptes)


def drop_parent_pte(kvm, sp, parent_pte) -> None:
    """mmu.c drop_parent_pte: unlink, clear without A/D tracking."""
    kvm.pte_list_remove(parent_pte, sp.parent_ptes)
    kvm.mmu_spte_clear_no_track(parent_pte)


# -- write protection and dirty bits ------------------------------------------

def spte_write_protect(kvm, sptep, pt_protect: bool) -> bool:
    """mmu.c spte_write_protect -> flush (all blobs; effects follow mmu_spte_update)."""
    spte = sptep.get()
    if not kvm.is_writable_pte(spte) and not (pt_protect and kvm.is_mmu_writable_spte(spte)):
        return False
    if pt_protect:
        spte &= ~kvm.shadow_mmu_writable_mask
    spte = spte & ~PT_WRITABLE_MASK
    return kvm.mmu_spte_update(sptep, spte)


def rmap_write_protect(kvm, rmap_head: list, pt_protect: bool) -> bool:
    """mmu.c rmap_write_protect."""
    flush = False
    for sptep in for_each_rmap_spte(kvm, rmap_head):
        flush |= kvm.spte_write_protect(sptep, pt_protect)
    return flush


def spte_clear_dirty(kvm, sptep) -> bool:
    """mmu.c spte_clear_dirty -> flush (effects follow mmu_spte_update)."""
    spte = sptep.get()
    kvm.KVM_MMU_WARN_ON(not kvm.spte_ad_enabled(spte), "spte_clear_dirty: A/D disabled SPTE")
    spte &= ~kvm.shadow_dirty_mask
    return kvm.mmu_spte_update(sptep, spte)


def spte_wrprot_for_clear_dirty(kvm, sptep) -> bool:
    """mmu.c spte_wrprot_for_clear_dirty, e4cc7f764980 only (2/4 deletes it).

    Clear W in place; mark the pfn dirty if W was set on an A/D-disabled SPTE.
    Copy 23785373.
    """
    was_writable = test_and_clear_bit(PT_WRITABLE_SHIFT, sptep)
    if was_writable and not kvm.spte_ad_enabled(sptep.get()):
        kvm.kvm_set_pfn_dirty(kvm.spte_to_pfn(sptep.get()))
    return was_writable


def __rmap_clear_dirty(kvm, rmap_head: list, slot) -> bool:
    """mmu.c __rmap_clear_dirty at e4cc7f764980: W-protect or D-clear each SPTE."""
    flush = False
    for sptep in for_each_rmap_spte(kvm, rmap_head):
        if kvm.spte_ad_need_write_protect(sptep.get()):
            flush |= kvm.spte_wrprot_for_clear_dirty(sptep)
        else:
            flush |= kvm.spte_clear_dirty(sptep)
    return flush


def rmap_clear_dirty_bare_wrprot(kvm, rmap_head: list, slot) -> bool:
    """mmu.c __rmap_clear_dirty at bd2240b94ff6 and later: a bare test-and-clear of W.

    rfc-2-of-4.patch, fifth mmu.c hunk.
    """
    flush = False
    for sptep in for_each_rmap_spte(kvm, rmap_head):
        if kvm.spte_ad_need_write_protect(sptep.get()):
            flush |= test_and_clear_bit(PT_WRITABLE_SHIFT, sptep)
        else:
            flush |= kvm.spte_clear_dirty(sptep)
    return flush


def kvm_mmu_write_protect_pt_masked(kvm, slot, gfn_offset: int, mask: int) -> None:
    """mmu.c kvm_mmu_write_protect_pt_masked (the rmap result is not used, as in C)."""
    if kvm.tdp_mmu_enabled:
        kvm.kvm_tdp_mmu_clear_dirty_pt_masked(slot, slot.base_gfn + gfn_offset, mask, True)
    if not kvm.kvm_memslots_have_rmaps():
        return
    while mask:
        rmap_head = kvm.gfn_to_rmap(slot.base_gfn + gfn_offset + lowest_bit(mask), PG_LEVEL_4K, slot)
        kvm.rmap_write_protect(rmap_head, False)
        mask &= mask - 1


def kvm_mmu_clear_dirty_pt_masked(kvm, slot, gfn_offset: int, mask: int) -> None:
    """mmu.c kvm_mmu_clear_dirty_pt_masked (PML): clear D, or W where D is unusable."""
    if kvm.tdp_mmu_enabled:
        kvm.kvm_tdp_mmu_clear_dirty_pt_masked(slot, slot.base_gfn + gfn_offset, mask, False)
    if not kvm.kvm_memslots_have_rmaps():
        return
    while mask:
        rmap_head = kvm.gfn_to_rmap(slot.base_gfn + gfn_offset + lowest_bit(mask), PG_LEVEL_4K, slot)
        kvm.__rmap_clear_dirty(rmap_head, slot)
        mask &= mask - 1


def lowest_bit(mask: int) -> int:
    """__ffs: index of the lowest set bit."""
    return (mask & -mask).bit_length() - 1


def highest_bit(mask: int) -> int:
    """__fls: index of the highest set bit."""
    return mask.bit_length() - 1


def kvm_arch_mmu_enable_log_dirty_pt_masked(kvm, slot, gfn_offset: int, mask: int) -> None:
    """mmu.c kvm_arch_mmu_enable_log_dirty_pt_masked (dirty log get/clear, ring reset).

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
        if gfn_round_for_level(start, PG_LEVEL_2M) != gfn_round_for_level(end, PG_LEVEL_2M):
            kvm.kvm_mmu_slot_gfn_write_protect(slot, end, PG_LEVEL_2M)
    if kvm.cpu_dirty_log_size:
        kvm.kvm_mmu_clear_dirty_pt_masked(slot, gfn_offset, mask)
    else:
        kvm.kvm_mmu_write_protect_pt_masked(slot, gfn_offset, mask)


def kvm_mmu_slot_gfn_write_protect(kvm, slot, gfn: int, min_level: int) -> bool:
    """mmu.c kvm_mmu_slot_gfn_write_protect -> something was write-protected."""
    write_protected = False
    if kvm.kvm_memslots_have_rmaps():
        for level in range(min_level, KVM_MAX_HUGEPAGE_LEVEL + 1):
            rmap_head = kvm.gfn_to_rmap(gfn, level, slot)
            write_protected |= kvm.rmap_write_protect(rmap_head, True)
    if kvm.tdp_mmu_enabled:
        write_protected |= kvm.kvm_tdp_mmu_write_protect_gfn(slot, gfn, min_level)
    return write_protected


def kvm_memslots_have_rmaps(kvm) -> bool:
    """mmu.h kvm_memslots_have_rmaps: shadow MMU in use, or a shadow root was
    allocated (nested; ``kvm.shadow_root_allocated``)."""
    return not kvm.tdp_mmu_enabled or getattr(kvm, "shadow_root_allocated", False)


# -- zapping rmaps, notifier handlers ------------------------------------------

def kvm_zap_one_rmap_spte(kvm, rmap_head: list, sptep) -> None:
    """mmu.c kvm_zap_one_rmap_spte."""
    kvm.mmu_spte_clear_track_bits(sptep)
    kvm.pte_list_remove(sptep, rmap_head)


def kvm_zap_all_rmap_sptes(kvm, rmap_head: list) -> bool:
    """mmu.c kvm_zap_all_rmap_sptes -> true if anything was zapped (caller flushes)."""
    if not rmap_head:
        return False
    for sptep in list(rmap_head):
        kvm.mmu_spte_clear_track_bits(sptep)
    rmap_head.clear()
    return True


def __kvm_zap_rmap(kvm, rmap_head: list, slot) -> bool:
    """mmu.c __kvm_zap_rmap."""
    return kvm.kvm_zap_all_rmap_sptes(rmap_head)


def kvm_zap_rmap(kvm, rmap_head: list, slot, gfn: int, level: int, pte) -> bool:
    """mmu.c kvm_zap_rmap (the rmap_handler_t form)."""
    return kvm.__kvm_zap_rmap(rmap_head, slot)


def kvm_set_pte_rmap(kvm, rmap_head: list, slot, gfn: int, level: int, pte) -> bool:
    """mmu.c kvm_set_pte_rmap (change_pte; exists at base, unchanged by the series).

    ``pte`` is the new host PTE as (pfn, writable); never huge here.  A
    writable new PTE zaps; a read-only one remaps to the new pfn, access-tracked.
    """
    need_flush = False
    new_pfn = pte[0]
    restart = True
    while restart:
        restart = False
        for sptep in for_each_rmap_spte(kvm, rmap_head):
            need_flush = True
            if pte[1]:
                kvm.kvm_zap_one_rmap_spte(rmap_head, sptep)
                restart = True
                break
            new_spte = kvm.kvm_mmu_changed_pte_notifier_make_spte(sptep.get(), new_pfn)
            kvm.mmu_spte_clear_track_bits(sptep)
            kvm.mmu_spte_set(sptep, new_spte)
    if need_flush and kvm.kvm_available_flush_remote_tlbs_range():
        kvm.kvm_flush_remote_tlbs_gfn(gfn, level)
        return False
    return need_flush


def kvm_age_rmap(kvm, rmap_head: list, slot, gfn: int, level: int, pte) -> bool:
    """mmu.c kvm_age_rmap -> any SPTE young."""
    young = False
    for sptep in for_each_rmap_spte(kvm, rmap_head):
        young |= kvm.mmu_spte_age(sptep)
    return young


def kvm_test_age_rmap(kvm, rmap_head: list, slot, gfn: int, level: int, pte) -> bool:
    """mmu.c kvm_test_age_rmap: no writes."""
    for sptep in for_each_rmap_spte(kvm, rmap_head):
        if kvm.is_accessed_spte(sptep.get()):
            return True
    return False


def kvm_handle_gfn_range(kvm, range_, handler: str) -> bool:
    """mmu.c kvm_handle_gfn_range: run the rmap handler (by C name) at 4K..1G."""
    ret = False
    for gfn, level, rmap_head in for_each_slot_rmap_range(range_.slot, PG_LEVEL_4K, KVM_MAX_HUGEPAGE_LEVEL,
                                                          range_.start, range_.end - 1):
        ret |= getattr(kvm, handler)(rmap_head, range_.slot, gfn, level, range_.arg)
    return ret


def kvm_unmap_gfn_range(kvm, range_) -> bool:
    """mmu.c kvm_unmap_gfn_range -> flush (generic code flushes on true)."""
    flush = False
    if kvm.kvm_memslots_have_rmaps():
        flush = kvm.kvm_handle_gfn_range(range_, "kvm_zap_rmap")
    if kvm.tdp_mmu_enabled:
        flush = kvm.kvm_tdp_mmu_unmap_gfn_range(range_, flush)
    return flush


def kvm_set_spte_gfn(kvm, range_) -> bool:
    """mmu.c kvm_set_spte_gfn (change_pte) -> flush."""
    flush = False
    if kvm.kvm_memslots_have_rmaps():
        flush = kvm.kvm_handle_gfn_range(range_, "kvm_set_pte_rmap")
    if kvm.tdp_mmu_enabled:
        flush |= kvm.kvm_tdp_mmu_set_spte_gfn(range_)
    return flush


def kvm_age_gfn(kvm, range_) -> bool:
    """mmu.c kvm_age_gfn -> young (clear_flush_young flushes on true)."""
    young = False
    if kvm.kvm_memslots_have_rmaps():
        young = kvm.kvm_handle_gfn_range(range_, "kvm_age_rmap")
    if kvm.tdp_mmu_enabled:
        young |= kvm.kvm_tdp_mmu_age_gfn_range(range_)
    return young


def kvm_test_age_gfn(kvm, range_) -> bool:
    """mmu.c kvm_test_age_gfn -> young."""
    young = False
    if kvm.kvm_memslots_have_rmaps():
        young = kvm.kvm_handle_gfn_range(range_, "kvm_test_age_rmap")
    if kvm.tdp_mmu_enabled:
        young |= kvm.kvm_tdp_mmu_test_age_gfn(range_)
    return young


def __walk_slot_rmaps(kvm, slot, fn: str, start_level: int, end_level: int, start_gfn: int,
                      end_gfn: int, flush_on_yield: bool, flush: bool) -> bool:
    """mmu.c __walk_slot_rmaps: OR the handler's results (never yields here)."""
    for _, _, rmap_head in for_each_slot_rmap_range(slot, start_level, end_level, start_gfn, end_gfn):
        flush |= getattr(kvm, fn)(rmap_head, slot)
    return flush


def walk_slot_rmaps(kvm, slot, fn: str, start_level: int, end_level: int, flush_on_yield: bool) -> bool:
    """mmu.c walk_slot_rmaps: the whole slot."""
    return kvm.__walk_slot_rmaps(slot, fn, start_level, end_level, slot.base_gfn,
                                 slot.base_gfn + slot.npages - 1, flush_on_yield, False)


def slot_rmap_write_protect(kvm, rmap_head: list, slot) -> bool:
    """mmu.c slot_rmap_write_protect."""
    return kvm.rmap_write_protect(rmap_head, False)


def kvm_rmap_zap_gfn_range(kvm, gfn_start: int, gfn_end: int) -> bool:
    """mmu.c kvm_rmap_zap_gfn_range: every memslot overlapping [start, end)."""
    flush = False
    if not kvm.kvm_memslots_have_rmaps():
        return flush
    for memslot in kvm.memslots:
        start = max(gfn_start, memslot.base_gfn)
        end = min(gfn_end, memslot.base_gfn + memslot.npages)
        if start >= end:
            continue          # kvm_for_each_memslot_in_gfn_range visits overlapping slots only
        flush = kvm.__walk_slot_rmaps(memslot, "__kvm_zap_rmap", PG_LEVEL_4K, KVM_MAX_HUGEPAGE_LEVEL,
                                      start, end - 1, True, flush)
    return flush


def kvm_zap_gfn_range(kvm, gfn_start: int, gfn_end: int) -> None:
    """mmu.c kvm_zap_gfn_range: zap [start, end) in both MMUs, one ranged flush.

    The invalidate begin/end bracketing only matters to concurrent faults.
    """
    if kvm.WARN_ON_ONCE(gfn_end <= gfn_start, "kvm_zap_gfn_range: empty range"):
        return
    flush = kvm.kvm_rmap_zap_gfn_range(gfn_start, gfn_end)
    if kvm.tdp_mmu_enabled:
        flush = kvm.kvm_tdp_mmu_zap_leafs(gfn_start, gfn_end, flush)
    if flush:
        kvm.kvm_flush_remote_tlbs_range(gfn_start, gfn_end - gfn_start)


# -- slot-wide dirty logging and hugepage recovery ------------------------------

def kvm_mmu_slot_remove_write_access(kvm, memslot, start_level: int) -> None:
    """mmu.c kvm_mmu_slot_remove_write_access (the caller flushes the memslot)."""
    if kvm.kvm_memslots_have_rmaps():
        kvm.walk_slot_rmaps(memslot, "slot_rmap_write_protect", start_level, KVM_MAX_HUGEPAGE_LEVEL, False)
    if kvm.tdp_mmu_enabled:
        kvm.kvm_tdp_mmu_wrprot_slot(memslot, start_level)


def kvm_mmu_slot_leaf_clear_dirty(kvm, memslot) -> None:
    """mmu.c kvm_mmu_slot_leaf_clear_dirty: 4K rmaps only (the caller flushes)."""
    if kvm.kvm_memslots_have_rmaps():
        kvm.walk_slot_rmaps(memslot, "__rmap_clear_dirty", PG_LEVEL_4K, PG_LEVEL_4K, False)
    if kvm.tdp_mmu_enabled:
        kvm.kvm_tdp_mmu_clear_dirty_slot(memslot)


def kvm_mmu_zap_collapsible_spte(kvm, rmap_head: list, slot) -> bool:
    """mmu.c kvm_mmu_zap_collapsible_spte: zap direct SPTEs that could be mapped huger."""
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
    """mmu.c kvm_rmap_zap_collapsible_sptes: 4K..2M rmaps, one memslot flush."""
    if kvm.walk_slot_rmaps(slot, "kvm_mmu_zap_collapsible_spte", PG_LEVEL_4K, KVM_MAX_HUGEPAGE_LEVEL - 1, True):
        kvm.kvm_flush_remote_tlbs_memslot(slot)


def kvm_mmu_zap_collapsible_sptes(kvm, slot) -> None:
    """mmu.c kvm_mmu_zap_collapsible_sptes (dirty logging disabled)."""
    if kvm.kvm_memslots_have_rmaps():
        kvm.kvm_rmap_zap_collapsible_sptes(slot)
    if kvm.tdp_mmu_enabled:
        kvm.kvm_tdp_mmu_zap_collapsible_sptes(slot)


# -- huge page split (eager split; shadow MMU side is for nested pages) ---------

def shadow_mmu_get_sp_for_split(kvm, huge_sptep):
    """mmu.c shadow_mmu_get_sp_for_split: a direct child page for the huge region."""
    huge_sp = kvm.sptep_to_sp(huge_sptep)
    gfn = kvm.kvm_mmu_page_get_gfn(huge_sp, huge_sptep.index)
    access = kvm.kvm_mmu_page_get_access(huge_sp, huge_sptep.index)
    role = kvm.kvm_mmu_child_role(huge_sptep, True, access)
    return kvm.__kvm_mmu_get_shadow_page(None, None, gfn, role)


def shadow_mmu_split_huge_page(kvm, slot, huge_sptep) -> None:
    """mmu.c shadow_mmu_split_huge_page: fill the child, then link it over the huge
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
    """mmu.c shadow_mmu_try_split_huge_page (caches and page limit always suffice)."""
    kvm.shadow_mmu_split_huge_page(slot, huge_sptep)
    return 0


def shadow_mmu_try_split_huge_pages(kvm, rmap_head: list, slot) -> bool:
    """mmu.c shadow_mmu_try_split_huge_pages: nested huge SPTEs only."""
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
    """mmu.c kvm_shadow_mmu_try_split_huge_pages: from 1G down to above target_level."""
    for level in range(KVM_MAX_HUGEPAGE_LEVEL, target_level, -1):
        kvm.__walk_slot_rmaps(slot, "shadow_mmu_try_split_huge_pages", level, level, start, end - 1, True, False)


def kvm_mmu_try_split_huge_pages(kvm, memslot, start: int, end: int, target_level: int) -> None:
    """mmu.c kvm_mmu_try_split_huge_pages (TDP MMU only; no flush needed)."""
    if not kvm.tdp_mmu_enabled:
        return
    if kvm.kvm_memslots_have_rmaps():
        kvm.kvm_shadow_mmu_try_split_huge_pages(memslot, start, end, target_level)
    kvm.kvm_tdp_mmu_try_split_huge_pages(memslot, start, end, target_level, False)


def kvm_mmu_slot_try_split_huge_pages(kvm, memslot, target_level: int) -> None:
    """mmu.c kvm_mmu_slot_try_split_huge_pages: the whole slot, TDP side shared."""
    start = memslot.base_gfn
    end = start + memslot.npages
    if not kvm.tdp_mmu_enabled:
        return
    if kvm.kvm_memslots_have_rmaps():
        kvm.kvm_shadow_mmu_try_split_huge_pages(memslot, start, end, target_level)
    kvm.kvm_tdp_mmu_try_split_huge_pages(memslot, start, end, target_level, True)


# -- zapping shadow pages ---------------------------------------------------------

def mmu_page_zap_pte(kvm, sp, spte, invalid_list) -> int:
    """mmu.c mmu_page_zap_pte -> child pages zapped: drop a leaf (A/D via drop_spte),
    unlink a table, clear an MMIO SPTE."""
    pte = spte.get()
    if kvm.is_shadow_present_pte(pte):
        if kvm.is_last_spte(pte, sp.role.level):
            kvm.drop_spte(spte)
        else:
            child = kvm.spte_to_child_sp(pte)
            kvm.drop_parent_pte(child, spte)
            if kvm.tdp_enabled and invalid_list is not None and child.role.guest_mode and not child.parent_ptes:
                return kvm.kvm_mmu_prepare_zap_page(child, invalid_list)
    elif kvm.is_mmio_spte(pte):
        kvm.mmu_spte_clear_no_track(spte)
    return 0


def kvm_mmu_page_unlink_children(kvm, sp, invalid_list) -> int:
    """mmu.c kvm_mmu_page_unlink_children: every entry (absent entries read as 0)."""
    zapped = 0
    for i in sorted(sp.spt):
        zapped += kvm.mmu_page_zap_pte(sp, sp.sptep(i), invalid_list)
    return zapped


def kvm_mmu_unlink_parents(kvm, sp) -> None:
    """mmu.c kvm_mmu_unlink_parents."""
    while sp.parent_ptes:
        sptep = sp.parent_ptes[0]
        if not kvm.is_shadow_present_pte(sptep.get()):
            kvm.BUG(f"rmap_get_first: parent {sptep!r} not present")
        kvm.drop_parent_pte(sp, sptep)


def kvm_unlink_unsync_page(kvm, sp) -> None:
    """mmu.c kvm_unlink_unsync_page."""
    kvm.WARN_ON_ONCE(not sp.unsync, "kvm_unlink_unsync_page: page not unsync")
    sp.unsync = False


def mmu_zap_unsync_children(kvm, parent, invalid_list) -> int:
    """mmu.c mmu_zap_unsync_children, reduced: zap the unsync pages reachable
    through the parent's unsync child bits (mmu_unsync_walk without the batching)."""
    zapped = 0
    if parent.role.level == PG_LEVEL_4K:
        return 0
    for index in sorted(getattr(parent, "unsync_child_bitmap", ())):
        child = kvm.spte_to_child_sp(parent.sptep(index).get())
        parent.unsync_child_bitmap.discard(index)
        parent.unsync_children -= 1
        if child is None:
            continue
        if child.unsync:
            kvm.kvm_mmu_prepare_zap_page(child, invalid_list)
            zapped += 1
        else:
            zapped += kvm.mmu_zap_unsync_children(child, invalid_list)
    return zapped


def __kvm_mmu_prepare_zap_page(kvm, sp, invalid_list: list) -> tuple[bool, int]:
    """mmu.c __kvm_mmu_prepare_zap_page -> (list_unstable, nr_zapped); the C out-
    parameter is the second value.  Children's A/D effects come via drop_spte."""
    nr_zapped = kvm.mmu_zap_unsync_children(sp, invalid_list)
    nr_zapped += kvm.kvm_mmu_page_unlink_children(sp, invalid_list)
    kvm.kvm_mmu_unlink_parents(sp)
    list_unstable = bool(nr_zapped)
    if sp.unsync:
        kvm.kvm_unlink_unsync_page(sp)
    if not sp.root_count:
        nr_zapped += 1
        if sp in kvm.active_mmu_pages:
            kvm.active_mmu_pages.remove(sp)
        invalid_list.append(sp)
    elif sp in kvm.active_mmu_pages:
        kvm.active_mmu_pages.remove(sp)
    sp.role.invalid = True
    return list_unstable, nr_zapped


def kvm_mmu_prepare_zap_page(kvm, sp, invalid_list: list) -> bool:
    """mmu.c kvm_mmu_prepare_zap_page (returns nr_zapped as a bool, as C does)."""
    _, nr_zapped = kvm.__kvm_mmu_prepare_zap_page(sp, invalid_list)
    return bool(nr_zapped)


def kvm_mmu_commit_zap_page(kvm, invalid_list: list) -> None:
    """mmu.c kvm_mmu_commit_zap_page: one remote flush, then free the pages."""
    if not invalid_list:
        return
    kvm.kvm_flush_remote_tlbs()
    for sp in list(invalid_list):
        kvm.WARN_ON_ONCE(not sp.role.invalid or sp.root_count, "kvm_mmu_commit_zap_page: live page")
        kvm.kvm_mmu_free_shadow_page(sp)
    invalid_list.clear()


def kvm_mmu_free_shadow_page(kvm, sp) -> None:
    """mmu.c kvm_mmu_free_shadow_page (with the CONFIG_KVM_PROVE_MMU check)."""
    for i in sorted(sp.spt):
        kvm.KVM_MMU_WARN_ON(kvm.is_shadow_present_pte(sp.spt[i]), "SPTE shadow-present at free")
    kvm.mmu_pages.pop(sp.pfn, None)


def kvm_mmu_zap_all(kvm) -> None:
    """mmu.c kvm_mmu_zap_all (VM teardown / mmu_notifier release)."""
    invalid_list: list = []
    restart = True
    while restart:
        restart = False
        for sp in list(kvm.active_mmu_pages):
            if sp not in kvm.active_mmu_pages:
                continue
            if kvm.WARN_ON_ONCE(sp.role.invalid, "kvm_mmu_zap_all: invalid page on active list"):
                continue
            unstable, _ = kvm.__kvm_mmu_prepare_zap_page(sp, invalid_list)
            if unstable:
                restart = True
                break
    kvm.kvm_mmu_commit_zap_page(invalid_list)
    if kvm.tdp_mmu_enabled:
        kvm.kvm_tdp_mmu_zap_all()


def kvm_zap_obsolete_pages(kvm) -> None:
    """mmu.c kvm_zap_obsolete_pages: oldest first, stop at the first valid page."""
    zapped_obsolete_pages: list = []
    restart = True
    while restart:
        restart = False
        for sp in reversed(list(kvm.active_mmu_pages)):
            if sp not in kvm.active_mmu_pages:
                continue
            if not kvm.is_obsolete_sp(sp):
                break
            if kvm.WARN_ON_ONCE(sp.role.invalid, "kvm_zap_obsolete_pages: invalid page on active list"):
                continue
            unstable, _ = kvm.__kvm_mmu_prepare_zap_page(sp, zapped_obsolete_pages)
            if unstable:
                restart = True
                break
    kvm.kvm_mmu_commit_zap_page(zapped_obsolete_pages)


def kvm_mmu_zap_all_fast(kvm) -> None:
    """mmu.c kvm_mmu_zap_all_fast (memslot delete/move): new generation, invalidate
    TDP roots, zap obsolete shadow pages, then zap the invalidated TDP roots."""
    kvm.mmu_invalid_gen = 0 if kvm.mmu_invalid_gen else 1
    if kvm.tdp_mmu_enabled:
        kvm.kvm_tdp_mmu_invalidate_all_roots()
    kvm.kvm_zap_obsolete_pages()
    if kvm.tdp_mmu_enabled:
        kvm.kvm_tdp_mmu_zap_invalidated_roots()


def get_mmio_spte_gfn(kvm, spte: int) -> int:
    """mmu.c get_mmio_spte_gfn.  Without the L1TF mask the gfn bits are
    12..(MAXPHYADDR-1); the model's host has 46 physical address bits."""
    gpa = spte & SHADOW_NONPRESENT_OR_RSVD_LOWER_GFN_MASK
    return gpa >> 12


_HELPERS = (__set_spte, __update_clear_spte_fast, __update_clear_spte_slow, __get_spte_lockless,
            kvm_flush_remote_tlbs_sptep)
_ALL_BLOBS = (mmu_spte_set, mmu_spte_update_no_track, mmu_spte_clear_no_track, mmu_spte_get_lockless,
              gfn_to_rmap, pte_list_add, pte_list_remove, rmap_remove, __rmap_add,
              kvm_available_flush_remote_tlbs_range, drop_spte, drop_large_spte,
              mmu_page_add_parent_pte, drop_parent_pte, spte_write_protect, rmap_write_protect,
              spte_clear_dirty, kvm_mmu_write_protect_pt_masked, kvm_mmu_clear_dirty_pt_masked,
              kvm_arch_mmu_enable_log_dirty_pt_masked, kvm_mmu_slot_gfn_write_protect,
              kvm_memslots_have_rmaps, kvm_zap_one_rmap_spte, kvm_zap_all_rmap_sptes,
              __kvm_zap_rmap, kvm_zap_rmap, kvm_set_pte_rmap, kvm_age_rmap, kvm_test_age_rmap,
              kvm_handle_gfn_range, kvm_unmap_gfn_range, kvm_set_spte_gfn, kvm_age_gfn,
              kvm_test_age_gfn, __walk_slot_rmaps, walk_slot_rmaps, slot_rmap_write_protect,
              kvm_rmap_zap_gfn_range, kvm_zap_gfn_range, kvm_mmu_slot_remove_write_access,
              kvm_mmu_slot_leaf_clear_dirty, kvm_mmu_zap_collapsible_spte,
              kvm_rmap_zap_collapsible_sptes, kvm_mmu_zap_collapsible_sptes,
              shadow_mmu_get_sp_for_split, shadow_mmu_split_huge_page,
              shadow_mmu_try_split_huge_page, shadow_mmu_try_split_huge_pages,
              kvm_shadow_mmu_try_split_huge_pages, kvm_mmu_try_split_huge_pages,
              kvm_mmu_slot_try_split_huge_pages, mmu_page_zap_pte, kvm_mmu_page_unlink_children,
              kvm_mmu_unlink_parents, kvm_unlink_unsync_page, mmu_zap_unsync_children,
              __kvm_mmu_prepare_zap_page, kvm_mmu_prepare_zap_page, kvm_mmu_commit_zap_page,
              kvm_mmu_free_shadow_page, kvm_mmu_zap_all, kvm_zap_obsolete_pages,
              kvm_mmu_zap_all_fast, get_mmio_spte_gfn)

MODEL_TABLE = (
    tuple(Version(MMU_C, f.__name__, f, helper=True) for f in _HELPERS)
    + tuple(Version(MMU_C, f.__name__, f) for f in _ALL_BLOBS)
    + (
        Version(MMU_C, "mmu_spte_update", mmu_spte_update, (BASE,)),
        Version(MMU_C, "mmu_spte_update", mmu_spte_update_without_dirty_mark, (AFTER_2,)),
        Version(MMU_C, "mmu_spte_update", mmu_spte_update_without_accessed_mark, (AFTER_3,)),
        Version(MMU_C, "mmu_spte_update", mmu_spte_update_wrprot_or_dirty_flush, (AFTER_4,)),
        Version(MMU_C, "mmu_spte_clear_track_bits", mmu_spte_clear_track_bits, (BASE,)),
        Version(MMU_C, "mmu_spte_clear_track_bits", mmu_spte_clear_track_bits_without_dirty_mark,
                (AFTER_2, AFTER_3, AFTER_4)),
        Version(MMU_C, "mmu_spte_age", mmu_spte_age, (BASE,)),
        Version(MMU_C, "mmu_spte_age", mmu_spte_age_without_dirty_mark, (AFTER_2, AFTER_3, AFTER_4)),
        Version(MMU_C, "spte_wrprot_for_clear_dirty", spte_wrprot_for_clear_dirty, (BASE,)),
        Version(MMU_C, "__rmap_clear_dirty", __rmap_clear_dirty, (BASE,)),
        Version(MMU_C, "__rmap_clear_dirty", rmap_clear_dirty_bare_wrprot, (AFTER_2, AFTER_3, AFTER_4)),
    )
    + FAULT_MODEL_TABLE
)
