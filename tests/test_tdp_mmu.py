"""tdp_mmu.py and its split-offs: per-version pinned behaviour, each with a twin that must fail.

Every scenario builds the operations' small VM (one 1024-page memslot, every
gfn backed, one vCPU with a TDP root), maps pages with ``kvm_tdp_mmu_map``
(4K unless a test allows more) and runs one TDP
MMU entry point, then looks at the effect log.  Mutant bodies (registered as
extra tdp_mmu.c blobs) show that a dropped dirty mark, accessed mark or flush
changes the log, i.e. would be caught by comparing before and after models.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from kernel_models import operations, registry, tdp_mmu_iter
from kernel_models.effects import (Bug, FolioAccessed, FolioDirty, FlushRequested, SpteWrite,
                                   StatChange, TlbFlush, Warn)
from kernel_models.kvm_main import PG_LEVEL_1G, PG_LEVEL_2M, PG_LEVEL_4K
from kernel_models.mmu_fault import RET_PF_FIXED, RET_PF_RETRY, kvm_vcpu
from kernel_models.mmu_internal import kvm_page_fault
from kernel_models.registry import TDP_MMU_C, VersionSet
from kernel_models.spte import PT_PAGE_SIZE_MASK, PT_WRITABLE_MASK, REMOVED_SPTE
from kernel_models.tdp_mmu import EBUSY, tdp_mmu_zap_leafs_body
from kernel_models.tdp_mmu_iter import for_each_tdp_pte, for_each_tdp_pte_min_level
from kernel_models.vm import KVM_MEM_LOG_DIRTY_PAGES, kvm_gfn_range

BASE = "d078157e62aa"
AFTER_2 = "5866a664f46e"
AFTER_3 = "340d5af454c6"

HOST_PFN = operations.HOST_PFN_BASE      # gfn g is backed by pfn HOST_PFN + g
HUGE_GFN = 600                            # in the 2M region [512, 1024), backed huge
HUGE_PFN = HOST_PFN + 512                 # the first pfn of that region


# -- builders -----------------------------------------------------------------

def new_vm(state: str = "base", mode: str = "ept_ad", *, versions=None, **options):
    """operations.new_vm (one memslot [0, 1024), every gfn backed, 2M-aligned
    runs) -> ``(kvm, vcpu)``; the vCPU already has its TDP root."""
    kvm = operations.new_vm(versions or state, mode, "tdp", **options)
    return kvm, kvm.vcpus[0]


def map_gfn(kvm, vcpu, gfn: int, *, write: bool = True, prefetch: bool = False,
            max_level: int = PG_LEVEL_4K) -> int:
    """kvm_tdp_mmu_map for ``gfn`` with the host pfn already looked up (no page reference)."""
    pfn, writable = kvm.host[gfn]
    fault = kvm_page_fault(addr=gfn << 12, gfn=gfn, write=write, prefetch=prefetch,
                           max_level=max_level)
    fault.slot = kvm.gfn_to_memslot(gfn)
    fault.pfn = pfn
    fault.map_writable = writable
    return kvm.kvm_tdp_mmu_map(vcpu, fault)


def leaf_of(kvm, vcpu, gfn: int):
    """(sptep, spte) of the last SPTE on the walk to gfn."""
    return kvm.kvm_tdp_mmu_fast_pf_get_last_sptep(vcpu, gfn << 12)


def kinds(events, *types):
    return [e for e in events if isinstance(e, types)]


def folio_marks(events):
    """(kind, pfn, by) for every folio mark, in log order."""
    return [(type(e).__name__, e.pfn, e.by) for e in kinds(events, FolioAccessed, FolioDirty)]


@pytest.fixture
def mutant():
    """Register a mutant tdp_mmu.c blob (parent + replaced bodies) for one test."""
    made = []

    def build(state: str, parent: str, replacements: dict):
        blob = f"mut-{len(made)}-{'-'.join(replacements)}"
        registry.register_blob(TDP_MMU_C, blob, parent, replacements)
        made.append(blob)
        return VersionSet.series_state(state).with_blob(TDP_MMU_C, blob)

    yield build
    for blob in made:
        registry.unregister_blob(TDP_MMU_C, blob)


# -- the walk -------------------------------------------------------------------

def test_walk_is_pre_order_and_descends_into_tables_linked_by_the_body():
    kvm, vcpu = new_vm()
    map_gfn(kvm, vcpu, 3)
    visited = [(it.level, it.gfn) for it in for_each_tdp_pte(kvm, vcpu.arch.mmu.root, 0, 4)]
    assert visited == [(4, 0), (3, 0), (2, 0), (1, 0), (1, 1), (1, 2), (1, 3)]
    # The twin: with min_level 2 the walk stops above the 4K table.
    above = [(it.level, it.gfn) for it in
             for_each_tdp_pte_min_level(kvm, vcpu.arch.mmu.root, PG_LEVEL_2M, 0, 4)]
    assert above == [(4, 0), (3, 0), (2, 0)]


def test_walk_from_a_missing_or_bad_root_warns_once_and_visits_nothing():
    """tdp_iter_start at v6.9 bails out (iterator invalid) on a NULL root or a
    root level outside 1..5, instead of warning and walking anyway."""
    kvm, vcpu = new_vm()
    assert list(for_each_tdp_pte(kvm, None, 0, 4)) == []
    assert [e.what for e in kinds(kvm.log.events, Warn)] == [
        "tdp_iter_start: no root, or root level out of range"]
    # The twin: a good root warns nothing and is walked.
    kvm.log.events.clear()
    assert list(for_each_tdp_pte(kvm, vcpu.arch.mmu.root, 0, 1))
    assert kinds(kvm.log.events, Warn) == []
    # A root whose level is out of range is refused before anything is read.
    kvm.log.events.clear()
    vcpu.arch.mmu.root.role.level = 6
    assert list(for_each_tdp_pte(kvm, vcpu.arch.mmu.root, 0, 4)) == []
    assert len(kinds(kvm.log.events, Warn)) == 1


def walk_mismatch(kvm, root, start: int, end: int):
    """First difference between the full walk (zeros dropped) and the skip_zero walk."""
    full = [(it.level, it.gfn, it.old_spte) for it in for_each_tdp_pte(kvm, root, start, end)
            if it.old_spte]
    skipping = [(it.level, it.gfn, it.old_spte)
                for it in for_each_tdp_pte(kvm, root, start, end, skip_zero=True)
                if it.old_spte]
    for a, b in zip(full, skipping):
        if a != b:
            return a, b
    return None if len(full) == len(skipping) else (len(full), len(skipping))


@settings(max_examples=25, deadline=None)
@given(gfns=st.sets(st.integers(0, 15), min_size=1, max_size=6), start=st.integers(0, 15),
       length=st.integers(1, 16))
def test_skipping_zero_entries_visits_the_same_non_zero_entries(gfns, start, length):
    kvm, vcpu = new_vm()
    for gfn in sorted(gfns):
        map_gfn(kvm, vcpu, gfn)
    assert walk_mismatch(kvm, vcpu.arch.mmu.root, start, start + length) is None


def test_a_skip_that_jumps_one_entry_too_far_is_caught(monkeypatch):
    kvm, vcpu = new_vm()
    for gfn in (1, 2, 3):
        map_gfn(kvm, vcpu, gfn)
    real = tdp_mmu_iter.next_side_index
    monkeypatch.setattr(tdp_mmu_iter, "next_side_index",
                        lambda it: real(it) + (1 if it.skip_zero and it.level == 1 else 0))
    assert walk_mismatch(kvm, vcpu.arch.mmu.root, 0, 16) is not None


# -- handle_changed_spte ------------------------------------------------------------

@pytest.mark.parametrize("state", ["base", "after 2/4", "after 3/4"])
def test_handle_changed_spte_bugs_on_a_leaf_replaced_by_a_leaf_with_another_pfn(state):
    kvm, vcpu = new_vm(state)
    map_gfn(kvm, vcpu, 5)
    _, leaf = leaf_of(kvm, vcpu, 5)
    other_pfn = leaf + (1 << 12)
    mark = kvm.log.mark()
    kvm.handle_changed_spte(0, 5, leaf, other_pfn, PG_LEVEL_4K, False)
    assert [e.what for e in kinds(kvm.log.since(mark), Bug)] == [
        f"handle_changed_spte: present leaf {leaf:#x} replaced by leaf {other_pfn:#x}"
        " with another pfn"]
    # Nothing after BUG(): no stats, no folio marks.
    assert kinds(kvm.log.since(mark), StatChange, FolioAccessed, FolioDirty) == []
    # The twin: the same pfn with W cleared is a legal change.
    mark = kvm.log.mark()
    kvm.handle_changed_spte(0, 5, leaf, leaf & ~PT_WRITABLE_MASK, PG_LEVEL_4K, False)
    assert kinds(kvm.log.since(mark), Bug) == []


# -- tdp_mmu_zap_leafs (unmap) ----------------------------------------------------------

ZAP_LEAFS_MARKS = {
    # accessed + dirty 4K leaf of pfn HOST_PFN + 5, zapped by the unmap notifier
    "base": [("FolioDirty", HOST_PFN + 5, "handle_changed_spte"),
             ("FolioAccessed", HOST_PFN + 5, "handle_changed_spte")],
    "after 2/4": [("FolioAccessed", HOST_PFN + 5, "handle_changed_spte")],
    "after 3/4": [("FolioAccessed", HOST_PFN + 5, "tdp_mmu_zap_leafs")],
    "after 4/4": [("FolioAccessed", HOST_PFN + 5, "tdp_mmu_zap_leafs")],
}


@pytest.mark.parametrize("state", sorted(ZAP_LEAFS_MARKS))
def test_unmap_of_an_accessed_dirty_leaf_marks_per_version(state):
    kvm, vcpu = new_vm(state)
    assert map_gfn(kvm, vcpu, 5) == RET_PF_FIXED
    sptep, leaf = leaf_of(kvm, vcpu, 5)
    assert kvm.is_accessed_spte(leaf) and kvm.is_dirty_spte(leaf)
    mark = kvm.log.mark()
    flush = kvm.kvm_tdp_mmu_unmap_gfn_range(kvm_gfn_range(kvm.memslots[0], 0, 16), False)
    assert flush is True
    assert folio_marks(kvm.log.since(mark)) == ZAP_LEAFS_MARKS[state]
    assert sptep.get() == 0


def test_zap_leafs_after_3_4_tests_the_replaced_value_not_the_new_one(mutant):
    """3/4 reads ``iter.old_spte`` after the zap: tdp_mmu_iter_set_spte left the
    zapped value there.  A body testing the new value (0) never marks."""
    def mark_if_memory_accessed(kvm, iter):
        if kvm.is_accessed_spte(iter.sptep.get()):          # the new value: 0
            kvm.kvm_set_pfn_accessed(kvm.spte_to_pfn(iter.sptep.get()))

    def zap_leafs_tests_new_value(kvm, root, start, end, can_yield, flush):
        return tdp_mmu_zap_leafs_body(kvm, mark_if_memory_accessed, root, start, end,
                                      can_yield, flush)

    versions = mutant("after 3/4", AFTER_3, {"tdp_mmu_zap_leafs": zap_leafs_tests_new_value})
    good, vcpu = new_vm("after 3/4")
    bad, bad_vcpu = new_vm(versions=versions)
    for kvm, cpu in ((good, vcpu), (bad, bad_vcpu)):
        map_gfn(kvm, cpu, 5)
        kvm.log.events.clear()
        kvm.kvm_tdp_mmu_zap_leafs(0, 16, False)
    assert folio_marks(good.log) == [("FolioAccessed", HOST_PFN + 5, "tdp_mmu_zap_leafs")]
    assert folio_marks(bad.log) == []


def test_zap_leafs_flushes_for_a_valid_root_only():
    kvm, vcpu = new_vm()
    map_gfn(kvm, vcpu, 5)
    root = vcpu.arch.mmu.root
    assert kvm.tdp_mmu_zap_leafs(root, 0, 16, False, False) is True
    map_gfn(kvm, vcpu, 6)
    root.role.invalid = True
    assert kvm.tdp_mmu_zap_leafs(root, 0, 16, False, False) is False
    assert root.sptep(0).get() != 0 and leaf_of(kvm, vcpu, 6)[1] == 0


def test_a_mutant_that_forgets_the_flush_is_caught(mutant):
    def zap_leafs_no_flush(kvm, root, start, end, can_yield, flush):
        for iter in for_each_tdp_pte_min_level(kvm, root, PG_LEVEL_4K, start, end,
                                               skip_zero=True):
            if not kvm.is_shadow_present_pte(iter.old_spte) or not kvm.is_last_spte(
                    iter.old_spte, iter.level):
                continue
            kvm.tdp_mmu_iter_set_spte(iter, 0)
        return flush

    versions = mutant("base", BASE, {"tdp_mmu_zap_leafs": zap_leafs_no_flush})
    results = []
    for kvm, vcpu in (new_vm("base"), new_vm(versions=versions)):
        map_gfn(kvm, vcpu, 5)
        results.append(kvm.kvm_unmap_gfn_range(kvm_gfn_range(kvm.memslots[0], 0, 16)))
    assert results == [True, False]


# -- handle_changed_spte mutants: a dropped dirty mark is caught --------------------

def test_a_base_mutant_that_drops_the_dirty_mark_changes_the_log(mutant):
    from kernel_models.tdp_mmu import handle_changed_spte_no_dirty_mark

    versions = mutant("base", BASE, {"handle_changed_spte": handle_changed_spte_no_dirty_mark})
    logs = []
    for kvm, vcpu in (new_vm("base"), new_vm(versions=versions)):
        map_gfn(kvm, vcpu, 5)
        mark = kvm.log.mark()
        kvm.kvm_tdp_mmu_zap_leafs(0, 16, False)
        logs.append(folio_marks(kvm.log.since(mark)))
    assert logs[0] != logs[1]
    assert ("FolioDirty", HOST_PFN + 5, "handle_changed_spte") in logs[0]
    assert all(kind != "FolioDirty" for kind, _, _ in logs[1])


# -- zap all -------------------------------------------------------------------------

ZAP_ALL_MARKS = {
    "base": [("FolioDirty", HOST_PFN + 5, "handle_changed_spte"),
             ("FolioAccessed", HOST_PFN + 5, "handle_changed_spte"),
             ("FolioDirty", HOST_PFN + 6, "handle_changed_spte"),
             ("FolioAccessed", HOST_PFN + 6, "handle_changed_spte")],
    "after 2/4": [("FolioAccessed", HOST_PFN + 5, "handle_changed_spte"),
                  ("FolioAccessed", HOST_PFN + 6, "handle_changed_spte")],
    "after 3/4": [],
}


@pytest.mark.parametrize("state", sorted(ZAP_ALL_MARKS))
def test_zap_all_marks_per_version_and_never_flushes(state):
    kvm, vcpu = new_vm(state)
    map_gfn(kvm, vcpu, 5)
    map_gfn(kvm, vcpu, 6)
    mark = kvm.log.mark()
    kvm.kvm_tdp_mmu_zap_all()
    events = kvm.log.since(mark)
    assert folio_marks(events) == ZAP_ALL_MARKS[state]
    assert kinds(events, TlbFlush) == []
    # Every table but the root is gone, and the table statistics balance.
    root = vcpu.arch.mmu.root
    assert root.spt == {}
    table_delta = sum(e.delta for e in kinds(kvm.log, StatChange) if e.stat == "tdp_mmu_pages")
    assert table_delta == 0


def test_zap_invalidated_roots_zaps_shared_and_drops_the_mmu_reference():
    kvm, vcpu = new_vm("base")
    map_gfn(kvm, vcpu, 5)
    root = vcpu.arch.mmu.root
    assert root.tdp_mmu_root_count == 2
    kvm.kvm_tdp_mmu_invalidate_all_roots()
    mark = kvm.log.mark()
    kvm.kvm_tdp_mmu_zap_invalidated_roots()
    events = kvm.log.since(mark)
    assert root.tdp_mmu_root_count == 1 and root in kvm.tdp_mmu_roots
    assert folio_marks(events) == [("FolioDirty", HOST_PFN + 5, "handle_changed_spte"),
                                   ("FolioAccessed", HOST_PFN + 5, "handle_changed_spte")]
    # Shared zaps freeze children with REMOVED_SPTE before freeing the table.
    assert any(isinstance(e, SpteWrite) and e.new == REMOVED_SPTE for e in events)
    # The twin: a second run finds nothing scheduled and does nothing.
    mark = kvm.log.mark()
    kvm.kvm_tdp_mmu_zap_invalidated_roots()
    assert kvm.log.since(mark) == []
    # A new vCPU root is made beside the invalid one.
    kvm.kvm_tdp_mmu_alloc_root(vcpu)
    assert vcpu.arch.mmu.root is not root and len(kvm.tdp_mmu_roots) == 2


def test_alloc_root_reuses_a_valid_root_and_takes_a_reference():
    kvm, vcpu = new_vm()
    root = vcpu.arch.mmu.root
    other = kvm_vcpu(kvm=kvm, vcpu_id=1)
    kvm.kvm_tdp_mmu_alloc_root(other)
    assert other.arch.mmu.root is root and root.tdp_mmu_root_count == 3
    assert len(kvm.tdp_mmu_roots) == 1


# -- huge pages: split ------------------------------------------------------------------

def test_fault_maps_a_2m_leaf_where_the_host_maps_huge():
    kvm, vcpu = new_vm(unbacked_gfns=(100,))
    assert map_gfn(kvm, vcpu, HUGE_GFN, max_level=PG_LEVEL_1G) == RET_PF_FIXED
    sptep, leaf = leaf_of(kvm, vcpu, HUGE_GFN)
    assert sptep.level == PG_LEVEL_2M and leaf & PT_PAGE_SIZE_MASK
    assert kvm.spte_to_pfn(leaf) == HUGE_PFN
    # The twin: in [0, 512), which has a hole at gfn 100, the same fault maps 4K.
    map_gfn(kvm, vcpu, 5, max_level=PG_LEVEL_1G)
    assert leaf_of(kvm, vcpu, 5)[0].level == PG_LEVEL_4K


SPLIT_MARKS = {
    "base": [("FolioDirty", HUGE_PFN, "handle_changed_spte"),
             ("FolioAccessed", HUGE_PFN, "handle_changed_spte")],
    "after 2/4": [("FolioAccessed", HUGE_PFN, "handle_changed_spte")],
    "after 3/4": [],
}


@pytest.mark.parametrize("state", sorted(SPLIT_MARKS))
def test_eager_split_of_a_huge_leaf_marks_the_huge_pfn_per_version(state):
    kvm, vcpu = new_vm(state)
    map_gfn(kvm, vcpu, HUGE_GFN, max_level=PG_LEVEL_1G)
    mark = kvm.log.mark()
    kvm.kvm_tdp_mmu_try_split_huge_pages(kvm.memslots[0], 0, 1024, PG_LEVEL_4K, False)
    events = kvm.log.since(mark)
    assert folio_marks(events) == SPLIT_MARKS[state]
    stats = [(e.level, e.delta) for e in kinds(events, StatChange) if e.stat == "pages"]
    assert stats == [(PG_LEVEL_2M, -1), (PG_LEVEL_4K, 512)]
    sptep, leaf = leaf_of(kvm, vcpu, HUGE_GFN)
    assert sptep.level == PG_LEVEL_4K and kvm.spte_to_pfn(leaf) == HUGE_PFN + HUGE_GFN - 512
    # Splitting again finds nothing huge.
    mark = kvm.log.mark()
    kvm.kvm_tdp_mmu_try_split_huge_pages(kvm.memslots[0], 0, 1024, PG_LEVEL_4K, False)
    assert kinds(kvm.log.since(mark), SpteWrite) == []


def test_zap_collapsible_zaps_the_split_table_with_its_own_flush():
    kvm, vcpu = new_vm("after 3/4", unbacked_gfns=(100,))
    map_gfn(kvm, vcpu, HUGE_GFN, max_level=PG_LEVEL_1G)
    kvm.kvm_tdp_mmu_try_split_huge_pages(kvm.memslots[0], 0, 1024, PG_LEVEL_4K, True)
    mark = kvm.log.mark()
    kvm.kvm_tdp_mmu_zap_collapsible_sptes(kvm.memslots[0])
    events = kvm.log.since(mark)
    assert [(e.scope, e.gfn, e.pages) for e in kinds(events, TlbFlush)] == [("range", 512, 512)]
    assert leaf_of(kvm, vcpu, HUGE_GFN)[1] == 0
    # The twin: the 2M region [0, 512) has a hole at gfn 100: not collapsible, stays.
    map_gfn(kvm, vcpu, 5)
    mark = kvm.log.mark()
    kvm.kvm_tdp_mmu_zap_collapsible_sptes(kvm.memslots[0])
    assert kinds(kvm.log.since(mark), TlbFlush) == [] and leaf_of(kvm, vcpu, 5)[1] != 0


def test_a_mutant_that_drops_the_collapsible_flush_is_caught(mutant):
    def zap_spte_atomic_no_flush(kvm, iter):
        ret = kvm.tdp_mmu_set_spte_atomic(iter, REMOVED_SPTE)
        if ret:
            return ret
        kvm.__kvm_tdp_mmu_write_spte(iter.sptep, 0)
        return 0

    versions = mutant("base", BASE, {"tdp_mmu_zap_spte_atomic": zap_spte_atomic_no_flush})
    flushes = []
    for kvm, vcpu in (new_vm("base"), new_vm(versions=versions)):
        map_gfn(kvm, vcpu, HUGE_GFN, max_level=PG_LEVEL_1G)
        kvm.kvm_tdp_mmu_try_split_huge_pages(kvm.memslots[0], 0, 1024, PG_LEVEL_4K, True)
        mark = kvm.log.mark()
        kvm.kvm_tdp_mmu_zap_collapsible_sptes(kvm.memslots[0])
        flushes.append(len(kinds(kvm.log.since(mark), TlbFlush)))
    assert flushes == [1, 0]


def test_fault_replacing_a_table_by_a_huge_leaf_flushes_and_handles_the_children():
    kvm, vcpu = new_vm("base")
    map_gfn(kvm, vcpu, HUGE_GFN)                      # 4K leaf under a 2M table
    mark = kvm.log.mark()
    assert map_gfn(kvm, vcpu, HUGE_GFN + 1, max_level=PG_LEVEL_2M) == RET_PF_FIXED
    events = kvm.log.since(mark)
    assert [(e.gfn, e.pages) for e in kinds(events, TlbFlush)] == [(512, 512)]
    assert folio_marks(events) == [("FolioDirty", HUGE_PFN + HUGE_GFN - 512, "handle_changed_spte"),
                                   ("FolioAccessed", HUGE_PFN + HUGE_GFN - 512, "handle_changed_spte")]
    assert leaf_of(kvm, vcpu, HUGE_GFN + 1)[0].level == PG_LEVEL_2M


# -- aging ----------------------------------------------------------------------------

AGE_NOAD_MARKS = {
    "base": [("FolioDirty", HOST_PFN + 5, "age_gfn_range")],
    "after 2/4": [],
    "after 3/4": [],
}


@pytest.mark.parametrize("state", sorted(AGE_NOAD_MARKS))
def test_aging_a_writable_leaf_without_ad_bits_marks_dirty_at_base_only(state):
    kvm, vcpu = new_vm(state, "ept_noad")
    map_gfn(kvm, vcpu, 5)
    sptep, leaf = leaf_of(kvm, vcpu, 5)
    assert kvm.is_writable_pte(leaf)
    mark = kvm.log.mark()
    young = kvm.kvm_tdp_mmu_age_gfn_range(kvm_gfn_range(kvm.memslots[0], 5, 6))
    assert young is True
    assert folio_marks(kvm.log.since(mark)) == AGE_NOAD_MARKS[state]
    assert kvm.is_access_track_spte(sptep.get()) and not kvm.is_writable_pte(sptep.get())
    # The twin: the aged SPTE is not young any more and ages to nothing.
    assert kvm.kvm_tdp_mmu_test_age_gfn(kvm_gfn_range(kvm.memslots[0], 5, 6)) is False
    mark = kvm.log.mark()
    assert kvm.kvm_tdp_mmu_age_gfn_range(kvm_gfn_range(kvm.memslots[0], 5, 6)) is False
    assert kvm.log.since(mark) == []


def test_aging_with_ad_bits_clears_accessed_and_never_marks_or_flushes():
    kvm, vcpu = new_vm("base", "ept_ad")
    map_gfn(kvm, vcpu, 5)
    sptep, leaf = leaf_of(kvm, vcpu, 5)
    assert kvm.kvm_tdp_mmu_test_age_gfn(kvm_gfn_range(kvm.memslots[0], 5, 6)) is True
    mark = kvm.log.mark()
    assert kvm.kvm_tdp_mmu_age_gfn_range(kvm_gfn_range(kvm.memslots[0], 0, 16)) is True
    events = kvm.log.since(mark)
    assert [(e.old, e.new) for e in kinds(events, SpteWrite)] == [
        (leaf, leaf & ~kvm.shadow_accessed_mask)]
    assert folio_marks(events) == [] and kinds(events, TlbFlush, FlushRequested) == []


# -- change_pte -----------------------------------------------------------------------------

def test_change_pte_on_a_present_non_volatile_leaf_hits_the_bug_as_in_c():
    """set_spte_gfn passes the zapped value as "old" to its second set; an
    accessed+dirty writable A/D leaf has no volatile bits, the store is plain,
    and handle_changed_spte sees leaf -> leaf with another pfn."""
    kvm, vcpu = new_vm("base", "ept_ad")
    map_gfn(kvm, vcpu, 5)
    mark = kvm.log.mark()
    flush = kvm.kvm_tdp_mmu_set_spte_gfn(kvm_gfn_range(kvm.memslots[0], 5, 6, arg=(0x300, False)))
    assert flush is True
    assert len(kinds(kvm.log.since(mark), Bug)) == 1


def test_change_pte_on_a_volatile_leaf_installs_the_read_only_spte():
    kvm, vcpu = new_vm("base", "ept_ad")
    map_gfn(kvm, vcpu, 5, prefetch=True)            # A clear: volatile (the CPU may set it)
    sptep, leaf = leaf_of(kvm, vcpu, 5)
    assert kvm.spte_has_volatile_bits(leaf)
    mark = kvm.log.mark()
    assert kvm.kvm_tdp_mmu_set_spte_gfn(kvm_gfn_range(kvm.memslots[0], 5, 6, arg=(0x300, False)))
    events = kvm.log.since(mark)
    assert kinds(events, Bug) == []
    assert kvm.spte_to_pfn(sptep.get()) == 0x300 and not kvm.is_writable_pte(sptep.get())
    assert folio_marks(events) == [("FolioDirty", HOST_PFN + 5, "handle_changed_spte")]


# -- dirty logging ----------------------------------------------------------------------------

CLEAR_DIRTY_SLOT_MARKS = {
    ("base", "ept_ad"): [("FolioDirty", HOST_PFN + 5, "handle_changed_spte")],
    ("base", "ept_noad"): [("FolioDirty", HOST_PFN + 5, "handle_changed_spte")],
    ("after 2/4", "ept_ad"): [],
    ("after 2/4", "ept_noad"): [],
}


@pytest.mark.parametrize("state,mode", sorted(CLEAR_DIRTY_SLOT_MARKS))
def test_clear_dirty_slot_clears_d_or_w_and_marks_at_base_only(state, mode):
    kvm, vcpu = new_vm(state, mode)
    map_gfn(kvm, vcpu, 5)
    sptep, leaf = leaf_of(kvm, vcpu, 5)
    dbit = kvm.shadow_dirty_mask if mode == "ept_ad" else PT_WRITABLE_MASK
    mark = kvm.log.mark()
    assert kvm.kvm_tdp_mmu_clear_dirty_slot(kvm.memslots[0]) is True
    assert folio_marks(kvm.log.since(mark)) == CLEAR_DIRTY_SLOT_MARKS[(state, mode)]
    assert sptep.get() == leaf & ~dbit
    # The twin: nothing dirty left, nothing to clear.
    assert kvm.kvm_tdp_mmu_clear_dirty_slot(kvm.memslots[0]) is False


@pytest.mark.parametrize("state,expected", [
    ("base", [("FolioDirty", HOST_PFN + 5, "clear_dirty_pt_masked")]),
    ("after 2/4", []),
    ("after 3/4", []),
])
def test_clear_dirty_pt_masked_marks_unconditionally_at_base(state, expected):
    kvm, vcpu = new_vm(state, "ept_ad")
    map_gfn(kvm, vcpu, 5)
    map_gfn(kvm, vcpu, 6)
    kvm.kvm_tdp_mmu_clear_dirty_slot(kvm.memslots[0])   # as PML logging starts: D cleared
    sptep, leaf = leaf_of(kvm, vcpu, 5)
    assert kvm.is_writable_pte(leaf) and not kvm.is_dirty_spte(leaf)
    mark = kvm.log.mark()
    kvm.kvm_tdp_mmu_clear_dirty_pt_masked(kvm.memslots[0], 0, 1 << 5, True)
    assert folio_marks(kvm.log.since(mark)) == expected
    assert not kvm.is_writable_pte(sptep.get())
    # The twin: gfn 6 is outside the mask and keeps W.
    assert kvm.is_writable_pte(leaf_of(kvm, vcpu, 6)[1])


def test_wrprot_slot_and_write_protect_gfn():
    kvm, vcpu = new_vm("base")
    map_gfn(kvm, vcpu, 5)
    map_gfn(kvm, vcpu, 6)
    assert kvm.kvm_tdp_mmu_wrprot_slot(kvm.memslots[0], PG_LEVEL_4K) is True
    assert not kvm.is_writable_pte(leaf_of(kvm, vcpu, 5)[1])
    assert kvm.is_mmu_writable_spte(leaf_of(kvm, vcpu, 5)[1])
    assert kvm.kvm_tdp_mmu_wrprot_slot(kvm.memslots[0], PG_LEVEL_4K) is False
    assert kvm.kvm_tdp_mmu_write_protect_gfn(kvm.memslots[0], 6, PG_LEVEL_4K) is True
    assert not kvm.is_mmu_writable_spte(leaf_of(kvm, vcpu, 6)[1])
    assert kvm.kvm_tdp_mmu_write_protect_gfn(kvm.memslots[0], 6, PG_LEVEL_4K) is False


def test_make_spte_logs_the_gfn_in_a_dirty_logged_slot():
    kvm, vcpu = new_vm("base")
    kvm.memslots[0].flags |= KVM_MEM_LOG_DIRTY_PAGES
    map_gfn(kvm, vcpu, 5)
    map_gfn(kvm, vcpu, 6, write=False)
    assert kvm.memslots[0].dirty_bitmap == {5, 6}   # both writable (host and slot allow it)


# -- lost races (kvm.tdp_race) ----------------------------------------------------------------

def test_a_lost_cmpxchg_refreshes_old_spte_and_has_no_other_effect():
    kvm, vcpu = new_vm("base")
    map_gfn(kvm, vcpu, 5)
    sptep, leaf = leaf_of(kvm, vcpu, 5)
    iter = next(it for it in for_each_tdp_pte(kvm, vcpu.arch.mmu.root, 5, 6)
                if it.level == PG_LEVEL_4K)
    aged = leaf & ~kvm.shadow_accessed_mask
    kvm.tdp_race = lambda vm, it: it.sptep.set(aged)   # another CPU aged it meanwhile
    mark = kvm.log.mark()
    assert kvm.tdp_mmu_set_spte_atomic(iter, 0) == -EBUSY
    assert iter.old_spte == aged
    assert [type(e) for e in kvm.log.since(mark)] == [SpteWrite]   # only the racing store
    # The twin: without the race the same call succeeds and zaps.
    kvm.tdp_race = None
    assert kvm.tdp_mmu_set_spte_atomic(iter, 0) == 0 and sptep.get() == 0


def test_wrprot_retries_after_losing_a_race_once():
    kvm, vcpu = new_vm("after 3/4")
    map_gfn(kvm, vcpu, 5)
    sptep, leaf = leaf_of(kvm, vcpu, 5)
    races = []

    def fast_fault_sets_dirty_once(vm, it):
        if not races:
            races.append(it.gfn)
            it.sptep.set(it.sptep.get() | vm.shadow_dirty_mask)

    kvm.tdp_race = fast_fault_sets_dirty_once
    assert kvm.kvm_tdp_mmu_wrprot_slot(kvm.memslots[0], PG_LEVEL_4K) is True
    assert races == [5]
    assert sptep.get() == (leaf | kvm.shadow_dirty_mask) & ~PT_WRITABLE_MASK


def test_map_gives_up_on_a_lost_race():
    kvm, vcpu = new_vm("base")
    kvm.tdp_race = lambda vm, it: it.sptep.set(REMOVED_SPTE)
    assert map_gfn(kvm, vcpu, 5) == RET_PF_RETRY
    kvm.tdp_race = None
    # The twin: the retried fault walks into the frozen entry and retries again;
    # once it is cleared, the fault maps.
    assert map_gfn(kvm, vcpu, 5) == RET_PF_RETRY
    vcpu.arch.mmu.root.sptep(0).set(0)
    assert map_gfn(kvm, vcpu, 5) == RET_PF_FIXED
    assert kvm.is_shadow_present_pte(leaf_of(kvm, vcpu, 5)[1])


def test_a_refault_on_a_writable_leaf_takes_make_spte_skip_path_and_drops_d():
    """make_spte's "old SPTE writable" shortcut jumps past the dirty-mask OR, so
    mapping over a present W+D leaf installs W without D: handle_changed_spte
    sees D lost and (base only) marks the folio dirty.  Faithful to C; the
    fast page fault path normally answers such faults as spurious first."""
    marks = {}
    for state in ("base", "after 2/4"):
        kvm, vcpu = new_vm(state)
        map_gfn(kvm, vcpu, 5)
        mark = kvm.log.mark()
        assert map_gfn(kvm, vcpu, 5) == RET_PF_FIXED
        assert not kvm.is_dirty_spte(leaf_of(kvm, vcpu, 5)[1])
        marks[state] = folio_marks(kvm.log.since(mark))
    assert marks == {"base": [("FolioDirty", HOST_PFN + 5, "handle_changed_spte")], "after 2/4": []}


# -- NX recovery -----------------------------------------------------------------------------

@pytest.mark.parametrize("state,expected", [
    ("base", [("FolioDirty", HOST_PFN + 5, "handle_changed_spte"),
              ("FolioAccessed", HOST_PFN + 5, "handle_changed_spte")]),
    ("after 3/4", []),
])
def test_zap_sp_asks_for_a_flush_and_handles_children(state, expected):
    kvm, vcpu = new_vm(state)
    map_gfn(kvm, vcpu, 5)
    sptep, _ = leaf_of(kvm, vcpu, 5)
    table = sptep.sp
    mark = kvm.log.mark()
    assert kvm.kvm_tdp_mmu_zap_sp(table) is True
    events = kvm.log.since(mark)
    assert folio_marks(events) == expected and kinds(events, TlbFlush) == []
    assert table.pfn not in kvm.mmu_pages
    # The twin: a root has no parent SPTE; zapping it is refused with a WARN.
    mark = kvm.log.mark()
    assert kvm.kvm_tdp_mmu_zap_sp(vcpu.arch.mmu.root) is False
    assert [e.what for e in kinds(kvm.log.since(mark), Warn)] == ["kvm_tdp_mmu_zap_sp: root page"]


# -- removed tables and lockless walks ---------------------------------------------------

def test_removed_table_freezes_present_children_only_when_exclusive():
    """handle_removed_pt: under the write lock only present children are frozen;
    the shared path exchanges REMOVED_SPTE into all 512 entries."""
    exclusive, vcpu = new_vm("after 3/4")
    map_gfn(exclusive, vcpu, 5)
    map_gfn(exclusive, vcpu, 6)
    mark = exclusive.log.mark()
    exclusive.kvm_tdp_mmu_zap_sp(leaf_of(exclusive, vcpu, 5)[0].sp)
    frozen = [e for e in kinds(exclusive.log.since(mark), SpteWrite) if e.new == REMOVED_SPTE]
    assert [e.where for e in frozen] == ["tdp1@0x0[5]", "tdp1@0x0[6]"]

    shared, vcpu = new_vm("after 3/4")
    map_gfn(shared, vcpu, 5)
    map_gfn(shared, vcpu, 6)
    table = leaf_of(shared, vcpu, 5)[0].sp
    parent = table.ptep
    iter = next(it for it in for_each_tdp_pte(shared, vcpu.arch.mmu.root, 5, 6)
                if it.sptep == parent)
    mark = shared.log.mark()
    assert shared.tdp_mmu_set_spte_atomic(iter, 0) == 0
    frozen = [e for e in kinds(shared.log.since(mark), SpteWrite) if e.new == REMOVED_SPTE]
    assert len(frozen) == 512 and {e.where.split("[")[0] for e in frozen} == {"tdp1@0x0"}


def test_get_walk_reports_every_level_down_to_the_leaf():
    kvm, vcpu = new_vm()
    map_gfn(kvm, vcpu, 5)
    sptes = {}
    leaf, root_level = kvm.kvm_tdp_mmu_get_walk(vcpu, 5 << 12, sptes)
    assert (leaf, root_level) == (PG_LEVEL_4K, 4)
    assert sorted(sptes) == [1, 2, 3, 4] and sptes[1] == leaf_of(kvm, vcpu, 5)[1]
    # The twin: an unmapped gfn stops at the first empty entry on its way.
    sptes = {}
    assert kvm.kvm_tdp_mmu_get_walk(vcpu, (1 << 18) << 12, sptes) == (3, 4)   # next 1G region
    assert sptes[3] == 0
    sptes = {}
    assert kvm.kvm_tdp_mmu_get_walk(vcpu, (1 << 27) << 12, sptes) == (4, 4)   # next 512G region
    assert sptes == {4: 0}


def test_prove_mmu_zaps_roots_from_1g_down_through_removed_tables():
    """CONFIG_KVM_PROVE_MMU skips the 4K and 2M passes of tdp_mmu_zap_root: the
    leaf is then frozen by handle_removed_pt instead of being zapped itself;
    the folio marks are the same."""
    leaf_writes, marks = {}, {}
    for prove in (False, True):
        kvm, vcpu = new_vm("base", prove_mmu=prove)
        map_gfn(kvm, vcpu, 5)
        sptep, leaf = leaf_of(kvm, vcpu, 5)
        mark = kvm.log.mark()
        kvm.kvm_tdp_mmu_zap_all()
        events = kvm.log.since(mark)
        leaf_writes[prove] = [e.new for e in kinds(events, SpteWrite) if e.where == sptep.where]
        marks[prove] = folio_marks(events)
    assert leaf_writes == {False: [0], True: [REMOVED_SPTE]}
    assert marks[False] == marks[True] == [("FolioDirty", HOST_PFN + 5, "handle_changed_spte"),
                                           ("FolioAccessed", HOST_PFN + 5, "handle_changed_spte")]


def test_a_frozen_child_of_a_shared_removed_table_is_reported_not_spun_on():
    """In C the shared path spins until another CPU unfreezes the child; the
    one-thread model has no such CPU and logs a Bug instead of hanging."""
    kvm, vcpu = new_vm("after 3/4")
    map_gfn(kvm, vcpu, 5)
    sptep, _ = leaf_of(kvm, vcpu, 5)
    iter = next(it for it in for_each_tdp_pte(kvm, vcpu.arch.mmu.root, 5, 6)
                if it.sptep == sptep.sp.ptep)
    sptep.set(REMOVED_SPTE)                         # another CPU's zap in flight
    mark = kvm.log.mark()
    assert kvm.tdp_mmu_set_spte_atomic(iter, 0) == 0
    assert [e.what for e in kinds(kvm.log.since(mark), Bug)] == [
        "handle_removed_pt: child already frozen; no other CPU can unfreeze it"]
