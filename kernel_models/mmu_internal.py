"""Page-table pages and SPTE pointers (arch/x86/kvm/mmu/mmu_internal.h).

``kvm_mmu_page`` is shared by the shadow MMU and the TDP MMU, as in the
kernel.  Its table ``spt`` is sparse (a dict index -> SPTE value; a missing
entry reads as 0), which keeps 512-entry tables cheap.

``sptep`` (a ``u64 *`` in C) is a ``SptePointer``: the page plus an index.
Every store through a pointer appends an ``SpteWrite`` event to the VM's log,
so no model can change an SPTE without the change being seen.  Loads and
stores are the only memory operations; the C primitives that choose between a
plain store and an atomic exchange (``__update_clear_spte_slow``,
``kvm_tdp_mmu_write_spte``...) are modelled in the module of their file and
differ only in the value they return, because this model runs one thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kernel_models.effects import SpteWrite
from kernel_models.kvm_main import KVM_PAGES_PER_HPAGE
from kernel_models.registry import MMU_INTERNAL_H, Version

SPTE_ENT_PER_PAGE = 512


@dataclass
class kvm_mmu_page_role:  # noqa: N801
    level: int
    direct: bool = True
    ad_disabled: bool = False
    guest_mode: bool = False
    invalid: bool = False
    access: int = 7           # ACC_ALL


class kvm_mmu_page:  # noqa: N801
    """struct kvm_mmu_page: one page-table page (shadow or TDP)."""

    def __init__(self, kvm, role: kvm_mmu_page_role, gfn: int, *, tdp_mmu_page: bool = False,
                 pfn: int | None = None):
        self.kvm = kvm
        self.role = role
        self.gfn = gfn
        self.tdp_mmu_page = tdp_mmu_page
        self.spt: dict[int, int] = {}
        self.pfn = kvm.alloc_table_pfn() if pfn is None else pfn
        self.ptep = None              # TDP MMU: the parent SPTE pointing here
        self.parent_ptes: list = []   # shadow MMU: parents pointing here
        self.tdp_mmu_root_count = 1 if tdp_mmu_page else 0
        self.root_count = 0
        self.unsync = False
        self.nx_huge_page_disallowed = False
        # shadow MMU, indirect pages: index -> (gfn, access) shadowed by that SPTE
        self.shadowed_translation: dict[int, tuple[int, int]] = {}
        kvm.mmu_pages[self.pfn] = self

    @property
    def name(self) -> str:
        kind = "tdp" if self.tdp_mmu_page else ("sp" if self.role.direct else "isp")
        return f"{kind}{self.role.level}@{self.gfn:#x}"

    def sptep(self, index: int) -> "SptePointer":
        return SptePointer(self, index)

    def gfn_of(self, index: int) -> int:
        """The first gfn an entry maps (direct pages; kvm_mmu_page_get_gfn)."""
        if not self.role.direct and index in self.shadowed_translation:
            return self.shadowed_translation[index][0]
        return self.gfn + index * KVM_PAGES_PER_HPAGE(self.role.level)

    def __repr__(self) -> str:
        return f"<kvm_mmu_page {self.name}>"


@dataclass(frozen=True)
class SptePointer:
    """``u64 *sptep``: entry ``index`` of page ``sp``."""

    sp: kvm_mmu_page = field(compare=True)
    index: int

    def get(self) -> int:
        return self.sp.spt.get(self.index, 0)

    def set(self, value: int) -> None:
        old = self.get()
        if value:
            self.sp.spt[self.index] = value
        else:
            self.sp.spt.pop(self.index, None)
        if old != value:
            self.sp.kvm.emit(SpteWrite(where=self.where, old=old, new=value))

    def exchange(self, value: int) -> int:
        old = self.get()
        self.set(value)
        return old

    @property
    def where(self) -> str:
        return f"{self.sp.name}[{self.index}]"

    @property
    def gfn(self) -> int:
        return self.sp.gfn_of(self.index)

    @property
    def level(self) -> int:
        return self.sp.role.level

    def __hash__(self) -> int:
        return hash((id(self.sp), self.index))

    def __eq__(self, other) -> bool:
        return isinstance(other, SptePointer) and other.sp is self.sp and other.index == self.index

    def __repr__(self) -> str:
        return f"&{self.where}"


def sptep_to_sp(kvm, sptep: SptePointer) -> kvm_mmu_page:
    return sptep.sp


def spte_to_child_sp(kvm, spte: int) -> kvm_mmu_page | None:
    """The page a non-leaf SPTE points to (by its pfn)."""
    return kvm.mmu_pages.get(kvm.spte_to_pfn(spte))


MODEL_TABLE = (
    Version(MMU_INTERNAL_H, "sptep_to_sp", sptep_to_sp),
    Version(MMU_INTERNAL_H, "spte_to_child_sp", spte_to_child_sp),
)


@dataclass
class kvm_page_fault:  # noqa: N801 - mmu_internal.h
    """struct kvm_page_fault, reduced to the fields the modelled code reads.

    Output fields (``pfn``, ``map_writable``, ``slot``, ``goal_level``) are
    filled in by the fault path as in C.
    """

    addr: int = 0
    gfn: int = 0
    write: bool = False
    exec: bool = False
    present: bool = False
    user: bool = True
    prefetch: bool = False
    is_tdp: bool = True
    max_level: int = 3
    req_level: int = 1
    goal_level: int = 1
    slot: object = None
    pfn: int = 0
    map_writable: bool = False
    huge_page_disallowed: bool = False
    rsvd: bool = False          # PFERR_RSVD_MASK: no modelled fault sets it
