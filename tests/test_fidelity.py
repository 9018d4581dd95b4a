"""harness.check.fidelity: a version set against the models, on a driver's whole domain."""

from __future__ import annotations

from harness.check import drivers, fidelity
from kernel_models import registry
from kernel_models.registry import MMU_C, VersionSet


def test_the_same_bodies_are_equal_on_every_case():
    base = VersionSet.series_state("base")
    row = fidelity.compare_function(drivers.DRIVERS["spte_write_protect"], base, base)
    assert (row.outcome, row.cases) == (fidelity.EQUAL, sum(
        len(drivers.cases("spte_write_protect", mode)) for mode in drivers.MODES))


def test_a_body_that_keeps_the_writable_bit_differs_with_its_first_case():
    def spte_write_protect(kvm, sptep, pt_protect):      # mutant: W is never cleared
        return False

    base = VersionSet.series_state("base")
    blob = "fidelity-mutant"
    registry.register_blob(MMU_C, blob, base.blob(MMU_C), {"spte_write_protect": spte_write_protect})
    try:
        mutant = base.with_blob(MMU_C, blob)
        row = fidelity.compare_function(drivers.DRIVERS["spte_write_protect"], mutant, base)
    finally:
        registry.unregister_blob(MMU_C, blob)
    assert row.outcome == fidelity.DIFFERS
    assert row.detail.splitlines()[0] == "spte_write_protect(level=1, old=0x1e67, pt_protect=False) [legacy]"
    assert "SpteWrite" in row.detail.splitlines()[1] and "(no effects)" in row.detail.splitlines()[2]


# -- drivers drawn from a model's parameters ---------------------------------------------

def test_a_drawn_driver_covers_every_domain_value_of_a_predicate():
    from harness.check import drawn
    from kernel_models.registry import SPTE_H
    from kernel_models.spte_domain import domain_at_level

    base = VersionSet.series_state("base")
    found = drawn.driver_for("is_writable_pte", SPTE_H, base.functions()["is_writable_pte"])
    row = fidelity.compare_function(found, base, base)
    assert row.outcome == fidelity.EQUAL
    assert row.cases == sum(len(domain_at_level(m, level)) for m in drivers.MODES
                            for level in (1, 2, 3, 4))


def test_a_drawn_driver_catches_a_predicate_mutant_with_its_first_value():
    from harness.check import drawn
    from kernel_models.registry import SPTE_H, UNCHANGED

    def is_writable_pte(kvm, pte: int) -> bool:      # mutant: reads the user bit
        return bool(pte & (1 << 2))

    base = VersionSet.series_state("base")
    blob = "fidelity-drawn-mutant"
    registry.register_blob(SPTE_H, blob, UNCHANGED, {"is_writable_pte": is_writable_pte})
    try:
        mutant = base.with_blob(SPTE_H, blob)
        found = drawn.driver_for("is_writable_pte", SPTE_H, base.functions()["is_writable_pte"])
        row = fidelity.compare_function(found, mutant, base)
    finally:
        registry.unregister_blob(SPTE_H, blob)
    assert row.outcome == fidelity.DIFFERS
    first, model, translated = row.detail.splitlines()
    assert first.startswith("is_writable_pte(level=1, value=") and first.endswith("[legacy]")
    value = int(first.split("value=")[1].split(")")[0], 0)
    assert bool(value & 2) != bool(value & 4)          # the first value the two bits tell apart
    assert (model.split(":")[1].strip(), translated.split(":")[1].strip()) == (
        f"Returned(value={int(bool(value & 2))})", f"Returned(value={int(bool(value & 4))})")


def test_a_page_and_an_spte_pointer_are_drawn_and_returned_by_identity():
    from harness.check import drawn
    from kernel_models.registry import MMU_INTERNAL_H

    base = VersionSet.series_state("base")
    found = drawn.driver_for("sptep_to_sp", MMU_INTERNAL_H, base.functions()["sptep_to_sp"])
    assert fidelity.compare_function(found, base, base).outcome == fidelity.EQUAL

    def sptep_to_sp(kvm, sptep):                        # mutant: a fresh page, not the owner
        from kernel_models.mmu_internal import kvm_mmu_page, kvm_mmu_page_role
        return kvm_mmu_page(kvm, kvm_mmu_page_role(level=1), 0)

    blob = "fidelity-drawn-sp"
    registry.register_blob(MMU_INTERNAL_H, blob, base.blob(MMU_INTERNAL_H), {"sptep_to_sp": sptep_to_sp})
    try:
        row = fidelity.compare_function(found, base.with_blob(MMU_INTERNAL_H, blob), base)
    finally:
        registry.unregister_blob(MMU_INTERNAL_H, blob)
    assert row.outcome == fidelity.DIFFERS
    assert row.detail.splitlines()[0].startswith("sptep_to_sp(level=1, value=0) [legacy]")


def test_functions_whose_inputs_are_not_drawn_say_why():
    from harness.check import drawn
    from kernel_models.registry import MMU_C

    base = VersionSet.series_state("base")
    functions = base.functions()
    for name in drawn.NOT_DRAWN:
        assert name in functions, name
        assert drawn.driver_for(name, MMU_C, functions[name]) == drawn.NOT_DRAWN[name]
    reason = drawn.driver_for("kvm_zap_rmap", MMU_C, functions["kvm_zap_rmap"])
    assert reason == "takes rmap_head, slot: state the exhaustive domain does not draw"
