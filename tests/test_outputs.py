"""Machine outputs: JUnit XML, KCIDB, patchwork checks, the mail summary, write_all.

Each property has a twin that must fail: the same check run on a document
or an output that breaks it, so a check that can never say no is noticed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from harness.report import outputs, writer
DATA = Path(__file__).resolve().parent / "data" / "results"
SAMPLES = sorted(p.stem for p in DATA.glob("*.json"))
RUN = {"started": "2026-11-26T14:00:00+00:00", "elapsed_s": 3.2, "host": "ci-runner-1",
       "python": "3.11.2", "command": "kconform check patches/ --report-dir reports",
       "examples": 5120}
HIDDEN = "\u202e\u202c\u2066\u2069\u200b\u200d\ufeff\u0007\u001b\u0000"


def load(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


# --- shared facts --------------------------------------------------------

@pytest.mark.parametrize("findings, hunks_covered, verdict, expected", [
    ([], [True], "PASS", "PASS"),
    ([("c", "WARN")], [True], "WARN", "WARN"),
    ([("c", "WARN")], [True, False], "MISS", "MISS"),
    ([("c", "FAIL"), ("c", "WARN")], [True, False], "FAIL", "FAIL"),
    ([("other", "FAIL")], [True], "FAIL", "PASS"),
    ([], [], "MISS", "MISS"),
])
def test_check_verdict_orders_fail_miss_warn_pass(findings, hunks_covered, verdict, expected):
    item = {"verdict": verdict, "error": None,
            "hunks": [{"covered": c} for c in hunks_covered],
            "findings": [{"check": check, "severity": s} for check, s in findings]}
    assert outputs.check_verdict(item, "c") == expected


def test_check_verdict_of_an_unreadable_patch_is_error():
    assert outputs.check_verdict({"verdict": "ERROR", "error": {"message": "x"}}, "c") == "ERROR"


def test_visible_marks_every_hidden_character_and_nothing_else():
    text = "a\u202eb\u200bc\td\n\U0001f41b\u00e9\u05d0"
    assert outputs.visible(text) == "a<U+202E>b<U+200B>c\td\n\U0001f41b\u00e9\u05d0"
    for char in HIDDEN:
        assert outputs.is_hidden(char)
    for char in "a\t\n\U0001f41b\u00e9 ":
        assert not outputs.is_hidden(char)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.integers(min_value=20, max_value=100))
def test_wrap_never_exceeds_the_width_and_keeps_every_character(text, width):
    text = outputs.visible(text)
    lines = outputs.wrap(text, width, indent="  ", hanging="    ")
    assert all(outputs.display_width(line) <= width for line in lines)
    assert "".join("".join(lines).split()) == "".join(text.split())


def test_counting_characters_is_not_counting_columns():
    """Twin of the wrap property: textwrap counts code points, so wide text overflows."""
    text = "\U0001f41b" * 60
    assert max(len(line) for line in textwrap.wrap(text, 72)) <= 72
    assert max(outputs.display_width(line) for line in textwrap.wrap(text, 72)) > 72
    assert max(outputs.display_width(line) for line in outputs.wrap(text, 72)) <= 72


# --- JUnit ---------------------------------------------------------------

def junit_cases(text: str) -> dict:
    root = ET.fromstring(text)
    cases = {}
    for suite in root.iter("testsuite"):
        for case in suite.iter("testcase"):
            outcome = next((child.tag for child in case
                            if child.tag in ("failure", "error", "skipped")), "passed")
            cases[(suite.get("name").split(" ")[0], case.get("name"))] = (outcome, case)
    return cases


def test_junit_has_one_testcase_per_patch_and_check():
    results = load("rfc-series")
    root = ET.fromstring(outputs.junit(results))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("20", "2", "0")
    assert root.get("skipped") is None      # junit-10.xsd has no skipped on <testsuites>
    assert sum(int(s.get("skipped")) for s in root) == 4
    cases = junit_cases(outputs.junit(results))
    assert len(cases) == 5 * 4
    assert cases[("4/4", "flush_required")][0] == "failure"
    assert cases[("net", "flush_required")][0] == "failure"
    assert {cases[("3/4", c)][0] for c in results["checks"]} == {"skipped"}
    assert cases[("1/4", "dirty_preserved")][0] == "passed"
    warn = cases[("2/4", "dirty_preserved")][1]
    assert warn.find("system-out").text.startswith("WARN")
    failure = cases[("4/4", "flush_required")][1].find("failure")
    assert "Reproduce with:" in failure.text and "kconform replay" in failure.text
    skipped = cases[("3/4", "dirty_preserved")][1].find("skipped")
    assert "handle_changed_spte" in skipped.get("message")


def test_junit_failure_follows_the_finding():
    """Twin: the same testcase passes (with output) once the finding is only a WARN."""
    results = load("rfc-series")
    results["patches"][4]["findings"][0]["severity"] = "WARN"
    cases = junit_cases(outputs.junit(results))
    assert cases[("4/4", "flush_required")][0] == "passed"


def test_junit_error_for_an_unreadable_patch():
    cases = junit_cases(outputs.junit(load("error")))
    assert {outcome for outcome, _ in cases.values()} == {"error"}
    error = cases[("1/1", "refs_balanced")][1].find("error")
    assert "claims 9 old lines" in error.get("message")
    assert "inbox/broken.mbox:58" in error.text


def test_junit_is_versioned_and_has_no_clock():
    text = outputs.junit(load("rfc-series"))
    assert f'value="{outputs.JUNIT_FORMAT}"' in text
    assert "timestamp" not in text and " time=" not in text
    assert text == outputs.junit(load("rfc-series"))


def test_junit_of_hostile_text_is_well_formed_xml():
    text = outputs.junit(load("hostile"))
    ET.fromstring(text)
    assert not any(char in text for char in HIDDEN)
    assert "&lt;script&gt;" in text


def test_raw_control_characters_would_break_the_xml():
    """Twin: ElementTree writes a raw control character, and no parser reads it back."""
    node = ET.Element("testcase", name="bell \u0007 nul \u0000")
    with pytest.raises(ET.ParseError):
        ET.fromstring(ET.tostring(node, encoding="unicode"))


# --- KCIDB ---------------------------------------------------------------

def nulls(value, path="$") -> list[str]:
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for n, v in enumerate(value) for p in nulls(v, f"{path}[{n}]")]
    return []


@pytest.mark.parametrize("sample", SAMPLES)
def test_kcidb_has_the_v5_shape_and_no_nulls(sample):
    data = outputs.kcidb(load(sample), RUN)
    assert data["version"] == {"major": 5, "minor": 0}
    assert nulls(data) == []
    (checkout,), (build,) = data["checkouts"], data["builds"]
    assert checkout["id"].startswith("kconform:") and checkout["origin"] == "kconform"
    assert build["checkout_id"] == checkout["id"]
    psh = outputs.patchset_hash(load(sample))
    assert checkout.get("patchset_hash") == psh or (psh is None and "patchset_hash" not in checkout)
    assert psh is None or re.fullmatch(r"^$|[0-9a-f]{64}", psh)
    for test in data["tests"]:
        assert test["build_id"] == build["id"]
        assert test["status"] in {"FAIL", "ERROR", "MISS", "PASS", "DONE", "SKIP"}
        assert re.fullmatch(r"[a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*", test["path"])
    assert len({t["id"] for t in data["tests"]}) == len(data["tests"])
    json.dumps(data).encode("utf-8")


def test_a_null_is_noticed():
    """Twin: KCIDB forbids nulls, and the walker finds one."""
    data = outputs.kcidb(load("pass"), RUN)
    data["checkouts"][0]["comment"] = None
    assert nulls(data) == ["$.checkouts[0].comment"]


def test_kcidb_statuses_follow_the_verdicts():
    data = outputs.kcidb(load("rfc-series"), RUN)
    tests = {t["path"]: t for t in data["tests"]}
    assert tests["kconform.patch4.flush_required"]["status"] == "FAIL"
    assert tests["kconform.patch3.dirty_preserved"]["status"] == "MISS"
    warn = tests["kconform.patch2.dirty_preserved"]
    assert (warn["status"], warn["misc"]["kconform_verdict"]) == ("PASS", "WARN")
    assert tests["kconform.net.flush_required"]["status"] == "FAIL"
    assert "kconform replay" in tests["kconform.patch4.flush_required"]["log_excerpt"]
    checkout = data["checkouts"][0]
    assert checkout["message_id"] == "20240320005024.3216282-1-seanjc@google.com"
    assert checkout["git_commit_hash"] == "964d0c614c7f71917305a5afdca9178fe8231434"
    assert checkout["valid"] is True and data["builds"][0]["status"] == "PASS"


def test_kcidb_unreadable_patch_invalidates_the_checkout():
    data = outputs.kcidb(load("error"), RUN)
    assert data["checkouts"][0]["valid"] is False
    assert data["builds"][0]["status"] == "SKIP"
    assert {t["status"] for t in data["tests"]} == {"ERROR"}
    assert "message_id" not in data["checkouts"][0]


def test_patchset_hash_is_kcidbs_hash_of_per_patch_hashes():
    """KCIDB: sha256 over the newline-terminated sha256 of each patch, cover letter excluded."""
    results = load("rfc-series")
    per_patch = [p["sha256"] for p in results["patches"] if not p["is_cover"]]
    expected = hashlib.sha256("".join(h + "\n" for h in per_patch).encode()).hexdigest()
    assert outputs.patchset_hash(results) == expected
    assert outputs.kcidb(results, RUN)["checkouts"][0]["patchset_hash"] == expected


def test_patchset_hash_changes_with_a_patch_and_with_the_order():
    """Twin: another patch, or two patches swapped, give another hash; an unknown one none."""
    results = load("rfc-series")
    original = outputs.patchset_hash(results)
    edited = load("rfc-series")
    edited["patches"][1]["sha256"] = "0" * 64
    assert outputs.patchset_hash(edited) != original
    unknown = load("rfc-series")
    unknown["patches"][1]["sha256"] = None
    assert outputs.patchset_hash(unknown) is None
    assert "patchset_hash" not in outputs.kcidb(unknown, RUN)["checkouts"][0]
    swapped = load("rfc-series")
    swapped["patches"][1], swapped["patches"][2] = swapped["patches"][2], swapped["patches"][1]
    assert outputs.patchset_hash(swapped) != original
    assert outputs.patchset_hash({"patches": []}) == ""


# --- patchwork -----------------------------------------------------------

def test_patchwork_checks_map_verdicts_to_states():
    checks = outputs.patchwork_checks(load("rfc-series"), "https://ci.example/r/1/index.html")
    assert [c["state"] for c in checks] == ["success", "warning", "warning", "fail"]
    assert {c["context"] for c in checks} == {"kconform"}
    assert checks[3]["target_url"] == "https://ci.example/r/1/index.html#patch-4"
    assert checks[3]["message_id"] == "<20240320005024.3216282-5-seanjc@google.com>"
    # the plain cause first (what a reader acts on), then the check that found it
    assert checks[3]["description"].startswith("4/4 FAIL: stale TLB entry: mmu_spte_update "
                                               "no longer flushes the TLB [flush_required")
    assert checks[2]["description"].startswith("3/4 MISS: 1 of 2 hunks not checked")
    assert all(len(c["description"]) <= 255 and "\n" not in c["description"] for c in checks)


def test_patchwork_without_a_url_and_for_an_error():
    checks = outputs.patchwork_checks(load("error"), None)
    assert [(c["state"], c["target_url"]) for c in checks] == [("fail", None)]
    assert "claims 9 old lines" in checks[0]["description"]


def test_patchwork_description_of_hostile_text_is_one_visible_line():
    (check,) = outputs.patchwork_checks(load("hostile"), None)
    assert not any(char in check["description"] for char in HIDDEN)
    assert len(check["description"]) <= 255


# --- mail ----------------------------------------------------------------

@pytest.mark.parametrize("sample", SAMPLES)
def test_mail_summary_fits_72_columns_and_shows_no_hidden_characters(sample):
    text = outputs.mail_summary(load(sample), RUN)
    for line in text.splitlines():
        assert outputs.display_width(line) <= 72, line
        assert len(line) <= 72, line
    assert not any(char in text for char in HIDDEN + "\r")
    assert text.startswith(f"kconform 0.1.0 verdict: {load(sample)['verdict']}\n")


def test_hostile_subject_alone_would_not_fit():
    """Twin: without wrapping the hostile subject overflows 72 columns."""
    subject = outputs.one_line(load("hostile")["patches"][0]["raw_subject"])
    assert outputs.display_width(subject) > 72


def test_mail_lists_failures_before_gaps_and_warnings():
    text = outputs.mail_summary(load("rfc-series"), RUN)
    assert text.index("FAIL 4/4") < text.index("MISS 3/4") < text.index("WARN 2/4")
    assert "    kconform replay kcf1.gate.1234.mmu_spte_update.flush.02b7e1" in text
    assert "mmu_spte_age.dirty" not in text  # a warning's replay stays in the report
    assert "(replay command in the full report)" in text
    assert "5120 examples" in text and "3.2 s" in text


def test_a_long_replay_token_pastes_back_as_one_command(tmp_path):
    token = "eyJ" + "A1b2C3d4" * 30
    lines = outputs._shell_lines(f"kconform replay {token}")
    assert len(lines) > 1 and all(len(line) <= 72 for line in lines)
    script = tmp_path / "replay.sh"
    script.write_text("kconform() { printf '%s\\n' \"$@\"; }\n" + "\n".join(lines) + "\n")
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["replay", token]


def test_a_token_cut_without_backslashes_breaks_the_command(tmp_path):
    """Twin: the same cut without backslash-newline runs a second, bogus command."""
    token = "eyJ" + "A1b2C3d4" * 30
    lines = [line.rstrip("\\") for line in outputs._shell_lines(f"kconform replay {token}")]
    script = tmp_path / "replay.sh"
    script.write_text("kconform() { printf '%s\\n' \"$@\"; }\n" + "\n".join(lines) + "\n")
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert out.stdout.split() != ["replay", token]


# --- write_all -----------------------------------------------------------

def test_write_all_writes_every_report(tmp_path):
    paths = writer.write_all(load("rfc-series"), RUN, str(tmp_path / "reports"),
                              target_url="https://ci.example/r/1/index.html")
    assert sorted(os.path.basename(p) for p in paths) == sorted(outputs.OUTPUT_FILES)
    assert sorted(os.listdir(tmp_path / "reports")) == sorted(outputs.OUTPUT_FILES)
    patchwork = json.loads((tmp_path / "reports" / "patchwork.json").read_text())
    assert patchwork["schema"] == outputs.PATCHWORK_SCHEMA and len(patchwork["checks"]) == 4
    assert json.loads((tmp_path / "reports" / "kcidb.json").read_text())["version"]["major"] == 5
    ET.parse(tmp_path / "reports" / "results.junit.xml")
    assert (tmp_path / "reports" / "index.html").read_text().startswith("<!DOCTYPE html>")


def test_write_all_of_hostile_text_writes_utf8(tmp_path):
    results = load("hostile")
    results["patches"][0]["subject"] += " lone surrogate \ud800"
    writer.write_all(results, RUN, str(tmp_path))
    for name in outputs.OUTPUT_FILES:
        (tmp_path / name).read_text(encoding="utf-8")


def test_a_failed_render_replaces_no_report(tmp_path, monkeypatch):
    """Twin: if one output fails to render, every old report stays as it was."""
    writer.write_all(load("pass"), RUN, str(tmp_path))
    before = {name: (tmp_path / name).read_bytes() for name in outputs.OUTPUT_FILES}

    def broken(results, run):
        raise RuntimeError("mail renderer bug")

    monkeypatch.setattr(outputs, "mail_summary", broken)
    with pytest.raises(RuntimeError, match="mail renderer bug"):
        writer.write_all(load("rfc-series"), RUN, str(tmp_path))
    assert {name: (tmp_path / name).read_bytes() for name in outputs.OUTPUT_FILES} == before
    assert sorted(os.listdir(tmp_path)) == sorted(outputs.OUTPUT_FILES)


def test_outputs_refuse_another_schema():
    results = load("pass")
    results["schema"] = "other/1"
    for render in (outputs.junit, lambda r: outputs.kcidb(r, RUN),
                   lambda r: outputs.patchwork_checks(r, None),
                   lambda r: outputs.mail_summary(r, RUN)):
        with pytest.raises(outputs.ReportError):
            render(results)


# --- docs/outputs.md -----------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "outputs.md"
DOCS_EXAMPLE = re.compile(r"<!-- example: (\S+) -->\n```\w*\n(.*?)```", re.S)


def docs_example_outputs() -> dict[str, str]:
    """The documented example: the sample series cut to its cover and 4/4, one check."""
    results = load("rfc-series")
    results["patches"] = [results["patches"][0], results["patches"][4]]
    results["checks"] = ["flush_required"]
    results["net"] = None
    return writer.render_all(results, RUN,
                              target_url="https://ci.example/kconform/42/index.html")


def test_docs_examples_are_what_the_code_writes():
    """Regenerate with: PYTHONPATH=. python3 tests/test_outputs.py"""
    documented = dict(DOCS_EXAMPLE.findall(DOCS.read_text(encoding="utf-8")))
    assert sorted(documented) == sorted(set(outputs.OUTPUT_FILES) - {"index.html"})
    written = docs_example_outputs()
    for name, text in documented.items():
        assert text == written[name], f"docs/outputs.md example {name} is stale"


if __name__ == "__main__":
    written = docs_example_outputs()
    DOCS.write_text(DOCS_EXAMPLE.sub(
        lambda m: m.group(0).split("\n", 1)[0] + "\n" + m.group(0).split("\n", 2)[1] + "\n"
        + written[m.group(1)] + "```", DOCS.read_text(encoding="utf-8")), encoding="utf-8")


def test_wrap_moves_a_word_that_only_fits_under_the_first_prefix():
    """Found by Hypothesis: a word moved to the next line must fit its hanging indent too."""
    lines = outputs.wrap(outputs.visible("0\n\x1f\x1f\x1f\x1f"), 34, indent="  ", hanging="    ")
    assert all(outputs.display_width(line) <= 34 for line in lines)
    assert "".join(line.strip() for line in lines).replace(" ", "") == \
        outputs.visible("0\x1f\x1f\x1f\x1f")
