"""The environment's VM objects: lists, memory caches and the vCPU's MMU, by the kernel's names.

Part of the environment (``harness.translate.environment`` lists it in its
interface): what the translated init and allocation paths assume about
``struct kvm``, ``struct kvm_vcpu`` and ``struct kvm_mmu_page`` beyond the
hand-written objects of ``kernel_models``.

- **Lists** (``include/linux/list.h``, ``rculist.h``): a list head is a Python
  list (``kvm->arch.tdp_mmu_roots``, ``kvm->arch.active_mmu_pages`` are the
  VM's own lists; a local ``LIST_HEAD(invalid_list)`` is a ``struct
  list_head`` whose entries are kept in it); an entry is named by ``&obj->member``
  (a ``Ref``), and the list holding it is remembered on the object per member.
  Hash lists (``hlist_*``) are not kept: ``kvm->arch.mmu_page_hash`` is read
  from ``active_mmu_pages`` (``environment.PageHash``).
- **Memory caches** (``kvm_mmu_memory_cache_alloc``): each cache of
  ``vcpu->arch`` has a kind; the page-header cache returns a fresh
  ``kvm_mmu_page`` (which takes the next table pfn, as the hand-written
  constructor does), the shadow-page cache a fresh table for it, the
  shadowed-info cache a fresh translation table, the pte-list-descriptor cache a
  ``struct pte_list_desc``.  Top-ups always succeed and allocate nothing
  (allocation happens at use, so table pfns come in the order pages are made).
- **The vCPU's MMU** (``prepare_vcpu``): ``vcpu->arch.mmu->root`` is a
  ``struct kvm_mmu_root_info`` (``hpa``, ``pgd``), ``INVALID_PAGE`` until a
  root is loaded (``kernel_models.operations.root_page`` reads the page it points to).
- **Reference counts** (``refcount_*``): plain integers.
"""

from __future__ import annotations

from harness.translate.runtime import Ref, Struct
from kernel_models.mmu_internal import kvm_mmu_page

INVALID_PAGE = (1 << 64) - 1


# -- lists ---------------------------------------------------------------------

def _entries(head) -> list:
    """The Python list a list head stands for."""
    if isinstance(head, Ref):
        value = head.get()
        if isinstance(value, list):
            return value
        if not isinstance(value, Struct):
            fresh: list = []
            head.set(fresh)
            return fresh
        head = value
    if isinstance(head, list):
        return head
    if isinstance(head, Struct):
        if not isinstance(head.__dict__.get("entries"), list):
            head.__dict__["entries"] = []
        return head.__dict__["entries"]
    raise TypeError(f"not a list head: {head!r}")


def _is_node(ref) -> bool:
    """``&obj->member`` of an entry (its field holds no list)."""
    return isinstance(ref, Ref) and isinstance(ref.key, str) and not isinstance(ref.get(), list) \
        and not isinstance(ref.get(), Struct)


def _holder_key(member: str) -> str:
    return f"_list_{member}"


def _holder(node: Ref):
    return node.container.__dict__.get(_holder_key(node.key))


def _unlink(node: Ref) -> None:
    holder = _holder(node)
    if holder is not None and node.container in holder:
        holder.remove(node.container)
    node.container.__dict__.pop(_holder_key(node.key), None)


def _link(node: Ref, head, at_tail: bool) -> None:
    entries = _entries(head)
    if at_tail:
        entries.append(node.container)
    else:
        entries.insert(0, node.container)
    node.container.__dict__[_holder_key(node.key)] = entries


def list_add(vm, node, head):
    _link(node, head, at_tail=False)


def list_add_tail(vm, node, head):
    _link(node, head, at_tail=True)


def list_del(vm, node):
    _unlink(node)


def list_move(vm, node, head):
    _unlink(node)
    _link(node, head, at_tail=False)


def list_move_tail(vm, node, head):
    _unlink(node)
    _link(node, head, at_tail=True)


def INIT_LIST_HEAD(vm, ref):  # noqa: N802
    if _is_node(ref):
        _unlink(ref)
    else:
        _entries(ref).clear()


def list_empty(vm, ref):
    if _is_node(ref):
        return _holder(ref) is None
    return not _entries(ref)


def list_first_entry(vm, head, ctype=None, member=None):
    return _entries(head)[0]


def list_last_entry(vm, head, ctype=None, member=None):
    return _entries(head)[-1]


def list_first_or_null(vm, head, ctype=None, member=None):
    entries = _entries(head)
    return entries[0] if entries else None


def list_next_or_null(vm, head, node, ctype=None, member=None):
    entries = _entries(head)
    position = next((i for i, e in enumerate(entries) if e is node.container), None)
    if position is None or position + 1 >= len(entries):
        return None
    return entries[position + 1]


def list_splice_init(vm, source, head):
    moved = list(_entries(source))
    _entries(source).clear()
    entries = _entries(head)
    entries[0:0] = moved


def typeof(vm, value):
    """``typeof(*p)`` as a macro argument: the list macros read no type."""
    return "typeof"


# -- memory caches ---------------------------------------------------------------

class PageMemory(dict):
    """A page the environment allocates (``sp->spt``, ``sp->shadowed_translation``), as
    a sparse dict of its entries.  A pointer to it is never NULL, however empty the page:
    ``if (sp->shadowed_translation)`` (mmu.c from v6.12) is true for a fresh page."""

    def __bool__(self) -> bool:
        return True


def memory_cache(kind: str) -> Struct:
    return Struct("struct kvm_mmu_memory_cache", kind=kind, nobjs=0)


def _union_member(other: str) -> property:
    """A member of an anonymous union: the same storage as ``other``."""
    return property(lambda sp: getattr(sp, other), lambda sp, value: setattr(sp, other, value))


class TreePage(kvm_mmu_page):
    """``struct kvm_mmu_page`` as the translated code allocates it: the hand-written page
    with the anonymous union ``{ int root_count; refcount_t tdp_mmu_root_count; }``
    (mmu_internal.h at every tag) as one counter, as in the C (v6.1.15's is_tdp_mmu
    reads a TDP MMU root's count as ``root_count``)."""

    root_count = _union_member("tdp_mmu_root_count")


def kvm_mmu_memory_cache_alloc(vm, cache):
    from kernel_models.mmu_internal import kvm_mmu_page_role
    from harness.translate.runtime import PTE_LIST_EXT

    kind = getattr(cache, "__dict__", {}).get("kind", "pte_list_desc")
    if kind == "page_header":
        sp = TreePage(vm, kvm_mmu_page_role(level=0), 0)
        sp.__dict__["_fresh"] = True        # filled silently until linked (runtime._unlinked)
        return sp
    if kind == "shadow_page":
        return PageMemory()                         # sp->spt: the page's (sparse) table
    if kind == "shadowed_info":
        return PageMemory()                         # sp->shadowed_translation
    return Struct("struct pte_list_desc", more=None, spte_count=0, tail_count=0,
                  sptes=[None] * PTE_LIST_EXT)


def set_page_private(vm, page, value):
    """The table page's owner: the hand-written page is its own table (``mmu_pages``)."""
    return None


# -- the vCPU's MMU --------------------------------------------------------------

VCPU_CACHES = {"mmu_page_header_cache": "page_header", "mmu_shadow_page_cache": "shadow_page",
               "mmu_shadowed_info_cache": "shadowed_info",
               "mmu_pte_list_desc_cache": "pte_list_desc"}


def prepare_vcpu(vcpu) -> None:
    """Give a hand-written ``kvm_vcpu`` the fields the translated init paths use;
    the MMU's ``sync_spte`` (``sync_page`` up to v6.3) is the guest mode's
    ``FNAME(sync_spte)`` (``FNAME(sync_page)``), the nested table's."""
    mmu = vcpu.arch.mmu
    if vcpu.kvm is not None and "_root_role" not in mmu.__dict__:
        # kvm_calc_tdp_mmu_root_page_role: A/D bits off in the root's pages exactly when
        # KVM cannot use them (kvm_ad_enabled(): shadow_accessed_mask set)
        mmu.__dict__["_root_role"] = PageRole(
            "union kvm_mmu_page_role", level=mmu.root_level, direct=mmu.direct,
            ad_disabled=not vcpu.kvm.shadow_accessed_mask, access=7, cr0_wp=True, efer_nx=True)
    if vcpu.kvm is not None and "sync_spte" not in mmu.__dict__:
        mmu.sync_spte = lambda vcpu_, sp, i: getattr(vcpu.kvm, "FNAME(sync_spte)")(vcpu_, sp, i)
    if vcpu.kvm is not None and "sync_page" not in mmu.__dict__:
        # up to v6.3 the hook is per page: kvm_sync_page calls mmu->sync_page, the guest
        # mode's FNAME(sync_page) (v6.1.15 mmu.c kvm_sync_page, paging_tmpl.h)
        mmu.sync_page = lambda vcpu_, sp: getattr(vcpu.kvm, "FNAME(sync_page)")(vcpu_, sp)
    if not isinstance(mmu.root, Struct):
        mmu.root = Struct("struct kvm_mmu_root_info", hpa=INVALID_PAGE, pgd=0)
    mmu.__dict__.setdefault("prev_roots", [Struct("struct kvm_mmu_root_info", hpa=INVALID_PAGE,
                                                  pgd=0) for _ in range(3)])
    mmu.__dict__.setdefault("pae_root", None)
    vcpu.__dict__.setdefault("stat", Struct("struct kvm_vcpu_stat"))
    vcpu.__dict__.setdefault("requests", 0)
    vcpu.__dict__.setdefault("mode", 0)            # OUTSIDE_GUEST_MODE
    for name, kind in VCPU_CACHES.items():
        vcpu.arch.__dict__.setdefault(name, memory_cache(kind))


# -- the host's page tables (the primary MMU: kvm.host, gfn -> (pfn, writable)) ----------

class HostEntry:
    """One entry of the host page table walk for ``hva`` (``pgd_t``...``pmd_t``)."""

    def __init__(self, level: int, hva: int):
        self.level, self.hva = level, hva


def pmd_leaf(vm, entry) -> bool:
    """A 2M host mapping: the models' host fact (``kernel_models.mmu_slot``), read at the
    gfn the memslot's hva stands for (``userspace_addr`` is 0: hva = gfn << PAGE_SHIFT)."""
    from kernel_models.mmu_slot import host_pfn_mapping_level
    gfn = entry.hva >> 12
    return host_pfn_mapping_level(vm, gfn, vm.gfn_to_memslot(gfn)) == 2


# -- error pointers, invalidation, allocation flags ---------------------------------

class ErrorPointer(int):
    """``ERR_PTR(-errno)``: a pointer that is an error code."""


def _invalidate_begin(vm, *args):
    """virt/kvm/kvm_main.c kvm_mmu_invalidate_begin: an invalidation is in progress."""
    vm.mmu_invalidate_in_progress += 1


def _invalidate_end(vm, *args):
    """kvm_mmu_invalidate_end: the sequence count moves on, the invalidation ends."""
    vm.mmu_invalidate_seq += 1
    vm.mmu_invalidate_in_progress -= 1


# -- union kvm_mmu_page_role ------------------------------------------------------

# The role's bit fields and widths, in the union's order (arch/x86/include/asm/kvm_host.h
# at v6.9: five unused bits before smm; later releases take one for is_mirror, here the
# environment's is_private).
ROLE_BITS = (("level", 4), ("has_4_byte_gpte", 1), ("quadrant", 2), ("direct", 1),
             ("access", 3), ("invalid", 1), ("efer_nx", 1), ("cr0_wp", 1),
             ("smep_andnot_wp", 1), ("smap_andnot_wp", 1), ("ad_disabled", 1),
             ("guest_mode", 1), ("passthrough", 1), ("is_private", 1), ("", 4), ("smm", 8))
ROLE_FIELDS = tuple(name for name, _ in ROLE_BITS if name)


def role_word(role) -> int:
    """``role.word``: the union's other view, the bit fields packed as the C lays them
    out (kvm_sync_page_check masks it with a role of ignored fields; the shadow-page
    hash compares whole words)."""
    word, shift = 0, 0
    for name, width in ROLE_BITS:
        if name:
            word |= (int(getattr(role, name, 0) or 0) & ((1 << width) - 1)) << shift
        shift += width
    return word


class PageRole(Struct):
    """``union kvm_mmu_page_role`` built by the environment: ``word`` follows the fields."""

    @property
    def word(self):
        return role_word(self)

    @word.setter
    def word(self, value):
        """Writing the union's word sets every field (mmu.c kvm_mmu_after_set_cpuid and
        the init paths clear or copy whole roles as words)."""
        shift = 0
        for name, width in ROLE_BITS:
            if name:
                setattr(self, name, (int(value) >> shift) & ((1 << width) - 1))
            shift += width


# -- mmu_notifier arguments -------------------------------------------------------

class NotifierArg(tuple):
    """``range->arg`` (``union kvm_mmu_notifier_arg``): the hand-written models' new host
    PTE ``(pfn, writable)``, or ``()`` with no argument; ``.pte`` reads it as a ``pte_t``."""

    @property
    def pte(self):
        return self


class NotifierArgField:
    """``kvm_gfn_range.arg`` stored as a ``NotifierArg`` (None: no argument)."""

    def __set_name__(self, owner, name):
        self.key = "_" + name

    def __get__(self, obj, owner=None):
        if obj is None:
            return None
        return obj.__dict__.get(self.key, NotifierArg())

    def __set__(self, obj, value):
        obj.__dict__[self.key] = NotifierArg(value or ())


class CallableFlag(int):
    """A kernel global that was a function in older releases (``kvm_ad_enabled``): the
    translated C reads it, the operations written for v6.9 call it."""

    def __call__(self) -> bool:
        return bool(self)


# -- memslots (include/linux/kvm_host.h lookups over the VM's list) ----------------------

def _memslot_iter_start(kvm, iter, slots, start):
    """kvm_memslot_iter_start: the first slot that ends after ``start`` (by base gfn)."""
    as_id = getattr(slots, "__dict__", {}).get("as_id", 0)
    order = sorted((slot for slot in kvm.memslots if slot.as_id == as_id),
                   key=lambda slot: slot.base_gfn)
    iter.order = [slot for slot in order if slot.base_gfn + slot.npages > start]
    iter.position = 0
    iter.slot = iter.order[0] if iter.order else None


def _memslot_iter_next(kvm, iter):
    iter.position += 1
    iter.slot = iter.order[iter.position] if iter.position < len(iter.order) else None


def _memslot_iter_is_valid(kvm, iter, end):
    return iter.slot is not None and iter.slot.base_gfn < end


MEMSLOT_FUNCTIONS = {
    "__kvm_memslots": lambda kvm, as_id: Struct("struct kvm_memslots", as_id=as_id),
    "kvm_memslot_iter_start": _memslot_iter_start, "kvm_memslot_iter_next": _memslot_iter_next,
    "kvm_memslot_iter_is_valid": _memslot_iter_is_valid,
    "__gfn_to_memslot": lambda kvm, slots, gfn: kvm.gfn_to_memslot(gfn),
    "search_memslots": lambda kvm, slots, gfn, approx=False: kvm.gfn_to_memslot(gfn),
    "kvm_vcpu_gfn_to_memslot": lambda kvm, vcpu, gfn: kvm.gfn_to_memslot(gfn),
}



# -- reference counts --------------------------------------------------------------

def refcount_set(vm, ref, value):
    ref.set(value)


def refcount_inc(vm, ref):
    ref.set(ref.get() + 1)


def refcount_dec_and_test(vm, ref):
    ref.set(ref.get() - 1)
    return ref.get() == 0


def refcount_inc_not_zero(vm, ref):
    if not ref.get():
        return False
    ref.set(ref.get() + 1)
    return True


def refcount_read(vm, ref):
    return ref.get()


# -- work items (include/linux/workqueue.h) -------------------------------------------
# One thread: a queued item runs when its queue is flushed (flush_workqueue, and
# destroy_workqueue, which waits for it), never in between; an item runs once per queueing.
# v6.1.15 zaps invalidated TDP MMU roots so (tdp_mmu_schedule_zap_root queues,
# kvm_tdp_mmu_zap_invalidated_roots flushes).

def _work_key(work):
    return (id(work.container), work.key) if isinstance(work, Ref) else id(work)


def INIT_WORK(vm, work, function):  # noqa: N802 - kernel macro name
    vm.__dict__.setdefault("_work_functions", {})[_work_key(work)] = (work, function)


def queue_work(vm, queue, work) -> bool:
    pending = vm.__dict__.setdefault("_work_pending", [])
    if any(_work_key(item) == _work_key(work) for _, item in pending):
        return False                       # already pending: queued once
    pending.append((queue, work))
    return True


def flush_workqueue(vm, queue) -> None:
    pending = vm.__dict__.setdefault("_work_pending", [])
    while any(q is queue for q, _ in pending):
        position = next(i for i, (q, _) in enumerate(pending) if q is queue)
        _, work = pending.pop(position)
        item, function = vm.__dict__["_work_functions"][_work_key(work)]
        function(item)


PRIMITIVES: dict = {
    "INIT_WORK": INIT_WORK, "queue_work": queue_work, "flush_workqueue": flush_workqueue,
    "destroy_workqueue": flush_workqueue,
    "pte_pfn": lambda vm, pte: pte[0], "pte_write": lambda vm, pte: bool(pte[1]),
    "ERR_PTR": lambda vm, code: ErrorPointer(code),
    "IS_ERR": lambda vm, p: isinstance(p, ErrorPointer),
    "IS_ERR_OR_NULL": lambda vm, p: p is None or isinstance(p, ErrorPointer),
    "PTR_ERR": lambda vm, p: int(p),
    "kvm_mmu_invalidate_begin": _invalidate_begin, "kvm_mmu_invalidate_end": _invalidate_end,
    "kvm_mmu_invalidate_range_add": lambda vm, *args: None,
    "kmem_cache_alloc": lambda vm, cache, gfp=0: kvm_mmu_memory_cache_alloc(vm, cache),
    "kmem_cache_zalloc": lambda vm, cache, gfp=0: kvm_mmu_memory_cache_alloc(vm, cache),
    "__get_free_page": lambda vm, gfp=0: PageMemory(),
    "get_zeroed_page": lambda vm, gfp=0: PageMemory(),
    "pgd_offset": lambda vm, mm, hva: HostEntry(5, hva),
    "p4d_offset": lambda vm, pgd, hva: HostEntry(4, hva),
    "pud_offset": lambda vm, p4d, hva: HostEntry(3, hva),
    "pmd_offset": lambda vm, pud, hva: HostEntry(2, hva),
    "pgd_none": lambda vm, e: False, "p4d_none": lambda vm, e: False,
    "pud_none": lambda vm, e: False, "pmd_none": lambda vm, e: False,
    "p4d_present": lambda vm, e: True, "pud_present": lambda vm, e: True,
    "pmd_present": lambda vm, e: True, "pud_leaf": lambda vm, e: False,
    "pud_large": lambda vm, e: False, "pmd_leaf": pmd_leaf, "pmd_large": pmd_leaf,
    "local_irq_save": lambda vm, flags: None, "local_irq_restore": lambda vm, flags: None,
    "list_add": list_add, "list_add_rcu": list_add, "list_add_tail": list_add_tail,
    "list_add_tail_rcu": list_add_tail, "list_del": list_del, "list_del_rcu": list_del,
    "list_del_init": list_del, "list_move": list_move, "list_move_tail": list_move_tail,
    "INIT_LIST_HEAD": INIT_LIST_HEAD, "list_empty": list_empty,
    "list_first_entry": list_first_entry, "list_last_entry": list_last_entry,
    "list_first_or_null_rcu": list_first_or_null, "list_first_entry_or_null": list_first_or_null,
    "list_next_or_null_rcu": list_next_or_null, "list_splice_init": list_splice_init,
    "hlist_add_head": lambda vm, node, head: None, "hlist_del": lambda vm, node: None,
    "hlist_del_init": lambda vm, node: None, "typeof": typeof,
    "kvm_mmu_memory_cache_alloc": kvm_mmu_memory_cache_alloc,
    "kvm_mmu_topup_memory_cache": lambda vm, cache, n: 0,
    "__kvm_mmu_topup_memory_cache": lambda vm, cache, capacity, n: 0,
    "kvm_mmu_memory_cache_nr_free_objects": lambda vm, cache: 1 << 20,
    "set_page_private": set_page_private,
    "percpu_counter_add": lambda vm, counter, n: None,
    # x86.c / nospec.h facts of the modelled host: no non-coherent DMA, no speculation
    "kvm_arch_has_noncoherent_dma": lambda vm, kvm=None: False,
    "array_index_nospec": lambda vm, index, size: index,
    "is_zero_pfn": lambda vm, pfn: False,    # kvm_total_used_mmu_pages (host-wide)
    "refcount_set": refcount_set, "refcount_inc": refcount_inc,
    "refcount_dec_and_test": refcount_dec_and_test, "refcount_inc_not_zero": refcount_inc_not_zero,
    "refcount_read": refcount_read,
}

# Allocation flags (include/linux/gfp_types.h): the environment's allocations ignore them.
CONSTANTS = {"GFP_KERNEL": 0, "GFP_KERNEL_ACCOUNT": 0, "GFP_NOWAIT": 0, "GFP_ATOMIC": 0,
             "__GFP_ACCOUNT": 0, "__GFP_ZERO": 0, "__GFP_NOWARN": 0, "__GFP_NORETRY": 0}

# Fields of struct kvm_memory_slot the hand-written class lacks.
SLOT_FIELDS = {"userspace_addr": 0}

# Fields of struct kvm_mmu_page the hand-written class lacks (entry nodes of the lists).
PAGE_FIELDS = {"link": None, "hash_link": None, "mmu_valid_gen": 0,
               "tdp_mmu_async_work": None, "tdp_mmu_async_data": None,     # v6.1.15
               # v6.1's name of nx_huge_page_disallowed
               "lpage_disallowed": property(lambda sp: sp.nx_huge_page_disallowed,
                                            lambda sp, v: setattr(sp, "nx_huge_page_disallowed",
                                                                  v))}

# The kmem caches of mmu.c (globals the tree declares), by the kind of object they hold.
GLOBALS = {"mmu_page_header_cache": memory_cache("page_header"),
           "pte_list_desc_cache": memory_cache("pte_list_desc")}


class VmArch(Struct):
    """``kvm->arch``: fields the operations keep on the VM itself are read from it."""

    FROM_VM = ("shadow_root_allocated", "tdp_mmu_enabled",     # the latter per VM in v6.1
               "external_write_tracking_enabled")

    def __getattr__(self, name):
        if name in VmArch.FROM_VM:
            return self.__dict__["_vm"].__dict__.get(name, False)
        return super().__getattr__(name)

    def __setattr__(self, name, value):
        """What the C writes of those fields is the VM's (page_track.c's enable,
        mmu_first_shadow_root_alloc), as the models and operations read it."""
        if name in VmArch.FROM_VM:
            setattr(self.__dict__["_vm"], name, value)
        else:
            super().__setattr__(name, value)


def bind_arch(arch, vm) -> None:
    arch.__class__ = VmArch
    arch.__dict__["_vm"] = vm


# kvm->arch fields the allocation paths read (n_max_mmu_pages: no page limit is reached).
ARCH_FIELDS = {"n_max_mmu_pages": 1 << 20, "n_used_mmu_pages": 0, "n_requested_mmu_pages": 0,
               "mmu_valid_gen": 0, "indirect_shadow_pages": 0, "vm_type": 0}
