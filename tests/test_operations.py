"""Operations and the VM builder: every operation runs everywhere it applies,
base keeps page references balanced, effects per version are pinned, and a
dropped release is caught (each property with its broken twin)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel_models import operations as ops
from kernel_models import registry
from kernel_models.effects import FolioAccessed, FolioDirty, PageRefGet, PageRefPut, TlbFlush

ROOT = Path(__file__).resolve().parent.parent
STATES = tuple(registry.SERIES_STATES)

# One argument set per operation, chosen to hit mapped state after ``prelude``.
SAMPLE_ARGS = {
    "fault": {"gfn": 5, "write": True},
    "fast_fault": {"gfn": 6, "write": True},
    "async_pf_ready": {"gfn": 5},
    "guest_access": {"gfn": 5, "write": True},
    "nested_access": {"index": 0, "write": True},
    "unmap": {"start": 0, "end": 1024},
    "change_pte": {"gfn": 600, "writable": False},
    "clear_flush_young": {"start": 0, "end": 1024},
    "clear_young": {"start": 0, "end": 1024},
    "test_young": {"start": 0, "end": 1024},
    "zap_all": {},
    "memslot_delete": {},
    "dirty_log_enable": {},
    "dirty_log_clear": {"gfn": 6, "mask": 2**64 - 1},
    "dirty_log_disable": {},
    "split_huge": {"gfn": 5},
    "collapse": {"gfn": 700},
    "zap_gfn_range": {"start": 0, "end": 1024},
    "shadow_prefetch": {"index": 9, "gfn": 40, "writable": True, "dirty": True, "accessed": True},
    "shadow_sync": {"index": 0, "gfn": 0x100, "writable": True, "dirty": False, "accessed": True},
    "memslot_create": {"base_gfn": 1030, "npages": 8},
    "memslot_remove": {"gfn": 1024},
    "memslot_move": {"gfn": 1024, "new_base_gfn": 1200},
    "slot_access": {"gfn": 1030, "write": True},
    "shadow_page": {"gfn": 6, "level": 2},
    "unprotect": {"gfn": 0x3ff},
    "sync_shadow": {"gfn": 0x3ff},
    "external_write_track": {"gfn": 700, "add": True},
}


def prelude(kvm, mmu: str) -> None:
    """Mapped, accessed, dirty, huge and 4K state for the operation under test."""
    ops.fault(kvm, 5, write=True)                 # a 2M mapping
    ops.guest_access(kvm, 5, write=True)
    ops.fault(kvm, 600, write=False)
    ops.fault(kvm, 700, write=True)
    if mmu == "shadow":
        ops.shadow_prefetch(kvm, 1, 9)
        ops.nested_access(kvm, 0, write=True)
    ops.dirty_log_enable(kvm)                     # splits/write-protects; 4K faults follow
    ops.fault(kvm, 6, write=True)
    ops.fault(kvm, 700, write=True)
    ops.run(kvm, "slot_access", gfn=1030)         # an MMIO SPTE in a gap of the region
    ops.run(kvm, "memslot_create", base_gfn=1024, npages=4)
    ops.run(kvm, "slot_access", gfn=1025, write=True)


def applicable():
    for state in STATES:
        for mmu in ops.MMUS:
            for mode in ops.MODES:
                for name, op in ops.OPERATIONS.items():
                    if op.applies_to(mmu, mode):
                        yield pytest.param(state, mmu, mode, name, id=f"{state}-{mmu}-{mode}-{name}")


def test_every_operation_has_sample_arguments():
    assert set(SAMPLE_ARGS) == set(ops.OPERATIONS)


@pytest.mark.parametrize("state, mmu, mode, name", list(applicable()))
def test_operation_runs_and_base_keeps_references_balanced(state, mmu, mode, name):
    kvm = ops.new_vm(state, mode, mmu)
    prelude(kvm, mmu)
    ops.run(kvm, name, **SAMPLE_ARGS[name])
    if registry.SERIES_STATES[state][registry.PAGING_TMPL_H] == "4d4e98fe4f35":
        assert ops.folio_refcounts(kvm) == {}


def test_balance_check_sees_a_leak():
    """The twin: an extra reference (as a forgotten release leaves) shows."""
    kvm = ops.new_vm("base", "ept_ad", "tdp")
    ops.fault(kvm, 5, write=True)
    assert ops.folio_refcounts(kvm) == {}
    kvm.get_page(ops.HOST_PFN_BASE + 5)
    assert ops.folio_refcounts(kvm) == {ops.HOST_PFN_BASE: 1}


def test_new_vm_backs_full_2m_regions_with_huge_folios():
    kvm = ops.new_vm("base", "ept_ad", "tdp", unbacked_gfns=(1000,))
    assert kvm.page_folio(ops.HOST_PFN_BASE + 5) == ops.HOST_PFN_BASE
    assert kvm.page_folio(ops.HOST_PFN_BASE + 600) == ops.HOST_PFN_BASE + 600   # region has a hole
    assert kvm.page_folio(ops.COW_PFN_BASE + 3) == ops.COW_PFN_BASE + 3


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), mmu=st.sampled_from(ops.MMUS), mode=st.sampled_from(ops.MODES))
def test_random_sequences_on_base_keep_references_balanced_and_never_warn(data, mmu, mode):
    kvm = ops.new_vm("base", mode, mmu)
    names = sorted(n for n, op in ops.OPERATIONS.items() if op.applies_to(mmu, mode))
    for _ in range(data.draw(st.integers(1, 12), label="length")):
        name = data.draw(st.sampled_from(names), label="operation")
        args = data.draw(ops.OPERATIONS[name].arguments, label=name)
        ops.run(kvm, name, **args)
    assert ops.folio_refcounts(kvm) == {}
    assert [e.describe() for e in kvm.log if e.channel == "warn"] == []


def change_pte_over_live_sptes(kvm, gfn, writable):
    """The twin: change_pte without invalidate_range_start first (the kernel never does this)."""
    new_pfn = ops.COW_PFN_BASE + gfn
    kvm.host[gfn] = (new_pfn, writable)
    if kvm.kvm_set_spte_gfn(ops.hva_range(kvm, gfn, gfn + 1, False, arg=(new_pfn, writable))):
        kvm.kvm_flush_remote_tlbs()


def test_change_pte_zaps_first_so_a_huge_spte_cannot_go_stale():
    """Found by Hypothesis: over a live 2M SPTE, set_spte_gfn skips the huge
    SPTE, the next fault splits it and replaces one 4K leaf's pfn: BUG."""
    for change, bugs in ((ops.change_pte, False), (change_pte_over_live_sptes, True)):
        kvm = ops.new_vm("base", "legacy", "tdp")
        ops.async_pf_ready(kvm, 0)
        change(kvm, 0, False)
        ops.async_pf_ready(kvm, 0)
        assert bool([e for e in kvm.log if e.channel == "warn"]) == bugs


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), state=st.sampled_from(STATES), mmu=st.sampled_from(ops.MMUS),
       mode=st.sampled_from(ops.MODES))
def test_random_sequences_run_in_every_state(data, state, mmu, mode):
    kvm = ops.new_vm(state, mode, mmu)
    names = sorted(n for n, op in ops.OPERATIONS.items() if op.applies_to(mmu, mode))
    for _ in range(data.draw(st.integers(1, 10), label="length")):
        name = data.draw(st.sampled_from(names), label="operation")
        ops.run(kvm, name, **data.draw(ops.OPERATIONS[name].arguments, label=name))
    assert all(count >= 0 for count in ops.folio_refcounts(kvm).values())


# -- pinned effects, per version ---------------------------------------------------

def since(kvm, mark, kind):
    return [e for e in kvm.log.since(mark) if isinstance(e, kind)]


@pytest.mark.parametrize("mmu", ops.MMUS)
@pytest.mark.parametrize("mode", ["legacy", "ept_ad"])
def test_shadow_prefetch_base_marks_accessed_and_releases(mode, mmu):
    kvm = ops.new_vm("base", mode, mmu)
    ops.shadow_prefetch(kvm, 1, 9)
    taken = [e.pfn for e in kvm.log if isinstance(e, PageRefGet) and e.by == "FNAME(prefetch_gpte)"]
    released = [e.pfn for e in kvm.log if isinstance(e, PageRefPut) and e.by == "FNAME(prefetch_gpte)"]
    accessed = [e.pfn for e in kvm.log if isinstance(e, FolioAccessed) and e.by == "FNAME(prefetch_gpte)"]
    mapped = [ops.HOST_PFN_BASE + 0x100 + i for i in (0, 3, 4, 5, 6, 7)] + [ops.HOST_PFN_BASE + 9]
    assert len(taken) == 7                        # the group of 8 minus the faulting entry
    assert released == taken                      # references are per folio (all in one 2M folio)
    assert sorted(accessed) == sorted(mapped)
    assert ops.folio_refcounts(kvm) == {}


@pytest.mark.parametrize("mmu", ops.MMUS)
@pytest.mark.parametrize("state", ["after 2/4", "after 3/4", "after 4/4"])
def test_shadow_prefetch_after_2_4_never_drops_its_reference(state, mmu):
    """What the RFC's 2/4 does: gfn_to_pfn_memslot_atomic's reference stays."""
    kvm = ops.new_vm(state, "ept_ad", mmu)
    ops.shadow_prefetch(kvm, 1, 9)
    taken = [e.pfn for e in kvm.log if isinstance(e, PageRefGet) and e.by == "FNAME(prefetch_gpte)"]
    assert len(taken) == 7
    assert not [e for e in kvm.log if isinstance(e, PageRefPut) and e.by == "FNAME(prefetch_gpte)"]
    assert not [e for e in kvm.log if isinstance(e, FolioAccessed) and e.by == "FNAME(prefetch_gpte)"]
    assert ops.folio_refcounts(kvm) == {ops.HOST_PFN_BASE: 7}
    dirtied = {e.pfn for e in kvm.log if isinstance(e, FolioDirty) and e.by == "make_spte"}
    # dirty guest PTEs (the even default entries) map writable; entry 1 (gfn 9) is clean
    assert dirtied == {ops.HOST_PFN_BASE + 0x100 + i for i in (0, 4, 6)}


def synced_clean_entry(state, mmu="shadow"):
    """Entry 0 accessed and dirty by the nested guest, then its gPTE turns clean."""
    kvm = ops.new_vm(state, "ept_ad", mmu)
    ops.shadow_prefetch(kvm, 1, 9)
    ops.nested_access(kvm, 0, write=True)
    mark = kvm.log.mark()
    ops.shadow_sync(kvm, 0, 0x100, writable=True, dirty=False)
    return kvm, mark


@pytest.mark.parametrize("mmu", ops.MMUS)
def test_shadow_sync_marks_accessed_and_dirty_at_base(mmu):
    kvm, mark = synced_clean_entry("base", mmu)
    pfn = ops.HOST_PFN_BASE + 0x100
    assert [e.pfn for e in since(kvm, mark, FolioDirty) if e.by == "mmu_spte_update"] == [pfn]
    assert [e.pfn for e in since(kvm, mark, FolioAccessed) if e.by == "mmu_spte_update"] == [pfn]
    assert [e.by for e in since(kvm, mark, TlbFlush)][-1] == "__kvm_mmu_invalidate_addr"


@pytest.mark.parametrize("state, accessed", [("after 2/4", True), ("after 3/4", False),
                                             ("after 4/4", False)])
def test_shadow_sync_after_2_4_loses_the_dirty_mark(state, accessed):
    kvm, mark = synced_clean_entry(state)
    assert not [e for e in since(kvm, mark, FolioDirty) if e.by == "mmu_spte_update"]
    marks = [e for e in since(kvm, mark, FolioAccessed) if e.by == "mmu_spte_update"]
    assert bool(marks) == accessed
    assert [e.by for e in since(kvm, mark, TlbFlush)][-1] == "__kvm_mmu_invalidate_addr"


@pytest.mark.parametrize("state, marks, flushes", [
    ("base", True, True), ("after 2/4", True, True), ("after 3/4", False, True),
    ("after 4/4", False, False)])
def test_async_pf_over_a_present_read_only_spte(state, marks, flushes):
    """RFC 4/4's one case: a prefetch fault clears A on a present SPTE."""
    kvm = ops.new_vm(state, "ept_ad", "shadow", readonly_gfns=(5,))
    ops.fault(kvm, 5)
    ops.guest_access(kvm, 5)
    mark = kvm.log.mark()
    ops.async_pf_ready(kvm, 5)
    assert bool([e for e in since(kvm, mark, FolioAccessed) if e.by == "mmu_spte_update"]) == marks
    assert bool([e for e in since(kvm, mark, TlbFlush) if e.by == "mmu_set_spte"]) == flushes


@pytest.mark.parametrize("state, dirty", [("base", True), ("after 1/4", True),
                                          ("after 2/4", False), ("after 4/4", False)])
def test_unmap_marks_a_guest_dirtied_page_only_before_2_4(state, dirty):
    kvm = ops.new_vm(state, "ept_ad", "tdp")
    ops.fault(kvm, 5, write=True)
    ops.guest_access(kvm, 5, write=True)
    mark = kvm.log.mark()
    ops.unmap(kvm, 0, 1024)
    assert bool(since(kvm, mark, FolioDirty)) == dirty
    assert [e.by for e in since(kvm, mark, TlbFlush)] == ["kvm_mmu_notifier_invalidate_range_start"]


def test_guest_access_sets_accessed_and_dirty_only_with_ad_bits():
    for mode, expect in (("ept_ad", True), ("ept_noad", False)):
        kvm = ops.new_vm("base", mode, "tdp")
        ops.fault(kvm, 5, write=True)
        ops.clear_young(kvm, 0, 1024)                 # A cleared (or access-tracked without A/D)
        mark = kvm.log.mark()
        ops.guest_access(kvm, 5, write=True)
        writes = [e for e in kvm.log.since(mark) if e.channel == "spte"]
        assert bool(writes) == expect
        assert all(e.new & kvm.shadow_accessed_mask and not e.old & kvm.shadow_accessed_mask
                   for e in writes)


def test_clear_young_never_flushes_but_clear_flush_young_does():
    for name, flushes in (("clear_young", False), ("clear_flush_young", True)):
        kvm = ops.new_vm("base", "ept_ad", "tdp")
        ops.fault(kvm, 5)
        mark = kvm.log.mark()
        ops.run(kvm, name, start=0, end=1024)
        assert bool(since(kvm, mark, TlbFlush)) == flushes


def test_memslot_delete_reloads_the_root_and_faults_again():
    kvm = ops.new_vm("base", "ept_ad", "shadow")
    ops.fault(kvm, 5, write=True)
    old_root = kvm.vcpus[0].arch.mmu.root
    ops.memslot_delete(kvm)
    ops.fault(kvm, 5, write=True)
    assert kvm.vcpus[0].arch.mmu.root is not old_root
    assert ops.leaf_sptep(kvm, kvm.vcpus[0].arch.mmu.root, 5) is not None
    assert ops.folio_refcounts(kvm) == {}


# -- mutation twins: a dropped release must show -------------------------------------

def fault_without_release(kvm, vcpu, fault):
    """kvm_tdp_mmu_page_fault with its kvm_release_pfn_clean dropped (a mutant)."""
    r = kvm.kvm_faultin_pfn(vcpu, fault, 7)
    if r != 0:
        return r
    return kvm.kvm_tdp_mmu_map(vcpu, fault)


def prefetch_without_release(kvm, vcpu, sp, spte, gpte):
    from kernel_models.paging_tmpl import FNAME_prefetch_gpte_without_release
    return FNAME_prefetch_gpte_without_release(kvm, vcpu, sp, spte, gpte)


@pytest.fixture
def mutant_blobs():
    registry.register_blob(registry.MMU_C, "mutant-fault", "e4cc7f764980",
                           {"kvm_tdp_mmu_page_fault": fault_without_release})
    registry.register_blob(registry.PAGING_TMPL_H, "mutant-prefetch", "4d4e98fe4f35",
                           {"FNAME(prefetch_gpte)": prefetch_without_release})
    yield
    registry.unregister_blob(registry.MMU_C, "mutant-fault")
    registry.unregister_blob(registry.PAGING_TMPL_H, "mutant-prefetch")


def test_dropped_fault_release_shows_as_imbalance(mutant_blobs):
    base = registry.VersionSet.series_state("base")
    mutant = base.with_blob(registry.MMU_C, "mutant-fault")
    for versions, leak in ((base, {}), (mutant, {ops.HOST_PFN_BASE: 1})):
        kvm = ops.new_vm(versions, "ept_ad", "tdp")
        ops.fault(kvm, 5, write=True)
        assert ops.folio_refcounts(kvm) == leak


def test_dropped_prefetch_release_shows_as_imbalance(mutant_blobs):
    base = registry.VersionSet.series_state("base")
    mutant = base.with_blob(registry.PAGING_TMPL_H, "mutant-prefetch")
    kvm = ops.new_vm(mutant, "legacy", "shadow")
    ops.shadow_prefetch(kvm, 1, 9)
    assert sum(ops.folio_refcounts(kvm).values()) == 7


# -- the operation table ---------------------------------------------------------------

def test_operation_table_is_well_formed():
    for name, op in ops.OPERATIONS.items():
        assert op.name == name and op.description and op.mmus <= set(ops.MMUS)
        assert op.modes and op.modes <= set(ops.MODES)
    assert not ops.OPERATIONS["split_huge"].applies_to("shadow", "ept_ad")
    assert ops.OPERATIONS["shadow_sync"].applies_to("shadow", "legacy")
    assert ops.OPERATIONS["shadow_sync"].applies_to("tdp", "ept_ad")


def test_nested_pages_under_the_tdp_mmu_turn_rmaps_on():
    kvm = ops.new_vm("base", "ept_ad", "tdp")
    assert not kvm.kvm_memslots_have_rmaps()
    ops.shadow_prefetch(kvm, 1, 9)
    assert kvm.kvm_memslots_have_rmaps()
    mark = kvm.log.mark()
    ops.unmap(kvm, 0x100, 0x108)                  # the nested mappings are rmap-only
    assert sum(1 for e in kvm.log.since(mark) if e.channel == "spte") == 6   # entry 1 maps gfn 9


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_strategies_draw_arguments_the_function_accepts(data):
    import inspect
    for op in ops.OPERATIONS.values():
        args = data.draw(op.arguments, label=op.name)
        inspect.signature(op.function).bind(None, **args)


# -- docs/models.md lists every registered model ---------------------------------------

def test_models_doc_lists_every_registered_name():
    doc = (ROOT / "docs" / "models.md").read_text()
    missing = sorted({row.name for row in registry.table()} - set(_table_names(doc)))
    assert missing == []


def test_models_doc_check_catches_a_missing_name():
    doc = (ROOT / "docs" / "models.md").read_text()
    name = registry.table()[0].name
    broken = "\n".join(line for line in doc.splitlines() if f"`{name}`" not in line)
    assert name not in _table_names(broken)


def test_models_doc_table_is_current():
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "make_models_table.py"), "--check"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _table_names(doc: str) -> list[str]:
    names = []
    for line in doc.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 3 and cells[2].startswith("`") and cells[2].endswith("`"):
            names.append(cells[2].strip("`"))
    return names


@pytest.mark.parametrize("mmu", ops.MMUS)
@pytest.mark.parametrize("state, marks", [("base", True), ("after 1/4", True), ("after 2/4", False),
                                          ("after 4/4", False)])
def test_pml_dirty_log_clear_marks_the_folio_only_before_2_4(state, marks, mmu):
    kvm = ops.new_vm(state, "ept_ad", mmu, pml=True)
    ops.dirty_log_enable(kvm)
    ops.fault(kvm, 6, write=True)                 # logs gfn 6 in the memslot bitmap
    ops.guest_access(kvm, 6, write=True)
    mark = kvm.log.mark()
    ops.dirty_log_clear(kvm, 6, 2**64 - 1)
    assert [e.pfn for e in since(kvm, mark, FolioDirty)] == ([ops.HOST_PFN_BASE + 6] if marks else [])
    assert [e.by for e in since(kvm, mark, TlbFlush)] == ["kvm_clear_dirty_log_protect"]
    assert slot_bitmap(kvm) == set()


def test_dirty_log_clear_only_clears_bits_that_were_dirty():
    """The twin of the test above: once cleared, the same clear does nothing."""
    kvm = ops.new_vm("base", "ept_ad", "tdp", pml=True)
    ops.dirty_log_enable(kvm)
    ops.fault(kvm, 6, write=True)
    ops.dirty_log_clear(kvm, 6, 2**64 - 1)
    mark = kvm.log.mark()
    ops.dirty_log_clear(kvm, 6, 2**64 - 1)
    assert kvm.log.since(mark) == []


def slot_bitmap(kvm):
    return ops.slot(kvm).dirty_bitmap
