"""The versioned table of how operations call the kernel (kernel_models.entry_points)."""

from __future__ import annotations

import inspect

import pytest

from kernel_models import entry_points as E
from kernel_models import operations
from kernel_models.registry import VersionSet


def test_every_step_the_operations_make_has_the_models_form():
    functions = VersionSet.series_state("base").functions()
    for steps in list(E.OPERATION_STEPS.values()) + [E.ROOT_RELOAD]:
        for step in steps:
            row = E.model_row(step)
            model = inspect.signature(functions[step])
            # the model's first parameter is the VM, standing for C's struct kvm *kvm
            expected = len([p for p in row.parameters if p != "kvm"])
            assert len(model.parameters) - 1 == expected, (step, row.parameters, model)


def test_a_mismatched_row_is_caught_by_the_signature_check():
    functions = VersionSet.series_state("base").functions()
    wrong = E.Call("kvm_unmap_gfn_range", "kvm_unmap_gfn_range", ("kvm", "range", "flush"),
                   E.OLDEST, None, "made up")
    model = inspect.signature(functions["kvm_unmap_gfn_range"])
    assert len(model.parameters) - 1 != len([p for p in wrong.parameters if p != "kvm"])


def test_every_operation_lists_its_steps():
    assert set(E.OPERATION_STEPS) == set(operations.OPERATIONS)


def test_change_pte_is_skipped_from_v6_10_and_named():
    assert E.skipped((6, 9, 0)) == {}
    at_612 = E.skipped((6, 12, 0))
    assert set(at_612) == {"change_pte", "unprotect"}    # kvm_mmu_unprotect_page too
    assert "kvm_mmu_unprotect_page is not in v6.12" in at_612["unprotect"]
    assert "kvm_set_spte_gfn is not in v6.12" in at_612["change_pte"]
    assert "removed in v6.10" in at_612["change_pte"]


def test_the_shadow_sync_path_is_skipped_where_kvm_sync_spte_is_absent():
    at_61 = E.skipped((6, 1, 15))
    # also what came in v6.6: mmu.c's kvm_arch_flush_shadow_memslot, page_track.c's interface
    assert set(at_61) == {"shadow_sync", "memslot_remove", "memslot_move",
                          "external_write_track"}
    assert "kvm_sync_spte is not in v6.1.15" in at_61["shadow_sync"]


def test_argument_lists_follow_the_release():
    root = object()
    assert E.translate_arguments("kvm_tdp_mmu_put_root", (6, 6, 0), (root,)) == (
        "kvm_tdp_mmu_put_root", (root, False))
    assert E.translate_arguments("kvm_tdp_mmu_put_root", (6, 9, 0), (root,)) == (
        "kvm_tdp_mmu_put_root", (root,))
    assert E.translate_arguments("kvm_tdp_mmu_zap_sp", (6, 18, 2), ("sp",)) == (
        "kvm_tdp_mmu_zap_possible_nx_huge_page", ("sp",))
    assert E.translate_arguments("kvm_mmu_zap_collapsible_sptes", (6, 13, 2), ("slot",))[0] \
        == "kvm_mmu_recover_huge_pages"
    with pytest.raises(LookupError, match="kvm_set_spte_gfn does not exist in v6.12"):
        E.translate_arguments("kvm_set_spte_gfn", (6, 12, 0), ("range",))
    with pytest.raises(TypeError):
        E.translate_arguments("kvm_unmap_gfn_range", (6, 9, 0), ())


class _Versions:
    def __init__(self, release):
        self.release = release


class _Kernel:
    """A VM stand-in whose functions record how they were called."""

    def __init__(self, release):
        self.versions = _Versions(release)
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, args))


def test_call_goes_to_the_releases_function_with_its_arguments():
    kernel = _Kernel((6, 1, 15))
    E.call(kernel, "kvm_tdp_mmu_put_root", "root")
    kernel_7 = _Kernel((7, 1, 5))
    E.call(kernel_7, "kvm_tdp_mmu_zap_sp", "sp")
    models = _Kernel(None)
    E.call(models, "kvm_tdp_mmu_put_root", "root")
    assert kernel.calls == [("kvm_tdp_mmu_put_root", ("root", False))]
    assert kernel_7.calls == [("kvm_tdp_mmu_zap_possible_nx_huge_page", ("sp",))]
    assert models.calls == [("kvm_tdp_mmu_put_root", ("root",))]


def test_the_release_is_read_from_a_makefile():
    text = "# SPDX\nVERSION = 6\nPATCHLEVEL = 13\nSUBLEVEL = 2\nEXTRAVERSION =\n"
    assert E.parse_release(text) == (6, 13, 2)
    assert E.release_name((6, 13, 2)) == "v6.13.2" and E.release_name((6, 9, 0)) == "v6.9"
    assert E.parse_release("all:\n\techo\n") is None


class _AtRelease(VersionSet):
    """The hand-written base state, claiming to stand for a later release."""

    release = (6, 12, 0)


def test_an_operation_the_release_lacks_is_skipped_and_listed(monkeypatch):
    from harness.check import contracts as C
    from harness.check import engine as Engine

    identity = C.Contract("identity", C.WRITTEN, "no change at all")
    ran = []
    original = operations.OPERATIONS["change_pte"]
    monkeypatch.setitem(operations.OPERATIONS, "change_pte", operations.Operation(
        original.name, lambda kvm, **a: ran.append(a) or original.function(kvm, **a),
        original.mmus, original.modes, original.arguments, original.description))
    later = _AtRelease.of("base at v6.12", VersionSet.series_state("base").blobs and
                          dict(VersionSet.series_state("base").blobs))
    outcome = Engine.check_transition("later", later, later, identity,
                                      checks=["matches_contract"], functions=())
    (coverage,) = outcome.coverage
    assert "skipped for this state: change_pte (kvm_set_spte_gfn is not in v6.12" \
        in coverage.text
    assert ran == []
    base = VersionSet.series_state("base")
    outcome = Engine.check_transition("base", base, base, identity,
                                      checks=["matches_contract"], functions=())
    assert "skipped" not in outcome.coverage[0].text
    assert ran, "at the models' own release change_pte runs"
