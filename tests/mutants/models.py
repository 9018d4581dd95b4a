"""The mutant suite's expectations, and the few mutated models derive cannot build.

Each mutant patch (``mNN-*.patch``) is an RFC patch with one thing broken;
each equivalent (``eNN-*.patch``) is an RFC patch written differently with
the same behaviour.  A patch's ``index`` line names a made-up post-image
blob (``bad0NNaaaaaa``: hex, as git blob ids are; the scope stage reads only
hex), which no model knows.

Most patches are plain patch files: the resolver derives their after-model
from the hunks (``harness/translate/derive.py``), exactly as for any later revision
nobody modelled.  ``DERIVED`` names them and the functions derive builds.

The rest cannot be derived, and ``REGISTRATIONS`` registers a hand-written
body under their blob with the real RFC post-image as parent; each entry's
docstring quotes the miss the harness prints without it, and ``UNDERIVABLE``
holds the words of that miss the self-check looks for.  Each of them is RFC
2/4 (or, for m04, calls a function no model has): 2/4's mmu.c hunks delete
``spte_wrprot_for_clear_dirty`` and write through ``*sptep`` in the
``for_each_rmap_spte`` loop of ``__rmap_clear_dirty``, both outside what
derive does, and derive builds no after-model when one hunk misses.

``MUTANTS`` is the table the self-check reads: patch file -> the check and
channel that must catch it (None for equivalents, which must pass).
"""

from __future__ import annotations

from kernel_models import mmu, registry, spte
from kernel_models.registry import MMU_C, SPTE_C

AFTER_2 = {MMU_C: "bd2240b94ff6", SPTE_C: "490966bc893c"}


# -- spte.c make_spte --------------------------------------------------------------

def keep_write_takes_reference(kvm, value, pfn):
    """m04: marks the folio dirty and also takes a page reference it never drops.

    Hand-written because derive misses on the hunk's new call: "unsupported
    construct call to unmodelled function 'kvm_get_pfn' at line 241 of spte.c
    (patch line 224)".  No model of kvm_get_pfn exists (its body,
    ``get_page(pfn_to_page(pfn))``, misses on pfn_to_page the same way).
    """
    value = spte.keep_write_dirty_mask_and_folio(kvm, value, pfn)
    kvm.get_page(pfn)
    return value


def make_spte_takes_reference(kvm, vcpu, sp, slot, pte_access, gfn, pfn, old_spte, prefetch,
                              can_unsync, host_writable):
    """m04: RFC 2/4's make_spte with ``keep_write_takes_reference`` (see there)."""
    return spte._make_spte_body(kvm, spte.skip_unsync_if_old_writable_leaf,
                                keep_write_takes_reference, vcpu, sp, slot, pte_access, gfn,
                                pfn, old_spte, prefetch, can_unsync, host_writable)


# -- mmu.c mmu_spte_clear_track_bits -------------------------------------------------

def mmu_spte_clear_track_bits_no_marks(kvm, sptep):
    """m11: 2/4's version that also lost the accessed mark.

    Hand-written because m11 is RFC 2/4 with one more removal, and derive
    misses on two of 2/4's mmu.c hunks (so no mmu.c after-model at all):
    "the hunk deletes spte_wrprot_for_clear_dirty: deriving edits function
    bodies, it does not remove or add functions", and in __rmap_clear_dirty's
    for_each_rmap_spte loop "unsupported construct cast at line 1270 of mmu.c
    (patch line ...): (unsigned long *) sptep".  The deletion alone keeps it
    hand-written even once the loop body derives.
    """
    old_spte = sptep.get()
    level = kvm.sptep_to_sp(sptep).role.level
    if not kvm.is_shadow_present_pte(old_spte) or not kvm.spte_has_volatile_bits(old_spte):
        kvm.__update_clear_spte_fast(sptep, 0)
    else:
        old_spte = kvm.__update_clear_spte_slow(sptep, 0)
    if not kvm.is_shadow_present_pte(old_spte):
        return old_spte
    kvm.kvm_update_page_stats(level, -1)
    pfn = kvm.spte_to_pfn(old_spte)
    page = kvm.kvm_pfn_to_refcounted_page(pfn)
    kvm.WARN_ON_ONCE(page is not None and not mmu.page_count(kvm, page),
                     "mmu_spte_clear_track_bits: page refcount is 0")
    return old_spte


def mmu_spte_clear_track_bits_early_return(kvm, sptep):
    """e04: 2/4's version with the tail written as an early return.

    Hand-written for the same two misses as m11 (e04 is RFC 2/4 too): "the
    hunk deletes spte_wrprot_for_clear_dirty", and in __rmap_clear_dirty's
    for_each_rmap_spte loop "unsupported construct cast at line 1270 of mmu.c
    (patch line ...): (unsigned long *) sptep".
    """
    old_spte = sptep.get()
    level = kvm.sptep_to_sp(sptep).role.level
    if not kvm.is_shadow_present_pte(old_spte) or not kvm.spte_has_volatile_bits(old_spte):
        kvm.__update_clear_spte_fast(sptep, 0)
    else:
        old_spte = kvm.__update_clear_spte_slow(sptep, 0)
    if not kvm.is_shadow_present_pte(old_spte):
        return old_spte
    kvm.kvm_update_page_stats(level, -1)
    pfn = kvm.spte_to_pfn(old_spte)
    page = kvm.kvm_pfn_to_refcounted_page(pfn)
    kvm.WARN_ON_ONCE(page is not None and not mmu.page_count(kvm, page),
                     "mmu_spte_clear_track_bits: page refcount is 0")
    if not kvm.is_accessed_spte(old_spte):
        return old_spte
    kvm.kvm_set_pfn_accessed(pfn)
    return old_spte


# m05 needs no new body: it is RFC 2/4 with the aging hunk and make_spte's dirty mark left
# out, i.e. 1/4's mmu_spte_age and 1/4's make_spte.  Its mmu.c half is registered, not
# derived, for the same two mmu.c misses as m11 ("deletes spte_wrprot_for_clear_dirty";
# "cast at line 1270 of mmu.c (patch line ...): (unsigned long *) sptep"); its spte.c half
# is derived from the hunk (a registered post-image counts as known to derive).

# patch file -> (file, blob, parent, {C name: body}) rows: the patches derive cannot do
REGISTRATIONS = {
    "m04-make-spte-takes-reference.patch": [
        (SPTE_C, "bad004aaaaaa", AFTER_2[SPTE_C], {"make_spte": make_spte_takes_reference})],
    "m05-dirty-mark-moved-to-aging.patch": [
        (MMU_C, "bad005aaaaaa", AFTER_2[MMU_C], {"mmu_spte_age": mmu.mmu_spte_age})],
    "m11-clear-track-bits-drops-accessed.patch": [
        (MMU_C, "bad011aaaaaa", AFTER_2[MMU_C],
         {"mmu_spte_clear_track_bits": mmu_spte_clear_track_bits_no_marks})],
    "e04-clear-track-bits-early-return.patch": [
        (MMU_C, "bad024aaaaaa", AFTER_2[MMU_C],
         {"mmu_spte_clear_track_bits": mmu_spte_clear_track_bits_early_return})],
}

# patch file -> the functions derived beside its registered blobs (as the reason names them)
PARTLY_DERIVED = {"m05-dirty-mark-moved-to-aging.patch": "spte.c::make_spte"}

# patch file -> words of every miss the harness prints for it when its blob is not registered
# (the __rmap_clear_dirty miss by its place, as its wording follows what the subset reads)
UNDERIVABLE = {
    "m04-make-spte-takes-reference.patch": ("call to unmodelled function 'kvm_get_pfn'",),
    "m05-dirty-mark-moved-to-aging.patch": ("hunk 2: the hunk deletes spte_wrprot_for_clear_dirty",
                                            "hunk 3:", "cast at line 1270 of mmu.c"),
    "m11-clear-track-bits-drops-accessed.patch": (
        "hunk 3: the hunk deletes spte_wrprot_for_clear_dirty", "hunk 4:", "cast at line 1270 of mmu.c"),
    "e04-clear-track-bits-early-return.patch": (
        "hunk 3: the hunk deletes spte_wrprot_for_clear_dirty", "hunk 4:", "cast at line 1270 of mmu.c"),
}

# patch file -> the C functions whose after-model the resolver derives from the patch alone
DERIVED = {
    "m01-drop-dirty-mark.patch": ("make_spte",),
    "m02-drop-wrprot-flush.patch": ("mmu_spte_update",),
    "m03-mark-accessed-unconditionally.patch": ("handle_changed_spte", "tdp_mmu_zap_leafs"),
    "m06-swap-dirty-for-accessed.patch": ("make_spte",),
    "m07-drop-dirty-clear-flush.patch": ("mmu_spte_update",),
    "m08-zap-leafs-drops-accessed.patch": ("handle_changed_spte",),
    "m09-warn-on-nonleaf-old.patch": ("make_spte",),
    "m10-inverted-wrprot-test.patch": ("mmu_spte_update",),
    "m12-no-dirty-mark-for-prefetch.patch": ("make_spte",),
    "m13-double-release-in-prefetch.patch": ("FNAME(prefetch_gpte)",),
    "e01-dirty-mark-pfn-from-spte.patch": ("make_spte",),
    "e02-explicit-flush-variable.patch": ("mmu_spte_update",),
    "e03-zap-leafs-mark-with-braces.patch": ("handle_changed_spte", "tdp_mmu_zap_leafs"),
    "e05-skip-test-order-swapped.patch": ("make_spte",),
}

# patch file -> (check, channel) that must catch it; None = equivalent, must pass
MUTANTS = {
    "m01-drop-dirty-mark.patch": ("dirty_preserved", "dirty"),
    "m02-drop-wrprot-flush.patch": ("flush_after_write_protect", "flush"),
    "m03-mark-accessed-unconditionally.patch": ("matches_contract", "accessed"),
    "m04-make-spte-takes-reference.patch": ("refs_balanced", "refs"),
    "m05-dirty-mark-moved-to-aging.patch": ("dirty_preserved", "dirty"),
    "m06-swap-dirty-for-accessed.patch": ("dirty_preserved", "dirty"),
    "m07-drop-dirty-clear-flush.patch": ("matches_contract", "flush"),
    "m08-zap-leafs-drops-accessed.patch": ("matches_contract", "accessed"),
    "m09-warn-on-nonleaf-old.patch": ("matches_contract", "warn"),
    "m10-inverted-wrprot-test.patch": ("matches_contract", "flush"),
    "m11-clear-track-bits-drops-accessed.patch": ("matches_contract", "accessed"),
    "m12-no-dirty-mark-for-prefetch.patch": ("dirty_preserved", "dirty"),
    "m13-double-release-in-prefetch.patch": ("refs_balanced", "refs"),
    "e01-dirty-mark-pfn-from-spte.patch": None,
    "e02-explicit-flush-variable.patch": None,
    "e03-zap-leafs-mark-with-braces.patch": None,
    "e04-clear-track-bits-early-return.patch": None,
    "e05-skip-test-order-swapped.patch": None,
}

_registered = False


def register() -> None:
    """Register the hand-written mutant and equivalent blobs (idempotent)."""
    global _registered
    if _registered:
        return
    for rows in REGISTRATIONS.values():
        for file, blob, parent, bodies in rows:
            registry.register_blob(file, blob, parent, bodies)
    _registered = True


def unregister(name: str) -> None:
    """Forget one patch's hand-written blobs (the self-check's twin: it then must miss)."""
    global _registered
    for file, blob, _, _ in REGISTRATIONS[name]:
        registry.unregister_blob(file, blob)
    _registered = False


register()
