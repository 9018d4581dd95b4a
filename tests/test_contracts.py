"""Contracts: bound by normalised subject, written for every RFC patch, inferred otherwise."""

from types import SimpleNamespace

import pytest

from harness.check import contracts as C
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


def test_unknown_patch_gets_an_inferred_contract_naming_its_channels():
    hunk = SimpleNamespace(function="foo", removed=["\tkvm_set_pfn_dirty(pfn);"], added=[])
    contract = C.contract_for(SimpleNamespace(subject="KVM: x86: something else"), [hunk])
    assert contract.source == C.INFERRED
    assert contract.relation("dirty", "unmap") == C.SUBSET
    assert contract.relation("accessed", "unmap") == C.EQUAL


def test_inferred_contract_twin_comment_lines_change_nothing():
    hunk = SimpleNamespace(function="foo", removed=[" * kvm_set_pfn_dirty() is called"], added=[])
    contract = C.infer("x", [hunk])
    assert contract.relation("dirty", "unmap") == C.EQUAL


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


def test_a_changed_condition_lets_the_channel_it_guards_change():
    hunk = _hunk(" \tbool flush = false;",
                 "-\tif (is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte))",
                 "+\tif (is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte))",
                 " \t\tflush = true;")
    rules = {r.channel: r for r in C.infer("x", [hunk]).rules}
    assert rules["flush"].relation == C.FREE
    assert "a changed condition guards flush statements" in rules["flush"].why


def test_twin_a_changed_statement_guards_nothing():
    """The same lines with the change on a full statement: flush is not named, so equal."""
    hunk = _hunk(" \tif (is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte))",
                 " \t\tflush = true;",
                 "-\tspte = old_spte;",
                 "+\tspte = new_spte;")
    assert "flush" not in {r.channel for r in C.infer("x", [hunk]).rules}
