"""The TDP MMU walks: ``struct tdp_iter`` over page tables, and the root list.

Mirrors arch/x86/kvm/mmu/tdp_iter.c (the walk: start, restart, step down /
side / up, ``spte_to_child_pt``), the ``for_each_tdp_pte*`` macros of
tdp_iter.h, the ``tdp_root_for_each_*`` macros of tdp_mmu.c, and tdp_mmu.c's
root walks (``tdp_mmu_next_root`` and the ``for_each_*tdp_mmu_root*``
macros), which every part of the tdp_mmu.c model shares.  The series does
not touch tdp_iter.c; its bodies are the same in every state of the tree.
The SPTE store helpers of tdp_iter.h (``kvm_tdp_mmu_write_spte`` and kin)
live in ``tdp_iter.py``; this module is kept apart only because it is the
TDP MMU model's part (it could join ``tdp_iter.py`` later).

Checked against tdp_iter.c as stored for torvalds/linux 20ba462dfda6 (same
walk as v6.9: pre-order, re-read before stepping down, ``next_last_level_gfn``
drives the descent) and the loop condition ``iter.valid && iter.gfn < end``
of ``for_each_tdp_pte_min_level`` in several tdp_iter.h copies and diffs.

The "Confirmed: [I]" / "[M]" / "[R]" tags are explained in ``tdp_mmu.py``.

Abstractions (stated once, relied on by every loop in tdp_mmu.py):

- The iterator is a Python generator yielding the one ``tdp_iter`` object at
  each step, like the C ``for`` loop re-using one ``struct tdp_iter``.  A loop
  body may change ``iter.old_spte`` and the SPTEs; the walk re-reads memory
  when it steps, as the C does, so a table linked by the body (split, map) is
  entered next.
- ``skip_zero=True`` lets a side step jump over entries whose value is 0
  (the sparse tables store nothing for them).  A loop may ask for it only
  when the first thing its body does with an entry, after a resched check
  that the model never takes, is to skip entries that are not
  shadow-present: 0 is not present, so the loop does the same thing either
  way, and the walk still stops at the first gfn at or past ``end``.
  ``kvm_tdp_mmu_map`` and the lockless walks (``kvm_tdp_mmu_get_walk``,
  ``kvm_tdp_mmu_fast_pf_get_last_sptep``) act on non-present entries and
  never skip.  REMOVED_SPTE and MMIO SPTEs are non-zero and always visited.
- Yielding (``tdp_mmu_iter_cond_resched``) never happens in this model, so
  ``yielded`` stays False and ``tdp_iter_restart`` runs only from
  ``tdp_iter_start``.
- The root page table is a ``kvm_mmu_page``; ``pt_path`` holds the pages
  (not raw table pointers) on the way down; ``sptep`` is a ``SptePointer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kernel_models.kvm_main import KVM_PAGES_PER_HPAGE, PG_LEVEL_4K
from kernel_models.mmu_fault import SPTE_INDEX, gfn_round_for_level
from kernel_models.mmu_internal import SPTE_ENT_PER_PAGE
from kernel_models.registry import TDP_ITER_H, TDP_MMU_C, Version
from kernel_models.spte import PAGE_SHIFT

PT64_ROOT_MAX_LEVEL = 5


@dataclass
class tdp_iter:  # noqa: N801 - struct tdp_iter
    """struct tdp_iter (tdp_iter.h), reduced to the fields the walk and loops read."""

    next_last_level_gfn: int = 0
    yielded_gfn: int = 0
    pt_path: dict = field(default_factory=dict)   # level -> kvm_mmu_page
    sptep: object = None
    gfn: int = 0
    root_level: int = 0
    min_level: int = 0
    level: int = 0
    as_id: int = 0
    old_spte: int = 0
    valid: bool = False
    yielded: bool = False
    skip_zero: bool = False


def kvm_mmu_page_as_id(sp) -> int:
    """mmu_internal.h kvm_mmu_page_as_id: SMM pages are address space 1.

    The modelled role has no ``smm`` bit; every page is in address space 0
    unless a test adds ``role.smm``.  Not read in source.
    """
    return 1 if getattr(sp.role, "smm", False) else 0


def tdp_iter_refresh_sptep(kvm, iter: tdp_iter) -> None:
    """tdp_iter.c tdp_iter_refresh_sptep: point at the entry for gfn/level and read it.

    Confirmed: [I].
    """
    iter.sptep = iter.pt_path[iter.level].sptep(SPTE_INDEX(iter.gfn << PAGE_SHIFT, iter.level))
    iter.old_spte = iter.sptep.get()


def tdp_iter_restart(kvm, iter: tdp_iter) -> None:
    """tdp_iter.c tdp_iter_restart (unchanged by the series): back to the root entry.

    Confirmed: [I].
    """
    iter.yielded = False
    iter.yielded_gfn = iter.next_last_level_gfn
    iter.level = iter.root_level
    iter.gfn = gfn_round_for_level(iter.next_last_level_gfn, iter.level)
    tdp_iter_refresh_sptep(kvm, iter)
    iter.valid = True


def tdp_iter_start(kvm, iter: tdp_iter, root, min_level: int, next_last_level_gfn: int) -> None:
    """tdp_iter.c tdp_iter_start (unchanged by the series): bail out on a bad root, then restart.

    A missing root (None, standing for a NULL ``root_to_sp``) or a root
    level outside 1..PT64_ROOT_MAX_LEVEL WARNs once and leaves the iterator
    invalid, so the walk visits nothing.  That early return came with a July
    2023 hardening patch (v6.6; diff tdp_iter.c d2eb0d4f8710..bd30ebfb2f2c,
    search index id 41154821780) and is in later copies (id 47128336626);
    the older copy [I] (two WARNs, then the walk anyway) predates the base.
    """
    if kvm.WARN_ON_ONCE(root is None or root.role.level < 1
                        or root.role.level > PT64_ROOT_MAX_LEVEL,
                        "tdp_iter_start: no root, or root level out of range"):
        iter.valid = False
        return
    iter.next_last_level_gfn = next_last_level_gfn
    iter.root_level = root.role.level
    iter.min_level = min_level
    iter.pt_path[iter.root_level] = root
    iter.as_id = kvm_mmu_page_as_id(root)
    kvm.tdp_iter_restart(iter)


def spte_to_child_pt(kvm, spte: int, level: int):
    """tdp_iter.c spte_to_child_pt (unchanged by the series): the child table of a non-leaf SPTE.

    Returns a pointer to entry 0 of the child page (``pt + i`` is entry i),
    or None when the SPTE is not present or is a leaf.

    Confirmed: [I].
    """
    if not kvm.is_shadow_present_pte(spte) or kvm.is_last_spte(spte, level):
        return None
    return kvm.spte_to_child_sp(spte).sptep(0)


def try_step_down(kvm, iter: tdp_iter) -> bool:
    """tdp_iter.c try_step_down: re-read the entry, then enter its child table if any.

    Confirmed: [I].
    """
    if iter.level == iter.min_level:
        return False
    iter.old_spte = iter.sptep.get()
    child_pt = kvm.spte_to_child_pt(iter.old_spte, iter.level)
    if child_pt is None:
        return False
    iter.level -= 1
    iter.pt_path[iter.level] = child_pt.sp
    iter.gfn = gfn_round_for_level(iter.next_last_level_gfn, iter.level)
    tdp_iter_refresh_sptep(kvm, iter)
    return True


def next_side_index(iter: tdp_iter) -> int:
    """The index a side step moves to: the next one, or with ``skip_zero`` the
    next one holding a non-zero value (SPTE_ENT_PER_PAGE when there is none)."""
    index = SPTE_INDEX(iter.gfn << PAGE_SHIFT, iter.level)
    if not iter.skip_zero:
        return index + 1
    table = iter.pt_path[iter.level].spt
    if table.get(index + 1, 0) != 0:        # dense tables: the plain next step
        return index + 1
    later = [i for i in table if i > index and table[i] != 0]
    return min(later, default=SPTE_ENT_PER_PAGE)


def try_step_side(kvm, iter: tdp_iter) -> bool:
    """tdp_iter.c try_step_side: the next entry of the same table, if any.

    With ``skip_zero`` the step may cover several entries at once (see the
    module docstring for when that is allowed).

    Confirmed: [I].
    """
    index = next_side_index(iter)
    if index >= SPTE_ENT_PER_PAGE:
        return False
    steps = index - SPTE_INDEX(iter.gfn << PAGE_SHIFT, iter.level)
    iter.gfn += steps * KVM_PAGES_PER_HPAGE(iter.level)
    iter.next_last_level_gfn = iter.gfn
    iter.sptep = iter.pt_path[iter.level].sptep(index)
    iter.old_spte = iter.sptep.get()
    return True


def try_step_up(kvm, iter: tdp_iter) -> bool:
    """tdp_iter.c try_step_up: back to the parent table (its entry was visited already).

    Confirmed: [I].
    """
    if iter.level == iter.root_level:
        return False
    iter.level += 1
    iter.gfn = gfn_round_for_level(iter.gfn, iter.level)
    tdp_iter_refresh_sptep(kvm, iter)
    return True


def tdp_iter_next(kvm, iter: tdp_iter) -> None:
    """tdp_iter.c tdp_iter_next (unchanged by the series): pre-order step; restart after a yield.

    Confirmed: [I].
    """
    if iter.yielded:
        kvm.tdp_iter_restart(iter)
        return
    if try_step_down(kvm, iter):
        return
    while True:
        if try_step_side(kvm, iter):
            return
        if not try_step_up(kvm, iter):
            break
    iter.valid = False


def for_each_tdp_pte_min_level(kvm, root, min_level: int, start: int, end: int, *,
                               skip_zero: bool = False):
    """tdp_iter.h for_each_tdp_pte_min_level: every SPTE mapping [start, end), pre-order.

    Confirmed: [M].
    """
    iter = tdp_iter(skip_zero=skip_zero)
    kvm.tdp_iter_start(iter, root, min_level, start)
    while iter.valid and iter.gfn < end:
        yield iter
        kvm.tdp_iter_next(iter)


def for_each_tdp_pte(kvm, root, start: int, end: int, *, skip_zero: bool = False):
    """tdp_iter.h for_each_tdp_pte: down to 4K.  Also tdp_mmu.c tdp_root_for_each_pte.

    Confirmed: [M].
    """
    return for_each_tdp_pte_min_level(kvm, root, PG_LEVEL_4K, start, end, skip_zero=skip_zero)


def tdp_root_for_each_leaf_pte(kvm, root, start: int, end: int):
    """tdp_mmu.c tdp_root_for_each_leaf_pte: only present leaf SPTEs (so zeros may be skipped).

    Confirmed: [R].
    """
    for iter in for_each_tdp_pte(kvm, root, start, end, skip_zero=True):
        if not kvm.is_shadow_present_pte(iter.old_spte) or not kvm.is_last_spte(iter.old_spte,
                                                                                  iter.level):
            continue
        yield iter


# ---------------------------------------------------------------------------
# walking the roots (tdp_mmu.c macros and tdp_mmu_next_root)
# ---------------------------------------------------------------------------

def kvm_tdp_mmu_get_root(root) -> bool:
    """tdp_mmu.h kvm_tdp_mmu_get_root: refcount_inc_not_zero.

    Not read in source (tdp_mmu.h not looked up); KERNEL-FACTS does not cover it.
    """
    if root.tdp_mmu_root_count == 0:
        return False
    root.tdp_mmu_root_count += 1
    return True


def list_next(roots: list, prev_root):
    """list_next_or_null_rcu / list_first_or_null_rcu over ``kvm.tdp_mmu_roots``."""
    if prev_root is None:
        return roots[0] if roots else None
    index = next(i for i, root in enumerate(roots) if root is prev_root)
    return roots[index + 1] if index + 1 < len(roots) else None


def tdp_mmu_next_root(kvm, prev_root, only_valid: bool):
    """tdp_mmu.c tdp_mmu_next_root (all blobs): next root with a reference taken, prev put.

    Confirmed: [R].
    """
    next_root = list_next(kvm.tdp_mmu_roots, prev_root)
    while next_root is not None:
        if (not only_valid or not next_root.role.invalid) and kvm_tdp_mmu_get_root(next_root):
            break
        next_root = list_next(kvm.tdp_mmu_roots, next_root)
    if prev_root is not None:
        kvm.kvm_tdp_mmu_put_root(prev_root)
    return next_root


def __for_each_tdp_mmu_root_yield_safe(kvm, as_id: int, only_valid: bool):
    """tdp_mmu.c macro: roots of ``as_id`` (all if < 0), each held by a reference.

    Leaving the loop early keeps the reference on the current root, as in C.

    Confirmed: [R].
    """
    root = kvm.tdp_mmu_next_root(None, only_valid)
    while root is not None:
        if not (as_id >= 0 and kvm_mmu_page_as_id(root) != as_id):
            yield root
        root = kvm.tdp_mmu_next_root(root, only_valid)


def for_each_valid_tdp_mmu_root_yield_safe(kvm, as_id: int):
    return __for_each_tdp_mmu_root_yield_safe(kvm, as_id, True)


def for_each_tdp_mmu_root_yield_safe(kvm):
    return __for_each_tdp_mmu_root_yield_safe(kvm, -1, False)


def __for_each_tdp_mmu_root(kvm, as_id: int, only_valid: bool):
    """tdp_mmu.c macro for mmu_lock held for write: a plain list walk, no references.

    Confirmed: [R].
    """
    for root in list(kvm.tdp_mmu_roots):
        if (as_id >= 0 and kvm_mmu_page_as_id(root) != as_id) or (only_valid and root.role.invalid):
            continue
        yield root


def for_each_tdp_mmu_root(kvm, as_id: int):
    return __for_each_tdp_mmu_root(kvm, as_id, False)


def for_each_valid_tdp_mmu_root(kvm, as_id: int):
    return __for_each_tdp_mmu_root(kvm, as_id, True)


# tdp_iter_start/next/restart and spte_to_child_pt are declared in tdp_iter.h
# and defined in tdp_iter.c; the registry knows tdp_iter.h (unchanged by the
# series) but not tdp_iter.c, so they are registered under tdp_iter.h.  The
# file-local steps (try_step_*, refresh) are called directly.
MODEL_TABLE = (
    Version(TDP_ITER_H, "tdp_iter_start", tdp_iter_start),
    Version(TDP_ITER_H, "tdp_iter_restart", tdp_iter_restart),
    Version(TDP_ITER_H, "tdp_iter_next", tdp_iter_next),
    Version(TDP_ITER_H, "spte_to_child_pt", spte_to_child_pt),
    Version(TDP_MMU_C, "tdp_mmu_next_root", tdp_mmu_next_root),
)
