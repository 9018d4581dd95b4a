"""The engine: relations, the check registry, invariants on base, counterexamples, replay."""

import pytest

from harness.check import engine as E
from harness.check import checks as K
from harness.check import contracts as C
from harness.check.claims import read_message
from harness.errors import KconformError
from kernel_models.effects import FolioAccessed, FolioDirty
from kernel_models.registry import SERIES_STATES, VersionSet

BASE = VersionSet.series_state("base")
IDENTITY = C.Contract("identity", C.WRITTEN, "no change at all")


def _by(event, name):
    object.__setattr__(event, "by", name)
    return event


def test_relations_hold_and_their_twins_fail():
    a = _by(FolioDirty(pfn=1), "f")
    moved = _by(FolioDirty(pfn=1), "g")
    assert K.compare_channel(C.EQUAL, [a], [a])[0]
    assert not K.compare_channel(C.EQUAL, [a], [moved])[0]
    assert K.compare_channel(C.MOVED, [a], [moved])[0]
    assert not K.compare_channel(C.MOVED, [a], [])[0]
    assert K.compare_channel(C.SUBSET, [a], [])[0]
    assert not K.compare_channel(C.SUBSET, [], [a])[0]
    assert K.compare_channel(C.SUPERSET, [], [a])[0]
    assert not K.compare_channel(C.SUPERSET, [a], [])[0]
    assert K.compare_channel(C.FREE, [a], [FolioAccessed(pfn=2)])[0]


def test_registry_refuses_a_duplicate_check():
    with pytest.raises(ValueError):
        K.check("refs_balanced", failure="X", channels=(), levels=(), description="")(lambda s: [])


def test_checks_are_selected_by_name():
    assert [c.name for c in K.select("refs_balanced,dirty_preserved")] == [
        "dirty_preserved", "refs_balanced"]
    with pytest.raises(KconformError):
        K.select("no_such_check")


@pytest.mark.parametrize("name", [n for n, c in K.CHECKS.items() if "operation" in c.levels])
def test_every_invariant_holds_on_the_base_version_set(name):
    outcome = E.check_transition("base", BASE, BASE, IDENTITY, checks=[name], functions=())
    assert outcome.findings == (), outcome.findings[0].text()


@pytest.mark.parametrize("state", [s for s in SERIES_STATES if s != "base"])
def test_the_widened_invariants_hold_on_every_series_state(state):
    """The flush invariant (any zap or lost permission) and no_warnings are never
    narrowed so that a state passes: each bundled state runs them (twins: the
    unseen mutants u01-u06 and u17, u19, u21 in tests/test_mutants.py)."""
    versions = VersionSet.series_state(state)
    outcome = E.check_transition(state, versions, versions, IDENTITY,
                                 checks=["flush_after_write_protect", "no_warnings"],
                                 functions=())
    assert outcome.findings == (), outcome.findings[0].text()


def test_lost_permissions_names_each_bit_the_new_spte_lacks():
    from kernel_models.operations import new_vm
    ept, legacy = new_vm("base", "ept_ad"), new_vm("base", "legacy")
    leaf = (1 << 11) | 0x7 | (0x42 << 12)
    assert K.lost_permissions(ept, leaf, leaf) == ()
    assert K.lost_permissions(ept, leaf, leaf & ~0x2) == ("write access",)
    assert K.lost_permissions(ept, leaf, leaf & ~0x4) == ("execute access",)
    assert K.lost_permissions(ept, leaf, leaf & ~0x1) == ("read access",)
    nx = 1 << 63
    assert K.lost_permissions(legacy, leaf, leaf | nx) == ("execute access",)
    assert K.lost_permissions(legacy, leaf, leaf & ~0x4) == ("user access",)


def test_function_level_is_exhaustive_and_says_so():
    outcome = E.check_transition("base", BASE, BASE, IDENTITY, functions=["mmu_spte_update"],
                                 operations=False)
    assert outcome.findings == ()
    assert outcome.coverage[0].mode == "exhaustive"
    assert outcome.coverage[0].text.startswith("mmu_spte_update: exhaustive: 100% of ")


def test_function_level_twin_finds_4_4_flush_change_with_counterexample_and_replay():
    after_3 = VersionSet.series_state("after 3/4")
    after_4 = VersionSet.series_state("after 4/4")
    outcome = E.check_transition("4/4 under identity", after_3, after_4, IDENTITY,
                                 functions=["mmu_spte_update"], operations=False)
    finding = next(f for f in outcome.findings if f.channel == "flush")
    cx = finding.counterexample
    assert cx["difference"]["flush"]["missing"]
    assert cx["sptes"] and cx["example"].startswith("@example(")
    assert "Reproduce with:" in finding.text()
    text = E.replay(finding.replay)
    assert "FlushRequested" in text and "missing" in text
    again = E.check_transition("4/4 under identity", after_3, after_4, IDENTITY,
                               functions=["mmu_spte_update"], operations=False)
    assert [f.counterexample for f in again.findings] == [f.counterexample for f in outcome.findings]


def test_replay_rejects_a_bad_token():
    with pytest.raises(KconformError):
        E.replay("not-a-token")


def test_gate_runs_are_deterministic():
    after_3 = VersionSet.series_state("after 3/4")
    after_4 = VersionSet.series_state("after 4/4")
    contract = C.written_contract("KVM: x86/mmu: Don't force flush if SPTE update clears Accessed bit")
    runs = [E.check_transition("4/4", after_3, after_4, contract, functions=()) for _ in range(2)]
    assert [f.as_dict() for f in runs[0].findings] == [f.as_dict() for f in runs[1].findings]
    assert runs[0].coverage == runs[1].coverage


def test_a_contract_violation_on_operations_names_the_channel_and_shrinks():
    # the twin of the identity check: base vs after 2/4 under an all-equal contract must fail
    after_2 = VersionSet.series_state("after 2/4")
    outcome = E.check_transition("2/4 under identity", VersionSet.series_state("after 1/4"),
                                 after_2, IDENTITY, checks=["matches_contract"], functions=())
    dirty = [f for f in outcome.findings if f.channel == "dirty"]
    assert dirty and len(dirty[0].counterexample["steps"]) <= 4
    assert "Reproduce with:" in dirty[0].text()
    assert "step" in E.replay(dirty[0].replay)


def test_equal_ignores_by_only_for_a_function_that_exists_on_one_side():
    inlined = _by(FolioDirty(pfn=1), "deleted_helper")
    caller = _by(FolioDirty(pfn=1), "caller")
    other = _by(FolioDirty(pfn=1), "another")
    assert K.compare_channel(C.EQUAL, [inlined], [caller], common={"caller", "another"})[0]
    assert not K.compare_channel(C.EQUAL, [other], [caller], common={"caller", "another"})[0]


def test_rfc_1_changes_the_spte_only_where_its_contract_allows():
    before, after = BASE, VersionSet.series_state("after 1/4")
    twin = E.check_transition("1/4 under identity", before, after, IDENTITY,
                              checks=["matches_contract"], functions=())
    assert any(f.channel == "spte" and f.operation == "fault" for f in twin.findings)
    contract = C.written_contract(
        'KVM: x86/mmu: Skip the "try unsync" path iff the old SPTE was a leaf SPTE')
    real = E.check_transition("1/4", before, after, contract, functions=())
    assert real.findings == ()


def test_rfc_4_drops_a_flush_only_where_its_contract_allows():
    before, after = VersionSet.series_state("after 3/4"), VersionSet.series_state("after 4/4")
    twin = E.check_transition("4/4 under identity", before, after, IDENTITY,
                              checks=["matches_contract"], functions=())
    assert any(f.channel == "flush" and f.operation == "async_pf_ready" for f in twin.findings)
    contract = C.written_contract(
        "KVM: x86/mmu: Don't force flush if SPTE update clears Accessed bit")
    real = E.check_transition("4/4", before, after, contract, checks=["matches_contract"],
                              functions=())
    assert real.findings == ()


# -- the FNAME(prefetch_gpte) driver, both ways ------------------------------------------

def _prefetch_variant(name: str, after_map):
    from kernel_models import registry
    from kernel_models.paging_tmpl import _prefetch_gpte_body

    def variant(kvm, vcpu, sp, spte, gpte):
        return _prefetch_gpte_body(kvm, after_map, vcpu, sp, spte, gpte)

    variant.__name__ = f"FNAME_prefetch_gpte_{name}"
    blob = {"same": "feed00000001", "double": "feed00000002"}[name]
    registry.register_blob(registry.PAGING_TMPL_H, blob, "4d4e98fe4f35",
                           {"FNAME(prefetch_gpte)": variant})
    base = VersionSet.series_state("base")
    return base, base.with_blob(registry.PAGING_TMPL_H, blob, f"base + prefetch {name}")


def test_prefetch_driver_is_exhaustive_and_quiet_for_an_equal_body():
    from kernel_models.paging_tmpl import release_prefetched_pfn

    before, after = _prefetch_variant("same", release_prefetched_pfn)
    contract = C.from_message("prefetch equal", read_message("", ""))
    findings, coverage = E.check_function("FNAME(prefetch_gpte)", before, after, contract)
    assert findings == []
    assert coverage.mode == "exhaustive" and coverage.cases == coverage.total > 0


def test_prefetch_driver_catches_a_double_release_on_the_refs_channel():
    def release_twice(kvm, pfn):
        kvm.kvm_release_pfn_clean(pfn)
        kvm.kvm_release_pfn_clean(pfn)

    before, after = _prefetch_variant("double", release_twice)
    contract = C.from_message("prefetch double", read_message("", ""))
    findings, _ = E.check_function("FNAME(prefetch_gpte)", before, after, contract)
    refs = [f for f in findings if f.channel == "refs"]
    assert refs and refs[0].counterexample["difference"]["refs"]["extra"]
    assert refs[0].replay


def test_replay_of_an_inherited_finding_says_warn_and_inherited_a_new_one_fail():
    """2/4's reference leak, seen from 3/4 (inherited) and from 2/4 itself (new)."""
    def finding(before, after):
        outcome = E.check_transition("t", VersionSet.series_state(before),
                                     VersionSet.series_state(after),
                                     C.Contract(name="t", source=C.MESSAGE, intent="t"),
                                     functions=(), checks=["refs_balanced"])
        return next(f for f in outcome.findings if f.check == "refs_balanced")

    inherited = E.replay(finding("after 2/4", "after 3/4").replay)
    assert "WARN refs_balanced [refs]" in inherited and "(inherited" in inherited
    new = E.replay(finding("after 1/4", "after 2/4").replay)
    assert "FAIL refs_balanced [refs]" in new and "(inherited" not in new
