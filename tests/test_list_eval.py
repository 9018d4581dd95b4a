"""bench/list_eval.py reads kconform's results JSON as it is written (no run, no tree)."""

from bench import list_eval


ITEM = {
    "verdict": "FAIL",
    "versions": {"preimages": [
        {"file": "arch/x86/kvm/mmu/mmu.c", "route": "rev", "reason": "applies at v6.9"},
        {"file": "arch/x86/kvm/mmu/spte.c", "route": None, "reason": "hunk 0 does not apply"}]},
    "findings": [
        {"check": "tlb_flush_after_zap", "channel": "flush", "severity": "FAIL",
         "function": "f", "operation": "unmap", "summary": "flush dropped"},
        {"check": "no_new_warn", "channel": "warn", "severity": "NOTE", "function": "f",
         "operation": "fault", "summary": "fix confirmed: no_new_warn held after, failed before"}],
    "hunks": [{"covered": True, "file": "arch/x86/kvm/mmu/mmu.c", "function": "f",
               "reason": "modelled"},
              {"covered": False, "file": "arch/x86/kvm/x86.c", "function": None,
               "reason": "arch/x86/kvm/x86.c is not read"}],
    "error": None,
}


def test_routes_findings_and_miss_reasons_are_read_from_the_item():
    assert list_eval.routes(ITEM) == [
        {"file": "arch/x86/kvm/mmu/mmu.c", "route": "rev", "reason": "applies at v6.9"},
        {"file": "arch/x86/kvm/mmu/spte.c", "route": None, "reason": "hunk 0 does not apply"}]
    assert [(f["severity"], f["check"], f["channel"]) for f in list_eval.findings(ITEM)] == [
        ("FAIL", "tlb_flush_after_zap", "flush"), ("NOTE", "no_new_warn", "warn")]
    assert list_eval.fixes_confirmed(ITEM) == [
        "fix confirmed: no_new_warn held after, failed before"]
    # Only the uncovered hunk gives a reason, named by file and function.
    assert list_eval.miss_reasons(ITEM) == ["arch/x86/kvm/x86.c:-: arch/x86/kvm/x86.c is not read"]


def test_an_item_without_findings_or_fixes_reads_as_empty():
    bare = {"verdict": "MISS", "hunks": [], "findings": [], "error": None}
    assert (list_eval.routes(bare), list_eval.findings(bare), list_eval.fixes_confirmed(bare),
            list_eval.miss_reasons(bare)) == ([], [], [], [])


def test_a_pair_counts_only_fail_or_warn_channels_of_the_buggy_patch():
    index = {"pairs": [{"pair": "P1", "buggy": "a.eml", "fix": "b.eml"}]}
    rows = {"a.eml": {"verdict": "FAIL", "findings": list_eval.findings(ITEM)},
            "b.eml": {"verdict": "PASS", "fixes_confirmed": ["fix confirmed: x"]}}
    [pair] = list_eval.pair_rows(index, rows)
    assert pair["buggy_finding_channels"] == ["flush"]       # the NOTE on 'warn' is not one
    assert pair["fix_confirmed"] is True
    rows["b.eml"]["fixes_confirmed"] = []
    rows["a.eml"]["findings"] = [f for f in rows["a.eml"]["findings"] if f["severity"] == "NOTE"]
    [pair] = list_eval.pair_rows(index, rows)
    assert (pair["buggy_finding_channels"], pair["fix_confirmed"]) == ([], False)


def test_reasons_are_classed_by_kconforms_generic_phrases():
    assert list_eval.reason_class("x.c:f: no before-model: no pre-image: hunk 0 (@@ -1 +1 @@) "
                                  "does not apply to x.c at v6.9: line 1 reads ''") == \
        "no pre-image: the hunks do not apply at the revision"
    assert list_eval.reason_class("arch/x86/kvm/x86.c is not read: kconform reads the MMU") == \
        "a file kconform does not read"
    assert list_eval.reason_class("something new") == "other"


def test_quoted_kernel_lines_are_left_out_of_reasons():
    reason = ("hunk 0 (@@ -4747,7 +4747,9 @@) does not apply to mmu.c at v6.9: line 4747 reads "
              "'return true;' where the hunk has '* the page can't be unsync'd,', and no other "
              "place in the file holds all its old lines")
    assert list_eval.redact(reason) == (
        "hunk 0 (@@ -4747,7 +4747,9 @@) does not apply to mmu.c at v6.9: line 4747 reads "
        "'\u2026' where the hunk has '\u2026', and no other place in the file holds all its old "
        "lines")
    assert list_eval.redact("no quoted line here") == "no quoted line here"


def test_next_tag_is_the_following_release_and_the_last_stays():
    tags = {"v6.6": "2023-10-30", "v6.1.15": "2022-12-11", "v6.9": "2024-05-12"}
    assert list_eval.next_tag(tags, "v6.1.15") == "v6.6"
    assert list_eval.next_tag(tags, "v6.6") == "v6.9"
    assert list_eval.next_tag(tags, "v6.9") == "v6.9"
