"""Where a hand-written model deliberately differs from its C, and why.

A model mirrors its C function statement by statement; the few places where
one does not, on purpose, are listed here and nowhere else, so a reviewer
reads every modelling simplification in one table.  ``kconform audit``
reports a function as ``simplified`` (not ``equal``) only when its statement
comparison with the translated C differs by exactly the lines listed here;
any other difference, or a listed one that no longer matches the C, stays
``differs``.

Lines are the audit's normalised Python (``- model`` lines the C lacks,
``+ C`` lines the model lacks), after the equivalence rules of
``harness.translate.audit_rules``.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernel_models.registry import MMU_C, MMU_INTERNAL_H, SPTE_H


@dataclass(frozen=True)
class Simplification:
    file: str
    function: str
    model: tuple[str, ...]     # model lines the C does not have
    c: tuple[str, ...]         # translated C lines the model does not have
    reason: str

    def accounts_for(self, diff: list[str]) -> bool:
        """Does the audit's diff (``-`` model / ``+`` C lines) consist of exactly these?"""
        removed = tuple(line[1:] for line in diff if line.startswith("-"))
        added = tuple(line[1:] for line in diff if line.startswith("+"))
        return (removed, added) == (self.model, self.c)


SIMPLIFICATIONS: tuple[Simplification, ...] = (
    Simplification(
        MMU_C, "sp_has_gptes",
        (), ("if sp.role.passthrough:", "    return False"),
        "no passthrough shadow pages: the models build no PAE or 32-bit shadow roots (a "
        "passthrough page stands in for a guest table KVM does not shadow), so the model's "
        "role has no passthrough bit; kvm_mmu_page_get_gfn leaves out the same test"),
    Simplification(
        MMU_C, "kvm_mmu_page_get_access",
        ("    return sp.shadowed_translation[index][1]",),
        ("    return sp.shadowed_translation[index] & ACC_ALL",),
        "shadowed_translation holds (gfn, access) pairs where C packs gfn << PAGE_SHIFT | "
        "access into one u64 (kvm_mmu_page_get_gfn and kvm_mmu_page_set_translation read and "
        "write the same pairs); the access read is the same field"),
    Simplification(
        SPTE_H, "get_rsvd_bits",
        ("return 0",),
        ("bit7 = pte >> 7 & 1", "return rsvd_check.rsvd_bits_mask[bit7][level - 1]"),
        "the reserved-bit tables (shadow_zero_check, guest_rsvd_check) are not built: every "
        "SPTE the models make uses only bits the kernel's tables allow, so every table entry "
        "the models could read is 0 (spte.get_rsvd_bits says so)"),
    Simplification(
        MMU_INTERNAL_H, "is_nx_huge_page_enabled",
        ("return bool(kvm.nx_huge_pages)",),
        ("return bool(kvm.nx_huge_pages and (not kvm.arch.disable_nx_huge_pages))",),
        "the per-VM KVM_CAP_VM_DISABLE_NX_HUGE_PAGES override (kvm->arch."
        "disable_nx_huge_pages) is never enabled on a model VM, so only the module "
        "parameter decides"),
)


def find(file: str, function: str) -> Simplification | None:
    for row in SIMPLIFICATIONS:
        if (row.file, row.function) == (file, function):
            return row
    return None
