"""The environment for the reach operations: memslot generations, MMIO faults, write tracking.

Part of the environment (``harness.translate.environment`` merges these tables
into its own); kept apart so that file stays near its size.  Everything here is
what the translated C of ``kernel_models.reach_operations``' entry points
(``kvm_mmu_page_fault``, ``kvm_mmu_get_shadow_page``, ``mmu_sync_children``,
``kvm_page_track_register_notifier``...) assumes of the world outside the
tree's files, each read in the C at v6.9 (``/tmp/ktree``) first:

- **The memslot generation.**  ``kvm_memslots(kvm)->generation`` and
  ``kvm_vcpu_memslots(vcpu)->generation`` (include/linux/kvm_host.h, read by
  mmu.c check_mmio_spte and spte.c make_mmio_spte) are the VM's
  ``memslots_generation``, which kvm_main.c kvm_swap_active_memslots steps
  (``kernel_models.kvm_main``, a host model run by every state).
- **Error pfns** (include/linux/kvm_host.h): the hand-written host functions return
  the models' stand-ins (``kernel_models.kvm_main``: ``KVM_PFN_ERR_FAULT`` is bit 52,
  ``KVM_PFN_NOSLOT`` and ``KVM_PFN_ERR_RO_FAULT`` small offsets from it); the
  translated C compares with the kernel's values (``KVM_PFN_ERR_MASK`` is
  ``0x7ff << 52``, ``KVM_PFN_NOSLOT`` bit 63, ``is_error_pfn`` tests the mask), so
  a pfn the host side hands the translation is given in the kernel's encoding
  (``kernel_pfn``).  Before this, a fault outside every slot took the error-pfn
  path (-EFAULT) instead of kvm_handle_noslot_fault.
- **Write tracking** (page_track.c): ``slot->arch.gfn_write_track`` is the model's
  ``slot.gfn_write_track`` (index -> count, 0 where absent), present from the slot's
  creation on, as ``kernel_models.page_track`` takes the arrays to be (so
  kvm_page_track_write_tracking_alloc finds it allocated and allocates nothing).
  ``kvm->arch.external_write_tracking_enabled`` and ``shadow_root_allocated`` are the
  VM's own flags (``vm_objects.VmArch``), so the operations and the invariants read
  what the translated C wrote.
- **The external tracker** (CONFIG_KVM_EXTERNAL_WRITE_TRACKING on, as KVMGT selects
  it): ``kvm->arch.track_notifier_head.track_notifier_list`` is a list of the
  registered ``struct kvm_page_track_notifier_node``s (the operation's KVMGT node);
  the hlist RCU/SRCU calls of page_track.c are list operations, their read sides
  no-ops (one thread); ``kvm_get_kvm``/``kvm_put_kvm`` (the VM's user count) and the
  ``mutex_*`` locks change nothing the logs record; ``current->mm`` is the VM's
  ``mm`` (the operations run in the VM's process).
- **The root an unsync page hangs from** (``mmu_sync_children``): the operation
  ``sync_shadow`` names the gfn's shadow pages, as the hand-written model's reduced
  ``mmu_unsync_walk`` takes them (the mix links no shadowed guest table under a nested
  root).  The translated walk needs the parent: ``sync_parent`` stands one in, as
  kvm_mmu_mark_parents_unsync would have left it, a level-2 indirect page whose
  entry ``i`` points to the ``i``-th valid unsync 4K page of the list with its bit
  set in ``unsync_child_bitmap`` and ``unsync_children`` counting them.  It is no
  table of the VM (no pfn, never in ``mmu_pages``, nothing links it), so building
  it and what the walk clears in it are no effects; the pages themselves are the
  VM's and everything done to them is logged.  kvm_mmu_sync_roots runs with the
  vCPU in L2, its MMU the nested one the pages were made under, so for the call
  ``vcpu->arch.mmu->root_role`` is that MMU's (``nested_root_role``: the pages' role
  bits at the root level); kvm_sync_page_check compares the page's role word with
  it under a mask of ignored fields, so ``role.word`` is the union's bit layout
  (``vm_objects.role_word``) and a ``union kvm_mmu_page_role`` local of translated
  code reads its word from its fields (``new_struct``).
- **The vCPU** (``prepare_vcpu``): ``vcpu->arch.hflags`` is 0 (not in guest mode, not
  in SMM: kvm_arch_vcpu_memslots_id gives address space 0; the default is
  ``environment.FIELD_DEFAULTS``); ``mmu->page_fault`` is
  kvm_tdp_page_fault (init_kvm_tdp_mmu: both MMUs of the mix are TDP), which
  kvm_mmu_do_page_fault calls through and compares against.
- **The emulator** (x86.c ``x86_emulate_instruction``, where
  kvm_mmu_page_fault sends an MMIO access or a write to a shadowed table):
  not modelled, as the hand-written kvm_mmu_page_fault stops at the
  decision to emulate; it returns 1 (the guest resumes) and does nothing.
"""

from __future__ import annotations

from harness.translate import vm_objects
from harness.translate.runtime import M64, Struct


def lower_32_bits(vm, value):
    """include/linux/kernel.h: the low 32 bits."""
    return value & 0xFFFFFFFF


def x86_emulate_instruction(vm, vcpu, cr2_or_gpa, emulation_type, insn, insn_len):
    """x86.c: the emulator is not modelled (see the module docstring): resume the guest."""
    return 1


KVM_PFN_ERR_MASK = 0x7FF << 52                  # include/linux/kvm_host.h (v6.9)
KERNEL_PFNS = {}


def kernel_pfn(pfn: int) -> int:
    """The kernel's value for a pfn the hand-written host side returned."""
    if not KERNEL_PFNS:
        from kernel_models import kvm_main
        KERNEL_PFNS.update({kvm_main.KVM_PFN_ERR_FAULT: KVM_PFN_ERR_MASK,
                            kvm_main.KVM_PFN_NOSLOT: 1 << 63,
                            kvm_main.KVM_PFN_ERR_RO_FAULT: KVM_PFN_ERR_MASK + 2})
    return KERNEL_PFNS.get(pfn, pfn)


class Memslots:
    """``struct kvm_memslots`` of one address space: its ``generation`` is the VM's
    (address space 0; the model keeps one generation, as kvm_main.c steps both alike)."""

    def __init__(self, kvm, as_id: int):
        self.kvm, self.as_id = kvm, as_id

    @property
    def generation(self) -> int:
        return self.kvm.memslots_generation & M64

    @property
    def id_hash(self) -> list:
        """The address space's slots (``kvm_for_each_memslot`` walks them)."""
        return [slot for slot in self.kvm.memslots if slot.as_id == self.as_id]

    node_idx = 0                     # which of the slots' two node sets is active


class TrackCounts(dict):
    """``slot->arch.gfn_write_track``: the model's counts, and an array that exists."""

    def __bool__(self) -> bool:
        return True


def gfn_write_track(slot) -> TrackCounts:
    """The slot's count array; the model's dict becomes it, contents kept."""
    if not isinstance(slot.gfn_write_track, TrackCounts):
        slot.gfn_write_track = TrackCounts(slot.gfn_write_track)
    return slot.gfn_write_track


def _hash_entries(vm, table, member=None):
    """``hash_for_each(table, bkt, obj, member)``: (bucket, entry) for every entry."""
    for bucket, entry in enumerate(list(table)):
        yield bucket, entry


def _set_bits(vm, bitmap, size):
    """``for_each_set_bit``: a bitmap the models keep as a set of indices (a shadow
    page's ``unsync_child_bitmap``), or an integer."""
    if isinstance(bitmap, (set, frozenset)):
        yield from sorted(i for i in bitmap if i < int(size))
        return
    value = bitmap if isinstance(bitmap, int) else 0
    for bit in range(int(size)):
        if value >> bit & 1:
            yield bit


def _bit_op(change, result):
    """A bitop over a set of indices (``sp->unsync_child_bitmap``, as the models keep it)
    or over a word through its Ref."""
    def bitop(vm, bit, target):
        bits = target if isinstance(target, set) else {
            i for i in range(64) if target.get() >> i & 1}
        old = bit in bits
        change(bits, bit)
        if not isinstance(target, set):
            target.set(sum(1 << i for i in bits))
        return result(old)
    return bitop


_SET = _bit_op(set.add, lambda old: None)
_CLEAR = _bit_op(set.discard, lambda old: None)
_TEST_SET = _bit_op(set.add, bool)
_TEST_CLEAR = _bit_op(set.discard, bool)

# bitops.h on the models' sets (mmu.c mark_unsync, clear_unsync_child_bit) as on words
BITOPS = {"set_bit": _SET, "__set_bit": _SET, "clear_bit": _CLEAR, "__clear_bit": _CLEAR,
          "test_and_set_bit": _TEST_SET, "__test_and_set_bit": _TEST_SET,
          "test_and_clear_bit": _TEST_CLEAR, "__test_and_clear_bit": _TEST_CLEAR,
          "test_bit": lambda vm, bit, target: (bit in target if isinstance(target, set)
                                               else bool(runtime_load(target) >> bit & 1))}


def runtime_load(target):
    from harness.translate.runtime import _load
    return _load(target)


FOREACH = {"hash_for_each": _hash_entries, "for_each_set_bit": _set_bits,
           "hlist_for_each_entry_srcu":
               lambda vm, head, member=None, *rest: iter(list(vm_objects._entries(head)))}
FOREACH_CURSORS = {"hash_for_each": (1, 2)}


def prepare_vm(vm) -> None:
    """The VM fields the reach entry points read by the kernel's names."""
    vm.__dict__.setdefault("current", Struct("struct task_struct", mm=vm.mm))
    arch = vm.__dict__["arch"]
    if "track_notifier_head" not in arch.__dict__:
        arch.__dict__["track_notifier_head"] = Struct(
            "struct kvm_page_track_notifier_head", track_notifier_list=[], track_srcu=0)


MEMSLOT_FUNCTIONS = {
    "__kvm_memslots": lambda kvm, as_id: Memslots(kvm, as_id),
}

PRIMITIVES: dict = {
    "lower_32_bits": lower_32_bits, "x86_emulate_instruction": x86_emulate_instruction,
    # kvm_cache_regs.h: vcpu->arch.hflags & HF_GUEST_MASK (bit 0); the mix's vCPU runs L1
    "is_guest_mode": lambda vm, vcpu: bool(vcpu.arch.hflags & 1),
    # page_track.c's notifier list and locks (see the module docstring)
    "hlist_add_head_rcu": vm_objects.list_add, "hlist_del_rcu": vm_objects.list_del,
    "hlist_empty": lambda vm, head: vm_objects.list_empty(vm, head),
    "srcu_read_lock": lambda vm, srcu: 0, "srcu_read_unlock": lambda vm, srcu, idx: None,
    "srcu_read_lock_held": lambda vm, srcu: True, "synchronize_srcu": lambda vm, srcu: None,
    "mutex_lock": lambda vm, lock: None, "mutex_unlock": lambda vm, lock: None,
    "kvm_get_kvm": lambda vm, kvm: None, "kvm_put_kvm": lambda vm, kvm: None,
}


def prepare_vcpu(vcpu) -> None:
    """The vCPU's MMU hooks the reach entry points call through: both MMUs of the mix are
    TDP (mmu.c init_kvm_tdp_mmu sets ``page_fault`` to kvm_tdp_page_fault, which
    kvm_mmu_do_page_fault calls and compares against)."""
    from harness.translate.runtime import _FunctionRef
    mmu = vcpu.arch.mmu
    if vcpu.kvm is not None and "page_fault" not in mmu.__dict__:
        mmu.page_fault = _FunctionRef(vcpu.kvm, "kvm_tdp_page_fault")


def sync_parent(vm, pages: list):
    """The stand-in parent of ``pages`` for mmu_sync_children (see the module docstring)."""
    from kernel_models.spte import SPTE_MMU_PRESENT_MASK
    children = [sp for sp in pages if sp.role.level == 1 and sp.unsync
                and not vm.is_obsolete_sp(sp)]
    parent = Struct("struct kvm_mmu_page", role=vm_objects.PageRole(
        "union kvm_mmu_page_role", level=2, direct=False), unsync=False, gfn=0,
        unsync_children=len(children), unsync_child_bitmap=set(range(len(children))),
        spt={i: (sp.pfn << 12) | SPTE_MMU_PRESENT_MASK | vm.shadow_present_mask
             for i, sp in enumerate(children)})
    pages.clear()                       # as the model's walk takes them
    return parent


def nested_root_role(sp):
    """The root role of the MMU an L2 shadow page was made under (kvm_init_shadow_ept_mmu:
    the page's role bits, at the nested root's level)."""
    fields = {name: getattr(sp.role, name, 0) for name in vm_objects.ROLE_FIELDS}
    return vm_objects.PageRole("union kvm_mmu_page_role", **{**fields, "level": 4})


def _sync_children(translated):
    def mmu_sync_children(vm, vcpu, parent, can_yield):
        if not isinstance(parent, list):
            return translated(vm, vcpu, parent, can_yield)
        # the operation's list of the gfn's pages: kvm_mmu_sync_roots runs with the
        # vCPU in L2, its MMU the nested one those pages were made under
        mmu = vcpu.arch.mmu
        nested = [sp for sp in parent if not sp.role.direct]
        saved = mmu.__dict__.get("_root_role")
        if nested:
            mmu.__dict__["_root_role"] = nested_root_role(nested[0])
        try:
            return translated(vm, vcpu, sync_parent(vm, parent), can_yield)
        finally:
            mmu.__dict__["_root_role"] = saved
    return mmu_sync_children


def new_struct(layouts: dict, ctype: str, _positional=(), **fields):
    """A struct local of translated code; a ``union kvm_mmu_page_role`` local reads its
    ``word`` from its fields (kvm_sync_page_check's ``sync_role_ign``)."""
    from harness.translate.runtime import new_struct as plain
    value = plain(layouts, ctype, _positional, **fields)
    if ctype == "union kvm_mmu_page_role":
        value.__dict__.pop("word", None)
        value.__class__ = vm_objects.PageRole
    return value


# Translated functions an operation calls in the models' form: wrapped (C name -> wrapper).
ADAPTERS = {"mmu_sync_children": _sync_children}


# Constants the tree uses but defines outside its files.
CONSTANTS: dict[str, int] = {
    "USHRT_MAX": 0xFFFF,            # include/linux/limits.h (page_track.c's count limit)
    "ESRCH": 3,                     # include/uapi/asm-generic/errno-base.h
    # arch/x86/include/asm/page_64_types.h __PAGE_OFFSET_BASE_L4 (4-level, no KASLR): the
    # KVM_HVA_ERR_BAD that v6.12's kvm_mmu_do_page_fault starts fault.hva with
    "PAGE_OFFSET": 0xFFFF888000000000,
}

PRIMITIVES.update(BITOPS)

# Globals defined outside the tree's files that the translated C reads (prepare_vm sets them).
OUTSIDE_GLOBALS = frozenset({"current"})
