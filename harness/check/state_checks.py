"""Invariants that read a VM's state after a step, not its effect log.

Registered in the one table of ``harness.check.checks`` (which imports this
module once its own checks are defined).  They walk the SPTEs a vCPU can
still use: the leaf entries of valid roots and of the shadow pages that are
not obsolete.  Invalid roots are left out as a kernel fact: mmu.c
kvm_mmu_slot_gfn_write_protect (v6.9 blob db007a4dffa2) reaches TDP MMU SPTEs
through kvm_tdp_mmu_write_protect_gfn, which walks valid roots only
(tdp_mmu.c 04c1f0957fea), and a vCPU reloads before it runs on an invalid
root (kvm_mmu_zap_all_fast; checks.NO_FLUSH_NEEDED["roots no vCPU uses
again"]).  Reading state calls no model with effects: the SPTE predicates
are ``checks.read_spte`` and spte.h's pure MMIO field readers.

- ``write_tracking_respected``: no present, writable leaf SPTE maps a gfn
  that is write-tracked (its slot's gfn_write_track count, page_track.c
  f6448284c18e), nor a gfn that has a valid shadow page with guest PTEs that
  is not unsync (mmu.c account_shadowed write-protects it; only
  mmu_try_to_unsync_pages lets a 4K one be written again).
- ``mmio_outside_memslots``: no MMIO SPTE of the current memslot
  generation, and no MMIO cache entry of the vCPU of that generation, names a
  gfn that a memslot holds.  Every memslot update steps the generation
  (kvm_main.c kvm_swap_active_memslots), so an MMIO SPTE made for a gfn with
  no slot goes stale when a slot appears there, and check_mmio_spte (mmu.c
  db007a4dffa2) sends the next access to it back to the fault path.  A
  current one over a slot would have that access emulated as MMIO instead
  of reaching guest memory.
"""

from __future__ import annotations

from kernel_models.effects import SPTE
from kernel_models import spte as spte_model

from harness.check import checks as K

_MMIO_SPTE_GEN_MASK = spte_model.MMIO_SPTE_GEN_MASK
_GFN_MASK = ((1 << 46) - 1) & ~0xFFF          # mmu.c get_mmio_spte_gfn without the L1TF bits


def _obsolete(vm, sp) -> bool:
    if sp.role.invalid:
        return True
    return not sp.tdp_mmu_page and getattr(sp, "mmu_valid_gen", vm.mmu_invalid_gen) != vm.mmu_invalid_gen


def usable_pages(vm) -> list:
    """Every page table a vCPU can still walk: valid TDP MMU roots and their tables,
    and the shadow pages that are not obsolete."""
    pages, todo, seen = [], [r for r in vm.tdp_mmu_roots if not r.role.invalid], set()
    todo += [sp for sp in vm.active_mmu_pages if not _obsolete(vm, sp)]
    while todo:
        sp = todo.pop()
        if id(sp) in seen:
            continue
        seen.add(id(sp))
        pages.append(sp)
        if not sp.tdp_mmu_page:
            continue            # shadow children are in active_mmu_pages themselves
        for index, value in sp.spt.items():
            if K.read_spte(vm, value, sp.role.level).nonleaf:
                child = vm.mmu_pages.get((value & K._PFN_MASK) >> 12)
                if child is not None:
                    todo.append(child)
    return pages


def entry_gfn(sp, index: int) -> int:
    """mmu.c kvm_mmu_page_get_gfn, read from state: the first gfn entry ``index`` maps."""
    if not sp.role.direct:
        entry = sp.shadowed_translation[index]
        # the hand-written models keep (gfn, access) pairs (kernel_models/simplifications.py);
        # a translated state keeps the kernel's packed word, gfn << PAGE_SHIFT | access
        return entry[0] if isinstance(entry, tuple) else entry >> 12
    return sp.gfn + index * (1 << (9 * (sp.role.level - 1)))


def _tracked(vm, gfn: int) -> bool:
    memslot = vm.gfn_to_memslot(gfn)
    return memslot is not None and memslot.gfn_write_track.get(gfn - memslot.base_gfn, 0) > 0


def _shadowed_not_unsync(vm, gfn: int) -> bool:
    return any(not sp.role.direct and sp.gfn == gfn and not sp.unsync and not _obsolete(vm, sp)
               for sp in vm.active_mmu_pages)


def _protected_gfns(vm) -> set:
    """The gfns no writable SPTE may map (the few there are, so the walk stays cheap)."""
    gfns = {memslot.base_gfn + index for memslot in vm.memslots
            for index, count in memslot.gfn_write_track.items() if count > 0}
    gfns |= {sp.gfn for sp in vm.active_mmu_pages
             if not sp.role.direct and not sp.unsync and not _obsolete(vm, sp)}
    return gfns


@K.check("write_tracking_respected", failure="WriteTrackingBypassed", channels=(SPTE,),
         levels=("operation",),
         description="no present writable leaf SPTE maps a write-tracked gfn, or a gfn whose "
                     "shadow pages are not unsync",
         defect="a write-tracked or shadowed gfn left writable")
@K.per_side
def write_tracking_respected(step: K.Step, side: K.Side) -> list[K.Violation]:
    vm = side.vm
    protected = _protected_gfns(vm)
    if not protected:
        return []
    found = []
    for sp in usable_pages(vm):
        level = sp.role.level
        for index, value in sorted(sp.spt.items()):
            reading = K.read_spte(vm, value, level)
            if not (reading.present_leaf and reading.writable):
                continue
            first = entry_gfn(sp, index)
            for gfn in sorted(g for g in protected if first <= g < first + reading.pages):
                why = ("is write-tracked" if _tracked(vm, gfn) else
                       "has a shadow page that is not unsync")
                where = f"{'tdp' if sp.tdp_mmu_page else 'sp'}{level}@{sp.gfn:#x}[{index}]"
                found.append(K.Violation(
                    "write_tracking_respected", SPTE,
                    f"after {step.operation}, {where} = {value:#x} is present and "
                    f"writable and maps gfn {gfn:#x}, which {why}",
                    extra=(f"writable SPTE {where} -> gfn {gfn:#x}",)))
    return found


def _mmio_gfn_in_slot(vm, gfn: int):
    memslot = vm.gfn_to_memslot(gfn)
    return memslot if memslot is not None and not memslot.invalid else None


@K.check("mmio_outside_memslots", failure="StaleMmioSpte", channels=(SPTE,),
         levels=("operation",),
         description="no MMIO SPTE or cached MMIO gfn of the current memslot generation names "
                     "a gfn that a memslot holds",
         defect="an MMIO SPTE current over a memslot")
@K.per_side
def mmio_outside_memslots(step: K.Step, side: K.Side) -> list[K.Violation]:
    vm = side.vm
    current = vm.memslots_generation & _MMIO_SPTE_GEN_MASK
    found = []
    for sp in usable_pages(vm):
        for index, value in sorted(sp.spt.items()):
            if not (vm.enable_mmio_caching and (value & vm.shadow_mmio_mask) == vm.shadow_mmio_value):
                continue
            if spte_model.get_mmio_spte_generation(vm, value) != current:
                continue
            gfn = (value & _GFN_MASK) >> 12
            memslot = _mmio_gfn_in_slot(vm, gfn)
            if memslot is not None:
                where = f"{'tdp' if sp.tdp_mmu_page else 'sp'}{sp.role.level}@{sp.gfn:#x}[{index}]"
                found.append(K.Violation(
                    "mmio_outside_memslots", SPTE,
                    f"after {step.operation}, the MMIO SPTE {where} = {value:#x} "
                    f"carries the current memslot generation {current:#x} but gfn {gfn:#x} is "
                    f"in memslot {memslot.id}: an access there is emulated as MMIO",
                    extra=(f"current MMIO SPTE {where} -> gfn {gfn:#x}",)))
    for vcpu in vm.vcpus:
        arch = vcpu.arch
        if arch.mmio_gfn and arch.mmio_gen == vm.memslots_generation:
            memslot = _mmio_gfn_in_slot(vm, arch.mmio_gfn)
            if memslot is not None:
                found.append(K.Violation(
                    "mmio_outside_memslots", SPTE,
                    f"after {step.operation}, vCPU {vcpu.vcpu_id} caches gfn "
                    f"{arch.mmio_gfn:#x} as MMIO for the current memslot generation, but memslot "
                    f"{memslot.id} holds it",
                    extra=(f"MMIO cache gfn {arch.mmio_gfn:#x} gen {arch.mmio_gen:#x}",)))
    return found
