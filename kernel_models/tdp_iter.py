"""TDP MMU SPTE read/write helpers (arch/x86/kvm/mmu/tdp_iter.h).

tdp_iter.h is not changed by the series, so every body holds in all its
blobs.  ``sptep`` is a ``SptePointer`` (mmu_internal.py); every store through
it logs an ``SpteWrite`` by itself.  The store primitives are registered as
helpers so that event is attributed to the tdp_mmu.c function that called
them.  The model runs one thread, so a plain store and an atomic exchange
leave the same memory; they differ in the value returned, which is the
point of ``kvm_tdp_mmu_write_spte``'s contract: when no atomic update is
needed it returns the caller's ``old_spte``, not what memory held.

Facts: bodies read in the index copy id 33616814 (tdp_iter.h of the 2023-24
era: ``kvm_tdp_mmu_spte_need_atomic_write`` = present AND leaf AND
``spte_has_volatile_bits``; ``tdp_mmu_clear_spte_bits`` does an atomic
fetch-and when that holds, else a plain store of ``old & ~mask``) and in
James Houghton's later patch (id 39957673001) whose pre-image is the same
form.  The ``KVM_MMU_WARN_ON(is_ept_ve_possible(...))`` seen in later copies
was added after the base (v6.10) and is not modelled.
"""

from __future__ import annotations

from kernel_models.registry import TDP_ITER_H, Version


def kvm_tdp_mmu_read_spte(kvm, sptep) -> int:
    """tdp_iter.h kvm_tdp_mmu_read_spte: READ_ONCE of the SPTE."""
    return sptep.get()


def kvm_tdp_mmu_write_spte_atomic(kvm, sptep, new_spte: int) -> int:
    """tdp_iter.h kvm_tdp_mmu_write_spte_atomic: xchg, returns the value replaced."""
    return sptep.exchange(new_spte)


def __kvm_tdp_mmu_write_spte(kvm, sptep, new_spte: int) -> None:  # noqa: N807
    """tdp_iter.h __kvm_tdp_mmu_write_spte: WRITE_ONCE."""
    sptep.set(new_spte)


def kvm_tdp_mmu_spte_need_atomic_write(kvm, old_spte: int, level: int) -> bool:
    """tdp_iter.h kvm_tdp_mmu_spte_need_atomic_write: present leaf with volatile bits.

    Non-leaf A bits are volatile too, but KVM never reads them, so losing
    one is harmless; only leaves need the exchange.
    """
    return (kvm.is_shadow_present_pte(old_spte) and kvm.is_last_spte(old_spte, level)
            and kvm.spte_has_volatile_bits(old_spte))


def kvm_tdp_mmu_write_spte(kvm, sptep, old_spte: int, new_spte: int, level: int) -> int:
    """tdp_iter.h kvm_tdp_mmu_write_spte -> the value actually replaced.

    With an atomic write that is what memory held; otherwise the caller's
    ``old_spte`` (the caller vouches nothing could have changed it).
    """
    if kvm.kvm_tdp_mmu_spte_need_atomic_write(old_spte, level):
        return kvm.kvm_tdp_mmu_write_spte_atomic(sptep, new_spte)
    kvm.__kvm_tdp_mmu_write_spte(sptep, new_spte)
    return old_spte


def tdp_mmu_clear_spte_bits(kvm, sptep, old_spte: int, mask: int, level: int) -> int:
    """tdp_iter.h tdp_mmu_clear_spte_bits -> the value before clearing ``mask``.

    The atomic branch is ``atomic64_fetch_and(~mask)``: it clears the bits in
    what memory holds *now* and returns that prior value.
    """
    if kvm.kvm_tdp_mmu_spte_need_atomic_write(old_spte, level):
        return atomic64_fetch_and(kvm, sptep, ~mask)
    kvm.__kvm_tdp_mmu_write_spte(sptep, old_spte & ~mask)
    return old_spte


def atomic64_fetch_and(kvm, sptep, mask: int) -> int:
    """The atomic fetch-and of tdp_mmu_clear_spte_bits (a CPU primitive, not a kernel function)."""
    prior = sptep.get()
    sptep.set(prior & mask)
    return prior


MODEL_TABLE = (
    Version(TDP_ITER_H, "kvm_tdp_mmu_read_spte", kvm_tdp_mmu_read_spte),
    Version(TDP_ITER_H, "kvm_tdp_mmu_write_spte_atomic", kvm_tdp_mmu_write_spte_atomic,
            helper=True),
    Version(TDP_ITER_H, "__kvm_tdp_mmu_write_spte", __kvm_tdp_mmu_write_spte, helper=True),
    Version(TDP_ITER_H, "kvm_tdp_mmu_spte_need_atomic_write",
            kvm_tdp_mmu_spte_need_atomic_write),
    Version(TDP_ITER_H, "kvm_tdp_mmu_write_spte", kvm_tdp_mmu_write_spte, helper=True),
    Version(TDP_ITER_H, "tdp_mmu_clear_spte_bits", tdp_mmu_clear_spte_bits, helper=True),
)
