"""The TDP MMU (arch/x86/kvm/mmu/tdp_mmu.c), part 1: roots, SPTE changes, zaps, faults.

tdp_mmu.c blobs in the series: ``d078157e62aa`` (base, unchanged by 1/4),
``5866a664f46e`` (after 2/4), ``340d5af454c6`` (after 3/4; 4/4 does not touch
the file).  Four functions differ between them:

- ``handle_changed_spte``: base marks the old pfn dirty (step 9) and accessed
  (step 11) when a leaf goes away or loses D/A; 2/4 drops the dirty mark;
  3/4 drops the accessed mark too;
- ``tdp_mmu_zap_leafs``: 3/4 marks the zapped pfn accessed itself, from
  ``iter.old_spte`` (the value the zap replaced);
- ``age_gfn_range`` (``tdp_mmu_notifier.py``): 2/4 drops the dirty mark of a
  writable SPTE aged without A/D bits;
- ``clear_dirty_pt_masked`` (``tdp_mmu_slot.py``): 2/4 drops its
  unconditional dirty mark.

Each of the four is written once as a ``*_body`` holding the shared
statements in C order, with the statements that differ passed in as small
named functions (``mark_dirty_if_leaf_lost_dirty`` / ``no_folio_mark``...);
each registered version is a two-line function naming its pair.

The file is split in three modules only to keep each readable:
``tdp_mmu.py`` (this one), ``tdp_mmu_notifier.py`` (the mmu_notifier
handlers: unmap, age, test-age, change_pte) and ``tdp_mmu_slot.py`` (memslot
work: write-protect, dirty clearing, eager split, collapsible zap, the
lockless walks).  The walk itself is in ``tdp_mmu_iter.py``.  This module's
``MODEL_TABLE`` includes theirs (the registry lists ``kernel_models.tdp_mmu``).

Facts: every body was read in torvalds/linux b1a8d2b02b69 (index id
24362102), which is the base blob plus three v6.9-rc4 commits that only
change the dirty-bit choice of ``clear_dirty_gfn_range`` and
``clear_dirty_pt_masked`` (modelled in the base form, confirmed in the diff
that made the change, index id 39552294025).  The 2/4 and 3/4 differences
are the hunks of rfc-2-of-4.patch and 000_e8ee204d4a7b7ba7.txt (RFC 3/4).

Source tags in the models' docstrings ("Confirmed: [R]"):

- [R] torvalds/linux b1a8d2b02b69 arch/x86/kvm/mmu/tdp_mmu.c (index id
  24362102), read in full; "all blobs" means the body is the same in
  d078157e62aa, 5866a664f46e and 340d5af454c6 (no RFC hunk touches it);
- [D] the v6.9-rc4 diff that replaced the base dirty-bit rule (id 39552294025);
- [I] torvalds/linux 20ba462dfda6 arch/x86/kvm/mmu/tdp_iter.c (id 912571695);
- [M] the ``for_each_tdp_pte_min_level`` loop condition in tdp_iter.h copies;
- [P2] / [P3] the tdp_mmu.c hunks of rfc-2-of-4.patch / RFC 3/4
  (000_e8ee204d4a7b7ba7.txt).

Abstractions (one thread; no RCU; no yielding):

- No concurrency.  ``tdp_mmu_set_spte_atomic``'s cmpxchg succeeds unless the
  test hook ``kvm.tdp_race`` is set: a callable ``race(kvm, iter)`` run
  between the caller's read (``iter.old_spte``) and the cmpxchg, which may
  change the SPTE in memory to model another CPU winning.  The hook is read
  with ``getattr(kvm, "tdp_race", None)``; loops that retry on failure call
  it again, so a hook that always changes the SPTE makes them spin forever
  (as the C would): make it fire a bounded number of times.
- Yielding never happens: ``tdp_mmu_iter_cond_resched`` sees no contention,
  so ``can_yield``/``shared`` only choose the code path, as in C.
- RCU: freeing is immediate (``call_rcu`` of the page = dropping it from
  ``kvm.mmu_pages``); nothing can still be walking a removed table.
- Locks and lockdep assertions are omitted; "shared" means the code path
  written for mmu_lock held for read.
- ``KVM_BUG_ON`` is modelled as ``WARN_ON_ONCE`` with a "KVM_BUG_ON" message
  (kvm_main.py has no KVM_BUG_ON yet); ``BUG()``/``BUG_ON`` use
  ``kvm.BUG``, and the model returns right after ``BUG()``, which never
  returns in C.
- Roots: ``kvm.tdp_mmu_roots`` is the kernel's list (new roots at the head),
  with the reference counting of ``tdp_mmu_next_root`` /
  ``kvm_tdp_mmu_put_root``.  A root is created by ``kvm_tdp_mmu_alloc_root``
  (level ``vcpu.arch.mmu.root_level``, role as mmu.c builds for direct
  roots); ``vcpu.arch.mmu.root`` holds the root page (``root.hpa``).
- Address spaces: a page's address space is 1 only if its role has
  ``smm`` set (the modelled role does not, so every page is in 0); a
  memslot's is ``getattr(slot, "as_id", 0)``.
- Tracepoints, page-table memory accounting and the NX-hugepage lists are
  not effects; ``tdp_account_mmu_page``/``tdp_unaccount_mmu_page`` log a
  ``StatChange("tdp_mmu_pages")`` so table allocation can be balanced.
"""

from __future__ import annotations

import dataclasses

from kernel_models.effects import StatChange
from kernel_models.kvm_main import KVM_PAGES_PER_HPAGE, PG_LEVEL_1G, PG_LEVEL_2M, PG_LEVEL_4K
from kernel_models.mmu_fault import (RET_PF_EMULATE, RET_PF_FIXED, RET_PF_RETRY,
                                     RET_PF_SPURIOUS)
from kernel_models.mmu_internal import SPTE_ENT_PER_PAGE, kvm_mmu_page, kvm_mmu_page_role
from kernel_models import tdp_mmu_iter, tdp_mmu_notifier, tdp_mmu_slot
from kernel_models.registry import TDP_MMU_C, Version
from kernel_models.spte import ACC_ALL, REMOVED_SPTE
from kernel_models.tdp_mmu_iter import (PT64_ROOT_MAX_LEVEL, for_each_tdp_mmu_root_yield_safe,
                                        for_each_tdp_pte, for_each_tdp_pte_min_level,
                                        for_each_valid_tdp_mmu_root_yield_safe,
                                        kvm_mmu_page_as_id, kvm_tdp_mmu_get_root)

EBUSY = 16

BASE = "d078157e62aa"          # base and after 1/4
AFTER_2 = "5866a664f46e"       # after 2/4
AFTER_3 = "340d5af454c6"       # after 3/4 and 4/4


# ---------------------------------------------------------------------------
# roots and page-table pages
# ---------------------------------------------------------------------------

def tdp_mmu_free_sp(kvm, sp) -> None:
    """tdp_mmu.c tdp_mmu_free_sp (and the RCU callback): the page is gone.

    Confirmed: [R].
    """
    kvm.mmu_pages.pop(sp.pfn, None)


def kvm_tdp_mmu_put_root(kvm, root) -> None:
    """tdp_mmu.c kvm_tdp_mmu_put_root (all blobs): the last put unlists and frees the root.

    Confirmed: [R].
    """
    root.tdp_mmu_root_count -= 1
    if root.tdp_mmu_root_count:
        return
    kvm.WARN_ON_ONCE(not root.tdp_mmu_page or not root.role.invalid,
                     "KVM_BUG_ON: last reference to a valid TDP MMU root put")
    kvm.tdp_mmu_roots.remove(root)
    kvm.tdp_mmu_free_sp(root)


def tdp_mmu_alloc_sp(kvm, vcpu):
    """tdp_mmu.c tdp_mmu_alloc_sp (all blobs): a blank page from the vCPU caches.

    The caches never run dry in the model.  Role and gfn are set by
    ``tdp_mmu_init_sp``; until then the page has a placeholder level-0 role.

    Confirmed: [R].
    """
    return kvm_mmu_page(kvm, kvm_mmu_page_role(level=0), 0, tdp_mmu_page=True)


def tdp_mmu_init_sp(kvm, sp, sptep, gfn: int, role) -> None:
    """tdp_mmu.c tdp_mmu_init_sp (all blobs).  ``role`` is copied (a C union by value).

    Confirmed: [R].
    """
    sp.role = dataclasses.replace(role)
    sp.gfn = gfn
    sp.ptep = sptep
    sp.tdp_mmu_page = True


def tdp_mmu_init_child_sp(kvm, child_sp, iter) -> None:
    """tdp_mmu.c tdp_mmu_init_child_sp (all blobs): the parent's role one level down.

    Confirmed: [R].
    """
    parent_sp = kvm.sptep_to_sp(iter.sptep)
    role = dataclasses.replace(parent_sp.role)
    role.level -= 1
    kvm.tdp_mmu_init_sp(child_sp, iter.sptep, iter.gfn, role)


def tdp_mmu_root_role(kvm, vcpu):
    """``mmu->root_role`` for a TDP root, as mmu.c builds direct roots (reduced)."""
    return kvm_mmu_page_role(level=vcpu.arch.mmu.root_level, direct=True,
                             ad_disabled=not kvm.kvm_ad_enabled())


def kvm_tdp_mmu_alloc_root(kvm, vcpu) -> int:
    """tdp_mmu.c kvm_tdp_mmu_alloc_root (all blobs; v6.9 replaced get_vcpu_root_hpa by it).

    Reuses a valid root with the same role (keeping the reference the walk
    took, for the vCPU), else makes one with two references (vCPU and TDP
    MMU) at the head of the list.  The second search, under the pages
    lock in C, finds nothing new with one thread but is kept for shape.

    Confirmed: [R].
    """
    mmu = vcpu.arch.mmu
    role = tdp_mmu_root_role(kvm, vcpu)
    as_id = 1 if getattr(role, "smm", False) else 0
    for root in for_each_valid_tdp_mmu_root_yield_safe(kvm, as_id):
        if root.role == role:
            break       # goto out_read_unlock: the walk's reference becomes the vCPU's
    else:
        for root in kvm.tdp_mmu_roots:
            if root.role == role and not kvm.WARN_ON_ONCE(not kvm_tdp_mmu_get_root(root),
                                                          "kvm_tdp_mmu_alloc_root: dead root"):
                break   # goto out_spin_unlock
        else:
            root = kvm.tdp_mmu_alloc_sp(vcpu)
            kvm.tdp_mmu_init_sp(root, None, 0, role)
            root.tdp_mmu_root_count = 2
            kvm.tdp_mmu_roots.insert(0, root)
    mmu.root = root
    return 0


def tdp_account_mmu_page(kvm, sp) -> None:
    """tdp_mmu.c tdp_account_mmu_page: page-table memory statistics (a StatChange here).

    The C increments the VM-wide counter ``kvm->arch.tdp_mmu_pages``, which has
    no level: the event carries level 0 (it said ``sp.role.level`` until the
    translated tree at v6.9 showed the C records none).

    Confirmed: [R].
    """
    kvm.emit(StatChange(stat="tdp_mmu_pages", level=0, delta=1))


def tdp_unaccount_mmu_page(kvm, sp) -> None:
    """tdp_mmu.c tdp_unaccount_mmu_page: decrements ``kvm->arch.tdp_mmu_pages``
    (no level, as in tdp_account_mmu_page).

    Confirmed: [R].
    """
    kvm.emit(StatChange(stat="tdp_mmu_pages", level=0, delta=-1))


def tdp_mmu_unlink_sp(kvm, sp) -> None:
    """tdp_mmu.c tdp_mmu_unlink_sp (all blobs).

    Confirmed: [R].
    """
    kvm.tdp_unaccount_mmu_page(sp)
    if not sp.nx_huge_page_disallowed:
        return
    sp.nx_huge_page_disallowed = False
    kvm.untrack_possible_nx_huge_page(sp)


# ---------------------------------------------------------------------------
# SPTE changes and their bookkeeping
# ---------------------------------------------------------------------------

def handle_removed_pt(kvm, pt, shared: bool) -> None:
    """tdp_mmu.c handle_removed_pt (all blobs): freeze every child, then handle it.

    ``pt`` points at entry 0 of the removed table.  Shared: exchange in
    REMOVED_SPTE until the displaced value is not REMOVED_SPTE (another CPU
    finishing its own zap; with one thread that CPU cannot exist, so a
    frozen child is reported with BUG instead of spinning forever).
    Exclusive: skip non-present children, freeze the others with
    ``kvm_tdp_mmu_write_spte`` (atomic when the child has volatile bits).

    Confirmed: [R].
    """
    sp = kvm.sptep_to_sp(pt)
    level = sp.role.level
    base_gfn = sp.gfn
    kvm.tdp_mmu_unlink_sp(sp)
    for i in range(SPTE_ENT_PER_PAGE):
        sptep = sp.sptep(pt.index + i)
        gfn = base_gfn + i * KVM_PAGES_PER_HPAGE(level)
        if shared:
            old_spte = kvm.kvm_tdp_mmu_write_spte_atomic(sptep, REMOVED_SPTE)
            if kvm.is_removed_spte(old_spte):
                kvm.BUG("handle_removed_pt: child already frozen; no other CPU can unfreeze it")
                return
        else:
            old_spte = kvm.kvm_tdp_mmu_read_spte(sptep)
            if not kvm.is_shadow_present_pte(old_spte):
                continue
            old_spte = kvm.kvm_tdp_mmu_write_spte(sptep, old_spte, REMOVED_SPTE, level)
        kvm.handle_changed_spte(kvm_mmu_page_as_id(sp), gfn, old_spte, REMOVED_SPTE, level,
                                shared)
    kvm.tdp_mmu_free_sp(sp)


# handle_changed_spte: the three blobs differ only in the two folio marks
# (steps 9 and 11 of KERNEL-FACTS 2.2).  The shared body keeps both at their
# C positions and takes them as small functions; each registered version
# names its own pair.

def mark_dirty_if_leaf_lost_dirty(kvm, was_leaf: bool, is_present: bool, old_spte: int,
                                  new_spte: int, pfn_changed: bool) -> None:
    """handle_changed_spte step 9 at base d078157e62aa: a dirty leaf that goes away,
    loses D or changes pfn marks its old pfn dirty.  Confirmed: [R]."""
    if was_leaf and kvm.is_dirty_spte(old_spte) and (
            not is_present or not kvm.is_dirty_spte(new_spte) or pfn_changed):
        kvm.kvm_set_pfn_dirty(kvm.spte_to_pfn(old_spte))


def mark_accessed_if_leaf_lost_accessed(kvm, was_leaf: bool, is_present: bool, old_spte: int,
                                        new_spte: int, pfn_changed: bool) -> None:
    """handle_changed_spte step 11 at base and after 2/4: the same for A.  Confirmed: [R]."""
    if was_leaf and kvm.is_accessed_spte(old_spte) and (
            not is_present or not kvm.is_accessed_spte(new_spte) or pfn_changed):
        kvm.kvm_set_pfn_accessed(kvm.spte_to_pfn(old_spte))


def no_folio_mark(kvm, was_leaf: bool, is_present: bool, old_spte: int, new_spte: int,
                  pfn_changed: bool) -> None:
    """A folio-mark step the RFC deleted (step 9 from 2/4 on, step 11 from 3/4 on)."""


def handle_changed_spte_body(kvm, mark_dirty, mark_accessed, as_id: int, gfn: int,
                             old_spte: int, new_spte: int, level: int, shared: bool) -> None:
    """The statements of tdp_mmu.c handle_changed_spte shared by all three blobs, in C order.

    Confirmed: [R].
    """
    was_present = kvm.is_shadow_present_pte(old_spte)
    is_present = kvm.is_shadow_present_pte(new_spte)
    was_leaf = was_present and kvm.is_last_spte(old_spte, level)
    is_leaf = is_present and kvm.is_last_spte(new_spte, level)
    pfn_changed = kvm.spte_to_pfn(old_spte) != kvm.spte_to_pfn(new_spte)
    kvm.WARN_ON_ONCE(level > PT64_ROOT_MAX_LEVEL, "handle_changed_spte: level too high")
    kvm.WARN_ON_ONCE(level < PG_LEVEL_4K, "handle_changed_spte: level too low")
    kvm.WARN_ON_ONCE(gfn & (KVM_PAGES_PER_HPAGE(level) - 1), "handle_changed_spte: unaligned gfn")
    if was_leaf and is_leaf and pfn_changed:
        kvm.BUG(f"handle_changed_spte: present leaf {old_spte:#x} replaced by leaf {new_spte:#x}"
                " with another pfn")
        return
    if old_spte == new_spte:
        return
    if is_leaf:
        kvm.check_spte_writable_invariants(new_spte)
    if not was_present and not is_present:
        kvm.WARN_ON_ONCE(not kvm.is_mmio_spte(old_spte) and not kvm.is_mmio_spte(new_spte)
                         and not kvm.is_removed_spte(new_spte),
                         "handle_changed_spte: non-present SPTE replaced by another")
        return
    if is_leaf != was_leaf:
        kvm.kvm_update_page_stats(level, 1 if is_leaf else -1)
    mark_dirty(kvm, was_leaf, is_present, old_spte, new_spte, pfn_changed)
    if was_present and not was_leaf and (
            is_leaf or not is_present
            or kvm.WARN_ON_ONCE(pfn_changed, "handle_changed_spte: table pfn changed")):
        kvm.handle_removed_pt(kvm.spte_to_child_pt(old_spte, level), shared)
    mark_accessed(kvm, was_leaf, is_present, old_spte, new_spte, pfn_changed)


def handle_changed_spte(kvm, as_id: int, gfn: int, old_spte: int, new_spte: int, level: int,
                        shared: bool) -> None:
    """tdp_mmu.c handle_changed_spte at base d078157e62aa (KERNEL-FACTS 2.2 steps 1-11).

    A leaf that goes away, or loses D / A, or changes pfn marks its old pfn
    dirty (step 9) and accessed (step 11); a removed table is handled
    between the two (step 10).  ``BUG()`` does not return in C; the model
    returns right after it.  Confirmed: [R].
    """
    handle_changed_spte_body(kvm, mark_dirty_if_leaf_lost_dirty,
                             mark_accessed_if_leaf_lost_accessed,
                             as_id, gfn, old_spte, new_spte, level, shared)


def handle_changed_spte_no_dirty_mark(kvm, as_id: int, gfn: int, old_spte: int, new_spte: int,
                                      level: int, shared: bool) -> None:
    """tdp_mmu.c handle_changed_spte after RFC 2/4 (5866a664f46e): step 9 removed.

    Folios are marked dirty when a writable SPTE is made (make_spte), not
    when it is zapped or loses D.  The accessed mark (step 11) stays.
    Confirmed: [R] for the shared lines; the change is the rfc-2-of-4.patch hunk [P2].
    """
    handle_changed_spte_body(kvm, no_folio_mark, mark_accessed_if_leaf_lost_accessed,
                             as_id, gfn, old_spte, new_spte, level, shared)


def handle_changed_spte_no_folio_marks(kvm, as_id: int, gfn: int, old_spte: int, new_spte: int,
                                       level: int, shared: bool) -> None:
    """tdp_mmu.c handle_changed_spte after RFC 3/4 (340d5af454c6): steps 9 and 11 removed.

    No folio marking here any more; ``tdp_mmu_zap_leafs`` marks accessed
    itself.  Confirmed: [R] for the shared lines; the change is the RFC 3/4 hunk [P3].
    """
    handle_changed_spte_body(kvm, no_folio_mark, no_folio_mark,
                             as_id, gfn, old_spte, new_spte, level, shared)


def try_cmpxchg64(kvm, iter, new_spte: int) -> bool:
    """try_cmpxchg64(sptep, &iter->old_spte, new_spte) with the ``kvm.tdp_race`` hook.

    On failure ``iter.old_spte`` gets what memory holds, as in C.
    """
    race = getattr(kvm, "tdp_race", None)
    if race is not None:
        race(kvm, iter)
    current = iter.sptep.get()
    if current != iter.old_spte:
        iter.old_spte = current
        return False
    iter.sptep.set(new_spte)
    return True


def tdp_mmu_set_spte_atomic(kvm, iter, new_spte: int) -> int:
    """tdp_mmu.c tdp_mmu_set_spte_atomic (all blobs) -> 0 or -EBUSY.

    On -EBUSY nothing happened except ``iter.old_spte`` being refreshed.

    Confirmed: [R].
    """
    kvm.WARN_ON_ONCE(iter.yielded or kvm.is_removed_spte(iter.old_spte),
                     "tdp_mmu_set_spte_atomic: yielded iterator or frozen SPTE")
    if not try_cmpxchg64(kvm, iter, new_spte):
        return -EBUSY
    kvm.handle_changed_spte(iter.as_id, iter.gfn, iter.old_spte, new_spte, iter.level, True)
    return 0


def tdp_mmu_zap_spte_atomic(kvm, iter) -> int:
    """tdp_mmu.c tdp_mmu_zap_spte_atomic (all blobs): freeze, flush, then clear.

    The bookkeeping (``handle_changed_spte``) runs while freezing, before
    the flush.

    Confirmed: [R].
    """
    ret = kvm.tdp_mmu_set_spte_atomic(iter, REMOVED_SPTE)
    if ret:
        return ret
    kvm.kvm_flush_remote_tlbs_gfn(iter.gfn, iter.level)
    kvm.__kvm_tdp_mmu_write_spte(iter.sptep, 0)
    return 0


def tdp_mmu_set_spte(kvm, as_id: int, sptep, old_spte: int, new_spte: int, gfn: int,
                     level: int) -> int:
    """tdp_mmu.c tdp_mmu_set_spte (all blobs) -> the value actually replaced.

    Confirmed: [R].
    """
    kvm.WARN_ON_ONCE(kvm.is_removed_spte(old_spte) or kvm.is_removed_spte(new_spte),
                     "tdp_mmu_set_spte: frozen SPTE under the write lock")
    old_spte = kvm.kvm_tdp_mmu_write_spte(sptep, old_spte, new_spte, level)
    kvm.handle_changed_spte(as_id, gfn, old_spte, new_spte, level, False)
    return old_spte


def tdp_mmu_iter_set_spte(kvm, iter, new_spte: int) -> None:
    """tdp_mmu.c tdp_mmu_iter_set_spte (all blobs).

    Afterwards ``iter.old_spte`` is the value that was *replaced*, not
    ``new_spte``: callers that test it (3/4's zap_leafs) see the old leaf.

    Confirmed: [R].
    """
    kvm.WARN_ON_ONCE(iter.yielded, "tdp_mmu_iter_set_spte: yielded iterator")
    iter.old_spte = kvm.tdp_mmu_set_spte(iter.as_id, iter.sptep, iter.old_spte, new_spte,
                                         iter.gfn, iter.level)


def tdp_mmu_iter_cond_resched(kvm, iter, flush: bool, shared: bool) -> bool:
    """tdp_mmu.c tdp_mmu_iter_cond_resched: no resched or lock contention, ever.

    Kept so every loop reads as in C; it returns ``iter.yielded`` (False).

    Confirmed: [R].
    """
    kvm.WARN_ON_ONCE(iter.yielded, "tdp_mmu_iter_cond_resched: already yielded")
    if iter.next_last_level_gfn == iter.yielded_gfn:
        return False
    return iter.yielded


def tdp_mmu_max_gfn_exclusive(kvm) -> int:
    """tdp_mmu.c tdp_mmu_max_gfn_exclusive: host MAXPHYADDR 52 assumed (kvm_mmu_max_gfn + 1).

    Confirmed: [R].
    """
    return 1 << (52 - 12)


# ---------------------------------------------------------------------------
# zapping
# ---------------------------------------------------------------------------

def __tdp_mmu_zap_root(kvm, root, shared: bool, zap_level: int) -> None:
    """tdp_mmu.c __tdp_mmu_zap_root (all blobs): zap every present SPTE at zap_level.

    Zero entries may be skipped (the body skips non-present ones first).

    Confirmed: [R].
    """
    end = tdp_mmu_max_gfn_exclusive(kvm)
    start = 0
    for iter in for_each_tdp_pte_min_level(kvm, root, zap_level, start, end, skip_zero=True):
        while True:     # retry:
            if kvm.tdp_mmu_iter_cond_resched(iter, False, shared):
                break
            if not kvm.is_shadow_present_pte(iter.old_spte):
                break
            if iter.level > zap_level:
                break
            if not shared:
                kvm.tdp_mmu_iter_set_spte(iter, 0)
            elif kvm.tdp_mmu_set_spte_atomic(iter, 0):
                continue
            break


def tdp_mmu_zap_root(kvm, root, shared: bool) -> None:
    """tdp_mmu.c tdp_mmu_zap_root (all blobs): 4K, 2M, 1G, then root-level passes.

    With CONFIG_KVM_PROVE_MMU (``kvm.prove_mmu``) the 4K and 2M passes are
    skipped.  Folio marks come only from handle_changed_spte.

    Confirmed: [R].
    """
    kvm.WARN_ON_ONCE(not root.tdp_mmu_root_count, "tdp_mmu_zap_root: root without references")
    if not kvm.prove_mmu:
        kvm.__tdp_mmu_zap_root(root, shared, PG_LEVEL_4K)
        kvm.__tdp_mmu_zap_root(root, shared, PG_LEVEL_2M)
    kvm.__tdp_mmu_zap_root(root, shared, PG_LEVEL_1G)
    kvm.__tdp_mmu_zap_root(root, shared, root.role.level)


def kvm_tdp_mmu_zap_sp(kvm, sp) -> bool:
    """tdp_mmu.c kvm_tdp_mmu_zap_sp (all blobs) -> True: the caller must flush.

    Confirmed: [R].
    """
    if kvm.WARN_ON_ONCE(sp.ptep is None, "kvm_tdp_mmu_zap_sp: root page"):
        return False
    old_spte = kvm.kvm_tdp_mmu_read_spte(sp.ptep)
    if kvm.WARN_ON_ONCE(not kvm.is_shadow_present_pte(old_spte),
                        "kvm_tdp_mmu_zap_sp: parent SPTE not present"):
        return False
    kvm.tdp_mmu_set_spte(kvm_mmu_page_as_id(sp), sp.ptep, old_spte, 0, sp.gfn, sp.role.level + 1)
    return True


# tdp_mmu_zap_leafs: 3/4 adds one statement after the zap, taken as a small function.

def nothing_after_zap(kvm, iter) -> None:
    """tdp_mmu_zap_leafs at base and after 2/4: nothing between the zap and the flush flag."""


def mark_zapped_pfn_accessed(kvm, iter) -> None:
    """tdp_mmu_zap_leafs after RFC 3/4: mark the zapped pfn accessed if the replaced
    SPTE (``iter.old_spte`` after tdp_mmu_iter_set_spte) was accessed.  Confirmed: [P3]."""
    if kvm.is_accessed_spte(iter.old_spte):
        kvm.kvm_set_pfn_accessed(kvm.spte_to_pfn(iter.old_spte))


def tdp_mmu_zap_leafs_body(kvm, after_zap, root, start: int, end: int, can_yield: bool,
                           flush: bool) -> bool:
    """The statements of tdp_mmu.c tdp_mmu_zap_leafs shared by all blobs, in C order.

    Zaps present leaf SPTEs in [start, end) -> "flush needed" (not for an
    invalid root).  Zero entries may be skipped (the body skips non-present
    ones first).  Confirmed: [R].
    """
    end = min(end, tdp_mmu_max_gfn_exclusive(kvm))
    for iter in for_each_tdp_pte_min_level(kvm, root, PG_LEVEL_4K, start, end, skip_zero=True):
        if can_yield and kvm.tdp_mmu_iter_cond_resched(iter, flush, False):
            flush = False
            continue
        if not kvm.is_shadow_present_pte(iter.old_spte) or not kvm.is_last_spte(iter.old_spte,
                                                                                  iter.level):
            continue
        kvm.tdp_mmu_iter_set_spte(iter, 0)
        after_zap(kvm, iter)
        if not root.role.invalid:
            flush = True
    return flush


def tdp_mmu_zap_leafs(kvm, root, start: int, end: int, can_yield: bool, flush: bool) -> bool:
    """tdp_mmu.c tdp_mmu_zap_leafs at base d078157e62aa and after 2/4 (5866a664f46e).

    Folio marks only through handle_changed_spte.  Confirmed: [R].
    """
    return tdp_mmu_zap_leafs_body(kvm, nothing_after_zap, root, start, end, can_yield, flush)


def tdp_mmu_zap_leafs_marks_accessed(kvm, root, start: int, end: int, can_yield: bool,
                                     flush: bool) -> bool:
    """tdp_mmu.c tdp_mmu_zap_leafs after RFC 3/4 (340d5af454c6).

    Right after each zap, marks the pfn accessed if the value the zap
    replaced was accessed: the only accessed mark left in the TDP MMU.
    Confirmed: [R] for the shared lines; the change is the RFC 3/4 hunk [P3].
    """
    return tdp_mmu_zap_leafs_body(kvm, mark_zapped_pfn_accessed, root, start, end, can_yield,
                                  flush)


def kvm_tdp_mmu_zap_leafs(kvm, start: int, end: int, flush: bool) -> bool:
    """tdp_mmu.c kvm_tdp_mmu_zap_leafs (all blobs): every valid root, yielding allowed.

    Confirmed: [R].
    """
    for root in for_each_valid_tdp_mmu_root_yield_safe(kvm, -1):
        flush = kvm.tdp_mmu_zap_leafs(root, start, end, True, flush)
    return flush


def kvm_tdp_mmu_zap_all(kvm) -> None:
    """tdp_mmu.c kvm_tdp_mmu_zap_all (all blobs): every root, invalid ones too; no flush.

    Confirmed: [R].
    """
    for root in for_each_tdp_mmu_root_yield_safe(kvm):
        kvm.tdp_mmu_zap_root(root, False)


def kvm_tdp_mmu_zap_invalidated_roots(kvm) -> None:
    """tdp_mmu.c kvm_tdp_mmu_zap_invalidated_roots (all blobs).

    Zaps (shared) each root scheduled by invalidation, then puts the TDP
    MMU's own reference.  No flush (a new root is flushed when loaded).

    Confirmed: [R].
    """
    for root in for_each_tdp_mmu_root_yield_safe(kvm):
        if not getattr(root, "tdp_mmu_scheduled_root_to_zap", False):
            continue
        root.tdp_mmu_scheduled_root_to_zap = False
        kvm.WARN_ON_ONCE(not root.role.invalid, "KVM_BUG_ON: scheduled root is still valid")
        kvm.tdp_mmu_zap_root(root, True)
        kvm.kvm_tdp_mmu_put_root(root)


def kvm_tdp_mmu_invalidate_all_roots(kvm) -> None:
    """tdp_mmu.c kvm_tdp_mmu_invalidate_all_roots (all blobs): mark, schedule every valid root.

    Confirmed: [R].
    """
    for root in kvm.tdp_mmu_roots:
        if not root.role.invalid:
            root.tdp_mmu_scheduled_root_to_zap = True
            root.role.invalid = True


# ---------------------------------------------------------------------------
# page faults
# ---------------------------------------------------------------------------

def tdp_mmu_map_handle_target_level(kvm, vcpu, fault, iter) -> int:
    """tdp_mmu.c tdp_mmu_map_handle_target_level (all blobs) -> RET_PF_*.

    Builds the leaf (``make_spte`` with prefetch from the fault,
    can_unsync = true), installs it with a cmpxchg, and flushes when it
    replaced a page table (that table's children go through
    handle_removed_pt).  The vCPU MMIO statistic and tracepoints are left out.

    Confirmed: [R].
    """
    sp = kvm.sptep_to_sp(iter.sptep)
    ret = RET_PF_FIXED
    wrprot = False
    if kvm.WARN_ON_ONCE(sp.role.level != fault.goal_level, "map: leaf table at the wrong level"):
        return RET_PF_RETRY
    if fault.slot is None:
        new_spte = kvm.make_mmio_spte(vcpu, iter.gfn, ACC_ALL)
    else:
        wrprot, new_spte = kvm.make_spte(vcpu, sp, fault.slot, ACC_ALL, iter.gfn, fault.pfn,
                                         iter.old_spte, fault.prefetch, True, fault.map_writable)
    if new_spte == iter.old_spte:
        ret = RET_PF_SPURIOUS
    elif kvm.tdp_mmu_set_spte_atomic(iter, new_spte):
        return RET_PF_RETRY
    elif kvm.is_shadow_present_pte(iter.old_spte) and not kvm.is_last_spte(iter.old_spte,
                                                                             iter.level):
        kvm.kvm_flush_remote_tlbs_gfn(iter.gfn, iter.level)
    if wrprot:
        if fault.write:
            ret = RET_PF_EMULATE
    if kvm.is_mmio_spte(new_spte):
        ret = RET_PF_EMULATE
    return ret


def tdp_mmu_link_sp(kvm, iter, sp, shared: bool) -> int:
    """tdp_mmu.c tdp_mmu_link_sp (all blobs) -> 0, or -EBUSY if the cmpxchg lost.

    Confirmed: [R].
    """
    spte = kvm.make_nonleaf_spte(sp, not kvm.kvm_ad_enabled())
    if shared:
        ret = kvm.tdp_mmu_set_spte_atomic(iter, spte)
        if ret:
            return ret
    else:
        kvm.tdp_mmu_iter_set_spte(iter, spte)
    kvm.tdp_account_mmu_page(sp)
    return 0


def tdp_mmu_split_huge_page(kvm, iter, sp, shared: bool) -> int:
    """tdp_mmu.c tdp_mmu_split_huge_page (all blobs): fill a child table, link it.

    The 512 child SPTEs go straight into the unlinked table (``sp.spt``),
    with no SpteWrite: nothing can see them until the link, which is logged.
    Linking replaces the huge leaf by a non-leaf SPTE with another pfn, so
    handle_changed_spte treats the huge pfn as zapped (base: A and D).

    Confirmed: [R].
    """
    huge_spte = iter.old_spte
    level = iter.level
    for i in range(SPTE_ENT_PER_PAGE):
        child_spte = kvm.make_huge_page_split_spte(huge_spte, sp.role, i)
        if child_spte:
            sp.spt[i] = child_spte
    ret = kvm.tdp_mmu_link_sp(iter, sp, shared)
    if ret:
        return ret
    kvm.kvm_update_page_stats(level - 1, SPTE_ENT_PER_PAGE)
    return ret


def mmu_root_sp(kvm, vcpu):
    """root_to_sp(vcpu->arch.mmu->root.hpa): the vCPU's root page."""
    return vcpu.arch.mmu.root


def kvm_tdp_mmu_map(kvm, vcpu, fault) -> int:
    """tdp_mmu.c kvm_tdp_mmu_map (all blobs) -> RET_PF_*.

    Walks down to ``fault.goal_level`` (set by kvm_mmu_hugepage_adjust),
    linking a new table where an entry is not present and splitting a huge
    leaf that is in the way; gives up (RETRY) on a frozen SPTE or a lost
    cmpxchg.  The walk visits zero entries (never ``skip_zero``).

    Confirmed: [R].
    """
    root = mmu_root_sp(kvm, vcpu)
    ret = RET_PF_RETRY
    kvm.kvm_mmu_hugepage_adjust(vcpu, fault)
    iter = None
    for iter in for_each_tdp_pte(kvm, root, fault.gfn, fault.gfn + 1):
        if getattr(fault, "nx_huge_page_workaround_enabled", False):
            kvm.disallowed_hugepage_adjust(fault, iter.old_spte, iter.level)
        if kvm.is_removed_spte(iter.old_spte):
            return ret
        if iter.level == fault.goal_level:
            return kvm.tdp_mmu_map_handle_target_level(vcpu, fault, iter)
        if kvm.is_shadow_present_pte(iter.old_spte) and not kvm.is_large_pte(iter.old_spte):
            continue
        sp = kvm.tdp_mmu_alloc_sp(vcpu)
        kvm.tdp_mmu_init_child_sp(sp, iter)
        sp.nx_huge_page_disallowed = fault.huge_page_disallowed
        if kvm.is_shadow_present_pte(iter.old_spte):
            r = kvm.tdp_mmu_split_huge_page(iter, sp, True)
        else:
            r = kvm.tdp_mmu_link_sp(iter, sp, True)
        if r:
            kvm.tdp_mmu_free_sp(sp)
            return ret
        if fault.huge_page_disallowed and fault.req_level >= iter.level:
            if sp.nx_huge_page_disallowed:
                kvm.track_possible_nx_huge_page(sp)
    kvm.WARN_ON_ONCE(iter is not None and iter.level == fault.goal_level,
                     "kvm_tdp_mmu_map: walk ended at the goal level")
    return ret


_ALL_BLOBS = (tdp_mmu_free_sp, kvm_tdp_mmu_put_root, tdp_mmu_alloc_sp,
              tdp_mmu_init_sp, tdp_mmu_init_child_sp, kvm_tdp_mmu_alloc_root, tdp_mmu_unlink_sp,
              handle_removed_pt, tdp_mmu_set_spte_atomic, tdp_mmu_zap_spte_atomic,
              tdp_mmu_set_spte, tdp_mmu_iter_set_spte, tdp_mmu_iter_cond_resched,
              __tdp_mmu_zap_root, tdp_mmu_zap_root, kvm_tdp_mmu_zap_sp, kvm_tdp_mmu_zap_leafs,
              kvm_tdp_mmu_zap_all, kvm_tdp_mmu_zap_invalidated_roots,
              kvm_tdp_mmu_invalidate_all_roots, tdp_mmu_map_handle_target_level,
              tdp_mmu_link_sp, tdp_mmu_split_huge_page, kvm_tdp_mmu_map)
_HELPERS = (tdp_account_mmu_page, tdp_unaccount_mmu_page)

MODEL_TABLE = (
    tuple(Version(TDP_MMU_C, f.__name__, f) for f in _ALL_BLOBS)
    + tuple(Version(TDP_MMU_C, f.__name__, f, helper=True) for f in _HELPERS)
    + (
        Version(TDP_MMU_C, "handle_changed_spte", handle_changed_spte, (BASE,)),
        Version(TDP_MMU_C, "handle_changed_spte", handle_changed_spte_no_dirty_mark, (AFTER_2,)),
        Version(TDP_MMU_C, "handle_changed_spte", handle_changed_spte_no_folio_marks, (AFTER_3,)),
        Version(TDP_MMU_C, "tdp_mmu_zap_leafs", tdp_mmu_zap_leafs, (BASE, AFTER_2)),
        Version(TDP_MMU_C, "tdp_mmu_zap_leafs", tdp_mmu_zap_leafs_marks_accessed, (AFTER_3,)),
    )
    + tdp_mmu_iter.MODEL_TABLE
    + tdp_mmu_notifier.MODEL_TABLE
    + tdp_mmu_slot.MODEL_TABLE
)
