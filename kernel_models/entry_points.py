"""How each operation calls the kernel at each release: a small versioned table.

The operation mix (``kernel_models.operations``) calls the MMU's entry points
by the names and argument lists of the hand-written models (the March 2024
tree that became v6.9).  A translated tree state of another release has the
kernel's own names and argument lists, which change over time; ``call`` maps
one to the other through ``CALLS``, one row per (step, range of releases),
each citing the file and function it was read from in the assembled tree of
``../shared/kernel-trees`` (tags v6.1.15 v6.6 v6.9 v6.12 v6.13.2 v6.18.2
v6.19 v7.1.5).  A release range ends at the first tag that lacks the
function: the change happened between that tag and the one before.

A step a release does not have (``kvm_set_spte_gfn``: the change_pte
notifier went away in v6.10) makes the operations that need it
``skipped`` for that state, and the report lists them.

Only calls an operation makes into the MMU files are here; the generic
helpers the operations use (``kvm_flush_remote_tlbs``,
``kvm_flush_remote_tlbs_memslot``, ``kvm_vcpu_gfn_to_memslot``) are
environment primitives, not entry points.
"""

from __future__ import annotations

from dataclasses import dataclass

Release = tuple[int, int, int]          # (VERSION, PATCHLEVEL, SUBLEVEL) from the Makefile

# The release the hand-written models stand for (kvm-x86/next of March 2024,
# which became v6.9-rc1): their signatures are the steps' own.
MODELS_RELEASE: Release = (6, 9, 0)


def release_name(release: Release) -> str:
    major, minor, sub = release
    return f"v{major}.{minor}" + (f".{sub}" if sub else "")


def parse_release(text: str) -> Release | None:
    """The release a top-level Makefile names, or None when it names none."""
    values = {}
    for line in text.split("\n")[:12]:
        name, _, value = line.partition("=")
        if name.strip() in ("VERSION", "PATCHLEVEL", "SUBLEVEL") and value.strip().isdigit():
            values[name.strip()] = int(value.strip())
    if "VERSION" not in values or "PATCHLEVEL" not in values:
        return None
    return values["VERSION"], values["PATCHLEVEL"], values.get("SUBLEVEL", 0)


@dataclass(frozen=True)
class Call:
    """How the kernel spells one step in releases ``since`` <= r < ``until``."""

    step: str                        # the name operations use (the model's C name)
    c_name: str                      # the kernel's function in these releases
    parameters: tuple[str, ...]      # its C parameters, in order
    since: Release
    until: Release | None            # first release without this form (None: still there)
    cite: str                        # file, and what was read at which tags
    defaults: tuple[tuple[str, object], ...] = ()   # values for parameters the step lacks

    def holds_at(self, release: Release) -> bool:
        return self.since <= release and (self.until is None or release < self.until)


OLDEST: Release = (6, 1, 0)
V6_6: Release = (6, 6, 0)
V6_9: Release = (6, 9, 0)
V6_10: Release = (6, 10, 0)
V6_12: Release = (6, 12, 0)
V6_13: Release = (6, 13, 0)
V6_18: Release = (6, 18, 0)

KVM_RANGE = ("kvm", "range")

CALLS: tuple[Call, ...] = (
    Call("kvm_tdp_page_fault", "kvm_tdp_page_fault", ("vcpu", "fault"), OLDEST, None,
         "mmu.c, same at every tag v6.1.15..v7.1.5"),
    Call("fast_page_fault", "fast_page_fault", ("vcpu", "fault"), OLDEST, None,
         "mmu.c, same at every tag"),
    Call("kvm_unmap_gfn_range", "kvm_unmap_gfn_range", KVM_RANGE, OLDEST, None,
         "mmu.c, same at every tag"),
    Call("kvm_set_spte_gfn", "kvm_set_spte_gfn", KVM_RANGE, OLDEST, V6_10,
         "mmu.c at v6.1.15, v6.6, v6.9; absent at v6.12 (change_pte removed in v6.10)"),
    Call("kvm_age_gfn", "kvm_age_gfn", KVM_RANGE, OLDEST, None, "mmu.c, same at every tag"),
    Call("kvm_test_age_gfn", "kvm_test_age_gfn", KVM_RANGE, OLDEST, None,
         "mmu.c, same at every tag"),
    Call("kvm_mmu_zap_all", "kvm_mmu_zap_all", ("kvm",), OLDEST, None,
         "mmu.c, same at every tag (static from v6.6)"),
    Call("kvm_mmu_zap_all_fast", "kvm_mmu_zap_all_fast", ("kvm",), OLDEST, None,
         "mmu.c, same at every tag"),
    Call("kvm_mmu_slot_try_split_huge_pages", "kvm_mmu_slot_try_split_huge_pages",
         ("kvm", "memslot", "target_level"), OLDEST, None, "mmu.c, same at every tag"),
    Call("kvm_mmu_slot_leaf_clear_dirty", "kvm_mmu_slot_leaf_clear_dirty", ("kvm", "memslot"),
         OLDEST, None, "mmu.c, same at every tag"),
    Call("kvm_mmu_slot_remove_write_access", "kvm_mmu_slot_remove_write_access",
         ("kvm", "memslot", "start_level"), OLDEST, None, "mmu.c, same at every tag"),
    Call("kvm_arch_mmu_enable_log_dirty_pt_masked", "kvm_arch_mmu_enable_log_dirty_pt_masked",
         ("kvm", "slot", "gfn_offset", "mask"), OLDEST, None, "mmu.c, same at every tag"),
    Call("kvm_mmu_zap_collapsible_sptes", "kvm_mmu_zap_collapsible_sptes", ("kvm", "slot"),
         OLDEST, V6_13, "mmu.c at v6.1.15..v6.12; absent at v6.13.2"),
    Call("kvm_mmu_zap_collapsible_sptes", "kvm_mmu_recover_huge_pages", ("kvm", "slot"),
         V6_13, None, "mmu.c at v6.13.2..v7.1.5 (the same step renamed)"),
    Call("kvm_mmu_try_split_huge_pages", "kvm_mmu_try_split_huge_pages",
         ("kvm", "memslot", "start", "end", "target_level"), OLDEST, None,
         "mmu.c, same at every tag"),
    Call("kvm_tdp_mmu_zap_sp", "kvm_tdp_mmu_zap_sp", ("kvm", "sp"), OLDEST, V6_18,
         "tdp_mmu.c at v6.1.15..v6.13.2; absent at v6.18.2"),
    Call("kvm_tdp_mmu_zap_sp", "kvm_tdp_mmu_zap_possible_nx_huge_page", ("kvm", "sp"), V6_18,
         None, "tdp_mmu.c at v6.18.2..v7.1.5, called where kvm_recover_nx_huge_pages called "
         "kvm_tdp_mmu_zap_sp (first seen at v6.18.2; the change lies after v6.13.2)"),
    Call("kvm_mmu_prepare_zap_page", "kvm_mmu_prepare_zap_page", ("kvm", "sp", "invalid_list"),
         OLDEST, None, "mmu.c, same at every tag"),
    Call("kvm_mmu_commit_zap_page", "kvm_mmu_commit_zap_page", ("kvm", "invalid_list"),
         OLDEST, None, "mmu.c, same at every tag"),
    Call("kvm_zap_gfn_range", "kvm_zap_gfn_range", ("kvm", "gfn_start", "gfn_end"), OLDEST,
         None, "mmu.c, same at every tag"),
    Call("mmu_alloc_direct_roots", "mmu_alloc_direct_roots", ("vcpu",), OLDEST, None,
         "mmu.c, same at every tag"),
    Call("kvm_tdp_mmu_put_root", "kvm_tdp_mmu_put_root", ("kvm", "root", "shared"), OLDEST,
         V6_9, "tdp_mmu.c at v6.1.15 and v6.6 (mmu.c's mmu_free_root_page passes false)",
         defaults=(("shared", False),)),
    Call("kvm_tdp_mmu_put_root", "kvm_tdp_mmu_put_root", ("kvm", "root"), V6_9, None,
         "tdp_mmu.c at v6.9..v7.1.5"),
    Call("kvm_mmu_get_shadow_page", "kvm_mmu_get_shadow_page", ("vcpu", "gfn", "role"), OLDEST,
         None, "mmu.c, same at every tag"),
    Call("FNAME(pte_prefetch)", "FNAME(pte_prefetch)", ("vcpu", "gw", "sptep"), OLDEST, None,
         "paging_tmpl.h, same at every tag"),
    Call("kvm_sync_spte", "kvm_sync_spte", ("vcpu", "sp", "i"), V6_6, None,
         "mmu.c at v6.6..v7.1.5; absent at v6.1.15, which syncs a whole page with "
         "FNAME(sync_page) from FNAME(invlpg)"),
    Call("mmu_page_zap_pte", "mmu_page_zap_pte", ("kvm", "sp", "spte", "invalid_list"), OLDEST,
         None, "mmu.c, same at every tag"),
    # the memslot, MMIO and write-tracking operations (reach_operations.py)
    Call("kvm_mmu_page_fault", "kvm_mmu_page_fault",
         ("vcpu", "cr2_or_gpa", "error_code", "insn", "insn_len"), OLDEST, None,
         "mmu.c, same form at every tag"),
    Call("kvm_arch_flush_shadow_memslot", "kvm_arch_flush_shadow_memslot", ("kvm", "slot"),
         V6_6, None, "mmu.c from v6.6 (at v6.1.15 it is x86.c's, outside the MMU files)"),
    Call("kvm_mmu_unprotect_page", "kvm_mmu_unprotect_page", ("kvm", "gfn"), OLDEST, V6_12,
         "mmu.c v6.1.15 to v6.9; not at v6.12 or later"),
    Call("mmu_sync_children", "mmu_sync_children", ("vcpu", "parent", "can_yield"), OLDEST,
         None, "mmu.c, same form at every tag"),
    Call("kvm_page_track_register_notifier", "kvm_page_track_register_notifier", ("kvm", "n"),
         V6_6, None, "page_track.c from v6.6 (v6.1.15 has the older page-track interface)"),
    Call("kvm_write_track_add_gfn", "kvm_write_track_add_gfn", ("kvm", "gfn"), V6_6, None,
         "page_track.c from v6.6"),
    Call("kvm_write_track_remove_gfn", "kvm_write_track_remove_gfn", ("kvm", "gfn"), V6_6,
         None, "page_track.c from v6.6"),
    Call("kvm_flush_remote_tlbs_sptep", "kvm_flush_remote_tlbs_sptep", ("kvm", "sptep"), V6_6,
         None, "mmu.c at v6.6..v7.1.5; absent at v6.1.15"),
)

# The steps each operation makes into the MMU files (operations.py's calls).
OPERATION_STEPS: dict[str, tuple[str, ...]] = {
    "fault": ("kvm_tdp_page_fault",),
    "fast_fault": ("fast_page_fault",),
    "async_pf_ready": ("kvm_tdp_page_fault",),
    "guest_access": (),
    "nested_access": (),
    "unmap": ("kvm_unmap_gfn_range",),
    "change_pte": ("kvm_unmap_gfn_range", "kvm_set_spte_gfn"),
    "clear_flush_young": ("kvm_age_gfn",),
    "clear_young": ("kvm_age_gfn",),
    "test_young": ("kvm_test_age_gfn",),
    "zap_all": ("kvm_mmu_zap_all",),
    "memslot_delete": ("kvm_mmu_zap_all_fast",),
    "dirty_log_enable": ("kvm_mmu_slot_try_split_huge_pages", "kvm_mmu_slot_leaf_clear_dirty",
                         "kvm_mmu_slot_remove_write_access"),
    "dirty_log_clear": ("kvm_arch_mmu_enable_log_dirty_pt_masked",),
    "dirty_log_disable": ("kvm_mmu_zap_collapsible_sptes",),
    "split_huge": ("kvm_mmu_try_split_huge_pages",),
    "collapse": ("kvm_tdp_mmu_zap_sp", "kvm_mmu_prepare_zap_page", "kvm_mmu_commit_zap_page"),
    "zap_gfn_range": ("kvm_zap_gfn_range",),
    "shadow_prefetch": ("kvm_mmu_get_shadow_page", "FNAME(pte_prefetch)"),
    "shadow_sync": ("kvm_mmu_get_shadow_page", "kvm_sync_spte", "mmu_page_zap_pte",
                    "kvm_flush_remote_tlbs_sptep"),
    # host steps only (kvm_swap_active_memslots -> kvm_arch_memslots_updated, environment)
    "memslot_create": (),
    "memslot_remove": ("kvm_arch_flush_shadow_memslot",),
    "memslot_move": ("kvm_arch_flush_shadow_memslot",),
    "slot_access": ("kvm_mmu_page_fault",),
    "shadow_page": ("kvm_mmu_get_shadow_page",),
    "unprotect": ("kvm_mmu_unprotect_page",),
    "sync_shadow": ("mmu_sync_children",),
    "external_write_track": ("kvm_page_track_register_notifier", "kvm_write_track_add_gfn",
                             "kvm_write_track_remove_gfn"),
}
# Every vCPU operation first reloads an obsolete root (operations.enter_guest).
ROOT_RELOAD = ("kvm_tdp_mmu_put_root", "kvm_mmu_prepare_zap_page", "kvm_mmu_commit_zap_page",
               "mmu_alloc_direct_roots")


def row(step: str, release: Release) -> Call | None:
    """The form of ``step`` at ``release``, or None when that release lacks it."""
    for call in CALLS:
        if call.step == step and call.holds_at(release):
            return call
    return None


def model_row(step: str) -> Call:
    """The form the hand-written models (and so the operations) use."""
    found = row(step, MODELS_RELEASE)
    if found is None:
        raise KeyError(f"no entry-point row for {step} at the models' release")
    return found


def skipped(release: Release) -> dict[str, str]:
    """Operation -> why it cannot run at ``release`` (the first step it lacks)."""
    reasons = {}
    for operation, steps in OPERATION_STEPS.items():
        for step in steps:
            if row(step, release) is None:
                last = [c for c in CALLS if c.step == step]
                reasons[operation] = (f"{step} is not in {release_name(release)} "
                                      f"({last[-1].cite})")
                break
    return reasons


def translate_arguments(step: str, release: Release, arguments: tuple) -> tuple[str, tuple]:
    """(kernel name, arguments) for calling ``step`` with the models' ``arguments``
    on a state of ``release``; the VM (C ``struct kvm *kvm``) is never among them."""
    want = row(step, release)
    if want is None:
        raise LookupError(f"{step} does not exist in {release_name(release)}")
    have = model_row(step)
    names = [p for p in have.parameters if p != "kvm"]
    if len(names) != len(arguments):
        raise TypeError(f"{step} takes {names}, given {len(arguments)} arguments")
    values = dict(zip(names, arguments))
    values.update({k: v for k, v in want.defaults if k not in values})
    try:
        return want.c_name, tuple(values[p] for p in want.parameters if p != "kvm")
    except KeyError as exc:
        raise LookupError(f"{want.c_name} at {release_name(release)} takes {exc.args[0]}, "
                          f"which the operations do not supply ({want.cite})") from None


def call(kvm, step: str, *arguments):
    """Call ``step`` on ``kvm`` in the form its state's release spells it.

    A state without a release (the hand-written models) is called as the
    models are written.
    """
    release = getattr(kvm.versions, "release", None)
    if release is None or not any(c.step == step for c in CALLS):
        # the models' own form; a step with no row is no MMU-file entry point but a host
        # function (kvm_main.c, x86.c) that every state runs as its hand-written model
        return getattr(kvm, step)(*arguments)
    name, values = translate_arguments(step, release, arguments)
    return getattr(kvm, name)(*values)
