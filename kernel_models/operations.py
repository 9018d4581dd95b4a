"""The entry points a VM exercises, and the builder of a small VM to run them on.

Each operation is a plain function ``op(kvm, **args) -> None`` standing for
what generic KVM code, x86.c or the CPU does around the modelled kernel entry
points: it calls those entry points through the VM (``kvm.kvm_unmap_gfn_range``,
``kvm.kvm_tdp_page_fault``...), never re-implements them, and leaves every
effect in ``kvm.log``.  The few steps of generic code an operation performs
itself (the flush ``kvm_handle_hva_range`` issues when a handler returns true,
the memslot flush after enabling dirty logging) are calls to the modelled
helpers too, run with the generic function's name on the call stack, so
their events say where they come from (``by``).

``OPERATIONS`` maps a name to an ``Operation``: the function, the MMUs it
applies to (``"tdp"``: TDP MMU; ``"shadow"``: shadow MMU with direct roots,
i.e. TDP without the TDP MMU; with either, one indirect shadow page stands
for a nested guest's page table, which the shadow MMU always handles, so
under the TDP MMU creating it turns rmaps on as mmu_first_shadow_root_alloc
does), the encoding modes where the kernel path exists,
a Hypothesis strategy for its arguments, and a one-line description.

The VM (``new_vm``): one memslot of 1024 gfns at gfn 0 (so 2M pages fit),
host pages gfn -> pfn ``0x200 + gfn`` (2M-aligned runs, so the host maps
huge pages; pfns stay below the page-table pfns, which start at 0x800), one
vCPU with a loaded root, the guest page table shadowed by the indirect page
at ``GUEST_TABLE_GFN``.  Abstractions: one vCPU, one thread; the vCPU
reloads an obsolete root before every vCPU operation (``enter_guest``,
standing for KVM_REQ_MMU_FREE_OBSOLETE_ROOTS + kvm_mmu_reload); the L2 walk
(FNAME(fetch), FNAME(page_fault)) is not modelled, so the indirect page is
not linked under a nested root and the shadow operations drive
FNAME(pte_prefetch) and the INVLPG sync path on it directly.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from dataclasses import dataclass
from typing import Callable

from hypothesis import strategies as st

from kernel_models import registry, spte
from kernel_models.entry_points import call
from kernel_models.kvm_main import PG_LEVEL_2M, PG_LEVEL_4K
from kernel_models.mmu_fault import kvm_vcpu
from kernel_models.mmu_internal import (SPTE_ENT_PER_PAGE, kvm_mmu_page, kvm_mmu_page_role,
                                        kvm_page_fault)
from kernel_models.paging_tmpl import (ACC_ALL, PAGE_SHIFT, PTE_PREFETCH_NUM, FNAME, GuestPte,
                                       guest_walker)
from kernel_models.vm import VM, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, kvm_gfn_range
from kernel_models.vm import kvm_memory_slot

SLOT_PAGES = 1024
HOST_PFN_BASE = 0x200          # gfn g is backed by pfn 0x200 + g (2M-aligned runs)
COW_PFN_BASE = 0x600           # change_pte moves a gfn to 0x600 + (g % 0x200) and back
GUEST_TABLE_GFN = 0x3ff        # the guest page table the indirect shadow page shadows
GUEST_TABLE_ENTRIES = 16       # entries the guest table fills (two prefetch groups)
KVM_MAX_HUGEPAGE_LEVEL = 3     # PG_LEVEL_1G

# Page-fault error code bits (arch/x86/include/asm/kvm_host.h).
PFERR_PRESENT_MASK = 1 << 0
PFERR_WRITE_MASK = 1 << 1
PFERR_USER_MASK = 1 << 2
PFERR_FETCH_MASK = 1 << 4

MMUS = ("tdp", "shadow")
MODES = tuple(spte.MODES)        # "legacy", "ept_ad", "ept_noad"


# -- building a VM -------------------------------------------------------------

# PML exists only on VMX with EPT and EPT A/D bits (vmx.c hardware_setup clears
# enable_pml otherwise; vmx.c is not in the stored tree, so this is the one
# fact here not re-read in C).  AMD has no PML in any tag the models cover.
PML_MODES = frozenset({"ept_ad"})


def pml_supported(mode: str) -> bool:
    """Whether a VM in encoding ``mode`` can have PML (``new_vm(pml=True)``)."""
    return mode in PML_MODES


def new_vm(versions="base", mode: str = "ept_ad", mmu: str = "tdp", *, prove_mmu: bool = False,
           pml: bool = False, readonly_gfns=(), unbacked_gfns=()) -> VM:
    """A VM running ``versions`` (a ``VersionSet`` or a ``SERIES_STATES`` name).

    ``mmu="tdp"`` enables the TDP MMU; ``"shadow"`` runs the shadow MMU with
    direct roots.  ``pml`` sets ``cpu_dirty_log_size`` (dirty logging by
    clearing D instead of write-protecting).  ``readonly_gfns`` are backed by
    read-only host pages; ``unbacked_gfns`` have no host page at all.
    """
    if isinstance(versions, str):
        versions = registry.VersionSet.series_state(versions)
    if mmu not in MMUS:
        raise ValueError(f"mmu must be one of {MMUS}, not {mmu!r}")
    if pml and not pml_supported(mode):
        raise ValueError(f"PML needs EPT with A/D bits ({sorted(PML_MODES)}), not {mode!r}")
    kvm = VM(versions, mode, tdp_mmu_enabled=(mmu == "tdp"), prove_mmu=prove_mmu)
    kvm.pttype = "64" if mode == "legacy" else "ept"     # nested NPT / nested EPT tables
    kvm.guest_memory = {}
    kvm.mmu_invalidate_in_progress = 0
    kvm.cpu_dirty_log_size = 512 if pml else 0
    kvm.memslots.append(kvm_memory_slot(id=0, base_gfn=0, npages=SLOT_PAGES))
    host, huge_folios, guest_memory = _backing(frozenset(readonly_gfns),
                                               frozenset(unbacked_gfns), kvm.pttype)
    kvm.host.update(host)
    kvm.huge_folios = set(huge_folios)
    kvm.guest_memory.update(guest_memory)
    vcpu = kvm_vcpu(kvm=kvm)
    prepare_vcpu = getattr(versions, "prepare_vcpu", None)   # a translated state's vCPU fields
    if prepare_vcpu is not None:
        prepare_vcpu(vcpu)
    kvm.vcpus.append(vcpu)
    call(kvm, "mmu_alloc_direct_roots", vcpu)
    kvm.log.events.clear()          # building the VM is not part of any operation
    return kvm


@lru_cache(maxsize=32)
def _backing(readonly_gfns: frozenset, unbacked_gfns: frozenset, pttype: str):
    """The host mapping, host huge pages and guest table a new VM starts with (made once
    per shape; every VM gets its own copies)."""
    host = {}
    for gfn in range(SLOT_PAGES):
        if gfn not in unbacked_gfns:
            host[gfn] = (HOST_PFN_BASE + gfn, gfn not in readonly_gfns)
    # Every fully backed 2M region is one host huge page (kvm_main.page_folio).
    huge_folios = frozenset(HOST_PFN_BASE + base for base in range(0, SLOT_PAGES, 512)
                            if all(host.get(base + i, (0, False))[0] == HOST_PFN_BASE + base + i
                                   for i in range(512)))
    guest_memory = {gpte_gpa(index): default_gpte(index).encode(pttype)
                    for index in range(GUEST_TABLE_ENTRIES)}
    return host, huge_folios, guest_memory


def default_gpte(index: int) -> GuestPte:
    """The guest table's initial entry ``index``: present, accessed, writable,
    every other one dirty (so both clean and dirty guest PTEs are prefetched)."""
    return GuestPte(gfn=0x100 + index, writable=True, accessed=True, dirty=index % 2 == 0)


def gpte_gpa(index: int) -> int:
    return (GUEST_TABLE_GFN << PAGE_SHIFT) + index * 8


# -- inspection (reads state, calls no kernel function with effects) ----------

def child_page(kvm, spte: int):
    """The page a present non-leaf SPTE points to, found as the state's own C finds it.

    From v6.6 the MMU headers have ``spte_to_child_sp(spte)``.  v6.1.15 has no such
    helper: mmu_internal.h has ``to_shadow_page(hpa)``, and mmu.c open-codes
    ``to_shadow_page(spte & SPTE_BASE_ADDR_MASK)``; ``spte_to_pfn(spte) << PAGE_SHIFT``
    is that address (spte.h's ``spte_to_pfn`` is ``(spte & SPTE_BASE_ADDR_MASK) >>
    PAGE_SHIFT``).  Which form a state has is read from its functions, not its release, so
    a series that adds the helper is followed too.
    """
    if "spte_to_child_sp" in kvm.functions or "to_shadow_page" not in kvm.functions:
        return kvm.spte_to_child_sp(spte)
    return kvm.to_shadow_page(kvm.spte_to_pfn(spte) << PAGE_SHIFT)


def leaf_sptep(kvm, root, gfn: int):
    """The present leaf SPTE mapping ``gfn`` under ``root``, or None (what the
    CPU's page walk would use)."""
    sp = root
    while sp is not None:
        level = sp.role.level
        sptep = sp.sptep((gfn >> ((level - 1) * 9)) % SPTE_ENT_PER_PAGE)
        spte = sptep.get()
        if not kvm.is_shadow_present_pte(spte):
            return None
        if kvm.is_last_spte(spte, level):
            return sptep
        sp = child_page(kvm, spte)
    return None


def table_under(kvm, root, gfn: int, level: int):
    """The page table of ``level`` that maps ``gfn`` under ``root``, or None."""
    sp = root
    while sp is not None and sp.role.level > level:
        spte = sp.sptep((gfn >> ((sp.role.level - 1) * 9)) % SPTE_ENT_PER_PAGE).get()
        if not kvm.is_shadow_present_pte(spte) or kvm.is_last_spte(spte, sp.role.level):
            return None
        sp = child_page(kvm, spte)
    return sp


def indirect_page(kvm):
    """The valid indirect shadow page for the guest table, if one exists."""
    for sp in kvm.active_mmu_pages:
        if not sp.role.direct and sp.gfn == GUEST_TABLE_GFN and not kvm.is_obsolete_sp(sp):
            return sp
    return None


INVALID_PAGE = (1 << 64) - 1     # arch/x86/include/asm/kvm_host.h


def root_page(kvm, vcpu):
    """The page the vCPU's root points to: the hand-written ``kvm_mmu`` keeps the page
    itself in ``root``; a translated state's (``struct kvm_mmu_root_info``) its ``hpa``."""
    root = vcpu.arch.mmu.root
    if root is None or isinstance(root, kvm_mmu_page):
        return root
    return None if root.hpa in (INVALID_PAGE, 0) else kvm.mmu_pages.get(root.hpa >> PAGE_SHIFT)


def drop_root(vcpu) -> None:
    """``mmu->root.hpa = INVALID_PAGE`` (the hand-written ``kvm_mmu``: no page)."""
    if vcpu.arch.mmu.root is None or isinstance(vcpu.arch.mmu.root, kvm_mmu_page):
        vcpu.arch.mmu.root = None
    else:
        vcpu.arch.mmu.root.hpa = INVALID_PAGE


def slot(kvm):
    """Slot 0, the one every gfn below 1024 is in (the region slots come and go)."""
    return next(memslot for memslot in kvm.memslots if memslot.id == 0)


@contextmanager
def generic(kvm, name: str):
    """Run a step of generic KVM code (not modelled) under its C name."""
    kvm.log.stack.append(name)
    try:
        yield
    finally:
        kvm.log.stack.pop()


def hva_range(kvm, start: int, end: int, may_block: bool, arg=None):
    """kvm_handle_hva_range's clipping of [start, end) to the memslot, or None."""
    memslot = slot(kvm)
    start = max(start, memslot.base_gfn)
    end = min(end, memslot.base_gfn + memslot.npages)
    if start >= end:
        return None
    return kvm_gfn_range(slot=memslot, start=start, end=end, arg=arg, may_block=may_block)


def folio_refcounts(kvm) -> dict[int, int]:
    """KVM's references per folio (kvm_main.py counts them on the folio head,
    ``kvm.page_folio``), leaving out folios with none: ``{}`` when balanced."""
    return {folio: count for folio, count in kvm.page_refcount.items() if count}


# -- vCPU-side steps -------------------------------------------------------------

def enter_guest(kvm, vcpu) -> None:
    """KVM_REQ_MMU_FREE_OBSOLETE_ROOTS then kvm_mmu_reload, before running the vCPU.

    Stands for mmu_free_root_page (mmu.c, not modelled yet): a TDP MMU root
    is put; a shadow root loses the vCPU's reference and, once invalid and
    unreferenced, is zapped.  Then a new root is allocated.
    """
    root = root_page(kvm, vcpu)
    if root is not None and not kvm.is_obsolete_sp(root):
        return
    with generic(kvm, "kvm_mmu_free_obsolete_roots"):
        if root is not None and root.tdp_mmu_page:
            call(kvm, "kvm_tdp_mmu_put_root", root)
        elif root is not None:
            root.root_count -= 1
            invalid_list: list = []
            if not root.root_count and root.role.invalid:
                call(kvm, "kvm_mmu_prepare_zap_page", root, invalid_list)
            call(kvm, "kvm_mmu_commit_zap_page", invalid_list)
        drop_root(vcpu)
    call(kvm, "mmu_alloc_direct_roots", vcpu)


def hardware_present(kvm, spte: int) -> bool:
    """Whether the CPU sees a translation (EPT: R; legacy: P), before any fault."""
    return bool(spte & kvm.shadow_present_mask)


def make_fault(kvm, vcpu, gfn: int, err: int, prefetch: bool):
    """kvm_mmu_do_page_fault's ``struct kvm_page_fault`` for a direct MMU."""
    fault = kvm_page_fault(addr=gfn << PAGE_SHIFT, write=bool(err & PFERR_WRITE_MASK),
                           exec=bool(err & PFERR_FETCH_MASK), present=bool(err & PFERR_PRESENT_MASK),
                           user=bool(err & PFERR_USER_MASK), prefetch=prefetch, is_tdp=True,
                           max_level=KVM_MAX_HUGEPAGE_LEVEL, req_level=PG_LEVEL_4K,
                           goal_level=PG_LEVEL_4K)
    fault.gfn = fault.addr >> PAGE_SHIFT
    fault.error_code = err          # read by the kernel's own fault path (translated states)
    fault.slot = kvm.kvm_vcpu_gfn_to_memslot(vcpu, fault.gfn)
    return fault


def error_code(kvm, vcpu, gfn: int, write: bool, exec: bool) -> int:
    """The error code the CPU reports: present when the current leaf translates."""
    err = PFERR_USER_MASK
    err |= PFERR_WRITE_MASK if write else 0
    err |= PFERR_FETCH_MASK if exec else 0
    sptep = leaf_sptep(kvm, root_page(kvm, vcpu), gfn)
    if sptep is not None and hardware_present(kvm, sptep.get()):
        err |= PFERR_PRESENT_MASK
    return err


def hardware_access(kvm, sptep, write: bool) -> None:
    """The CPU using ``sptep``: sets A (and D on a write) when A/D bits are on.

    An access the SPTE does not allow would fault instead; nothing happens
    then (use ``fault``).  The only event is the SPTE write.
    """
    spte = sptep.get()
    if not kvm.is_shadow_present_pte(spte) or not hardware_present(kvm, spte):
        return
    if write and not kvm.is_writable_pte(spte):
        return
    if not kvm.spte_ad_enabled(spte):
        return
    new_spte = spte | kvm.shadow_accessed_mask | (kvm.shadow_dirty_mask if write else 0)
    if new_spte != spte:
        sptep.set(new_spte)


# -- operations --------------------------------------------------------------------

def fault(kvm, gfn: int, write: bool = False, exec: bool = False, prefetch: bool = False) -> None:
    """A guest access faults: kvm_mmu_do_page_fault -> kvm_tdp_page_fault
    (TDP MMU or direct_page_fault, fast path first), over whatever is mapped."""
    vcpu = kvm.vcpus[0]
    enter_guest(kvm, vcpu)
    err = error_code(kvm, vcpu, gfn, write, exec)
    call(kvm, "kvm_tdp_page_fault", vcpu, make_fault(kvm, vcpu, gfn, err, prefetch))


def fast_fault(kvm, gfn: int, write: bool = False) -> None:
    """Only the lockless fast path (fast_page_fault); the slow path is not run."""
    vcpu = kvm.vcpus[0]
    enter_guest(kvm, vcpu)
    err = error_code(kvm, vcpu, gfn, write, False)
    call(kvm, "fast_page_fault", vcpu, make_fault(kvm, vcpu, gfn, err, False))


def async_pf_ready(kvm, gfn: int) -> None:
    """kvm_arch_async_page_ready: a fault with error code 0 and prefetch = true,
    which may overwrite a present SPTE with a non-accessed one (RFC 4/4)."""
    vcpu = kvm.vcpus[0]
    enter_guest(kvm, vcpu)
    call(kvm, "kvm_tdp_page_fault", vcpu, make_fault(kvm, vcpu, gfn, 0, True))


def guest_access(kvm, gfn: int, write: bool = False) -> None:
    """The guest touches ``gfn`` through the vCPU's root: hardware sets A/D."""
    vcpu = kvm.vcpus[0]
    enter_guest(kvm, vcpu)
    sptep = leaf_sptep(kvm, root_page(kvm, vcpu), gfn)
    if sptep is not None:
        hardware_access(kvm, sptep, write)


def nested_access(kvm, index: int, write: bool = False) -> None:
    """The nested guest touches what entry ``index`` of the indirect page maps."""
    enter_guest(kvm, kvm.vcpus[0])
    sp = indirect_page(kvm)
    if sp is not None:
        hardware_access(kvm, sp.sptep(index), write)


def unmap(kvm, start: int, end: int) -> None:
    """mmu_notifier invalidate_range_start: kvm_unmap_gfn_range, flush if asked."""
    range_ = hva_range(kvm, start, end, may_block=True)
    if range_ is None:
        return
    with generic(kvm, "kvm_mmu_notifier_invalidate_range_start"):
        if call(kvm, "kvm_unmap_gfn_range", range_):
            kvm.kvm_flush_remote_tlbs()


def change_pte(kvm, gfn: int, writable: bool = False) -> None:
    """The primary MMU moves ``gfn`` to another page (KSM merge or COW break),
    as mm does it: invalidate_range_start (kvm_unmap_gfn_range + flush), the
    new host PTE, change_pte (kvm_set_spte_gfn + flush, run only while an
    invalidation is in progress), invalidate_range_end.

    change_pte exists in every state of the series (it went away in v6.10).
    Because the start step already zapped the SPTEs, kvm_set_spte_gfn finds
    nothing to change; driving it over live SPTEs instead would leave a huge
    SPTE mapping the old page (set_spte_gfn skips huge SPTEs, relying on the
    start step), a state the kernel never reaches.
    """
    range_ = hva_range(kvm, gfn, gfn + 1, may_block=True)
    if range_ is None or gfn not in kvm.host:
        return
    old_pfn = kvm.host[gfn][0]
    new_pfn = COW_PFN_BASE + gfn % 0x200 if old_pfn == HOST_PFN_BASE + gfn else HOST_PFN_BASE + gfn
    kvm.mmu_invalidate_in_progress += 1                  # kvm_mmu_invalidate_begin
    with generic(kvm, "kvm_mmu_notifier_invalidate_range_start"):
        if call(kvm, "kvm_unmap_gfn_range", range_):
            kvm.kvm_flush_remote_tlbs()
    kvm.host[gfn] = (new_pfn, writable)
    change = hva_range(kvm, gfn, gfn + 1, may_block=False, arg=(new_pfn, writable))
    with generic(kvm, "kvm_mmu_notifier_change_pte"):
        if kvm.mmu_invalidate_in_progress and call(kvm, "kvm_set_spte_gfn", change):
            kvm.kvm_flush_remote_tlbs()
    kvm.mmu_invalidate_in_progress -= 1                  # kvm_mmu_invalidate_end


def clear_flush_young(kvm, start: int, end: int) -> None:
    """mmu_notifier clear_flush_young: kvm_age_gfn, flush when anything was young."""
    range_ = hva_range(kvm, start, end, may_block=False)
    if range_ is None:
        return
    with generic(kvm, "kvm_mmu_notifier_clear_flush_young"):
        if call(kvm, "kvm_age_gfn", range_):
            kvm.kvm_flush_remote_tlbs()


def clear_young(kvm, start: int, end: int) -> None:
    """mmu_notifier clear_young: kvm_age_gfn, never flushes."""
    range_ = hva_range(kvm, start, end, may_block=False)
    if range_ is None:
        return
    with generic(kvm, "kvm_mmu_notifier_clear_young"):
        call(kvm, "kvm_age_gfn", range_)


def test_young(kvm, start: int, end: int) -> None:
    """mmu_notifier test_young: kvm_test_age_gfn, no writes."""
    range_ = hva_range(kvm, start, end, may_block=False)
    if range_ is None:
        return
    with generic(kvm, "kvm_mmu_notifier_test_young"):
        call(kvm, "kvm_test_age_gfn", range_)


def zap_all(kvm) -> None:
    """VM teardown / mmu_notifier release: kvm_arch_flush_shadow_all -> kvm_mmu_zap_all."""
    with generic(kvm, "kvm_arch_flush_shadow_all"):
        call(kvm, "kvm_mmu_zap_all")


def memslot_delete(kvm) -> None:
    """Delete slot 0 (kvm_arch_flush_shadow_memslot -> kvm_mmu_zap_all_fast,
    which also zaps the invalidated TDP roots), then re-create it in place so
    later operations still have memory: three memslot generation steps
    (invalidate, delete, create; see reach_operations)."""
    old = slot(kvm)
    old.invalid = True                       # KVM_MEMSLOT_INVALID while it is flushed
    call(kvm, "kvm_swap_active_memslots", old.as_id)      # kvm_invalidate_memslot
    with generic(kvm, "kvm_arch_flush_shadow_memslot"):
        call(kvm, "kvm_mmu_zap_all_fast")
    kvm.memslots.remove(old)
    call(kvm, "kvm_swap_active_memslots", old.as_id)      # kvm_delete_memslot
    kvm.memslots.insert(0, kvm_memory_slot(id=old.id, base_gfn=old.base_gfn, npages=old.npages))
    call(kvm, "kvm_swap_active_memslots", old.as_id)      # kvm_create_memslot


def dirty_log_enable(kvm) -> None:
    """KVM_MEM_LOG_DIRTY_PAGES on: x86.c kvm_mmu_slot_apply_flags (eager split,
    then clear D with PML or write-protect without), then the memslot flush."""
    memslot = slot(kvm)
    if memslot.flags & KVM_MEM_LOG_DIRTY_PAGES:
        return                                  # same flags: no memslot change at all
    memslot.flags |= KVM_MEM_LOG_DIRTY_PAGES
    memslot.dirty_bitmap = set()
    call(kvm, "kvm_swap_active_memslots", memslot.as_id)  # kvm_update_flags_memslot
    with generic(kvm, "kvm_mmu_slot_apply_flags"):
        if getattr(kvm, "manual_dirty_log_init_set", False):
            return
        if getattr(kvm, "eager_page_split", True):
            call(kvm, "kvm_mmu_slot_try_split_huge_pages", memslot, PG_LEVEL_4K)
        if kvm.cpu_dirty_log_size:
            call(kvm, "kvm_mmu_slot_leaf_clear_dirty", memslot)
            call(kvm, "kvm_mmu_slot_remove_write_access", memslot, PG_LEVEL_2M)
        else:
            call(kvm, "kvm_mmu_slot_remove_write_access", memslot, PG_LEVEL_4K)
        kvm.kvm_flush_remote_tlbs_memslot(memslot)


def dirty_log_clear(kvm, gfn: int, mask: int) -> None:
    """KVM_CLEAR_DIRTY_LOG for the 64 gfns holding ``gfn``: the set bits of
    ``mask`` that were dirty are cleared and re-protected
    (kvm_arch_mmu_enable_log_dirty_pt_masked), then the memslot is flushed."""
    memslot = slot(kvm)
    if not memslot.flags & KVM_MEM_LOG_DIRTY_PAGES:
        return                                  # -ENOENT: no dirty bitmap
    gfn_offset = (gfn - memslot.base_gfn) & ~63
    dirty = sum(1 << (o - gfn_offset) for o in memslot.dirty_bitmap if 0 <= o - gfn_offset < 64)
    mask &= dirty
    memslot.dirty_bitmap -= {gfn_offset + bit for bit in range(64) if mask >> bit & 1}
    with generic(kvm, "kvm_clear_dirty_log_protect"):
        if mask:
            call(kvm, "kvm_arch_mmu_enable_log_dirty_pt_masked", memslot, gfn_offset, mask)
            kvm.kvm_flush_remote_tlbs_memslot(memslot)


def dirty_log_disable(kvm) -> None:
    """KVM_MEM_LOG_DIRTY_PAGES off: kvm_mmu_slot_apply_flags recovers huge
    pages with kvm_mmu_zap_collapsible_sptes (not for read-only slots)."""
    memslot = slot(kvm)
    if not memslot.flags & KVM_MEM_LOG_DIRTY_PAGES:
        return
    memslot.flags &= ~KVM_MEM_LOG_DIRTY_PAGES
    memslot.dirty_bitmap = set()
    call(kvm, "kvm_swap_active_memslots", memslot.as_id)  # kvm_update_flags_memslot
    if memslot.flags & KVM_MEM_READONLY:
        return
    with generic(kvm, "kvm_mmu_slot_apply_flags"):
        call(kvm, "kvm_mmu_zap_collapsible_sptes", memslot)


def split_huge(kvm, gfn: int) -> None:
    """Eager split of the 2M region holding ``gfn`` down to 4K
    (kvm_mmu_try_split_huge_pages; the kernel does this only with the TDP MMU)."""
    start = gfn & ~511
    call(kvm, "kvm_mmu_try_split_huge_pages", slot(kvm), start, start + 512, PG_LEVEL_4K)


def collapse(kvm, gfn: int) -> None:
    """Huge page recovery: zap the 4K table under the 2M entry holding ``gfn``
    as kvm_recover_nx_huge_pages does (kvm_tdp_mmu_zap_sp, or
    kvm_mmu_prepare_zap_page), then kvm_mmu_remote_flush_or_zap."""
    root = root_page(kvm, kvm.vcpus[0])
    sp = table_under(kvm, root, gfn, PG_LEVEL_4K) if root is not None else None
    if sp is None or sp is root:
        return
    invalid_list: list = []
    flush = False
    with generic(kvm, "kvm_recover_nx_huge_pages"):
        if sp.tdp_mmu_page:
            flush |= call(kvm, "kvm_tdp_mmu_zap_sp", sp)
        else:
            call(kvm, "kvm_mmu_prepare_zap_page", sp, invalid_list)
        if invalid_list:                       # kvm_mmu_remote_flush_or_zap
            call(kvm, "kvm_mmu_commit_zap_page", invalid_list)
        elif flush:
            kvm.kvm_flush_remote_tlbs()


def zap_gfn_range(kvm, start: int, end: int) -> None:
    """kvm_zap_gfn_range (MTRR/CR0.CD/APICv changes): zap, ranged flush."""
    if start >= end:
        return
    call(kvm, "kvm_zap_gfn_range", start, end)


def shadow_prefetch(kvm, index: int, gfn: int, writable: bool = True, dirty: bool = False,
                    accessed: bool = True) -> None:
    """The guest table gets entry ``index`` -> ``gfn``; a nested fault on a
    neighbour of the same 8-entry group then runs FNAME(pte_prefetch), which
    maps every non-present neighbour with FNAME(prefetch_gpte).

    FNAME(gpte_changed) fills the walker's 8 guest PTEs from guest memory;
    the faulting entry itself (FNAME(fetch)) is not mapped here.
    """
    vcpu = kvm.vcpus[0]
    enter_guest(kvm, vcpu)
    sp = get_indirect_page(kvm, vcpu)
    kvm.guest_memory[gpte_gpa(index)] = GuestPte(gfn=gfn, writable=writable, dirty=dirty,
                                                 accessed=accessed).encode(kvm.pttype)
    first = index & ~(PTE_PREFETCH_NUM - 1)
    gw = guest_walker(prefetch_ptes=[kvm.guest_memory.get(gpte_gpa(first + i), 0)
                                     for i in range(PTE_PREFETCH_NUM)])
    faulting = first + (index - first + 1) % PTE_PREFETCH_NUM
    with generic(kvm, "FNAME(fetch)"):
        call(kvm, "FNAME(pte_prefetch)", vcpu, gw, sp.sptep(faulting))


def shadow_sync(kvm, index: int, gfn: int, writable: bool = True, dirty: bool = False,
                accessed: bool = True) -> None:
    """The guest rewrites entry ``index`` of its (unsync) table, then INVLPGs it:
    __kvm_mmu_invalidate_addr syncs the entry with kvm_sync_spte ->
    FNAME(sync_spte), zaps it on failure and flushes when asked.

    The table becomes unsync through an L1 write fault on its gfn
    (mmu_try_to_unsync_pages); if it stays write-protected the guest write
    would be emulated (kvm_mmu_track_write, not modelled) and nothing is done.
    """
    vcpu = kvm.vcpus[0]
    enter_guest(kvm, vcpu)
    sp = get_indirect_page(kvm, vcpu)
    if not sp.unsync:
        fault(kvm, GUEST_TABLE_GFN, write=True)
    if not sp.unsync:
        return
    kvm.guest_memory[gpte_gpa(index)] = GuestPte(gfn=gfn, writable=writable, dirty=dirty,
                                                 accessed=accessed).encode(kvm.pttype)
    sptep = sp.sptep(index)
    with generic(kvm, "__kvm_mmu_invalidate_addr"):
        ret = call(kvm, "kvm_sync_spte", vcpu, sp, index)
        if ret < 0:
            call(kvm, "mmu_page_zap_pte", sp, sptep, None)
        if ret:
            call(kvm, "kvm_flush_remote_tlbs_sptep", sptep)


def get_indirect_page(kvm, vcpu):
    """The indirect 4K page shadowing the guest table, made with
    kvm_mmu_get_shadow_page (which write-protects the table gfn) if needed."""
    sp = indirect_page(kvm)
    if sp is not None:
        return sp
    if kvm.tdp_mmu_enabled:
        # mmu_first_shadow_root_alloc (mmu.c, not modelled): the first
        # shadow page under the TDP MMU turns on rmaps for every memslot.
        kvm.shadow_root_allocated = True
    role = kvm_mmu_page_role(level=PG_LEVEL_4K, direct=False, ad_disabled=not kvm.kvm_ad_enabled(),
                             guest_mode=True, access=ACC_ALL)
    with generic(kvm, "FNAME(fetch)"):
        return call(kvm, "kvm_mmu_get_shadow_page", vcpu, GUEST_TABLE_GFN, role)


# -- the table ---------------------------------------------------------------------

@dataclass(frozen=True)
class Operation:
    """One operation: how to run it, where it applies, how to draw its arguments."""

    name: str
    function: Callable
    mmus: frozenset
    modes: frozenset
    arguments: st.SearchStrategy
    description: str

    def applies_to(self, mmu: str, mode: str) -> bool:
        return mmu in self.mmus and mode in self.modes

    def __repr__(self) -> str:
        return f"Operation({self.name})"


# Biased towards a few gfns (two 2M regions' edges, the guest table, the
# guest PTEs' default targets) so that drawn operations meet each other.
gfns = st.one_of(st.integers(0, 15), st.sampled_from([0x100, 0x101, 511, 512, 600, GUEST_TABLE_GFN]),
                 st.integers(0, SLOT_PAGES - 1))
entries = st.integers(0, GUEST_TABLE_ENTRIES - 1)


@st.composite
def gfn_ranges(draw):
    start = draw(gfns)
    end = draw(st.one_of(st.integers(start + 1, min(SLOT_PAGES, start + 16)),
                         st.integers(start + 1, SLOT_PAGES)))
    return {"start": start, "end": end}


def _guest_pte_args():
    return st.fixed_dictionaries({"index": entries, "gfn": gfns,
                                  "writable": st.booleans(), "dirty": st.booleans(),
                                  "accessed": st.booleans()})


BOTH = frozenset(MMUS)
ALL_MODES = frozenset(MODES)
AD_MODES = frozenset({"legacy", "ept_ad"})


def _op(name, function, arguments, description, mmus=BOTH, modes=ALL_MODES) -> Operation:
    return Operation(name, function, frozenset(mmus), frozenset(modes), arguments, description)


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    _op("fault", fault, st.fixed_dictionaries({"gfn": gfns, "write": st.booleans(),
                                               "exec": st.booleans(), "prefetch": st.booleans()}),
        "guest page fault through kvm_tdp_page_fault (fast path, then map)"),
    _op("fast_fault", fast_fault, st.fixed_dictionaries({"gfn": gfns, "write": st.booleans()}),
        "only the lockless fast_page_fault"),
    _op("async_pf_ready", async_pf_ready, st.fixed_dictionaries({"gfn": gfns}),
        "async page fault completion: prefetch fault with error code 0"),
    _op("guest_access", guest_access, st.fixed_dictionaries({"gfn": gfns, "write": st.booleans()}),
        "hardware sets A (and D on write) in the vCPU's leaf SPTE", modes=AD_MODES),
    _op("nested_access", nested_access, st.fixed_dictionaries({"index": entries,
                                                               "write": st.booleans()}),
        "hardware sets A/D in an entry of the indirect page", modes=AD_MODES),
    _op("unmap", unmap, gfn_ranges(),
        "mmu_notifier invalidate_range_start: kvm_unmap_gfn_range + flush"),
    _op("change_pte", change_pte, st.fixed_dictionaries({"gfn": gfns, "writable": st.booleans()}),
        "host page moved: unmap, then mmu_notifier change_pte (kvm_set_spte_gfn)"),
    _op("clear_flush_young", clear_flush_young, gfn_ranges(),
        "mmu_notifier clear_flush_young: kvm_age_gfn + flush if young"),
    _op("clear_young", clear_young, gfn_ranges(), "mmu_notifier clear_young: kvm_age_gfn"),
    _op("test_young", test_young, gfn_ranges(), "mmu_notifier test_young: kvm_test_age_gfn"),
    _op("zap_all", zap_all, st.fixed_dictionaries({}), "VM teardown: kvm_mmu_zap_all"),
    _op("memslot_delete", memslot_delete, st.fixed_dictionaries({}),
        "memslot delete: kvm_mmu_zap_all_fast, slot re-created"),
    _op("dirty_log_enable", dirty_log_enable, st.fixed_dictionaries({}),
        "dirty logging on: eager split, write-protect or clear D, memslot flush"),
    _op("dirty_log_clear", dirty_log_clear,
        st.fixed_dictionaries({"gfn": gfns, "mask": st.one_of(st.just(2**64 - 1),
                                                              st.integers(0, 2**64 - 1))}),
        "KVM_CLEAR_DIRTY_LOG: kvm_arch_mmu_enable_log_dirty_pt_masked + memslot flush"),
    _op("dirty_log_disable", dirty_log_disable, st.fixed_dictionaries({}),
        "dirty logging off: kvm_mmu_zap_collapsible_sptes"),
    _op("split_huge", split_huge, st.fixed_dictionaries({"gfn": gfns}),
        "eager split of one 2M region (TDP MMU only in the kernel)", mmus={"tdp"}),
    _op("collapse", collapse, st.fixed_dictionaries({"gfn": gfns}),
        "huge page recovery: zap the 4K table under a 2M entry"),
    _op("zap_gfn_range", zap_gfn_range, gfn_ranges(), "kvm_zap_gfn_range + ranged flush"),
    _op("shadow_prefetch", shadow_prefetch, _guest_pte_args(),
        "FNAME(pte_prefetch)/FNAME(prefetch_gpte) on the indirect page"),
    _op("shadow_sync", shadow_sync, _guest_pte_args(),
        "INVLPG on an unsync indirect page: kvm_sync_spte -> FNAME(sync_spte)"),
)}

# Memslot layouts, MMIO SPTEs and per-gfn write tracking (kernel_models/reach_operations.py).
from kernel_models import reach_operations  # noqa: E402 - needs the helpers above

OPERATIONS.update({op.name: op for op in reach_operations.operation_rows(_op)})


def run(kvm, name: str, **args) -> None:
    """Run operation ``name`` on ``kvm`` (whatever MMU; see ``applies_to``)."""
    OPERATIONS[name].function(kvm, **args)
