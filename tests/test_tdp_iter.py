"""tdp_iter.py: the TDP MMU SPTE write helpers' contracts, each with its broken twin."""

from __future__ import annotations

import pytest

from kernel_models import registry, spte as S
from kernel_models.effects import SpteWrite
from kernel_models.mmu_internal import kvm_mmu_page, kvm_mmu_page_role
from kernel_models.registry import TDP_ITER_H, TDP_MMU_C, UNCHANGED, VersionSet
from kernel_models.spte_domain import domain_at_level, valid_domain
from kernel_models.vm import VM

UNIT_MODULES = ("kernel_models.kvm_main", "kernel_models.mmu_internal", "kernel_models.spte",
                "kernel_models.tdp_iter")


@pytest.fixture(autouse=True)
def only_unit_modules(monkeypatch):
    """Unit tests: load only the modules under test and the ones they call."""
    monkeypatch.setattr(registry, "MODEL_MODULES", UNIT_MODULES)
    monkeypatch.setattr(registry, "_TABLE", None)


@pytest.fixture
def mutant():
    made = []

    def build(file, parent, replacements):
        blob = f"mutant-{len(made)}-{id(replacements):x}"
        registry.register_blob(file, blob, parent, replacements)
        made.append((file, blob))
        return VersionSet.series_state("base").with_blob(file, blob)

    yield build
    for file, blob in made:
        registry.unregister_blob(file, blob)


def base_versions():
    return VersionSet.series_state("base")


def slot_holding(vm: VM, value: int, level: int = 1):
    sp = kvm_mmu_page(vm, kvm_mmu_page_role(level=level), 0, tdp_mmu_page=True)
    sp.spt[7] = value
    return sp.sptep(7)


def labelled(mode: str, label: str) -> int:
    return next(i.value for i in valid_domain(mode) if i.label == label)


# -- kvm_tdp_mmu_spte_need_atomic_write ----------------------------------------

NEED_ATOMIC_CASES = [
    # (mode, label, level, expected): present AND leaf AND volatile.
    ("ept_ad", "leaf 4K W mmuW hostW A pfn=1", 1, True),       # D may be set by the CPU
    ("ept_ad", "leaf 4K W mmuW hostW A D pfn=1", 1, False),    # nothing left to set
    ("ept_ad", "leaf 4K mmuW hostW A D pfn=1", 1, True),       # fast PF may set W
    ("ept_ad", "nonleaf L2", 2, False),                        # non-leaf A bits are ignored
    ("ept_ad", "not-present 0 L1", 1, False),
    ("ept_ad", "removed L1", 1, False),
    ("ept_noad", "leaf 4K hostW AD-off tracked pfn=1", 1, True),
    ("ept_noad", "leaf 4K ro AD-off pfn=1", 1, False),
]


def need_atomic_failures(versions) -> list:
    failures = []
    for mode, label, level, want in NEED_ATOMIC_CASES:
        vm = VM(versions, mode)
        value = next(i.value for i in domain_at_level(mode, level) if i.label == label)
        if vm.kvm_tdp_mmu_spte_need_atomic_write(value, level) != want:
            failures.append((mode, label))
    return failures


def test_need_atomic_write_cases(mutant):
    assert need_atomic_failures(base_versions()) == []
    ignores_leafness = mutant(TDP_ITER_H, UNCHANGED, {
        "kvm_tdp_mmu_spte_need_atomic_write": lambda kvm, old, level:
            kvm.is_shadow_present_pte(old) and kvm.spte_has_volatile_bits(old)})
    assert need_atomic_failures(ignores_leafness) == [("ept_ad", "nonleaf L2")]


# -- kvm_tdp_mmu_write_spte ----------------------------------------------------

def lost_update_failures(versions) -> list:
    """A volatile leaf changed behind the caller's back (CPU set D): the write
    must return what memory held, so the D bit is not lost; a non-volatile
    one returns the caller's old value."""
    failures = []
    vm = VM(versions, "ept_ad")
    snapshot = labelled("ept_ad", "leaf 4K W mmuW hostW A pfn=1")
    sptep = slot_holding(vm, snapshot | S.VMX_EPT_DIRTY_BIT)     # the CPU set D meanwhile
    replaced = vm.kvm_tdp_mmu_write_spte(sptep, snapshot, 0, 1)
    if replaced != snapshot | S.VMX_EPT_DIRTY_BIT:
        failures.append(("volatile", hex(replaced)))
    if sptep.get() != 0:
        failures.append(("volatile store", hex(sptep.get())))
    quiet = labelled("ept_ad", "leaf 4K W mmuW hostW A D pfn=1")
    sptep = slot_holding(vm, quiet)
    if vm.kvm_tdp_mmu_write_spte(sptep, quiet, 0, 1) != quiet or sptep.get() != 0:
        failures.append(("plain", hex(sptep.get())))
    return failures


def test_write_spte_returns_the_value_replaced(mutant):
    assert lost_update_failures(base_versions()) == []
    never_atomic = mutant(TDP_ITER_H, UNCHANGED, {
        "kvm_tdp_mmu_spte_need_atomic_write": lambda kvm, old, level: False})
    assert [kind for kind, _ in lost_update_failures(never_atomic)] == ["volatile"]


# -- tdp_mmu_clear_spte_bits ---------------------------------------------------

def clear_bits_failures(versions) -> list:
    failures = []
    vm = VM(versions, "ept_ad")
    snapshot = labelled("ept_ad", "leaf 4K W mmuW hostW A pfn=1")
    sptep = slot_holding(vm, snapshot | S.VMX_EPT_DIRTY_BIT)
    prior = vm.tdp_mmu_clear_spte_bits(sptep, snapshot, S.VMX_EPT_ACCESS_BIT, 1)
    if prior != snapshot | S.VMX_EPT_DIRTY_BIT:
        failures.append(("atomic return", hex(prior)))
    if sptep.get() != (snapshot | S.VMX_EPT_DIRTY_BIT) & ~S.VMX_EPT_ACCESS_BIT:
        failures.append(("atomic memory", hex(sptep.get())))     # the CPU's D must survive
    quiet = labelled("ept_ad", "leaf 4K W mmuW hostW A D pfn=1")
    sptep = slot_holding(vm, quiet)
    prior = vm.tdp_mmu_clear_spte_bits(sptep, quiet, S.VMX_EPT_DIRTY_BIT, 1)
    if prior != quiet or sptep.get() != quiet & ~S.VMX_EPT_DIRTY_BIT:
        failures.append(("plain", hex(sptep.get())))
    return failures


def test_clear_spte_bits_keeps_concurrent_bits(mutant):
    assert clear_bits_failures(base_versions()) == []
    never_atomic = mutant(TDP_ITER_H, UNCHANGED, {
        "kvm_tdp_mmu_spte_need_atomic_write": lambda kvm, old, level: False})
    assert [kind for kind, _ in clear_bits_failures(never_atomic)] == [
        "atomic return", "atomic memory"]


# -- event attribution ---------------------------------------------------------

def probe_caller(kvm, sptep, old, new, level):
    """Stands for a tdp_mmu.c function that writes an SPTE."""
    return kvm.kvm_tdp_mmu_write_spte(sptep, old, new, level)


def write_attribution(versions) -> list[str]:
    vm = VM(versions, "ept_ad")
    old = labelled("ept_ad", "leaf 4K W mmuW hostW A pfn=1")
    sptep = slot_holding(vm, old)
    vm.tdp_mmu_probe_caller(sptep, old, 0, 1)
    return [e.by for e in vm.log.events if isinstance(e, SpteWrite)]


def test_store_events_are_attributed_to_the_tdp_mmu_caller(mutant):
    with_probe = mutant(TDP_MMU_C, registry.BLOB_CHAINS[TDP_MMU_C][0],
                        {"tdp_mmu_probe_caller": probe_caller})
    assert write_attribution(with_probe) == ["tdp_mmu_probe_caller"]
    # Twin: the same body registered without the helper flag keeps the event.
    from kernel_models import tdp_iter
    registry.register_blob(TDP_ITER_H, "not-a-helper", UNCHANGED,
                           {"kvm_tdp_mmu_write_spte": tdp_iter.kvm_tdp_mmu_write_spte})
    try:
        plain = with_probe.with_blob(TDP_ITER_H, "not-a-helper")
        assert write_attribution(plain) == ["kvm_tdp_mmu_write_spte"]
    finally:
        registry.unregister_blob(TDP_ITER_H, "not-a-helper")


def test_read_and_plain_store_primitives():
    vm = VM(base_versions(), "legacy")
    sptep = slot_holding(vm, 0)
    assert vm.kvm_tdp_mmu_read_spte(sptep) == 0
    vm.__kvm_tdp_mmu_write_spte(sptep, S.REMOVED_SPTE)
    assert vm.kvm_tdp_mmu_write_spte_atomic(sptep, 0) == S.REMOVED_SPTE
    assert [(e.old, e.new) for e in vm.log.events] == [(0, S.REMOVED_SPTE), (S.REMOVED_SPTE, 0)]
