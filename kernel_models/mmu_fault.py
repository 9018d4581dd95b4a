"""arch/x86/kvm/mmu/mmu.c, part 2: shadow pages and the page-fault paths.

Split from ``mmu.py`` only to keep each module readable; ``mmu.py`` appends
this module's ``MODEL_TABLE`` to its own (the registry lists
``kernel_models.mmu`` only).  Hugepage level selection is in ``mmu_slot.py``.
This module holds:

- the reduced ``kvm_vcpu`` and the shadow walk (``for_each_shadow_entry``);
- shadow-page lookup, allocation and linking (``kvm_mmu_get_child_sp``,
  ``__link_shadow_page``...), unsync marking and ``mmu_try_to_unsync_pages``;
- ``mmu_set_spte``, ``rmap_add``, direct prefetch;
- ``fast_page_fault``, ``kvm_faultin_pfn``,
  ``direct_map``, ``direct_page_fault``, ``kvm_tdp_mmu_page_fault`` and
  ``kvm_tdp_page_fault``.

Every body here is identical in the four mmu.c blobs of the series
(e4cc7f764980, bd2240b94ff6, 0a6c6619d213, 77d1072b130d): the RFC's mmu.c
hunks touch only the SPTE primitives in ``mmu.py`` and a comment in
``fast_pf_fix_direct_spte``.  Facts checked against the stored mmu.c copy of
the v6.9-rc era (index copy 23785373, whose every RFC pre-image matches; see
KERNEL-FACTS.md section 6): ``mmu_set_spte``, ``direct_map``,
``__direct_pte_prefetch``, ``kvm_mmu_get_child_sp``, ``__link_shadow_page``,
``kvm_mmu_find_shadow_page``, ``kvm_mmu_alloc_shadow_page``,
``mmu_try_to_unsync_pages``, ``fast_page_fault``, ``fast_pf_fix_direct_spte``,
``kvm_faultin_pfn``/``__kvm_faultin_pfn``, ``direct_page_fault``,
``kvm_tdp_mmu_page_fault`` and ``kvm_tdp_page_fault`` were read there.

Abstractions (also listed in ``mmu.py``): one thread, so the lockless walk,
cmpxchg and mmu_notifier retry checks always see a stable world
(``mmu_invalidate_retry_gfn*`` are always false); no memory caches or page
limit (``make_mmu_pages_available`` always succeeds); no async page faults,
no private memory, no MTRR level clamping, no NX-hugepage workaround; the
host backs a 2M region with a huge page exactly when all 512 gfns are mapped
to consecutive pfns starting on a 2M-aligned pfn, and never uses 1G pages.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from kernel_models.kvm_main import (KVM_PAGES_PER_HPAGE, KVM_PFN_ERR_FAULT, KVM_PFN_ERR_RO_FAULT,
                                    KVM_PFN_NOSLOT, PG_LEVEL_1G, PG_LEVEL_4K)
from kernel_models.mmu_internal import SPTE_ENT_PER_PAGE, kvm_mmu_page, kvm_mmu_page_role
from kernel_models.registry import KVM_MAIN_C, MMU_C, Version
from kernel_models.spte import PT_PRESENT_MASK, PT_WRITABLE_MASK, REMOVED_SPTE

# mmu_internal.h: page-fault return codes (enum, in this order).
RET_PF_CONTINUE = 0
RET_PF_RETRY = 1
RET_PF_EMULATE = 2
RET_PF_INVALID = 3
RET_PF_FIXED = 4
RET_PF_SPURIOUS = 5

# include/uapi errno values, returned negated as in C.
EPERM = 1
EINTR = 4
EAGAIN = 11
EFAULT = 14
EEXIST = 17
ENOSPC = 28

# mmu.h / spte.h access bits (ACC_WRITE_MASK == PT_WRITABLE_MASK).
ACC_EXEC_MASK = 1
ACC_WRITE_MASK = 2
ACC_USER_MASK = 4
ACC_ALL = 7

KVM_MAX_HUGEPAGE_LEVEL = PG_LEVEL_1G
PG_LEVEL_NUM = 6
PT64_ROOT_4LEVEL = 4
PTE_PREFETCH_NUM = 8
RMAP_RECYCLE_THRESHOLD = 1000

# kvm_mmu_get_child_sp returns ERR_PTR(-EEXIST) when a table is already linked.
ERR_PTR_EEXIST = "ERR_PTR(-EEXIST)"


def gfn_round_for_level(gfn: int, level: int) -> int:
    """mmu.h: the first gfn of the level-aligned region holding ``gfn``."""
    return gfn & -KVM_PAGES_PER_HPAGE(level)


def SPTE_INDEX(address: int, level: int) -> int:  # noqa: N802 - kernel macro
    """spte.h: index of ``address`` in a table of ``level``."""
    return (address >> (12 + 9 * (level - 1))) & (SPTE_ENT_PER_PAGE - 1)


def is_error_pfn(pfn: int) -> bool:
    """kvm_host.h: an error pfn that is not the "no slot" marker."""
    return pfn >= KVM_PFN_ERR_FAULT and pfn != KVM_PFN_NOSLOT


def is_noslot_pfn(pfn: int) -> bool:
    return pfn == KVM_PFN_NOSLOT


@dataclass(eq=False)
class kvm_mmu:  # noqa: N801 - struct kvm_mmu, reduced
    """The vCPU's current MMU: ``root`` stands for ``root.hpa`` (as the page it
    points to), ``root_level`` and ``direct`` for ``root_role.level``/``.direct``,
    ``ad_disabled`` for ``cpu_role.base.ad_disabled`` (read by paging_tmpl.py)."""

    root: kvm_mmu_page | None = None
    root_level: int = PT64_ROOT_4LEVEL
    direct: bool = True
    ad_disabled: bool = False


@dataclass(eq=False)
class kvm_vcpu_arch:  # noqa: N801 - struct kvm_vcpu_arch, reduced
    mmu: kvm_mmu = field(default_factory=kvm_mmu)
    mmio_gva: int = 0               # the MMIO cache (x86.py vcpu_cache_mmio_info)
    mmio_access: int = 0
    mmio_gfn: int = 0
    mmio_gen: int = 0


@dataclass(eq=False)
class kvm_vcpu:  # noqa: N801 - the kernel's name
    """struct kvm_vcpu reduced to its VM and its MMU (``vcpu->arch.mmu``)."""

    kvm: object = None
    vcpu_id: int = 0
    arch: kvm_vcpu_arch = field(default_factory=kvm_vcpu_arch)


@dataclass
class kvm_shadow_walk_iterator:  # noqa: N801
    addr: int
    sp: kvm_mmu_page | None
    level: int
    index: int = 0
    sptep: object = None


def for_each_shadow_entry(kvm, vcpu, addr: int, lockless: bool = False):
    """for_each_shadow_entry / _lockless (mmu.c macros).

    Yields the iterator at each level from the root down.  As in C, the step
    to the next level reads the SPTE *after* the loop body ran (so a body that
    links a child table descends into it); the lockless form decides on the
    value read before the body, as ``__shadow_walk_next(&it, spte)`` does.
    The caller keeps the iterator after ``break``.
    """
    it = kvm_shadow_walk_iterator(addr, vcpu.arch.mmu.root, vcpu.arch.mmu.root.role.level if vcpu.arch.mmu.root else 0)
    while it.level >= PG_LEVEL_4K:
        it.index = SPTE_INDEX(addr, it.level)
        it.sptep = it.sp.sptep(it.index)
        spte = kvm.mmu_spte_get_lockless(it.sptep) if lockless else None
        yield it, spte
        if not lockless:
            spte = it.sptep.get()
        if not kvm.is_shadow_present_pte(spte) or kvm.is_last_spte(spte, it.level):
            it.level = 0
            return
        it.sp = kvm.spte_to_child_sp(spte)
        it.level -= 1


# -- gfn/access bookkeeping of shadow pages -----------------------------------

def sp_has_gptes(kvm, sp) -> bool:
    """mmu.c sp_has_gptes (all blobs): indirect, non-passthrough pages shadow guest PTEs."""
    if sp.role.direct:
        return False
    return True


def kvm_mmu_page_get_gfn(kvm, sp, index: int) -> int:
    """mmu.c kvm_mmu_page_get_gfn (all blobs) (no passthrough pages in this model)."""
    if not sp.role.direct:
        return sp.shadowed_translation[index][0]
    return sp.gfn + index * KVM_PAGES_PER_HPAGE(sp.role.level)


def kvm_mmu_page_get_access(kvm, sp, index: int) -> int:
    """mmu.c kvm_mmu_page_get_access (all blobs)."""
    if kvm.sp_has_gptes(sp):
        return sp.shadowed_translation[index][1]
    return sp.role.access


def kvm_mmu_page_set_translation(kvm, sp, index: int, gfn: int, access: int) -> None:
    """mmu.c kvm_mmu_page_set_translation (all blobs): record, or WARN on a mismatch for direct pages."""
    if kvm.sp_has_gptes(sp):
        sp.shadowed_translation[index] = (gfn, access)
        return
    kvm.WARN_ONCE(access != kvm.kvm_mmu_page_get_access(sp, index), "access mismatch under direct page")
    kvm.WARN_ONCE(gfn != kvm.kvm_mmu_page_get_gfn(sp, index), "gfn mismatch under direct page")


def kvm_mmu_page_set_access(kvm, sp, index: int, access: int) -> None:
    """mmu.c kvm_mmu_page_set_access (all blobs)."""
    gfn = kvm.kvm_mmu_page_get_gfn(sp, index)
    kvm.kvm_mmu_page_set_translation(sp, index, gfn, access)


# -- shadow pages: validity, unsync, write tracking ---------------------------

def is_obsolete_sp(kvm, sp) -> bool:
    """mmu.c is_obsolete_sp (all blobs); ``kvm.mmu_invalid_gen`` stands for kvm->arch.mmu_valid_gen."""
    if sp.role.invalid:
        return True
    return not sp.tdp_mmu_page and sp.mmu_valid_gen != kvm.mmu_invalid_gen


def for_each_gfn_valid_sp_with_gptes(kvm, gfn: int):
    """mmu.c macro over the gfn's hash bucket; the reduced hash is active_mmu_pages."""
    return [sp for sp in kvm.active_mmu_pages
            if not kvm.is_obsolete_sp(sp) and sp.gfn == gfn and kvm.sp_has_gptes(sp)]


def mark_unsync(kvm, spte) -> None:
    """mmu.c mark_unsync (all blobs): flag the parent's child bit and propagate once."""
    sp = kvm.sptep_to_sp(spte)
    if spte.index in sp.unsync_child_bitmap:
        return
    sp.unsync_child_bitmap.add(spte.index)
    sp.unsync_children += 1
    if sp.unsync_children > 1:
        return
    kvm.kvm_mmu_mark_parents_unsync(sp)


def kvm_mmu_mark_parents_unsync(kvm, sp) -> None:
    """mmu.c kvm_mmu_mark_parents_unsync (all blobs)."""
    for sptep in list(sp.parent_ptes):
        kvm.mark_unsync(sptep)


def kvm_unsync_page(kvm, sp) -> None:
    """mmu.c kvm_unsync_page (all blobs) (stats and trace left out)."""
    sp.unsync = True
    kvm.kvm_mmu_mark_parents_unsync(sp)


def mmu_try_to_unsync_pages(kvm, slot, gfn: int, can_unsync: bool, prefetch: bool) -> int:
    """mmu.c mmu_try_to_unsync_pages (all blobs) -> 0, -EPERM or -EEXIST (KERNEL-FACTS 2.3).

    Same body in every mmu.c blob of the series; read in the stored copy.
    The unsync spinlock and its re-check are concurrency-only and left out.
    """
    if kvm.kvm_gfn_is_write_tracked(slot, gfn):
        return -EPERM
    for sp in for_each_gfn_valid_sp_with_gptes(kvm, gfn):
        if not can_unsync:
            return -EPERM
        if sp.unsync:
            continue
        if prefetch:
            return -EEXIST
        kvm.WARN_ON_ONCE(sp.role.level != PG_LEVEL_4K, "mmu_try_to_unsync_pages: unsync above 4K")
        kvm.kvm_unsync_page(sp)
    return 0


def account_shadowed(kvm, sp) -> None:
    """mmu.c account_shadowed (all blobs; v6.9 db007a4dffa2): a page above 4K
    write-tracks its gfn (page_track.__kvm_write_track_add_gfn); a 4K page
    write-protects it.  The indirect page count and the 4K lpage disallow count
    are derived (from active_mmu_pages; ``mmu_slot.kvm_lpage_disallowed``)."""
    gfn = sp.gfn
    slot = kvm.gfn_to_memslot(gfn)
    if sp.role.level > PG_LEVEL_4K:
        return kvm.__kvm_write_track_add_gfn(slot, gfn)
    if kvm.kvm_mmu_slot_gfn_write_protect(slot, gfn, PG_LEVEL_4K):
        kvm.kvm_flush_remote_tlbs_gfn(gfn, PG_LEVEL_4K)


def unaccount_shadowed(kvm, sp) -> None:
    """mmu.c unaccount_shadowed (all blobs; v6.9 db007a4dffa2): a page above 4K drops
    its write tracker; the 4K lpage count is derived."""
    gfn = sp.gfn
    slot = kvm.gfn_to_memslot(gfn)
    if sp.role.level > PG_LEVEL_4K:
        return kvm.__kvm_write_track_remove_gfn(slot, gfn)


# -- shadow page lookup, allocation, linking ----------------------------------

def kvm_sync_page_check(kvm, vcpu, sp) -> bool:
    """mmu.c kvm_sync_page_check (all blobs), reduced: direct pages are never unsync (the role
    comparison against the vCPU's MMU is not modelled)."""
    if kvm.WARN_ON_ONCE(sp.role.direct, "kvm_sync_page_check: direct page"):
        return False
    return True


def kvm_sync_spte(kvm, vcpu, sp, i: int) -> int:
    """mmu.c kvm_sync_spte (all blobs): the MMU's sync_spte hook is paging_tmpl's FNAME(sync_spte)."""
    if not sp.spt.get(i, 0):
        return 0
    return getattr(kvm, "FNAME(sync_spte)")(vcpu, sp, i)


def __kvm_sync_page(kvm, vcpu, sp) -> int:
    """mmu.c __kvm_sync_page (all blobs): <0 to zap, else non-zero when a flush is needed.

    As in C, a -1 from one entry is OR-ed into ``flush`` and so fails the page.
    Absent entries are 0 and skipped by kvm_sync_spte, so only stored ones are visited.
    """
    flush = 0
    if not kvm.kvm_sync_page_check(vcpu, sp):
        return -1
    for i in sorted(sp.spt):
        ret = kvm.kvm_sync_spte(vcpu, sp, i)
        if ret < -1:
            return -1
        flush |= ret
    return flush


def kvm_sync_page(kvm, vcpu, sp, invalid_list) -> int:
    """mmu.c kvm_sync_page (all blobs): zap the page when the sync fails."""
    ret = kvm.__kvm_sync_page(vcpu, sp)
    if ret < 0:
        kvm.kvm_mmu_prepare_zap_page(sp, invalid_list)
    return ret


def kvm_mmu_find_shadow_page(kvm, vcpu, gfn: int, sp_list, role):
    """mmu.c kvm_mmu_find_shadow_page (all blobs) over the reduced hash (``sp_list``).

    Reusing an unsync page syncs it through ``kvm_sync_page`` (paging_tmpl's
    sync_spte); collisions and stats are not modelled.
    """
    invalid_list: list = []
    found = None
    for sp in list(sp_list):
        if kvm.is_obsolete_sp(sp):
            continue
        if sp.gfn != gfn:
            continue
        if sp.role != role:
            if role.level > PG_LEVEL_4K and sp.unsync:
                kvm.kvm_mmu_prepare_zap_page(sp, invalid_list)
            continue
        if sp.role.direct:
            found = sp
            break
        if sp.unsync:
            ret = kvm.kvm_sync_page(vcpu, sp, invalid_list)
            if ret < 0:
                break
            kvm.WARN_ON_ONCE(len(invalid_list) != 0, "kvm_mmu_find_shadow_page: zapped while syncing")
            if ret > 0:
                kvm.kvm_flush_remote_tlbs()
        found = sp
        break
    kvm.kvm_mmu_commit_zap_page(invalid_list)
    return found


def kvm_mmu_alloc_shadow_page(kvm, caches, gfn: int, sp_list, role):
    """mmu.c kvm_mmu_alloc_shadow_page (all blobs): new page at the head of active_mmu_pages.

    ``sp_list`` (the hash bucket) is the same list as active_mmu_pages here,
    so the single insert stands for both list_add and hlist_add_head.
    """
    sp = kvm_mmu_page(kvm, dataclasses.replace(role), gfn, tdp_mmu_page=False)
    sp.mmu_valid_gen = kvm.mmu_invalid_gen
    sp.unsync_children = 0
    sp.unsync_child_bitmap = set()
    sp_list.insert(0, sp)
    if kvm.sp_has_gptes(sp):
        kvm.account_shadowed(sp)
    return sp


def __kvm_mmu_get_shadow_page(kvm, vcpu, caches, gfn: int, role):
    """mmu.c __kvm_mmu_get_shadow_page (all blobs): find, else allocate (memory caches ignored)."""
    sp_list = kvm.active_mmu_pages
    sp = kvm.kvm_mmu_find_shadow_page(vcpu, gfn, sp_list, role)
    if sp is None:
        sp = kvm.kvm_mmu_alloc_shadow_page(caches, gfn, sp_list, role)
    return sp


def kvm_mmu_get_shadow_page(kvm, vcpu, gfn: int, role):
    """mmu.c kvm_mmu_get_shadow_page (all blobs)."""
    return kvm.__kvm_mmu_get_shadow_page(vcpu, None, gfn, role)


def kvm_mmu_child_role(kvm, sptep, direct: bool, access: int):
    """mmu.c kvm_mmu_child_role (all blobs) (no 4-byte guest PTEs, so no quadrant)."""
    parent_sp = kvm.sptep_to_sp(sptep)
    role = dataclasses.replace(parent_sp.role)
    role.level -= 1
    role.access = access
    role.direct = direct
    return role


def kvm_mmu_get_child_sp(kvm, vcpu, sptep, gfn: int, direct: bool, access: int):
    """mmu.c kvm_mmu_get_child_sp (all blobs): ERR_PTR(-EEXIST) when a table is already linked."""
    if kvm.is_shadow_present_pte(sptep.get()) and not kvm.is_large_pte(sptep.get()):
        return ERR_PTR_EEXIST
    role = kvm.kvm_mmu_child_role(sptep, direct, access)
    return kvm.kvm_mmu_get_shadow_page(vcpu, gfn, role)


def __link_shadow_page(kvm, cache, sptep, sp, flush: bool) -> None:
    """mmu.c __link_shadow_page (all blobs): drop a huge leaf in the way, then link ``sp``."""
    if kvm.is_shadow_present_pte(sptep.get()):
        kvm.drop_large_spte(sptep, flush)
    spte = kvm.make_nonleaf_spte(sp, kvm.sp_ad_disabled(sp))
    kvm.mmu_spte_set(sptep, spte)
    kvm.mmu_page_add_parent_pte(cache, sp, sptep)
    if kvm.WARN_ON_ONCE(sp.unsync_children, "__link_shadow_page: child has unsync children") or sp.unsync:
        kvm.mark_unsync(sptep)


def link_shadow_page(kvm, vcpu, sptep, sp) -> None:
    """mmu.c link_shadow_page (all blobs): always flushes when it drops a huge leaf."""
    kvm.__link_shadow_page(None, sptep, sp, True)


def mmu_alloc_root(kvm, vcpu, gfn: int, quadrant: int, level: int):
    """mmu.c mmu_alloc_root (all blobs) for a direct MMU (returns the page, standing for its hpa)."""
    role = kvm_mmu_page_role(level=level, direct=True, ad_disabled=not kvm.kvm_ad_enabled())
    sp = kvm.kvm_mmu_get_shadow_page(vcpu, gfn, role)
    sp.root_count += 1
    return sp


def mmu_alloc_direct_roots(kvm, vcpu) -> int:
    """mmu.c mmu_alloc_direct_roots (all blobs) (4-level roots only; no page limit)."""
    if kvm.tdp_mmu_enabled:
        return kvm.kvm_tdp_mmu_alloc_root(vcpu)
    vcpu.arch.mmu.root = kvm.mmu_alloc_root(vcpu, 0, 0, vcpu.arch.mmu.root_level)
    return 0


# -- installing a leaf ----------------------------------------------------------

def mark_mmio_spte(kvm, vcpu, sptep, gfn: int, access: int) -> None:
    """mmu.c mark_mmio_spte (all blobs)."""
    spte = kvm.make_mmio_spte(vcpu, gfn, access)
    kvm.mmu_spte_set(sptep, spte)


def rmap_add(kvm, vcpu, slot, spte, gfn: int, access: int) -> None:
    """mmu.c rmap_add (all blobs)."""
    kvm.__rmap_add(None, slot, spte, gfn, access)


def mmu_set_spte(kvm, vcpu, slot, sptep, pte_access: int, gfn: int, pfn: int, fault) -> int:
    """mmu.c mmu_set_spte -> RET_PF_* (KERNEL-FACTS 2.1; same body in all four blobs).

    Confirmed in the stored copy: drop_parent_pte for a replaced table,
    drop_spte for a changed pfn, make_spte with can_unsync=true, the
    spurious test against the old value, the gfn-ranged flush, rmap_add only
    when not rmapped before.
    """
    sp = kvm.sptep_to_sp(sptep)
    level = sp.role.level
    was_rmapped = 0
    ret = RET_PF_FIXED
    flush = False
    host_writable = fault is None or fault.map_writable
    prefetch = fault is None or fault.prefetch
    write_fault = fault is not None and fault.write
    if is_noslot_pfn(pfn):
        kvm.mark_mmio_spte(vcpu, sptep, gfn, pte_access)
        return RET_PF_EMULATE
    if kvm.is_shadow_present_pte(sptep.get()):
        if level > PG_LEVEL_4K and not kvm.is_large_pte(sptep.get()):
            child = kvm.spte_to_child_sp(sptep.get())
            kvm.drop_parent_pte(child, sptep)
            flush = True
        elif pfn != kvm.spte_to_pfn(sptep.get()):
            kvm.drop_spte(sptep)
            flush = True
        else:
            was_rmapped = 1
    wrprot, spte = kvm.make_spte(vcpu, sp, slot, pte_access, gfn, pfn, sptep.get(), prefetch,
                                 True, host_writable)
    if sptep.get() == spte:
        ret = RET_PF_SPURIOUS
    else:
        flush |= kvm.mmu_spte_update(sptep, spte)
    if wrprot:
        if write_fault:
            ret = RET_PF_EMULATE
    if flush:
        kvm.kvm_flush_remote_tlbs_gfn(gfn, level)
    if not was_rmapped:
        kvm.WARN_ON_ONCE(ret == RET_PF_SPURIOUS, "mmu_set_spte: spurious on a new mapping")
        kvm.rmap_add(vcpu, slot, sptep, gfn, pte_access)
    else:
        kvm.kvm_mmu_page_set_access(sp, sptep.index, pte_access)
    return ret


def gfn_to_page_many_atomic(kvm, slot, gfn: int, nr_pages: int) -> list[int]:
    """kvm_main.c gfn_to_page_many_atomic, reduced: the pfns it got, each with a reference.

    As in C: no pages when the slot is unusable for writing (gfn_to_hva_many
    gives an error hva: no slot, an invalid slot or a read-only slot), and
    none either when fewer than ``nr_pages`` gfns are left in the slot from
    ``gfn`` (the ``entry < nr_pages`` gate returns 0, it does not clip).
    Otherwise stops at the first gfn the host does not map writable (fast
    GUP asks for write access) or without a struct page, as fast GUP stops
    at the first miss.  The gate was read in kvm_main.c copies found by the
    search index (ids 5281045917, 36285944880) and in a 2020 patch context
    (id 44395407325); the GUP call differs across eras, not the gate.
    """
    pages = []
    if slot is None or getattr(slot, "invalid", False) or slot.flags & 2:
        return pages                              # kvm_is_error_hva: -1
    if slot.base_gfn + slot.npages - gfn < nr_pages:
        return pages                              # entry < nr_pages: 0
    for i in range(nr_pages):
        if gfn + i not in kvm.host:
            break
        pfn, host_writable = kvm.host[gfn + i]
        page = kvm.kvm_pfn_to_refcounted_page(pfn)
        if not host_writable or page is None:
            break
        kvm.get_page(page)
        pages.append(page)
    return pages


def direct_pte_prefetch_many(kvm, vcpu, sp, start, end) -> int:
    """mmu.c direct_pte_prefetch_many (all blobs): map [start, end) and put each page (no A mark)."""
    access = sp.role.access
    gfn = kvm.kvm_mmu_page_get_gfn(sp, start.index)
    slot = kvm.gfn_to_memslot_dirty_bitmap(vcpu, gfn, access & ACC_WRITE_MASK)
    if slot is None:
        return -1
    pages = kvm.gfn_to_page_many_atomic(slot, gfn, end.index - start.index)
    if len(pages) <= 0:
        return -1
    for i, page in enumerate(pages):
        kvm.mmu_set_spte(vcpu, slot, sp.sptep(start.index + i), access, gfn + i, page, None)
        kvm.put_page(page)
    return 0


def __direct_pte_prefetch(kvm, vcpu, sp, sptep) -> None:
    """mmu.c __direct_pte_prefetch (all blobs): runs of non-present entries in the aligned window of 8."""
    kvm.WARN_ON_ONCE(not sp.role.direct, "__direct_pte_prefetch: indirect page")
    first = sptep.index & ~(PTE_PREFETCH_NUM - 1)
    start = None
    for i in range(first, first + PTE_PREFETCH_NUM):
        spte = sp.sptep(i)
        if kvm.is_shadow_present_pte(spte.get()) or spte == sptep:
            if start is None:
                continue
            if kvm.direct_pte_prefetch_many(vcpu, sp, start, spte) < 0:
                return
            start = None
        elif start is None:
            start = spte
    if start is not None:
        kvm.direct_pte_prefetch_many(vcpu, sp, start, sp.sptep(first + PTE_PREFETCH_NUM))


def direct_pte_prefetch(kvm, vcpu, sptep) -> None:
    """mmu.c direct_pte_prefetch (all blobs): skipped without A/D bits, above 4K and while
    an mmu_notifier invalidation is in progress (as FNAME(pte_prefetch))."""
    sp = kvm.sptep_to_sp(sptep)
    if kvm.sp_ad_disabled(sp):
        return
    if sp.role.level > PG_LEVEL_4K:
        return
    if kvm.mmu_invalidate_in_progress:
        return
    kvm.__direct_pte_prefetch(vcpu, sp, sptep)


# -- fast page fault ------------------------------------------------------------

def page_fault_can_be_fast(kvm, fault) -> bool:
    """mmu.c page_fault_can_be_fast (all blobs); no fault the models raise sets ``rsvd``."""
    if fault.rsvd:
        return False
    if not fault.present:
        return not kvm.kvm_ad_enabled()
    return fault.write


def fast_pf_fix_direct_spte(kvm, vcpu, fault, sptep, old_spte: int, new_spte: int) -> bool:
    """mmu.c fast_pf_fix_direct_spte (all blobs): cmpxchg, then log the gfn if W was set.

    No page A/D marking at any blob (2/4 edits only its comment).
    """
    if sptep.get() != old_spte:
        return False
    sptep.set(new_spte)
    if kvm.is_writable_pte(new_spte) and not kvm.is_writable_pte(old_spte):
        kvm.mark_page_dirty_in_slot(fault.slot, fault.gfn)
    return True


def is_access_allowed(kvm, fault, spte: int) -> bool:
    """mmu.c is_access_allowed (all blobs)."""
    if fault.exec:
        return kvm.is_executable_pte(spte)
    if fault.write:
        return kvm.is_writable_pte(spte)
    return bool(spte & PT_PRESENT_MASK)


def fast_pf_get_last_sptep(kvm, vcpu, gpa: int):
    """mmu.c fast_pf_get_last_sptep (all blobs) -> (sptep, spte) of the last level walked."""
    sptep = None
    spte = 0
    for it, old_spte in for_each_shadow_entry(kvm, vcpu, gpa, lockless=True):
        sptep = it.sptep
        spte = old_spte
    return sptep, spte


def fast_page_fault(kvm, vcpu, fault) -> int:
    """mmu.c fast_page_fault (all blobs) -> RET_PF_INVALID, _FIXED or _SPURIOUS.

    Same decisions as C: stop on non-present or non-leaf, spurious if the
    access is already allowed, restore an access-tracked SPTE when A/D bits
    are off, set W on MMU-writable SPTEs (not on a huge SPTE of a dirty-logged
    slot), give up when nothing would change, retry the cmpxchg at most 4
    more times.  The lockless-walk bracketing is a no-op with one thread.
    """
    ret = RET_PF_INVALID
    retry_count = 0
    if not kvm.page_fault_can_be_fast(fault):
        return ret
    while True:
        if kvm.tdp_mmu_enabled:
            sptep, spte = kvm.kvm_tdp_mmu_fast_pf_get_last_sptep(vcpu, fault.addr)
        else:
            sptep, spte = kvm.fast_pf_get_last_sptep(vcpu, fault.addr)
        if kvm.WARN_ON_ONCE(sptep is None, "fast_page_fault: no root to walk"):
            spte = REMOVED_SPTE
        if not kvm.is_shadow_present_pte(spte):
            break
        sp = kvm.sptep_to_sp(sptep)
        if not kvm.is_last_spte(spte, sp.role.level):
            break
        if kvm.is_access_allowed(fault, spte):
            ret = RET_PF_SPURIOUS
            break
        new_spte = spte
        if not kvm.kvm_ad_enabled() and kvm.is_access_track_spte(spte):
            new_spte = kvm.restore_acc_track_spte(new_spte)
        if fault.write and kvm.is_mmu_writable_spte(spte):
            new_spte |= PT_WRITABLE_MASK
            if sp.role.level > PG_LEVEL_4K and kvm.kvm_slot_dirty_track_enabled(fault.slot):
                break
        if new_spte == spte or not kvm.is_access_allowed(fault, new_spte):
            break
        if kvm.fast_pf_fix_direct_spte(vcpu, fault, sptep, spte, new_spte):
            ret = RET_PF_FIXED
            break
        retry_count += 1
        if retry_count > 4:
            break
    return ret


# -- getting the pfn --------------------------------------------------------------

def kvm_handle_error_pfn(kvm, vcpu, fault) -> int:
    """mmu.c kvm_handle_error_pfn (all blobs; copy 23785373): a write through a
    read-only memslot is emulated (no MMIO info cached, no SPTE); any other
    error pfn is a plain fault here (no signals or poisoned pages are modelled)."""
    if fault.pfn == KVM_PFN_ERR_RO_FAULT:
        return RET_PF_EMULATE
    return -EFAULT


def kvm_handle_noslot_fault(kvm, vcpu, fault, access: int) -> int:
    """mmu.c kvm_handle_noslot_fault (all blobs; v6.9 db007a4dffa2): cache the MMIO info, then
    (MMIO caching on, gfns far below the host MAXPHYADDR) go on to map an MMIO SPTE."""
    gva = 0 if fault.is_tdp else fault.addr
    kvm.vcpu_cache_mmio_info(vcpu, gva, fault.gfn, access & kvm.shadow_mmio_access_mask)
    return RET_PF_CONTINUE


def __kvm_faultin_pfn(kvm, vcpu, fault) -> int:
    """mmu.c __kvm_faultin_pfn (all blobs): one synchronous __gfn_to_pfn_memslot (takes a reference)."""
    slot = fault.slot
    fault.pfn, fault.map_writable = kvm.__gfn_to_pfn_memslot(slot, fault.gfn, False, fault.write)
    return RET_PF_CONTINUE


def kvm_faultin_pfn(kvm, vcpu, fault, access: int) -> int:
    """mmu.c kvm_faultin_pfn (all blobs) (the mmu_notifier retry checks never fire here)."""
    ret = kvm.__kvm_faultin_pfn(vcpu, fault)
    if ret != RET_PF_CONTINUE:
        return ret
    if is_error_pfn(fault.pfn):
        return kvm.kvm_handle_error_pfn(vcpu, fault)
    if fault.slot is None:
        return kvm.kvm_handle_noslot_fault(vcpu, fault, access)
    return RET_PF_CONTINUE


def page_fault_handle_page_track(kvm, vcpu, fault) -> bool:
    """mmu.c page_fault_handle_page_track (all blobs): writes to write-tracked gfns are emulated."""
    if fault.rsvd:
        return False
    if not fault.present or not fault.write:
        return False
    if kvm.kvm_gfn_is_write_tracked(fault.slot, fault.gfn):
        return True
    return False


def is_page_fault_stale(kvm, vcpu, fault) -> bool:
    """mmu.c is_page_fault_stale (all blobs): only an obsolete root makes a fault stale here."""
    sp = vcpu.arch.mmu.root
    if sp is not None and kvm.is_obsolete_sp(sp):
        return True
    return False


# -- the fault paths ----------------------------------------------------------------

def direct_map(kvm, vcpu, fault) -> int:
    """mmu.c direct_map (all blobs): link tables down to goal_level, install, prefetch."""
    base_gfn = fault.gfn
    kvm.kvm_mmu_hugepage_adjust(vcpu, fault)
    it = None
    for it, _ in for_each_shadow_entry(kvm, vcpu, fault.addr):
        base_gfn = gfn_round_for_level(fault.gfn, it.level)
        if it.level == fault.goal_level:
            break
        sp = kvm.kvm_mmu_get_child_sp(vcpu, it.sptep, base_gfn, True, ACC_ALL)
        if sp is ERR_PTR_EEXIST:
            continue
        kvm.link_shadow_page(vcpu, it.sptep, sp)
    if kvm.WARN_ON_ONCE(it is None or it.level != fault.goal_level, "direct_map: walk ended early"):
        return -EFAULT
    ret = kvm.mmu_set_spte(vcpu, fault.slot, it.sptep, ACC_ALL, base_gfn, fault.pfn, fault)
    if ret == RET_PF_SPURIOUS:
        return ret
    kvm.direct_pte_prefetch(vcpu, it.sptep)
    return ret


def direct_page_fault(kvm, vcpu, fault) -> int:
    """mmu.c direct_page_fault (all blobs): the reference taken at faultin is always
    dropped with kvm_release_pfn_clean (marks accessed) after the map."""
    if kvm.WARN_ON_ONCE(vcpu.arch.mmu.root is None, "direct_page_fault: no root (dummy root)"):
        return RET_PF_RETRY
    if kvm.page_fault_handle_page_track(vcpu, fault):
        return RET_PF_EMULATE
    r = kvm.fast_page_fault(vcpu, fault)
    if r != RET_PF_INVALID:
        return r
    r = kvm.kvm_faultin_pfn(vcpu, fault, ACC_ALL)
    if r != RET_PF_CONTINUE:
        return r
    r = RET_PF_RETRY
    if not kvm.is_page_fault_stale(vcpu, fault):
        r = kvm.direct_map(vcpu, fault)
    kvm.kvm_release_pfn_clean(fault.pfn)
    return r


def kvm_tdp_mmu_page_fault(kvm, vcpu, fault) -> int:
    """mmu.c kvm_tdp_mmu_page_fault (all blobs): as direct_page_fault, mapping with kvm_tdp_mmu_map."""
    if kvm.page_fault_handle_page_track(vcpu, fault):
        return RET_PF_EMULATE
    r = kvm.fast_page_fault(vcpu, fault)
    if r != RET_PF_INVALID:
        return r
    r = kvm.kvm_faultin_pfn(vcpu, fault, ACC_ALL)
    if r != RET_PF_CONTINUE:
        return r
    r = RET_PF_RETRY
    if not kvm.is_page_fault_stale(vcpu, fault):
        r = kvm.kvm_tdp_mmu_map(vcpu, fault)
    kvm.kvm_release_pfn_clean(fault.pfn)
    return r


def kvm_tdp_page_fault(kvm, vcpu, fault) -> int:
    """mmu.c kvm_tdp_page_fault (all blobs) (guest MTRRs are never honoured here)."""
    if kvm.tdp_mmu_enabled:
        return kvm.kvm_tdp_mmu_page_fault(vcpu, fault)
    return kvm.direct_page_fault(vcpu, fault)


_PLAIN = (sp_has_gptes, kvm_mmu_page_get_gfn, kvm_mmu_page_get_access, kvm_mmu_page_set_translation,
          kvm_mmu_page_set_access, is_obsolete_sp,
          mark_unsync, kvm_mmu_mark_parents_unsync, kvm_unsync_page,
          mmu_try_to_unsync_pages, account_shadowed, unaccount_shadowed, kvm_sync_page_check, kvm_sync_spte,
          __kvm_sync_page, kvm_sync_page, kvm_mmu_find_shadow_page,
          kvm_mmu_alloc_shadow_page, __kvm_mmu_get_shadow_page, kvm_mmu_get_shadow_page,
          kvm_mmu_child_role, kvm_mmu_get_child_sp, __link_shadow_page, link_shadow_page,
          mmu_alloc_root, mmu_alloc_direct_roots, mark_mmio_spte, rmap_add, mmu_set_spte,
          direct_pte_prefetch_many, __direct_pte_prefetch, direct_pte_prefetch,
          page_fault_can_be_fast, fast_pf_fix_direct_spte, is_access_allowed,
          fast_pf_get_last_sptep, fast_page_fault, kvm_handle_error_pfn, kvm_handle_noslot_fault,
          __kvm_faultin_pfn, kvm_faultin_pfn, page_fault_handle_page_track, is_page_fault_stale,
          direct_map, direct_page_fault, kvm_tdp_mmu_page_fault, kvm_tdp_page_fault)

MODEL_TABLE = (
    tuple(Version(MMU_C, f.__name__, f) for f in _PLAIN)
    + (Version(KVM_MAIN_C, "gfn_to_page_many_atomic", gfn_to_page_many_atomic, helper=True),)
)
