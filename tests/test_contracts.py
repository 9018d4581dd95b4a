"""Contracts: bound by normalised subject, written for every RFC patch, inferred otherwise."""

from types import SimpleNamespace

import pytest

from harness.check import contracts as C
from harness.check.claims import read_message
from kernel_models import operations, registry

RFC_SUBJECTS = [
    'KVM: x86/mmu: Skip the "try unsync" path iff the old SPTE was a leaf SPTE',
    "KVM: x86/mmu: Mark folio dirty when creating SPTE, not when zapping/modifying",
    "KVM: x86/mmu: Mark page/folio accessed only when zapping leaf SPTEs",
    "KVM: x86/mmu: Don't force flush if SPTE update clears Accessed bit",
]


@pytest.mark.parametrize("subject", RFC_SUBJECTS)
def test_every_rfc_patch_has_a_written_contract(subject):
    contract = C.contract_for(SimpleNamespace(subject=subject), ())
    assert contract.source == C.WRITTEN
    assert contract.as_dict()["rules"]


@pytest.mark.parametrize("subject", RFC_SUBJECTS)
def test_a_resend_finds_the_same_contract(subject):
    resent = f"Re: [PATCH v2 2/4]  {subject.upper()}"
    assert C.written_contract(resent) is C.written_contract(subject)


def _mail(subject, body=""):
    return SimpleNamespace(subject=subject, raw_subject=subject, body=body)


def test_unknown_patch_gets_the_all_equal_contract_whatever_its_diff_names():
    """The old inferred contract let a patch that deletes a dirty mark lose it (subset):
    the wrong PASS.  The diff no longer says what may change: dirty stays equal."""
    hunk = SimpleNamespace(function="foo", removed=["\tkvm_set_pfn_dirty(pfn);"], added=[])
    contract = C.contract_for(_mail("KVM: x86: something else"), [hunk])
    assert contract.source == C.MESSAGE
    assert contract.relation("dirty", "unmap") == C.EQUAL
    assert contract.rule_for("dirty", "unmap").why == "changed, and the message does not say so"
    assert contract.rules == ()


def test_twin_a_message_that_claims_the_drop_lets_dirty_drop_where_it_says():
    hunk = SimpleNamespace(function="foo", removed=["\tkvm_set_pfn_dirty(pfn);"], added=[])
    contract = C.contract_for(_mail("KVM: x86/mmu: Don't mark folios dirty when zapping SPTEs"),
                              [hunk])
    assert contract.relation("dirty", "unmap") == C.SUBSET
    assert contract.relation("dirty", "fault") == C.EQUAL       # not where the sentence says
    assert contract.relation("flush", "unmap") == C.EQUAL
    (rule,) = contract.rules
    assert rule.sentences == ("Don't mark folios dirty when zapping SPTEs",)


def test_rules_name_real_operations_or_modelled_functions():
    known = set(operations.OPERATIONS) | {v.name for v in registry.table()} | {C.ANY}
    for contract in C.WRITTEN_CONTRACTS.values():
        for rule in contract.rules:
            assert set(rule.operations) <= known, (contract.name, rule.operations)


def test_specific_rule_beats_wildcard():
    contract = C.written_contract(RFC_SUBJECTS[2])
    assert contract.relation("accessed", "unmap") == C.MOVED
    assert contract.relation("accessed", "zap_all") == C.SUBSET
    assert contract.relation("dirty", "unmap") == C.EQUAL


def test_accessed_is_tolerant_everything_else_must_hold():
    contract = C.written_contract(RFC_SUBJECTS[0])
    assert contract.severity("accessed") == "WARN"
    assert {contract.severity(c) for c in ("dirty", "flush", "spte", "refs", "warn")} == {"FAIL"}


def _hunk(*rows: str):
    """A hunk as scope gives it: header, lines, and the changed lines by side."""
    text = "@@ -10,4 +10,4 @@ static bool f(u64 *sptep, u64 new_spte)\n" + "\n".join(rows)
    return SimpleNamespace(text=text, index=0, line=0, function="f",
                           removed=tuple(r[1:] for r in rows if r.startswith("-")),
                           added=tuple(r[1:] for r in rows if r.startswith("+")))


GUARDED_FLUSH = _hunk(" \tbool flush = false;",
                      "-\tif (is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte))",
                      "+\tif (is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte))",
                      " \t\tflush = true;")


def test_a_changed_condition_no_longer_frees_the_flush_it_guards():
    """The inferred contract freed flush here ("a changed condition guards flush
    statements"), so a patch deleting the flush's condition passed; now flush must
    stay equal unless the message says otherwise."""
    contract = C.contract_for(_mail("KVM: x86/mmu: Tidy up f()"), [GUARDED_FLUSH])
    assert contract.relation("flush", "f") == C.EQUAL
    assert contract.severity("flush") == "FAIL"


def test_twin_the_message_naming_the_flush_lets_it_drop_where_the_diff_is():
    contract = C.contract_for(_mail("KVM: x86/mmu: Don't flush if the SPTE stays MMU-writable"),
                              [GUARDED_FLUSH])
    assert contract.relation("flush", "f") == C.SUBSET      # f: where the diff is
    assert contract.relation("flush", "g") == C.EQUAL


def test_where_the_diff_is_brings_the_operations_that_reach_it():
    where = C.Where(("mmu_spte_update",), lambda f: ("fault", "mmu_set_spte")
                    if f == "mmu_spte_update" else ())
    contract = C.from_message("x", read_message("KVM: x86/mmu: Don't force a TLB flush", ""),
                              where)
    assert {op for r in contract.rules for op in r.operations} == \
        {"mmu_spte_update", "fault", "mmu_set_spte"}


def test_no_functional_change_makes_accessed_must_hold_too():
    contract = C.contract_for(_mail("KVM: x86/mmu: Rename a local", "No functional change "
                                    "intended."), [GUARDED_FLUSH])
    assert contract.strict and contract.severity("accessed") == "FAIL"
    assert C.contract_for(_mail("KVM: x86/mmu: Rename a local"), ()).severity("accessed") == "WARN"


def test_an_empty_message_gets_the_all_equal_contract_and_says_so():
    bare = SimpleNamespace(subject="drop-flush.diff", raw_subject="", body="")
    contract = C.contract_for(bare, [GUARDED_FLUSH])
    assert contract.rules == () and contract.claims.status == "missing"
    assert "no claims read" in contract.intent
