"""How to call each modelled function over its inputs (function-level checks).

A ``Driver`` knows, for one C function: the finite list of cases per SPTE
encoding mode (built from ``spte_domain``, so enumeration is exhaustive over
the abstract domain), how to set a fresh VM up for one case and call the
function, and how to turn what the function returns into events, so that
the engine compares return values channel by channel like any other effect:

- a returned "flush needed" flag becomes ``FlushRequested(reason="return")``
  (flush channel);
- a returned SPTE value or built SPTE becomes ``Returned`` (spte channel).

Cases are plain dicts of ints, bools and strings (JSON for replay tokens),
listed in a fixed order: simplest first, so the first failing case is the
minimal counterexample.

Functions without a driver are checked at operation level only; the
coverage line says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

from kernel_models import spte as S
from kernel_models.effects import SPTE, Event, FlushRequested
from kernel_models.mmu_internal import kvm_mmu_page, kvm_mmu_page_role
from kernel_models.registry import PAGING_TMPL_H
from kernel_models.spte_domain import NONLEAF_CHILD_PFN, domain_at_level, leaf_value
from kernel_models.vm import VM, kvm_memory_slot

MODES = tuple(S.MODES)
GUEST_PFNS = (1, 2, 3)


@dataclass(frozen=True)
class Returned(Event):
    """What a function returned (or built through an output pointer)."""

    channel: ClassVar[str] = SPTE
    plain: ClassVar[str] = "returns {what}"
    what: str = ""
    value: int = 0


@dataclass(frozen=True)
class Driver:
    function: str
    file: str
    cases: Callable[[str], list[dict]]           # mode -> cases, simplest first
    call: Callable[[VM, dict], list[Event]]       # run one case on a fresh VM
    spte_fields: tuple[str, ...] = ("old", "new")
    make_vm: Callable[[object, str], VM] | None = None   # None: fresh_vm

    def new_vm(self, versions, mode: str) -> VM:
        return (self.make_vm or fresh_vm)(versions, mode)

    def describe(self, case: dict) -> str:
        args = ", ".join(f"{k}={_show(v)}" for k, v in case.items() if k != "mode")
        return f"{self.function}({args})"


def _show(value):
    if isinstance(value, int) and not isinstance(value, bool) and value > 9:
        return hex(value)
    return repr(value)


DRIVERS: dict[str, Driver] = {}


def driver(function: str, file: str, cases, spte_fields=("old", "new"), make_vm=None):
    def register(call):
        if function in DRIVERS:
            raise ValueError(f"driver for {function} registered twice")
        DRIVERS[function] = Driver(function, file, cases, call, spte_fields, make_vm)
        return call
    return register


# ---------------------------------------------------------------------------
# Setting a VM up
# ---------------------------------------------------------------------------

def fresh_vm(versions, mode: str) -> VM:
    vm = VM(versions, mode)
    slot = kvm_memory_slot(id=0, base_gfn=0, npages=1 << 20)
    vm.memslots.append(slot)
    for gfn, pfn in enumerate(GUEST_PFNS):
        vm.host[gfn] = (pfn, True)     # each guest pfn is host-mapped (refcount > 0)
    return vm


def _page(vm: VM, level: int, *, tdp: bool, ad_disabled: bool = False) -> kvm_mmu_page:
    role = kvm_mmu_page_role(level=level, ad_disabled=ad_disabled)
    sp = kvm_mmu_page(vm, role, 0, tdp_mmu_page=tdp)
    sp.mmu_valid_gen = vm.mmu_invalid_gen
    return sp


def _child_table(vm: VM, level: int) -> None:
    """The table a domain non-leaf SPTE at ``level`` points to, with one live leaf."""
    masks = vm.masks
    ad_type = S.SPTE_TDP_AD_DISABLED if masks.ad_disabled_by_default else S.SPTE_TDP_AD_ENABLED
    role = kvm_mmu_page_role(level=level - 1, ad_disabled=masks.ad_disabled_by_default)
    child = kvm_mmu_page(vm, role, 0, tdp_mmu_page=True, pfn=NONLEAF_CHILD_PFN)
    child.mmu_valid_gen = vm.mmu_invalid_gen
    child.spt[0] = leaf_value(masks, level - 1, 3, 1, 1, 1, 1, 1, ad_type=ad_type)


def _pairs(mode: str, extra: dict | None = None) -> list[dict]:
    cases = []
    for level in (1, 2, 3, 4):
        values = domain_at_level(mode, level)
        for old in values:
            for new in values:
                case = {"mode": mode, "level": level, "old": old.value, "new": new.value}
                if extra:
                    for key, options in extra.items():
                        for option in options:
                            cases.append({**case, key: option})
                else:
                    cases.append(case)
    return cases


def _singles(mode: str) -> list[dict]:
    return [{"mode": mode, "level": item.level, "old": item.value}
            for level in (1, 2, 3, 4) for item in domain_at_level(mode, level)]


def _present_leaves(mode: str) -> list[dict]:
    """Rmap walkers only ever hand present leaf SPTEs to these functions."""
    return [c for c in _singles(mode)
            if c["old"] & S.SPTE_MMU_PRESENT_MASK
            and (c["level"] == 1 or c["old"] & S.PT_PAGE_SIZE_MASK)]


def _sptep(vm: VM, case: dict, *, tdp: bool):
    sp = _page(vm, case["level"], tdp=tdp)
    sp.spt[0] = case["old"]            # set up silently: not an effect of the call
    return sp.sptep(0)


# ---------------------------------------------------------------------------
# mmu.c
# ---------------------------------------------------------------------------

MMU_C = "arch/x86/kvm/mmu/mmu.c"
TDP_MMU_C = "arch/x86/kvm/mmu/tdp_mmu.c"
SPTE_C = "arch/x86/kvm/mmu/spte.c"


@driver("mmu_spte_update", MMU_C, _pairs)
def call_mmu_spte_update(vm: VM, case: dict) -> list[Event]:
    sptep = _sptep(vm, case, tdp=False)
    flush = vm.mmu_spte_update(sptep, case["new"])
    return [FlushRequested(reason="return")] if flush else []


@driver("mmu_spte_clear_track_bits", MMU_C, _singles, ("old",))
def call_mmu_spte_clear_track_bits(vm: VM, case: dict) -> list[Event]:
    sptep = _sptep(vm, case, tdp=False)
    old = vm.mmu_spte_clear_track_bits(sptep)
    return [Returned(what="old_spte", value=old)]


@driver("mmu_spte_age", MMU_C, _present_leaves, ("old",))
def call_mmu_spte_age(vm: VM, case: dict) -> list[Event]:
    sptep = _sptep(vm, case, tdp=False)
    young = vm.mmu_spte_age(sptep)
    return [Returned(what="young", value=int(young))]


@driver("spte_clear_dirty", MMU_C, _present_leaves, ("old",))
def call_spte_clear_dirty(vm: VM, case: dict) -> list[Event]:
    sptep = _sptep(vm, case, tdp=False)
    flush = vm.spte_clear_dirty(sptep)
    return [FlushRequested(reason="return")] if flush else []


@driver("spte_write_protect", MMU_C,
        lambda mode: [{**c, "pt_protect": p} for c in _present_leaves(mode) for p in (False, True)],
        ("old",))
def call_spte_write_protect(vm: VM, case: dict) -> list[Event]:
    sptep = _sptep(vm, case, tdp=False)
    flush = vm.spte_write_protect(sptep, case["pt_protect"])
    return [FlushRequested(reason="return")] if flush else []


@driver("__rmap_clear_dirty", MMU_C, _present_leaves, ("old",))
def call_rmap_clear_dirty(vm: VM, case: dict) -> list[Event]:
    """One SPTE on the rmap (rmap walkers only hold present leaves)."""
    sptep = _sptep(vm, case, tdp=False)
    flush = vm.__rmap_clear_dirty([sptep], vm.memslots[0])
    return [FlushRequested(reason="return")] if flush else []


# ---------------------------------------------------------------------------
# tdp_mmu.c
# ---------------------------------------------------------------------------

@driver("age_gfn_range", TDP_MMU_C, _present_leaves, ("old",))
def call_age_gfn_range(vm: VM, case: dict) -> list[Event]:
    """The handler on one present leaf, as kvm_tdp_mmu_handle_gfn calls it."""
    from kernel_models.tdp_mmu_iter import tdp_iter
    from kernel_models.vm import kvm_gfn_range
    sptep = _sptep(vm, case, tdp=True)
    iter = tdp_iter(sptep=sptep, gfn=0, level=case["level"], old_spte=case["old"], valid=True)
    young = vm.age_gfn_range(iter, kvm_gfn_range(vm.memslots[0], 0, 1))
    return [Returned(what="young", value=int(young))]

def _handle_changed_spte_cases(mode: str) -> list[dict]:
    """Every (old, new) pair at each level, exclusive and shared.

    For a non-leaf old SPTE only the exclusive walk is run: ``shared`` changes
    how handle_removed_pt freezes the 512 children (exchange every entry vs.
    skip the empty ones), not what handle_changed_spte does with each child,
    and the shared walk costs 512 writes per case.
    """
    cases = []
    for case in _pairs(mode):
        nonleaf = (case["level"] > 1 and case["old"] & S.SPTE_MMU_PRESENT_MASK
                   and not case["old"] & S.PT_PAGE_SIZE_MASK)
        for shared in ((False,) if nonleaf else (False, True)):
            cases.append({**case, "shared": shared})
    return cases


@driver("handle_changed_spte", TDP_MMU_C, _handle_changed_spte_cases)
def call_handle_changed_spte(vm: VM, case: dict) -> list[Event]:
    level = case["level"]
    if level > 1 and case["old"] & S.SPTE_MMU_PRESENT_MASK and not case["old"] & S.PT_PAGE_SIZE_MASK:
        _child_table(vm, level)
    vm.handle_changed_spte(0, 0, case["old"], case["new"], level, case["shared"])
    return []


# ---------------------------------------------------------------------------
# spte.c
# ---------------------------------------------------------------------------

def _make_spte_cases(mode: str) -> list[dict]:
    cases = []
    for level in (1, 2):
        for old in domain_at_level(mode, level):
            for pte_access in (S.ACC_ALL, S.ACC_ALL & ~S.ACC_WRITE_MASK):
                for prefetch in (False, True):
                    for host_writable in (True, False):
                        for can_unsync in (True, False):
                            for shadowed in (False, True):
                                # a dirty-logged slot is never mapped huge
                                # (kvm_mmu_hugepage_adjust enforces it)
                                for dirty_log in ((False, True) if level == 1 else (False,)):
                                    cases.append({
                                        "mode": mode, "level": level, "old": old.value,
                                        "pte_access": pte_access, "prefetch": prefetch,
                                        "host_writable": host_writable,
                                        "can_unsync": can_unsync, "shadowed": shadowed,
                                        "dirty_log": dirty_log})
    return cases


@driver("make_spte", SPTE_C, _make_spte_cases, ("old",))
def call_make_spte(vm: VM, case: dict) -> list[Event]:
    from kernel_models.mmu_fault import kvm_vcpu
    level = case["level"]
    slot = vm.memslots[0]
    if case["dirty_log"]:
        slot.flags |= 1                      # KVM_MEM_LOG_DIRTY_PAGES
    gfn = 0
    if case["shadowed"]:
        shadow = kvm_mmu_page(vm, kvm_mmu_page_role(level=1, direct=False), gfn)
        shadow.mmu_valid_gen = vm.mmu_invalid_gen
        vm.active_mmu_pages.insert(0, shadow)
    sp = _page(vm, level, tdp=True, ad_disabled=vm.masks.ad_disabled_by_default)
    vcpu = kvm_vcpu(kvm=vm)
    wrprot, new_spte = vm.make_spte(vcpu, sp, slot, case["pte_access"], gfn, 1, case["old"],
                                    case["prefetch"], case["can_unsync"], case["host_writable"])
    unsync = [int(p.unsync) for p in vm.active_mmu_pages]
    return [Returned(what="wrprot", value=int(wrprot)), Returned(what="new_spte", value=new_spte),
            Returned(what="unsync", value=sum(unsync))]


def _tdp_root(vm: VM, case: dict):
    """A TDP root (4 levels) whose path to gfn 0 ends in the case's SPTE at its level."""
    level = case["level"]
    ad_disabled = vm.masks.ad_disabled_by_default
    root = _page(vm, 4, tdp=True, ad_disabled=ad_disabled)
    parent = root
    for child_level in range(3, level - 1, -1):
        if child_level == level:
            break
        child = _page(vm, child_level, tdp=True, ad_disabled=ad_disabled)
        parent.spt[0] = vm.make_nonleaf_spte(child, ad_disabled)
        parent = child
    if level == 4:
        return root
    if level < 4 and parent.role.level != level:
        table = _page(vm, level, tdp=True, ad_disabled=ad_disabled)
        parent.spt[0] = vm.make_nonleaf_spte(table, ad_disabled)
        parent = table
    if case["old"] & S.SPTE_MMU_PRESENT_MASK and level > 1 and not case["old"] & S.PT_PAGE_SIZE_MASK:
        _child_table(vm, level)
    parent.spt[0] = case["old"]
    return root


def _tdp_cases(mode: str) -> list[dict]:
    return [c for c in _singles(mode) if c["level"] < 4]


@driver("tdp_mmu_zap_leafs", TDP_MMU_C, _tdp_cases, ("old",))
def call_tdp_mmu_zap_leafs(vm: VM, case: dict) -> list[Event]:
    """Zap [gfn 0, gfn 1) under a valid root whose path ends in the case's SPTE."""
    root = _tdp_root(vm, case)
    flush = vm.tdp_mmu_zap_leafs(root, 0, 1, False, False)
    return [FlushRequested(reason="return")] if flush else []


@driver("clear_dirty_pt_masked", TDP_MMU_C,
        lambda mode: [{**c, "wrprot": w} for c in _tdp_cases(mode) for w in (False, True)],
        ("old",))
def call_clear_dirty_pt_masked(vm: VM, case: dict) -> list[Event]:
    """Clear the dirty state of gfn 0 (mask bit 0) under a root ending in the case's SPTE."""
    root = _tdp_root(vm, case)
    vm.clear_dirty_pt_masked(root, 0, 1, case["wrprot"])
    return []


# ---------------------------------------------------------------------------
# paging_tmpl.h: FNAME(prefetch_gpte) on an indirect shadow page
# ---------------------------------------------------------------------------

PREFETCH_INDEX = 9        # an entry of the shadow page that starts non-present
PREFETCH_GFN = 0x10       # a guest gfn backed by a host page


def _prefetch_vm(versions, mode: str) -> VM:
    """A shadow-MMU VM with the indirect page that shadows the guest table."""
    from kernel_models import operations

    vm = operations.new_vm(versions, mode, "shadow")
    vcpu = vm.vcpus[0]
    operations.enter_guest(vm, vcpu)
    operations.get_indirect_page(vm, vcpu)
    vm.log.events.clear()          # building the page is not part of the call
    return vm


def _prefetch_cases(mode: str) -> list[dict]:
    """Every guest PTE the prefetch path distinguishes: present, writable, user,
    accessed, dirty; a gfn the host backs writable, read-only, or not at all."""
    found = []
    for gfn in ("backed", "readonly", "unbacked"):
        for present in (True, False):
            for writable in (False, True):
                for dirty in (False, True):
                    for accessed in (True, False):
                        for user in (True, False):
                            if mode != "legacy" and not user:
                                continue          # EPT guest PTEs have no U bit
                            found.append({"mode": mode, "gfn": gfn, "present": present,
                                          "writable": writable, "dirty": dirty,
                                          "accessed": accessed, "user": user})
    return found


@driver("FNAME(prefetch_gpte)", PAGING_TMPL_H, _prefetch_cases, (), make_vm=_prefetch_vm)
def call_prefetch_gpte(vm: VM, case: dict) -> list[Event]:
    from kernel_models import operations
    from kernel_models.paging_tmpl import FNAME, GuestPte

    gfn = {"backed": PREFETCH_GFN, "readonly": PREFETCH_GFN + 1, "unbacked": PREFETCH_GFN + 2}
    if case["gfn"] == "readonly":
        pfn, _ = vm.host[gfn["readonly"]]
        vm.host[gfn["readonly"]] = (pfn, False)
    elif case["gfn"] == "unbacked":
        vm.host.pop(gfn["unbacked"], None)
    vcpu = vm.vcpus[0]
    sp = operations.get_indirect_page(vm, vcpu)
    gpte = GuestPte(gfn=gfn[case["gfn"]], present=case["present"], writable=case["writable"],
                    user=case["user"], accessed=case["accessed"], dirty=case["dirty"])
    sptep = sp.sptep(PREFETCH_INDEX)
    mapped = FNAME(vm, "prefetch_gpte")(vcpu, sp, sptep, gpte.encode(vm.pttype))
    return [Returned(what="prefetch_gpte", value=int(bool(mapped))),
            Returned(what="spte", value=sptep.get())]


def cases(function: str, mode: str) -> list[dict]:
    return DRIVERS[function].cases(mode)
