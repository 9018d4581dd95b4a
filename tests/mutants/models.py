"""Mutated models for the mutant patches in this folder, registered under their blobs.

Each mutant patch (``mNN-*.patch``) is an RFC patch with one thing broken;
each equivalent (``eNN-*.patch``) is an RFC patch written differently with
the same behaviour.  A patch's ``index`` line names a made-up post-image
blob (``bad0NNaaaaaa`` (hex, as git blob ids are; the scope stage reads only hex)); ``register()`` registers the mutated body under
that blob with the real RFC post-image as parent, so the resolver finds
before/after models for the patch exactly as it does for a real one.

``MUTANTS`` is the table the self-check reads: patch file -> the check and
channel that must catch it (None for equivalents, which must pass).
"""

from __future__ import annotations

from kernel_models import mmu, paging_tmpl, registry, spte, tdp_mmu
from kernel_models.registry import MMU_C, PAGING_TMPL_H, SPTE_C, TDP_MMU_C

FNAME = paging_tmpl.FNAME
AFTER_1 = {SPTE_C: "b4c1119cc48b"}
AFTER_2 = {MMU_C: "bd2240b94ff6", SPTE_C: "490966bc893c", PAGING_TMPL_H: "ec24a6679153",
           TDP_MMU_C: "5866a664f46e"}
AFTER_3 = {MMU_C: "0a6c6619d213", TDP_MMU_C: "340d5af454c6"}
AFTER_4 = {MMU_C: "77d1072b130d"}


# -- spte.c make_spte variants -------------------------------------------------

def _make_spte_with(keep_write, skip_unsync=spte.skip_unsync_if_old_writable_leaf):
    def make_spte(kvm, vcpu, sp, slot, pte_access, gfn, pfn, old_spte, prefetch, can_unsync,
                  host_writable):
        return spte._make_spte_body(kvm, skip_unsync, keep_write, vcpu, sp, slot, pte_access,
                                    gfn, pfn, old_spte, prefetch, can_unsync, host_writable)
    return make_spte


def keep_write_takes_reference(kvm, value, pfn):
    """m04: marks the folio dirty and also takes a page reference it never drops."""
    value = spte.keep_write_dirty_mask_and_folio(kvm, value, pfn)
    kvm.get_page(pfn)
    return value


def keep_write_marks_accessed(kvm, value, pfn):
    """m06: marks the folio accessed where 2/4 marks it dirty."""
    value |= kvm.spte_shadow_dirty_mask(value)
    kvm.kvm_set_pfn_accessed(pfn)
    return value


def skip_unsync_warns_on_nonleaf(kvm, old_spte, level):
    """m09: 1/4's test plus a WARN when the old SPTE is a present non-leaf."""
    kvm.WARN_ON_ONCE(kvm.is_shadow_present_pte(old_spte) and not kvm.is_last_spte(old_spte, level),
                     "make_spte: overwriting a page table")
    return kvm.is_last_spte(old_spte, level) and kvm.is_writable_pte(old_spte)


def skip_unsync_order_swapped(kvm, old_spte, level):
    """e05: 1/4's test with the two conditions in the other order."""
    return kvm.is_writable_pte(old_spte) and kvm.is_last_spte(old_spte, level)


def keep_write_dirty_pfn_from_spte(kvm, value, pfn):
    """e01: 2/4's mark, taking the pfn back out of the SPTE being built."""
    value |= kvm.spte_shadow_dirty_mask(value)
    kvm.kvm_set_pfn_dirty(kvm.spte_to_pfn(value))
    return value


def _make_spte_mark_unless_prefetch(kvm, vcpu, sp, slot, pte_access, gfn, pfn, old_spte,
                                    prefetch, can_unsync, host_writable):
    """m12: the dirty mark is only made for SPTEs that are not prefetched."""
    def keep_write(kvm, value, pfn):
        value |= kvm.spte_shadow_dirty_mask(value)
        if not prefetch:
            kvm.kvm_set_pfn_dirty(pfn)
        return value
    return spte._make_spte_body(kvm, spte.skip_unsync_if_old_writable_leaf, keep_write, vcpu, sp,
                                slot, pte_access, gfn, pfn, old_spte, prefetch, can_unsync,
                                host_writable)


# -- mmu.c variants ---------------------------------------------------------------

def mmu_spte_update_no_wrprot_flush(kvm, sptep, new_spte):
    """m02: 4/4 without the write-protection flush."""
    old_spte = kvm.mmu_spte_update_no_track(sptep, new_spte)
    if not kvm.is_shadow_present_pte(old_spte):
        return False
    return kvm.is_dirty_spte(old_spte) and not kvm.is_dirty_spte(new_spte)


def mmu_spte_update_no_dirty_flush(kvm, sptep, new_spte):
    """m07: 4/4 without the Dirty-bit flush."""
    old_spte = kvm.mmu_spte_update_no_track(sptep, new_spte)
    if not kvm.is_shadow_present_pte(old_spte):
        return False
    return kvm.is_mmu_writable_spte(old_spte) and not kvm.is_writable_pte(new_spte)


def mmu_spte_update_inverted_wrprot(kvm, sptep, new_spte):
    """m10: 4/4 with the W test of the new SPTE inverted."""
    old_spte = kvm.mmu_spte_update_no_track(sptep, new_spte)
    if not kvm.is_shadow_present_pte(old_spte):
        return False
    return ((kvm.is_mmu_writable_spte(old_spte) and kvm.is_writable_pte(new_spte))
            or (kvm.is_dirty_spte(old_spte) and not kvm.is_dirty_spte(new_spte)))


def mmu_spte_update_explicit_flush(kvm, sptep, new_spte):
    """e02: 4/4 written with a flush variable and two ifs."""
    flush = False
    old_spte = kvm.mmu_spte_update_no_track(sptep, new_spte)
    if not kvm.is_shadow_present_pte(old_spte):
        return False
    if kvm.is_mmu_writable_spte(old_spte) and not kvm.is_writable_pte(new_spte):
        flush = True
    if kvm.is_dirty_spte(old_spte) and not kvm.is_dirty_spte(new_spte):
        flush = True
    return flush


def mmu_spte_clear_track_bits_no_marks(kvm, sptep):
    """m11: 2/4's version that also lost the accessed mark."""
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
    """e04: 2/4's version with the tail written as an early return."""
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


# -- tdp_mmu.c variants -------------------------------------------------------------

def _zap_leafs(mark):
    def tdp_mmu_zap_leafs(kvm, root, start, end, can_yield, flush):
        end = min(end, tdp_mmu.tdp_mmu_max_gfn_exclusive(kvm))
        for iter in tdp_mmu.for_each_tdp_pte_min_level(kvm, root, 1, start, end, skip_zero=True):
            if can_yield and kvm.tdp_mmu_iter_cond_resched(iter, flush, False):
                flush = False
                continue
            if (not kvm.is_shadow_present_pte(iter.old_spte)
                    or not kvm.is_last_spte(iter.old_spte, iter.level)):
                continue
            saved = iter.old_spte
            kvm.tdp_mmu_iter_set_spte(iter, 0)
            mark(kvm, saved)
            if not root.role.invalid:
                flush = True
        return flush
    return tdp_mmu_zap_leafs


def _mark_always(kvm, old_spte):
    """m03: marks accessed whether or not the zapped SPTE was accessed."""
    kvm.kvm_set_pfn_accessed(kvm.spte_to_pfn(old_spte))


def _mark_never(kvm, old_spte):
    """m08: 3/4's handle_changed_spte removal without the new mark in the leaf zap."""


def _mark_if_accessed(kvm, old_spte):
    """e03: 3/4's mark written as a braced block (same test, same call)."""
    if kvm.is_accessed_spte(old_spte):
        kvm.kvm_set_pfn_accessed(kvm.spte_to_pfn(old_spte))


# -- paging_tmpl.h variants ------------------------------------------------------------

def prefetch_gpte_releases_twice(kvm, vcpu, sp, sptep, gpte):
    """m13: prefetch_gpte releases the page reference twice instead of dropping the call."""
    if not paging_tmpl.FNAME_prefetch_gpte(kvm, vcpu, sp, sptep, gpte):
        return False
    gfn = kvm.gpte_to_gfn(gpte)
    slot = kvm.gfn_to_memslot(gfn)
    if slot is not None and gfn in kvm.host:
        kvm.kvm_release_pfn_clean(kvm.host[gfn][0])
    return True


# patch file -> (file, blob, parent, {C name: body}) rows, and what must catch it
REGISTRATIONS = {
    "m01-drop-dirty-mark.patch": [
        (SPTE_C, "bad001aaaaaa", AFTER_2[SPTE_C],
         {"make_spte": spte.make_spte_skip_unsync_iff_leaf})],
    "m02-drop-wrprot-flush.patch": [
        (MMU_C, "bad002aaaaaa", AFTER_3[MMU_C], {"mmu_spte_update": mmu_spte_update_no_wrprot_flush})],
    "m03-mark-accessed-unconditionally.patch": [
        (TDP_MMU_C, "bad003aaaaaa", AFTER_2[TDP_MMU_C],
         {"handle_changed_spte": tdp_mmu.handle_changed_spte_no_folio_marks,
          "tdp_mmu_zap_leafs": _zap_leafs(_mark_always)})],
    "m04-make-spte-takes-reference.patch": [
        (SPTE_C, "bad004aaaaaa", AFTER_2[SPTE_C], {"make_spte": _make_spte_with(keep_write_takes_reference)})],
    "m05-dirty-mark-moved-to-aging.patch": [
        (SPTE_C, "bad005aaaaaa", AFTER_2[SPTE_C], {"make_spte": spte.make_spte_skip_unsync_iff_leaf}),
        (MMU_C, "bad005aaaaaa", AFTER_2[MMU_C], {"mmu_spte_age": mmu.mmu_spte_age})],
    "m06-swap-dirty-for-accessed.patch": [
        (SPTE_C, "bad006aaaaaa", AFTER_2[SPTE_C], {"make_spte": _make_spte_with(keep_write_marks_accessed)})],
    "m07-drop-dirty-clear-flush.patch": [
        (MMU_C, "bad007aaaaaa", AFTER_3[MMU_C], {"mmu_spte_update": mmu_spte_update_no_dirty_flush})],
    "m08-zap-leafs-drops-accessed.patch": [
        (TDP_MMU_C, "bad008aaaaaa", AFTER_2[TDP_MMU_C],
         {"handle_changed_spte": tdp_mmu.handle_changed_spte_no_folio_marks,
          "tdp_mmu_zap_leafs": _zap_leafs(_mark_never)})],
    "m09-warn-on-nonleaf-old.patch": [
        (SPTE_C, "bad009aaaaaa", "4a599130e9c9",
         {"make_spte": _make_spte_with(spte.keep_write_dirty_mask_only, skip_unsync_warns_on_nonleaf)})],
    "m10-inverted-wrprot-test.patch": [
        (MMU_C, "bad010aaaaaa", AFTER_3[MMU_C], {"mmu_spte_update": mmu_spte_update_inverted_wrprot})],
    "m11-clear-track-bits-drops-accessed.patch": [
        (MMU_C, "bad011aaaaaa", AFTER_2[MMU_C],
         {"mmu_spte_clear_track_bits": mmu_spte_clear_track_bits_no_marks})],
    "m12-no-dirty-mark-for-prefetch.patch": [
        (SPTE_C, "bad012aaaaaa", AFTER_2[SPTE_C], {"make_spte": _make_spte_mark_unless_prefetch})],
    "m13-double-release-in-prefetch.patch": [
        (PAGING_TMPL_H, "bad013aaaaaa", AFTER_2[PAGING_TMPL_H],
         {"FNAME(prefetch_gpte)": prefetch_gpte_releases_twice})],
    "e01-dirty-mark-pfn-from-spte.patch": [
        (SPTE_C, "bad021aaaaaa", AFTER_2[SPTE_C], {"make_spte": _make_spte_with(keep_write_dirty_pfn_from_spte)})],
    "e02-explicit-flush-variable.patch": [
        (MMU_C, "bad022aaaaaa", AFTER_3[MMU_C], {"mmu_spte_update": mmu_spte_update_explicit_flush})],
    "e03-zap-leafs-mark-with-braces.patch": [
        (TDP_MMU_C, "bad023aaaaaa", AFTER_2[TDP_MMU_C],
         {"handle_changed_spte": tdp_mmu.handle_changed_spte_no_folio_marks,
          "tdp_mmu_zap_leafs": _zap_leafs(_mark_if_accessed)})],
    "e04-clear-track-bits-early-return.patch": [
        (MMU_C, "bad024aaaaaa", AFTER_2[MMU_C],
         {"mmu_spte_clear_track_bits": mmu_spte_clear_track_bits_early_return})],
    "e05-skip-test-order-swapped.patch": [
        (SPTE_C, "bad025aaaaaa", "4a599130e9c9",
         {"make_spte": _make_spte_with(spte.keep_write_dirty_mask_only, skip_unsync_order_swapped)})],
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
    """Register every mutant and equivalent blob (idempotent)."""
    global _registered
    if _registered:
        return
    for rows in REGISTRATIONS.values():
        for file, blob, parent, bodies in rows:
            registry.register_blob(file, blob, parent, bodies)
    _registered = True


register()
