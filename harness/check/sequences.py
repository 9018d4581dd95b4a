"""Operation sequences kept as explicit examples, run before every random search.

These are the state-machine counterpart of Hypothesis's ``@example``: short,
named kernel flows that every operation-level check runs first, under every
profile, in every encoding mode and MMU where each step applies.  They can
only add findings (a sequence that finds nothing costs a few milliseconds);
they never suppress one.  A sequence is kept here when it stands for a flow
the random search reaches only rarely (a gfn that a shadow page shadows, a
non-accessed SPTE being zapped), so the gate profile, which runs few random
examples, still walks it.  Each entry: (name, [(operation, arguments)...]).

``DIRECTED_STEPS`` are the other half: for every operation, the steps that
drive it over a writable mapping of gfn 0 (``MAP_WRITABLE``).  The engine
runs them for the operations that reach a function the patch changes
(``harness.check.reach.operations_reaching``), in every mode, MMU and PML
setting where they apply, so the gate profile walks each such operation over
a present SPTE at least once however its few random examples fall.  The diff
says where to look; it never says what may change.
"""

from __future__ import annotations

GUEST_TABLE_GFN = 0x3ff     # operations.GUEST_TABLE_GFN: the gfn the indirect shadow page shadows
REGION_START = 1024         # reach_operations.REGION_START: where the drawn slot layout lives

KEPT_SEQUENCES: tuple[tuple[str, tuple[tuple[str, dict], ...]], ...] = (
    ("map writable, then unmap", (
        ("fault", {"gfn": 0, "write": True, "exec": False, "prefetch": False}),
        ("unmap", {"start": 0, "end": 1}))),
    ("map prefetched (not accessed), then unmap", (
        ("fault", {"gfn": 0, "write": False, "exec": False, "prefetch": True}),
        ("unmap", {"start": 0, "end": 1}))),
    ("map writable, age without flush, then unmap", (
        ("fault", {"gfn": 0, "write": True, "exec": False, "prefetch": False}),
        ("clear_young", {"start": 0, "end": 1}),
        ("unmap", {"start": 0, "end": 1}))),
    ("map writable, age with flush, write again, zap all", (
        ("fault", {"gfn": 0, "write": True, "exec": False, "prefetch": False}),
        ("clear_flush_young", {"start": 0, "end": 1}),
        ("fault", {"gfn": 0, "write": True, "exec": False, "prefetch": False}),
        ("zap_all", {}))),
    ("map the guest page table writable, then shadow it (write-protect)", (
        ("fault", {"gfn": GUEST_TABLE_GFN, "write": True, "exec": False, "prefetch": False}),
        ("shadow_prefetch", {"index": 0, "gfn": 0, "writable": True, "dirty": True,
                             "accessed": True}))),
    ("prefetch a writable guest PTE, then unmap it", (
        ("shadow_prefetch", {"index": 1, "gfn": 0, "writable": True, "dirty": True,
                             "accessed": False}),
        ("unmap", {"start": 0, "end": 1024}))),
    ("dirty logging cycle: enable, write, clear, unmap", (
        ("fault", {"gfn": 0, "write": True, "exec": False, "prefetch": False}),
        ("dirty_log_enable", {}),
        ("fault", {"gfn": 0, "write": True, "exec": False, "prefetch": False}),
        ("dirty_log_clear", {"gfn": 0, "mask": 1}),
        ("unmap", {"start": 0, "end": 1}))),
    ("split a huge mapping, then unmap", (
        ("fault", {"gfn": 0, "write": True, "exec": False, "prefetch": False}),
        ("split_huge", {"gfn": 0}),
        ("unmap", {"start": 0, "end": 512}))),
    ("split, unmap one 4K page, fault back a huge page over the table", (
        ("fault", {"gfn": 0, "write": True, "exec": False, "prefetch": False}),
        ("split_huge", {"gfn": 0}),
        ("unmap", {"start": 0, "end": 1}),
        ("fault", {"gfn": 0, "write": True, "exec": False, "prefetch": False}),
        ("unmap", {"start": 0, "end": 512}))),
    ("async page fault completing over a present SPTE", (
        ("async_pf_ready", {"gfn": 0}),
        ("fault", {"gfn": 0, "write": False, "exec": False, "prefetch": False}),
        ("async_pf_ready", {"gfn": 0}))),
    ("sync an unsync shadow page", (
        ("shadow_prefetch", {"index": 2, "gfn": 2, "writable": True, "dirty": True,
                             "accessed": True}),
        ("shadow_sync", {"index": 2, "gfn": 2, "writable": False, "dirty": False,
                         "accessed": True}),
        ("unmap", {"start": 0, "end": 1024}))),
    # Memslot layouts and MMIO (kernel_models/reach_operations.py): a gap's MMIO SPTE
    # goes stale when a slot appears over it.  (Moves and deletes are left to the
    # search: each runs kvm_mmu_zap_all_fast twice, too slow for every gate run.)
    ("MMIO in a gap, a slot appears there, access again", (
        ("slot_access", {"gfn": REGION_START + 6, "write": False}),
        ("memslot_create", {"base_gfn": REGION_START, "npages": 16}),
        ("slot_access", {"gfn": REGION_START + 6, "write": True}))),
    # Write tracking: shadowed guest tables at other gfns and levels, unsync and sync,
    # an external tracker; each over a mapping that was writable.
    ("shadow a table above 4K over a writable mapping, write to it", (
        ("fault", {"gfn": 5, "write": True, "exec": False, "prefetch": False}),
        ("shadow_page", {"gfn": 5, "level": 2}),
        ("fault", {"gfn": 5, "write": True, "exec": False, "prefetch": False}),
        ("unprotect", {"gfn": 5}),
        ("fault", {"gfn": 5, "write": True, "exec": False, "prefetch": False}))),
    ("unsync a shadowed 4K table by a write, then sync it", (
        ("shadow_page", {"gfn": 5, "level": 1}),
        ("fault", {"gfn": 5, "write": True, "exec": False, "prefetch": False}),
        ("sync_shadow", {"gfn": 5}),
        ("guest_access", {"gfn": 5, "write": True}))),
    ("external write tracking over a writable huge mapping", (
        ("fault", {"gfn": 0, "write": True, "exec": False, "prefetch": False}),
        ("external_write_track", {"gfn": 7, "add": True}),
        ("fault", {"gfn": 7, "write": True, "exec": False, "prefetch": False}),
        ("external_write_track", {"gfn": 7, "add": False}))),
)


MAP_WRITABLE = ("fault", {"gfn": 0, "write": True, "exec": False, "prefetch": False})
WHOLE_SLOT = {"start": 0, "end": 1024}

# operation -> the steps, after MAP_WRITABLE, that run it over that mapping
DIRECTED_STEPS: dict[str, tuple[tuple[str, dict], ...]] = {
    "fault": (("fault", {"gfn": 1, "write": False, "exec": False, "prefetch": False}),),
    "fast_fault": (("fast_fault", {"gfn": 0, "write": True}),),
    "async_pf_ready": (("async_pf_ready", {"gfn": 0}),),
    "guest_access": (("guest_access", {"gfn": 0, "write": True}),),
    "nested_access": (
        ("shadow_prefetch", {"index": 1, "gfn": 0, "writable": True, "dirty": False,
                             "accessed": True}),
        ("nested_access", {"index": 1, "write": True})),
    "unmap": (("unmap", {"start": 0, "end": 1}),),
    "change_pte": (("change_pte", {"gfn": 0, "writable": True}),),
    "clear_flush_young": (("clear_flush_young", WHOLE_SLOT),),
    "clear_young": (("clear_young", WHOLE_SLOT),),
    "test_young": (("test_young", WHOLE_SLOT),),
    "zap_all": (("zap_all", {}),),
    "memslot_delete": (("memslot_delete", {}),),
    "dirty_log_enable": (("dirty_log_enable", {}),),
    "dirty_log_clear": (
        ("dirty_log_enable", {}),
        MAP_WRITABLE,
        ("dirty_log_clear", {"gfn": 0, "mask": 1})),
    "dirty_log_disable": (
        ("dirty_log_enable", {}),
        MAP_WRITABLE,
        ("dirty_log_disable", {})),
    "split_huge": (("split_huge", {"gfn": 0}),),
    "collapse": (
        ("split_huge", {"gfn": 0}),
        ("collapse", {"gfn": 0})),
    "zap_gfn_range": (("zap_gfn_range", {"start": 0, "end": 1}),),
    "shadow_prefetch": (
        ("shadow_prefetch", {"index": 1, "gfn": 0, "writable": True, "dirty": True,
                             "accessed": False}),),
    "shadow_sync": (
        ("shadow_prefetch", {"index": 2, "gfn": 0, "writable": True, "dirty": True,
                             "accessed": True}),
        ("shadow_sync", {"index": 2, "gfn": 0, "writable": False, "dirty": False,
                         "accessed": True})),
    # memslot layouts, MMIO and write tracking (kernel_models/reach_operations.py)
    "memslot_create": (("memslot_create", {"base_gfn": REGION_START, "npages": 16}),),
    "memslot_remove": (
        ("memslot_create", {"base_gfn": REGION_START, "npages": 16}),
        ("slot_access", {"gfn": REGION_START, "write": True}),
        ("memslot_remove", {"gfn": REGION_START})),
    "memslot_move": (
        ("memslot_create", {"base_gfn": REGION_START, "npages": 16}),
        ("slot_access", {"gfn": REGION_START, "write": True}),
        ("memslot_move", {"gfn": REGION_START, "new_base_gfn": REGION_START + 64})),
    "slot_access": (("slot_access", {"gfn": 0, "write": True}),),
    "shadow_page": (("shadow_page", {"gfn": 0, "level": 1}),),
    "unprotect": (
        ("shadow_page", {"gfn": 0, "level": 2}),
        ("unprotect", {"gfn": 0})),
    "sync_shadow": (
        ("shadow_page", {"gfn": 0, "level": 1}),
        ("fault", {"gfn": 0, "write": True, "exec": False, "prefetch": False}),
        ("sync_shadow", {"gfn": 0})),
    "external_write_track": (("external_write_track", {"gfn": 0, "add": True}),),
}


def directed_sequences(operations) -> tuple[tuple[str, tuple[tuple[str, dict], ...]], ...]:
    """The directed sequence of each of ``operations`` (names), in the given order."""
    return tuple((f"map gfn 0 writable, then {name}", (MAP_WRITABLE,) + DIRECTED_STEPS[name])
                 for name in operations)
