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
