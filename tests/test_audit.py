"""kconform audit's statement comparison: its equivalence rules and listed simplifications.

The C here is written for these tests (small definitions in the files' style), never
copied from a tree.  Each rule is tested both ways: the equivalent form is ``equal``,
a real change next to it is still ``differs``.
"""

from __future__ import annotations

from types import SimpleNamespace

from harness.translate import audit
from kernel_models import mmu_fault, simplifications
from kernel_models.mmu_internal import kvm_page_fault
from kernel_models.registry import MMU_C, MMU_INTERNAL_H, SPTE_H, TDP_MMU_C, VersionSet

BASE = VersionSet.series_state("base")


def outcome(file: str, text: str, name: str) -> audit.FunctionAudit:
    rows = [r for r in audit.audit_text(file, text, "test", BASE) if r.function == name]
    assert len(rows) == 1, rows
    return rows[0]


def test_a_bool_function_returns_its_value_converted_on_both_sides():
    same = "static inline bool is_large_pte(u64 pte)\n{\n\treturn pte & PT_PAGE_SIZE_MASK;\n}\n"
    assert outcome(SPTE_H, same, "is_large_pte").outcome == audit.EQUAL
    other = same.replace("PT_PAGE_SIZE_MASK", "PT_WRITABLE_MASK")
    row = outcome(SPTE_H, other, "is_large_pte")
    assert row.outcome == audit.DIFFERS and "+return bool(pte & PT_WRITABLE_MASK)" in row.detail
    # an int function's value is not converted: the same body is then a difference
    as_int = same.replace("static inline bool", "static inline u64")
    assert outcome(SPTE_H, as_int, "is_large_pte").outcome == audit.DIFFERS


def test_not_not_is_bool():
    same = "static inline bool kvm_ad_enabled(void)\n{\n\treturn !!shadow_accessed_mask;\n}\n"
    assert outcome(SPTE_H, same, "kvm_ad_enabled").outcome == audit.EQUAL
    other = same.replace("!!shadow_accessed_mask", "!shadow_accessed_mask")
    assert outcome(SPTE_H, other, "kvm_ad_enabled").outcome == audit.DIFFERS


KVM_SYNC_PAGE = """static int kvm_sync_page(struct kvm_vcpu *vcpu, struct kvm_mmu_page *sp,
\t\t\t struct list_head *invalid_list)
{
\tint ret = __kvm_sync_page(vcpu, sp);

\tif (ret < 0)
\t\tkvm_mmu_prepare_zap_page(vcpu->kvm, sp, invalid_list);
\treturn ret;
}
"""


def test_vcpu_kvm_is_the_models_kvm():
    assert outcome(MMU_C, KVM_SYNC_PAGE, "kvm_sync_page").outcome == audit.EQUAL
    other = KVM_SYNC_PAGE.replace("ret < 0", "ret <= 0")
    row = outcome(MMU_C, other, "kvm_sync_page")
    assert row.outcome == audit.DIFFERS and "+if ret <= 0:" in row.detail


LINK_SP = """static int tdp_mmu_link_sp(struct kvm *kvm, struct tdp_iter *iter,
\t\t\t   struct kvm_mmu_page *sp, bool shared)
{
\tu64 spte = make_nonleaf_spte(sp->spt, !kvm_ad_enabled());
\tint ret = 0;

\tif (shared) {
\t\tret = tdp_mmu_set_spte_atomic(kvm, iter, spte);
\t\tif (ret)
\t\t\treturn ret;
\t} else {
\t\ttdp_mmu_iter_set_spte(kvm, iter, spte);
\t}
\ttdp_account_mmu_page(kvm, sp);
\treturn 0;
}
"""


def test_a_table_passed_as_sp_spt_and_a_dead_initialiser_are_the_models():
    assert outcome(TDP_MMU_C, LINK_SP, "tdp_mmu_link_sp").outcome == audit.EQUAL
    # the initialiser is read on the exclusive path now: it is no longer dead
    read = LINK_SP.replace("tdp_mmu_iter_set_spte(kvm, iter, spte);",
                           "tdp_mmu_iter_set_spte(kvm, iter, spte + ret);")
    row = outcome(TDP_MMU_C, read, "tdp_mmu_link_sp")
    assert row.outcome == audit.DIFFERS and "+ret = 0" in row.detail
    field = LINK_SP.replace("sp->spt,", "sp->gfn,")
    assert outcome(TDP_MMU_C, field, "tdp_mmu_link_sp").outcome == audit.DIFFERS


ZAP_PTE = """static int mmu_page_zap_pte(struct kvm *kvm, struct kvm_mmu_page *sp,
\t\t\t    u64 *spte, struct list_head *invalid_list)
{
\tu64 pte;
\tstruct kvm_mmu_page *child;

\tpte = *spte;
\tif (is_shadow_present_pte(pte)) {
\t\tif (is_last_spte(pte, sp->role.level)) {
\t\t\tdrop_spte(kvm, spte);
\t\t} else {
\t\t\tchild = spte_to_child_sp(pte);
\t\t\tdrop_parent_pte(kvm, child, spte);
\t\t\tif (tdp_enabled && invalid_list &&
\t\t\t    child->role.guest_mode && !child->parent_ptes.val)
\t\t\t\treturn kvm_mmu_prepare_zap_page(kvm, child, invalid_list);
\t\t}
\t} else if (is_mmio_spte(pte)) {
\t\tmmu_spte_clear_no_track(spte);
\t}
\treturn 0;
}
"""


def test_an_rmap_heads_val_is_the_models_list():
    assert outcome(MMU_C, ZAP_PTE, "mmu_page_zap_pte").outcome == audit.EQUAL
    other = ZAP_PTE.replace("!child->parent_ptes.val", "child->parent_ptes.val")
    assert outcome(MMU_C, other, "mmu_page_zap_pte").outcome == audit.DIFFERS


HAS_GPTES = """static bool sp_has_gptes(struct kvm_mmu_page *sp)
{
\tif (sp->role.direct)
\t\treturn false;
\tif (sp->role.passthrough)
\t\treturn false;
\treturn true;
}
"""


def test_a_listed_simplification_is_reported_as_such_and_only_exactly():
    row = outcome(MMU_C, HAS_GPTES, "sp_has_gptes")
    assert row.outcome == audit.SIMPLIFIED
    assert simplifications.find(MMU_C, "sp_has_gptes").reason in row.detail
    more = HAS_GPTES.replace("\treturn true;", "\tif (sp->role.invalid)\n\t\treturn false;\n"
                                               "\treturn true;")
    row = outcome(MMU_C, more, "sp_has_gptes")
    assert row.outcome == audit.DIFFERS
    assert "does not account for these lines" in row.detail


def test_every_listed_simplification_names_a_modelled_function_and_says_why():
    from kernel_models import registry
    for row in simplifications.SIMPLIFICATIONS:
        assert registry.lookup(row.file, row.function, BASE.blob(row.file)) is not None, row
        assert row.model or row.c
        assert len(row.reason) > 40
    assert {r.file for r in simplifications.SIMPLIFICATIONS} <= {MMU_C, SPTE_H, MMU_INTERNAL_H}


# -- model fixes the v6.9 audit found ------------------------------------------------

def _prefetch_kvm(in_progress: int):
    called = []
    sp = SimpleNamespace(role=SimpleNamespace(level=1))
    kvm = SimpleNamespace(sptep_to_sp=lambda sptep: sp, sp_ad_disabled=lambda sp: False,
                          mmu_invalidate_in_progress=in_progress)
    setattr(kvm, "__direct_pte_prefetch", lambda vcpu, sp, sptep: called.append(sptep))
    return kvm, called


def test_direct_pte_prefetch_does_not_prefetch_during_an_invalidation():
    """mmu.c direct_pte_prefetch returns while mmu_invalidate_in_progress (the model left
    that test out)."""
    kvm, called = _prefetch_kvm(in_progress=1)
    mmu_fault.direct_pte_prefetch(kvm, None, "sptep")
    assert called == []
    kvm, called = _prefetch_kvm(in_progress=0)
    mmu_fault.direct_pte_prefetch(kvm, None, "sptep")
    assert called == ["sptep"]


def test_a_reserved_bit_fault_is_never_fast_and_never_write_tracked():
    kvm = SimpleNamespace(kvm_ad_enabled=lambda: True, kvm_gfn_is_write_tracked=lambda s, g: True)
    fault = kvm_page_fault(present=True, write=True, rsvd=True)
    assert mmu_fault.page_fault_can_be_fast(kvm, fault) is False
    assert mmu_fault.page_fault_handle_page_track(kvm, None, fault) is False
    fault = kvm_page_fault(present=True, write=True)
    assert mmu_fault.page_fault_can_be_fast(kvm, fault) is True
    assert mmu_fault.page_fault_handle_page_track(kvm, None, fault) is True


def test_each_file_says_whether_its_blob_is_the_one_the_models_mirror():
    from kernel_models.registry import UNCHANGED
    assert audit.blob_note("4a599130e9c9ab", "4a599130e9c9") == \
        "blob 4a599130e9c9, the one the models mirror"
    assert "the models mirror e4cc7f764980, so a difference may be the kernel's change" in \
        audit.blob_note("db007a4dffa2", "e4cc7f764980")
    assert "unchanged copy" in audit.blob_note("a129951c9a88", UNCHANGED)


def test_is_present_gpte_returns_the_present_bits_not_a_bool():
    """paging_tmpl.h FNAME(is_present_gpte) is an int function: an EPT entry with R, W and X
    gives 7 (the drawn fidelity run found the model answering True)."""
    from kernel_models.paging_tmpl import FNAME_is_present_gpte, GuestPte
    for pttype, expected in (("ept", 7), ("64", 1)):
        kvm = SimpleNamespace(pttype=pttype)
        gpte = GuestPte(gfn=0x10, present=True, writable=True, executable=True).encode(pttype)
        assert FNAME_is_present_gpte(kvm, gpte) == expected
        assert FNAME_is_present_gpte(kvm, 0) == 0


def test_get_mmio_spte_gfn_folds_the_l1tf_bits_back_as_the_c_does():
    """mmu.c get_mmio_spte_gfn ors in the gfn bits an L1TF host moved above the
    reserved mask; the model left that line out (the mask is 0 on the model host)."""
    from kernel_models import mmu
    from kernel_models.spte import SHADOW_NONPRESENT_OR_RSVD_LOWER_GFN_MASK as LOWER
    high = 1 << 45
    kvm = SimpleNamespace(shadow_nonpresent_or_rsvd_lower_gfn_mask=LOWER & ~high,
                          shadow_nonpresent_or_rsvd_mask=high)
    assert mmu.get_mmio_spte_gfn(kvm, (high << 5) | (0x10 << 12)) == (high | (0x10 << 12)) >> 12
    plain = SimpleNamespace(shadow_nonpresent_or_rsvd_lower_gfn_mask=LOWER,
                            shadow_nonpresent_or_rsvd_mask=0)
    assert mmu.get_mmio_spte_gfn(plain, 0x10 << 12) == 0x10
