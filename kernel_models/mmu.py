"""arch/x86/kvm/mmu/mmu.c: SPTE primitives, rmaps, zapping and the arch entry points.

mmu.c is split over four modules to keep each readable; the registry loads
this one, whose ``MODEL_TABLE`` appends the others':

- ``mmu.py`` (this): the SPTE primitives (every body the series changes),
  drop/zap of SPTEs, the mmu_notifier handlers, zapping shadow pages;
- ``mmu_rmap.py``: rmap lists and the rmap walks;
- ``mmu_slot.py``: slot-wide dirty logging, collapsible zap, eager split;
- ``mmu_fault.py``: shadow pages, ``mmu_set_spte`` and the fault paths;
- ``mmu_mmio.py``: the MMIO fault path, the memslot generation's effect on
  MMIO SPTEs, unprotecting and syncing shadowed guest page tables (page_track.c's
  rows, in ``page_track.py``, are appended here too).

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

from kernel_models import mmu_fault, mmu_mmio, mmu_rmap, mmu_slot, page_track
from kernel_models.kvm_main import PG_LEVEL_4K
from kernel_models.mmu_fault import KVM_MAX_HUGEPAGE_LEVEL
from kernel_models.mmu_rmap import for_each_rmap_spte
from kernel_models.registry import MMU_C, Version
from kernel_models.spte import (PAGE_SHIFT, PT_WRITABLE_MASK, PT_WRITABLE_SHIFT,
                                SHADOW_NONPRESENT_OR_RSVD_MASK_LEN)

BASE = "e4cc7f764980"          # base, and after 1/4
AFTER_2 = "bd2240b94ff6"       # after 2/4: no folio dirty marking on zap/modify
AFTER_3 = "0a6c6619d213"       # after 3/4: mmu_spte_update no longer marks accessed
AFTER_4 = "77d1072b130d"       # after 4/4: clearing A no longer forces a flush


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
    """mmu.c __set_spte (all blobs): WRITE_ONCE."""
    sptep.set(spte)


def __update_clear_spte_fast(kvm, sptep, spte: int) -> None:
    """mmu.c __update_clear_spte_fast (all blobs): WRITE_ONCE."""
    sptep.set(spte)


def __update_clear_spte_slow(kvm, sptep, spte: int) -> int:
    """mmu.c __update_clear_spte_slow (all blobs): xchg, returns the value replaced."""
    return sptep.exchange(spte)


def __get_spte_lockless(kvm, sptep) -> int:
    """mmu.c __get_spte_lockless (all blobs): READ_ONCE."""
    return sptep.get()


def mmu_spte_set(kvm, sptep, new_spte: int) -> None:
    """mmu.c mmu_spte_set: install over a non-present SPTE (all blobs; copy 23785373)."""
    kvm.WARN_ON_ONCE(kvm.is_shadow_present_pte(sptep.get()), "mmu_spte_set: SPTE already present")
    kvm.__set_spte(sptep, new_spte)


def mmu_spte_update_no_track(kvm, sptep, new_spte: int) -> int:
    """mmu.c mmu_spte_update_no_track (all blobs) -> old SPTE; no A/D marking, no flush.

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


# -- rmap users -----------------------------------------------------------------

def kvm_flush_remote_tlbs_sptep(kvm, sptep) -> None:
    """mmu.c kvm_flush_remote_tlbs_sptep (all blobs): flush the range the SPTE maps."""
    sp = kvm.sptep_to_sp(sptep)
    gfn = kvm.kvm_mmu_page_get_gfn(sp, sptep.index)
    kvm.kvm_flush_remote_tlbs_gfn(gfn, sp.role.level)


def kvm_available_flush_remote_tlbs_range(kvm) -> bool:
    """mmu.c kvm_available_flush_remote_tlbs_range (all blobs): Hyper-V only, never here."""
    return False


def drop_spte(kvm, sptep) -> None:
    """mmu.c drop_spte (all blobs): clear with A/D tracking, then leave the rmap."""
    old_spte = kvm.mmu_spte_clear_track_bits(sptep)
    if kvm.is_shadow_present_pte(old_spte):
        kvm.rmap_remove(sptep)


def drop_large_spte(kvm, sptep, flush: bool) -> None:
    """mmu.c drop_large_spte (all blobs)."""
    sp = kvm.sptep_to_sp(sptep)
    kvm.WARN_ON_ONCE(sp.role.level == PG_LEVEL_4K, "drop_large_spte: 4K SPTE")
    kvm.drop_spte(sptep)
    if flush:
        kvm.kvm_flush_remote_tlbs_sptep(sptep)


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
    """mmu.c rmap_write_protect (all blobs)."""
    flush = False
    for sptep in for_each_rmap_spte(kvm, rmap_head):
        flush |= kvm.spte_write_protect(sptep, pt_protect)
    return flush


def spte_clear_dirty(kvm, sptep) -> bool:
    """mmu.c spte_clear_dirty (all blobs) -> flush (effects follow mmu_spte_update)."""
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


# -- zapping rmaps, notifier handlers ------------------------------------------

def kvm_zap_one_rmap_spte(kvm, rmap_head: list, sptep) -> None:
    """mmu.c kvm_zap_one_rmap_spte (all blobs)."""
    kvm.mmu_spte_clear_track_bits(sptep)
    kvm.pte_list_remove(sptep, rmap_head)


def kvm_zap_all_rmap_sptes(kvm, rmap_head: list) -> bool:
    """mmu.c kvm_zap_all_rmap_sptes (all blobs) -> true if anything was zapped (caller flushes)."""
    if not rmap_head:
        return False
    for sptep in list(rmap_head):
        kvm.mmu_spte_clear_track_bits(sptep)
    rmap_head.clear()
    return True


def __kvm_zap_rmap(kvm, rmap_head: list, slot) -> bool:
    """mmu.c __kvm_zap_rmap (all blobs)."""
    return kvm.kvm_zap_all_rmap_sptes(rmap_head)


def kvm_zap_rmap(kvm, rmap_head: list, slot, gfn: int, level: int, pte) -> bool:
    """mmu.c kvm_zap_rmap (all blobs) (the rmap_handler_t form)."""
    return kvm.__kvm_zap_rmap(rmap_head, slot)


def kvm_set_pte_rmap(kvm, rmap_head: list, slot, gfn: int, level: int, pte) -> bool:
    """mmu.c kvm_set_pte_rmap (all blobs) (change_pte; exists at base, unchanged by the series).

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
    """mmu.c kvm_age_rmap (all blobs) -> any SPTE young."""
    young = False
    for sptep in for_each_rmap_spte(kvm, rmap_head):
        young |= kvm.mmu_spte_age(sptep)
    return young


def kvm_test_age_rmap(kvm, rmap_head: list, slot, gfn: int, level: int, pte) -> bool:
    """mmu.c kvm_test_age_rmap (all blobs): no writes."""
    for sptep in for_each_rmap_spte(kvm, rmap_head):
        if kvm.is_accessed_spte(sptep.get()):
            return True
    return False


def kvm_unmap_gfn_range(kvm, range_) -> bool:
    """mmu.c kvm_unmap_gfn_range (all blobs) -> flush (generic code flushes on true)."""
    flush = False
    if kvm.kvm_memslots_have_rmaps():
        flush = kvm.kvm_handle_gfn_range(range_, "kvm_zap_rmap")
    if kvm.tdp_mmu_enabled:
        flush = kvm.kvm_tdp_mmu_unmap_gfn_range(range_, flush)
    return flush


def kvm_set_spte_gfn(kvm, range_) -> bool:
    """mmu.c kvm_set_spte_gfn (all blobs) (change_pte) -> flush."""
    flush = False
    if kvm.kvm_memslots_have_rmaps():
        flush = kvm.kvm_handle_gfn_range(range_, "kvm_set_pte_rmap")
    if kvm.tdp_mmu_enabled:
        flush |= kvm.kvm_tdp_mmu_set_spte_gfn(range_)
    return flush


def kvm_age_gfn(kvm, range_) -> bool:
    """mmu.c kvm_age_gfn (all blobs) -> young (clear_flush_young flushes on true)."""
    young = False
    if kvm.kvm_memslots_have_rmaps():
        young = kvm.kvm_handle_gfn_range(range_, "kvm_age_rmap")
    if kvm.tdp_mmu_enabled:
        young |= kvm.kvm_tdp_mmu_age_gfn_range(range_)
    return young


def kvm_test_age_gfn(kvm, range_) -> bool:
    """mmu.c kvm_test_age_gfn (all blobs) -> young."""
    young = False
    if kvm.kvm_memslots_have_rmaps():
        young = kvm.kvm_handle_gfn_range(range_, "kvm_test_age_rmap")
    if kvm.tdp_mmu_enabled:
        young |= kvm.kvm_tdp_mmu_test_age_gfn(range_)
    return young


def kvm_rmap_zap_gfn_range(kvm, gfn_start: int, gfn_end: int) -> bool:
    """mmu.c kvm_rmap_zap_gfn_range (all blobs): every memslot overlapping [start, end)."""
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
    """mmu.c kvm_zap_gfn_range (all blobs): zap [start, end) in both MMUs, one ranged flush.

    The invalidate begin/end bracketing only matters to concurrent faults.
    """
    if kvm.WARN_ON_ONCE(gfn_end <= gfn_start, "kvm_zap_gfn_range: empty range"):
        return
    flush = kvm.kvm_rmap_zap_gfn_range(gfn_start, gfn_end)
    if kvm.tdp_mmu_enabled:
        flush = kvm.kvm_tdp_mmu_zap_leafs(gfn_start, gfn_end, flush)
    if flush:
        kvm.kvm_flush_remote_tlbs_range(gfn_start, gfn_end - gfn_start)


# -- zapping shadow pages ---------------------------------------------------------

def mmu_page_zap_pte(kvm, sp, spte, invalid_list) -> int:
    """mmu.c mmu_page_zap_pte (all blobs) -> child pages zapped: drop a leaf (A/D via drop_spte),
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
    """mmu.c kvm_mmu_page_unlink_children (all blobs): every entry (absent entries read as 0)."""
    zapped = 0
    for i in sorted(sp.spt):
        zapped += kvm.mmu_page_zap_pte(sp, sp.sptep(i), invalid_list)
    return zapped


def kvm_mmu_unlink_parents(kvm, sp) -> None:
    """mmu.c kvm_mmu_unlink_parents (all blobs)."""
    while sp.parent_ptes:
        sptep = sp.parent_ptes[0]
        if not kvm.is_shadow_present_pte(sptep.get()):
            kvm.BUG(f"rmap_get_first: parent {sptep!r} not present")
        kvm.drop_parent_pte(sp, sptep)


def kvm_unlink_unsync_page(kvm, sp) -> None:
    """mmu.c kvm_unlink_unsync_page (all blobs)."""
    kvm.WARN_ON_ONCE(not sp.unsync, "kvm_unlink_unsync_page: page not unsync")
    sp.unsync = False


def mmu_zap_unsync_children(kvm, parent, invalid_list) -> int:
    """mmu.c mmu_zap_unsync_children (all blobs), reduced: zap the unsync pages reachable
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
    """mmu.c __kvm_mmu_prepare_zap_page (all blobs) -> (list_unstable, nr_zapped); the C out-
    parameter is the second value.  Children's A/D effects come via drop_spte."""
    nr_zapped = kvm.mmu_zap_unsync_children(sp, invalid_list)
    nr_zapped += kvm.kvm_mmu_page_unlink_children(sp, invalid_list)
    kvm.kvm_mmu_unlink_parents(sp)
    list_unstable = bool(nr_zapped)
    if not sp.role.invalid and kvm.sp_has_gptes(sp):
        kvm.unaccount_shadowed(sp)
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
    """mmu.c kvm_mmu_prepare_zap_page (all blobs) (returns nr_zapped as a bool, as C does)."""
    _, nr_zapped = kvm.__kvm_mmu_prepare_zap_page(sp, invalid_list)
    return bool(nr_zapped)


def kvm_mmu_commit_zap_page(kvm, invalid_list: list) -> None:
    """mmu.c kvm_mmu_commit_zap_page (all blobs): one remote flush, then free the pages."""
    if not invalid_list:
        return
    kvm.kvm_flush_remote_tlbs()
    for sp in list(invalid_list):
        kvm.WARN_ON_ONCE(not sp.role.invalid or sp.root_count, "kvm_mmu_commit_zap_page: live page")
        kvm.kvm_mmu_free_shadow_page(sp)
    invalid_list.clear()


def kvm_mmu_free_shadow_page(kvm, sp) -> None:
    """mmu.c kvm_mmu_free_shadow_page (all blobs) (with the CONFIG_KVM_PROVE_MMU check)."""
    for i in sorted(sp.spt):
        kvm.KVM_MMU_WARN_ON(kvm.is_shadow_present_pte(sp.spt[i]), "SPTE shadow-present at free")
    kvm.mmu_pages.pop(sp.pfn, None)


def kvm_mmu_zap_all(kvm) -> None:
    """mmu.c kvm_mmu_zap_all (all blobs) (VM teardown / mmu_notifier release)."""
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
    """mmu.c kvm_zap_obsolete_pages (all blobs): oldest first, stop at the first valid page."""
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
    """mmu.c kvm_mmu_zap_all_fast (all blobs) (memslot delete/move): new generation, invalidate
    TDP roots, zap obsolete shadow pages, then zap the invalidated TDP roots."""
    kvm.mmu_invalid_gen = 0 if kvm.mmu_invalid_gen else 1
    if kvm.tdp_mmu_enabled:
        kvm.kvm_tdp_mmu_invalidate_all_roots()
    kvm.kvm_zap_obsolete_pages()
    if kvm.tdp_mmu_enabled:
        kvm.kvm_tdp_mmu_zap_invalidated_roots()


def get_mmio_spte_gfn(kvm, spte: int) -> int:
    """mmu.c get_mmio_spte_gfn (all blobs).  Without the L1TF mask the gfn bits are
    12..(MAXPHYADDR-1); the model's host has 46 physical address bits.  Both masks are the
    VM's kernel globals (spte.SpteMasks.as_globals), as the C reads them."""
    gpa = spte & kvm.shadow_nonpresent_or_rsvd_lower_gfn_mask
    gpa |= (spte >> SHADOW_NONPRESENT_OR_RSVD_MASK_LEN) & kvm.shadow_nonpresent_or_rsvd_mask
    return gpa >> PAGE_SHIFT


_HELPERS = (__set_spte, __update_clear_spte_fast, __update_clear_spte_slow, __get_spte_lockless,
            kvm_flush_remote_tlbs_sptep)
_ALL_BLOBS = (mmu_spte_set, mmu_spte_update_no_track, mmu_spte_clear_no_track, mmu_spte_get_lockless,
              kvm_available_flush_remote_tlbs_range, drop_spte, drop_large_spte, spte_write_protect,
              rmap_write_protect, spte_clear_dirty, kvm_zap_one_rmap_spte, kvm_zap_all_rmap_sptes,
              __kvm_zap_rmap, kvm_zap_rmap, kvm_set_pte_rmap, kvm_age_rmap, kvm_test_age_rmap,
              kvm_unmap_gfn_range, kvm_set_spte_gfn, kvm_age_gfn, kvm_test_age_gfn,
              kvm_rmap_zap_gfn_range, kvm_zap_gfn_range, mmu_page_zap_pte,
              kvm_mmu_page_unlink_children, kvm_mmu_unlink_parents, kvm_unlink_unsync_page,
              mmu_zap_unsync_children, __kvm_mmu_prepare_zap_page, kvm_mmu_prepare_zap_page,
              kvm_mmu_commit_zap_page, kvm_mmu_free_shadow_page, kvm_mmu_zap_all,
              kvm_zap_obsolete_pages, kvm_mmu_zap_all_fast, get_mmio_spte_gfn)

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
    + mmu_fault.MODEL_TABLE
    + mmu_rmap.MODEL_TABLE
    + mmu_slot.MODEL_TABLE
    + mmu_mmio.MODEL_TABLE
    + page_track.MODEL_TABLE
)
