"""SPTE encodings, predicates and constructors (arch/x86/kvm/mmu/spte.h, spte.c).

Three encoding modes stand for the three ways the kernel sets its SPTE masks
(``kvm_mmu_reset_all_pte_masks`` for shadow paging / NPT, and
``kvm_mmu_set_ept_masks(has_ad_bits, has_exec_only=false)`` for EPT):

- ``"legacy"``: shadow paging or NPT; P bit 0, W bit 1, U bit 2, A bit 5,
  D bit 6, PS bit 7, host-writable bit 9, MMU-writable bit 10, NX bit 63.
- ``"ept_ad"``: EPT with A/D bits; R bit 0 (present mask and user mask),
  W bit 1, X bit 2, A bit 8, D bit 9, host-/MMU-writable bits 57/58,
  access-track mask RWX.  Nested (L2) pages may still be A/D-disabled or
  write-protect-only, so both appear in its domain.
- ``"ept_noad"``: EPT without A/D bits; accessed/dirty masks 0, every SPTE
  carries the A/D-disabled type (bits 52-53), and aging saves R/X in bits
  54/56 while clearing RWX ("access tracking").

Every model function takes the VM first (named ``kvm``) and reads the masks
as VM attributes (``kvm.shadow_accessed_mask``), copied there from
``SpteMasks.as_globals()``; calls to other kernel functions go through the VM.

``make_spte`` returns ``(wrprot, new_spte)``: the C function returns
``wrprot`` and writes the new SPTE through its ``u64 *new_spte`` output
pointer; the model returns that value as the second element instead.

Where the facts come from (search-tool look-ups, Nov 2026):

- spte.h: bit constants, REMOVED_SPTE, the A/D type field, the saved-bits
  shift, host/MMU-writable bits, ``check_spte_writable_invariants``,
  ``is_mmu_writable_spte``, ``restore_acc_track_spte`` read in the index copy
  id 24615369 (v6.13 era: constants unchanged there); base-era forms
  (``is_mmio_spte`` without a kvm argument reading ``enable_mmio_caching``,
  ``kvm_ad_enabled()`` a function returning ``!!shadow_accessed_mask``,
  ``is_accessed_spte``/``is_dirty_spte`` with the A/D-disabled fallbacks)
  read in torvalds/linux 006100212d7f (older) and in patch contexts that add
  and later remove ``kvm_ad_enabled()`` (index ids 45708296282, 41938237039).
- spte.c: ``make_spte``, ``spte_has_volatile_bits``, ``make_nonleaf_spte``,
  ``mark_spte_for_access_track``, ``make_huge_page_split_spte``,
  ``make_spte_executable``, ``make_mmio_spte`` and ``kvm_mmu_set_ept_masks``
  read in kvm-x86/linux 771df9ffadb8 (v6.11 era).  Its differences from the
  base blob 4a599130e9c9 are taken from patch contexts carrying that index
  (id 20955019878: the base EPT present mask has no suppress-#VE bit and the
  MMIO mask is plain RWX; id 36922852681: base calls the vendor memtype hook
  with three arguments; id 40773106021: base already uses WARN_ON_ONCE for
  the dirty-log level check).  ``kvm_mmu_changed_pte_notifier_make_spte``
  read in Paolo Bonzini's removal patch (id 46244852148, v6.9 era).
- The legacy MMIO value (bit 51 | P, access mask W|U) read in
  ``kvm_mmu_reset_all_pte_masks`` contexts (index ids 29569523, 28772717283).

Tags used in the docstrings: [H13] index copy 24615369 (spte.h, v6.13 era,
unchanged bodies); [H-old] torvalds/linux 006100212d7f (older spte.h);
[C11] kvm-x86/linux 771df9ffadb8 (spte.c, v6.11 era); [P-4a59] patch
contexts carrying the base spte.c index 4a599130e9c9; [MMIO] patches
around ``is_mmio_spte`` (ids 8166228281, 28830331977); [AD] the patches
adding/removing ``kvm_ad_enabled()`` (ids 45708296282, 41938237039).
"All blobs" = the body holds in every blob of its file (spte.h and
mmu_internal.h are not changed by the series; for spte.c: 4a599130e9c9,
b4c1119cc48b, 490966bc893c).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kernel_models.kvm_main import KVM_PAGES_PER_HPAGE, PG_LEVEL_4K
from kernel_models.registry import MMU_INTERNAL_H, SPTE_C, SPTE_H, Version

# -- constants with kernel names (arch/x86/kvm/mmu/mmu.h, spte.h, asm/vmx.h) --
PAGE_SHIFT = 12
PT_PRESENT_MASK = 1 << 0
PT_WRITABLE_SHIFT = 1
PT_WRITABLE_MASK = 1 << PT_WRITABLE_SHIFT
PT_USER_MASK = 1 << 2
PT_ACCESSED_MASK = 1 << 5
PT_DIRTY_MASK = 1 << 6
PT_PAGE_SIZE_MASK = 1 << 7
PT64_NX_MASK = 1 << 63

SPTE_MMU_PRESENT_MASK = 1 << 11
SPTE_TDP_AD_SHIFT = 52
SPTE_TDP_AD_MASK = 3 << SPTE_TDP_AD_SHIFT
SPTE_TDP_AD_ENABLED = 0 << SPTE_TDP_AD_SHIFT
SPTE_TDP_AD_DISABLED = 1 << SPTE_TDP_AD_SHIFT
SPTE_TDP_AD_WRPROT_ONLY = 2 << SPTE_TDP_AD_SHIFT

# No CONFIG_DYNAMIC_PHYSICAL_MASK: the pfn is bits 12..51.
SPTE_BASE_ADDR_MASK = ((1 << 52) - 1) & ~((1 << PAGE_SHIFT) - 1)

ACC_EXEC_MASK = 1
ACC_WRITE_MASK = PT_WRITABLE_MASK
ACC_USER_MASK = PT_USER_MASK
ACC_ALL = ACC_EXEC_MASK | ACC_WRITE_MASK | ACC_USER_MASK

SPTE_EPT_READABLE_MASK = 0x1
SPTE_EPT_EXECUTABLE_MASK = 0x4
SHADOW_ACC_TRACK_SAVED_BITS_MASK = SPTE_EPT_READABLE_MASK | SPTE_EPT_EXECUTABLE_MASK
SHADOW_ACC_TRACK_SAVED_BITS_SHIFT = 54

DEFAULT_SPTE_HOST_WRITABLE = 1 << 9
DEFAULT_SPTE_MMU_WRITABLE = 1 << 10
EPT_SPTE_HOST_WRITABLE = 1 << 57
EPT_SPTE_MMU_WRITABLE = 1 << 58

# The TDP MMU's "frozen" placeholder: no RWX, no pfn, not MMU-present.
REMOVED_SPTE = 0x5a0

MMIO_SPTE_GEN_LOW_START = 3
MMIO_SPTE_GEN_LOW_END = 10
MMIO_SPTE_GEN_HIGH_START = 52
MMIO_SPTE_GEN_HIGH_END = 62
MMIO_SPTE_GEN_LOW_BITS = MMIO_SPTE_GEN_LOW_END - MMIO_SPTE_GEN_LOW_START + 1
MMIO_SPTE_GEN_HIGH_BITS = MMIO_SPTE_GEN_HIGH_END - MMIO_SPTE_GEN_HIGH_START + 1
MMIO_SPTE_GEN_LOW_MASK = ((1 << (MMIO_SPTE_GEN_LOW_END + 1)) - 1) & ~((1 << MMIO_SPTE_GEN_LOW_START) - 1)
MMIO_SPTE_GEN_HIGH_MASK = ((1 << (MMIO_SPTE_GEN_HIGH_END + 1)) - 1) & ~((1 << MMIO_SPTE_GEN_HIGH_START) - 1)
MMIO_SPTE_GEN_LOW_SHIFT = MMIO_SPTE_GEN_LOW_START - 0
MMIO_SPTE_GEN_HIGH_SHIFT = MMIO_SPTE_GEN_HIGH_START - MMIO_SPTE_GEN_LOW_BITS
MMIO_SPTE_GEN_MASK = (1 << (MMIO_SPTE_GEN_LOW_BITS + MMIO_SPTE_GEN_HIGH_BITS)) - 1
SHADOW_NONPRESENT_OR_RSVD_MASK_LEN = 5
# kvm_mmu_reset_all_pte_masks: GENMASK_ULL(shadow_phys_bits - 1, PAGE_SHIFT), 46-bit host.
SHADOW_NONPRESENT_OR_RSVD_LOWER_GFN_MASK = ((1 << 46) - 1) & ~0xfff

VMX_EPT_READABLE_MASK = 0x1
VMX_EPT_WRITABLE_MASK = 0x2
VMX_EPT_EXECUTABLE_MASK = 0x4
VMX_EPT_RWX_MASK = VMX_EPT_READABLE_MASK | VMX_EPT_WRITABLE_MASK | VMX_EPT_EXECUTABLE_MASK
VMX_EPT_ACCESS_BIT = 1 << 8
VMX_EPT_DIRTY_BIT = 1 << 9
VMX_EPT_MISCONFIG_WX_VALUE = VMX_EPT_WRITABLE_MASK | VMX_EPT_EXECUTABLE_MASK

LEGACY_MMIO_VALUE = (1 << 51) | PT_PRESENT_MASK   # reserved bit 51 + P (MAXPHYADDR < 52)


@dataclass(frozen=True)
class SpteMasks:
    """The SPTE mask globals of spte.c for one encoding mode.

    Abstractions: memory-type bits (``shadow_memtype_mask``) and the
    memory-encryption bit (``shadow_me_value``) are 0 in every mode: they are
    constant per gfn, no modelled predicate reads them, and leaving them out
    keeps the vendor ``get_mt_mask`` hook out of the model.  The L1TF mask
    ``shadow_nonpresent_or_rsvd_mask`` is 0 (a CPU without the bug).
    """

    mode: str
    accessed: int
    dirty: int
    host_writable: int
    mmu_writable: int
    acc_track: int
    present: int
    x: int
    nx: int
    user: int
    mmio_mask: int
    mmio_value: int
    mmio_access: int
    ad_disabled_by_default: bool

    def as_globals(self) -> dict:
        """Kernel global name -> value, copied onto the VM by ``VM.__init__``."""
        return {
            "shadow_accessed_mask": self.accessed,
            "shadow_dirty_mask": self.dirty,
            "shadow_host_writable_mask": self.host_writable,
            "shadow_mmu_writable_mask": self.mmu_writable,
            "shadow_acc_track_mask": self.acc_track,
            "shadow_present_mask": self.present,
            "shadow_x_mask": self.x,
            "shadow_nx_mask": self.nx,
            "shadow_user_mask": self.user,
            "shadow_mmio_mask": self.mmio_mask,
            "shadow_mmio_value": self.mmio_value,
            "shadow_mmio_access_mask": self.mmio_access,
            "shadow_memtype_mask": 0,
            "shadow_me_value": 0,
            "shadow_me_mask": 0,
            "shadow_nonpresent_or_rsvd_mask": 0,
            "shadow_nonpresent_or_rsvd_lower_gfn_mask": SHADOW_NONPRESENT_OR_RSVD_LOWER_GFN_MASK,
            "enable_mmio_caching": self.mmio_value != 0,
            "ad_disabled_by_default": self.ad_disabled_by_default,
            # kvm_x86_ops.cpu_dirty_log_size: 0 = no PML (tests may set it).
            "cpu_dirty_log_size": 0,
            # the nx_huge_pages module parameter (is_nx_huge_page_enabled).
            "nx_huge_pages": False,
            # kvm_vcpu_memslots(vcpu)->generation, for MMIO SPTEs.
            "memslots_generation": 0,
        }

    def describe(self) -> dict:
        return asdict(self)


MODES: dict[str, SpteMasks] = {
    # kvm_mmu_reset_all_pte_masks (KERNEL-FACTS 1.1; kvm-x86 771df9ffadb8).
    "legacy": SpteMasks(
        mode="legacy", accessed=PT_ACCESSED_MASK, dirty=PT_DIRTY_MASK,
        host_writable=DEFAULT_SPTE_HOST_WRITABLE, mmu_writable=DEFAULT_SPTE_MMU_WRITABLE,
        acc_track=0, present=PT_PRESENT_MASK, x=0, nx=PT64_NX_MASK, user=PT_USER_MASK,
        mmio_mask=LEGACY_MMIO_VALUE, mmio_value=LEGACY_MMIO_VALUE,
        mmio_access=ACC_WRITE_MASK | ACC_USER_MASK, ad_disabled_by_default=False),
    # kvm_mmu_set_ept_masks(has_ad_bits=true, has_exec_only=false), base form.
    "ept_ad": SpteMasks(
        mode="ept_ad", accessed=VMX_EPT_ACCESS_BIT, dirty=VMX_EPT_DIRTY_BIT,
        host_writable=EPT_SPTE_HOST_WRITABLE, mmu_writable=EPT_SPTE_MMU_WRITABLE,
        acc_track=VMX_EPT_RWX_MASK, present=VMX_EPT_READABLE_MASK,
        x=VMX_EPT_EXECUTABLE_MASK, nx=0, user=VMX_EPT_READABLE_MASK,
        mmio_mask=VMX_EPT_RWX_MASK, mmio_value=VMX_EPT_MISCONFIG_WX_VALUE,
        mmio_access=0, ad_disabled_by_default=False),
    # kvm_mmu_set_ept_masks(has_ad_bits=false, has_exec_only=false).
    "ept_noad": SpteMasks(
        mode="ept_noad", accessed=0, dirty=0,
        host_writable=EPT_SPTE_HOST_WRITABLE, mmu_writable=EPT_SPTE_MMU_WRITABLE,
        acc_track=VMX_EPT_RWX_MASK, present=VMX_EPT_READABLE_MASK,
        x=VMX_EPT_EXECUTABLE_MASK, nx=0, user=VMX_EPT_READABLE_MASK,
        mmio_mask=VMX_EPT_RWX_MASK, mmio_value=VMX_EPT_MISCONFIG_WX_VALUE,
        mmio_access=0, ad_disabled_by_default=True),
}


# ---------------------------------------------------------------------------
# spte.h predicates (spte.h is not changed by the series: blobs=ALL)
# ---------------------------------------------------------------------------

def is_removed_spte(kvm, spte: int) -> bool:
    """spte.h is_removed_spte: equality with REMOVED_SPTE (0x5a0 at base).

    All blobs. Confirmed [H13 as is_frozen_spte, 0x5a0 in H-old].
    """
    return spte == REMOVED_SPTE


def is_mmio_spte(kvm, spte: int) -> bool:
    """spte.h is_mmio_spte (base form: no kvm argument, reads enable_mmio_caching).

    All blobs. Confirmed [MMIO: base form until the TDX per-VM change].
    """
    return (spte & kvm.shadow_mmio_mask) == kvm.shadow_mmio_value and kvm.enable_mmio_caching


def is_shadow_present_pte(kvm, pte: int) -> bool:
    """spte.h is_shadow_present_pte: bit 11 only.

    All blobs. Confirmed [H13, H-old].
    """
    return bool(pte & SPTE_MMU_PRESENT_MASK)


def kvm_ad_enabled(kvm) -> bool:
    """spte.h kvm_ad_enabled (a function at base): A/D bits used for non-nested MMUs.

    All blobs. Confirmed [AD: a function from before the base; a variable by H13].
    """
    return bool(kvm.shadow_accessed_mask)


def sp_ad_disabled(kvm, sp) -> bool:
    """spte.h sp_ad_disabled: the page's role says A/D bits are off.

    All blobs. Confirmed [H13, H-old].
    """
    return bool(sp.role.ad_disabled)


def spte_ad_enabled(kvm, spte: int) -> bool:
    """spte.h spte_ad_enabled; the presence check is KVM_MMU_WARN_ON (PROVE_MMU only).

    All blobs. Confirmed [H13].
    """
    kvm.KVM_MMU_WARN_ON(not kvm.is_shadow_present_pte(spte), "spte_ad_enabled: SPTE not present")
    return (spte & SPTE_TDP_AD_MASK) != SPTE_TDP_AD_DISABLED


def spte_ad_need_write_protect(kvm, spte: int) -> bool:
    """spte.h spte_ad_need_write_protect: A/D type is anything but "enabled".

    All blobs. Confirmed [H13].
    """
    kvm.KVM_MMU_WARN_ON(not kvm.is_shadow_present_pte(spte),
                        "spte_ad_need_write_protect: SPTE not present")
    return (spte & SPTE_TDP_AD_MASK) != SPTE_TDP_AD_ENABLED


def spte_shadow_accessed_mask(kvm, spte: int) -> int:
    """spte.h spte_shadow_accessed_mask: the global A mask, or 0 for A/D-disabled SPTEs.

    All blobs. Confirmed [H-old]; gone by v6.13.
    """
    kvm.KVM_MMU_WARN_ON(not kvm.is_shadow_present_pte(spte),
                        "spte_shadow_accessed_mask: SPTE not present")
    return kvm.shadow_accessed_mask if kvm.spte_ad_enabled(spte) else 0


def spte_shadow_dirty_mask(kvm, spte: int) -> int:
    """spte.h spte_shadow_dirty_mask: the global D mask, or 0 for A/D-disabled SPTEs.

    All blobs. Confirmed [H-old]; gone by v6.13.
    """
    kvm.KVM_MMU_WARN_ON(not kvm.is_shadow_present_pte(spte),
                        "spte_shadow_dirty_mask: SPTE not present")
    return kvm.shadow_dirty_mask if kvm.spte_ad_enabled(spte) else 0


def is_access_track_spte(kvm, spte: int) -> bool:
    """spte.h is_access_track_spte: A/D disabled and every access-track bit clear.

    All blobs. Confirmed [H13, H-old].
    """
    return not kvm.spte_ad_enabled(spte) and (spte & kvm.shadow_acc_track_mask) == 0


def is_large_pte(kvm, pte: int) -> bool:
    """spte.h is_large_pte: bit 7.

    All blobs. Confirmed [H13].
    """
    return bool(pte & PT_PAGE_SIZE_MASK)


def is_last_spte(kvm, pte: int, level: int) -> bool:
    """spte.h is_last_spte: 4K level or bit 7; presence is not checked.

    All blobs. Confirmed [H13].
    """
    return level == PG_LEVEL_4K or kvm.is_large_pte(pte)


def is_executable_pte(kvm, spte: int) -> bool:
    """spte.h is_executable_pte: X set (EPT) or NX clear (legacy).

    All blobs. Confirmed [H13].
    """
    return (spte & (kvm.shadow_x_mask | kvm.shadow_nx_mask)) == kvm.shadow_x_mask


def spte_to_pfn(kvm, pte: int) -> int:
    """spte.h spte_to_pfn: bits 12..51 (0 and REMOVED_SPTE give pfn 0).

    All blobs. Confirmed [H13].
    """
    return (pte & SPTE_BASE_ADDR_MASK) >> PAGE_SHIFT


def is_accessed_spte(kvm, spte: int) -> bool:
    """spte.h is_accessed_spte (base form): A bit, or "not access-tracked" without A/D.

    All blobs. Confirmed [H-old]; simplified after the base (H13).
    """
    accessed_mask = kvm.spte_shadow_accessed_mask(spte)
    return bool(spte & accessed_mask) if accessed_mask else not kvm.is_access_track_spte(spte)


def is_dirty_spte(kvm, spte: int) -> bool:
    """spte.h is_dirty_spte (base form): D bit, or the W bit without A/D.

    All blobs. Confirmed [H-old].
    """
    dirty_mask = kvm.spte_shadow_dirty_mask(spte)
    return bool(spte & dirty_mask) if dirty_mask else bool(spte & PT_WRITABLE_MASK)


def get_rsvd_bits(kvm, rsvd_check, pte: int, level: int) -> int:
    """spte.h get_rsvd_bits.  Abstraction: the reserved-bit tables are all zero.

    The model does not build ``shadow_zero_check``; every SPTE the models
    make uses only bits the kernel's tables allow, so "no reserved bits" is
    the tables' answer for them.  The make_spte reserved-bit WARN therefore
    never fires here.
    """
    return 0


def __is_rsvd_bits_set(kvm, rsvd_check, pte: int, level: int) -> bool:  # noqa: N807
    """spte.h __is_rsvd_bits_set.

    All blobs. Confirmed [H13].
    """
    return bool(pte & kvm.get_rsvd_bits(rsvd_check, pte, level))


def __is_bad_mt_xwr(kvm, rsvd_check, pte: int) -> bool:  # noqa: N807
    """spte.h __is_bad_mt_xwr; ``bad_mt_xwr`` modelled as 0 (see get_rsvd_bits).

    All blobs. Confirmed [H13].
    """
    return False


def is_rsvd_spte(kvm, rsvd_check, spte: int, level: int) -> bool:
    """spte.h is_rsvd_spte.

    All blobs. Confirmed [H13].
    """
    return kvm.__is_bad_mt_xwr(rsvd_check, spte) or kvm.__is_rsvd_bits_set(rsvd_check, spte, level)


def is_writable_pte(kvm, pte: int) -> bool:
    """spte.h is_writable_pte: bit 1; presence is not checked.

    All blobs. Confirmed [H13].
    """
    return bool(pte & PT_WRITABLE_MASK)


def check_spte_writable_invariants(kvm, spte: int) -> None:
    """spte.h check_spte_writable_invariants: MMU-writable needs host-writable; W needs MMU-writable.

    All blobs. Confirmed [H13].
    """
    if spte & kvm.shadow_mmu_writable_mask:
        kvm.WARN_ONCE(not (spte & kvm.shadow_host_writable_mask),
                      f"MMU-writable SPTE is not Host-writable: {spte:#x}")
    else:
        kvm.WARN_ONCE(kvm.is_writable_pte(spte), f"Writable SPTE is not MMU-writable: {spte:#x}")


def is_mmu_writable_spte(kvm, spte: int) -> bool:
    """spte.h is_mmu_writable_spte.

    All blobs. Confirmed [H13].
    """
    return bool(spte & kvm.shadow_mmu_writable_mask)


def get_mmio_spte_generation(kvm, spte: int) -> int:
    """spte.h get_mmio_spte_generation: generation bits 3-10 and 52-62.

    All blobs. Confirmed [H13].
    """
    gen = (spte & MMIO_SPTE_GEN_LOW_MASK) >> MMIO_SPTE_GEN_LOW_SHIFT
    gen |= (spte & MMIO_SPTE_GEN_HIGH_MASK) >> MMIO_SPTE_GEN_HIGH_SHIFT
    return gen


def restore_acc_track_spte(kvm, spte: int) -> int:
    """spte.h restore_acc_track_spte (inline at base, no WARNs): R/X back, W not.

    All blobs. Confirmed [H13; moved to spte.h in 2022 per its patch].
    """
    saved_bits = (spte >> SHADOW_ACC_TRACK_SAVED_BITS_SHIFT) & SHADOW_ACC_TRACK_SAVED_BITS_MASK
    spte &= ~kvm.shadow_acc_track_mask
    spte &= ~(SHADOW_ACC_TRACK_SAVED_BITS_MASK << SHADOW_ACC_TRACK_SAVED_BITS_SHIFT)
    spte |= saved_bits
    return spte


def kvm_mmu_page_ad_need_write_protect(kvm, sp) -> bool:
    """mmu_internal.h kvm_mmu_page_ad_need_write_protect: PML on and a nested page.

    Not re-read in source (KERNEL-FACTS 1.2); ``cpu_dirty_log_size`` is the
    vendor op's value, a VM attribute (0 unless a test turns PML on).
    """
    return bool(kvm.cpu_dirty_log_size) and bool(sp.role.guest_mode)


def is_nx_huge_page_enabled(kvm) -> bool:
    """mmu_internal.h is_nx_huge_page_enabled: the nx_huge_pages parameter.

    The per-VM ``disable_nx_huge_pages`` override is not modelled.  Not
    re-read in source.
    """
    return bool(kvm.nx_huge_pages)


# ---------------------------------------------------------------------------
# spte.c, bodies the series does not touch (blobs=ALL)
# ---------------------------------------------------------------------------

def generation_mmio_spte_mask(kvm, gen: int) -> int:
    """spte.c generation_mmio_spte_mask (all blobs).

    All blobs. Confirmed [C11; base WARN_ON_ONCE per P-4a59].
    """
    kvm.WARN_ON_ONCE(gen & ~MMIO_SPTE_GEN_MASK, "generation_mmio_spte_mask: generation too wide")
    mask = (gen << MMIO_SPTE_GEN_LOW_SHIFT) & MMIO_SPTE_GEN_LOW_MASK
    mask |= (gen << MMIO_SPTE_GEN_HIGH_SHIFT) & MMIO_SPTE_GEN_HIGH_MASK
    return mask


def make_mmio_spte(kvm, vcpu, gfn: int, access: int) -> int:
    """spte.c make_mmio_spte (all blobs; base form reads the global shadow_mmio_value).

    ``kvm_vcpu_memslots(vcpu)->generation`` is the VM attribute
    ``memslots_generation``.
    """
    gen = vcpu.kvm.memslots_generation & MMIO_SPTE_GEN_MASK
    spte = kvm.generation_mmio_spte_mask(gen)
    gpa = gfn << PAGE_SHIFT
    kvm.WARN_ON_ONCE(not kvm.shadow_mmio_value, "make_mmio_spte: MMIO caching is off")
    access &= kvm.shadow_mmio_access_mask
    spte |= kvm.shadow_mmio_value | access
    spte |= gpa | kvm.shadow_nonpresent_or_rsvd_mask
    spte |= (gpa & kvm.shadow_nonpresent_or_rsvd_mask) << SHADOW_NONPRESENT_OR_RSVD_MASK_LEN
    return spte


def spte_has_volatile_bits(kvm, spte: int) -> bool:
    """spte.c spte_has_volatile_bits (all blobs): bits that may change outside mmu_lock.

    The caller must already know the SPTE is present.  Read in kvm-x86
    771df9ffadb8; the base form is the same per KERNEL-FACTS 1.2.
    """
    if not kvm.is_writable_pte(spte) and kvm.is_mmu_writable_spte(spte):
        return True
    if kvm.is_access_track_spte(spte):
        return True
    if kvm.spte_ad_enabled(spte):
        if not (spte & kvm.shadow_accessed_mask) or (
                kvm.is_writable_pte(spte) and not (spte & kvm.shadow_dirty_mask)):
            return True
    return False


def make_spte_executable(kvm, spte: int) -> int:
    """spte.c make_spte_executable (static; all blobs): set X through access tracking.

    All blobs. Confirmed [C11].
    """
    is_access_track = kvm.is_access_track_spte(spte)
    if is_access_track:
        spte = kvm.restore_acc_track_spte(spte)
    spte &= ~kvm.shadow_nx_mask
    spte |= kvm.shadow_x_mask
    if is_access_track:
        spte = kvm.mark_spte_for_access_track(spte)
    return spte


def make_huge_page_split_spte(kvm, huge_spte: int, role, index: int) -> int:
    """spte.c make_huge_page_split_spte (all blobs): the child SPTE at ``index``.

    ``role`` is a ``kvm_mmu_page_role`` of the child table.  Read in kvm-x86
    771df9ffadb8 (same signature there); base form not read separately.
    """
    if kvm.WARN_ON_ONCE(not kvm.is_shadow_present_pte(huge_spte), "split: huge SPTE not present"):
        return 0
    if kvm.WARN_ON_ONCE(not kvm.is_large_pte(huge_spte), "split: SPTE not huge"):
        return 0
    child_spte = huge_spte
    child_spte |= (index * KVM_PAGES_PER_HPAGE(role.level)) << PAGE_SHIFT
    if role.level == PG_LEVEL_4K:
        child_spte &= ~PT_PAGE_SIZE_MASK
        if (role.access & ACC_EXEC_MASK) and kvm.is_nx_huge_page_enabled():
            child_spte = kvm.make_spte_executable(child_spte)
    return child_spte


def make_nonleaf_spte(kvm, child_pt, ad_disabled: bool) -> int:
    """spte.c make_nonleaf_spte (all blobs).  ``child_pt`` is the child ``kvm_mmu_page``.

    Non-leaf SPTEs are always W (and X on EPT): the permission is checked at
    the leaf.

    All blobs. Confirmed [C11].
    """
    spte = SPTE_MMU_PRESENT_MASK
    spte |= ((child_pt.pfn << PAGE_SHIFT) | kvm.shadow_present_mask | PT_WRITABLE_MASK
             | kvm.shadow_user_mask | kvm.shadow_x_mask | kvm.shadow_me_value)
    if ad_disabled:
        spte |= SPTE_TDP_AD_DISABLED
    else:
        spte |= kvm.shadow_accessed_mask
    return spte


def kvm_mmu_changed_pte_notifier_make_spte(kvm, old_spte: int, new_pfn: int) -> int:
    """spte.c kvm_mmu_changed_pte_notifier_make_spte (all blobs; removed in v6.10).

    New pfn, read-only for good (W, host- and MMU-writable cleared), then
    aged.  Read in the removal patch context (index id 46244852148).
    """
    new_spte = old_spte & ~SPTE_BASE_ADDR_MASK
    new_spte |= new_pfn << PAGE_SHIFT
    new_spte &= ~PT_WRITABLE_MASK
    new_spte &= ~kvm.shadow_host_writable_mask
    new_spte &= ~kvm.shadow_mmu_writable_mask
    new_spte = kvm.mark_spte_for_access_track(new_spte)
    return new_spte


def mark_spte_for_access_track(kvm, spte: int) -> int:
    """spte.c mark_spte_for_access_track (all blobs).

    A/D SPTEs just lose A.  Others save R/X in bits 54/56 and lose RWX
    (W too: it comes back only through a write fault); host- and
    MMU-writable stay.

    All blobs. Confirmed [C11].
    """
    if kvm.spte_ad_enabled(spte):
        return spte & ~kvm.shadow_accessed_mask
    if kvm.is_access_track_spte(spte):
        return spte
    kvm.check_spte_writable_invariants(spte)
    kvm.WARN_ONCE(spte & (SHADOW_ACC_TRACK_SAVED_BITS_MASK << SHADOW_ACC_TRACK_SAVED_BITS_SHIFT),
                  "Access Tracking saved bit locations are not zero")
    spte |= (spte & SHADOW_ACC_TRACK_SAVED_BITS_MASK) << SHADOW_ACC_TRACK_SAVED_BITS_SHIFT
    spte &= ~kvm.shadow_acc_track_mask
    return spte


# ---------------------------------------------------------------------------
# spte.c make_spte: one body per blob
# ---------------------------------------------------------------------------
# The three versions differ in two statements only: the test that skips the
# "try unsync" path (1/4) and what happens when the write mask is kept (2/4).
# The shared body takes those two statements as small functions; each
# registered version names its own pair, so a reader sees the difference in
# the three short functions below the body.

def skip_unsync_if_old_writable(kvm, old_spte: int, level: int) -> bool:
    """make_spte's skip test at base 4a599130e9c9: the old SPTE has W set."""
    return kvm.is_writable_pte(old_spte)


def skip_unsync_if_old_writable_leaf(kvm, old_spte: int, level: int) -> bool:
    """make_spte's skip test after RFC 1/4 (b4c1119cc48b on): old is a W leaf.

    Non-leaf SPTEs always have W set, so the base test skipped the unsync
    path when the TDP MMU replaced a page table by a leaf.
    """
    return kvm.is_last_spte(old_spte, level) and kvm.is_writable_pte(old_spte)


def keep_write_dirty_mask_only(kvm, spte: int, pfn: int) -> int:
    """make_spte when the write mask is kept, base and 1/4: OR in the dirty mask."""
    spte |= kvm.spte_shadow_dirty_mask(spte)
    return spte


def keep_write_dirty_mask_and_folio(kvm, spte: int, pfn: int) -> int:
    """make_spte when the write mask is kept, after RFC 2/4 (490966bc893c): also mark the folio dirty."""
    spte |= kvm.spte_shadow_dirty_mask(spte)
    kvm.kvm_set_pfn_dirty(pfn)
    return spte


def _make_spte_body(kvm, skip_unsync, keep_write, vcpu, sp, slot, pte_access: int, gfn: int,
                    pfn: int, old_spte: int, prefetch: bool, can_unsync: bool,
                    host_writable: bool) -> tuple[bool, int]:
    """The statements of spte.c make_spte shared by all three blobs, in C order.

    Confirmed [C11] for the body; base-era details from [P-4a59] (vendor
    memtype hook, WARN_ON_ONCE on the dirty-log level check).  The first
    WARN's base form (no access bits and no present mask) is KERNEL-FACTS
    2.3, not read: C11 already has the later SHADOW_NONPRESENT_VALUE form.
    """
    level = sp.role.level
    spte = SPTE_MMU_PRESENT_MASK
    wrprot = False
    kvm.WARN_ON_ONCE(not pte_access and not kvm.shadow_present_mask, "make_spte: no access bits")
    if sp.role.ad_disabled:
        spte |= SPTE_TDP_AD_DISABLED
    elif kvm.kvm_mmu_page_ad_need_write_protect(sp):
        spte |= SPTE_TDP_AD_WRPROT_ONLY
    spte |= kvm.shadow_present_mask
    if not prefetch:
        spte |= kvm.spte_shadow_accessed_mask(spte)
    if level > PG_LEVEL_4K and (pte_access & ACC_EXEC_MASK) and vcpu.kvm.is_nx_huge_page_enabled():
        pte_access &= ~ACC_EXEC_MASK
    if pte_access & ACC_EXEC_MASK:
        spte |= kvm.shadow_x_mask
    else:
        spte |= kvm.shadow_nx_mask
    if pte_access & ACC_USER_MASK:
        spte |= kvm.shadow_user_mask
    if level > PG_LEVEL_4K:
        spte |= PT_PAGE_SIZE_MASK
    if kvm.shadow_memtype_mask:
        # Dead in the model (mask is 0 in every mode); the vendor hook is not modelled.
        spte |= kvm.kvm_x86_get_mt_mask(vcpu, gfn, kvm.kvm_is_mmio_pfn(pfn))
    if host_writable:
        spte |= kvm.shadow_host_writable_mask
    else:
        pte_access &= ~ACC_WRITE_MASK
    if kvm.shadow_me_value and not kvm.kvm_is_mmio_pfn(pfn):
        spte |= kvm.shadow_me_value           # dead in the model: shadow_me_value is 0
    spte |= pfn << PAGE_SHIFT
    if pte_access & ACC_WRITE_MASK:
        spte |= PT_WRITABLE_MASK | kvm.shadow_mmu_writable_mask
        if skip_unsync(kvm, old_spte, level):
            return _make_spte_out(kvm, vcpu, slot, gfn, level, spte, prefetch, wrprot)
        if vcpu.kvm.mmu_try_to_unsync_pages(slot, gfn, can_unsync, prefetch):
            wrprot = True
            pte_access &= ~ACC_WRITE_MASK
            spte &= ~(PT_WRITABLE_MASK | kvm.shadow_mmu_writable_mask)
    if pte_access & ACC_WRITE_MASK:
        spte = keep_write(kvm, spte, pfn)
    return _make_spte_out(kvm, vcpu, slot, gfn, level, spte, prefetch, wrprot)


def _make_spte_out(kvm, vcpu, slot, gfn: int, level: int, spte: int, prefetch: bool,
                   wrprot: bool) -> tuple[bool, int]:
    """The ``out:`` label of make_spte (a goto target in C, shared by both paths)."""
    if prefetch:
        spte = kvm.mark_spte_for_access_track(spte)
    kvm.WARN_ONCE(kvm.is_rsvd_spte(None, spte, level), f"make_spte: reserved bits in {spte:#x}")
    if (spte & PT_WRITABLE_MASK) and kvm.kvm_slot_dirty_track_enabled(slot):
        kvm.WARN_ON_ONCE(level > PG_LEVEL_4K, "make_spte: huge writable SPTE in a dirty-logged slot")
        vcpu.kvm.mark_page_dirty_in_slot(slot, gfn)
    return wrprot, spte


def make_spte(kvm, vcpu, sp, slot, pte_access: int, gfn: int, pfn: int, old_spte: int,
              prefetch: bool, can_unsync: bool, host_writable: bool) -> tuple[bool, int]:
    """spte.c make_spte at base 4a599130e9c9 -> ``(wrprot, new_spte)``.

    Skips the try-unsync path whenever the old SPTE has W set (non-leaf
    SPTEs included).  No folio marking.
    """
    return _make_spte_body(kvm, skip_unsync_if_old_writable, keep_write_dirty_mask_only,
                           vcpu, sp, slot, pte_access, gfn, pfn, old_spte, prefetch,
                           can_unsync, host_writable)


def make_spte_skip_unsync_iff_leaf(kvm, vcpu, sp, slot, pte_access: int, gfn: int, pfn: int,
                                   old_spte: int, prefetch: bool, can_unsync: bool,
                                   host_writable: bool) -> tuple[bool, int]:
    """spte.c make_spte after RFC 1/4, blob b4c1119cc48b -> ``(wrprot, new_spte)``.

    Skips the try-unsync path only when the old SPTE is a writable *leaf*.
    Read in rfc-1-of-4.patch.
    """
    return _make_spte_body(kvm, skip_unsync_if_old_writable_leaf, keep_write_dirty_mask_only,
                           vcpu, sp, slot, pte_access, gfn, pfn, old_spte, prefetch,
                           can_unsync, host_writable)


def make_spte_mark_folio_dirty(kvm, vcpu, sp, slot, pte_access: int, gfn: int, pfn: int,
                               old_spte: int, prefetch: bool, can_unsync: bool,
                               host_writable: bool) -> tuple[bool, int]:
    """spte.c make_spte after RFC 2/4, blob 490966bc893c -> ``(wrprot, new_spte)``.

    As 1/4, and ``kvm_set_pfn_dirty(pfn)`` whenever the write mask is kept
    (not on the skip path, not when write-protected).  The mark comes
    before access tracking, so prefetched writable SPTEs get it too.  Read
    in rfc-2-of-4.patch.
    """
    return _make_spte_body(kvm, skip_unsync_if_old_writable_leaf, keep_write_dirty_mask_and_folio,
                           vcpu, sp, slot, pte_access, gfn, pfn, old_spte, prefetch,
                           can_unsync, host_writable)


_SPTE_H = (is_removed_spte, is_mmio_spte, is_shadow_present_pte, kvm_ad_enabled, sp_ad_disabled,
           spte_ad_enabled, spte_ad_need_write_protect, spte_shadow_accessed_mask,
           spte_shadow_dirty_mask, is_access_track_spte, is_large_pte, is_last_spte,
           is_executable_pte, spte_to_pfn, is_accessed_spte, is_dirty_spte, get_rsvd_bits,
           __is_rsvd_bits_set, __is_bad_mt_xwr, is_rsvd_spte, is_writable_pte,
           check_spte_writable_invariants, is_mmu_writable_spte, get_mmio_spte_generation,
           restore_acc_track_spte)
_SPTE_C = (generation_mmio_spte_mask, make_mmio_spte, spte_has_volatile_bits,
           make_spte_executable, make_huge_page_split_spte, make_nonleaf_spte,
           kvm_mmu_changed_pte_notifier_make_spte, mark_spte_for_access_track)
_MMU_INTERNAL_H = (kvm_mmu_page_ad_need_write_protect, is_nx_huge_page_enabled)

MODEL_TABLE = (
    tuple(Version(SPTE_H, f.__name__, f) for f in _SPTE_H)
    + tuple(Version(SPTE_C, f.__name__, f) for f in _SPTE_C)
    + tuple(Version(MMU_INTERNAL_H, f.__name__, f) for f in _MMU_INTERNAL_H)
    + (
        Version(SPTE_C, "make_spte", make_spte, ("4a599130e9c9",)),
        Version(SPTE_C, "make_spte", make_spte_skip_unsync_iff_leaf, ("b4c1119cc48b",)),
        Version(SPTE_C, "make_spte", make_spte_mark_folio_dirty, ("490966bc893c",)),
    )
)
