"""The environment: everything a translated function assumes about the world.

This is the one hand-written part of a translated tree state.  A reviewer
reads here what is assumed; everything else comes from the tree's C.

Interface (what ``harness.translate.emit`` generates code against): the
names of ``namespace()``, which the translated functions read as globals.

1. **Primitives** (``PRIMITIVES``, by kernel name; a helper renamed between
   releases is listed under each name it had): called ``name(vm, *C args)``.
   - host side, effects appended to the VM's ``EffectLog``
     (``kernel_models.effects``): folio accessed/dirty marks
     (``kvm_set_pfn_accessed``, ``kvm_set_page_accessed``,
     ``folio_mark_accessed``...), page references (``kvm_release_pfn_clean``,
     ``kvm_release_page_clean``, ``kvm_release_faultin_page``, ``put_page``...),
     ``mark_page_dirty_in_slot``, TLB flushes (``kvm_flush_remote_tlbs`` and its
     ``_range``/``_gfn``/``_memslot`` variants);
   - WARN-like macros (``WARN_ON``, ``WARN_ON_ONCE``, ``KVM_BUG_ON``,
     ``KVM_MMU_WARN_ON``...) return their condition and append a ``Warn``;
   - bit macros (``BIT``, ``BIT_ULL``, ``GENMASK_ULL``...), ``min``/``max``;
   - SPTE memory: ``READ_ONCE``/``WRITE_ONCE`` through a pointer, ``xchg``,
     ``cmpxchg``/``cmpxchg64``/``try_cmpxchg64`` (one thread: they always
     see the value they read);
   - memory and locking: lock/unlock and ``lockdep_assert_*`` are no-ops (one
     thread holds every lock), RCU read sections are no-ops and
     ``rcu_dereference`` is the pointer itself;
   - page-table memory: ``__va``/``__pa``/``pfn_to_page``/``page_private``/
     ``virt_to_page`` map table pfns to the VM's ``kvm_mmu_page`` objects.
2. **Constants** (``CONSTANTS``) the tree uses but defines outside its files
   (``PAGE_SHIFT``, the ``PG_LEVEL_*`` enum).
3. **Iterators** (``FOREACH``): generators for iterator macros defined outside
   the tree (``list_for_each_entry``, ``hlist_for_each_entry``,
   ``for_each_set_bit``...), yielding successive cursor values.
4. **VM objects**: the VM is ``kernel_models.vm.VM`` (``struct kvm``), pages are
   ``kernel_models.mmu_internal.kvm_mmu_page``, SPTE pointers are
   ``SptePointer`` (``Pointer`` adds C pointer arithmetic), struct locals are
   ``Struct`` objects laid out as the tree defines their type.  What the
   translated init and allocation paths assume of them is in
   ``harness.translate.vm_objects``: lists (``list_add``, ``list_first_or_null_rcu``...)
   over the VM's Python lists, memory caches (``kvm_mmu_memory_cache_alloc`` by
   cache kind: page header, shadow page, shadowed info, pte-list descriptor),
   ``vcpu->arch.mmu->root`` as a ``struct kvm_mmu_root_info`` (``prepare_vcpu``;
   ``root_role``/``cpu_role`` come from the model's MMU fields), ``refcount_*``,
   and the ``kvm->arch`` counters of the shadow MMU's page limit.
5. **The reach operations' world** (``harness.translate.environment_reach``, merged
   into these tables): the memslot generation, error pfns in the kernel's encoding,
   the emulator's place, the slots' write-track counts, the external tracker's
   notifier list, the nested MMU a shadowed L2 table is synced under.
6. **Runtime support** (``harness.translate.runtime``: ``_load``, ``_store``,
   ``_u64``, ``_Goto``...): C semantics the generated code needs, no assumptions.

A name that is neither translated from the tree nor here is ``_unknown``:
calling it raises ``EnvironmentMiss`` naming it.
"""

from __future__ import annotations

from harness.translate import environment_reach, runtime, vm_objects
from harness.translate.runtime import (M64, PTE_LIST_EXT, EnvironmentMiss, Pointer, Ref, RmapCursor,
                                       RmapHead,
                                       SptePointer, Struct, _address, _load, _store, new_struct)
from kernel_models import effects as E


class StaticKey(str):
    """``&name`` of a kernel object defined outside the tree (a static key): its name."""


def _prim(vm, name):
    if name not in PRIMITIVES:
        return StaticKey(name)
    primitive = PRIMITIVES[name]
    return lambda *args: primitive(vm, *args)


def _unknown(vm, name):
    def missing(*args):
        raise EnvironmentMiss(f"{name}: defined neither in the tree nor in the environment")
    return missing


def _unknown_value(vm, name):
    if name in vm.__dict__ and name in OUTSIDE_GLOBALS:     # x86.c's globals, set per VM
        return vm.__dict__[name]
    if name.startswith("X86_FEATURE_"):  # a CPU feature bit: the modelled host has none of
        return StaticKey(name)           # the mitigation features (cpu_feature_enabled: false)
    if name.startswith("CONFIG_"):       # IS_ENABLED(CONFIG_X) in code: preprocess.CONFIG
        from harness.translate.preprocess import CONFIG
        return int(name in CONFIG)
    raise EnvironmentMiss(f"{name}: defined neither in the tree nor in the environment")


def _foreach(vm, macro, args):
    generator = FOREACH.get(macro)
    if generator is None:
        raise EnvironmentMiss(f"iterator macro {macro}: not in the environment")
    return generator(vm, *args)


# ---------------------------------------------------------------------------
# Primitives
# ---------------------------------------------------------------------------

def BIT(vm, n):  # noqa: N802 - kernel macro names
    return 1 << n


def GENMASK_ULL(vm, high, low):  # noqa: N802
    return ((1 << (high + 1)) - 1) & ~((1 << low) - 1)


def _pass(vm, value, *rest):
    return value


def _nothing(vm, *args):
    return None


def _true(vm, *args):
    return True


def _false(vm, *args):
    return False


def _warn(vm, condition=True, *rest, what=""):
    if condition:
        vm.emit(E.Warn(what=what))
    return bool(condition)


def _warn_message(vm, condition=True, *rest, what=""):
    return _warn(vm, condition, what=what)


def _mmu_warn(vm, condition=False, *rest, what=""):
    """KVM_MMU_WARN_ON: a WARN with CONFIG_KVM_PROVE_MMU, otherwise never evaluated."""
    if getattr(vm, "prove_mmu", False):
        return _warn(vm, condition, what=what)
    return False


def _bug(vm, condition=True, *rest, what=""):
    if condition:
        vm.emit(E.Bug(what=what))
    return bool(condition)


def _bug_on(vm, condition=True, *rest, what=""):
    if condition:
        _bug_always(vm, what=what)


class KernelStop(Exception):  # noqa: N818 - BUG() does not return
    """BUG(): the kernel stops here; the caller of the translated code sees the log so far."""


def _bug_always(vm, *rest, what=""):
    vm.emit(E.Bug(what=what))
    raise KernelStop(what)


def WRITE_ONCE(vm, target, value):  # noqa: N802
    target.set(value)


def xchg(vm, pointer, value):
    return pointer.exchange(value)


def cmpxchg(vm, pointer, old, new):
    current = pointer.get()
    if current == old:
        pointer.set(new)
    return current


def try_cmpxchg64(vm, pointer, old_ref, new):
    current = pointer.get()
    if current == old_ref.get():
        pointer.set(new)
        return True
    old_ref.set(current)
    return False






















def _min(vm, a, b):
    return a if a < b else b


def _max(vm, a, b):
    return a if a > b else b


def _min_t(vm, typ, a, b):
    return a if a < b else b


def _max_t(vm, typ, a, b):
    return a if a > b else b


def __va(vm, address):  # noqa: N807
    page = vm.mmu_pages.get(address >> 12)
    return Pointer(page, (address & 0xFFF) // 8) if page is not None else address


def __pa(vm, pointer):  # noqa: N807
    return _address(pointer)


def pfn_to_page(vm, pfn):
    return vm.mmu_pages.get(pfn, pfn)


def page_private(vm, page):
    return page


def virt_to_page(vm, pointer):
    return pointer.sp if isinstance(pointer, SptePointer) else pointer


def _is_shadow_page(vm, sp):
    return sp


def KVM_ARCH_REQ_FLAGS(vm, nr, flags=0):  # noqa: N802 - kvm_host.h: request number with flags
    return (nr + 8) | flags


PRIMITIVES: dict = {
    "KVM_ARCH_REQ_FLAGS": KVM_ARCH_REQ_FLAGS,
    # bits
    "BIT": BIT, "BIT_ULL": BIT, "GENMASK_ULL": GENMASK_ULL, "GENMASK": GENMASK_ULL,
    "BIT_ULL_MASK": BIT,
    # branch hints and one-thread memory order
    "likely": _pass, "unlikely": _pass, "READ_ONCE": _pass, "data_race": _pass,
    "WRITE_ONCE": WRITE_ONCE, "smp_store_mb": WRITE_ONCE, "page_to_pfn": _pass,
    "pte_huge": _false,
    # static keys outside the tree (cpu_buf_vm_clear...): the modelled host enables none
    "static_branch_unlikely": _false, "static_branch_likely": _false,
    "static_key_enabled": _false, "cpu_feature_enabled": _false, "boot_cpu_has": _false,
    "static_cpu_has": _false,
    # guard(rcu)(), guard(spinlock)(...): scope-bound locks, held by the one thread
    "guard": lambda vm, kind: (lambda *args: None), "xchg": xchg, "cmpxchg": cmpxchg, "cmpxchg64": cmpxchg,
    "try_cmpxchg64": try_cmpxchg64, "try_cmpxchg": try_cmpxchg64,
    "smp_wmb": _nothing, "smp_rmb": _nothing, "smp_mb": _nothing, "barrier": _nothing,
    "smp_mb__after_atomic": _nothing, "smp_load_acquire": lambda vm, p: _load(p),
    "smp_store_release": lambda vm, p, v: _store(p, v),
    # WARN family
    "WARN_ON": _warn, "WARN_ON_ONCE": _warn, "WARN": _warn_message, "WARN_ONCE": _warn_message,
    "KVM_BUG_ON": _warn, "KVM_MMU_WARN_ON": _mmu_warn, "WARN_ON_SMP": _warn,
    "KVM_BUG_ON_DATA_CORRUPTION": _bug, "BUG_ON": _bug_on, "BUG": _bug_always,
    "mod_lruvec_page_state": _nothing, "kvm_account_pgtable_pages": _nothing,
    "BUILD_BUG_ON": _nothing, "VM_BUG_ON": _nothing, "VM_WARN_ON": _nothing, "BUILD_BUG_ON_INVALID": _nothing, "static_assert": _nothing,
    # locking and RCU (one thread holds every lock)
    "lockdep_assert_held": _nothing, "lockdep_assert_held_read": _nothing,
    "lockdep_assert_held_write": _nothing, "lockdep_assert_preemption_disabled": _nothing,
    "lockdep_assert_once": _nothing,
    "lockdep_is_held": _true, "lockdep_assert_not_held": _nothing,
    "spin_lock": _nothing, "spin_unlock": _nothing, "write_lock": _nothing,
    "write_unlock": _nothing, "read_lock": _nothing, "read_unlock": _nothing,
    "rcu_read_lock": _nothing, "rcu_read_unlock": _nothing, "rcu_dereference": _pass,
    "rcu_dereference_check": _pass, "rcu_dereference_raw": _pass,
    "rcu_dereference_protected": _pass, "srcu_dereference_check": _pass,
    "srcu_dereference": _pass, "IS_ENABLED": _pass,
    "xa_load": lambda vm, array, index: array.get(index) if isinstance(array, dict) else None,
    "xa_to_value": lambda vm, entry: entry or 0, "rcu_assign_pointer": WRITE_ONCE,
    "RCU_INIT_POINTER": WRITE_ONCE, "rcu_read_lock_held": _true,
    "cond_resched": _nothing, "need_resched": _false, "rwlock_needbreak": _false,
    "cond_resched_rwlock_read": _false, "cond_resched_rwlock_write": _false,
    "might_sleep": _nothing, "pr_err": _nothing, "pr_info": _nothing, "pr_warn": _nothing,
    "pr_debug": _nothing, "pr_err_ratelimited": _nothing, "printk": _nothing,
    "pr_warn_once": _nothing, "pr_info_once": _nothing, "pr_err_once": _nothing,
    "pr_warn_ratelimited": _nothing, "pr_debug_ratelimited": _nothing,
    "task_pid_nr": lambda vm, task: 0,     # kvm_debug_ratelimited's message argument only
    "dump_stack": _nothing, "local_irq_disable": _nothing, "local_irq_enable": _nothing,
    "preempt_disable": _nothing, "preempt_enable": _nothing,
    "kvm_make_all_cpus_request": _nothing, "kvm_make_request": _nothing,
    "kvm_vcpu_kick": _nothing,
    # arithmetic helpers
    "min": _min, "max": _max, "min_t": _min_t, "max_t": _max_t,
    # page-table memory
    "__va": __va, "__pa": __pa, "pfn_to_page": pfn_to_page, "page_private": page_private,
    "virt_to_page": virt_to_page, "phys_to_virt": __va, "virt_to_phys": __pa,
    # bit operations
    "ffs": lambda vm, x: (x & -x).bit_length(), "__ffs": lambda vm, x: (x & -x).bit_length() - 1,
    "fls": lambda vm, x: x.bit_length(), "fls64": lambda vm, x: x.bit_length(),
    "__fls": lambda vm, x: x.bit_length() - 1, "hweight64": lambda vm, x: bin(x).count("1"),
    "clear_bit": lambda vm, bit, ref: ref.set(ref.get() & ~(1 << bit)),
    "set_bit": lambda vm, bit, ref: ref.set(ref.get() | (1 << bit)),
    "__clear_bit": lambda vm, bit, ref: ref.set(ref.get() & ~(1 << bit)),
    "__set_bit": lambda vm, bit, ref: ref.set(ref.get() | (1 << bit)),
    "test_bit": lambda vm, bit, ref: bool(_load(ref) >> bit & 1),
    "test_and_clear_bit": lambda vm, bit, ref: _test_and(ref, bit, False),
    "test_and_set_bit": lambda vm, bit, ref: _test_and(ref, bit, True),
    # counters (a stat counter of the VM appends a StatChange)
    "atomic64_add": lambda vm, n, ref: _count(vm, ref, n),
    "atomic64_sub": lambda vm, n, ref: _count(vm, ref, -n),
    "atomic64_inc": lambda vm, ref: _count(vm, ref, 1),
    "atomic64_dec": lambda vm, ref: _count(vm, ref, -1),
    "atomic_inc": lambda vm, ref: _count(vm, ref, 1),
    "atomic_dec": lambda vm, ref: _count(vm, ref, -1),
    "atomic64_read": lambda vm, ref: _load(ref), "atomic_long_read": lambda vm, ref: _load(ref),
    "atomic_long_set": lambda vm, ref, v: ref.set(v),
    "atomic_long_set_release": lambda vm, ref, v: ref.set(v),
    "atomic_long_cmpxchg": lambda vm, ref, old, new: cmpxchg(vm, ref, old, new),
    "atomic_long_try_cmpxchg": lambda vm, ref, old, new: try_cmpxchg64(vm, ref, old, new),
    "atomic_long_try_cmpxchg_acquire":
        lambda vm, ref, old, new: try_cmpxchg64(vm, ref, old, new), "atomic_read": lambda vm, ref: _load(ref),
    "atomic64_set": lambda vm, ref, v: ref.set(v), "atomic_set": lambda vm, ref, v: ref.set(v),
    # vendor hooks: static_call(name)(args...)
    "static_call": lambda vm, name: VENDOR.get(name, _vendor_missing(name)),
    "static_call_cond": lambda vm, name: VENDOR.get(name, _nothing_vendor),
    "page_count": lambda vm, page: _page_count(vm, page),
    # memory: RCU callbacks run at once (one thread, no readers left); freeing a table
    # page drops it from the VM, as the models' tdp_mmu_free_sp does
    "call_rcu": lambda vm, head, callback: callback(head),
    "container_of": lambda vm, pointer, ctype, member: (
        pointer.container if isinstance(pointer, Ref) else pointer),
    "free_page": lambda vm, address: (vm.mmu_pages.pop(_address(address) >> 12, None)
                                      if isinstance(_address(address), int) else None) and None,
    "kmem_cache_free": _nothing, "kfree": _nothing,
    "kvm_mmu_memory_cache_alloc": lambda vm, cache: Struct(
        "struct pte_list_desc", more=None, spte_count=0, tail_count=0,
        sptes=[None] * PTE_LIST_EXT),
    "hash_64": lambda vm, value, bits: hash_64(vm, value, bits),
    "atomic64_fetch_and": lambda vm, mask, ref: _fetch(ref, lambda v: v & mask),
    "atomic64_fetch_or": lambda vm, mask, ref: _fetch(ref, lambda v: v | mask),
    "atomic64_xchg": lambda vm, ref, value: _fetch(ref, lambda v: value),
}


PRIMITIVES.update(vm_objects.PRIMITIVES)
PRIMITIVES.update(environment_reach.PRIMITIVES)     # the reach operations' world


def _page_count(vm, page):
    from kernel_models.mmu import page_count       # the models' own host fact
    return page_count(vm, page)


def _fetch(ref, change):
    old = _load(ref)
    ref.set(change(old))
    return old


def _test_and(ref, bit, value):
    old = ref.get()
    ref.set(old | (1 << bit) if value else old & ~(1 << bit))
    return bool(old >> bit & 1)


class StatCounters(list):
    """``kvm->stat.<name>[]``: per-level counters whose changes are effects."""

    def __init__(self, name, size=5):
        super().__init__([0] * size)
        self.name = name


# VM-wide counters (``kvm->arch.<name>``) whose changes are effects, as the models log them.
COUNTERS = frozenset({"tdp_mmu_pages"})


def _count(vm, ref, delta):
    if isinstance(ref, Ref) and isinstance(ref.container, StatCounters):
        vm.emit(E.StatChange(stat=ref.container.name, level=ref.key + 1, delta=delta))
    elif isinstance(ref, Ref) and ref.key in COUNTERS and ref.container is vm.__dict__.get("arch"):
        vm.emit(E.StatChange(stat=ref.key, level=0, delta=delta))
    ref.set(_load(ref) + delta)


def _vendor_missing(name):
    def missing(*args):
        raise EnvironmentMiss(f"vendor hook {name}: not in the environment")
    return missing


def _nothing_vendor(*args):
    return None


class VendorOps:
    """``kvm_x86_ops``: its data fields are the VM's (``cpu_dirty_log_size``: PML)."""

    def __init__(self, vm):
        self.__dict__["_vm"] = vm

    def __getattr__(self, name):
        return self._vm.__dict__.get(name, 0)


# Vendor (VMX/SVM) hooks reached through static_call: the models run no vendor code.
VENDOR: dict = {
    "kvm_x86_get_mt_mask": lambda vcpu, gfn, is_mmio: 0,
    "kvm_x86_flush_remote_tlbs": lambda kvm: -95,
}

# Functions whose hand-written model returns what the C writes through its last
# parameter (a ``u64 *`` output): called without it, the translation is adapted.
OUTPUT_POINTERS = frozenset({"make_spte"})


def output_pointer_adapter(fn, arity: int):
    def adapted(vm, *args):
        if len(args) == arity:
            return fn(vm, *args)
        box = [0]
        returned = fn(vm, *args, Ref(box, 0))
        return returned, box[0]
    adapted.__name__ = fn.__name__
    adapted.__doc__ = fn.__doc__
    return adapted


# Primitives whose arguments name things rather than compute values.
NAME_ARGUMENTS = frozenset({"static_call", "guard", "static_call_cond", "container_of", "offsetof",
                            "list_entry", "hlist_entry", "list_first_entry", "list_last_entry",
                            "list_first_or_null_rcu", "list_next_or_null_rcu",
                            "list_first_entry_or_null"})
# Primitives whose first argument is an lvalue (the C macro writes through it).
LVALUE_FIRST = frozenset({"WRITE_ONCE", "smp_store_mb", "rcu_assign_pointer", "RCU_INIT_POINTER"})


# ---------------------------------------------------------------------------
# Host models: functions of virt/kvm/kvm_main.c and mm (outside the tree), called
# through the VM like translated functions, so their effects are the
# hand-written models' own (kernel_models.kvm_main).
# ---------------------------------------------------------------------------

def folio_mark_accessed(kvm, folio):
    kvm.emit(E.FolioAccessed(pfn=folio))


def folio_mark_dirty(kvm, folio):
    kvm.emit(E.FolioDirty(pfn=folio))


def kvm_release_faultin_page(kvm, page, unused, dirty):
    """v6.13+: the fault path's release (kvm_release_page_{unused,dirty,clean})."""
    if page is None:
        return
    if unused:
        kvm.put_page(page)
    elif dirty:
        kvm.kvm_release_page_dirty(page)
    else:
        kvm.kvm_release_page_clean(page)


def gfn_to_pfn_memslot(kvm, slot, gfn, *args):
    """virt/kvm/kvm_main.c ``__gfn_to_pfn_memslot`` as the C calls it (v6.1..v6.12:
    ``slot, gfn, atomic, interruptible, async, write_fault, writable, hva``): the
    hand-written model's (pfn, writable), written through the output pointers.  v6.1 has
    no ``interruptible``."""
    from kernel_models import kvm_main
    if len(args) < 5:
        return kvm_main.__gfn_to_pfn_memslot(kvm, slot, gfn, *args)
    if len(args) == 5:          # v6.1: no ``interruptible`` yet
        atomic, async_ref, write_fault, writable_ref, hva_ref = args
    else:
        atomic, _interruptible, async_ref, write_fault, writable_ref, hva_ref = args[:6]
    pfn, writable = kvm_main.__gfn_to_pfn_memslot(kvm, slot, gfn, atomic, write_fault)
    for ref, value in ((async_ref, False), (writable_ref, writable), (hva_ref, 0)):
        if ref is not None:
            ref.set(value)
    return environment_reach.kernel_pfn(pfn)


def gfn_to_page_many_atomic(kvm, slot, gfn, *args):
    """kvm_main.c as the C calls it (``slot, gfn, pages, nr_pages`` -> count): the
    hand-written model's pfns (a page is its pfn here), written into ``pages``."""
    from kernel_models.mmu_fault import gfn_to_page_many_atomic as model
    if len(args) == 1:
        return model(kvm, slot, gfn, *args)
    pages, nr_pages = args
    got = model(kvm, slot, gfn, nr_pages)
    for i, pfn in enumerate(got):
        pages[i] = pfn
    return len(got)


def kvm_vcpu_read_guest_atomic(kvm, vcpu, gpa, *args):
    """kvm_main.c as the C calls it (``vcpu, gpa, data, len`` -> 0 or -EFAULT): the
    hand-written model's 8-byte reads (``kvm.guest_memory``), written into ``data``."""
    from kernel_models.paging_tmpl import kvm_vcpu_read_guest_atomic as model
    if len(args) == 1:
        return model(kvm, vcpu, gpa, *args)
    data, length = args
    count = max(int(length) // 8, 1)
    for i in range(count):
        error, value = model(kvm, vcpu, gpa + 8 * i, 8)
        if error:
            return error
        if count == 1 and isinstance(data, Ref):
            data.set(value)
        else:
            data[i] = value
    return 0


# include/linux/mm_types.h (enum of gup flags); only FOLL_WRITE's meaning is read here
FOLL = {"FOLL_WRITE": 1 << 0, "FOLL_GET": 1 << 1, "FOLL_NOWAIT": 1 << 4,
        "FOLL_INTERRUPTIBLE": 1 << 11}


def kvm_faultin_pfn_host(kvm, slot, gfn, foll, writable_ref, page_ref):
    """kvm_main.c ``__kvm_faultin_pfn`` (v6.13 on: ``slot, gfn, foll, &writable,
    &refcounted_page`` -> pfn): the hand-written ``__gfn_to_pfn_memslot``, which takes the
    page reference; the page is written through ``refcounted_page``."""
    from kernel_models import kvm_main
    pfn, writable = kvm_main.__gfn_to_pfn_memslot(kvm, slot, gfn, False,
                                                  bool(foll & FOLL["FOLL_WRITE"]))
    writable_ref.set(writable)
    page_ref.set(kvm.kvm_pfn_to_refcounted_page(pfn) if pfn < (1 << 52) else None)
    return environment_reach.kernel_pfn(pfn)


def kvm_vcpu_gfn_to_memslot(kvm, vcpu, gfn):
    """virt/kvm/kvm_main.c: the memslot holding ``gfn`` (the VM's list, address space 0)."""
    return kvm.gfn_to_memslot(gfn)


def gfn_to_memslot(kvm, gfn):
    return kvm.gfn_to_memslot(gfn)


# Memslot lookup (include/linux/kvm_host.h): the tree defines it over struct kvm_memslots
# (an rbtree, a hash and last_used_slot); the environment's memslots are the VM's list, so
# these replace the translations (harness.translate.vm_objects).
MEMSLOT_FUNCTIONS = {**vm_objects.MEMSLOT_FUNCTIONS, **environment_reach.MEMSLOT_FUNCTIONS}


def _host_models() -> dict:
    from kernel_models import kvm_main, x86
    found = {row.name: row.function for row in kvm_main.MODEL_TABLE + x86.MODEL_TABLE}
    found.update({"folio_mark_accessed": folio_mark_accessed, "folio_mark_dirty": folio_mark_dirty,
                  "kvm_release_faultin_page": kvm_release_faultin_page,
                  "mark_page_accessed": folio_mark_accessed, "SetPageDirty": folio_mark_dirty,
                  "kvm_vcpu_gfn_to_memslot": kvm_vcpu_gfn_to_memslot,
                  "gfn_to_memslot": gfn_to_memslot,
                  "__gfn_to_pfn_memslot": gfn_to_pfn_memslot,
                  "gfn_to_page_many_atomic": gfn_to_page_many_atomic,
                  "kvm_vcpu_read_guest_atomic": kvm_vcpu_read_guest_atomic,
                  "__kvm_faultin_pfn": kvm_faultin_pfn_host,
                  "kvm_prefetch_pages": gfn_to_page_many_atomic})
    return found


# Host functions whose C first parameter is ``struct kvm *kvm`` (dropped, as for the tree's).
HOST_TAKES_KVM = frozenset({"mark_page_dirty_in_slot", "kvm_flush_remote_tlbs", "gfn_to_memslot",
                            "kvm_flush_remote_tlbs_range", "kvm_flush_remote_tlbs_memslot",
                            "kvm_update_page_stats"})


def host_models() -> dict:
    """C name -> model function (kvm, *args) for the host side."""
    global _HOST
    if _HOST is None:
        _HOST = _host_models()
    return _HOST


_HOST = None


# Operations of the mix (kernel_models/reach_operations.py) that a translated state cannot run
# yet, each with what the environment lacks for it; they are skipped on translated states and
# listed in the operation level's coverage, as a release's missing entry points are.  None
# since the memslot, MMIO and write-tracking primitives (harness.translate.environment_reach).
OPERATIONS_NOT_YET: dict[str, str] = {}


# Globals defined outside the tree's files that the translated C reads (prepare_vm sets them).
OUTSIDE_GLOBALS = frozenset({"kvm_host", "kvm_ad_enabled"}) | environment_reach.OUTSIDE_GLOBALS


# Kernel globals the translated C reads that the VM's SPTE mode does not set.
GLOBAL_DEFAULTS = {**vm_objects.GLOBALS,
                   "shadow_phys_bits": 46, "max_huge_page_level": 3, "tdp_root_level": 4,
                   "max_tdp_level": 4, "nx_huge_pages": False, "enable_mmio_caching": False,
                   "force_flush_and_sync_on_reuse": False, "eager_page_split": True}


# Kernel fields the hand-written objects do not carry: they read as the zero value
# (class attributes, so an object that sets the field keeps its own value).
FIELD_DEFAULTS = {
    "kvm_mmu_page_role": {"smm": 0, "quadrant": 0, "has_4_byte_gpte": False, "cr0_wp": True,
                          "efer_nx": True, "smap_andnot_wp": False, "smep_andnot_wp": False,
                          "passthrough": False, "is_private": False,
                          "word": property(vm_objects.role_word)},
    "kvm_mmu": {"shadow_zero_check": Struct("rsvd_bits_validate",
                                            rsvd_bits_mask=[[0] * 5, [0] * 5], bad_mt_xwr=0),
                "guest_rsvd_check": Struct("rsvd_bits_validate",
                                           rsvd_bits_mask=[[0] * 5, [0] * 5], bad_mt_xwr=0)},
    "kvm_vcpu_arch": {"mmu_pte_list_desc_cache": Struct("kvm_mmu_memory_cache"),
                      "mmu_page_header_cache": Struct("kvm_mmu_memory_cache"),
                      "mmu_shadow_page_cache": Struct("kvm_mmu_memory_cache"),
                      "mmu_shadowed_info_cache": Struct("kvm_mmu_memory_cache"),
                      # not in SMM: the one bit the tree reads (kvm_host.h's
                      # kvm_arch_vcpu_memslots_id, v6.13.2 on)
                      "hflags": 0},
    # kvm_mmu_do_page_fault's initialiser (x86.c side): the fields the operations leave out
    "kvm_page_fault": {"error_code": 0, "rsvd": False, "is_private": False,
                       "nx_huge_page_workaround_enabled": False, "mmu_seq": 0, "hva": 0,
                       "write_fault_to_shadow_pgtable": False, "refcounted_page": None,
                       "host_pfn": 0},
    "kvm_mmu_page": {"role_word": 0, "rcu_head": 0, "unsync_children": 0, "write_flooding_count": 0,
                     "lpage_disallowed_link": None, "tdp_mmu_scheduled_root_to_zap": False,
                     "possible_nx_huge_page_link": None, "clear_spte_count": 0,
                     "shadowed_translation_list": None, "gfns": None, "external_spt": None,
                     **vm_objects.PAGE_FIELDS},
}


class LevelRmaps:
    """``slot->arch.rmap[level - 1]``: the rmap heads of one level, over the model's
    ``slot.rmap[(level, first gfn)]`` lists (index: gfn_to_index)."""

    def __init__(self, slot, level: int):
        self.slot, self.level = slot, level

    def __getitem__(self, index: int) -> RmapHead:
        shift = (self.level - 1) * 9
        gfn = (index + (self.slot.base_gfn >> shift)) << shift
        return RmapCursor(self.slot.rmap.setdefault((self.level, gfn), []), self, index)

    __add__ = __getitem__

    def __eq__(self, other):        # one slot level's array is the same array however reached
        return isinstance(other, LevelRmaps) and (other.slot, other.level) == (self.slot,
                                                                              self.level)

    def __hash__(self):
        return hash((id(self.slot), self.level))


def _lpage_info(slot, level: int) -> list:
    """``slot->arch.lpage_info[level - 2]`` as kvm_alloc_memslot_metadata (x86.c) fills it:
    one entry per huge page the slot spans, the head and tail disallowed when the slot's
    ends are not aligned to that level."""
    pages = 1 << ((level - 1) * 9)
    count = ((slot.base_gfn + slot.npages - 1) >> ((level - 1) * 9)) - \
        (slot.base_gfn >> ((level - 1) * 9)) + 1
    info = [Struct("struct kvm_lpage_info", disallow_lpage=0) for _ in range(count)]
    if slot.base_gfn & (pages - 1):
        info[0].disallow_lpage = 1
    if (slot.base_gfn + slot.npages) & (pages - 1):
        info[count - 1].disallow_lpage = 1
    return info


def _slot_arch(slot):
    """``slot->arch``: its rmaps as the model keeps them, the huge-page info as x86.c
    makes it for a new slot; the write-track counts are the model's
    (``environment_reach.gfn_write_track``), under both releases' names: up to v6.5
    ``gfn_track[mode]`` per tracking mode, whose only mode is KVM_PAGE_TRACK_WRITE = 0
    (v6.1.15 kvm_host.h ``kvm_arch_memory_slot``, page_track.c ``update_gfn_track``), from
    v6.6 ``gfn_write_track``."""
    if "_arch" not in slot.__dict__:
        write_track = environment_reach.gfn_write_track(slot)
        slot.__dict__["_arch"] = Struct("kvm_arch_memory_slot",
                                        rmap=[LevelRmaps(slot, level) for level in (1, 2, 3)],
                                        lpage_info=[_lpage_info(slot, level) for level in (2, 3)],
                                        gfn_write_track=write_track, gfn_track=[write_track])
    return slot.__dict__["_arch"]


def _mmu_roles(mmu):
    """``mmu->cpu_role.base`` / ``mmu->root_role``: the model's ``ad_disabled``,
    ``root_level`` and ``direct``, under the kernel's names."""
    base = vm_objects.PageRole("kvm_mmu_page_role", ad_disabled=mmu.ad_disabled,
                               level=mmu.root_level, direct=mmu.direct)
    return Struct("kvm_cpu_role", base=base)


def _install_field_defaults() -> None:
    from kernel_models.mmu_fault import kvm_mmu
    from kernel_models.vm import kvm_memory_slot
    from kernel_models.vm import kvm_gfn_range
    if not isinstance(kvm_gfn_range.__dict__.get("arg"), vm_objects.NotifierArgField):
        field = vm_objects.NotifierArgField()
        field.__set_name__(kvm_gfn_range, "arg")
        kvm_gfn_range.arg = field
        kvm_gfn_range.pte = property(lambda r: r.arg)      # v6.1: range->pte, not arg.pte
        kvm_gfn_range.attr_filter = 1      # v6.14+: KVM_FILTER_SHARED (mmu_notifier ranges)
    for name, value in vm_objects.SLOT_FIELDS.items():
        if not hasattr(kvm_memory_slot, name):
            setattr(kvm_memory_slot, name, value)
    if not hasattr(kvm_memory_slot, "arch"):
        kvm_memory_slot.arch = property(_slot_arch)
    if not hasattr(kvm_mmu, "cpu_role"):
        kvm_mmu.cpu_role = property(_mmu_roles)
        kvm_mmu.root_role = property(lambda mmu: mmu.__dict__.get("_root_role")
                                     or _mmu_roles(mmu).base)
    from kernel_models import mmu_fault, mmu_internal
    for class_name, fields in FIELD_DEFAULTS.items():
        cls = getattr(mmu_internal, class_name, None) or getattr(mmu_fault, class_name)
        for name, value in fields.items():
            if not hasattr(cls, name):
                setattr(cls, name, value)


_install_field_defaults()


GOLDEN_RATIO_64 = 0x61C8864680B583EB


def hash_64(vm, value, bits):
    """include/linux/hash.h hash_64 (the generic multiplicative hash)."""
    return ((value * GOLDEN_RATIO_64) & M64) >> (64 - bits)


class PageHash:
    """``kvm->arch.mmu_page_hash[]``: the shadow pages of each bucket, from the VM's list."""

    def __init__(self, vm, bits: int = 12):
        self.vm, self.bits = vm, bits

    def __getitem__(self, bucket):
        return [sp for sp in self.vm.active_mmu_pages
                if hash_64(self.vm, sp.gfn, self.bits) == bucket]

    def __add__(self, bucket):          # &mmu_page_hash[bucket]: the bucket's list head
        return self[bucket]


# Fields of struct kvm the models do not carry (locks are held, sequence counts start at 0).
VM_FIELDS = ("mm", "manual_dirty_log_protect", "mmu_lock", "slots_lock", "srcu", "mmu_invalidate_seq", "mmu_invalidate_in_progress",
             "mmu_invalidate_range_start", "mmu_invalidate_range_end", "nr_memslot_pages",
             "slots_arch_lock", "mn_active_invalidate_count", "vcpus_lock", "created_vcpus")


def prepare_vm(vm, layouts: dict | None = None) -> None:
    """Give the hand-written VM the fields translated C reads by the kernel's names."""
    layouts = layouts or {}
    for name, value in GLOBAL_DEFAULTS.items():
        vm.__dict__.setdefault(name, value)
    vm.__dict__.setdefault("cpu_dirty_log_size", 0)
    for name in VM_FIELDS:
        vm.__dict__.setdefault(name, 0)
    vm.__dict__.setdefault("kvm_x86_ops", VendorOps(vm))
    vm.__dict__.setdefault("kvm_host", Struct("struct kvm_host_values", maxphyaddr=46))
    if "kvm_ad_enabled" not in vm.functions:        # a variable from v6.13 on (spte.c)
        vm.__dict__.setdefault("kvm_ad_enabled",
                               vm_objects.CallableFlag(bool(vm.shadow_accessed_mask)))
    vm.__dict__.setdefault("mem_attr_array", {})     # xarray gfn -> attributes: none set
    if "stat" not in vm.__dict__:
        vm.__dict__["stat"] = new_struct(layouts, "struct kvm_vm_stat",
                                         pages=StatCounters("pages"))
    if "arch" not in vm.__dict__:
        vm.__dict__["arch"] = new_struct(layouts, "struct kvm_arch",
                                         tdp_mmu_roots=vm.tdp_mmu_roots,
                                         active_mmu_pages=vm.active_mmu_pages,
                                         mmu_page_hash=PageHash(vm),
                                         **vm_objects.ARCH_FIELDS)
        vm_objects.bind_arch(vm.__dict__["arch"], vm)
    environment_reach.prepare_vm(vm)



# Names the hand-written models treat as effect leaves (kernel_models.registry helper rows):
# the events they append are attributed to their caller.
HELPERS = frozenset({
    "kvm_set_pfn_accessed", "folio_mark_accessed", "folio_mark_dirty", "mark_page_accessed",
    "SetPageDirty", "kvm_release_faultin_page", "put_page", "get_page", "page_folio",
    "kvm_release_page_clean", "kvm_release_page_dirty", "kvm_release_pfn_clean",
    "kvm_release_pfn_dirty", "kvm_pfn_to_refcounted_page", "is_error_noslot_pfn",
    "mark_page_dirty_in_slot", "kvm_flush_remote_tlbs", "kvm_flush_remote_tlbs_range",
    "kvm_flush_remote_tlbs_memslot", "kvm_update_page_stats", "WARN_ON_ONCE", "WARN_ONCE",
    "KVM_MMU_WARN_ON", "KVM_BUG_ON_DATA_CORRUPTION", "BUG", "kvm_set_pfn_dirty", "kvm_set_page_accessed", "kvm_set_page_dirty",
    "__update_clear_spte_fast", "__update_clear_spte_slow", "__set_spte", "__get_spte_lockless",
    "kvm_tdp_mmu_write_spte", "__kvm_tdp_mmu_write_spte", "kvm_tdp_mmu_write_spte_atomic",
    "tdp_mmu_clear_spte_bits", "tdp_account_mmu_page", "tdp_unaccount_mmu_page",
    "kvm_flush_remote_tlbs_gfn", "kvm_flush_remote_tlbs_sptep",
})

CONSTANTS: dict[str, int] = {
    "PAGE_SHIFT": 12, "PAGE_SIZE": 4096, "PAGE_MASK": ~4095, "BITS_PER_LONG": 64,
    "PG_LEVEL_NONE": 0, "PG_LEVEL_4K": 1, "PG_LEVEL_2M": 2, "PG_LEVEL_1G": 3,
    "PG_LEVEL_512G": 4, "PG_LEVEL_NUM": 5, "U64_MAX": M64, "ULONG_MAX": M64, "INT_MAX": 2**31 - 1, "SHRT_MAX": 2**15 - 1,
    "HZ": 1000, "EINVAL": 22, "ENOMEM": 12, "EFAULT": 14, "EAGAIN": 11, "EIO": 5, "ENOENT": 2,
    "ENOSPC": 28, "EEXIST": 17, "EBUSY": 16, "EPERM": 1, "ENOTSUPP": 524, "EOPNOTSUPP": 95,
    "E2BIG": 7, "EINTR": 4, "KVM_ADDRESS_SPACE_NUM": 2,
    "KVM_MEM_LOG_DIRTY_PAGES": 1, "KVM_MEM_READONLY": 2, "KVM_MEM_GUEST_MEMFD": 4,
    "NR_SECONDARY_PAGETABLE": 0,
    "KVM_MEMORY_ATTRIBUTE_PRIVATE": 1 << 3,     # include/uapi/linux/kvm.h
    **FOLL,
    **vm_objects.CONSTANTS,
    **environment_reach.CONSTANTS,
    "KVM_DIRTY_LOG_INITIALLY_SET": 1 << 1, "KVM_X86_DEFAULT_VM": 0,
    "KVM_X86_SW_PROTECTED_VM": 1, "KVM_X86_SEV_VM": 2, "KVM_X86_SEV_ES_VM": 3,
    "KVM_X86_SNP_VM": 4, "KVM_X86_TDX_VM": 5, "KVM_PAGE_TRACK_WRITE": 0, "KVM_PAGE_TRACK_MAX": 1,
    "APIC_ACCESS_PAGE_PRIVATE_MEMSLOT": 32765,
    # arch/x86/include/asm/vmx.h (EPT entry bits; not among the tree's files)
    "VMX_EPT_READABLE_MASK": 1, "VMX_EPT_WRITABLE_MASK": 2, "VMX_EPT_EXECUTABLE_MASK": 4,
    "VMX_EPT_RWX_MASK": 7, "VMX_EPT_IPAT_BIT": 1 << 6, "VMX_EPT_MT_EPTE_SHIFT": 3,
    "VMX_EPT_ACCESS_BIT": 1 << 8, "VMX_EPT_DIRTY_BIT": 1 << 9,
    "VMX_EPT_USER_EXECUTABLE_MASK": 1 << 10, "VMX_EPT_SUPPRESS_VE_BIT": 1 << 63,
    "VMX_EPT_MISCONFIG_WX_VALUE": 6,
}


def _list_entries(vm, head, member=None, *rest):
    """A list head is the model's Python list (``&kvm->arch.active_mmu_pages``...)."""
    if isinstance(head, Ref):
        head = head.get()
    items = head if isinstance(head, (list, tuple)) else getattr(head, "entries", [])
    yield from list(items)


def _set_bits(vm, bitmap, size):
    value = bitmap if isinstance(bitmap, int) else 0
    for bit in range(int(size)):
        if value >> bit & 1:
            yield bit


# Which arguments of an iterator macro are its cursors (default: the first).
FOREACH_CURSORS = {"xa_for_each": (1, 2), "xa_for_each_range": (1, 2),
                   "list_for_each_entry_safe_reverse": (0, 1),
                   "list_for_each_entry_safe": (0, 1), "hlist_for_each_entry_safe": (0, 1)}


def _xarray_entries(vm, array, *bounds):
    items = array.items() if isinstance(array, dict) else enumerate(getattr(array, "entries", []))
    for index, entry in sorted(items, key=lambda pair: pair[0]):
        if entry is not None:
            yield index, entry


FOREACH: dict = {
    "xa_for_each": _xarray_entries, "xa_for_each_range": _xarray_entries,
    "list_for_each_entry": _list_entries, "list_for_each_entry_safe":
        lambda vm, head, member: ((e, None) for e in _list_entries(vm, head)),
    "list_for_each_entry_rcu": _list_entries, "hlist_for_each_entry": _list_entries,
    "hlist_for_each_entry_safe":
        lambda vm, head, member: ((e, None) for e in _list_entries(vm, head)),
    "list_for_each_entry_reverse": lambda vm, head, member: reversed(list(_list_entries(vm, head))),
    "list_for_each_entry_safe_reverse":
        lambda vm, head, member: ((e, None) for e in reversed(list(_list_entries(vm, head)))),
    "for_each_set_bit": _set_bits,
}
FOREACH.update(environment_reach.FOREACH)
FOREACH_CURSORS.update(environment_reach.FOREACH_CURSORS)

def namespace() -> dict:
    """The globals of a translated function."""
    names = {k: v for k, v in vars(runtime).items() if k.startswith("_") and callable(v)}
    names.update({k: v for k, v in globals().items() if k.startswith("_") and callable(v)})
    names.update(PRIMITIVES)
    return names
