"""C semantics for translated functions: pointers, structs, casts, jumps.

What the generated code (``harness.translate.emit``) needs beyond Python to
mean what the C means; nothing here is an assumption about the kernel's world
(those are ``harness.translate.environment``'s).

- ``Pointer`` (an SPTE pointer with arithmetic), ``Ref`` (``&`` of a list
  element, boxed local or field), ``Address`` and ``Tagged`` (pointers cast to
  integers, with a low tag bit), ``RmapHead`` (``struct kvm_rmap_head`` over a
  model's list);
- ``Struct`` values laid out as the tree defines them (``new_struct``), and
  ``Blank`` for a field no layout names (reads as 0);
- loads and stores (``_load``, ``_store``, ``_index``, ``_store_index``,
  ``_field_ref``...), integer widths (``_u64``, ``_s32``...), ``_div``
  (truncating), ``_Goto`` (a ``goto``), function values (``_fnref``).
"""

from __future__ import annotations

import copy
import dataclasses

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
    values = {}
    for name, kind, base, size in layouts.get(ctype, ()):
        if kind == "array" and base in layouts:      # an array of structs: one each
            values[name] = [new_struct(layouts, base) for _ in range(max(size, 1))]
        elif kind == "array":
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
        return type(value)(value._type, **{k: v for k, v in value.__dict__.items()
                                           if k != "_type"})
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return copy.copy(value)         # a hand-written struct value (kvm_mmu_page_role)
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


def _unlinked(sp) -> bool:
    """A page the environment allocated that nothing points to yet (no root, no parent
    SPTE holding its pfn): the hardware cannot see its entries, so filling them is no
    effect (as the hand-written models fill a split page before linking it)."""
    if not sp.__dict__.get("_fresh"):
        return False
    kvm = sp.kvm
    parent = sp.ptep
    linked = (sp in kvm.tdp_mmu_roots or sp.root_count or sp.parent_ptes
              or (isinstance(parent, SptePointer) and parent.get()
                  and (parent.get() >> 12) & ((1 << 40) - 1) == sp.pfn))
    if linked:
        del sp.__dict__["_fresh"]
    return not linked


def _store_index(base, index, value):
    if isinstance(base, SptePointer):
        if _unlinked(base.sp):
            if value:
                base.sp.spt[base.index + index] = value
            else:
                base.sp.spt.pop(base.index + index, None)
            return value
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
        if 0 <= offset < len(base) and isinstance(base[offset], Struct):
            return base[offset]       # &array[i] of structs: the struct (objects are references)
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
    """An ``unsigned long`` holding a pointer and tag bits in its low (alignment) bits:
    bit 0 marks a pte_list_desc chain, bit 1 is KVM_RMAP_LOCKED (mmu.c from v6.18)."""

    __slots__ = ("target", "tag")
    LOW = 7                         # the bits an 8-byte aligned pointer leaves free

    def __init__(self, target, tag=0):
        self.target, self.tag = target, tag

    def __and__(self, mask):
        if 0 <= mask <= Tagged.LOW:
            return self.tag & mask                # the tag bits alone
        low = self.tag & mask
        return Tagged(self.target, low) if mask & 1 or low else self.target

    def __or__(self, bits):
        return Tagged(self.target, self.tag | (bits & Tagged.LOW))

    def __bool__(self):
        return True

    def __eq__(self, other):
        return (isinstance(other, Tagged) and other.tag == self.tag
                and _same_target(other.target, self.target))

    def __hash__(self):
        return hash(self.tag)


def _chain(desc) -> list:
    entries = []
    while desc:
        entries.extend(desc.sptes[:desc.spte_count])
        desc = desc.more
    return entries


def _same_target(a, b) -> bool:
    """Two reads of one rmap word point to the same place: ``RmapHead.val`` builds its
    descriptor chain afresh on each read, so two chains it built are the same pointer
    when they hold the same entries (the lock's cmpxchg compares a word it just read)."""
    if a is b:
        return True
    if isinstance(a, Struct) and isinstance(b, Struct):
        if a.__dict__.get("_view") and b.__dict__.get("_view"):
            return _chain(a) == _chain(b)
        return False
    return a == b


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
                          tail_count=0, sptes=chunk + [None] * (PTE_LIST_EXT - len(chunk)),
                          _view=True)
        head.tail_count = len(entries) - head.spte_count
        return Tagged(head, 1)

    @val.setter
    def val(self, value):
        entries = self.entries
        entries.clear()
        # Only bit 0 (a desc chain) is state: the lock bit (KVM_RMAP_LOCKED) is not kept,
        # as one thread holds mmu_lock and no other walker can see the rmap locked
        if isinstance(value, Tagged):
            value = value.target if not value.tag & 1 else value
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


class RmapCursor(RmapHead):
    """``&slot->arch.rmap[level][index]``: an rmap head that knows its place in its level's
    array, so the rmap walk's ``++iterator->rmap <= iterator->end_rmap`` works."""

    def __init__(self, entries: list, level_rmaps, index: int):
        super().__init__(entries)
        self.__dict__["level_rmaps"] = level_rmaps
        self.__dict__["index"] = index

    def __add__(self, offset: int):
        return self.level_rmaps[self.index + offset]

    def __sub__(self, offset: int):
        return self.level_rmaps[self.index - offset]

    def _key(self, other):
        if not isinstance(other, RmapCursor) or other.level_rmaps is not self.level_rmaps:
            return NotImplemented
        return other.index

    def __le__(self, other):
        key = self._key(other)
        return key if key is NotImplemented else self.index <= key

    def __lt__(self, other):
        key = self._key(other)
        return key if key is NotImplemented else self.index < key

    def __ge__(self, other):
        key = self._key(other)
        return key if key is NotImplemented else self.index >= key

    def __gt__(self, other):
        key = self._key(other)
        return key if key is NotImplemented else self.index > key


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
    if value is None or isinstance(value, (int, float, list, SptePointer, Ref, RmapCursor,
                                           Tagged)):
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
    if value is None:
        return 0                        # NULL: (unsigned long)NULL is 0
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
    if isinstance(value, (Tagged, dict)):
        return value        # (unsigned long) of a table the model keeps as a dict: itself
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
