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
    assert "the tree's translated state was not used: the operation mix cannot build a VM" \
        in resolution.reason


def test_a_runnable_translated_state_is_both_sides(tmp_path, monkeypatch):
    tree, patch = unmodelled_patch(tmp_path)
    monkeypatch.setattr(tree_source, "runs", lambda before, after, functions: None)
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
