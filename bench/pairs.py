"""Plain wrappers for the head-to-head: (old_spte: int, new_spte: int) -> summary.

Each wrapper runs one version of ``mmu_spte_update`` (mmu.c) on a 4K SPTE
slot that holds ``old_spte`` and returns a hashable summary of what happened:
the return value (or the exception type) and every effect event with its
fields.  Two wrappers differ exactly when the two versions behave differently
on that (old, new) pair, so plain Hypothesis over raw 64-bit integers and
CrossHair's ``diffbehavior`` can be pointed at them as they are.

The encoding mode is ``ept_ad`` (EPT with A/D bits: the mode in which both
accessed and dirty bits exist).  One VM per version set is built once and
reset before each call, so a call costs only the model code itself.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache

MODE = "ept_ad"
U64 = (1 << 64) - 1     # the C arguments are u64: any Python int is taken modulo 2**64
MMU_C = "arch/x86/kvm/mmu/mmu.c"

# name -> series state, or a mutant: the patch-name prefix of a patch in tests/mutants/
VERSIONS: dict[str, str] = {
    "base": "base",
    "after 3/4": "after 3/4",
    "after 4/4": "after 4/4",
    "mutant m02": "m02",     # 4/4 without the write-protection flush
    "mutant m10": "m10",     # 4/4 with the W test of the new SPTE inverted
}
MUTANTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "tests", "mutants")
MUTANT_MODELS = os.path.join(MUTANTS_DIR, "models.py")


def load_mutant_models():
    """Import tests/mutants/models.py by path (it registers the hand-written mutant blobs)."""
    name = "kconform_mutant_models"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, MUTANT_MODELS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def mutant_patch(name: str) -> str:
    """The patch file in tests/mutants whose name starts with ``name-``."""
    found = sorted(f for f in os.listdir(MUTANTS_DIR)
                   if f.startswith(name + "-") and f.endswith(".patch"))
    if not found:
        raise KeyError(f"no mutant {name} in {MUTANTS_DIR}")
    return os.path.join(MUTANTS_DIR, found[0])


def version_set(version: str):
    """The registry VersionSet that ``version`` names.

    A mutant is its patch's after-state as the resolver finds it: derived from
    the hunks (m02 and m10 are plain patch files) or, for the few patches
    derive cannot do, the hand-written blob tests/mutants/models.py registers.
    Derived blobs stay registered for the life of the process, as the
    wrappers' VMs are built once.
    """
    from harness.ingest import patches as ingest
    from harness.resolve import strategies as resolve
    from harness.ingest import scope
    from kernel_models import registry

    name = VERSIONS[version]
    if name in registry.SERIES_STATES:
        return registry.VersionSet.series_state(name)
    load_mutant_models()
    (patch,) = ingest.read_file(mutant_patch(name))
    resolution = resolve.resolve(scope.scope_patch(patch))
    if not resolution.complete:
        raise KeyError(f"mutant {name}: {resolution.reason}")
    return registry.VersionSet.of(version, dict(resolution.after.blobs))


@lru_cache(maxsize=None)
def _slot(version: str):
    from kernel_models.mmu_internal import kvm_mmu_page, kvm_mmu_page_role
    from kernel_models.vm import VM

    kvm = VM(version_set(version), MODE)
    sp = kvm_mmu_page(kvm, kvm_mmu_page_role(level=1), gfn=0)
    return kvm, sp


def effect_summary(version: str, old_spte: int, new_spte: int) -> tuple:
    """Run ``mmu_spte_update`` of ``version`` on (old, new); hashable summary.

    Both values are reduced to 64 bits first, as C's ``u64`` would, so a
    tool that generates unbounded (or negative) ints compares real SPTEs.
    """
    old_spte &= U64
    new_spte &= U64
    kvm, sp = _slot(version)
    kvm.log.events.clear()
    kvm.log.stack.clear()
    sp.spt.clear()
    if old_spte:
        sp.spt[0] = old_spte
    try:
        outcome = ("returned", bool(kvm.mmu_spte_update(sp.sptep(0), new_spte)))
    except Exception as exc:  # a model raising is behaviour to compare, not a bench bug
        outcome = ("raised", type(exc).__name__)
    events = tuple((type(event).__name__, tuple(sorted(event.payload().items())))
                   for event in kvm.log.events)
    return outcome, events


# The plain functions CrossHair and Hypothesis compare (module-level, typed).

def mmu_spte_update_base(old_spte: int, new_spte: int) -> tuple:
    return effect_summary("base", old_spte, new_spte)


def mmu_spte_update_after_3(old_spte: int, new_spte: int) -> tuple:
    return effect_summary("after 3/4", old_spte, new_spte)


def mmu_spte_update_after_4(old_spte: int, new_spte: int) -> tuple:
    return effect_summary("after 4/4", old_spte, new_spte)


def mmu_spte_update_m02(old_spte: int, new_spte: int) -> tuple:
    return effect_summary("mutant m02", old_spte, new_spte)


def mmu_spte_update_m10(old_spte: int, new_spte: int) -> tuple:
    return effect_summary("mutant m10", old_spte, new_spte)


# The head-to-head pairs: (label, before wrapper, after wrapper, before version, after version)
PAIRS = (
    ("base vs after 3/4", mmu_spte_update_base, mmu_spte_update_after_3, "base", "after 3/4"),
    ("after 3/4 vs after 4/4", mmu_spte_update_after_3, mmu_spte_update_after_4,
     "after 3/4", "after 4/4"),
    ("after 4/4 vs mutant m02", mmu_spte_update_after_4, mmu_spte_update_m02,
     "after 4/4", "mutant m02"),
    ("after 4/4 vs mutant m10", mmu_spte_update_after_4, mmu_spte_update_m10,
     "after 4/4", "mutant m10"),
)
