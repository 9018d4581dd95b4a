"""The operation mix reaches PML dirty logging, aging windows and drawn memslots.

Each property both ways: the faithful model passes, a mutant model that
breaks the path is caught, with the counterexample asserted.
"""

import pytest

from harness.check import checks as K
from harness.check import contracts as C
from harness.check import engine as E
from kernel_models import operations as ops
from kernel_models import registry
from kernel_models.registry import VersionSet

BASE = VersionSet.series_state("base")
IDENTITY = C.Contract("identity", C.WRITTEN, "no change at all")


# -- PML: D-clearing dirty logging ------------------------------------------------------

def spte_clear_dirty_keeps_d(kvm, sptep):
    """Mutant of mmu.c spte_clear_dirty: reports a flush but leaves D set, so the
    next guest write is never logged by PML."""
    return True


@pytest.fixture
def keeps_d():
    registry.register_blob(registry.MMU_C, "feed0016aaaa", "e4cc7f764980",
                           {"spte_clear_dirty": spte_clear_dirty_keeps_d})
    yield BASE.with_blob(registry.MMU_C, "feed0016aaaa", "base + D kept by spte_clear_dirty")
    registry.unregister_blob(registry.MMU_C, "feed0016aaaa")


PML_STEPS = [("dirty_log_enable", {}),
             ("fault", {"gfn": 6, "write": True, "exec": False, "prefetch": False}),
             ("dirty_log_clear", {"gfn": 6, "mask": 2**64 - 1})]


def _failure(before, after, steps, pml, checks=("matches_contract",)):
    run = E.Run(before, after, IDENTITY, K.select(list(checks)))
    return E._run_steps(run, ops, "ept_ad", "shadow", steps, pml)


def test_pml_reaches_the_d_clearing_path_only_when_on(keeps_d):
    assert _failure(BASE, BASE, PML_STEPS, pml=True) is None
    assert _failure(BASE, keeps_d, PML_STEPS, pml=False) is None    # write-protects instead
    failure = _failure(BASE, keeps_d, PML_STEPS, pml=True)
    assert failure is not None and failure.violation.channel in ("spte", "dirty")
    assert failure.record["pml"] is True and failure.record["steps"][-1][0] == "dirty_log_clear"


def test_pml_is_recorded_in_the_counterexample_and_replays(keeps_d):
    failure = _failure(BASE, keeps_d, PML_STEPS, pml=True)
    run = E.Run(BASE, keeps_d, IDENTITY, K.select(["matches_contract"]))
    finding = E._operation_finding(run, failure)
    assert finding.counterexample["pml"] is True
    assert "PML on" in finding.counterexample["steps"][-1]
    assert "pml=True" in finding.example
    assert E.decode_replay(finding.replay)["pml"] is True
    text = E.replay(finding.replay)
    assert "PML on" in text and "dirty_log_clear" in text


def test_the_search_draws_pml_and_finds_the_mutant(keeps_d):
    findings, coverage = E.check_operations(BASE, keeps_d, IDENTITY, checks=K.select(
        ["matches_contract"]))
    spte = [f for f in findings if f.channel in ("spte", "dirty")]
    assert spte and all(E.decode_replay(f.replay)["pml"] for f in spte)
    assert "PML on and off" in coverage[0].text


def test_pml_needs_ept_ad_bits():
    with pytest.raises(ValueError, match="PML needs EPT with A/D bits"):
        ops.new_vm("base", "ept_noad", "tdp", pml=True)
    assert [m for m in ops.MODES if ops.pml_supported(m)] == ["ept_ad"]


# -- accessed information as page aging needs it ----------------------------------------

AGED_THEN_ACCESSED = [("fault", {"gfn": 6, "write": False, "exec": False, "prefetch": False}),
                      ("clear_young", {"start": 6, "end": 7}),
                      ("guest_access", {"gfn": 6, "write": False}),
                      ("unmap", {"start": 0, "end": 1024})]


def _m11():
    from tests.mutants import models
    models.register()
    after_2 = VersionSet.series_state("after 2/4")
    return after_2, after_2.with_blob(registry.MMU_C, "bad011aaaaaa", "after 2/4 + m11")


def test_an_access_after_aging_must_reach_the_folio():
    faithful, m11 = _m11()
    run = E.Run(faithful, faithful, IDENTITY, K.select(["accessed_preserved"]))
    assert E._run_steps(run, ops, "ept_ad", "shadow", AGED_THEN_ACCESSED) is None
    run = E.Run(faithful, m11, IDENTITY, K.select(["accessed_preserved"]))
    failure = E._run_steps(run, ops, "ept_ad", "shadow", AGED_THEN_ACCESSED)
    assert failure is not None and failure.violation.severity == "WARN"
    assert failure.record["steps"][-1][0] == "unmap"
    assert "FolioAccessed" in failure.violation.missing[0]


def test_a_mark_at_creation_covers_accesses_up_to_the_aging():
    """The twin: with no access after aging, m11's zap losing the mark loses nothing."""
    faithful, m11 = _m11()
    steps = [AGED_THEN_ACCESSED[0], AGED_THEN_ACCESSED[1], AGED_THEN_ACCESSED[3]]
    run = E.Run(faithful, m11, IDENTITY, K.select(["accessed_preserved"]))
    assert E._run_steps(run, ops, "ept_ad", "shadow", steps) is None


# -- memslot layouts, MMIO SPTEs and the memslot generation -----------------------------

def _register(file, blob, replacements, name):
    parent = registry.known_blobs(file)[0]
    registry.register_blob(file, blob, parent, replacements)
    return BASE.with_blob(file, blob, name)


def _steps_failure(after, steps, checks, mode="ept_ad", mmu="tdp", before=BASE):
    run = E.Run(before, after, IDENTITY, K.select(list(checks)))
    return E._run_steps(run, ops, mode, mmu, steps)


def _fault(gfn, write=True):
    return ("fault", {"gfn": gfn, "write": write, "exec": False, "prefetch": False})


MMIO_THEN_SLOT = [("slot_access", {"gfn": 1030, "write": False}),
                  ("memslot_create", {"base_gfn": 1024, "npages": 16}),
                  ("slot_access", {"gfn": 1030, "write": True})]
MMIO = ("mmio_outside_memslots",)


def check_mmio_spte_ignores_generation(kvm, vcpu, spte):
    """Mutant of mmu.c check_mmio_spte: every MMIO SPTE is taken as current."""
    return True


def kvm_swap_active_memslots_keeps_generation(kvm, as_id):
    """Mutant of kvm_main.c kvm_swap_active_memslots: the generation never moves (and
    the arch hook is not told, which would take generation 0 for a wrap)."""


def kvm_mmu_invalidate_mmio_sptes_never_zaps(kvm, gen):
    """Mutant of mmu.c kvm_mmu_invalidate_mmio_sptes: a wrapped generation zaps nothing."""


@pytest.fixture
def mmio_mutants():
    made = {
        "check": _register(registry.MMU_C, "feed0016bbb1",
                           {"check_mmio_spte": check_mmio_spte_ignores_generation},
                           "base + check_mmio_spte ignores the generation"),
        "swap": _register(registry.KVM_MAIN_C, "feed0016bbb2",
                          {"kvm_swap_active_memslots": kvm_swap_active_memslots_keeps_generation},
                          "base + memslot updates keep the generation"),
        "wrap": _register(registry.MMU_C, "feed0016bbb3",
                          {"kvm_mmu_invalidate_mmio_sptes": kvm_mmu_invalidate_mmio_sptes_never_zaps},
                          "base + no zap on a generation wrap"),
    }
    yield made
    registry.unregister_blob(registry.MMU_C, "feed0016bbb1")
    registry.unregister_blob(registry.KVM_MAIN_C, "feed0016bbb2")
    registry.unregister_blob(registry.MMU_C, "feed0016bbb3")


@pytest.mark.parametrize("mmu", ops.MMUS)
@pytest.mark.parametrize("mode", ops.MODES)
def test_a_fault_outside_every_slot_makes_an_mmio_spte_of_the_generation(mode, mmu):
    kvm = ops.new_vm("base", mode, mmu)
    ops.run(kvm, "slot_access", gfn=1030, write=False)
    sptep = [w for w in kvm.log.events if type(w).__name__ == "SpteWrite"][-1]
    assert kvm.is_mmio_spte(sptep.new) and kvm.get_mmio_spte_gfn(sptep.new) == 1030
    assert kvm.get_mmio_spte_generation(sptep.new) == 0 and kvm.vcpus[0].arch.mmio_gfn == 1030
    ops.run(kvm, "memslot_create", base_gfn=1024, npages=16)
    assert kvm.memslots_generation == 2                 # one swap, two address spaces
    ops.run(kvm, "memslot_move", gfn=1024, new_base_gfn=1100)
    assert kvm.memslots_generation == 6                 # invalidate + move
    ops.run(kvm, "memslot_remove", gfn=1100)
    assert kvm.memslots_generation == 10 and ops.reach_operations.region_slots(kvm) == []


def test_a_stale_mmio_spte_goes_back_to_the_fault_path():
    assert _steps_failure(BASE, MMIO_THEN_SLOT, MMIO + ("no_warnings", "refs_balanced")) is None
    kvm = ops.new_vm("base", "ept_ad", "tdp")
    for name, args in MMIO_THEN_SLOT:
        ops.run(kvm, name, **args)
    sptep = ops.leaf_sptep(kvm, kvm.vcpus[0].arch.mmu.root, 1030)
    assert sptep is not None and kvm.is_writable_pte(sptep.get())    # guest memory now


@pytest.mark.parametrize("mmu", ops.MMUS)
def test_check_mmio_spte_ignoring_the_generation_is_caught(mmio_mutants, mmu):
    failure = _steps_failure(mmio_mutants["check"], MMIO_THEN_SLOT, MMIO, mmu=mmu)
    assert failure is not None and failure.violation.check == "mmio_outside_memslots"
    assert "caches gfn 0x406 as MMIO" in failure.violation.summary
    assert failure.record["steps"][-1][0] == "slot_access"


def test_a_memslot_update_that_keeps_the_generation_is_caught(mmio_mutants):
    failure = _steps_failure(mmio_mutants["swap"], MMIO_THEN_SLOT, MMIO)
    assert failure is not None and failure.record["steps"][-1][0] == "memslot_create"
    assert "carries the current memslot generation" in failure.violation.summary


def _wrapping(after):
    """An MMIO SPTE made at generation 0, then as many updates as bring the next one
    to a wrap of the 19-bit MMIO generation (set directly: 2**18 updates)."""
    run = E.Run(BASE, after, IDENTITY, K.select(list(MMIO)))
    lockstep = E.Lockstep(run, ops, "ept_ad", "tdp")
    lockstep.do("slot_access", {"gfn": 1030, "write": False})
    for vm in lockstep.vms:
        vm.memslots_generation = (1 << 19) - 2
    try:
        lockstep.do("memslot_create", {"base_gfn": 1024, "npages": 16})
    except E.StepFailed as failure:
        return failure
    return None


def test_a_generation_wrap_zaps_every_mmio_spte(mmio_mutants):
    assert _wrapping(BASE) is None
    failure = _wrapping(mmio_mutants["wrap"])
    assert failure is not None and "gfn 0x406 is in memslot 1" in failure.violation.summary


def test_the_operation_check_reaches_memslot_layouts_and_finds_the_generation_mutant(mmio_mutants):
    findings, _ = E.check_operations(BASE, mmio_mutants["swap"], IDENTITY,
                                     checks=K.select(list(MMIO)))
    assert any(f.check == "mmio_outside_memslots" for f in findings)


# -- shadowed guest page tables and write tracking --------------------------------------

WT = ("write_tracking_respected",)


def account_shadowed_without_tracking(kvm, sp):
    """Mutant of mmu.c account_shadowed: a page above 4K neither tracks nor protects."""
    if sp.role.level > 1:
        return
    if kvm.kvm_mmu_slot_gfn_write_protect(kvm.gfn_to_memslot(sp.gfn), sp.gfn, 1):
        kvm.kvm_flush_remote_tlbs_gfn(sp.gfn, 1)


def mmu_try_to_unsync_pages_ignoring_tracking(kvm, slot, gfn, can_unsync, prefetch):
    """Mutant of mmu.c mmu_try_to_unsync_pages: the write-tracked test is gone."""
    for sp in [sp for sp in kvm.active_mmu_pages if not sp.role.direct and sp.gfn == gfn
               and not kvm.is_obsolete_sp(sp)]:
        if not can_unsync:
            return -1
        if sp.unsync:
            continue
        if prefetch:
            return -17
        kvm.kvm_unsync_page(sp)
    return 0


def mmu_sync_children_without_protect(kvm, vcpu, parent, can_yield):
    """Mutant of mmu.c mmu_sync_children: syncs without write-protecting first."""
    invalid_list, pages = [], []
    while kvm.mmu_unsync_walk(parent, pages):
        for sp in pages:
            kvm.kvm_unlink_unsync_page(sp)
            kvm.kvm_sync_page(vcpu, sp, invalid_list)
        pages.clear()
    kvm.kvm_mmu_remote_flush_or_zap(invalid_list, True)
    return 0


def write_track_add_without_protect(kvm, slot, gfn):
    """Mutant of page_track.c __kvm_write_track_add_gfn: counts, never write-protects."""
    kvm.update_gfn_write_track(slot, gfn, 1)


def unaccount_shadowed_keeps_tracker(kvm, sp):
    """Mutant of mmu.c unaccount_shadowed: the tracker of a zapped page stays."""


@pytest.fixture
def tracking_mutants():
    rows = {"account": (registry.MMU_C, "feed0016ccc1", "account_shadowed",
                        account_shadowed_without_tracking),
            "unsync": (registry.MMU_C, "feed0016ccc2", "mmu_try_to_unsync_pages",
                       mmu_try_to_unsync_pages_ignoring_tracking),
            "sync": (registry.MMU_C, "feed0016ccc3", "mmu_sync_children",
                     mmu_sync_children_without_protect),
            "external": (registry.MMU_INTERNAL_H, "feed0016ccc4", "__kvm_write_track_add_gfn",
                         write_track_add_without_protect),
            "unaccount": (registry.MMU_C, "feed0016ccc5", "unaccount_shadowed",
                          unaccount_shadowed_keeps_tracker)}
    yield {key: _register(file, blob, {name: fn}, f"base + mutant {name}")
           for key, (file, blob, name, fn) in rows.items()}
    for file, blob, _, _ in rows.values():
        registry.unregister_blob(file, blob)


SHADOW_LEVEL_2 = [_fault(5), ("shadow_page", {"gfn": 5, "level": 2}),
                  ("guest_access", {"gfn": 5, "write": True})]
TRACKED_WRITE = [("shadow_page", {"gfn": 5, "level": 2}), _fault(5)]
UNSYNC_THEN_SYNC = [("shadow_page", {"gfn": 5, "level": 1}), _fault(5),
                    ("sync_shadow", {"gfn": 5})]
EXTERNAL = [_fault(7), ("external_write_track", {"gfn": 7, "add": True})]


@pytest.mark.parametrize("mmu", ops.MMUS)
@pytest.mark.parametrize("steps", [SHADOW_LEVEL_2, TRACKED_WRITE, UNSYNC_THEN_SYNC, EXTERNAL])
def test_write_tracking_holds_on_the_faithful_models(mmu, steps):
    for mode in ops.MODES:
        assert _steps_failure(BASE, steps, WT + ("no_warnings", "refs_balanced"),
                              mode=mode, mmu=mmu) is None


def test_a_shadow_page_above_4k_write_tracks_its_gfn():
    kvm = ops.new_vm("base", "ept_ad", "tdp")
    ops.run(kvm, "shadow_page", gfn=5, level=2)
    assert ops.slot(kvm).gfn_write_track == {5: 1} and kvm.kvm_gfn_is_write_tracked(ops.slot(kvm), 5)
    ops.run(kvm, "unprotect", gfn=5)
    assert ops.slot(kvm).gfn_write_track == {5: 0} and not kvm.kvm_gfn_is_write_tracked(
        ops.slot(kvm), 5)


@pytest.mark.parametrize("key, steps, last", [
    ("account", SHADOW_LEVEL_2, "shadow_page"),
    ("unsync", TRACKED_WRITE, "fault"),
    ("sync", UNSYNC_THEN_SYNC, "sync_shadow"),
    ("external", EXTERNAL, "external_write_track"),
])
@pytest.mark.parametrize("mmu", ops.MMUS)
def test_a_writable_spte_over_a_tracked_gfn_is_caught(tracking_mutants, key, steps, last, mmu):
    failure = _steps_failure(tracking_mutants[key], steps, WT, mmu=mmu)
    assert failure is not None and failure.violation.check == "write_tracking_respected"
    assert failure.record["steps"][-1][0] == last and "maps gfn 0x" in failure.violation.summary


def test_unprotect_reaches_unaccount_shadowed(tracking_mutants):
    """The tracker a zap keeps is not a writable SPTE, so the contract sees it: the next
    write fault is emulated instead of mapped."""
    steps = [("shadow_page", {"gfn": 5, "level": 2}), ("unprotect", {"gfn": 5}), _fault(5)]
    assert _steps_failure(BASE, steps, ("matches_contract",)) is None
    failure = _steps_failure(tracking_mutants["unaccount"], steps, ("matches_contract",))
    assert failure is not None and failure.record["steps"][-1][0] == "fault"


def test_the_operation_check_reaches_shadow_pages_and_finds_the_tracking_mutant(tracking_mutants):
    findings, _ = E.check_operations(BASE, tracking_mutants["account"], IDENTITY,
                                     checks=K.select(list(WT)))
    assert any(f.check == "write_tracking_respected" for f in findings)
