"""Models of arch/x86/kvm/mmu/paging_tmpl.h: the shadow-paging template.

paging_tmpl.h is compiled three times (PTTYPE 64, 32 and EPT); ``FNAME(x)``
expands to ``paging64_x``, ``paging32_x`` or ``ept_x``.  The patches name the
functions ``FNAME(x)`` in their hunk headers, so every model here is
registered under that one spelling (``"FNAME(prefetch_gpte)"``) and is called
as ``FNAME(kvm, "prefetch_gpte")(vcpu, ...)``, which is
``getattr(kvm, "FNAME(prefetch_gpte)")``.  The instantiation is data:
``kvm.pttype`` (``"64"`` or ``"ept"``) says which guest PTE format the
template was compiled for.
Registering the expanded names too would give a mutant or a derived
after-model two rows to replace for one C body, so only one spelling exists.

Guest PTEs are ints (``pt_element_t``), as in C.  ``GuestPte`` builds them
from plain fields for operations and tests; ``GUEST_FORMATS`` holds the bit
positions of the two modelled instantiations:

- ``"64"`` (paging64_*): P bit 0, W bit 1, U bit 2, A bit 5, D bit 6, NX bit
  63; guest A/D always on (``PT_HAVE_ACCESSED_DIRTY`` is true).
- ``"ept"`` (ept_*, nested EPT): R bit 0, W bit 1, X bit 2, A bit 8, D bit 9;
  guest A/D on unless the guest EPTP disables it (``vcpu.arch.mmu.ad_disabled``,
  standing for ``cpu_role.base.ad_disabled``).
PTTYPE 32 (paging32_*) is not modelled.

Blobs: paging_tmpl.h 4d4e98fe4f35 (base, unchanged by 1/4) and ec24a6679153
(after 2/4, unchanged by 3/4 and 4/4).  Only FNAME(prefetch_gpte) differs in
code; 2/4's other hunk rewrites the comment above FNAME(sync_spte).

Sources checked (search index, March 2024 era):
- FNAME(prefetch_gpte), FNAME(prefetch_invalid_gpte), FNAME(pte_prefetch),
  FNAME(protect_clean_gpte) and the EPT FNAME(gpte_access): a live-patch copy
  of a v6.x kernel (index id 61422764422) whose bodies match the pre-image of
  2/4's paging_tmpl.h hunk (index 4d4e98fe4f35) line for line.
- FNAME(sync_spte): a v6.5+ copy (index id 39881971485) and the diff context
  of a TDX patch carrying index 4d4e98fe4f35 (id 20412535981), which shows
  the leading WARN on an empty SPTE at the base blob.
- The PTTYPE 64 FNAME(gpte_access) (NX folded into ACC_EXEC): several copies
  (ids 2396631, 39881971485).
- gfn_to_memslot_dirty_bitmap and sync_mmio_spte (mmu.c): the v6.9-rc mmu.c
  copy (id 23785373) and a v6.x mmu.c (id 20553647089).
Not confirmed: kvm_vcpu_read_guest_atomic's body (only its use: non-zero on
failure); FNAME(is_rsvd_bits_set) is reduced (see below).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kernel_models.registry import ALL, KVM_MAIN_C, MMU_C, PAGING_TMPL_H, Version

PAGE_SHIFT = 12
PTE_PREFETCH_NUM = 8
PG_LEVEL_4K = 1

ACC_EXEC_MASK = 1
ACC_WRITE_MASK = 2
ACC_USER_MASK = 4
ACC_ALL = ACC_EXEC_MASK | ACC_WRITE_MASK | ACC_USER_MASK

# Bits 12..51 of a guest PTE hold the address (PT_BASE_ADDR_MASK, 4K level).
PT_BASE_ADDR_MASK = ((1 << 52) - 1) & ~((1 << PAGE_SHIFT) - 1)
# Reduced reserved-bit check: a guest MAXPHYADDR of 46, so address bits 46..51
# of a 4K guest PTE are reserved (the kernel computes this per vCPU).
GUEST_RSVD_MASK = ((1 << 52) - 1) & ~((1 << 46) - 1)


@dataclass(frozen=True)
class GuestFormat:
    """One PTTYPE instantiation of paging_tmpl.h: where its guest PTE bits are."""

    pttype: str
    present_mask: int        # FNAME(is_present_gpte)
    writable_mask: int
    user_mask: int           # EPT: the R bit, which KVM treats as "user"
    exec_mask: int           # EPT X bit; 0 for PTTYPE 64 (NX instead)
    nx_shift: int            # PT64_NX_SHIFT; 0 when the format has no NX
    accessed_shift: int      # PT_GUEST_ACCESSED_SHIFT
    dirty_shift: int         # PT_GUEST_DIRTY_SHIFT


GUEST_FORMATS = {
    "64": GuestFormat("64", present_mask=1 << 0, writable_mask=1 << 1, user_mask=1 << 2,
                      exec_mask=0, nx_shift=63, accessed_shift=5, dirty_shift=6),
    "ept": GuestFormat("ept", present_mask=0x7, writable_mask=1 << 1, user_mask=1 << 0,
                       exec_mask=1 << 2, nx_shift=0, accessed_shift=8, dirty_shift=9),
}


@dataclass(frozen=True)
class GuestPte:
    """A guest PTE by its fields; ``encode`` gives the ``pt_element_t``.

    For EPT, ``present`` means readable (R) and ``user`` is ignored: KVM's
    ACC_USER comes from R.  ``rsvd`` sets a reserved address bit.
    """

    gfn: int
    present: bool = True
    writable: bool = True
    user: bool = True
    executable: bool = True
    accessed: bool = True
    dirty: bool = False
    rsvd: bool = False

    def encode(self, pttype: str = "64") -> int:
        fmt = GUEST_FORMATS[pttype]
        value = (self.gfn << PAGE_SHIFT) & PT_BASE_ADDR_MASK
        if pttype == "ept":
            value |= (1 << 0) if self.present else 0
            value |= fmt.writable_mask if self.writable and self.present else 0
            value |= fmt.exec_mask if self.executable and self.present else 0
        else:
            value |= fmt.present_mask if self.present else 0
            value |= fmt.writable_mask if self.writable else 0
            value |= fmt.user_mask if self.user else 0
            value |= 0 if self.executable else 1 << fmt.nx_shift
        value |= (1 << fmt.accessed_shift) if self.accessed else 0
        value |= (1 << fmt.dirty_shift) if self.dirty else 0
        value |= (1 << 46) if self.rsvd else 0
        return value


@dataclass
class guest_walker:  # noqa: N801 - struct guest_walker, reduced
    """The walker fields FNAME(pte_prefetch) reads: the 8 gPTEs of the group.

    FNAME(gpte_changed) fills ``prefetch_ptes`` at the 4K level by reading
    the 8-entry aligned group of the guest page table.
    """

    gfn: int = 0
    level: int = PG_LEVEL_4K
    pte_access: int = ACC_ALL
    prefetch_ptes: list = field(default_factory=lambda: [0] * PTE_PREFETCH_NUM)


def FNAME(kvm, name: str):  # noqa: N802 - the kernel macro
    """``FNAME(name)`` as a callable of ``kvm``'s version set."""
    return getattr(kvm, f"FNAME({name})")


def guest_format(kvm) -> GuestFormat:
    """The guest PTE layout of the PTTYPE this VM's template runs as."""
    return GUEST_FORMATS[kvm.pttype]


def PT_HAVE_ACCESSED_DIRTY(kvm, mmu) -> bool:  # noqa: N802 - kernel macro
    """PTTYPE 64: always; EPT: unless the guest EPTP disables A/D."""
    if kvm.pttype == "ept":
        return not mmu.ad_disabled
    return True


# -- small per-format helpers (macros and inlines) ---------------------------

def gpte_to_gfn(kvm, gpte: int) -> int:
    """paging_tmpl.h macro ``gpte_to_gfn`` (gpte_to_gfn_lvl at 4K), all blobs.

    Address bits 12..51 of the guest PTE; confirmed in id 61422764422.
    """
    return (gpte & PT_BASE_ADDR_MASK) >> PAGE_SHIFT


def FNAME_is_present_gpte(kvm, pte: int) -> int:  # noqa: N802
    """FNAME(is_present_gpte), all blobs: PTTYPE 64: P bit; EPT: any of R/W/X.

    An ``int`` function: the masked bits, not 0/1 (callers test its truth).
    EPT form confirmed in id 61422764422; the PTTYPE 64 form (the P bit) is
    the template's other branch, not re-read.
    """
    return pte & guest_format(kvm).present_mask


def FNAME_is_rsvd_bits_set(kvm, mmu, gpte: int, level: int) -> bool:  # noqa: N802
    """FNAME(is_rsvd_bits_set), all blobs, reduced (shape read in id 61422764422).

    The kernel checks the per-vCPU reserved-bit masks (and, for EPT, the bad
    memtype/XWR table).  Here: address bits above a 46-bit guest MAXPHYADDR,
    and for EPT a writable entry that is not readable (a bad XWR value).
    """
    if gpte & GUEST_RSVD_MASK:
        return True
    if kvm.pttype == "ept":
        return bool(gpte & guest_format(kvm).writable_mask) and not gpte & (1 << 0)
    return False


def FNAME_protect_clean_gpte(kvm, mmu, access: int, gpte: int) -> int:  # noqa: N802
    """FNAME(protect_clean_gpte), all blobs (id 61422764422): a clean guest PTE loses write access.

    C updates ``*access`` in place; the model returns the new value.  Without
    guest A/D there is no dirty bit to track, so access is left alone.
    """
    if not PT_HAVE_ACCESSED_DIRTY(kvm, mmu):
        return access
    mask = ~ACC_WRITE_MASK
    mask |= (gpte >> (guest_format(kvm).dirty_shift - 1)) & ACC_WRITE_MASK
    return access & mask


def FNAME_gpte_access(kvm, gpte: int) -> int:  # noqa: N802
    """FNAME(gpte_access), all blobs (ids 61422764422, 2396631): guest PTE bits as ACC_* flags.

    PTTYPE 64: W, U and P (P stands for ACC_EXEC) with NX xor-ed into it;
    EPT: W -> write, X -> exec, R -> user.
    """
    fmt = guest_format(kvm)
    if fmt.pttype == "ept":
        access = ((ACC_WRITE_MASK if gpte & fmt.writable_mask else 0)
                  | (ACC_EXEC_MASK if gpte & fmt.exec_mask else 0)
                  | (ACC_USER_MASK if gpte & fmt.user_mask else 0))
        return access
    access = gpte & (fmt.writable_mask | fmt.user_mask | fmt.present_mask)
    access ^= (gpte >> fmt.nx_shift) & 1
    return access


def FNAME_get_level1_sp_gpa(kvm, sp) -> int:  # noqa: N802
    """FNAME(get_level1_sp_gpa), all blobs: where the guest table of ``sp`` starts.

    Its use in FNAME(sync_spte) was read (id 39881971485); the body (gpa of
    ``sp->gfn`` plus a PTTYPE 32 quadrant offset, not modelled) was not.
    """
    return sp.gfn << PAGE_SHIFT


# -- the functions the series touches -----------------------------------------

def FNAME_prefetch_invalid_gpte(kvm, vcpu, sp, spte, gpte: int) -> bool:  # noqa: N802
    """FNAME(prefetch_invalid_gpte): unusable guest PTE -> drop the SPTE.

    paging_tmpl.h, all blobs.  Confirmed in index id 61422764422.  Only
    accessed guest PTEs are prefetched when guest A/D is on.
    """
    mmu = vcpu.arch.mmu
    if not FNAME(kvm, "is_present_gpte")(gpte):
        return _no_present(kvm, spte)
    if PT_HAVE_ACCESSED_DIRTY(kvm, mmu) and not gpte & (1 << guest_format(kvm).accessed_shift):
        return _no_present(kvm, spte)
    if FNAME(kvm, "is_rsvd_bits_set")(mmu, gpte, PG_LEVEL_4K):
        return _no_present(kvm, spte)
    return False


def _no_present(kvm, spte) -> bool:
    """The ``no_present:`` label of FNAME(prefetch_invalid_gpte)."""
    kvm.drop_spte(spte)
    return True


def _prefetch_gpte_body(kvm, after_map, vcpu, sp, spte, gpte: int) -> bool:
    """The statements of FNAME(prefetch_gpte) both blobs share, in C order;
    ``after_map`` is the one statement 2/4 changes (what follows mmu_set_spte)."""
    if FNAME(kvm, "prefetch_invalid_gpte")(vcpu, sp, spte, gpte):
        return False
    gfn = kvm.gpte_to_gfn(gpte)
    pte_access = sp.role.access & FNAME(kvm, "gpte_access")(gpte)
    pte_access = FNAME(kvm, "protect_clean_gpte")(vcpu.arch.mmu, pte_access, gpte)
    slot = kvm.gfn_to_memslot_dirty_bitmap(vcpu, gfn, bool(pte_access & ACC_WRITE_MASK))
    if not slot:
        return False
    pfn = kvm.gfn_to_pfn_memslot_atomic(slot, gfn)
    if kvm.is_error_noslot_pfn(pfn):          # is_error_pfn; noslot cannot happen with a slot
        return False
    kvm.mmu_set_spte(vcpu, slot, spte, pte_access, gfn, pfn, None)
    after_map(kvm, pfn)
    return True


def release_prefetched_pfn(kvm, pfn: int) -> None:
    """Base: ``kvm_release_pfn_clean(pfn)`` marks the page accessed and drops
    the reference gfn_to_pfn_memslot_atomic took."""
    kvm.kvm_release_pfn_clean(pfn)


def keep_prefetched_pfn(kvm, pfn: int) -> None:
    """After 2/4: the release line is deleted; nothing follows mmu_set_spte."""


def FNAME_prefetch_gpte(kvm, vcpu, sp, spte, gpte: int) -> bool:  # noqa: N802
    """FNAME(prefetch_gpte), base: map one neighbouring guest PTE.

    paging_tmpl.h 4d4e98fe4f35 (base, after 1/4).  The pfn comes from
    gfn_to_pfn_memslot_atomic, which takes a page reference;
    kvm_release_pfn_clean then marks the page accessed and drops it.
    Confirmed in index id 61422764422 and in 2/4's hunk context.
    """
    return _prefetch_gpte_body(kvm, release_prefetched_pfn, vcpu, sp, spte, gpte)


def FNAME_prefetch_gpte_without_release(kvm, vcpu, sp, spte, gpte: int) -> bool:  # noqa: N802
    """FNAME(prefetch_gpte) after 2/4: the kvm_release_pfn_clean call is gone.

    paging_tmpl.h ec24a6679153 (after 2/4, 3/4, 4/4).  Modelled exactly as
    the patch reads: the reference gfn_to_pfn_memslot_atomic took is never
    dropped here, and the page is not marked accessed here.
    """
    return _prefetch_gpte_body(kvm, keep_prefetched_pfn, vcpu, sp, spte, gpte)


def FNAME_pte_prefetch(kvm, vcpu, gw: guest_walker, sptep) -> None:  # noqa: N802
    """FNAME(pte_prefetch): prefetch the non-present neighbours of ``sptep``.

    paging_tmpl.h, all blobs.  Confirmed in index id 61422764422: skipped
    above 4K and while an mmu_notifier invalidation is in progress; direct
    pages go to __direct_pte_prefetch; stops at the first failure.
    """
    sp = kvm.sptep_to_sp(sptep)
    if sp.role.level > PG_LEVEL_4K:
        return
    if kvm.mmu_invalidate_in_progress:
        return
    if sp.role.direct:
        return kvm.__direct_pte_prefetch(vcpu, sp, sptep)
    first = sptep.index & ~(PTE_PREFETCH_NUM - 1)     # spte_index(sptep)
    for i in range(PTE_PREFETCH_NUM):
        spte = sp.sptep(first + i)
        if spte == sptep:
            continue
        if kvm.is_shadow_present_pte(spte.get()):
            continue
        if not FNAME(kvm, "prefetch_gpte")(vcpu, sp, spte, gw.prefetch_ptes[i]):
            break


def FNAME_sync_spte(kvm, vcpu, sp, i: int) -> int:  # noqa: N802
    """FNAME(sync_spte): re-derive SPTE ``i`` of an unsync page from its gPTE.

    paging_tmpl.h, all blobs (2/4 edits only the comment above it).  Returns
    <0 on failure, 0 for no flush, >0 for flush.  Confirmed in index ids
    39881971485 and 20412535981 (base-blob context).  make_spte runs with
    prefetch = true and can_unsync = false over the current SPTE and pfn.
    """
    if kvm.WARN_ON_ONCE(not sp.sptep(i).get(), "FNAME(sync_spte): empty SPTE"):
        return 0
    first_pte_gpa = FNAME(kvm, "get_level1_sp_gpa")(sp)
    pte_gpa = first_pte_gpa + i * 8
    error, gpte = kvm.kvm_vcpu_read_guest_atomic(vcpu, pte_gpa, 8)
    if error:
        return -1
    if FNAME(kvm, "prefetch_invalid_gpte")(vcpu, sp, sp.sptep(i), gpte):
        return 1
    gfn = kvm.gpte_to_gfn(gpte)
    pte_access = sp.role.access
    pte_access &= FNAME(kvm, "gpte_access")(gpte)
    pte_access = FNAME(kvm, "protect_clean_gpte")(vcpu.arch.mmu, pte_access, gpte)
    if kvm.sync_mmio_spte(vcpu, sp.sptep(i), gfn, pte_access):
        return 0
    if (not pte_access and not kvm.shadow_present_mask) or gfn != kvm.kvm_mmu_page_get_gfn(sp, i):
        kvm.drop_spte(sp.sptep(i))
        return 1
    if kvm.kvm_mmu_page_get_access(sp, i) == pte_access:
        return 0
    kvm.kvm_mmu_page_set_access(sp, i, pte_access)
    sptep = sp.sptep(i)
    spte = sptep.get()
    host_writable = bool(spte & kvm.shadow_host_writable_mask)
    slot = kvm.kvm_vcpu_gfn_to_memslot(vcpu, gfn)
    _, spte = kvm.make_spte(vcpu, sp, slot, pte_access, gfn, kvm.spte_to_pfn(spte), spte,
                            True, False, host_writable)
    return int(kvm.mmu_spte_update(sptep, spte))


# -- callees outside paging_tmpl.h that only this template reaches ------------
# Kept here, clearly apart, because no other model calls them; they are
# registered under their own file (mmu.c / kvm_main.c).

def gfn_to_memslot_dirty_bitmap(kvm, vcpu, gfn: int, no_dirty_log: bool):
    """mmu.c gfn_to_memslot_dirty_bitmap, all mmu.c blobs (id 23785373).

    No slot (or an invalid one) -> None; a dirty-logged slot is refused when
    the caller would map the gfn writable without logging it.
    """
    slot = kvm.kvm_vcpu_gfn_to_memslot(vcpu, gfn)
    if not slot or getattr(slot, "invalid", False):    # KVM_MEMSLOT_INVALID
        return None
    if no_dirty_log and kvm.kvm_slot_dirty_track_enabled(slot):
        return None
    return slot


def sync_mmio_spte(kvm, vcpu, sptep, gfn: int, access: int) -> bool:
    """mmu.c sync_mmio_spte, all mmu.c blobs (id 20553647089)."""
    if kvm.is_mmio_spte(sptep.get()):
        if gfn != kvm.get_mmio_spte_gfn(sptep.get()):
            kvm.mmu_spte_clear_no_track(sptep)
            return True
        kvm.mark_mmio_spte(vcpu, sptep, gfn, access)
        return True
    return False


def kvm_vcpu_gfn_to_memslot(kvm, vcpu, gfn: int):
    """kvm_main.c kvm_vcpu_gfn_to_memslot: the slot holding ``gfn`` (one address space)."""
    return kvm.gfn_to_memslot(gfn)


def kvm_vcpu_read_guest_atomic(kvm, vcpu, gpa: int, length: int):
    """kvm_main.c kvm_vcpu_read_guest_atomic, reduced to one aligned 8-byte read.

    C returns 0 or -EFAULT and fills a buffer; the model returns
    ``(error, value)``.  Guest memory is ``kvm.guest_memory`` (gpa -> u64).
    Body not read in source; only its contract (non-zero on failure).
    """
    if kvm.gfn_to_memslot(gpa >> PAGE_SHIFT) is None:
        return -14, 0      # -EFAULT
    return 0, kvm.guest_memory.get(gpa, 0)


def _fname(name: str) -> str:
    return f"FNAME({name})"


MODEL_TABLE = (
    Version(PAGING_TMPL_H, "gpte_to_gfn", gpte_to_gfn),
    Version(PAGING_TMPL_H, _fname("is_present_gpte"), FNAME_is_present_gpte),
    Version(PAGING_TMPL_H, _fname("is_rsvd_bits_set"), FNAME_is_rsvd_bits_set),
    Version(PAGING_TMPL_H, _fname("protect_clean_gpte"), FNAME_protect_clean_gpte),
    Version(PAGING_TMPL_H, _fname("gpte_access"), FNAME_gpte_access),
    Version(PAGING_TMPL_H, _fname("get_level1_sp_gpa"), FNAME_get_level1_sp_gpa),
    Version(PAGING_TMPL_H, _fname("prefetch_invalid_gpte"), FNAME_prefetch_invalid_gpte),
    Version(PAGING_TMPL_H, _fname("prefetch_gpte"), FNAME_prefetch_gpte, ("4d4e98fe4f35",)),
    Version(PAGING_TMPL_H, _fname("prefetch_gpte"), FNAME_prefetch_gpte_without_release,
            ("ec24a6679153",)),
    Version(PAGING_TMPL_H, _fname("pte_prefetch"), FNAME_pte_prefetch),
    Version(PAGING_TMPL_H, _fname("sync_spte"), FNAME_sync_spte, ALL),
    Version(MMU_C, "gfn_to_memslot_dirty_bitmap", gfn_to_memslot_dirty_bitmap),
    Version(MMU_C, "sync_mmio_spte", sync_mmio_spte),
    Version(KVM_MAIN_C, "kvm_vcpu_gfn_to_memslot", kvm_vcpu_gfn_to_memslot),
    Version(KVM_MAIN_C, "kvm_vcpu_read_guest_atomic", kvm_vcpu_read_guest_atomic),
)
