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
