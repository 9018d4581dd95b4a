"""Findings that predate the patches: reported in their own section, failing no patch.

The bundled series gives a real one: RFC 2/4 leaks page references in
FNAME(prefetch_gpte), so checking 3/4 and 4/4 without 2/4 starts from a
state ('after 2/4') that fails refs_balanced by itself.  The faithful base
state is the twin: it holds every invariant, so a run from it has none.
"""

import json

import pytest

from harness import pipeline
from harness.check import engine
from harness.report import outputs
from kernel_models.registry import VersionSet

LATER = ["patches/000_e8ee204d4a7b7ba7.txt", "patches/rfc-4-of-4.patch"]


@pytest.fixture(scope="module")
def leak():
    [finding] = engine.check_preexisting(VersionSet.series_state("after 2/4"))
    return finding


def test_the_base_state_has_no_preexisting_finding():
    assert engine.check_preexisting(VersionSet.series_state("base")) == []


def test_a_state_that_leaks_has_it_as_a_preexisting_finding(leak):
    assert (leak.check, leak.channel, leak.severity) == ("refs_balanced", "refs", "FAIL")
    assert "pre-existing: the state 'after 2/4'" in leak.summary
    assert leak.counterexample["steps"] and leak.replay


def test_what_a_later_state_does_to_it(leak):
    assert engine.preexisting_status(leak, VersionSet.series_state("after 3/4")) == engine.KEEPS
    assert engine.preexisting_status(leak, VersionSet.series_state("after 4/4")) == engine.KEEPS
    assert engine.preexisting_status(leak, VersionSet.series_state("base")) == engine.FIXES


@pytest.fixture(scope="module")
def later_results():
    results, run = pipeline.check_paths(LATER, pipeline.RunOptions())
    return json.loads(json.dumps(results)), run


def test_results_carry_the_section_and_blame_no_patch(later_results):
    results, _ = later_results
    [section] = results["preexisting"]
    assert (section["check"], section["state"]) == ("refs_balanced", "after 2/4")
    assert [p["status"] for p in section["patches"]] == ["keeps", "keeps"]
    for patch in results["patches"]:
        assert patch["verdict"] != "FAIL"
        same = [f for f in patch["findings"] if f["check"] == "refs_balanced"]
        assert same and all(f.get("preexisting") for f in same)


def test_the_mail_summary_has_the_section(later_results):
    results, run = later_results
    text = outputs.mail_summary(results, run)
    assert "Pre-existing in 'after 2/4' (before the patches; fails no patch)" in text
    assert "keeps: KVM: x86/mmu: Mark page/folio accessed" in text
    assert all(len(line) <= outputs.MAIL_WIDTH for line in text.splitlines())


def test_the_html_report_has_the_section(later_results):
    from harness.report import html_report
    results, run = later_results
    page = html_report.render(results, run)
    assert 'id="preexisting"' in page and "after 2/4" in page
