"""Tests of the mmu.c models (kernel_models/mmu*.py).

Every property is tested both ways: the version that should show an effect
shows it and the version (or mutant) that should not, does not.  The mutant
twins register a mutated mmu.c body as an extra blob and show that the
effect log changes: a mutated model must be visible in the log.
"""

from __future__ import annotations

import pytest

from kernel_models import operations, registry
from kernel_models.effects import (ACCESSED, DIRTY, DIRTY_LOG, FLUSH, REFS, WARN, FolioAccessed,
                                   FolioDirty, MemslotDirty, PageRefGet, PageRefPut, TlbFlush)
from kernel_models.mmu import AFTER_2, AFTER_3, AFTER_4, BASE
from kernel_models.mmu_fault import EEXIST, EPERM, RET_PF_FIXED, RET_PF_INVALID
from kernel_models.mmu_internal import kvm_mmu_page_role, kvm_page_fault
from kernel_models.registry import MMU_C, VersionSet
from kernel_models.vm import KVM_MEM_LOG_DIRTY_PAGES, kvm_gfn_range

STATES = ("base", "after 1/4", "after 2/4", "after 3/4", "after 4/4")
GFN = 5
PFN = 0x105


def new_shadow_vm(state="base", mode="ept_ad", versions=None, mmu="shadow"):
    """``operations.new_vm`` with the shadow MMU and direct roots (TDP on, TDP MMU
    off) by default; the host starts empty so each test says which gfns it backs."""
    kvm = operations.new_vm(versions or state, mode, mmu)
    kvm.host.clear()
    return kvm, kvm.vcpus[0]


def fault(kvm, vcpu, gfn=GFN, write=True, present=False):
    f = kvm_page_fault(addr=gfn << 12, gfn=gfn, write=write, present=present,
                       slot=kvm.gfn_to_memslot(gfn))
    return kvm.kvm_tdp_page_fault(vcpu, f)


def mapped(state="base", mode="ept_ad", write=True, versions=None):
    """VM with gfn 5 -> pfn 0x105 faulted in; returns (kvm, vcpu, leaf sptep)."""
    kvm, vcpu = new_shadow_vm(state, mode, versions)
    kvm.host[GFN] = (PFN, True)
    fault(kvm, vcpu, write=write)
    return kvm, vcpu, leaf(kvm)


def leaf(kvm, gfn=GFN, level=1):
    return kvm.memslots[0].rmap[(level, gfn)][0]


def channel(kvm, name, mark=0):
    return [e for e in kvm.log.since(mark) if e.channel == name]


def whole_slot(kvm):
    return kvm_gfn_range(kvm.memslots[0], 0, 1024)


# -- per-version pinned behaviour of the SPTE primitives --------------------------

def test_mmu_spte_update_clearing_dirty_marks_folio_only_at_base():
    for state, marks in (("base", True), ("after 1/4", True), ("after 2/4", False), ("after 4/4", False)):
        kvm, _, sptep = mapped(state)
        mark = kvm.log.mark()
        flush = kvm.mmu_spte_update(sptep, sptep.get() & ~kvm.shadow_dirty_mask)
        assert flush is True, state
        assert (channel(kvm, DIRTY, mark) == [FolioDirty(pfn=PFN)]) is marks, state


def test_mmu_spte_update_clearing_accessed_marks_until_3_4_and_flushes_until_4_4():
    expected = {"base": (True, True), "after 2/4": (True, True),
                "after 3/4": (False, True), "after 4/4": (False, False)}
    for state, (marks, flushes) in expected.items():
        kvm, _, sptep = mapped(state, write=False)
        mark = kvm.log.mark()
        flush = kvm.mmu_spte_update(sptep, sptep.get() & ~kvm.shadow_accessed_mask)
        assert flush is flushes, state
        assert (channel(kvm, ACCESSED, mark) == [FolioAccessed(pfn=PFN)]) is marks, state


def test_mmu_spte_update_wrprot_always_flushes():
    for state in STATES:
        kvm, _, sptep = mapped(state)
        new = sptep.get() & ~2                       # clear W only: write-protect for dirty logging
        assert kvm.mmu_spte_update(sptep, new) is True, state
        kvm2, _, sptep2 = mapped(state)
        same = sptep2.get()
        assert kvm2.mmu_spte_update(sptep2, same) is False, state


def test_mmu_spte_clear_track_bits_marks_dirty_only_at_base():
    for state, dirty in (("base", True), ("after 2/4", False), ("after 3/4", False), ("after 4/4", False)):
        kvm, _, sptep = mapped(state)
        mark = kvm.log.mark()
        old = kvm.mmu_spte_clear_track_bits(sptep)
        assert kvm.is_shadow_present_pte(old) and sptep.get() == 0
        assert channel(kvm, ACCESSED, mark) == [FolioAccessed(pfn=PFN)], state
        assert bool(channel(kvm, DIRTY, mark)) is dirty, state


def test_mmu_spte_clear_track_bits_warns_when_nothing_holds_the_page():
    kvm, _, sptep = mapped("base")
    kvm.mmu_spte_clear_track_bits(sptep)
    assert channel(kvm, WARN) == []
    kvm, _, sptep = mapped("base")
    del kvm.host[GFN]                      # the host no longer maps the pfn: refcount 0
    kvm.mmu_spte_clear_track_bits(sptep)
    assert [w.what for w in channel(kvm, WARN)] == ["mmu_spte_clear_track_bits: page refcount is 0"]


def test_mmu_spte_age_without_ad_bits_marks_dirty_only_at_base():
    for state, dirty in (("base", True), ("after 2/4", False), ("after 4/4", False)):
        kvm, _, sptep = mapped(state, mode="ept_noad")
        assert kvm.is_writable_pte(sptep.get())
        mark = kvm.log.mark()
        assert kvm.mmu_spte_age(sptep) is True
        assert kvm.is_access_track_spte(sptep.get()), state
        assert (channel(kvm, DIRTY, mark) == [FolioDirty(pfn=PFN)]) is dirty, state
        assert channel(kvm, FLUSH, mark) == []
        assert kvm.mmu_spte_age(sptep) is False          # already old


def test_mmu_spte_age_with_ad_bits_clears_accessed_in_place():
    kvm, _, sptep = mapped("base")
    before = sptep.get()
    mark = kvm.log.mark()
    assert kvm.mmu_spte_age(sptep) is True
    assert sptep.get() == before & ~kvm.shadow_accessed_mask
    assert channel(kvm, DIRTY, mark) == [] and channel(kvm, ACCESSED, mark) == []
    assert kvm.mmu_spte_age(sptep) is False


def test_spte_wrprot_for_clear_dirty_exists_only_at_base():
    assert "spte_wrprot_for_clear_dirty" in VersionSet.series_state("base").functions()
    assert "spte_wrprot_for_clear_dirty" in VersionSet.series_state("after 1/4").functions()
    for state in ("after 2/4", "after 3/4", "after 4/4"):
        assert "spte_wrprot_for_clear_dirty" not in VersionSet.series_state(state).functions()


def test_rmap_clear_dirty_on_ad_disabled_spte_marks_dirty_only_at_base():
    for state, dirty in (("base", True), ("after 2/4", False), ("after 4/4", False)):
        kvm, _, sptep = mapped(state, mode="ept_noad")
        mark = kvm.log.mark()
        rmap_head = kvm.memslots[0].rmap[(1, GFN)]
        assert kvm.__rmap_clear_dirty(rmap_head, kvm.memslots[0]) is True
        assert not kvm.is_writable_pte(sptep.get())
        assert (channel(kvm, DIRTY, mark) == [FolioDirty(pfn=PFN)]) is dirty, state


# -- the fault path ------------------------------------------------------------------

def test_direct_fault_installs_spte_and_balances_its_reference():
    kvm, _, sptep = mapped("base")
    assert kvm.spte_to_pfn(sptep.get()) == PFN and kvm.is_writable_pte(sptep.get())
    assert channel(kvm, REFS) == [PageRefGet(pfn=PFN), PageRefPut(pfn=PFN)]
    assert kvm.page_refcount[PFN] == 0
    accessed = channel(kvm, ACCESSED)
    assert accessed == [FolioAccessed(pfn=PFN)] and accessed[0].by == "direct_page_fault"
    assert [sp.role.level for sp in kvm.active_mmu_pages] == [1, 2, 3, 4]


def test_direct_fault_marks_dirty_at_map_time_from_2_4():
    for state, dirty in (("base", False), ("after 1/4", False), ("after 2/4", True), ("after 4/4", True)):
        kvm, _, _ = mapped(state)
        assert (channel(kvm, DIRTY) == [FolioDirty(pfn=PFN)]) is dirty, state
        # A read fault still maps writable (direct MMU, ACC_ALL, host page writable).
        kvm, _, sptep = mapped(state, write=False)
        assert kvm.is_writable_pte(sptep.get())
        assert (channel(kvm, DIRTY) == [FolioDirty(pfn=PFN)]) is dirty, state
        # A read-only host page gives a read-only SPTE: never marked dirty.
        kvm, vcpu = new_shadow_vm(state)
        kvm.host[GFN] = (PFN, False)
        fault(kvm, vcpu, write=False)
        assert not kvm.is_writable_pte(leaf(kvm).get())
        assert channel(kvm, DIRTY) == [], state


def test_fault_without_host_page_fails_without_mapping():
    kvm, vcpu = new_shadow_vm("base")
    assert fault(kvm, vcpu) < 0
    assert channel(kvm, REFS) == [] and kvm.memslots[0].rmap == {}


def test_unmap_after_fault_marks_accessed_and_dirty_per_version():
    for state, dirty in (("base", True), ("after 2/4", False), ("after 3/4", False), ("after 4/4", False)):
        kvm, _, sptep = mapped(state)
        mark = kvm.log.mark()
        assert kvm.kvm_unmap_gfn_range(whole_slot(kvm)) is True
        assert sptep.get() == 0 and kvm.memslots[0].rmap[(1, GFN)] == []
        assert channel(kvm, ACCESSED, mark) == [FolioAccessed(pfn=PFN)], state
        assert bool(channel(kvm, DIRTY, mark)) is dirty, state
        assert kvm.kvm_unmap_gfn_range(whole_slot(kvm)) is False     # nothing left to zap


@pytest.mark.parametrize("mmu", ["shadow", "tdp"])
def test_fast_page_fault_restores_write_access_after_write_protection(mmu):
    kvm, vcpu = new_shadow_vm("base", mmu=mmu)
    kvm.host[GFN] = (PFN, True)
    fault(kvm, vcpu)
    if mmu == "tdp":
        sptep, _ = kvm.kvm_tdp_mmu_fast_pf_get_last_sptep(vcpu, GFN << 12)
    else:
        sptep, _ = kvm.fast_pf_get_last_sptep(vcpu, GFN << 12)
    assert kvm.spte_to_pfn(sptep.get()) == PFN
    slot = kvm.memslots[0]
    slot.flags |= KVM_MEM_LOG_DIRTY_PAGES
    kvm.kvm_mmu_slot_remove_write_access(slot, 1)
    assert not kvm.is_writable_pte(sptep.get()) and kvm.is_mmu_writable_spte(sptep.get())
    mark = kvm.log.mark()
    f = kvm_page_fault(addr=GFN << 12, gfn=GFN, write=True, present=True, slot=slot)
    assert kvm.fast_page_fault(vcpu, f) == RET_PF_FIXED
    assert kvm.is_writable_pte(sptep.get())
    assert channel(kvm, DIRTY_LOG, mark) == [MemslotDirty(gfn=GFN)]
    assert channel(kvm, REFS, mark) == [] and channel(kvm, DIRTY, mark) == []
    f = kvm_page_fault(addr=GFN << 12, gfn=GFN, write=True, present=True, slot=slot)
    assert kvm.fast_page_fault(vcpu, f) == 5             # RET_PF_SPURIOUS: already writable


def test_fast_page_fault_refuses_spte_protected_for_shadowing():
    kvm, vcpu, sptep = mapped("base")
    kvm.spte_write_protect(sptep, True)          # pt_protect: MMU-writable cleared too
    f = kvm_page_fault(addr=GFN << 12, gfn=GFN, write=True, present=True, slot=kvm.memslots[0])
    assert kvm.fast_page_fault(vcpu, f) == RET_PF_INVALID
    assert not kvm.is_writable_pte(sptep.get())


# -- notifier handlers, zaps, dirty logging --------------------------------------------

def test_age_then_test_age():
    kvm, _, sptep = mapped("base")
    assert kvm.kvm_test_age_gfn(whole_slot(kvm)) is True
    assert kvm.kvm_age_gfn(whole_slot(kvm)) is True
    assert kvm.kvm_test_age_gfn(whole_slot(kvm)) is False
    assert kvm.kvm_age_gfn(whole_slot(kvm)) is False


def test_change_pte_to_read_only_remaps_and_to_writable_zaps():
    kvm, _, sptep = mapped("base")
    rng = kvm_gfn_range(kvm.memslots[0], GFN, GFN + 1, arg=(0x200, False))
    assert kvm.kvm_set_spte_gfn(rng) is True
    assert kvm.spte_to_pfn(sptep.get()) == 0x200 and not kvm.is_writable_pte(sptep.get())
    kvm, _, sptep = mapped("base")
    rng = kvm_gfn_range(kvm.memslots[0], GFN, GFN + 1, arg=(0x200, True))
    assert kvm.kvm_set_spte_gfn(rng) is True
    assert sptep.get() == 0 and kvm.memslots[0].rmap[(1, GFN)] == []


def test_zap_gfn_range_flushes_the_range_only_when_something_was_zapped():
    kvm, _, _ = mapped("base")
    mark = kvm.log.mark()
    kvm.kvm_zap_gfn_range(0, 16)
    assert channel(kvm, FLUSH, mark) == [TlbFlush(scope="range", gfn=0, pages=16)]
    mark = kvm.log.mark()
    kvm.kvm_zap_gfn_range(0, 16)
    assert channel(kvm, FLUSH, mark) == []


def test_zap_all_frees_every_shadow_page_and_marks_per_version():
    for state, dirty in (("base", True), ("after 2/4", False)):
        kvm, _, _ = mapped(state)
        mark = kvm.log.mark()
        kvm.kvm_mmu_zap_all()
        assert channel(kvm, ACCESSED, mark) == [FolioAccessed(pfn=PFN)]
        assert bool(channel(kvm, DIRTY, mark)) is dirty, state
        assert channel(kvm, FLUSH, mark) == [TlbFlush(scope="all")]
        root = kvm.vcpus[0].arch.mmu.root
        assert kvm.active_mmu_pages == [] and root.role.invalid    # root stays (root_count)
        assert channel(kvm, WARN, mark) == []


def test_zap_all_fast_zaps_obsolete_pages_and_makes_root_stale():
    kvm, vcpu, sptep = mapped("after 3/4")
    kvm.kvm_mmu_zap_all_fast()
    assert sptep.get() == 0 and kvm.active_mmu_pages == []
    kvm.host[GFN + 1] = (PFN + 1, True)
    assert fault(kvm, vcpu, gfn=GFN + 1) == 1       # RET_PF_RETRY: root is obsolete
    kvm.mmu_alloc_direct_roots(vcpu)
    assert fault(kvm, vcpu, gfn=GFN + 1) == RET_PF_FIXED


def test_dirty_log_clear_with_pml_marks_dirty_only_at_base():
    for state, dirty in (("base", True), ("after 2/4", False)):
        kvm, _, sptep = mapped(state)
        kvm.cpu_dirty_log_size = 512
        mark = kvm.log.mark()
        kvm.kvm_arch_mmu_enable_log_dirty_pt_masked(kvm.memslots[0], 0, 1 << GFN)
        assert not sptep.get() & kvm.shadow_dirty_mask and kvm.is_writable_pte(sptep.get())
        assert bool(channel(kvm, DIRTY, mark)) is dirty, state


def test_dirty_log_clear_without_pml_write_protects():
    kvm, _, sptep = mapped("base")
    kvm.kvm_arch_mmu_enable_log_dirty_pt_masked(kvm.memslots[0], 0, 1 << GFN)
    assert not kvm.is_writable_pte(sptep.get()) and kvm.is_mmu_writable_spte(sptep.get())
    other = mapped("base")[0]
    other.kvm_arch_mmu_enable_log_dirty_pt_masked(other.memslots[0], 0, 1 << (GFN + 1))
    assert other.is_writable_pte(leaf(other).get())     # a gfn outside the mask is untouched


def write_protect_calls(kvm, gfn_offset, mask, base_gfn=0):
    """The (gfn, min_level) of each kvm_mmu_slot_gfn_write_protect call made by
    kvm_arch_mmu_enable_log_dirty_pt_masked in "manual protect + initially set" mode."""
    calls = []
    kvm.manual_dirty_log_init_set = True
    kvm.eager_page_split = False
    kvm.memslots[0].base_gfn = base_gfn
    kvm.__dict__["kvm_mmu_slot_gfn_write_protect"] = (
        lambda slot, gfn, level: calls.append((gfn, level)) or False)
    kvm.kvm_arch_mmu_enable_log_dirty_pt_masked(kvm.memslots[0], gfn_offset, mask)
    return calls


def test_init_set_clear_tests_crossing_with_2m_aligned_up_bounds():
    """mmu.c compares start and end rounded *up* to 2M (ALIGN): an aligned start
    with an end in the same 2M page counts as crossing (second, redundant call),
    and an end exactly on the next boundary does not (that page is not protected)."""
    kvm, _ = new_shadow_vm("base")
    assert write_protect_calls(kvm, 0, 1 | 1 << 5) == [(0, 2), (5, 2)]
    kvm, _ = new_shadow_vm("base")
    assert write_protect_calls(kvm, 448, 1 | 1 << 63, base_gfn=1) == [(449, 2)]
    # The twin: start and end inside one 2M page, neither aligned: one call.
    kvm, _ = new_shadow_vm("base")
    assert write_protect_calls(kvm, 64, 1 | 1 << 5) == [(64, 2)]


def back_2m_region(kvm):
    for gfn in range(512):
        kvm.host[gfn] = (0x400 + gfn, True)


def test_fault_maps_2m_when_the_host_backs_the_region_with_a_huge_page():
    kvm, vcpu = new_shadow_vm("base")
    back_2m_region(kvm)
    fault(kvm, vcpu)
    assert kvm.memslots[0].rmap.get((2, 0)) and kvm.is_large_pte(leaf(kvm, 0, 2).get())
    kvm, vcpu = new_shadow_vm("base")
    back_2m_region(kvm)
    del kvm.host[300]                               # a hole: the host cannot use a huge page
    fault(kvm, vcpu)
    assert not kvm.memslots[0].rmap.get((2, 0)) and kvm.memslots[0].rmap[(1, GFN)]


def test_2m_fault_balances_its_folio_reference():
    kvm, vcpu = new_shadow_vm("base")
    back_2m_region(kvm)
    fault(kvm, vcpu)
    assert channel(kvm, WARN) == []
    assert all(count == 0 for count in kvm.page_refcount.values())


def test_collapsible_zap_drops_4k_sptes_only_where_a_huge_page_fits():
    kvm, vcpu = new_shadow_vm("base")
    back_2m_region(kvm)
    kvm.memslots[0].flags |= KVM_MEM_LOG_DIRTY_PAGES    # dirty logging forces 4K
    fault(kvm, vcpu)
    sptep = leaf(kvm)
    kvm.memslots[0].flags = 0
    mark = kvm.log.mark()
    kvm.kvm_mmu_zap_collapsible_sptes(kvm.memslots[0])
    assert sptep.get() == 0
    assert channel(kvm, FLUSH, mark) == [TlbFlush(scope="range", gfn=0, pages=1024)]
    kvm, _, sptep = mapped("base")                   # 4K host page: nothing to collapse
    mark = kvm.log.mark()
    kvm.kvm_mmu_zap_collapsible_sptes(kvm.memslots[0])
    assert sptep.get() != 0 and channel(kvm, FLUSH, mark) == []


def test_mmu_try_to_unsync_pages_answers_per_shadow_page_state():
    kvm, _ = new_shadow_vm("base")
    slot = kvm.memslots[0]
    assert kvm.mmu_try_to_unsync_pages(slot, 7, True, False) == 0           # no shadow page
    sp = kvm.kvm_mmu_alloc_shadow_page(None, 7, kvm.active_mmu_pages,
                                       kvm_mmu_page_role(level=1, direct=False))
    assert kvm.mmu_try_to_unsync_pages(slot, 7, False, False) == -EPERM     # syncing
    assert kvm.mmu_try_to_unsync_pages(slot, 7, True, True) == -EEXIST      # prefetch
    assert not sp.unsync
    assert kvm.mmu_try_to_unsync_pages(slot, 7, True, False) == 0
    assert sp.unsync
    kvm.shadow_root_allocated = True    # mmu_first_shadow_root_alloc: write tracking on
    kvm.kvm_mmu_alloc_shadow_page(None, 9, kvm.active_mmu_pages, kvm_mmu_page_role(level=2, direct=False))
    assert slot.gfn_write_track == {9: 1}                                   # account_shadowed
    assert kvm.mmu_try_to_unsync_pages(slot, 9, True, False) == -EPERM      # write-tracked


# -- mutation twins: a mutated mmu.c body changes the effect log ---------------------

def run_with_mutant(parent, replacements, scenario):
    blob = "mut-" + "-".join(sorted(replacements))
    registry.register_blob(MMU_C, blob, parent, replacements)
    try:
        state = {BASE: "base", AFTER_2: "after 2/4", AFTER_3: "after 3/4", AFTER_4: "after 4/4"}[parent]
        versions = VersionSet.series_state(state).with_blob(MMU_C, blob)
        return scenario(versions)
    finally:
        registry.unregister_blob(MMU_C, blob)


def clear_track_bits_without_set_pfn_dirty(kvm, sptep):
    """Mutant of the base mmu_spte_clear_track_bits: the kvm_set_pfn_dirty call dropped."""
    old_spte = sptep.get()
    kvm.__update_clear_spte_slow(sptep, 0)
    if not kvm.is_shadow_present_pte(old_spte):
        return old_spte
    kvm.kvm_update_page_stats(kvm.sptep_to_sp(sptep).role.level, -1)
    pfn = kvm.spte_to_pfn(old_spte)
    if kvm.is_accessed_spte(old_spte):
        kvm.kvm_set_pfn_accessed(pfn)
    return old_spte


def direct_page_fault_without_release(kvm, vcpu, fault_):
    """Mutant of direct_page_fault: the final kvm_release_pfn_clean dropped."""
    r = kvm.kvm_faultin_pfn(vcpu, fault_, 7)
    if r != 0:
        return r
    return kvm.direct_map(vcpu, fault_)


def zap_gfn_range_without_flush(kvm, gfn_start, gfn_end):
    """Mutant of kvm_zap_gfn_range: the ranged flush dropped."""
    kvm.kvm_rmap_zap_gfn_range(gfn_start, gfn_end)


def unmap_scenario(versions):
    kvm, _, _ = mapped(versions=versions)
    mark = kvm.log.mark()
    kvm.kvm_unmap_gfn_range(whole_slot(kvm))
    return kvm.log.since(mark)


def fault_scenario(versions):
    kvm, _, _ = mapped(versions=versions)
    return kvm


def zap_scenario(versions):
    kvm, _, _ = mapped(versions=versions)
    mark = kvm.log.mark()
    kvm.kvm_zap_gfn_range(0, 16)
    return kvm.log.since(mark)


def test_mutant_dropping_set_pfn_dirty_changes_the_dirty_channel():
    real = unmap_scenario(VersionSet.series_state("base"))
    mutant = run_with_mutant(BASE, {"mmu_spte_clear_track_bits": clear_track_bits_without_set_pfn_dirty},
                             unmap_scenario)
    assert [e for e in real if e.channel == DIRTY] == [FolioDirty(pfn=PFN)]
    assert [e for e in mutant if e.channel == DIRTY] == []
    assert [e for e in mutant if e.channel == ACCESSED] == [e for e in real if e.channel == ACCESSED]


def test_mutant_dropping_release_leaks_the_reference():
    real = fault_scenario(VersionSet.series_state("after 4/4"))
    mutant = run_with_mutant(AFTER_4, {"direct_page_fault": direct_page_fault_without_release},
                             fault_scenario)
    assert real.page_refcount[PFN] == 0 and channel(real, ACCESSED) == [FolioAccessed(pfn=PFN)]
    assert mutant.page_refcount[PFN] == 1
    assert channel(mutant, REFS) == [PageRefGet(pfn=PFN)] and channel(mutant, ACCESSED) == []


def test_mutant_dropping_the_zap_flush_changes_the_flush_channel():
    real = zap_scenario(VersionSet.series_state("after 2/4"))
    mutant = run_with_mutant(AFTER_2, {"kvm_zap_gfn_range": zap_gfn_range_without_flush}, zap_scenario)
    assert [e for e in real if e.channel == FLUSH] == [TlbFlush(scope="range", gfn=0, pages=16)]
    assert [e for e in mutant if e.channel == FLUSH] == []
    assert [e for e in mutant if e.channel != FLUSH] == [e for e in real if e.channel != FLUSH]


@pytest.mark.parametrize("state", STATES)
def test_every_series_state_resolves_the_mmu_entry_points(state):
    functions = VersionSet.series_state(state).functions()
    for name in ("kvm_unmap_gfn_range", "kvm_age_gfn", "kvm_test_age_gfn", "kvm_set_spte_gfn",
                 "kvm_zap_gfn_range", "kvm_mmu_zap_all", "kvm_mmu_zap_all_fast",
                 "kvm_mmu_slot_remove_write_access", "kvm_mmu_slot_leaf_clear_dirty",
                 "kvm_mmu_zap_collapsible_sptes", "kvm_arch_mmu_enable_log_dirty_pt_masked",
                 "kvm_tdp_page_fault", "mmu_spte_update", "mmu_spte_clear_track_bits"):
        assert name in functions, name
    assert "no_such_function" not in functions


def test_tdp_mmu_enabled_dispatches_faults_and_unmap_to_the_tdp_mmu():
    kvm, vcpu = new_shadow_vm("base", mmu="tdp")
    kvm.host[GFN] = (PFN, True)
    assert fault(kvm, vcpu) == RET_PF_FIXED
    assert kvm.active_mmu_pages == [] and kvm.memslots[0].rmap == {}     # no shadow pages, no rmaps
    assert vcpu.arch.mmu.root.tdp_mmu_page
    assert [e.by for e in channel(kvm, REFS)] == ["__kvm_faultin_pfn", "kvm_tdp_mmu_page_fault"]
    mark = kvm.log.mark()
    assert kvm.kvm_unmap_gfn_range(whole_slot(kvm)) is True
    assert channel(kvm, ACCESSED, mark) and all(e.by != "mmu_spte_clear_track_bits"
                                                for e in kvm.log.since(mark))
    shadow, _, _ = mapped("base")                   # the same fault without the TDP MMU
    assert [e.by for e in channel(shadow, REFS)] == ["__kvm_faultin_pfn", "direct_page_fault"]


def test_direct_prefetch_maps_neighbours_without_accessed_mark_and_dirty_from_2_4():
    for state, dirty in (("base", False), ("after 2/4", True)):
        kvm, vcpu = new_shadow_vm(state)
        for gfn in range(8):
            kvm.host[gfn] = (0x100 + gfn, True)
        fault(kvm, vcpu)
        neighbours = [g for g in range(8) if g != GFN]
        assert all(kvm.memslots[0].rmap.get((1, g)) for g in neighbours), state
        prefetched = [leaf(kvm, g).get() for g in neighbours]
        assert not any(spte & kvm.shadow_accessed_mask for spte in prefetched)     # access-tracked
        assert channel(kvm, ACCESSED) == [FolioAccessed(pfn=PFN)]                 # only the faulting page
        assert all(kvm.page_refcount[0x100 + g] == 0 for g in range(8))
        prefetch_dirty = {e.pfn for e in channel(kvm, DIRTY)} - {PFN}
        assert (prefetch_dirty == {0x100 + g for g in neighbours}) is dirty, state
        assert bool(prefetch_dirty) is dirty, state


def test_direct_prefetch_skips_a_run_that_would_leave_the_memslot():
    """gfn_to_page_many_atomic returns no page at all when fewer gfns than asked
    are left in the slot (``entry < nr_pages``): the run after the faulting
    entry, 10..15 with the slot ending at 13, is not prefetched even in part,
    while the run before it (8) still is."""
    kvm, vcpu = new_shadow_vm("base")
    kvm.memslots[0].npages = 13
    for gfn in range(16):
        kvm.host[gfn] = (0x100 + gfn, True)
    fault(kvm, vcpu, gfn=9)
    mapped_gfns = sorted(g for (level, g), sptes in kvm.memslots[0].rmap.items() if sptes)
    assert mapped_gfns == [8, 9]
    assert all(count == 0 for count in kvm.page_refcount.values())
    # The twin: with the whole window inside the slot the run is prefetched.
    kvm, vcpu = new_shadow_vm("base")
    kvm.memslots[0].npages = 16
    for gfn in range(16):
        kvm.host[gfn] = (0x100 + gfn, True)
    fault(kvm, vcpu, gfn=9)
    assert sorted(g for (level, g), sptes in kvm.memslots[0].rmap.items() if sptes) == \
        list(range(8, 16))


@pytest.mark.parametrize("mmu", ["shadow", "tdp"])
def test_write_fault_on_a_read_only_memslot_is_emulated_without_a_mapping(mmu):
    """__gfn_to_pfn_memslot gives KVM_PFN_ERR_RO_FAULT for a write through a
    read-only memslot (no page looked up, no reference), and
    kvm_handle_error_pfn turns it into RET_PF_EMULATE."""
    from kernel_models.mmu_fault import RET_PF_EMULATE
    from kernel_models.vm import KVM_MEM_READONLY
    kvm, vcpu = new_shadow_vm("base", mmu=mmu)
    kvm.memslots[0].flags |= KVM_MEM_READONLY
    kvm.host[GFN] = (PFN, True)
    assert fault(kvm, vcpu, write=True) == RET_PF_EMULATE
    assert kvm.kvm_tdp_mmu_fast_pf_get_last_sptep(vcpu, GFN << 12)[1] == 0 if mmu == "tdp" \
        else not any(kvm.memslots[0].rmap.values())
    assert channel(kvm, REFS) == []
    # The twin: a read fault maps the page, read-only.
    assert fault(kvm, vcpu, write=False) == RET_PF_FIXED
    assert channel(kvm, REFS)


def test_no_direct_prefetch_without_ad_bits():
    kvm, vcpu = new_shadow_vm("base", mode="ept_noad")
    for gfn in range(8):
        kvm.host[gfn] = (0x100 + gfn, True)
    fault(kvm, vcpu)
    assert [key for key, sptes in kvm.memslots[0].rmap.items() if sptes] == [(1, GFN)]


def test_fast_page_fault_restores_an_access_tracked_spte_only_without_ad_bits():
    kvm, vcpu, sptep = mapped("after 4/4", mode="ept_noad")
    kvm.kvm_age_gfn(whole_slot(kvm))
    assert kvm.is_access_track_spte(sptep.get())
    f = kvm_page_fault(addr=GFN << 12, gfn=GFN, write=False, present=False, slot=kvm.memslots[0])
    assert kvm.fast_page_fault(vcpu, f) == RET_PF_FIXED
    assert not kvm.is_access_track_spte(sptep.get()) and not kvm.is_writable_pte(sptep.get())
    kvm, vcpu, sptep = mapped("after 4/4", mode="ept_ad")
    kvm.kvm_age_gfn(whole_slot(kvm))
    f = kvm_page_fault(addr=GFN << 12, gfn=GFN, write=False, present=False, slot=kvm.memslots[0])
    assert kvm.fast_page_fault(vcpu, f) == RET_PF_INVALID     # A/D bits on: never access-tracked


def test_host_mapping_level_needs_one_protection_across_the_huge_page():
    """A host 2M page has one protection; mixed writability means the host split it."""
    from kernel_models.operations import new_vm

    kvm = new_vm("base", "ept_ad", "shadow")
    slot = kvm.memslots[0]
    assert kvm.host_pfn_mapping_level(0, slot) == 2
    pfn, _ = kvm.host[5]
    kvm.host[5] = (pfn, False)
    assert kvm.host_pfn_mapping_level(0, slot) == 1
    kvm.host[5] = (pfn, True)
    assert kvm.host_pfn_mapping_level(0, slot) == 2
