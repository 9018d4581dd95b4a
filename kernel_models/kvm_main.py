"""Effect helpers of virt/kvm/kvm_main.c (and the few header macros around them).

These are the leaves that produce effects: marking a folio accessed or dirty,
taking and dropping page references, flushing remote TLBs, marking a gfn in
the memslot dirty log, WARN/BUG.  Each appends a typed event to ``kvm.log``.
They are registered as helpers, so each event is attributed to the modelled
function that called them.

Facts (kvm_main.c at v6.9, KERNEL-FACTS.md 2.5, confirmed against patch
contexts of Sean's later removal of kvm_{release,set}_pfn_* and David Stevens'
kvm_follow_pfn series):

- kvm_set_pfn_accessed / kvm_set_pfn_dirty: return on error/noslot pfns, act
  only on pfns with a struct page (``kvm_pfn_to_refcounted_page``); no
  refcount change.
- kvm_release_pfn_clean: mark accessed, then put_page; kvm_release_pfn_dirty:
  mark dirty, then release clean.
- The gfn->pfn lookups used at fault time (``__gfn_to_pfn_memslot``) and by
  prefetch (``gfn_to_pfn_memslot_atomic``) take a page reference.

Abstractions: pfns below ``KVM_PFN_ERR_FAULT`` are ordinary refcounted guest
pages, except those listed in ``kvm.reserved_pfns`` (no struct page, e.g.
MMIO or PG_reserved memory); ``page_refcount`` counts only references KVM
holds, so a balanced operation returns it to 0.  WARN_ON_ONCE fires every
time (the log is per operation).
"""

from __future__ import annotations

from kernel_models.effects import (Bug, FolioAccessed, FolioDirty, MemslotDirty, PageRefGet,
                                   PageRefPut, StatChange, TlbFlush, Warn)
from kernel_models.registry import KVM_MAIN_C, MMU_INTERNAL_H, Version

KVM_PFN_ERR_FAULT = 1 << 52          # stands for the error pfn range
KVM_PFN_NOSLOT = KVM_PFN_ERR_FAULT | (1 << 1)
KVM_PFN_ERR_RO_FAULT = KVM_PFN_ERR_FAULT | (1 << 2)   # a write through a read-only memslot

KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS = 1 << 63    # include/linux/kvm_host.h

PG_LEVEL_4K = 1
PG_LEVEL_2M = 2
PG_LEVEL_1G = 3


def KVM_PAGES_PER_HPAGE(level: int) -> int:  # noqa: N802 - kernel macro name
    return 1 << ((level - 1) * 9)


def is_error_noslot_pfn(kvm, pfn: int) -> bool:
    return pfn >= KVM_PFN_ERR_FAULT


def kvm_pfn_to_refcounted_page(kvm, pfn: int):
    """The pfn itself stands for its struct page; None for reserved pfns."""
    if pfn in getattr(kvm, "reserved_pfns", ()):
        return None
    return pfn


def kvm_set_page_accessed(kvm, page) -> None:
    kvm.emit(FolioAccessed(pfn=page))


def kvm_set_page_dirty(kvm, page) -> None:
    kvm.emit(FolioDirty(pfn=page))


def kvm_set_pfn_accessed(kvm, pfn: int) -> None:
    if kvm.WARN_ON_ONCE(kvm.is_error_noslot_pfn(pfn), "kvm_set_pfn_accessed: error pfn"):
        return
    page = kvm.kvm_pfn_to_refcounted_page(pfn)
    if page is not None:
        kvm.kvm_set_page_accessed(page)


def kvm_set_pfn_dirty(kvm, pfn: int) -> None:
    if kvm.WARN_ON_ONCE(kvm.is_error_noslot_pfn(pfn), "kvm_set_pfn_dirty: error pfn"):
        return
    page = kvm.kvm_pfn_to_refcounted_page(pfn)
    if page is not None:
        kvm.kvm_set_page_dirty(page)


def page_folio(kvm, page):
    """include/linux/mm.h page_folio: the head pfn of the folio holding ``page``.

    References are counted per folio, as in the kernel: a 2M fault takes its
    reference through a tail page and releases it through the head pfn.  The
    VM lists its 2M host folios by head pfn in ``kvm.huge_folios``.
    """
    head = page & ~511
    if head in getattr(kvm, "huge_folios", ()):
        return head
    return page


def get_page(kvm, page) -> None:
    folio = kvm.page_folio(page)
    kvm.page_refcount[folio] += 1
    kvm.emit(PageRefGet(pfn=folio))


def put_page(kvm, page, dirty: bool = False) -> None:
    folio = kvm.page_folio(page)
    if kvm.page_refcount[folio] <= 0:
        kvm.emit(Bug(what=f"put_page: folio {folio:#x} has no reference left (double release)"))
    kvm.page_refcount[folio] -= 1
    kvm.emit(PageRefPut(pfn=folio, dirty=dirty))


def kvm_release_page_clean(kvm, page) -> None:
    kvm.kvm_set_page_accessed(page)
    kvm.put_page(page)


def kvm_release_page_dirty(kvm, page) -> None:
    kvm.kvm_set_page_dirty(page)
    kvm.kvm_release_page_clean(page)


def kvm_release_pfn_clean(kvm, pfn: int) -> None:
    if kvm.is_error_noslot_pfn(pfn):
        return
    page = kvm.kvm_pfn_to_refcounted_page(pfn)
    if page is None:
        return
    kvm.kvm_release_page_clean(page)


def kvm_release_pfn_dirty(kvm, pfn: int) -> None:
    if kvm.is_error_noslot_pfn(pfn):
        return
    page = kvm.kvm_pfn_to_refcounted_page(pfn)
    if page is None:
        return
    kvm.kvm_release_page_dirty(page)


def __gfn_to_pfn_memslot(kvm, slot, gfn: int, atomic: bool = False, write_fault: bool = False):
    """gfn -> (pfn, writable), taking a reference on the page.

    Returns ``(KVM_PFN_NOSLOT, False)`` without a slot,
    ``(KVM_PFN_ERR_RO_FAULT, False)`` for a write fault on a read-only memslot
    (``__gfn_to_hva_many`` gives KVM_HVA_ERR_RO_BAD, before any page is looked
    up), ``(KVM_PFN_ERR_FAULT, False)`` when the host has no page for the gfn
    (or a write fault hits a read-only host mapping).
    """
    if slot is None:
        return KVM_PFN_NOSLOT, False
    if write_fault and slot.flags & 2:                  # KVM_MEM_READONLY
        return KVM_PFN_ERR_RO_FAULT, False
    if gfn not in kvm.host:
        return KVM_PFN_ERR_FAULT, False
    pfn, host_writable = kvm.host[gfn]
    if write_fault and not host_writable:
        return KVM_PFN_ERR_FAULT, False
    page = kvm.kvm_pfn_to_refcounted_page(pfn)
    if page is not None:
        kvm.get_page(page)
    writable = host_writable and not (slot.flags & 2)   # KVM_MEM_READONLY
    return pfn, writable


def gfn_to_pfn_memslot_atomic(kvm, slot, gfn: int) -> int:
    """Atomic lookup that always asks for write access (write_fault = true, no
    ``writable`` out-parameter), as the v6.9-era body does; a read-only host
    page is therefore an error pfn.  Read in the context of David Stevens'
    kvm_follow_pfn patch that replaced the call (search index ids 35536634224,
    515180057): atomic = true, interruptible = false, async = NULL,
    write_fault = true, writable = NULL, hva = NULL."""
    pfn, _ = kvm.__gfn_to_pfn_memslot(slot, gfn, True, True)
    return pfn


def mark_page_dirty_in_slot(kvm, memslot, gfn: int) -> None:
    if memslot is not None and memslot.flags & 1:      # KVM_MEM_LOG_DIRTY_PAGES
        memslot.dirty_bitmap.add(gfn - memslot.base_gfn)
        kvm.emit(MemslotDirty(gfn=gfn))


def kvm_slot_dirty_track_enabled(kvm, slot) -> bool:
    return slot is not None and bool(slot.flags & 1)


def kvm_arch_nr_memslot_as_ids(kvm) -> int:
    """x86 kvm_host.h: two address spaces (SMM) whatever the VM uses."""
    return 2


def kvm_swap_active_memslots(kvm, as_id: int) -> None:
    """kvm_main.c kvm_swap_active_memslots, reduced to the generation (read in the
    v6.9-era search copy 203102885; kvm_main.c is not in the stored tree): mark the
    update in progress, publish the new slots (the caller already edited
    ``kvm.memslots``; SRCU and the notifier wait are concurrency-only), then drop the
    flag, step the generation by the number of address spaces and tell the arch
    (kvm_arch_memslots_updated) before storing it."""
    gen = kvm.memslots_generation
    kvm.WARN_ON_ONCE(gen & KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS, "kvm_swap_active_memslots: in progress")
    kvm.memslots_generation = gen | KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS
    gen = kvm.memslots_generation & ~KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS
    gen += kvm.kvm_arch_nr_memslot_as_ids()
    kvm.kvm_arch_memslots_updated(gen)
    kvm.memslots_generation = gen


def kvm_flush_remote_tlbs(kvm) -> None:
    kvm.emit(TlbFlush(scope="all"))


def kvm_flush_remote_tlbs_range(kvm, gfn: int, nr_pages: int) -> None:
    kvm.emit(TlbFlush(scope="range", gfn=gfn, pages=nr_pages))


def kvm_flush_remote_tlbs_gfn(kvm, gfn: int, level: int) -> None:
    """mmu.h: flush the level-aligned region containing gfn."""
    pages = KVM_PAGES_PER_HPAGE(level)
    kvm.kvm_flush_remote_tlbs_range(gfn & ~(pages - 1), pages)


def kvm_flush_remote_tlbs_memslot(kvm, memslot) -> None:
    kvm.kvm_flush_remote_tlbs_range(memslot.base_gfn, memslot.npages)


def kvm_update_page_stats(kvm, level: int, count: int) -> None:
    """mmu.h: pages_{4k,2m,1g} statistics."""
    kvm.emit(StatChange(stat="pages", level=level, delta=count))


def WARN_ON_ONCE(kvm, condition, what: str = "") -> bool:  # noqa: N802 - kernel macro
    """include/asm-generic/bug.h: log a Warn when ``condition`` holds; return it."""
    if condition:
        kvm.emit(Warn(what=what or "WARN_ON_ONCE"))
    return bool(condition)


def WARN_ONCE(kvm, condition, what: str = "") -> bool:  # noqa: N802
    return kvm.WARN_ON_ONCE(condition, what)


def KVM_MMU_WARN_ON(kvm, condition, what: str = "") -> bool:  # noqa: N802
    """mmu_internal.h: only checked with CONFIG_KVM_PROVE_MMU (``kvm.prove_mmu``)."""
    if kvm.prove_mmu:
        return kvm.WARN_ON_ONCE(condition, what)
    return False


def BUG(kvm, what: str = "") -> None:  # noqa: N802
    kvm.emit(Bug(what=what or "BUG"))


def KVM_BUG_ON_DATA_CORRUPTION(kvm, condition, what: str = "") -> bool:  # noqa: N802
    if condition:
        kvm.emit(Bug(what=what or "KVM_BUG_ON_DATA_CORRUPTION"))
    return bool(condition)


_HELPERS = (kvm_set_page_accessed, kvm_set_page_dirty, kvm_set_pfn_accessed, kvm_set_pfn_dirty,
            get_page, put_page, kvm_release_page_clean, kvm_release_page_dirty,
            kvm_release_pfn_clean, kvm_release_pfn_dirty, __gfn_to_pfn_memslot,
            gfn_to_pfn_memslot_atomic, mark_page_dirty_in_slot, kvm_flush_remote_tlbs,
            kvm_flush_remote_tlbs_range, kvm_update_page_stats, WARN_ON_ONCE, WARN_ONCE,
            KVM_MMU_WARN_ON, BUG, KVM_BUG_ON_DATA_CORRUPTION)
_PLAIN = (page_folio, is_error_noslot_pfn, kvm_pfn_to_refcounted_page, kvm_slot_dirty_track_enabled,
          kvm_arch_nr_memslot_as_ids, kvm_swap_active_memslots)
_MMU_H = (kvm_flush_remote_tlbs_gfn, kvm_flush_remote_tlbs_memslot)

MODEL_TABLE = (
    tuple(Version(KVM_MAIN_C, f.__name__, f, helper=True) for f in _HELPERS)
    + tuple(Version(KVM_MAIN_C, f.__name__, f) for f in _PLAIN)
    + tuple(Version(MMU_INTERNAL_H, f.__name__, f, helper=True) for f in _MMU_H)
)
