"""arch/x86/kvm/mmu/page_track.c: per-gfn write tracking.

Read in v6.9 page_track.c (blob f6448284c18e; the RFC series does not touch
the file).  page_track.c has no blob chain in the registry, so its rows use
the unchanged mmu_internal.h pseudo-file, as ``kvm_gfn_is_write_tracked``
did before this module existed.

State: ``slot.gfn_write_track`` (slot->arch.gfn_write_track) counts, per gfn
of the slot, the trackers of that gfn: shadow pages above 4K
(account_shadowed) and external users (KVMGT through
kvm_write_track_add_gfn).  ``kvm.external_write_tracking_enabled`` stands for
kvm->arch.external_write_tracking_enabled (CONFIG_KVM_EXTERNAL_WRITE_TRACKING
is taken as on); ``kvm.shadow_root_allocated`` for
kvm->arch.shadow_root_allocated.

Abstractions: the arrays always exist (the allocation of
kvm_page_track_write_tracking_alloc cannot fail and is not modelled), so
enabling external tracking is setting the flag; no track notifiers
(kvm_page_track_write, the emulator's write path) are modelled; the
lpage disallow count is derived from the tracked gfns by
``mmu_slot.kvm_lpage_disallowed``.
"""

from __future__ import annotations

from kernel_models.kvm_main import PG_LEVEL_4K
from kernel_models.registry import MMU_INTERNAL_H, Version

USHRT_MAX = 0xFFFF
EINVAL = 22


def kvm_external_write_tracking_enabled(kvm) -> bool:
    """page_track.c kvm_external_write_tracking_enabled (f6448284c18e)."""
    return getattr(kvm, "external_write_tracking_enabled", False)


def kvm_page_track_write_tracking_enabled(kvm) -> bool:
    """page_track.c kvm_page_track_write_tracking_enabled (f6448284c18e)."""
    return (kvm.kvm_external_write_tracking_enabled()
            or getattr(kvm, "shadow_root_allocated", False) or not kvm.tdp_enabled)


def update_gfn_write_track(kvm, slot, gfn: int, count: int) -> None:
    """page_track.c update_gfn_write_track (f6448284c18e): the index is gfn - base_gfn."""
    index = gfn - slot.base_gfn
    val = slot.gfn_write_track.get(index, 0)
    if kvm.WARN_ON_ONCE(val + count < 0 or val + count > USHRT_MAX,
                        "update_gfn_write_track: count out of range"):
        return
    slot.gfn_write_track[index] = val + count


def __kvm_write_track_add_gfn(kvm, slot, gfn: int) -> None:
    """page_track.c __kvm_write_track_add_gfn (f6448284c18e): count the tracker, then
    write-protect every SPTE of the gfn at every level and flush all TLBs."""
    if kvm.KVM_BUG_ON_DATA_CORRUPTION(not kvm.kvm_page_track_write_tracking_enabled(),
                                      "__kvm_write_track_add_gfn: write tracking disabled"):
        return
    kvm.update_gfn_write_track(slot, gfn, 1)
    # kvm_mmu_gfn_disallow_lpage: derived from the count (mmu_slot.kvm_lpage_disallowed).
    if kvm.kvm_mmu_slot_gfn_write_protect(slot, gfn, PG_LEVEL_4K):
        kvm.kvm_flush_remote_tlbs()


def __kvm_write_track_remove_gfn(kvm, slot, gfn: int) -> None:
    """page_track.c __kvm_write_track_remove_gfn (f6448284c18e)."""
    if kvm.KVM_BUG_ON_DATA_CORRUPTION(not kvm.kvm_page_track_write_tracking_enabled(),
                                      "__kvm_write_track_remove_gfn: write tracking disabled"):
        return
    kvm.update_gfn_write_track(slot, gfn, -1)
    # kvm_mmu_gfn_allow_lpage: derived from the count.


def kvm_gfn_is_write_tracked(kvm, slot, gfn: int) -> bool:
    """page_track.c kvm_gfn_is_write_tracked (f6448284c18e)."""
    if slot is None:
        return False
    if not kvm.kvm_page_track_write_tracking_enabled():
        return False
    index = gfn - slot.base_gfn
    return bool(slot.gfn_write_track.get(index, 0))


def kvm_enable_external_write_tracking(kvm) -> int:
    """page_track.c kvm_enable_external_write_tracking (f6448284c18e), reduced: the
    per-slot arrays always exist, so only the flag is set."""
    if kvm.kvm_page_track_write_tracking_enabled():
        kvm.external_write_tracking_enabled = True      # out_success
        return 0
    kvm.external_write_tracking_enabled = True
    return 0


def kvm_page_track_register_notifier(kvm, n=None) -> int:
    """page_track.c kvm_page_track_register_notifier (f6448284c18e); the notifier list
    is not modelled."""
    if not kvm.kvm_external_write_tracking_enabled():
        r = kvm.kvm_enable_external_write_tracking()
        if r:
            return r
    return 0


def kvm_write_track_add_gfn(kvm, gfn: int) -> int:
    """page_track.c kvm_write_track_add_gfn (f6448284c18e): the exported API (KVMGT)."""
    slot = kvm.gfn_to_memslot(gfn)
    if slot is None:
        return -EINVAL
    kvm.__kvm_write_track_add_gfn(slot, gfn)
    return 0


def kvm_write_track_remove_gfn(kvm, gfn: int) -> int:
    """page_track.c kvm_write_track_remove_gfn (f6448284c18e)."""
    slot = kvm.gfn_to_memslot(gfn)
    if slot is None:
        return -EINVAL
    kvm.__kvm_write_track_remove_gfn(slot, gfn)
    return 0


_ROWS = (kvm_external_write_tracking_enabled, kvm_page_track_write_tracking_enabled,
         update_gfn_write_track, __kvm_write_track_add_gfn, __kvm_write_track_remove_gfn,
         kvm_gfn_is_write_tracked, kvm_enable_external_write_tracking,
         kvm_page_track_register_notifier, kvm_write_track_add_gfn, kvm_write_track_remove_gfn)

MODEL_TABLE = tuple(Version(MMU_INTERNAL_H, f.__name__, f) for f in _ROWS)
