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
   ``Struct`` objects unless ``STRUCTS`` names a model class for them.
5. **Runtime support** (``_load``, ``_store``, ``_index``, ``_u64``,
   ``_Goto``...): C semantics the generated code needs.

A name that is neither translated from the tree nor here is ``_unknown``:
calling it raises ``EnvironmentMiss`` naming it.
"""

from __future__ import annotations

from kernel_models import effects as E
from kernel_models.mmu_internal import SptePointer, kvm_mmu_page

M64 = (1 << 64) - 1


class EnvironmentMiss(Exception):
    """A translated function reached a name neither the tree nor the environment defines."""


class _Goto(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, label: str):
        self.label = label


# ---------------------------------------------------------------------------
# Pointers and objects
# ---------------------------------------------------------------------------

class Pointer(SptePointer):
    """An SPTE pointer with C pointer arithmetic (``sptep + 1``, ``sptep - sp->spt``)."""

    def __getitem__(self, index: int) -> int:
        return Pointer(self.sp, self.index + index).get()

    def __setitem__(self, index: int, value: int) -> None:
        Pointer(self.sp, self.index + index).set(value)

    __hash__ = SptePointer.__hash__
    __eq__ = SptePointer.__eq__


class Ref:
    """``&x`` of a list element, a boxed local or a struct field."""

    __slots__ = ("container", "key")

    def __init__(self, container, key):
        self.container, self.key = container, key

    def get(self):
        if isinstance(self.key, str):
            return getattr(self.container, self.key)
        return self.container[self.key]

    def set(self, value) -> None:
        if isinstance(self.key, str):
            setattr(self.container, self.key, value)
        else:
            self.container[self.key] = value

    def exchange(self, value):
        old = self.get()
        self.set(value)
        return old

    def __getitem__(self, index):
        return self.container[self.key + index]

    def __setitem__(self, index, value):
        self.container[self.key + index] = value

    def __eq__(self, other):
        return (isinstance(other, Ref) and other.container is self.container
                and other.key == self.key)

    def __hash__(self):
        return hash((id(self.container), self.key))


class Struct:
    """A C struct value with the kernel's field names; unset fields read as 0."""

    def __init__(self, _type: str = "", **fields):
        self.__dict__["_type"] = _type
        self.__dict__.update(fields)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = Struct(f"{self._type}.{name}")
        self.__dict__[name] = value
        return value

    def __bool__(self):
        return True

    def __int__(self):
        return 0

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if k != "_type")
        return f"{self._type}({fields})"


def _struct(ctype: str, _positional=(), **fields):
    maker = STRUCTS.get(ctype)
    if maker is not None:
        return maker(**fields)
    return Struct(ctype, **fields)


def _copy(value):
    if isinstance(value, Struct):
        return Struct(value._type, **{k: v for k, v in value.__dict__.items() if k != "_type"})
    return value


def _array(size, values=()):
    items = list(values)
    return items + [0] * (int(size) - len(items))


def _spt(sp):
    """``sp->spt``: the table of a page, as a pointer to its entry 0."""
    if isinstance(sp, kvm_mmu_page):
        return Pointer(sp, 0)
    return sp.spt


def _load(pointer):
    if hasattr(pointer, "get"):
        return pointer.get()
    return pointer          # *struct_pointer: the object itself


def _store(pointer, value):
    pointer.set(value)
    return value


def _index(base, index):
    if isinstance(base, SptePointer):
        return Pointer(base.sp, base.index + index).get()
    if isinstance(base, dict):
        return base.get(index, 0)
    return base[index]


def _store_index(base, index, value):
    if isinstance(base, SptePointer):
        Pointer(base.sp, base.index + index).set(value)
    else:
        base[index] = value
    return value


def _ptr_add(base, offset):
    if isinstance(base, SptePointer):
        return Pointer(base.sp, base.index + offset)
    if isinstance(base, Ref):
        return Ref(base.container, base.key + offset)
    if isinstance(base, list):
        return Ref(base, offset)
    return base + offset


def _ptr_diff(a, b):
    if isinstance(a, SptePointer) and isinstance(b, SptePointer):
        return a.index - b.index
    if isinstance(a, Ref) and isinstance(b, Ref):
        return a.key - b.key
    return a - b


def _field_ref(obj, name):
    return Ref(obj, name)


def _box_ref(box):
    return Ref(box, 0)


def _global_ref(vm, name):
    return Ref(vm, name)


def _set_box(box, value):
    box[0] = value
    return value


def _set_field(obj, name, value):
    setattr(obj, name, value)
    return value


def _step(ref, delta, post):
    """``x++``/``++x`` (and ``--``) on a field, element or boxed local inside an expression."""
    old = ref.get()
    ref.set(old + delta)
    return old if post else old + delta


def _div(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _address(value):
    if isinstance(value, SptePointer):
        return (value.sp.pfn << 12) + value.index * 8
    return value


def _u64(value):
    return _address(value) & M64 if not isinstance(value, bool) else int(value)


def _u32(value):
    return _address(value) & 0xFFFFFFFF


def _u16(value):
    return value & 0xFFFF


def _u8(value):
    return value & 0xFF


def _signed(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _s64(value):
    return _signed(_address(value), 64)


def _s32(value):
    return _signed(value, 32)


def _s16(value):
    return _signed(value, 16)


def _s8(value):
    return _signed(value, 8)


def _sizeof(what):
    return 8


class _FunctionRef:
    """A tree function used as a value (a handler passed to a walker)."""

    def __init__(self, vm, name):
        self.vm, self.name = vm, name

    def __call__(self, *args):
        signature = self.vm.versions.signature(self.name)
        if signature is not None and signature.takes_kvm and args:
            args = args[1:]
        return getattr(self.vm, self.name)(*args)

    def __eq__(self, other):
        return isinstance(other, _FunctionRef) and other.name == self.name

    def __hash__(self):
        return hash(self.name)


def _fnref(vm, name):
    return _FunctionRef(vm, name)


def _call(function, *args):
    return function(*args)


def _prim(vm, name):
    primitive = PRIMITIVES[name]
    return lambda *args: primitive(vm, *args)


def _unknown(vm, name):
    def missing(*args):
        raise EnvironmentMiss(f"{name}: defined neither in the tree nor in the environment")
    return missing


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


def _bug_always(vm, *rest, what=""):
    vm.emit(E.Bug(what=what))


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


def _flush_all(vm, *args):
    vm.emit(E.TlbFlush(scope="all"))


def kvm_flush_remote_tlbs_range(vm, kvm, gfn, pages):
    vm.emit(E.TlbFlush(scope="range", gfn=gfn, pages=pages))


def kvm_flush_remote_tlbs_memslot(vm, kvm, memslot):
    vm.emit(E.TlbFlush(scope="memslot", gfn=memslot.base_gfn, pages=memslot.npages))


def _accessed(vm, pfn, *rest):
    vm.emit(E.FolioAccessed(pfn=pfn))


def _dirty(vm, pfn, *rest):
    vm.emit(E.FolioDirty(pfn=pfn))


def _release(vm, pfn, dirty=False):
    if vm.page_refcount[pfn] <= 0:
        vm.emit(E.Bug(what=f"put_page: folio {pfn:#x} has no reference left (double release)"))
    else:
        vm.page_refcount[pfn] -= 1
    vm.emit(E.PageRefPut(pfn=pfn, dirty=dirty))


def kvm_release_pfn_clean(vm, pfn):
    _release(vm, pfn)


def kvm_release_pfn_dirty(vm, pfn):
    _dirty(vm, pfn)
    _release(vm, pfn, True)


def kvm_release_faultin_page(vm, kvm, page, unused, dirty):
    if dirty:
        _dirty(vm, page)
    _release(vm, page, bool(dirty))


def mark_page_dirty_in_slot(vm, kvm, memslot, gfn):
    if memslot is not None and memslot.flags & 1:
        memslot.dirty_bitmap.add(gfn)
        vm.emit(E.MemslotDirty(gfn=gfn))


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
    "WRITE_ONCE": WRITE_ONCE, "xchg": xchg, "cmpxchg": cmpxchg, "cmpxchg64": cmpxchg,
    "try_cmpxchg64": try_cmpxchg64, "try_cmpxchg": try_cmpxchg64,
    "smp_wmb": _nothing, "smp_rmb": _nothing, "smp_mb": _nothing, "barrier": _nothing,
    "smp_mb__after_atomic": _nothing, "smp_load_acquire": _pass,
    # WARN family
    "WARN_ON": _warn, "WARN_ON_ONCE": _warn, "WARN": _warn_message, "WARN_ONCE": _warn_message,
    "KVM_BUG_ON": _warn, "KVM_MMU_WARN_ON": _mmu_warn, "WARN_ON_SMP": _warn,
    "KVM_BUG_ON_DATA_CORRUPTION": _bug, "BUG_ON": _bug, "BUG": _bug_always,
    "BUILD_BUG_ON": _nothing, "BUILD_BUG_ON_INVALID": _nothing, "static_assert": _nothing,
    # locking and RCU (one thread holds every lock)
    "lockdep_assert_held": _nothing, "lockdep_assert_held_read": _nothing,
    "lockdep_assert_held_write": _nothing, "lockdep_assert_once": _nothing,
    "lockdep_is_held": _true, "lockdep_assert_not_held": _nothing,
    "spin_lock": _nothing, "spin_unlock": _nothing, "write_lock": _nothing,
    "write_unlock": _nothing, "read_lock": _nothing, "read_unlock": _nothing,
    "rcu_read_lock": _nothing, "rcu_read_unlock": _nothing, "rcu_dereference": _pass,
    "rcu_dereference_check": _pass, "rcu_dereference_raw": _pass,
    "rcu_dereference_protected": _pass, "rcu_assign_pointer": WRITE_ONCE,
    "RCU_INIT_POINTER": WRITE_ONCE, "rcu_read_lock_held": _true,
    "cond_resched": _nothing, "need_resched": _false, "rwlock_needbreak": _false,
    "cond_resched_rwlock_read": _false, "cond_resched_rwlock_write": _false,
    "might_sleep": _nothing, "local_irq_disable": _nothing, "local_irq_enable": _nothing,
    "preempt_disable": _nothing, "preempt_enable": _nothing,
    # host side: folio marks (old and new names), references, dirty log
    "kvm_set_pfn_accessed": _accessed, "kvm_set_pfn_dirty": _dirty,
    "kvm_set_page_accessed": _accessed, "kvm_set_page_dirty": _dirty,
    "folio_mark_accessed": _accessed, "folio_mark_dirty": _dirty, "mark_page_accessed": _accessed,
    "SetPageDirty": _dirty, "set_page_dirty": _dirty,
    "kvm_release_pfn_clean": kvm_release_pfn_clean, "kvm_release_pfn_dirty": kvm_release_pfn_dirty,
    "kvm_release_page_clean": kvm_release_pfn_clean,
    "kvm_release_page_dirty": kvm_release_pfn_dirty,
    "kvm_release_page_unused": kvm_release_pfn_clean,
    "kvm_release_faultin_page": kvm_release_faultin_page, "put_page": kvm_release_pfn_clean,
    "mark_page_dirty_in_slot": mark_page_dirty_in_slot,
    # TLB flushes
    "kvm_flush_remote_tlbs": _flush_all, "kvm_flush_remote_tlbs_range": kvm_flush_remote_tlbs_range,
    "kvm_flush_remote_tlbs_memslot": kvm_flush_remote_tlbs_memslot,
    "kvm_make_all_cpus_request": _flush_all,
    # arithmetic helpers
    "min": _min, "max": _max, "min_t": _min_t, "max_t": _max_t,
    # page-table memory
    "__va": __va, "__pa": __pa, "pfn_to_page": pfn_to_page, "page_private": page_private,
    "virt_to_page": virt_to_page, "phys_to_virt": __va, "virt_to_phys": __pa,
}

# Names the hand-written models treat as effect leaves (kernel_models.registry helper rows):
# the events they append are attributed to their caller.
HELPERS = frozenset({
    "kvm_set_pfn_accessed", "kvm_set_pfn_dirty", "kvm_set_page_accessed", "kvm_set_page_dirty",
    "__update_clear_spte_fast", "__update_clear_spte_slow", "__set_spte", "__get_spte_lockless",
    "kvm_tdp_mmu_write_spte", "__kvm_tdp_mmu_write_spte", "kvm_tdp_mmu_write_spte_atomic",
    "tdp_mmu_clear_spte_bits", "tdp_account_mmu_page", "tdp_unaccount_mmu_page",
    "kvm_flush_remote_tlbs_gfn", "kvm_flush_remote_tlbs_sptep",
})

CONSTANTS: dict[str, int] = {
    "PAGE_SHIFT": 12, "PAGE_SIZE": 4096, "PAGE_MASK": ~4095, "BITS_PER_LONG": 64,
    "PG_LEVEL_NONE": 0, "PG_LEVEL_4K": 1, "PG_LEVEL_2M": 2, "PG_LEVEL_1G": 3,
    "PG_LEVEL_512G": 4, "PG_LEVEL_NUM": 5, "U64_MAX": M64, "ULONG_MAX": M64, "INT_MAX": 2**31 - 1,
    "HZ": 1000, "EINVAL": 22, "ENOMEM": 12, "EFAULT": 14, "EAGAIN": 11, "EIO": 5, "ENOENT": 2,
    "ENOSPC": 28, "EEXIST": 17, "EBUSY": 16, "EPERM": 1, "ENOTSUPP": 524, "EOPNOTSUPP": 95,
    "E2BIG": 7, "EINTR": 4, "KVM_ADDRESS_SPACE_NUM": 2,
}


def _list_entries(vm, head, member=None, *rest):
    items = head if isinstance(head, (list, tuple)) else getattr(head, "entries", [])
    yield from list(items)


def _set_bits(vm, bitmap, size):
    value = bitmap if isinstance(bitmap, int) else 0
    for bit in range(int(size)):
        if value >> bit & 1:
            yield bit


FOREACH: dict = {
    "list_for_each_entry": _list_entries, "list_for_each_entry_safe":
        lambda vm, n, head, member: _list_entries(vm, head),
    "list_for_each_entry_rcu": _list_entries, "hlist_for_each_entry": _list_entries,
    "hlist_for_each_entry_safe": lambda vm, n, head, member: _list_entries(vm, head),
    "list_for_each_entry_reverse": _list_entries,
    "for_each_set_bit": _set_bits,
}

STRUCTS: dict = {}


def namespace() -> dict:
    """The globals of a translated function."""
    names = {k: v for k, v in globals().items() if k.startswith("_") and callable(v)}
    names.update(PRIMITIVES)
    names["_Goto"] = _Goto
    return names
