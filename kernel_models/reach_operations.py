"""Operations that reach memslot layouts, MMIO SPTEs and per-gfn write tracking.

Kept apart from ``operations.py`` (which merges ``OPERATIONS`` from here) only
to keep each module readable; the functions follow the same rules: generic
KVM code that is not modelled runs under its C name (``generic``), the
modelled kernel functions are called through the VM.

Memslots.  Slot 0 (gfns 0..1023) stays where ``new_vm`` put it, so every
other operation still has memory; the drawn layout lives in the region
``REGION_START``..``REGION_END`` above it: up to ``MAX_REGION_SLOTS`` slots
of 1..64 pages at drawn gfns, created, deleted, moved (the gaps between them
have no slot, so a guest access there faults to an MMIO SPTE).  Each update
follows kvm_main.c kvm_set_memslot (read in the v6.9-era search copy
203102885; kvm_main.c and x86.c are not in the stored tree): a delete or a
move first marks the old slot invalid and swaps it in
(kvm_invalidate_memslot: ``kvm_swap_active_memslots``, one generation step),
flushes it (``kvm_arch_flush_shadow_memslot``: kvm_mmu_zap_all_fast), then
swaps the final layout in (a second step); a create is one swap.  A created
or moved slot gets new metadata (x86.c kvm_arch_prepare_memory_region ->
kvm_alloc_memslot_metadata), so its write-track counts start at 0, and
kvm_mmu_slot_apply_flags does nothing more for a create, move or delete.
The host pages behind a slot (its userspace range) move with it.

Write tracking.  ``shadow_page`` shadows an L1 guest page table at a drawn
gfn and level (an indirect page, as FNAME(fetch) gets one; under the TDP MMU
this is the nested TDP case, and the first one turns on rmaps and write
tracking as mmu_first_shadow_root_alloc does, under either MMU);
``unprotect`` zaps a gfn's shadow pages (kvm_mmu_unprotect_page, as the
emulator does before retrying an instruction); ``sync_shadow`` syncs a gfn's
unsync pages (mmu_sync_children, as kvm_mmu_sync_roots does on a CR3 load);
``external_write_track`` adds or drops an external tracker (KVMGT:
kvm_page_track_register_notifier, kvm_write_track_add_gfn/remove_gfn).  A
shadow page needs its table gfn in a memslot (FNAME(walk_addr) read the
guest PTE from it), so a gfn without one is skipped.
"""

from __future__ import annotations

import dataclasses

from hypothesis import strategies as st

from kernel_models.entry_points import call
from kernel_models.kvm_main import PG_LEVEL_4K
from kernel_models.mmu_internal import kvm_mmu_page_role
from kernel_models.paging_tmpl import ACC_ALL, PAGE_SHIFT
from kernel_models.vm import kvm_memory_slot

REGION_START = 1024            # the drawn slot layout lives in gfns 1024..2047
REGION_END = 2048
MAX_REGION_SLOTS = 4
REGION_PFN_BASE = 0x4000       # host pages behind region slots, far from tables (0x800..)
PFERR_PRESENT_MASK = 1 << 0
PFERR_WRITE_MASK = 1 << 1
PFERR_USER_MASK = 1 << 2
PFERR_RSVD_MASK = 1 << 3


def _ops():
    from kernel_models import operations
    return operations


def region_slots(kvm) -> list:
    return [s for s in kvm.memslots if s.base_gfn >= REGION_START]


def _overlaps(kvm, base_gfn: int, npages: int, ignore=None) -> bool:
    return any(s is not ignore and s.base_gfn < base_gfn + npages and base_gfn < s.base_gfn + s.npages
               for s in kvm.memslots)


def _back(kvm, memslot, pfn: int) -> None:
    memslot.userspace_pfn = pfn
    for i in range(memslot.npages):
        kvm.host[memslot.base_gfn + i] = (pfn + i, True)


def _unback(kvm, memslot) -> None:
    for i in range(memslot.npages):
        kvm.host.pop(memslot.base_gfn + i, None)


def _invalidate(kvm, old) -> None:
    """kvm_main.c kvm_invalidate_memslot: swap in the old slot marked invalid, flush it."""
    old.invalid = True
    call(kvm, "kvm_swap_active_memslots", old.as_id)
    with _ops().generic(kvm, "kvm_invalidate_memslot"):
        call(kvm, "kvm_arch_flush_shadow_memslot", old)


def _forget_external(kvm, memslot) -> None:
    """The external user drops its gfns of a slot going away (its track_remove_region
    notifier; page_track's notifier list is not modelled)."""
    tracked = getattr(kvm, "external_tracked", set())
    kvm.external_tracked = {g for g in tracked if not memslot.contains(g)}


def memslot_create(kvm, base_gfn: int, npages: int) -> None:
    """KVM_SET_USER_MEMORY_REGION creating a slot at ``base_gfn`` (KVM_MR_CREATE): no
    overlap allowed (-EEXIST), one generation step, no MMU work."""
    npages = min(npages, REGION_END - base_gfn)
    if npages <= 0 or _overlaps(kvm, base_gfn, npages) or \
            len(region_slots(kvm)) >= MAX_REGION_SLOTS:
        return
    ids = {s.id for s in kvm.memslots}
    new = kvm_memory_slot(id=min(i for i in range(1, 64) if i not in ids), base_gfn=base_gfn,
                          npages=npages)
    pfn = getattr(kvm, "region_pfn_next", REGION_PFN_BASE)
    kvm.region_pfn_next = pfn + npages
    _back(kvm, new, pfn)
    kvm.memslots.append(new)
    with _ops().generic(kvm, "kvm_create_memslot"):
        call(kvm, "kvm_swap_active_memslots", new.as_id)


def _region_slot_at(kvm, gfn: int):
    for memslot in region_slots(kvm):
        if memslot.contains(gfn):
            return memslot
    return None


def memslot_remove(kvm, gfn: int) -> None:
    """Delete the region slot holding ``gfn`` (KVM_MR_DELETE): invalidate and flush it,
    then swap in the layout without it."""
    old = _region_slot_at(kvm, gfn)
    if old is None:
        return
    _invalidate(kvm, old)
    kvm.memslots.remove(old)
    _unback(kvm, old)
    _forget_external(kvm, old)
    with _ops().generic(kvm, "kvm_delete_memslot"):
        call(kvm, "kvm_swap_active_memslots", old.as_id)


def memslot_move(kvm, gfn: int, new_base_gfn: int) -> None:
    """Move the region slot holding ``gfn`` to ``new_base_gfn`` (KVM_MR_MOVE): invalidate
    and flush the old one, then swap in the slot at its new gfns (same host pages)."""
    old = _region_slot_at(kvm, gfn)
    if old is None or new_base_gfn == old.base_gfn:
        return
    if new_base_gfn < REGION_START or new_base_gfn + old.npages > REGION_END or \
            _overlaps(kvm, new_base_gfn, old.npages, ignore=old):
        return                                          # -EINVAL / -EEXIST
    _invalidate(kvm, old)
    new = kvm_memory_slot(id=old.id, base_gfn=new_base_gfn, npages=old.npages, flags=old.flags)
    kvm.memslots[kvm.memslots.index(old)] = new
    _unback(kvm, old)
    _back(kvm, new, old.userspace_pfn)
    _forget_external(kvm, old)
    with _ops().generic(kvm, "kvm_move_memslot"):
        call(kvm, "kvm_swap_active_memslots", new.as_id)


def slot_access(kvm, gfn: int, write: bool = False) -> None:
    """The guest touches ``gfn`` (any gfn, a slot's or a gap's): a present leaf is used
    (A/D set), an MMIO SPTE exits with a reserved-bit fault (EPT misconfig or #NPF
    with RSVD), anything else faults; both go to kvm_mmu_page_fault."""
    ops = _ops()
    vcpu = kvm.vcpus[0]
    ops.enter_guest(kvm, vcpu)
    root = ops.root_page(kvm, vcpu)
    sptep = ops.leaf_sptep(kvm, root, gfn)
    if sptep is not None and ops.hardware_present(kvm, sptep.get()) and \
            (not write or kvm.is_writable_pte(sptep.get())):
        ops.hardware_access(kvm, sptep, write)
        return
    err = ops.error_code(kvm, vcpu, gfn, write, False)
    if _mmio_leaf(kvm, root, gfn):
        err |= PFERR_RSVD_MASK | PFERR_PRESENT_MASK
    call(kvm, "kvm_mmu_page_fault", vcpu, gfn << PAGE_SHIFT, err, None, 0)


def _mmio_leaf(kvm, root, gfn: int) -> bool:
    """Whether the CPU's walk to ``gfn`` ends at an MMIO SPTE (reads state only)."""
    sp = root
    while sp is not None:
        level = sp.role.level
        spte = sp.sptep((gfn >> ((level - 1) * 9)) % 512).get()
        if kvm.is_mmio_spte(spte):
            return True
        if not kvm.is_shadow_present_pte(spte) or kvm.is_last_spte(spte, level):
            return False
        sp = _ops().child_page(kvm, spte)
    return False


def shadow_page(kvm, gfn: int, level: int) -> None:
    """L1's page table at ``gfn`` is shadowed at ``level`` (an indirect shadow page, as
    FNAME(fetch) gets one with kvm_mmu_get_shadow_page): account_shadowed
    write-protects (4K) or write-tracks (above 4K) the gfn."""
    if kvm.gfn_to_memslot(gfn) is None:
        return
    vcpu = kvm.vcpus[0]
    _ops().enter_guest(kvm, vcpu)
    kvm.shadow_root_allocated = True                  # mmu_first_shadow_root_alloc
    role = kvm_mmu_page_role(level=level, direct=False, ad_disabled=not kvm.kvm_ad_enabled(),
                             guest_mode=True, access=ACC_ALL)
    with _ops().generic(kvm, "FNAME(fetch)"):
        call(kvm, "kvm_mmu_get_shadow_page", vcpu, gfn, dataclasses.replace(role))


def unprotect(kvm, gfn: int) -> None:
    """kvm_mmu_unprotect_page: zap the gfn's shadow pages (the emulator's retry)."""
    with _ops().generic(kvm, "kvm_mmu_unprotect_gfn_and_retry"):
        call(kvm, "kvm_mmu_unprotect_page", gfn)


def sync_shadow(kvm, gfn: int) -> None:
    """kvm_mmu_sync_roots -> mmu_sync_children over the gfn's unsync shadow pages."""
    vcpu = kvm.vcpus[0]
    _ops().enter_guest(kvm, vcpu)
    pages = [sp for sp in kvm.active_mmu_pages if not sp.role.direct and sp.gfn == gfn]
    with _ops().generic(kvm, "kvm_mmu_sync_roots"):
        call(kvm, "mmu_sync_children", vcpu, pages, True)


@dataclasses.dataclass(eq=False)
class kvm_page_track_notifier_node:  # noqa: N801 - the kernel's struct name
    """KVMGT's ``struct kvm_page_track_notifier_node`` (kvm_page_track.h): ``node`` links
    it into kvm->arch.track_notifier_head; its callbacks (kvmgt_page_track_write,
    kvmgt_page_track_remove_region) act on KVMGT's own state, so none is set here
    (``_forget_external`` does the second's part)."""

    node: object = None
    track_write: object = None
    track_remove_region: object = None


def external_write_track(kvm, gfn: int, add: bool = True) -> None:
    """An external user (KVMGT) write-tracks ``gfn`` (registering its notifier node first,
    once, as intel_vgpu_open_device does) or
    drops its own tracker of it; it never drops one it did not add."""
    tracked = getattr(kvm, "external_tracked", set())
    with _ops().generic(kvm, "kvmgt_protect_table_add" if add else "kvmgt_protect_table_del"):
        if add:
            if gfn in tracked or kvm.gfn_to_memslot(gfn) is None:
                return
            if getattr(kvm, "track_node", None) is None:     # KVMGT registers once per vGPU
                kvm.track_node = kvm_page_track_notifier_node()
                call(kvm, "kvm_page_track_register_notifier", kvm.track_node)
            call(kvm, "kvm_write_track_add_gfn", gfn)
            kvm.external_tracked = tracked | {gfn}
        elif gfn in tracked:
            call(kvm, "kvm_write_track_remove_gfn", gfn)
            kvm.external_tracked = tracked - {gfn}


# -- arguments -----------------------------------------------------------------------

region_gfns = st.one_of(st.integers(REGION_START, REGION_START + 15),
                        st.sampled_from([REGION_START, REGION_START + 8, REGION_START + 64,
                                         REGION_END - 1]),
                        st.integers(REGION_START, REGION_END - 1))


def _any_gfns():
    return st.one_of(_ops().gfns, region_gfns)


def operation_rows(op):
    """The rows ``operations.OPERATIONS`` gets from here (``op`` is operations._op)."""
    gfns = _any_gfns()
    return (
        op("memslot_create", memslot_create,
           st.fixed_dictionaries({"base_gfn": region_gfns,
                                  "npages": st.one_of(st.integers(1, 8), st.integers(1, 64))}),
           "memslot create at a drawn gfn (KVM_MR_CREATE): one generation step"),
        op("memslot_remove", memslot_remove, st.fixed_dictionaries({"gfn": region_gfns}),
           "memslot delete (KVM_MR_DELETE): invalidate, kvm_mmu_zap_all_fast, two steps"),
        op("memslot_move", memslot_move,
           st.fixed_dictionaries({"gfn": region_gfns, "new_base_gfn": region_gfns}),
           "memslot move (KVM_MR_MOVE): invalidate, zap all fast, slot at new gfns"),
        op("slot_access", slot_access, st.fixed_dictionaries({"gfn": region_gfns,
                                                             "write": st.booleans()}),
           "guest access anywhere: MMIO SPTE -> handle_mmio_page_fault, else kvm_mmu_page_fault"),
        op("shadow_page", shadow_page,
           st.fixed_dictionaries({"gfn": gfns, "level": st.integers(1, 4)}),
           "L1 page table shadowed at a drawn gfn and level (account_shadowed)"),
        op("unprotect", unprotect, st.fixed_dictionaries({"gfn": gfns}),
           "kvm_mmu_unprotect_page: zap a gfn's shadow pages (unaccount_shadowed)"),
        op("sync_shadow", sync_shadow, st.fixed_dictionaries({"gfn": gfns}),
           "mmu_sync_children on a gfn's unsync pages: write-protect, then sync"),
        op("external_write_track", external_write_track,
           st.fixed_dictionaries({"gfn": gfns, "add": st.booleans()}),
           "external write tracking (KVMGT): kvm_write_track_add_gfn / remove_gfn"),
    )
