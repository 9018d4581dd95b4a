"""Deriving after-models from hunks, cross-checked against the hand-written models.

The acceptance test: for every bundled hunk the subset supports, the derived
after-function and the hand-written after-model produce the same effect log
(every event, with who emitted it, and what the driver reports) for every
case of the function's driver in every SPTE encoding mode.  Each agreement
test has a twin showing the comparison does fail when the models differ.
"""

import pytest

from harness.translate import derive
from harness.check import drivers as D
from harness.ingest.patches import read_file
from harness.ingest.scope import scope_patch
from kernel_models import registry
from kernel_models.effects import ACCESSED, FolioAccessed
from kernel_models.registry import MMU_C, SPTE_C, TDP_MMU_C, VersionSet

RFC_1 = "patches/rfc-1-of-4.patch"
RFC_2 = "patches/rfc-2-of-4.patch"
RFC_3 = "patches/000_e8ee204d4a7b7ba7.txt"
RFC_4 = "patches/rfc-4-of-4.patch"
MUTANT = "tests/data/derive/rfc-3-of-4-zap-leafs-drops-accessed.patch"
RFC_2_UNDERIVABLE = {3, 4}     # deletes spte_wrprot_for_clear_dirty; for_each_rmap_spte loop

_results: list[derive.DeriveResult] = []


@pytest.fixture(autouse=True)
def forget_derived_blobs():
    yield
    while _results:
        _results.pop().unregister()


def derived(path: str, state: str, skip=()) -> derive.DeriveResult:
    hunks = [h for h in scope_patch(read_file(path)[0]) if h.index not in skip]
    result = derive.derive_after(hunks, VersionSet.series_state(state))
    _results.append(result)
    return result


def run(function: str, versions: VersionSet, case: dict) -> list:
    vm = D.fresh_vm(versions, case["mode"])
    extra = D.DRIVERS[function].call(vm, case)
    return [(event, event.by) for event in [*vm.log.events, *extra]]


def cross_check(function: str, one: VersionSet, other: VersionSet):
    """(cases run, cases where the two effect logs differ, first such case)."""
    total, differing, first = 0, 0, None
    for mode in D.MODES:
        for case in D.DRIVERS[function].cases(mode):
            total += 1
            if run(function, one, case) != run(function, other, case):
                differing += 1
                first = first or case
    return total, differing, first


AGREEMENT = [
    (RFC_1, "base", "after 1/4", (), "make_spte"),
    (RFC_3, "after 2/4", "after 3/4", (), "mmu_spte_update"),
    (RFC_3, "after 2/4", "after 3/4", (), "handle_changed_spte"),
    (RFC_3, "after 2/4", "after 3/4", (), "tdp_mmu_zap_leafs"),
    (RFC_4, "after 3/4", "after 4/4", (), "mmu_spte_update"),
    (RFC_2, "after 1/4", "after 2/4", RFC_2_UNDERIVABLE, "mmu_spte_update"),
    (RFC_2, "after 1/4", "after 2/4", RFC_2_UNDERIVABLE, "mmu_spte_clear_track_bits"),
    (RFC_2, "after 1/4", "after 2/4", RFC_2_UNDERIVABLE, "mmu_spte_age"),
    (RFC_2, "after 1/4", "after 2/4", RFC_2_UNDERIVABLE, "make_spte"),
    (RFC_2, "after 1/4", "after 2/4", RFC_2_UNDERIVABLE, "handle_changed_spte"),
    (RFC_2, "after 1/4", "after 2/4", RFC_2_UNDERIVABLE, "age_gfn_range"),
    (RFC_2, "after 1/4", "after 2/4", RFC_2_UNDERIVABLE, "clear_dirty_pt_masked"),
]


@pytest.mark.parametrize("path, before, after, skip, function", AGREEMENT,
                         ids=[f"{p.rsplit('/', 1)[-1]}::{f}" for p, *_, f in AGREEMENT])
def test_derived_after_model_agrees_with_the_hand_written_one(path, before, after, skip,
                                                             function):
    result = derived(path, before, skip)
    assert result.misses == ()
    assert function in {name for _, name in result.derived}
    total, differing, first = cross_check(function, result.after,
                                          VersionSet.series_state(after))
    assert total == sum(len(D.DRIVERS[function].cases(m)) for m in D.MODES) > 0
    assert (differing, first) == (0, None)


def test_the_cross_check_sees_a_real_difference():
    """Twin: derived 3/4 against hand-written 2/4 (the zap now marks accessed itself,
    handle_changed_spte no longer does) and derived 4/4 against hand-written 3/4 (clearing
    A no longer flushes) must disagree."""
    three = derived(RFC_3, "after 2/4")
    total, differing, first = cross_check("handle_changed_spte", three.after,
                                          VersionSet.series_state("after 2/4"))
    assert differing > 0 and first is not None
    before_log = run("handle_changed_spte", VersionSet.series_state("after 2/4"), first)
    assert any(isinstance(e, FolioAccessed) for e, _ in before_log)
    assert not any(isinstance(e, FolioAccessed)
                   for e, _ in run("handle_changed_spte", three.after, first))
    four = derived(RFC_4, "after 3/4")
    assert cross_check("mmu_spte_update", four.after,
                       VersionSet.series_state("after 3/4"))[1] > 0


def test_rfc_3_derives_every_changed_function_under_a_derived_blob():
    result = derived(RFC_3, "after 2/4")
    assert result.derived == ((MMU_C, "mmu_spte_update"), (TDP_MMU_C, "handle_changed_spte"),
                              (TDP_MMU_C, "tdp_mmu_zap_leafs"))
    assert result.after.blob(MMU_C).startswith("derived-0a6c6619d213-")
    assert result.after.blob(TDP_MMU_C).startswith("derived-340d5af454c6-")
    zap = registry.lookup(TDP_MMU_C, "tdp_mmu_zap_leafs", result.after.blob(TDP_MMU_C))
    assert zap.model_id == "derive.tdp_mmu_zap_leafs"
    assert "kvm.kvm_set_pfn_accessed(kvm.spte_to_pfn(iter.old_spte))" in zap.function.derived_source
    assert "from tdp_mmu.tdp_mmu_zap_leafs by @@ -841,6 +837,9 @@" in zap.function.__doc__
    # a function no hunk touches is inherited from the pre-image blob
    assert registry.lookup(TDP_MMU_C, "tdp_mmu_set_spte", result.after.blob(TDP_MMU_C)) is \
        registry.lookup(TDP_MMU_C, "tdp_mmu_set_spte", "5866a664f46e")
    result.unregister()
    assert registry.lookup(TDP_MMU_C, "tdp_mmu_zap_leafs", result.after.blob(TDP_MMU_C)) is None


def _accessed_leaf_case(mode="ept_ad"):
    for case in D.DRIVERS["tdp_mmu_zap_leafs"].cases(mode):
        vm = D.fresh_vm(VersionSet.series_state("after 3/4"), mode)
        if case["level"] == 1 and vm.is_shadow_present_pte(case["old"]) \
                and vm.is_accessed_spte(case["old"]):
            return case
    raise AssertionError("the domain has no accessed 4K leaf")


def test_mutant_that_drops_the_zap_accessed_mark_differs_on_the_accessed_channel():
    """The showcase: a 3/4 variant with unknown post-image blobs whose zap-leafs hunk is
    gone.  Its derived after-model zaps an accessed leaf without marking the folio
    accessed; the hand-written 3/4 model marks it, from tdp_mmu_zap_leafs."""
    mutant = derived(MUTANT, "after 2/4")
    assert mutant.misses == () and mutant.after is not None
    assert mutant.derived == ((MMU_C, "mmu_spte_update"), (TDP_MMU_C, "handle_changed_spte"))
    case = _accessed_leaf_case()
    hand = run("tdp_mmu_zap_leafs", VersionSet.series_state("after 3/4"), case)
    mine = run("tdp_mmu_zap_leafs", mutant.after, case)
    assert [(e, by) for e, by in hand if e.channel == ACCESSED] == [
        (FolioAccessed(pfn=case["old"] >> 12 & 0xFFFFFFFFFF), "tdp_mmu_zap_leafs")]
    assert [e for e, _ in mine if e.channel == ACCESSED] == []
    assert [x for x in hand if x[0].channel != ACCESSED] == [
        x for x in mine if x[0].channel != ACCESSED]
    # twin: the real 3/4, derived the same way, marks it
    real = derived(RFC_3, "after 2/4")
    assert run("tdp_mmu_zap_leafs", real.after, case) == hand


@pytest.mark.parametrize("path, state, expected", [
    ("tests/data/derive/unsupported-cast.patch", "after 2/4",
     "unsupported construct cast at line 544 of mmu.c (patch line 16)"),
    ("tests/data/derive/goto-unknown-label.patch", "base",
     "unsupported construct goto at line 215 of spte.c (patch line 30)"),
    ("tests/data/derive/context-disagrees.patch", "after 2/4",
     "the hunk's context from line 542 of mmu.c (patch line 12) to line 548 of mmu.c "
     "(patch line 19) does not occur in the model mmu.mmu_spte_update_without_dirty_mark"),
    ("tests/data/derive/stale-pre-image.patch", "after 3/4",
     "the pre-image statements from line 542 of mmu.c (patch line 12) do not occur in the "
     "model mmu.mmu_spte_update_without_accessed_mark"),
])
def test_a_miss_names_the_reason_and_the_line(path, state, expected):
    result = derived(path, state)
    assert result.after is None and result.registered == ()
    assert len(result.misses) == 1
    assert expected in result.misses[0][1]


def test_one_underivable_hunk_leaves_no_after_model():
    """Inheriting the before body for the two hunks it cannot derive would be a guess."""
    result = derived(RFC_2, "after 1/4")
    assert result.after is None
    reasons = dict(result.misses)
    assert set(reasons) == RFC_2_UNDERIVABLE
    assert "deletes spte_wrprot_for_clear_dirty" in reasons[3]
    assert "line 1270 of mmu.c" in reasons[4] and "cast" in reasons[4]
    assert (SPTE_C, "make_spte") in result.derived     # the others still derive


def test_a_pre_image_that_is_not_the_before_state_is_a_miss():
    result = derived(RFC_4, "after 2/4")
    assert result.after is None
    assert "pre-image 0a6c6619d213 is not the before state's blob bd2240b94ff6" in \
        result.misses[0][1]


def test_only_unknown_keeps_the_hand_written_model_of_a_known_post_image():
    """What resolve asks for: derive only the files whose post-image nobody modelled."""
    result = derived(RFC_3, "after 2/4")
    assert result.after.blob(MMU_C).startswith("derived-")
    kept = derive.derive_after(scope_patch(read_file(RFC_3)[0]),
                               VersionSet.series_state("after 2/4"), only_unknown=True)
    _results.append(kept)
    assert kept.after.blob(MMU_C) == "0a6c6619d213" and kept.derived == ()


def test_the_engine_flags_the_derived_mutant_and_passes_the_derived_real_patch():
    """Derived, then checked: under RFC 3/4's written contract the engine reports the
    mutant's lost zap accessed mark (a WARN: the accessed channel is tolerant) and nothing
    for the real 3/4 derived the same way."""
    from harness.check import engine as check
    from harness.check import contracts as C
    real_patch = read_file(RFC_3)[0]
    contract = C.contract_for(real_patch, scope_patch(real_patch))
    before = VersionSet.series_state("after 2/4")
    mutant = derived(MUTANT, "after 2/4")
    findings, coverage = check.check_function("tdp_mmu_zap_leafs", before, mutant.after,
                                              contract)
    assert coverage.mode == "exhaustive" and coverage.cases == coverage.total > 0
    assert [(f.severity, f.channel, f.function) for f in findings] == [
        ("WARN", ACCESSED, "tdp_mmu_zap_leafs")]
    real = derived(RFC_3, "after 2/4")
    assert check.check_function("tdp_mmu_zap_leafs", before, real.after, contract)[0] == []


def test_derived_models_chain_through_a_series_nobody_modelled():
    """3/4 derived on 2/4, then 4/4 derived on that: the second derivation edits a derived
    body, and the result still agrees with the hand-written 4/4 model."""
    three = derived(RFC_3, "after 2/4")
    hunks = scope_patch(read_file(RFC_4)[0])
    four = derive.derive_after(hunks, three.after)
    _results.append(four)
    assert four.misses == () and four.derived == ((MMU_C, "mmu_spte_update"),)
    assert four.after.blob(TDP_MMU_C) == three.after.blob(TDP_MMU_C)
    assert cross_check("mmu_spte_update", four.after, VersionSet.series_state("after 4/4"))[1] == 0
    assert cross_check("tdp_mmu_zap_leafs", four.after,
                       VersionSet.series_state("after 4/4"))[1] == 0
