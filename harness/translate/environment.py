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

    def __add__(self, offset: int) -> "Pointer":
        return Pointer(self.sp, self.index + offset)

    __radd__ = __add__

    def __sub__(self, other):
        if isinstance(other, SptePointer):
            return self.index - other.index
        return Pointer(self.sp, self.index - other)

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
        value = Blank()
        self.__dict__[name] = value
        return value

    def __bool__(self):
        return True

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if k != "_type")
        return f"{self._type}({fields})"


def new_struct(layouts: dict, ctype: str, _positional=(), **fields):
    """A fresh struct value laid out as the tree defines ``ctype`` (fields zeroed)."""
    maker = STRUCTS.get(ctype)
    if maker is not None:
        return maker(**fields)
    values = {}
    for name, kind, base, size in layouts.get(ctype, ()):
        if kind == "array":
            values[name] = [None if base == "pointer" else 0] * max(size, 1)
        elif kind == "struct":
            values[name] = new_struct(layouts, base)
        elif kind == "pointer":
            values[name] = None
        elif kind == "bool":
            values[name] = False
        else:
            values[name] = 0
    for (name, *_), value in zip(layouts.get(ctype, ()), _positional):
        values[name] = value
    values.update(fields)
    return Struct(ctype, **values)


class Blank(int):
    """A field no layout names: reads as 0 (and as an empty struct or array of zeros)."""

    def __new__(cls):
        return super().__new__(cls, 0)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = Blank()
        self.__dict__[name] = value
        return value

    def __getitem__(self, index):
        return Blank()


def _struct(ctype: str, _positional=(), **fields):
    """Without the tree's layouts (a state binds ``new_struct`` to its own)."""
    return new_struct({}, ctype, _positional, **fields)


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
    if isinstance(pointer, (SptePointer, Ref)):
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


# ---------------------------------------------------------------------------
# rmap heads: the models keep a list of SPTE pointers; the C keeps ``val``, a single
# pointer or a tagged pointer to a chain of ``pte_list_desc`` (PTE_LIST_EXT each).
# Reading is exact (the chain holds the list in order); a write of ``val`` sets the
# list from what was written.
# ---------------------------------------------------------------------------

PTE_LIST_EXT = 14


class Tagged:
    """An ``unsigned long`` holding a pointer and a low tag bit."""

    __slots__ = ("target", "tag")

    def __init__(self, target, tag=0):
        self.target, self.tag = target, tag

    def __and__(self, mask):
        if mask == 1:
            return self.tag
        return Tagged(self.target, self.tag & mask) if mask & 1 else self.target

    def __or__(self, bits):
        return Tagged(self.target, self.tag | (bits & 1))

    def __bool__(self):
        return True

    def __eq__(self, other):
        return isinstance(other, Tagged) and other.target == self.target and other.tag == self.tag

    def __hash__(self):
        return hash((id(self.target), self.tag))


class RmapHead:
    """``struct kvm_rmap_head`` over a model's list of SPTE pointers."""

    def __init__(self, entries: list):
        self.__dict__["entries"] = entries

    @property
    def val(self):
        entries = self.entries
        if not entries:
            return 0
        if len(entries) == 1:
            return Tagged(entries[0], 0)
        head = None
        chunks = [entries[i:i + PTE_LIST_EXT] for i in range(0, len(entries), PTE_LIST_EXT)]
        for chunk in reversed(chunks):
            head = Struct("struct pte_list_desc", more=head, spte_count=len(chunk),
                          tail_count=0, sptes=chunk + [None] * (PTE_LIST_EXT - len(chunk)))
        head.tail_count = len(entries) - head.spte_count
        return Tagged(head, 1)

    @val.setter
    def val(self, value):
        entries = self.entries
        entries.clear()
        if isinstance(value, Tagged):
            value = value.target if not value.tag else value
        if isinstance(value, Tagged):           # a desc chain
            desc = value.target
            while desc:
                entries.extend(desc.sptes[:desc.spte_count])
                desc = desc.more
        elif isinstance(value, Address):
            entries.append(value.pointer)
        elif value:
            entries.append(value)

    def __setattr__(self, name, value):
        if name == "val":
            RmapHead.val.fset(self, value)
        else:
            self.__dict__[name] = value


def _rmap_head(value):
    return RmapHead(value) if isinstance(value, list) else value


def _as_pointer(value):
    """``(T *)x``: an integer that holds a pointer gives the pointer back."""
    if isinstance(value, Tagged):
        return value.target
    if isinstance(value, Address):
        return value.pointer
    return value


RMAP_FIELDS = frozenset({"parent_ptes"})


def _field_ref(obj, name):
    """``&obj->field``: a struct field's address is the struct itself (objects are
    references); a scalar or pointer field's is a ``Ref`` to write through."""
    value = getattr(obj, name)
    if name in RMAP_FIELDS and isinstance(value, list):
        return RmapHead(value)
    if value is None or isinstance(value, (int, float, list, SptePointer, Ref)):
        return Ref(obj, name)
    return value


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
    """A pointer's address: table pfn and entry index (a page stands for its table)."""
    if isinstance(value, SptePointer):
        return (value.sp.pfn << 12) + value.index * 8
    if isinstance(value, kvm_mmu_page):
        return value.pfn << 12
    return value


class Address(int):
    """``(unsigned long)pointer``: the address, still knowing the object it points to."""

    def __new__(cls, pointer):
        value = _address(pointer)
        if not isinstance(value, int):
            value = 0xFFFF800000000000 | (id(pointer) << 3) & 0x7FFFFFFFFFF8
        self = super().__new__(cls, value)
        self.pointer = pointer
        return self

    def __or__(self, bits):
        return Tagged(self.pointer, 1) if bits == 1 else int(self) | bits


def _u64(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (SptePointer, Struct, kvm_mmu_page)):
        return Address(value)
    if isinstance(value, Tagged):
        return value
    return _address(value) & M64


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


def _unknown_value(vm, name):
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
    "WRITE_ONCE": WRITE_ONCE, "xchg": xchg, "cmpxchg": cmpxchg, "cmpxchg64": cmpxchg,
    "try_cmpxchg64": try_cmpxchg64, "try_cmpxchg": try_cmpxchg64,
    "smp_wmb": _nothing, "smp_rmb": _nothing, "smp_mb": _nothing, "barrier": _nothing,
    "smp_mb__after_atomic": _nothing, "smp_load_acquire": lambda vm, p: _load(p),
    "smp_store_release": lambda vm, p, v: _store(p, v),
    # WARN family
    "WARN_ON": _warn, "WARN_ON_ONCE": _warn, "WARN": _warn_message, "WARN_ONCE": _warn_message,
    "KVM_BUG_ON": _warn, "KVM_MMU_WARN_ON": _mmu_warn, "WARN_ON_SMP": _warn,
    "KVM_BUG_ON_DATA_CORRUPTION": _bug, "BUG_ON": _bug_on, "BUG": _bug_always,
    "mod_lruvec_page_state": _nothing, "kvm_account_pgtable_pages": _nothing,
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
    "might_sleep": _nothing, "pr_err": _nothing, "pr_info": _nothing, "pr_warn": _nothing,
    "pr_debug": _nothing, "pr_err_ratelimited": _nothing, "printk": _nothing,
    "pr_warn_once": _nothing, "pr_info_once": _nothing, "pr_err_once": _nothing,
    "pr_warn_ratelimited": _nothing, "dump_stack": _nothing, "local_irq_disable": _nothing, "local_irq_enable": _nothing,
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
    "atomic64_read": lambda vm, ref: _load(ref), "atomic_read": lambda vm, ref: _load(ref),
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
    "free_page": lambda vm, address: vm.mmu_pages.pop(_address(address) >> 12, None) and None,
    "kmem_cache_free": _nothing, "kfree": _nothing,
    "hash_64": lambda vm, value, bits: hash_64(vm, value, bits),
    "atomic64_fetch_and": lambda vm, mask, ref: _fetch(ref, lambda v: v & mask),
    "atomic64_fetch_or": lambda vm, mask, ref: _fetch(ref, lambda v: v | mask),
    "atomic64_xchg": lambda vm, ref, value: _fetch(ref, lambda v: value),
}


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
NAME_ARGUMENTS = frozenset({"static_call", "static_call_cond", "container_of", "offsetof",
                            "list_entry", "hlist_entry", "list_first_entry"})
# Primitives whose first argument is an lvalue (the C macro writes through it).
LVALUE_FIRST = frozenset({"WRITE_ONCE", "rcu_assign_pointer", "RCU_INIT_POINTER"})


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


def _host_models() -> dict:
    from kernel_models import kvm_main
    found = {row.name: row.function for row in kvm_main.MODEL_TABLE}
    found.update({"folio_mark_accessed": folio_mark_accessed, "folio_mark_dirty": folio_mark_dirty,
                  "kvm_release_faultin_page": kvm_release_faultin_page,
                  "mark_page_accessed": folio_mark_accessed, "SetPageDirty": folio_mark_dirty})
    return found


# Host functions whose C first parameter is ``struct kvm *kvm`` (dropped, as for the tree's).
HOST_TAKES_KVM = frozenset({"mark_page_dirty_in_slot", "kvm_flush_remote_tlbs",
                            "kvm_flush_remote_tlbs_range", "kvm_flush_remote_tlbs_memslot",
                            "kvm_update_page_stats"})


def host_models() -> dict:
    """C name -> model function (kvm, *args) for the host side."""
    global _HOST
    if _HOST is None:
        _HOST = _host_models()
    return _HOST


_HOST = None


# Kernel globals the translated C reads that the VM's SPTE mode does not set.
GLOBAL_DEFAULTS = {"mmu_page_header_cache": None, "pte_list_desc_cache": None,
                   "shadow_phys_bits": 46, "max_huge_page_level": 3, "tdp_root_level": 4,
                   "max_tdp_level": 4, "nx_huge_pages": False, "enable_mmio_caching": False,
                   "force_flush_and_sync_on_reuse": False, "eager_page_split": True}


# Kernel fields the hand-written objects do not carry: they read as the zero value
# (class attributes, so an object that sets the field keeps its own value).
FIELD_DEFAULTS = {
    "kvm_mmu_page_role": {"smm": 0, "quadrant": 0, "has_4_byte_gpte": False, "cr0_wp": True,
                          "efer_nx": True, "smap_andnot_wp": False, "smep_andnot_wp": False,
                          "passthrough": False, "word": 0, "is_private": False},
    "kvm_mmu": {"shadow_zero_check": Struct("rsvd_bits_validate",
                                            rsvd_bits_mask=[[0] * 5, [0] * 5], bad_mt_xwr=0),
                "guest_rsvd_check": Struct("rsvd_bits_validate",
                                           rsvd_bits_mask=[[0] * 5, [0] * 5], bad_mt_xwr=0)},
    "kvm_mmu_page": {"role_word": 0, "rcu_head": 0, "unsync_children": 0, "write_flooding_count": 0,
                     "lpage_disallowed_link": None, "tdp_mmu_scheduled_root_to_zap": False,
                     "possible_nx_huge_page_link": None, "clear_spte_count": 0,
                     "shadowed_translation_list": None, "gfns": None, "external_spt": None},
}


def _install_field_defaults() -> None:
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
VM_FIELDS = ("mmu_lock", "slots_lock", "srcu", "mmu_invalidate_seq", "mmu_invalidate_in_progress",
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
    if "stat" not in vm.__dict__:
        vm.__dict__["stat"] = new_struct(layouts, "struct kvm_vm_stat",
                                         pages=StatCounters("pages"))
    if "arch" not in vm.__dict__:
        vm.__dict__["arch"] = new_struct(layouts, "struct kvm_arch",
                                         tdp_mmu_roots=vm.tdp_mmu_roots,
                                         active_mmu_pages=vm.active_mmu_pages,
                                         mmu_page_hash=PageHash(vm))



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
    "PG_LEVEL_512G": 4, "PG_LEVEL_NUM": 5, "U64_MAX": M64, "ULONG_MAX": M64, "INT_MAX": 2**31 - 1,
    "HZ": 1000, "EINVAL": 22, "ENOMEM": 12, "EFAULT": 14, "EAGAIN": 11, "EIO": 5, "ENOENT": 2,
    "ENOSPC": 28, "EEXIST": 17, "EBUSY": 16, "EPERM": 1, "ENOTSUPP": 524, "EOPNOTSUPP": 95,
    "E2BIG": 7, "EINTR": 4, "KVM_ADDRESS_SPACE_NUM": 2,
    "KVM_MEM_LOG_DIRTY_PAGES": 1, "KVM_MEM_READONLY": 2, "KVM_MEM_GUEST_MEMFD": 4,
    "NR_SECONDARY_PAGETABLE": 0,
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
