"""Drivers drawn from a model's parameters, for fidelity runs of functions with no driver.

``harness.check.drivers`` holds hand-made drivers (a setup per function, used
by the checks).  A fidelity run (``harness.check.fidelity``) also compares the
functions that have none, where their inputs can be drawn from the exhaustive
domain by what the model's parameters are:

- an SPTE value (``spte``, ``pte``, ``old_spte``, ``new_spte`` annotated
  ``int``): every domain value at every level (``level``, if the function
  takes one, is the value's level);
- a non-leaf SPTE to follow (``spte_to_child_sp``): every present non-leaf
  value, with the child table it points to;
- an SPTE pointer (``sptep``): entry 0 of a fresh page at the case's level
  holding the value (with ``new_spte``: every value pair of the level);
- a page (``sp``): every role the models build (TDP MMU or shadow, direct or
  indirect, A/D disabled or not, valid or invalid) at every level; with
  ``index``: entries 0, 1 and 511 of a direct page;
- a fault (``fault``): every combination of present, write, exec, user and
  the reserved-bit flag (with ``spte``: against every SPTE value);
- a pfn, an MMIO generation: the values the models distinguish;
- a memslot, for a predicate of it: the slot with each combination of the
  dirty-logging and read-only flags;
- reserved-bit tables (``rsvd_check``): all zero, the models' listed
  simplification (both sides must agree under it);
- a huge SPTE to split: every present huge leaf, entries 0, 1 and 511, with
  and without exec access in the child role; a child table: a TDP page;
- a guest PTE of a paging_tmpl.h function: every permission and A/D
  combination, encoded for the VM's guest mode;
- no parameter: one call per mode, for a function that returns a value.

What a call returns becomes a ``Returned`` event (an int; a page or SPTE
pointer by its pfn and index), so the effect logs compare it.

A function whose input is state the domain does not build (an rmap, a parent
list, a memslot's bitmap, a root's tree, a VM's page lists, a vCPU's walk) is
not drawn: ``NOT_DRAWN`` names it with the reason, and ``undrawable`` answers
for any other parameter list.  Those are compared by the statement audit and
the operation mix only.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace

from harness.check.drivers import Driver, Returned, _child_table, _page
from kernel_models import spte as S
from kernel_models.kvm_main import KVM_PFN_ERR_FAULT, KVM_PFN_ERR_RO_FAULT, KVM_PFN_NOSLOT
from kernel_models.mmu_internal import kvm_mmu_page, kvm_mmu_page_role, kvm_page_fault
from kernel_models.spte_domain import domain_at_level

VALUES = ("spte", "pte", "old_spte", "new_spte")
LEVELS = (1, 2, 3, 4)
PFNS = (0, 1, 3, KVM_PFN_ERR_FAULT, KVM_PFN_NOSLOT, KVM_PFN_ERR_RO_FAULT)
GENERATIONS = (0, 1, 0x1ff, 0x200, 0x7ffff, 0xfffff)
INDEXES = (0, 1, 511)
GUEST_GFN = 0x10
SLOT_FLAGS = (0, 1, 2, 3)       # KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY

# Functions whose parameters look drawable but whose input is state the domain does not
# build: a reviewer reads here why each is left to the mix.
NOT_DRAWN: dict[str, str] = {
    "drop_spte": "a shadow-MMU leaf is on its gfn's rmap; a drawn page has no rmap entry",
    "rmap_remove": "the SPTE must be on its gfn's rmap",
    "mark_unsync": "the SPTE's page must have parents (sp->parent_ptes) to walk",
    "kvm_mmu_mark_parents_unsync": "walks the page's parent list",
    "kvm_mmu_unlink_parents": "walks the page's parent list",
    "kvm_mmu_free_shadow_page": "the page must be on the VM's page lists and hash",
    "account_shadowed": "updates the slot's write-tracking counts of a memslot lookup",
    "unaccount_shadowed": "drops the slot's write-tracking and lpage counts that its "
                          "account_shadowed made; a drawn page was never accounted",
    "kvm_unlink_unsync_page": "the page must be unsync and counted in the VM's unsync pages",
    "kvm_unsync_page": "the page must be on the VM's lists and its parents markable",
    "kvm_tdp_mmu_zap_sp": "the page must be linked under a root (its ptep)",
    "tdp_mmu_free_sp": "frees a page of the VM's TDP page lists",
    "tdp_mmu_unlink_sp": "the page must be on the VM's possible-NX list or linked",
    "FNAME(get_level1_sp_gpa)": "an indirect page of a guest walk (sp->gfn of a guest table)",
    "spte_to_child_pt": "a non-leaf value points to a table the VM must hold",
    "kvm_pfn_to_refcounted_page": "an environment page object, no value to compare",
    "kvm_tdp_mmu_clear_dirty_slot": "walks the VM's TDP roots over the slot",
}


def zero_tables():
    """A ``struct rsvd_bits_validate`` whose tables are all zero: the models' assumption
    (kernel_models.simplifications, get_rsvd_bits), under which both sides must agree."""
    return SimpleNamespace(rsvd_bits_mask=[[0] * 5, [0] * 5], bad_mt_xwr=0)


def _values(mode: str) -> list[dict]:
    return [{"mode": mode, "level": level, "value": item.value}
            for level in LEVELS for item in domain_at_level(mode, level)]


def _pairs(mode: str) -> list[dict]:
    return [{"mode": mode, "level": level, "value": old.value, "new": new.value}
            for level in LEVELS for old in domain_at_level(mode, level)
            for new in domain_at_level(mode, level)]


def _roles(mode: str) -> list[dict]:
    cases = []
    for level in LEVELS:
        for tdp in (True, False):
            for direct in ((True,) if tdp else (True, False)):
                for ad_disabled in (False, True):
                    for invalid in (False, True):
                        cases.append({"mode": mode, "level": level, "tdp": tdp,
                                      "direct": direct, "ad_disabled": ad_disabled,
                                      "invalid": invalid})
    return cases


def _faults(mode: str) -> list[dict]:
    return [{"mode": mode, "present": p, "write": w, "exec": x, "user": u, "rsvd": r}
            for p in (False, True) for w in (False, True) for x in (False, True)
            for u in (True, False) for r in (False, True)]


def _gptes(mode: str) -> list[dict]:
    """Guest PTEs of every permission and A/D combination (EPT reads ``user`` not at all)."""
    return [{"mode": mode, "present": p, "writable": w, "user": u, "executable": x,
             "accessed": a, "dirty": d}
            for p in (True, False) for w in (True, False) for u in (True, False)
            for x in (True, False) for a in (True, False) for d in (False, True)]


def _gpte(case: dict):
    from kernel_models.paging_tmpl import GuestPte
    return GuestPte(gfn=GUEST_GFN, present=case["present"], writable=case["writable"],
                    user=case["user"], executable=case["executable"],
                    accessed=case["accessed"], dirty=case["dirty"])


def _page_of(vm, case: dict) -> kvm_mmu_page:
    role = kvm_mmu_page_role(level=case["level"], direct=case.get("direct", True),
                             ad_disabled=case.get("ad_disabled", False),
                             invalid=case.get("invalid", False))
    sp = kvm_mmu_page(vm, role, 0, tdp_mmu_page=case.get("tdp", False))
    sp.mmu_valid_gen = vm.mmu_invalid_gen
    return sp


def _fault(case: dict) -> kvm_page_fault:
    return kvm_page_fault(present=case["present"], write=case["write"], exec=case["exec"],
                          user=case["user"], rsvd=case["rsvd"])


def returned(value) -> list:
    """What a call returned, as events: ints and bools by value, a page by its pfn, an SPTE
    pointer by its page's pfn and index, None as nothing."""
    if value is None:
        return []
    if isinstance(value, (bool, int)):
        return [Returned(what="return", value=int(value))]
    if hasattr(value, "sp") and hasattr(value, "index"):
        return [Returned(what="sptep", value=(value.sp.pfn << 9) | value.index)]
    if hasattr(value, "pfn") and hasattr(value, "role"):
        return [Returned(what="page", value=value.pfn)]
    return [Returned(what=type(value).__name__, value=0)]


def _shape(model) -> tuple[str, ...]:
    """The model's parameters after ``kvm``, SPTE values written as ``value``."""
    shape = []
    for p in list(inspect.signature(model).parameters.values())[1:]:
        is_int = p.annotation in ("int", int)
        shape.append("value" if p.name in VALUES and is_int else p.name)
    return tuple(shape)


def _caller(name: str):
    def call_of(vm, *args):
        return getattr(vm, name)(*args)
    return call_of


def driver_for(name: str, file: str, model) -> Driver | str:
    """A drawn driver for ``name`` (its model ``model``), or the reason there is none."""
    if name in NOT_DRAWN:
        return NOT_DRAWN[name]
    shape = _shape(model)
    call = _caller(name)
    if name.startswith("FNAME("):
        if shape not in (("value",), ("gpte",)):
            return "a paging_tmpl.h function of the guest walk (its mmu, walker or vCPU)"
        def run_gpte(vm, case):
            vm.pttype = "64" if case["mode"] == "legacy" else "ept"   # as operations.new_vm
            return returned(call(vm, _gpte(case).encode(vm.pttype)))
        return Driver(name, file, _gptes, run_gpte, ())
    if name == "spte_to_child_sp":
        def nonleaf(mode):
            return [c for c in _values(mode) if c["level"] > 1
                    and c["value"] & S.SPTE_MMU_PRESENT_MASK
                    and not c["value"] & S.PT_PAGE_SIZE_MASK]

        def run_child(vm, case):
            _child_table(vm, case["level"])
            return returned(call(vm, case["value"]))
        return Driver(name, file, nonleaf, run_child, ("value",))
    if shape == ():
        if inspect.signature(model).return_annotation in ("None", None):
            return "its input is the whole VM state (roots, page lists), not drawn"
        return Driver(name, file, lambda mode: [{"mode": mode}],
                      lambda vm, case: returned(call(vm)), ())
    if shape in (("value",), ("value", "level")):
        with_level = shape == ("value", "level")
        return Driver(name, file, _values, lambda vm, case: returned(
            call(vm, case["value"], *((case["level"],) if with_level else ()))), ("value",))
    if shape == ("sptep",):
        def run_pointer(vm, case):
            sp = _page(vm, case["level"], tdp=False)
            sp.spt[0] = case["value"]
            result = returned(call(vm, sp.sptep(0)))
            return result + [Returned(what="spte", value=sp.spt.get(0, 0))]
        return Driver(name, file, _values, run_pointer, ("value",))
    if shape == ("sptep", "value"):
        def run_pair(vm, case):
            sp = _page(vm, case["level"], tdp=False)
            sp.spt[0] = case["value"]
            result = returned(call(vm, sp.sptep(0), case["new"]))
            return result + [Returned(what="spte", value=sp.spt.get(0, 0))]
        return Driver(name, file, _pairs, run_pair, ("value", "new"))
    if shape == ("sp",):
        return Driver(name, file, _roles, lambda vm, case: returned(call(vm, _page_of(vm, case))),
                      ())
    if shape == ("sp", "index"):
        def indexes(mode):
            return [{**c, "index": i} for c in _roles(mode) if c["direct"] for i in INDEXES]
        return Driver(name, file, indexes,
                      lambda vm, case: returned(call(vm, _page_of(vm, case), case["index"])), ())
    if shape == ("fault",):
        return Driver(name, file, _faults, lambda vm, case: returned(call(vm, _fault(case))), ())
    if shape == ("fault", "value"):
        def with_values(mode):
            return [{**f, **v} for f in _faults(mode) for v in _values(mode)]
        return Driver(name, file, with_values, lambda vm, case: returned(
            call(vm, _fault(case), case["value"])), ("value",))
    if shape[:1] == ("rsvd_check",) and shape[1:] in (("value",), ("value", "level")):
        with_level = len(shape) == 3
        return Driver(name, file, _values, lambda vm, case: returned(call(
            vm, zero_tables(), case["value"], *((case["level"],) if with_level else ()))),
            ("value",))
    if shape == ("huge_spte", "role", "index"):
        def split_cases(mode):
            return [{**c, "index": i, "access": a} for c in _values(mode)
                    if c["level"] > 1 and c["value"] & S.SPTE_MMU_PRESENT_MASK
                    and c["value"] & S.PT_PAGE_SIZE_MASK
                    for i in INDEXES for a in (S.ACC_ALL, S.ACC_ALL & ~S.ACC_EXEC_MASK)]
        return Driver(name, file, split_cases, lambda vm, case: returned(call(
            vm, case["value"], kvm_mmu_page_role(level=case["level"] - 1, access=case["access"]),
            case["index"])), ("value",))
    if shape == ("child_pt", "ad_disabled"):
        def tables(mode):
            return [{"mode": mode, "level": level, "ad_disabled": a}
                    for level in (1, 2, 3) for a in (False, True)]
        return Driver(name, file, tables, lambda vm, case: returned(call(
            vm, _page(vm, case["level"], tdp=True), case["ad_disabled"])), ())
    if shape == ("slot",) and inspect.signature(model).return_annotation in ("bool", bool):
        def run_slot(vm, case):
            vm.memslots[0].flags = case["flags"]
            return returned(call(vm, vm.memslots[0]))
        return Driver(name, file, lambda mode: [{"mode": mode, "flags": f} for f in SLOT_FLAGS],
                      run_slot, ())
    if shape == ("pfn",):
        return Driver(name, file, lambda mode: [{"mode": mode, "pfn": p} for p in PFNS],
                      lambda vm, case: returned(call(vm, case["pfn"])), ())
    if shape == ("gen",):
        return Driver(name, file, lambda mode: [{"mode": mode, "gen": g} for g in GENERATIONS],
                      lambda vm, case: returned(call(vm, case["gen"])), ())
    return undrawable(shape)


def undrawable(shape: tuple[str, ...]) -> str:
    state = [p for p in shape if p in ("rmap_head", "slot", "memslot", "root", "iter", "range",
                                       "range_", "vcpu", "invalid_list", "cache", "caches",
                                       "gw", "parent", "handler", "fn")]
    if state:
        return f"takes {', '.join(state)}: state the exhaustive domain does not draw"
    return f"no drawing for parameters ({', '.join(shape)})"

