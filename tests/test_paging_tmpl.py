"""paging_tmpl.h models: guest PTE decoding, prefetch (both bodies), pte_prefetch
and sync_spte, each property with a broken twin the test catches."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel_models import operations as ops
from kernel_models import paging_tmpl as pt
from kernel_models import registry
from kernel_models.effects import FolioAccessed, PageRefGet, PageRefPut, SpteWrite, Warn
from kernel_models.mmu_internal import kvm_mmu_page, kvm_mmu_page_role

BASE_BLOB, AFTER_2_BLOB = registry.BLOB_CHAINS[registry.PAGING_TMPL_H]


# -- registry ---------------------------------------------------------------------

def test_prefetch_gpte_has_two_bodies_and_sync_spte_one():
    name = "FNAME(prefetch_gpte)"
    assert registry.lookup(registry.PAGING_TMPL_H, name, BASE_BLOB).function is pt.FNAME_prefetch_gpte
    assert (registry.lookup(registry.PAGING_TMPL_H, name, AFTER_2_BLOB).function
            is pt.FNAME_prefetch_gpte_without_release)
    for blob in (BASE_BLOB, AFTER_2_BLOB):
        assert registry.lookup(registry.PAGING_TMPL_H, "FNAME(sync_spte)", blob).function is pt.FNAME_sync_spte


def test_only_the_fname_spelling_is_registered():
    names = {row.name for row in pt.MODEL_TABLE if row.file == registry.PAGING_TMPL_H}
    assert "FNAME(sync_spte)" in names and "FNAME(pte_prefetch)" in names
    assert not any(n.startswith(("paging64_", "paging32_", "ept_")) for n in names)


def test_vm_dispatches_fname_by_its_c_spelling():
    kvm = ops.new_vm("after 2/4", "legacy", "shadow")
    assert pt.FNAME(kvm, "prefetch_gpte").__name__ == "FNAME(prefetch_gpte)"
    assert kvm.functions["FNAME(prefetch_gpte)"] is pt.FNAME_prefetch_gpte_without_release


# -- guest PTE decoding --------------------------------------------------------------

def fake(pttype: str):
    return SimpleNamespace(pttype=pttype)


@pytest.mark.parametrize("pttype", ["64", "ept"])
def test_gpte_access_reads_the_permission_bits(pttype):
    kvm = fake(pttype)
    full = pt.GuestPte(gfn=3).encode(pttype)
    assert pt.FNAME_gpte_access(kvm, full) == pt.ACC_ALL
    read_only = pt.GuestPte(gfn=3, writable=False).encode(pttype)
    assert pt.FNAME_gpte_access(kvm, read_only) == pt.ACC_ALL & ~pt.ACC_WRITE_MASK
    no_exec = pt.GuestPte(gfn=3, executable=False).encode(pttype)
    assert pt.FNAME_gpte_access(kvm, no_exec) == pt.ACC_ALL & ~pt.ACC_EXEC_MASK


def clean_gpte_loses_write(protect_clean_gpte, pttype: str) -> bool:
    """The property: a clean guest PTE maps read-only, a dirty one writable."""
    kvm, mmu = fake(pttype), SimpleNamespace(ad_disabled=False)
    clean = pt.GuestPte(gfn=1, dirty=False).encode(pttype)
    dirty = pt.GuestPte(gfn=1, dirty=True).encode(pttype)
    return (protect_clean_gpte(kvm, mmu, pt.ACC_ALL, clean) == pt.ACC_ALL & ~pt.ACC_WRITE_MASK
            and protect_clean_gpte(kvm, mmu, pt.ACC_ALL, dirty) == pt.ACC_ALL)


@pytest.mark.parametrize("pttype", ["64", "ept"])
def test_protect_clean_gpte_and_its_broken_twin(pttype):
    def ignores_dirty_bit(kvm, mmu, access, gpte):
        return access
    assert clean_gpte_loses_write(pt.FNAME_protect_clean_gpte, pttype)
    assert not clean_gpte_loses_write(ignores_dirty_bit, pttype)


def test_protect_clean_gpte_keeps_write_without_guest_ad():
    mmu = SimpleNamespace(ad_disabled=True)
    clean = pt.GuestPte(gfn=1, dirty=False).encode("ept")
    assert pt.FNAME_protect_clean_gpte(fake("ept"), mmu, pt.ACC_ALL, clean) == pt.ACC_ALL


@settings(max_examples=50, deadline=None)
@given(gfn=st.integers(0, 2**20), pttype=st.sampled_from(["64", "ept"]))
def test_gpte_to_gfn_round_trips(gfn, pttype):
    assert pt.gpte_to_gfn(None, pt.GuestPte(gfn=gfn).encode(pttype)) == gfn


# -- prefetch --------------------------------------------------------------------------

def shadow_vm(state="base", mode="legacy", **kw):
    kvm = ops.new_vm(state, mode, "shadow", **kw)
    vcpu = kvm.vcpus[0]
    return kvm, vcpu, ops.get_indirect_page(kvm, vcpu)


@pytest.mark.parametrize("gpte, dropped", [
    (pt.GuestPte(gfn=9, present=False), True),
    (pt.GuestPte(gfn=9, accessed=False), True),
    (pt.GuestPte(gfn=9, rsvd=True), True),
    (pt.GuestPte(gfn=9), False)])
@pytest.mark.parametrize("mode", ["legacy", "ept_ad"])
def test_prefetch_invalid_gpte(mode, gpte, dropped):
    kvm, vcpu, sp = shadow_vm(mode=mode)
    assert pt.FNAME(kvm, "prefetch_gpte")(vcpu, sp, sp.sptep(2), pt.GuestPte(gfn=9).encode(kvm.pttype))
    mapped = sp.sptep(2).get()
    assert pt.FNAME(kvm, "prefetch_invalid_gpte")(vcpu, sp, sp.sptep(2), gpte.encode(kvm.pttype)) == dropped
    assert sp.sptep(2).get() == (0 if dropped else mapped)


def test_unaccessed_gpte_is_prefetched_when_guest_ad_is_off():
    kvm, vcpu, sp = shadow_vm(mode="ept_ad")
    vcpu.arch.mmu.ad_disabled = True
    gpte = pt.GuestPte(gfn=9, accessed=False).encode("ept")
    assert not pt.FNAME(kvm, "prefetch_invalid_gpte")(vcpu, sp, sp.sptep(2), gpte)


def prefetch_one(state, gpte: pt.GuestPte, **kw):
    kvm, vcpu, sp = shadow_vm(state, **kw)
    mark = kvm.log.mark()
    mapped = pt.FNAME(kvm, "prefetch_gpte")(vcpu, sp, sp.sptep(2), gpte.encode(kvm.pttype))
    return kvm, sp, mapped, kvm.log.since(mark)


def test_prefetch_gpte_base_releases_and_marks_accessed():
    kvm, sp, mapped, events = prefetch_one("base", pt.GuestPte(gfn=9))
    pfn = ops.HOST_PFN_BASE + 9
    assert mapped and kvm.is_shadow_present_pte(sp.sptep(2).get())
    assert [type(e) for e in events if e.channel in ("refs", "accessed")] == [
        PageRefGet, FolioAccessed, PageRefPut]
    assert [e.pfn for e in events if isinstance(e, FolioAccessed)] == [pfn]
    assert ops.folio_refcounts(kvm) == {}


def test_prefetch_gpte_after_2_4_keeps_the_reference():
    kvm, sp, mapped, events = prefetch_one("after 2/4", pt.GuestPte(gfn=9))
    assert mapped
    assert [type(e) for e in events if e.channel in ("refs", "accessed")] == [PageRefGet]
    assert ops.folio_refcounts(kvm) == {ops.HOST_PFN_BASE: 1}


@pytest.mark.parametrize("state", ["base", "after 2/4"])
def test_prefetch_gpte_without_a_host_page_takes_no_reference(state):
    kvm, sp, mapped, events = prefetch_one(state, pt.GuestPte(gfn=9), unbacked_gfns=(9,))
    assert not mapped and not sp.sptep(2).get()
    assert not [e for e in events if e.channel == "refs"]


@pytest.mark.parametrize("state", ["base", "after 2/4"])
def test_prefetch_gpte_of_a_read_only_host_page_maps_nothing(state):
    """gfn_to_pfn_memslot_atomic asks for write access, so a page the host maps
    read-only is an error pfn: no reference, no SPTE (never a host-writable SPTE
    over a read-only page), no folio mark."""
    kvm, sp, mapped, events = prefetch_one(state, pt.GuestPte(gfn=9), readonly_gfns=(9,))
    assert not mapped and not sp.sptep(2).get()
    assert not [e for e in events if e.channel in ("refs", "accessed", "dirty")]
    # The twin: a writable host page is mapped.
    kvm, sp, mapped, events = prefetch_one(state, pt.GuestPte(gfn=9))
    assert mapped and kvm.is_shadow_present_pte(sp.sptep(2).get())


def test_prefetch_gpte_refuses_writable_maps_in_a_dirty_logged_slot():
    kvm, vcpu, sp = shadow_vm()
    ops.dirty_log_enable(kvm)
    dirty = pt.GuestPte(gfn=9, dirty=True).encode("64")
    clean = pt.GuestPte(gfn=10, dirty=False).encode("64")
    assert not pt.FNAME(kvm, "prefetch_gpte")(vcpu, sp, sp.sptep(2), dirty)
    assert pt.FNAME(kvm, "prefetch_gpte")(vcpu, sp, sp.sptep(3), clean)


# -- pte_prefetch ------------------------------------------------------------------------

def walker(gptes):
    return pt.guest_walker(prefetch_ptes=list(gptes))


def test_pte_prefetch_skips_the_faulting_and_present_entries():
    kvm, vcpu, sp = shadow_vm()
    gptes = [pt.GuestPte(gfn=0x10 + i).encode("64") for i in range(8)]
    pt.FNAME(kvm, "pte_prefetch")(vcpu, walker(gptes), sp.sptep(3))
    mapped = sorted(i for i in range(8) if sp.sptep(i).get())
    assert mapped == [0, 1, 2, 4, 5, 6, 7]
    before = {i: sp.sptep(i).get() for i in mapped}
    mark = kvm.log.mark()
    pt.FNAME(kvm, "pte_prefetch")(vcpu, walker(gptes), sp.sptep(3))
    assert not [e for e in kvm.log.since(mark) if e.channel in ("spte", "refs")]
    assert before == {i: sp.sptep(i).get() for i in mapped}


def test_pte_prefetch_stops_at_the_first_unusable_gpte():
    kvm, vcpu, sp = shadow_vm()
    gptes = [pt.GuestPte(gfn=0x10 + i).encode("64") for i in range(8)]
    gptes[2] = pt.GuestPte(gfn=0x12, accessed=False).encode("64")
    pt.FNAME(kvm, "pte_prefetch")(vcpu, walker(gptes), sp.sptep(7))
    assert sorted(i for i in range(8) if sp.sptep(i).get()) == [0, 1]


def test_pte_prefetch_does_nothing_during_an_invalidation():
    kvm, vcpu, sp = shadow_vm()
    kvm.mmu_invalidate_in_progress = 1
    gptes = [pt.GuestPte(gfn=0x10 + i).encode("64") for i in range(8)]
    mark = kvm.log.mark()
    pt.FNAME(kvm, "pte_prefetch")(vcpu, walker(gptes), sp.sptep(3))
    assert kvm.log.since(mark) == []


# -- sync_spte -------------------------------------------------------------------------

def synced(state="base", mode="legacy"):
    """Entry 0 prefetched from the default (dirty) guest PTE for gfn 0x100."""
    kvm, vcpu, sp = shadow_vm(state, mode)
    ops.shadow_prefetch(kvm, 1, 9)
    return kvm, vcpu, sp


def write_gpte(kvm, index, gpte: pt.GuestPte):
    kvm.guest_memory[ops.gpte_gpa(index)] = gpte.encode(kvm.pttype)


def sync(kvm, vcpu, sp, index):
    mark = kvm.log.mark()
    return pt.FNAME(kvm, "sync_spte")(vcpu, sp, index), kvm.log.since(mark)


def test_sync_spte_warns_on_an_empty_entry():
    kvm, vcpu, sp = synced()
    ret, events = sync(kvm, vcpu, sp, 2)           # the faulting entry: never mapped
    assert ret == 0 and [type(e) for e in events] == [Warn]


def test_sync_spte_fails_when_the_guest_table_cannot_be_read():
    kvm, vcpu, _ = synced()
    role = kvm_mmu_page_role(level=1, direct=False, guest_mode=True)
    outside = kvm_mmu_page(kvm, role, 5000)        # a guest table beyond the memslot
    outside.spt[0] = 1                             # anything non-empty: the read comes first
    ret, _ = sync(kvm, vcpu, outside, 0)
    assert ret == -1


def test_sync_spte_same_access_is_left_alone():
    kvm, vcpu, sp = synced()
    ret, events = sync(kvm, vcpu, sp, 0)
    assert ret == 0 and events == []


def test_sync_spte_drops_an_invalid_or_moved_gpte():
    for gpte in (pt.GuestPte(gfn=0x100, present=False), pt.GuestPte(gfn=0x155, dirty=True)):
        kvm, vcpu, sp = synced()
        write_gpte(kvm, 0, gpte)
        ret, events = sync(kvm, vcpu, sp, 0)
        assert ret == 1 and not sp.sptep(0).get()
        assert [e.by for e in events if isinstance(e, SpteWrite)] == ["mmu_spte_clear_track_bits"]


def test_sync_spte_gfn_check_and_its_broken_twin():
    """A sync that forgets the gfn check keeps a stale translation; the test sees it."""
    def sync_without_gfn_check(kvm, vcpu, sp, i):
        saved = sp.shadowed_translation[i]
        sp.shadowed_translation[i] = (pt.gpte_to_gfn(kvm, kvm.guest_memory[ops.gpte_gpa(i)]), saved[1])
        return pt.FNAME_sync_spte(kvm, vcpu, sp, i)

    registry.register_blob(registry.PAGING_TMPL_H, "mutant-sync", BASE_BLOB,
                           {"FNAME(sync_spte)": sync_without_gfn_check})
    try:
        for versions, dropped in ((registry.VersionSet.series_state("base"), True),
                                  (registry.VersionSet.series_state("base").with_blob(
                                      registry.PAGING_TMPL_H, "mutant-sync"), False)):
            kvm = ops.new_vm(versions, "legacy", "shadow")
            vcpu = kvm.vcpus[0]
            sp = ops.get_indirect_page(kvm, vcpu)
            ops.shadow_prefetch(kvm, 1, 9)
            write_gpte(kvm, 0, pt.GuestPte(gfn=0x155, dirty=True))
            pt.FNAME(kvm, "sync_spte")(vcpu, sp, 0)
            assert (not sp.sptep(0).get()) == dropped
    finally:
        registry.unregister_blob(registry.PAGING_TMPL_H, "mutant-sync")


@pytest.mark.parametrize("state, flush", [("base", 1), ("after 2/4", 1), ("after 4/4", 1)])
def test_sync_spte_write_protect_returns_the_update_flush(state, flush):
    """Dirty -> clean gPTE: the SPTE loses W (an MMU-writable SPTE), so every
    version flushes; the old SPTE's A bit is cleared because make_spte runs
    with prefetch = true."""
    kvm, vcpu, sp = synced(state)
    write_gpte(kvm, 0, pt.GuestPte(gfn=0x100, dirty=False))
    ret, events = sync(kvm, vcpu, sp, 0)
    assert ret == flush
    new = sp.sptep(0).get()
    assert not kvm.is_writable_pte(new) and not kvm.is_accessed_spte(new)
    assert sp.shadowed_translation[0][1] == pt.ACC_ALL & ~pt.ACC_WRITE_MASK


def test_pte_prefetch_hands_direct_pages_to_direct_prefetch():
    kvm, vcpu, _ = shadow_vm(unbacked_gfns=(1000,))   # a hole: gfns 512..1023 map 4K
    ops.fault(kvm, 600)
    direct = ops.table_under(kvm, vcpu.arch.mmu.root, 600, 1)
    assert direct is not None and direct.role.direct
    mark = kvm.log.mark()
    pt.FNAME(kvm, "pte_prefetch")(vcpu, walker([0] * 8), direct.sptep(100))   # an untouched group
    assert {e.by for e in kvm.log.since(mark) if e.channel == "refs"} == {"direct_pte_prefetch_many"}


def test_pte_prefetch_ignores_tables_above_4k():
    kvm, vcpu, _ = shadow_vm()
    ops.fault(kvm, 20)
    level2 = ops.table_under(kvm, vcpu.arch.mmu.root, 20, 2)
    mark = kvm.log.mark()
    pt.FNAME(kvm, "pte_prefetch")(vcpu, walker([pt.GuestPte(gfn=1).encode("64")] * 8), level2.sptep(3))
    assert kvm.log.since(mark) == []
