"""Resolve: the diff's index blob ids pick the before and after models, or MISS."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.ingest import patches as ingest
from harness.ingest import scope
from harness.resolve.strategies import find_before_state, resolve

ROOT = Path(__file__).resolve().parent.parent
PATCHES = ROOT / "patches"
BAD = ROOT / "tests" / "data" / "bad"


def scoped(name: str, directory: Path = PATCHES):
    patch = [p for p in ingest.read_file(str(directory / name)) if not p.is_cover][0]
    return scope.scope_patch(patch)


@pytest.mark.parametrize("name, before, after", [
    ("rfc-1-of-4.patch", "base", "after 1/4"),
    ("rfc-2-of-4.patch", "after 1/4", "after 2/4"),
    ("000_e8ee204d4a7b7ba7.txt", "after 2/4", "after 3/4"),
    ("rfc-4-of-4.patch", "after 3/4", "after 4/4"),
])
def test_bundled_patches_resolve_to_their_series_states(name, before, after):
    resolution = resolve(scoped(name))
    assert resolution.before.name == before
    assert resolution.after.name == after
    assert resolution.complete, [h for h in resolution.hunks if not h.covered]


def test_every_changed_function_gets_a_pair():
    resolution = resolve(scoped("rfc-2-of-4.patch"))
    pairs = {p.function: p for p in resolution.pairs}
    assert {"mmu_spte_update", "mmu_spte_clear_track_bits", "mmu_spte_age", "make_spte",
            "handle_changed_spte", "age_gfn_range", "clear_dirty_pt_masked",
            "FNAME(prefetch_gpte)"} <= set(pairs)
    deleted = pairs["spte_wrprot_for_clear_dirty"]
    assert deleted.before is not None and deleted.after is None
    assert pairs["mmu_spte_update"].before is not pairs["mmu_spte_update"].after


def test_series_position_breaks_ties_between_equal_states():
    hunks = scoped("rfc-4-of-4.patch")
    # mmu.c 0a6c6619d213 holds only in 'after 3/4'; a spte.c-only pre-image of 1/4's
    # post-image holds in 'after 1/4' alone; base's mmu.c holds in base and after 1/4.
    state, reason = find_before_state({"arch/x86/kvm/mmu/mmu.c": "e4cc7f764980"})
    assert state == "base" and "earliest" in reason
    state, reason = find_before_state({"arch/x86/kvm/mmu/mmu.c": "e4cc7f764980"},
                                      previous="after 1/4")
    assert state == "after 1/4" and "previous patch" in reason
    assert resolve(hunks, previous="after 3/4").before.name == "after 3/4"


@pytest.mark.parametrize("name, reason", [
    ("mmu-no-index.patch", "no index line"),
    ("mmu-unknown-blob.patch", "match no modelled state"),
    ("unmodelled-file.patch", "not a modelled file"),
])
def test_what_cannot_be_resolved_is_a_miss_with_its_reason(name, reason):
    resolution = resolve(scoped(name, BAD))
    assert not resolution.complete
    text = resolution.reason + " ".join(h.reason for h in resolution.hunks)
    assert reason in text


def test_an_unmodelled_function_is_a_miss_even_with_known_blobs():
    hunks = scoped("mmu-unmodelled-function.patch", BAD)
    resolution = resolve(hunks)
    assert not resolution.complete
    assert any("not modelled" in h.reason for h in resolution.hunks if not h.covered)


def test_documentation_and_comment_hunks_are_covered_without_a_model():
    resolution = resolve(scoped("000_e8ee204d4a7b7ba7.txt"))
    kinds = {h.kind: h for h in resolution.hunks}
    assert kinds["documentation"].covered and kinds["documentation"].model is None


def test_a_lying_post_image_blob_is_not_taken_on_trust():
    """Twin: the same hunks with another post-image blob are derived, not looked up."""
    hunks = scoped("rfc-4-of-4.patch")
    renamed = tuple(dataclasses.replace(h, target_blob="abcdef012345") for h in hunks)
    resolution = resolve(renamed)
    assert resolution.after is not None and resolution.after.name != "after 4/4"
    assert "derived from the hunks" in resolution.reason


def _rebased(name: str, tmp_path, old: str, new: str) -> Path:
    """The bundled patch with its index line naming blobs of another base."""
    text = (PATCHES / name).read_text()
    assert old in text
    path = tmp_path / f"rebased-{name}"
    path.write_text(text.replace(old, new))
    return path


def test_a_patch_on_another_base_is_resolved_by_content(tmp_path):
    path = _rebased("rfc-4-of-4.patch", tmp_path, "index 0a6c6619d213..77d1072b130d",
                    "index 5d3a2b1c0e9f..8e7f6a5b4c3d")
    hunks = scoped(path.name, tmp_path)
    resolution = resolve(hunks)
    assert resolution.before.name == "after 3/4"
    assert "resolved by content" in resolution.reason
    assert resolution.complete and "derived" in resolution.after.name


def test_content_resolution_refuses_hunks_no_model_holds(tmp_path):
    """Twin: a removed line no version of the model holds fits no state; MISS, not a guess."""
    path = _rebased("rfc-4-of-4.patch", tmp_path, "index 0a6c6619d213..77d1072b130d",
                    "index 5d3a2b1c0e9f..8e7f6a5b4c3d")
    path.write_text(path.read_text().replace("-\tbool flush = false;", "-\tbool flush = true;"))
    resolution = resolve(scoped(path.name, tmp_path))
    assert resolution.before is None and not resolution.complete
    assert "fit no modelled version" in resolution.reason


def test_content_resolution_tells_states_apart(tmp_path):
    """The 2/4 hunk in mmu_spte_update fits only the body before 2/4 (base or 1/4)."""
    path = _rebased("rfc-2-of-4.patch", tmp_path, "index e4cc7f764980..bd2240b94ff6",
                    "index 1111111aaaaa..2222222bbbbb")
    hunks = [h for h in scoped(path.name, tmp_path) if h.function == "mmu_spte_update"]
    from harness.resolve.strategies import find_state_by_content

    state, reason = find_state_by_content(hunks)
    assert state in ("base", "after 1/4") and "resolved by content" in reason


# -- trust the content, not the label (tests/data/labels/) ----------------------------

LABELS = ROOT / "tests" / "data" / "labels"
WRONG_INDEX = "the index line is wrong (the patch was edited after format-patch)"


def _forget(resolution):
    from kernel_models import registry
    for file, blob in resolution.after.blobs:
        if blob.startswith("derived-"):
            registry.unregister_blob(file, blob)


def test_a_post_image_label_that_the_hunks_contradict_is_said_and_the_content_checked():
    """RFC 4/4's index line (post-image 77d1072b130d, the registered 4/4 model) over hunks
    that drop the write-protect flush: the after-model is derived from the hunks, and the
    check sees the dropped flush the label would have hidden."""
    from harness.check import engine

    patch = ingest.read_file(str(LABELS / "edited-after-format-patch-4-of-4.patch"))[0]
    hunks = scope.scope_patch(patch)
    resolution = resolve(hunks)
    try:
        assert resolution.complete, resolution.reason
        assert WRONG_INDEX in resolution.reason and resolution.notes
        assert "post-image mmu.c@77d1072b130d, a registered model" in resolution.notes[0]
        assert dict(resolution.after.blobs)["arch/x86/kvm/mmu/mmu.c"].startswith(
            "derived-77d1072b130d-")
        outcome = engine.check_patch(patch, hunks, resolution,
                                     checks=["flush_after_write_protect"])
        assert any(f.channel == "flush" and f.counterexample["steps"]
                   for f in outcome.findings), outcome.findings
    finally:
        _forget(resolution)


def test_a_post_image_label_the_hunks_agree_with_is_taken_without_a_note():
    resolution = resolve(scoped("rfc-4-of-4.patch"))
    assert resolution.after.name == "after 4/4" and not resolution.notes
    assert "index line is wrong" not in resolution.reason


def test_hunks_that_do_not_fit_the_pre_image_label_resolve_by_content_and_say_so():
    """RFC 1/4 with its pre-image id changed to 2/4's spte.c: the hunks' removed lines are
    not in that state's make_spte, so the before-state is the one they fit (base)."""
    resolution = resolve(scoped("wrong-pre-image-1-of-4.patch", LABELS))
    assert resolution.complete, resolution.reason
    assert resolution.before.name == "base" and resolution.after.name == "after 1/4"
    assert WRONG_INDEX in resolution.notes[0]
    assert "do not fit the state 'after 2/4'" in resolution.notes[0]
    real = resolve(scoped("rfc-1-of-4.patch"))
    assert real.before.name == "base" and not real.notes
