"""The tree's own state, translated whole, as the second model source.

Trees are built here from C written for these tests (the mmu.c stand-in of
test_kernel_tree, with a function no hand-written state holds).
"""

from __future__ import annotations

import shutil

import pytest

from harness.resolve import tree_source
from harness.resolve.kernel_tree import open_tree
from harness.resolve.strategies import resolve
from kernel_models.model_source import HAND_WRITTEN, ModelState
from tests.test_kernel_tree import (DROP_ACCESSED_FLUSH, MMU_C, UPDATE_AFTER_3, git, hunks_of,
                                    make_patch, make_tree)
from tests.test_preimage import renamed_index

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

UNMODELLED = UPDATE_AFTER_3.replace("bool flush = false;", "bool flush = false;\n\tint unused = 0;")
MAKEFILE = "# SPDX-License-Identifier: GPL-2.0\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\n"


def unmodelled_patch(tmp_path):
    tree = make_tree(tmp_path, UNMODELLED)
    (tree / "Makefile").write_text(MAKEFILE)
    git(tree, "add", ".")
    git(tree, "commit", "-qm", "makefile")
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    renamed_index(patch)
    return tree, patch


def test_both_sources_answer_the_same_interface():
    assert isinstance(HAND_WRITTEN.state("base"), ModelState)
    assert HAND_WRITTEN.state("base").release is None
    assert "after 4/4" in HAND_WRITTEN.states()


def test_a_translation_kconform_cannot_run_covers_nothing_and_says_why(tmp_path):
    tree, patch = unmodelled_patch(tmp_path)
    resolution = resolve(hunks_of(patch), tree=open_tree(str(tree)))
    assert not isinstance(resolution.before, tree_source.TranslatedState)
    assert "the tree's translated state was not used: nothing runs the translated " \
           "mmu_spte_update: the function driver of mmu_spte_update cannot run" \
        in resolution.reason
    assert "and the operation mix cannot build a VM" in resolution.reason


def test_a_runnable_translated_state_is_both_sides(tmp_path, monkeypatch):
    tree, patch = unmodelled_patch(tmp_path)
    monkeypatch.setattr(tree_source, "driver_runs", lambda state, function: None)
    resolution = resolve(hunks_of(patch), tree=open_tree(str(tree)))
    before, after = resolution.before, resolution.after
    assert isinstance(before, tree_source.TranslatedState) and isinstance(after, ModelState)
    assert before.release == after.release == (6, 12, 0)
    (hunk,) = resolution.hunks
    assert hunk.covered and hunk.model == "translated mmu_spte_update -> translated " \
                                          "mmu_spte_update"
    assert hunk.reason == tree_source.TRANSLATED_HOW
    (pair,) = resolution.pairs
    assert pair.before.function is not pair.after.function
    # a function the patch leaves alone is the same model on both sides
    assert before.rows()["unrelated_helper"].function is after.rows()["unrelated_helper"].function
    assert before.blob(MMU_C) != after.blob(MMU_C)
    assert "the hand-written models were not used" in resolution.reason
    # the stand-in defines no mmu_alloc_direct_roots: no operation level, and it says so
    assert before.operations_reason.startswith("the operation mix cannot build a VM")
    assert "operation level not run" in resolution.reason


def test_the_engine_says_the_operation_level_was_not_run(tmp_path, monkeypatch):
    from harness.check import contracts as C
    from harness.check import engine

    tree, patch = unmodelled_patch(tmp_path)
    monkeypatch.setattr(tree_source, "driver_runs", lambda state, function: None)
    resolution = resolve(hunks_of(patch), tree=open_tree(str(tree)))
    identity = C.Contract("identity", C.WRITTEN, "no change at all")
    findings, (coverage,) = engine.check_operations(resolution.before, resolution.after,
                                                    identity)
    assert findings == []
    assert coverage.cases == 0
    assert coverage.text.startswith("operation level: not run on this state (the operation mix")


def test_a_finding_on_translated_states_replays_from_the_same_inputs(tmp_path, monkeypatch):
    from harness.check import engine
    from harness.errors import KconformError
    from kernel_models import model_source

    tree, patch = unmodelled_patch(tmp_path)
    monkeypatch.setattr(tree_source, "driver_runs", lambda state, function: None)
    resolution = resolve(hunks_of(patch), tree=open_tree(str(tree)))
    assert resolution.after.name.startswith("tree HEAD + mmu.c@")
    token = engine.encode_replay({"kind": "function", "function": "mmu_spte_update",
                                  "case": {}, "contract": "identity",
                                  "before": engine._versions_json(resolution.before),
                                  "after": engine._versions_json(resolution.after)})
    assert engine.replay_needs_inputs(token)
    data = engine.decode_replay(token)
    assert engine._versions_from(data["after"]) is resolution.after
    monkeypatch.setattr(model_source, "_RUNTIME", {})
    with pytest.raises(KconformError, match="which this run has not built"):
        engine._versions_from(data["after"])


def test_a_bug_in_translated_code_ends_the_run_with_its_event(monkeypatch):
    """KernelStop (BUG() in translated C) is an effect compared like any other, not a crash."""
    from harness.check import contracts as C
    from harness.check import drivers
    from harness.check import engine
    from harness.translate.environment import KernelStop, _bug_always
    from kernel_models.registry import VersionSet

    base = VersionSet.series_state("base")
    real = base.functions()["mmu_spte_update"]

    def stopping(kvm, sptep, new_spte):
        _bug_always(kvm, what="stand-in BUG")

    class Stops(VersionSet):
        def functions(self):
            return {**super().functions(), "mmu_spte_update": stopping}

    stops = Stops.of("base with a BUG", dict(base.blobs))
    identity = C.Contract("identity", C.WRITTEN, "no change at all")
    case = drivers.DRIVERS["mmu_spte_update"].cases("ept_ad")[0]
    step, _, after_vm = engine._function_step("mmu_spte_update", base, stops, identity, case)
    assert any(type(e).__name__ == "Bug" for e in step.after.events)
    assert real is not stopping
    monkeypatch.setattr(engine, "_kernel_stops", lambda: ())
    with pytest.raises(Exception):
        engine._function_step("mmu_spte_update", base, stops, identity, case)
    assert issubclass(KernelStop, Exception)


# -- a prototype in a header: covered by its definition's hunks, never alone ----------

class _Rows:
    """A translated state reduced to what ``cover`` asks of it: which file defines what."""

    def __init__(self, defined: dict[str, str]):
        self.defined = defined

    def rows(self):
        from types import SimpleNamespace
        return {name: SimpleNamespace(file=file) for name, file in self.defined.items()}

    def version(self, file, name):
        return self.rows().get(name) if self.defined.get(name) == file else None

    def miss(self, file, name):
        return None if self.defined.get(name) == file else \
            f"{name} is not defined in {file.rsplit('/', 1)[-1]} of this state"


def _hunk(index, file, function):
    from types import SimpleNamespace
    from harness.resolve.strategies import BEHAVIOUR
    return SimpleNamespace(index=index, file=file, function=function, kind=BEHAVIOUR, reason="")


TDP_C, TDP_H = "arch/x86/kvm/mmu/tdp_mmu.c", "arch/x86/kvm/mmu/tdp_mmu.h"


def test_a_declaration_hunk_is_covered_by_the_definition_the_patch_also_changes():
    state = _Rows({"clear_dirty_slot": TDP_C})
    header = _hunk(1, TDP_H, "clear_dirty_slot")
    both = frozenset({(TDP_C, "clear_dirty_slot"), (TDP_H, "clear_dirty_slot")})
    found = tree_source.cover(header, state, state, both)
    assert found.covered and found.model == "declaration of clear_dirty_slot (defined in " \
                                            "tdp_mmu.c)"
    assert "this patch's hunks there carry the change" in found.reason
    # a new function: declared and defined by the patch, so defined after only
    new = tree_source.cover(header, _Rows({}), state, both)
    assert new.covered and new.model.startswith("declaration of clear_dirty_slot")


def test_a_declaration_changed_without_its_definition_is_not_covered():
    state = _Rows({"clear_dirty_slot": TDP_C})
    header = _hunk(1, TDP_H, "clear_dirty_slot")
    alone = frozenset({(TDP_H, "clear_dirty_slot")})
    found = tree_source.cover(header, state, state, alone)
    assert not found.covered and found.reason == "clear_dirty_slot is defined on neither side"
    # nor when the definition is the environment's stand-in, or is in two files
    other = _Rows({"clear_dirty_slot": MMU_C})
    assert not tree_source.cover(header, state, other, alone | {(TDP_C, "clear_dirty_slot"),
                                                                (MMU_C, "clear_dirty_slot")}
                                 ).covered
    host = _Rows({"clear_dirty_slot": tree_source.ENVIRONMENT})
    assert not tree_source.cover(header, host, host, alone | {(tree_source.ENVIRONMENT,
                                                               "clear_dirty_slot")}).covered
