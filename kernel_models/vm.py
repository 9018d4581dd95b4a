"""``VM``: one virtual machine's state plus the version set its code runs.

Every model function is a plain Python function whose first parameter is the
VM, named ``kvm``.  Inside a model, every call to another kernel function is
written ``kvm.<c_name>(args...)``: the VM looks the name up in its version set
(built by ``registry.py``) and runs the body that holds in the chosen blobs.
That keeps a model readable beside the C (same names, same arguments after
``kvm``) while letting the engine run the before and after versions of a
patch side by side.

Kernel globals that the C reads (``shadow_accessed_mask`` and the other SPTE
masks, ``tdp_mmu_enabled``...) are plain attributes of the VM, set from the
SPTE encoding mode chosen at construction.

State modelled (abstract, small, deterministic):

- ``memslots``: ``kvm_memory_slot`` objects (gfn ranges, dirty-logging flag);
- ``host``: the primary MMU, gfn -> (pfn, writable), and ``page_refcount``:
  references KVM holds on each pfn (the host's own mapping is not counted, so
  a balanced operation leaves every count at 0);
- ``mmu_pages``: every ``kvm_mmu_page`` by its table pfn, for
  ``spte_to_child_sp``; ``tdp_mmu_roots`` and the shadow MMU's
  ``active_mmu_pages``;
- ``log``: the ``EffectLog`` of everything observable that happened.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from kernel_models.effects import EffectLog, Event


@dataclass
class kvm_memory_slot:  # noqa: N801 - the kernel's name
    """struct kvm_memory_slot, reduced to what the modelled code reads."""

    id: int
    base_gfn: int
    npages: int
    as_id: int = 0          # address space (the models run address space 0 only)
    flags: int = 0          # KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY
    dirty_bitmap: set = field(default_factory=set)
    rmap: dict = field(default_factory=dict)   # (level, gfn) -> list of sptep
    gfn_write_track: dict = field(default_factory=dict)   # slot->arch.gfn_write_track: index -> count
    invalid: bool = False   # KVM_MEMSLOT_INVALID while a delete or move flushes it

    def contains(self, gfn: int) -> bool:
        return self.base_gfn <= gfn < self.base_gfn + self.npages


KVM_MEM_LOG_DIRTY_PAGES = 1 << 0
KVM_MEM_READONLY = 1 << 1


class VM:
    """A VM running one version set of the modelled kernel code."""

    def __new__(cls, versions, *args, **kwargs):
        # The kernel functions are methods of a class made once per version set
        # (``dispatch_class``): no per-VM closures, so a VM is cheap to build and
        # leaves no cycles through its own dispatch table.
        if cls is VM:
            cls = dispatch_class(versions)
        return object.__new__(cls)

    def __init__(self, versions, mode: str = "ept_ad", *, tdp_mmu_enabled: bool = True,
                 prove_mmu: bool = False):
        from kernel_models import spte as spte_model  # masks per encoding mode

        self.versions = versions
        self.functions = versions.functions()
        self.log = EffectLog(helpers=versions.helpers())
        self.mode = mode
        self.masks = spte_model.MODES[mode]
        self.__dict__.update(self.masks.as_globals())
        self.tdp_enabled = True
        self.tdp_mmu_enabled = tdp_mmu_enabled
        self.prove_mmu = prove_mmu
        self.memslots: list[kvm_memory_slot] = []
        self.host: dict[int, tuple[int, bool]] = {}
        self.page_refcount: Counter = Counter()
        self.mmu_pages: dict = {}
        self.tdp_mmu_roots: list = []
        self.active_mmu_pages: list = []
        self.mmu_invalid_gen = 0
        self.next_table_pfn = 0x800   # page-table pages live far from guest pfns
        self.vcpus: list = []
        prepare = getattr(versions, "prepare_vm", None)   # a translated tree state's hook
        if prepare is not None:
            prepare(self)

    # -- dispatch -----------------------------------------------------------
    def __getattr__(self, name):
        # only reached for a name that is neither state nor a function of this version set
        raise AttributeError(f"no model of {name!r} in version set {self.__dict__.get('versions')}")

    def use_versions(self, versions) -> None:
        """Run this VM on another version set from now on (its state is kept)."""
        self.__class__ = dispatch_class(versions)
        self.versions = versions
        self.functions = versions.functions()
        self.log.helpers = versions.helpers()
        prepare = getattr(versions, "prepare_vm", None)
        if prepare is not None:
            prepare(self)

    def tear_down(self) -> None:
        """Drop this VM's state (page tables, vCPUs, log), so the cycles among them
        (a vCPU and its VM, a page and its VM) are freed now, not by the collector."""
        self.__dict__.clear()

    # -- effects ------------------------------------------------------------
    def emit(self, event: Event) -> None:
        self.log.emit(event)

    # -- state helpers (not kernel functions) -------------------------------
    def gfn_to_memslot(self, gfn: int):
        for slot in self.memslots:
            if slot.contains(gfn):
                return slot
        return None

    def alloc_table_pfn(self) -> int:
        pfn = self.next_table_pfn
        self.next_table_pfn += 1
        return pfn

    def __repr__(self) -> str:
        return f"VM({self.versions.name}, mode={self.mode})"


def _caller(name: str, function):
    """``kvm.<name>(...)``: run the body of this version set, on the log's call stack."""
    def call(self, *args, **kwargs):
        stack = self.log.stack
        stack.append(name)
        try:
            return function(self, *args, **kwargs)
        finally:
            stack.pop()

    call.__name__ = call.__qualname__ = name
    return call


def dispatch_class(versions) -> type:
    """The VM class whose methods are ``versions``' kernel functions (made once per
    version set and kept in its cache; the VM's own methods and state come first,
    as they did when names were looked up one by one)."""
    functions = versions.functions()
    cache = getattr(versions, "_cache", None)
    made = cache.get("vm class") if isinstance(cache, dict) else None
    if made is not None and made[0] is functions:
        return made[1]
    namespace = {name: _caller(name, function) for name, function in functions.items()
                 if not hasattr(VM, name)}
    made = (functions, type(f"VM[{getattr(versions, 'name', versions)}]", (VM,), namespace))
    if isinstance(cache, dict):
        cache["vm class"] = made
    return made[1]


@dataclass
class kvm_gfn_range:  # noqa: N801 - include/linux/kvm_host.h
    """struct kvm_gfn_range: what mmu_notifier handlers get."""

    slot: kvm_memory_slot
    start: int
    end: int
    arg: object = None       # change_pte: the new (pfn, writable) host PTE
    may_block: bool = False
