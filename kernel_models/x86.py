"""arch/x86/kvm/x86.h and x86.c: the vCPU's MMIO cache and the memslot-update hook.

Neither file is in the stored tree (/tmp/ktree holds arch/x86/kvm/mmu/ and
two headers only), so these facts were read elsewhere: x86.h's
``vcpu_cache_mmio_info`` (with the update-in-progress check),
``vcpu_match_mmio_gen`` and ``vcpu_match_mmio_gpa`` in the search-index copy
16592666 of a v5.x-v6.x x86.h (unchanged in form since the in-progress flag
moved to bit 63); x86.c's ``kvm_arch_memslots_updated`` is the caller of
``kvm_mmu_invalidate_mmio_sptes`` (mmu.c v6.9 blob db007a4dffa2) named by
kvm_main.c ``kvm_swap_active_memslots`` (search copy 203102885).  The rows use
the unchanged mmu_internal.h pseudo-file: neither file has a blob chain.

State: ``vcpu.arch.mmio_gva``/``mmio_access``/``mmio_gfn``/``mmio_gen``
(mmu_fault.kvm_vcpu_arch); ``kvm.memslots_generation`` stands for
``kvm_memslots(kvm)->generation`` (address space 0 only).
"""

from __future__ import annotations

from kernel_models.registry import MMU_INTERNAL_H, Version

KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS = 1 << 63
PAGE_MASK = ~0xFFF


def mmu_is_nested(kvm, vcpu) -> bool:
    """x86.h mmu_is_nested: the vCPU walks L2's tables (never, for the direct MMU modelled)."""
    return False


def vcpu_cache_mmio_info(kvm, vcpu, gva: int, gfn: int, access: int) -> None:
    """x86.h vcpu_cache_mmio_info (search copy 16592666)."""
    gen = kvm.memslots_generation
    if gen & KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS:
        return
    vcpu.arch.mmio_gva = 0 if kvm.mmu_is_nested(vcpu) else gva & PAGE_MASK
    vcpu.arch.mmio_access = access
    vcpu.arch.mmio_gfn = gfn
    vcpu.arch.mmio_gen = gen


def vcpu_match_mmio_gen(kvm, vcpu) -> bool:
    """x86.h vcpu_match_mmio_gen (search copy 16592666)."""
    return vcpu.arch.mmio_gen == kvm.memslots_generation


def vcpu_match_mmio_gpa(kvm, vcpu, gpa: int) -> bool:
    """x86.h vcpu_match_mmio_gpa (search copy 16592666)."""
    if kvm.vcpu_match_mmio_gen(vcpu) and vcpu.arch.mmio_gfn and vcpu.arch.mmio_gfn == gpa >> 12:
        return True
    return False


def kvm_arch_memslots_updated(kvm, gen: int) -> None:
    """x86.c kvm_arch_memslots_updated, reduced to its MMU step (the vCPU kick that
    forces a new memslot lookup is implicit: the model has no cached slots)."""
    kvm.kvm_mmu_invalidate_mmio_sptes(gen)


_ROWS = (mmu_is_nested, vcpu_cache_mmio_info, vcpu_match_mmio_gen, vcpu_match_mmio_gpa,
         kvm_arch_memslots_updated)

MODEL_TABLE = tuple(Version(MMU_INTERNAL_H, f.__name__, f) for f in _ROWS)
