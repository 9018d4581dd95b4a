"""arch/x86/kvm/mmu/mmu.c, part 5: MMIO SPTEs and the memslot generation; unprotecting
and syncing shadowed guest page tables.

Every body here was read in v6.9 mmu.c (blob db007a4dffa2) and holds in the
four mmu.c blobs of the series (the RFC does not touch these functions):

- ``get_mmio_spte_access``, ``check_mmio_spte``, ``mmio_info_in_cache``,
  ``get_walk``, ``get_mmio_spte``, ``handle_mmio_page_fault``,
  ``kvm_mmu_page_fault`` (its reserved-bit branch and the call of the fault
  path), ``kvm_mmu_invalidate_mmio_sptes``, ``kvm_arch_flush_shadow_memslot``;
- ``kvm_mmu_unprotect_page``, ``kvm_vcpu_write_protect_gfn``,
  ``kvm_mmu_remote_flush_or_zap``, ``mmu_sync_children``.

Abstractions: reserved-bit checks of present SPTEs (``is_rsvd_spte``) are not
modelled, so ``get_mmio_spte`` never reports a buggy SPTE; after
``kvm_mmu_page_fault``'s fault path only the return value matters (no
emulator, no unprotect-and-retry); ``mmu_unsync_walk`` is reduced: the guest
page tables' shadow pages are not linked under a nested root here (the L2
walk is not modelled), so the walk collects the unsync pages named by the
caller, as the walk would find them under the root they hang from.
"""

from __future__ import annotations

from kernel_models.mmu_fault import (RET_PF_EMULATE, RET_PF_INVALID, RET_PF_RETRY,
                                     for_each_gfn_valid_sp_with_gptes, for_each_shadow_entry)
from kernel_models.kvm_main import PG_LEVEL_4K
from kernel_models.mmu_internal import kvm_page_fault
from kernel_models.registry import MMU_C, MMU_INTERNAL_H, Version
from kernel_models.spte import MMIO_SPTE_GEN_MASK
from kernel_models.x86 import KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS

PFERR_PRESENT_MASK = 1 << 0
PFERR_WRITE_MASK = 1 << 1
PFERR_USER_MASK = 1 << 2
PFERR_RSVD_MASK = 1 << 3
PFERR_FETCH_MASK = 1 << 4
PAGE_SHIFT = 12
EIO = 5
EINVAL = 22


def get_mmio_spte_access(kvm, spte: int) -> int:
    """mmu.c get_mmio_spte_access (db007a4dffa2)."""
    return spte & kvm.shadow_mmio_access_mask


def check_mmio_spte(kvm, vcpu, spte: int) -> bool:
    """mmu.c check_mmio_spte (db007a4dffa2): the SPTE's generation is the memslots'."""
    gen = kvm.memslots_generation
    if gen & KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS:
        return False
    kvm_gen = gen & MMIO_SPTE_GEN_MASK
    spte_gen = kvm.get_mmio_spte_generation(spte)
    return kvm_gen == spte_gen


def mmio_info_in_cache(kvm, vcpu, addr: int, direct: bool) -> bool:
    """mmu.c mmio_info_in_cache (db007a4dffa2); only direct MMUs run here."""
    if kvm.mmu_is_nested(vcpu):
        return False
    if direct:
        return kvm.vcpu_match_mmio_gpa(vcpu, addr)
    return False                          # vcpu_match_mmio_gva: no shadow paging of L1


def get_walk(kvm, vcpu, addr: int, sptes: dict) -> tuple[int, int]:
    """mmu.c get_walk (db007a4dffa2) -> (leaf level or -1, root level)."""
    leaf = -1
    root_level = vcpu.arch.mmu.root.role.level
    for it, spte in for_each_shadow_entry(kvm, vcpu, addr, lockless=True):
        leaf = it.level
        sptes[leaf] = spte
    return leaf, root_level


def get_mmio_spte(kvm, vcpu, addr: int) -> tuple[bool, int]:
    """mmu.c get_mmio_spte (db007a4dffa2) -> (reserved, *sptep); reserved bits of present
    SPTEs are not modelled, so ``reserved`` is always false."""
    sptes: dict = {}
    if kvm.tdp_mmu_enabled:                # is_tdp_mmu_active: every root is a TDP MMU root
        leaf, root = kvm.kvm_tdp_mmu_get_walk(vcpu, addr, sptes)
    else:
        leaf, root = kvm.get_walk(vcpu, addr, sptes)
    if leaf < 0:
        return False, 0
    return False, sptes[leaf]


def handle_mmio_page_fault(kvm, vcpu, addr: int, direct: bool) -> int:
    """mmu.c handle_mmio_page_fault (db007a4dffa2): emulate a current MMIO SPTE's access,
    send a stale one (another generation) back to the fault path, retry anything else."""
    if kvm.mmio_info_in_cache(vcpu, addr, direct):
        return RET_PF_EMULATE
    reserved, spte = kvm.get_mmio_spte(vcpu, addr)
    if kvm.WARN_ON_ONCE(reserved, "handle_mmio_page_fault: reserved bits"):
        return -EINVAL
    if kvm.is_mmio_spte(spte):
        gfn = kvm.get_mmio_spte_gfn(spte)
        access = kvm.get_mmio_spte_access(spte)
        if not kvm.check_mmio_spte(vcpu, spte):
            return RET_PF_INVALID
        if direct:
            addr = 0
        kvm.vcpu_cache_mmio_info(vcpu, addr, gfn, access)
        return RET_PF_EMULATE
    return RET_PF_RETRY


def kvm_mmu_do_page_fault(kvm, vcpu, cr2_or_gpa: int, err: int, prefetch: bool) -> int:
    """mmu_internal.h kvm_mmu_do_page_fault (v6.9), for the direct MMU: build the fault,
    then the MMU's page_fault hook (kvm_tdp_page_fault)."""
    fault = kvm_page_fault(addr=cr2_or_gpa, write=bool(err & PFERR_WRITE_MASK),
                           exec=bool(err & PFERR_FETCH_MASK),
                           present=bool(err & PFERR_PRESENT_MASK),
                           user=bool(err & PFERR_USER_MASK), prefetch=prefetch, is_tdp=True,
                           max_level=3, req_level=PG_LEVEL_4K, goal_level=PG_LEVEL_4K)
    fault.rsvd = bool(err & PFERR_RSVD_MASK)
    fault.gfn = fault.addr >> PAGE_SHIFT
    fault.slot = kvm.kvm_vcpu_gfn_to_memslot(vcpu, fault.gfn)
    return kvm.kvm_tdp_page_fault(vcpu, fault)


def kvm_mmu_page_fault(kvm, vcpu, cr2_or_gpa: int, error_code: int, insn=None,
                       insn_len: int = 0) -> int:
    """mmu.c kvm_mmu_page_fault (db007a4dffa2), up to the emulation decision: a
    reserved-bit fault (an MMIO SPTE: EPT misconfig, or #NPF with RSVD) goes to
    handle_mmio_page_fault first; RET_PF_INVALID goes to the fault path.  Returns
    RET_PF_EMULATE where the C goes on to emulate, else the C's return value."""
    direct = vcpu.arch.mmu.direct
    if kvm.WARN_ON_ONCE(vcpu.arch.mmu.root is None, "kvm_mmu_page_fault: no root"):
        return RET_PF_RETRY
    r = RET_PF_INVALID
    if error_code & PFERR_RSVD_MASK:
        r = kvm.handle_mmio_page_fault(vcpu, cr2_or_gpa, direct)
        if r == RET_PF_EMULATE:
            return RET_PF_EMULATE                   # goto emulate
    if r == RET_PF_INVALID:
        r = kvm.kvm_mmu_do_page_fault(vcpu, cr2_or_gpa, error_code & 0xFFFFFFFF, False)
        if kvm.KVM_BUG_ON_DATA_CORRUPTION(r == RET_PF_INVALID, "kvm_mmu_page_fault: invalid"):
            return -EIO
    if r < 0:
        return r
    if r != RET_PF_EMULATE:
        return 1
    return RET_PF_EMULATE


def kvm_mmu_invalidate_mmio_sptes(kvm, gen: int) -> None:
    """mmu.c kvm_mmu_invalidate_mmio_sptes (db007a4dffa2): MMIO SPTEs are left as they are
    (the generation in them goes stale); only a wrap of the MMIO generation zaps all."""
    kvm.WARN_ON_ONCE(gen & KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS,
                     "kvm_mmu_invalidate_mmio_sptes: update in progress")
    gen &= MMIO_SPTE_GEN_MASK
    gen &= ~(kvm.kvm_arch_nr_memslot_as_ids() - 1)
    if gen == 0:
        kvm.kvm_mmu_zap_all_fast()


def kvm_arch_flush_shadow_memslot(kvm, slot) -> None:
    """mmu.c kvm_arch_flush_shadow_memslot (db007a4dffa2): zap everything, fast."""
    kvm.kvm_mmu_zap_all_fast()


def kvm_mmu_unprotect_page(kvm, gfn: int) -> int:
    """mmu.c kvm_mmu_unprotect_page (db007a4dffa2): zap every valid shadow page of the gfn."""
    invalid_list: list = []
    r = 0
    for sp in for_each_gfn_valid_sp_with_gptes(kvm, gfn):
        r = 1
        kvm.kvm_mmu_prepare_zap_page(sp, invalid_list)
    kvm.kvm_mmu_commit_zap_page(invalid_list)
    return r


def kvm_vcpu_write_protect_gfn(kvm, vcpu, gfn: int) -> bool:
    """mmu.c kvm_vcpu_write_protect_gfn (db007a4dffa2)."""
    slot = kvm.kvm_vcpu_gfn_to_memslot(vcpu, gfn)
    return kvm.kvm_mmu_slot_gfn_write_protect(slot, gfn, PG_LEVEL_4K)


def kvm_mmu_remote_flush_or_zap(kvm, invalid_list: list, remote_flush: bool) -> bool:
    """mmu.c kvm_mmu_remote_flush_or_zap (db007a4dffa2)."""
    if not remote_flush and not invalid_list:
        return False
    if invalid_list:
        kvm.kvm_mmu_commit_zap_page(invalid_list)
    else:
        kvm.kvm_flush_remote_tlbs()
    return True


def mmu_unsync_walk(kvm, parent, pages: list) -> int:
    """mmu.c mmu_unsync_walk, reduced (see the module's abstractions): ``parent`` is the
    list of pages the walk would collect; the unsync ones are taken once."""
    found = [sp for sp in parent if sp.unsync and not kvm.is_obsolete_sp(sp)]
    parent.clear()
    pages.extend(found)
    return len(found)


def mmu_sync_children(kvm, vcpu, parent, can_yield: bool) -> int:
    """mmu.c mmu_sync_children (db007a4dffa2): write-protect every unsync page's gfn
    (flushing if anything was protected), then mark each synced and sync it
    (kvm_sync_page zaps it on failure); a last flush or zap.  No yielding."""
    invalid_list: list = []
    flush = False
    pages: list = []
    while kvm.mmu_unsync_walk(parent, pages):
        protected = False
        for sp in pages:
            protected |= kvm.kvm_vcpu_write_protect_gfn(vcpu, sp.gfn)
        if protected:
            kvm.kvm_mmu_remote_flush_or_zap(invalid_list, True)
            flush = False
        for sp in pages:
            kvm.kvm_unlink_unsync_page(sp)
            flush |= kvm.kvm_sync_page(vcpu, sp, invalid_list) > 0
        pages.clear()
    kvm.kvm_mmu_remote_flush_or_zap(invalid_list, flush)
    return 0


_ROWS = (get_mmio_spte_access, check_mmio_spte, mmio_info_in_cache, get_walk, get_mmio_spte,
         handle_mmio_page_fault, kvm_mmu_page_fault, kvm_mmu_invalidate_mmio_sptes,
         kvm_arch_flush_shadow_memslot, kvm_mmu_unprotect_page, kvm_vcpu_write_protect_gfn,
         kvm_mmu_remote_flush_or_zap, mmu_unsync_walk, mmu_sync_children)

MODEL_TABLE = (tuple(Version(MMU_C, f.__name__, f) for f in _ROWS)
               + (Version(MMU_INTERNAL_H, "kvm_mmu_do_page_fault", kvm_mmu_do_page_fault),))
