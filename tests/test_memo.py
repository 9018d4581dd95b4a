"""Function-level runs kept and reused (harness.check.memo): never across a changed body.

A kept run is read again only where every body the function can reach is the
same; a body changed deep in the callees (not the driven function itself)
makes a new key, so the change is still run and caught.
"""

from __future__ import annotations

import pytest

from harness.check import contracts as C
from harness.check import drivers as D
from harness.check import engine as E
from harness.check import memo
from kernel_models import registry
from kernel_models.registry import MMU_C, VersionSet

IDENTITY = C.Contract("identity", C.WRITTEN, "no change at all")
BLOB = "feed0000cafe"          # made up: a state of mmu.c only this test registers


@pytest.fixture
def callee_mutant():
    """base with mmu_spte_update's callee mmu_spte_update_no_track returning 0 (the old
    SPTE lost): mmu_spte_update itself is the same body on both sides."""
    base = VersionSet.series_state("base")
    parent = base.blob(MMU_C)
    faithful = registry.lookup(MMU_C, "mmu_spte_update_no_track", parent).function

    def forgets_old_spte(kvm, sptep, new_spte):
        faithful(kvm, sptep, new_spte)
        return 0

    registry.register_blob(MMU_C, BLOB, parent, {"mmu_spte_update_no_track": forgets_old_spte})
    memo.clear()
    try:
        yield base, base.with_blob(MMU_C, BLOB, name="base, callee mutant")
    finally:
        registry.unregister_blob(MMU_C, BLOB)
        memo.clear()


def test_a_changed_callee_makes_a_new_key_and_is_caught(callee_mutant):
    base, mutant = callee_mutant
    driver = D.DRIVERS["mmu_spte_update"]
    assert base.functions()["mmu_spte_update"] is mutant.functions()["mmu_spte_update"]
    assert memo.fingerprint("mmu_spte_update", driver, base) != \
        memo.fingerprint("mmu_spte_update", driver, mutant)
    quiet, _ = E.check_function("mmu_spte_update", base, base, IDENTITY)
    assert quiet == [] and memo.size() > 0        # base's runs are kept now
    findings, _ = E.check_function("mmu_spte_update", base, mutant, IDENTITY)
    assert findings, "the callee's change was read from base's kept runs"
    assert findings[0].counterexample["before"] != findings[0].counterexample["after"]


def test_the_same_bodies_under_another_name_are_read_not_run(callee_mutant, monkeypatch):
    base, _ = callee_mutant
    again = VersionSet.of("base under another name", dict(base.blobs))
    driver = D.DRIVERS["mmu_spte_update"]
    assert memo.fingerprint("mmu_spte_update", driver, base) == \
        memo.fingerprint("mmu_spte_update", driver, again)
    first, coverage = E.check_function("mmu_spte_update", base, base, IDENTITY)
    ran = []
    real = E._run_case
    monkeypatch.setattr(E, "_run_case", lambda *args: ran.append(args) or real(*args))
    second, coverage_again = E.check_function("mmu_spte_update", again, base, IDENTITY)
    assert ran == [] and coverage_again.cases == coverage.cases > 0
    assert first == second == []


def test_a_translated_state_is_never_kept():
    class Other(VersionSet):          # not the registry's own VersionSet: not keyed
        pass

    other = Other.of("other", dict(VersionSet.series_state("base").blobs))
    assert memo.fingerprint("mmu_spte_update", D.DRIVERS["mmu_spte_update"], other) is None
    assert memo.key("mmu_spte_update", None, {"mode": "ept_ad"}) is None


def test_a_transition_is_kept_whole_only_for_the_same_bodies_and_contract(callee_mutant,
                                                                        monkeypatch):
    base, mutant = callee_mutant
    memo.start()                # whole transitions are kept inside a run of kconform only
    functions = ("mmu_spte_update",)
    quiet = E.check_transition("t", base, base, IDENTITY, functions=functions,
                               operations=False)
    caught = E.check_transition("t", base, mutant, IDENTITY, functions=functions,
                                operations=False)
    assert quiet.findings == () and caught.findings     # the mutant's bodies: run, caught
    other = C.Contract("another", C.WRITTEN, "no change at all, by another name")
    assert memo.transition_key(base, mutant, other, "gate", 0, None, functions, False) != \
        memo.transition_key(base, mutant, IDENTITY, "gate", 0, None, functions, False)

    def must_not_run(*args):
        raise AssertionError("a kept transition was run again")

    monkeypatch.setattr(E, "_check_transition", must_not_run)
    again = E.check_transition("t", base, mutant, IDENTITY, functions=functions,
                               operations=False)
    assert again.findings == caught.findings and again.coverage == caught.coverage
    with pytest.raises(AssertionError, match="run again"):
        E.check_transition("t", base, mutant, other, functions=functions, operations=False)


def test_whole_transitions_are_kept_only_inside_a_run():
    """Outside a run of kconform (``memo.start``) a transition is checked afresh each time:
    its key holds the states' bodies, not the operation table, so a caller that swaps an
    operation between two checks (tests/test_entry_points.py does) must not read the first."""
    base = VersionSet.series_state("base")
    key = memo.transition_key(base, base, IDENTITY, "gate", 0, ["matches_contract"], (), True)
    assert key is not None

    def check():
        return E.check_transition("base", base, base, IDENTITY, checks=["matches_contract"],
                                  functions=())

    memo.clear()
    check()
    assert memo.kept_transition(key) is None
    memo.start()
    try:
        check()
        assert memo.kept_transition(key) is not None, "inside a run the transition is kept"
    finally:
        memo.clear()
