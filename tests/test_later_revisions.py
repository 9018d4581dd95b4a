"""Later revisions of the RFC patches, as mailed: what the harness says of them.

``patches/later/`` holds the reposts of the RFC series found in the list
archives: v12 (July 2024) 06-09/84, v13 (October 2024) 04/85 and 09/85, and
01/18 and 04/18 of the October 2024 series that was merged for 6.13.  Their
index lines name blobs no model holds, so they go through content resolution
and derivation (``harness.resolve.strategies``, ``harness.translate.derive``).  Nothing here pins a
verdict by hand: reposts are compared with the verdict the original RFC patch
gets in the same run, and a MISS must name what is missing.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest

from harness.ingest.patches import read_file
from harness.pipeline import RunOptions, check_paths

ROOT = Path(__file__).resolve().parent.parent
PATCHES = ROOT / "patches"
LATER = PATCHES / "later"
FILES = sorted(LATER.glob("*.patch"))


def entry_for(paths) -> list[dict]:
    """The entries of ``paths`` checked together (a copy: the run is kept for the next ask)."""
    return copy.deepcopy(_checked(tuple(str(p) for p in paths)))


@functools.lru_cache(maxsize=None)
def _checked(paths: tuple[str, ...]) -> list[dict]:
    """One run per set of paths and process: the originals (1/4 twice, 4/4) are compared
    with more than one repost."""
    results, _ = check_paths(list(paths), RunOptions())
    return [e for e in results["patches"] if not e.get("is_cover")]


# Tests reading the same run of _checked share an xdist group: under ``--dist loadgroup`` one
# worker makes the run for all of them.
_SHARES_RFC_1 = pytest.mark.xdist_group("later-rfc-1-original")
_SHARES_04_OF_18 = pytest.mark.xdist_group("later-04-of-18-alone")
_SHARES_V12_07 = pytest.mark.xdist_group("later-v12-07-of-84")


def later(prefix: str) -> Path:
    (path,) = [p for p in FILES if p.name.startswith(prefix)]
    return path


def test_the_later_mails_are_all_here():
    assert len(FILES) == 8


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_mail_is_read_as_a_mail(path):
    """List servers write headers without a blank after the colon (ARC-Seal:i=1);
    three mails are quoted-printable."""
    (patch,) = read_file(str(path))
    assert patch.subject.startswith("KVM: x86/mmu: ")
    assert patch.message_id and "@google.com" in patch.message_id
    assert "=3D" not in patch.diff_text and "=20\n" not in patch.diff_text


@pytest.mark.parametrize("repost, original", [
    pytest.param("v12-06-of-84", "rfc-1-of-4.patch", marks=_SHARES_RFC_1),
    pytest.param("v13-04-of-85", "rfc-1-of-4.patch", marks=_SHARES_RFC_1),
    ("v12-09-of-84", "rfc-4-of-4.patch"),
])
def test_a_repost_of_an_unchanged_patch_gets_the_originals_verdict(repost, original):
    (ours,) = entry_for([later(repost)])
    (theirs,) = entry_for([PATCHES / original])
    assert "pre-image resolved by content" in ours["versions"]["reason"]
    assert "after-model derived from the hunks" in ours["versions"]["reason"]
    assert ours["contract"]["name"] == theirs["contract"]["name"]
    assert ours["verdict"] == theirs["verdict"]
    assert {(f["check"], f["channel"], f["severity"]) for f in ours["findings"]} == \
        {(f["check"], f["channel"], f["severity"]) for f in theirs["findings"]}


@_SHARES_04_OF_18
def test_04_of_18_alone_is_a_miss_naming_its_unknown_pre_image():
    """01/18 changed mmu_spte_update's write-protect test first: the pre-image
    of 04/18 is a version no model holds, and its context shows it."""
    (entry,) = entry_for([later("2024-10-10-04-of-18")])
    assert entry["verdict"] == "MISS"
    reason = entry["versions"]["reason"]
    assert "fit no modelled version of mmu_spte_update" in reason
    assert "closest: state 'after 3/4'" in reason and "do not occur in the model" in reason


def test_04_of_18_after_01_of_18_resolves_to_the_state_01_left():
    first, second = entry_for([later("2024-10-10-01-of-18"), later("2024-10-10-04-of-18")])
    assert second["versions"]["before"] == first["versions"]["after"]
    assert "the previous patch of the series left" in second["versions"]["reason"]
    assert second["verdict"] != "MISS"
    assert all(h["covered"] for h in second["hunks"])


def test_01_of_18_changes_the_flush_its_message_claims():
    """"Flush remote TLBs iff MMU-writable flag is cleared": only the condition
    above an unchanged ``flush = true;`` changes.  No written contract: the
    flush may change because the subject ("Flush ... iff ...") and the first
    sentence ("Don't force a remote TLB flush if ...") say so, not because the
    diff touches it; held to "everything equal", the same models show the flush
    difference with counterexamples."""
    from harness.check import engine as check
    from harness.check import contracts
    from harness.ingest import scope
    from harness.resolve.strategies import resolve

    (entry,) = entry_for([later("2024-10-10-01-of-18")])
    assert entry["contract"]["source"] == "message"
    flush = [r for r in entry["contract"]["rules"] if r["channel"] == "flush"]
    assert flush and {r["channel"] for r in entry["contract"]["rules"]} == {"flush"}
    sentences = {s for r in flush for s in r["sentences"]}
    assert "Flush remote TLBs iff MMU-writable flag is cleared from RO SPTE" in sentences
    assert any(s.startswith("Don't force a remote TLB flush if KVM happens") for s in sentences)
    assert "mmu_spte_update" in {op for r in flush for op in r["operations"]}
    assert not [f for f in entry["findings"] if f["channel"] == "flush"]
    (patch,) = read_file(str(later("2024-10-10-01-of-18")))
    resolution = resolve(scope.scope_patch(patch))
    strict = contracts.Contract(name="all equal", source=contracts.MESSAGE, intent="test")
    outcome = check.check_transition("01/18", resolution.before, resolution.after, strict,
                                     functions=("mmu_spte_update", "spte_write_protect"),
                                     operations=False)
    flush = [f for f in outcome.findings if f.channel == "flush"]
    assert {f.function for f in flush} == {"mmu_spte_update", "spte_write_protect"}
    assert all(f.counterexample for f in flush)
    assert all("and the message does not say so" in f.summary for f in flush)


@pytest.mark.parametrize("prefix", ["v12-08-of-84", "v13-09-of-85"])
def test_the_rfc_3_reposts_miss_on_a_constant_of_a_later_kernel(prefix):
    """Later kernels zap to SHADOW_NONPRESENT_VALUE, which the v6.9 models
    (zap to 0) do not have: its code hunks are a MISS naming it, not a guess.

    The reposts' locking.rst table also breaks: its first row keeps a tab, which
    reStructuredText expands to column 8, so that row runs to column 81 under a
    75-column border ("Right border not aligned").  v6.9's table, with the same tab,
    is 74 columns wide on every row; the merged text (v6.13) has spaces there.  A
    real finding on the docs channel, so the patch FAILs."""
    (entry,) = entry_for([later(prefix)])
    assert entry["verdict"] == "FAIL"
    assert "SHADOW_NONPRESENT_VALUE" in entry["versions"]["reason"]
    assert "closest: state 'after 2/4', where 2 of 3 fit" in entry["versions"]["reason"]
    assert not all(h["covered"] for h in entry["hunks"])
    [docs] = [f for f in entry["findings"] if f["check"] == "rst_parses"]
    assert (docs["channel"], docs["severity"]) == ("docs", "FAIL")
    assert "Right border not aligned" in docs["summary"] and "spte.W = 0" in docs["summary"]


@_SHARES_V12_07
def test_the_rfc_2_repost_misses_naming_each_function():
    (entry,) = entry_for([later("v12-07-of-84")])
    assert entry["verdict"] == "MISS"
    assert "closest: state" in entry["versions"]["reason"]
    assert not any(h["covered"] for h in entry["hunks"] if h["kind"] == "behaviour")


def test_a_counterexample_of_a_derived_model_replays_from_the_patch_files(tmp_path):
    import json
    import subprocess
    import sys

    first = str(later("2024-10-10-01-of-18"))
    out = tmp_path / "r.json"
    shown = subprocess.run([sys.executable, "-m", "harness", "check", first, "--json", str(out)],
                           capture_output=True, text=True, check=False)
    replay_lines = [line for line in shown.stdout.splitlines() if "replay: kconform replay" in line]
    assert replay_lines and all(line.endswith(first) for line in replay_lines)
    entry = json.loads(out.read_text())["patches"][0]
    finding = next(f for f in entry["findings"] if f.get("replay"))
    token = finding["replay"]
    assert finding["replay_inputs"] == [first]
    from harness.report import outputs
    assert outputs.replay_command(finding).endswith(f" {first}")   # what every report prints
    alone = subprocess.run([sys.executable, "-m", "harness", "replay", token],
                           capture_output=True, text=True)
    assert alone.returncode == 2
    assert "give the patch files that were checked" in alone.stderr
    assert "Traceback" not in alone.stderr
    again = subprocess.run([sys.executable, "-m", "harness", "replay", token, first],
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("replay operation check:")
    assert f"derived mmu.c@176fc37540df" in again.stdout


@_SHARES_V12_07
def test_each_missed_function_says_whether_it_fits_and_literals_are_not_names():
    (entry,) = entry_for([later("v12-07-of-84")])
    reasons = {h["function"]: h["reason"] for h in entry["hunks"] if h["kind"] == "behaviour"}
    assert "mmu_spte_update fits state 'after 1/4', but the patch's other changed functions " \
           "do not" in reasons["mmu_spte_update"]
    assert "make_spte does not fit state 'after 1/4', the closest" in reasons["make_spte"]
    assert "llx" not in reasons["make_spte"]          # from a format string, not code
    assert "check the patches together" in entry["versions"]["reason"]


@_SHARES_04_OF_18
def test_a_damaged_copy_of_a_one_hunk_patch_over_two_functions_is_read(tmp_path):
    """04/18's one hunk spans the comment above mmu_spte_update and its body, so scope
    gives it twice (one per function).  Copied with its context lines' indentation
    lost, it was refused as 'a hunk that overlaps the previous one'; now it reads as
    the undamaged mail does."""
    (patch,) = read_file(str(later("2024-10-10-04-of-18")))
    stripped = "\n".join(line if line[:1] in "-+@di" or not line else line.lstrip()
                         for line in patch.diff_text.split("\n"))
    copy = tmp_path / "web-04-of-18.txt"
    copy.write_text(f"Subject: {patch.raw_subject}\nFrom: {patch.author}\n"
                    f"Message-ID: {patch.message_id}\n\n{patch.body}\n---\n{stripped}")
    (damaged,) = entry_for([copy])
    (intact,) = entry_for([later("2024-10-10-04-of-18")])
    assert damaged["verdict"] == intact["verdict"] == "MISS"
    assert damaged["repaired"] and not intact["repaired"]
