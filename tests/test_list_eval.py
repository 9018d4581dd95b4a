"""bench/list_eval.py reads kconform's results JSON as it is written (no run, no tree)."""

from bench import list_eval


ITEM = {
    "verdict": "FAIL",
    "versions": {"preimages": [
        {"file": "arch/x86/kvm/mmu/mmu.c", "route": "rev", "reason": "applies at v6.9",
         "fuzz": 1, "applied": "fuzz 1", "commit": "0123456789abcdef"},
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
        {"file": "arch/x86/kvm/mmu/mmu.c", "route": "rev", "reason": "applies at v6.9",
         "fuzz": 1, "applied": "fuzz 1", "commit": "0123456789ab"},
        {"file": "arch/x86/kvm/mmu/spte.c", "route": None, "reason": "hunk 0 does not apply",
         "fuzz": None, "applied": None, "commit": None}]
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
    assert pair["right_channel"] is None        # the fix's row says no channel it was seen on
    rows["b.eml"]["fix_channels"] = list_eval.fix_channels(ITEM)
    assert rows["b.eml"]["fix_channels"] == ["warn"]
    [pair] = list_eval.pair_rows(index, rows)
    assert pair["right_channel"] is False       # the buggy patch's FAIL is on 'flush'
    rows["b.eml"]["fix_channels"] = ["flush"]
    [pair] = list_eval.pair_rows(index, rows)
    assert pair["right_channel"] is True
    rows["b.eml"]["fix_channels"] = []
    rows["b.eml"]["fixes_confirmed"] = []
    rows["a.eml"]["findings"] = [f for f in rows["a.eml"]["findings"] if f["severity"] == "NOTE"]
    [pair] = list_eval.pair_rows(index, rows)
    assert (pair["buggy_finding_channels"], pair["fix_confirmed"]) == ([], False)


def test_reasons_are_classed_by_kconforms_generic_phrases():
    assert list_eval.reason_class("x.c:f: no before-model: no pre-image: hunk 0 (@@ -1 +1 @@) "
                                  "does not apply to x.c at v6.9: line 1 reads ''") == \
        "no applicable pre-image"
    assert list_eval.reason_class("hunk 2 (@@ -1 +1 @@) does not apply to x.c at v6.9: its "
                                  "removed line '\u2026' is nowhere in the file") == \
        "no applicable pre-image"
    assert list_eval.reason_class("arch/x86/kvm/x86.c is not read: kconform reads the MMU") == \
        "a file kconform does not read"
    assert list_eval.reason_class("something new") == "other"
    assert list_eval.reason_class(
        "no applicable pre-image for this hunk: its removed line 'x;' is in no version of "
        "mmu.c in the tree nor added by a patch applied first; ...") == \
        "no applicable pre-image (a removed line in no version of the tree)"


def test_a_function_blocked_by_translation_or_by_no_driver_is_named():
    untranslated = ("no before-model: ...; the tree's tdp_mmu_map_handle_target_level cannot "
                    "be translated: unsupported construct; the tree's translated state was not "
                    "used: nothing runs the translated tdp_mmu_map_handle_target_level: ...")
    assert list_eval.reason_class(untranslated) == \
        "function not translated: tdp_mmu_map_handle_target_level"
    undriven = ("translated, but nothing runs it: clear_dirty_gfn_range has no function driver, "
                "and the operation mix cannot build a VM; nothing runs the translated "
                "clear_dirty_gfn_range: clear_dirty_gfn_range has no function driver")
    assert list_eval.reason_class(undriven) == "no driver for clear_dirty_gfn_range"
    assert list_eval.reason_kind("no driver for clear_dirty_gfn_range") == \
        "no driver for a function"
    assert list_eval.reason_kind("function not translated: f") == "function not translated"
    # a pre-image miss comes first even when the reason goes on about drivers
    assert list_eval.reason_class("no pre-image: hunk 0 does not apply to x.c at v6.6: ...; "
                                  "f has no function driver") == "no applicable pre-image"


def mail(file, message_id, subject, date, fixes=()):
    return {"file": file, "message_id": message_id, "subject": subject, "date": date,
            "fixes": [{"sha": "0" * 12, "subject": s} for s in fixes]}


SERIES = [
    mail("001-a.eml", "20240101.123-2-x@example.org", "[PATCH v2 1/3] KVM: x86/mmu: A", "2024-01-01"),
    mail("002-b.eml", "20240101.123-3-x@example.org", "[PATCH v2 2/3] KVM: x86/mmu: B", "2024-01-01"),
    mail("003-c.eml", "20240101.123-4-x@example.org", "[PATCH v2 3/3] KVM: x86/mmu: C", "2024-01-01"),
    mail("004-fix.eml", "20240301.9-1-y@example.org", "[PATCH] KVM: x86/mmu: Fix B", "2024-03-01",
         fixes=["KVM: x86/mmu: B"]),
    mail("005-other.eml", "20240401.7-1-z@example.org", "[PATCH] KVM: x86/mmu: D", "2024-04-01"),
]


def test_a_patch_is_applied_on_its_earlier_parts_and_on_the_patch_it_fixes():
    def first(name):
        target = next(m for m in SERIES if m["file"] == name)
        return [m["file"] for m in list_eval.prerequisites(target, SERIES)]

    assert list_eval.series_stem(SERIES[0]["message_id"]) == \
        list_eval.series_stem(SERIES[2]["message_id"]) != \
        list_eval.series_stem(SERIES[3]["message_id"])
    assert first("003-c.eml") == ["001-a.eml", "002-b.eml"]     # never a later part
    assert first("001-a.eml") == []
    # the fix: the patch its trailer names, and that patch's earlier parts, oldest first
    assert first("004-fix.eml") == ["001-a.eml", "002-b.eml"]
    assert first("005-other.eml") == []


def test_a_changed_outcome_shows_against_the_recorded_one():
    row = {"verdict": "MISS", "routes": [{"file": "mmu.c", "route": "rev", "fuzz": 1}],
           "findings": [], "miss_classes": ["no driver for f"]}
    index = {"mails": [{"file": "a.eml", "expected": list_eval.outcome(row)}]}
    assert list_eval.changes(index, {"a.eml": row}) == []
    changed = row | {"verdict": "PASS", "routes": [{"file": "mmu.c", "route": "rev", "fuzz": 2}]}
    assert list_eval.changes(index, {"a.eml": changed}) == [
        "a.eml: verdict MISS -> PASS",
        "a.eml: routes {'mmu.c': ['rev', 1]} -> {'mmu.c': ['rev', 2]}"]


def test_quoted_kernel_lines_are_left_out_of_reasons():
    reason = ("hunk 0 (@@ -4747,7 +4747,9 @@) does not apply to mmu.c at v6.9: line 4747 reads "
              "'return true;' where the hunk has '* the page can't be unsync'd,', and no other "
              "place in the file holds all its old lines")
    assert list_eval.redact(reason) == (
        "hunk 0 (@@ -4747,7 +4747,9 @@) does not apply to mmu.c at v6.9: line 4747 reads "
        "'\u2026' where the hunk has '\u2026', and no other place in the file holds all its old "
        "lines")
    assert list_eval.redact("no quoted line here") == "no quoted line here"
    assert list_eval.redact("hunk 1 (@@ -7,3 +7,2 @@) does not apply to x.c at v6.9: its removed "
                            "line 'kvm_mmu_reload(vcpu);' is nowhere in the file") == (
        "hunk 1 (@@ -7,3 +7,2 @@) does not apply to x.c at v6.9: its removed line '\u2026' is "
        "nowhere in the file")


def test_next_tag_is_the_following_release_and_the_last_stays():
    tags = {"v6.6": "2023-10-30", "v6.1.15": "2022-12-11", "v6.9": "2024-05-12"}
    assert list_eval.next_tag(tags, "v6.1.15") == "v6.6"
    assert list_eval.next_tag(tags, "v6.6") == "v6.9"
    assert list_eval.next_tag(tags, "v6.9") == "v6.9"
