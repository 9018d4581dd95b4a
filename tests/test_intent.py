"""A patch judged by what its message claims, through the real ingest -> check path.

The patches in tests/data/intent/ have new subjects (no written contract) and
are derived from their hunks.  Each property is tested both ways: the same
diff under another message gets the other verdict.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from harness.pipeline import RunOptions, check_paths
from harness.report import html_report, outputs

DATA = Path(__file__).resolve().parent / "data" / "intent"
RUN = {"started": "2026-12-01T00:00:00Z", "elapsed_s": 1.0, "host": "test",
       "python": "3", "command": "kconform check", "examples": 1}


@functools.lru_cache(maxsize=None)
def results_for(path: str) -> dict:
    """One run per path and process; the tests reading the same patch share an xdist group,
    so under ``--dist loadgroup`` one worker makes that run for all of them."""
    results, _ = check_paths([path], RunOptions())
    return results


def entry_for(path) -> dict:
    (entry,) = [e for e in results_for(str(path))["patches"] if not e.get("is_cover")]
    return entry


def rewritten(tmp_path, name: str, old: str, new: str) -> Path:
    """The same patch with part of its message replaced (the diff untouched)."""
    text = (DATA / name).read_text()
    message, diff = text.split("\n---\n", 1)
    assert old in message
    copy = tmp_path / name
    copy.write_text(message.replace(old, new) + "\n---\n" + diff)
    return copy


def findings(entry, check="matches_contract", channel=None, severity=None):
    return [f for f in entry["findings"] if f["check"] == check
            and (channel is None or f["channel"] == channel)
            and (severity is None or f["severity"] == severity)]


@pytest.mark.xdist_group("intent-skip-accessed-flush")
def test_a_patch_that_does_what_its_message_claims_passes():
    entry = entry_for(DATA / "skip-accessed-flush.patch")
    assert entry["contract"]["source"] == "message"
    assert "after-model derived from the hunks" in entry["versions"]["reason"]
    assert entry["verdict"] == "PASS" and entry["findings"] == []
    flush = [r for r in entry["contract"]["rules"] if r["channel"] == "flush"]
    assert flush and all(r["relation"] == "subset" for r in flush)
    assert "Don't force a TLB flush when mmu_spte_update() clears the Accessed bit" in \
        {s for r in flush for s in r["sentences"]}


def test_twin_the_same_diff_without_its_message_fails_on_the_flush(tmp_path):
    """A bare diff: no message, so no claim; the dropped flush is unstated."""
    text = (DATA / "skip-accessed-flush.patch").read_text()
    bare = tmp_path / "skip-accessed-flush.diff"
    bare.write_text(text[text.index("diff --git"):])
    entry = entry_for(bare)
    assert entry["contract"]["message"] == "missing"
    assert any("no claims read" in note for note in entry["notes"])
    assert entry["verdict"] == "FAIL"
    flush = findings(entry, channel="flush", severity="FAIL")
    assert flush and "changed, and the message does not say so" in flush[0]["summary"]
    assert flush[0]["counterexample"]["difference"]["flush"]["missing"]


@pytest.mark.xdist_group("intent-claims-flush-drops-dirty")
def test_a_message_claiming_a_flush_change_for_a_dirty_change_fails_with_a_counterexample():
    entry = entry_for(DATA / "claims-flush-drops-dirty.patch")
    assert entry["verdict"] == "FAIL"
    dirty = findings(entry, channel="dirty", severity="FAIL")
    assert dirty, entry["findings"]
    first = dirty[0]
    assert "dirty changed, and the message does not say so (on " in first["summary"]
    assert first["counterexample"]["steps"] and first["replay"] and first["example"]
    assert first["counterexample"]["difference"]["dirty"]["missing"]
    (claimed,) = findings(entry, channel="flush")
    assert claimed["severity"] == "WARN"
    assert claimed["summary"].startswith("claimed change not observed")
    assert "Don't flush remote TLBs when zapping leaf SPTEs" in claimed["summary"]


def test_no_functional_change_hiding_a_change_fails_even_on_accessed():
    entry = entry_for(DATA / "nfc-hides-accessed-drop.patch")
    assert entry["contract"]["strict"] is True
    assert entry["verdict"] == "FAIL"
    accessed = findings(entry, channel="accessed", severity="FAIL")
    assert accessed and "No functional change intended." in accessed[0]["summary"]
    assert accessed[0]["counterexample"]["difference"]["accessed"]["missing"]


def test_twin_without_the_nfc_sentence_the_accessed_change_is_tolerated(tmp_path):
    copy = rewritten(tmp_path, "nfc-hides-accessed-drop.patch",
                     "\n\nNo functional change intended.", "")
    entry = entry_for(copy)
    assert "strict" not in entry["contract"]
    assert entry["verdict"] == "WARN"
    assert findings(entry, channel="accessed", severity="WARN")
    assert not [f for f in entry["findings"] if f["severity"] == "FAIL"]


def test_a_claimed_change_the_patch_does_not_make_warns():
    entry = entry_for(DATA / "claims-dirty-drop-not-made.patch")
    assert entry["verdict"] == "WARN"
    (warning,) = entry["findings"]
    assert (warning["check"], warning["channel"], warning["severity"]) == \
        ("matches_contract", "dirty", "WARN")
    assert warning["summary"].startswith("claimed change not observed")
    assert "Don't mark folios dirty when zapping SPTEs" in warning["summary"]


@pytest.mark.xdist_group("intent-skip-accessed-flush")
def test_twin_a_claimed_change_that_happens_does_not_warn():
    entry = entry_for(DATA / "skip-accessed-flush.patch")
    assert not [f for f in entry["findings"] if "claimed change not observed" in f["summary"]]


def test_a_fix_is_confirmed_by_the_check_the_before_state_fails():
    entry = entry_for(DATA / "fix-prefetch-reference-leak.patch")
    assert not [f for f in entry["findings"] if f["severity"] == "FAIL"]
    (fix,) = entry["fixes"]
    assert fix["check"] == "refs_balanced" and fix["severity"] == "NOTE"
    assert fix["summary"].startswith("fix confirmed: refs_balanced held after, failed before")
    assert fix["counterexample"]["steps"] and fix["replay"]
    assert any(c["convention"] == "fixes trailer" for c in entry["contract"]["claims"])


def test_twin_a_fix_claim_on_a_patch_that_fixes_nothing_is_a_note(tmp_path):
    copy = rewritten(tmp_path, "claims-dirty-drop-not-made.patch", "\n\nSigned-off-by:",
                     '\n\nFixes: 0123456789ab ("KVM: x86/mmu: Something")\nSigned-off-by:')
    entry = entry_for(copy)
    assert entry["fixes"] == []
    assert entry["verdict"] == "WARN"          # the unobserved claim, not the fix
    assert any("the models do not confirm the fix" in note for note in entry["notes"])


def test_a_message_in_another_language_gets_the_all_equal_contract(tmp_path):
    copy = rewritten(tmp_path, "skip-accessed-flush.patch",
                     "Don't force a TLB flush when mmu_spte_update()\n clears the Accessed bit",
                     "Не сбрасывать TLB, если mmu_spte_update()\n очищает бит доступа")
    text = copy.read_text()
    message, diff = text.split("\n---\n", 1)
    body_start = message.index("\n\n") + 2
    copy.write_text(message[:body_start] + "Не сбрасывать TLB, если очищается только бит "
                    "доступа: старение допускает ложные отрицания.\n\nSigned-off-by: Test "
                    "Author <test.author@example.org>\n---\n" + diff)
    entry = entry_for(copy)
    assert entry["contract"]["message"] == "not English"
    assert entry["contract"]["claims"] == []
    assert entry["verdict"] == "FAIL"
    assert findings(entry, channel="flush", severity="FAIL")


@pytest.mark.xdist_group("intent-claims-flush-drops-dirty")
def test_every_output_shows_the_claims_and_their_sentences(capsys):
    from harness.cli import print_summary

    results = results_for(str(DATA / "claims-flush-drops-dirty.patch"))
    sentence = "Don't flush remote TLBs when zapping leaf SPTEs"
    (entry,) = results["patches"]
    assert entry["contract"]["claims"][0]["sentence"] == sentence       # JSON
    assert entry["contract"]["claims"][0]["allows"].startswith("flush may change: subset")
    page = html_report.render(results, RUN)
    assert "Claims read from the message" in page
    assert sentence.replace("'", "&#39;") in page
    mail = outputs.mail_summary(results, RUN)
    assert "Claims read from the commit messages:" in mail
    assert "flush may change: subset" in mail
    assert all(len(line) <= 72 for line in mail.splitlines() if "kconform replay" not in line)
    print_summary(results, RUN)
    shown = capsys.readouterr().out
    assert f"claim: flush may change: subset (unmap, change_pte, zap_gfn_range) <- \u201c{sentence}" \
        in shown


@pytest.mark.xdist_group("intent-claims-flush-drops-dirty")
def test_a_replayed_counterexample_keeps_the_message_contract():
    from harness.check import engine

    entry = entry_for(DATA / "claims-flush-drops-dirty.patch")
    finding = next(f for f in findings(entry, channel="dirty", severity="FAIL") if f["function"])
    shown = engine.replay(finding["replay"])      # the derived models are still registered
    assert "FAIL matches_contract [dirty]" in shown
    assert "and the message does not say so" in shown
