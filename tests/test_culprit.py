"""The culprit hunk and the plain-words cause of a finding (harness.check.culprit, .cause).

From the outside: ``kconform check`` on a patch whose two hunks change one
function (reverting either needs derive), and on mutant patches, whose
culprit must be exactly the hunks where the mutant differs from the real
RFC patch (the real patch, checked the same way, has no such finding).  The
search itself is tested on made-up outcomes, both ways: a culprit alone, a
set that only together causes the finding, a finding the patch did not
cause, and hunks that cannot be reverted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import tests.mutants.models as M
from harness.check import culprit
from harness.check.culprit import GONE, STAYS, UNBUILT, Reversion
from harness.ingest import patches as ingest
from harness.ingest import scope

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "culprit")
MUTANTS = os.path.join(ROOT, "tests", "mutants")
PATCHES = os.path.join(ROOT, "patches")


def kconform_json(tmp_path, *args) -> dict:
    out = tmp_path / "results.json"
    subprocess.run([sys.executable, "-m", "harness", "check", *args, "--json", str(out),
                    "--quiet"], cwd=ROOT, capture_output=True, text=True, check=False)
    return json.loads(out.read_text())


# --- the search, on made-up outcomes ---------------------------------------------------

def outcomes(present):
    """``attempt`` for a finding that is present when ``present(kept hunks)`` holds."""
    candidates = (0, 1, 2, 3)

    def attempt(reverted):
        kept = set(candidates) - set(reverted)
        return Reversion(tuple(sorted(reverted)), STAYS if present(kept) else GONE)
    return candidates, attempt


def test_one_hunk_alone_is_the_culprit():
    candidates, attempt = outcomes(lambda kept: 2 in kept)
    found = culprit.search(candidates, attempt)
    assert (found.status, found.hunks, found.together) == (culprit.FOUND, (2,), False)


def test_hunks_that_each_cause_it_are_found_together():
    """Present while hunk 1 or hunk 3 is there: no hunk alone removes it."""
    candidates, attempt = outcomes(lambda kept: bool(kept & {1, 3}))
    found = culprit.search(candidates, attempt)
    assert (found.status, found.hunks, found.together) == (culprit.FOUND, (1, 3), True)
    assert all(r.result == STAYS for r in found.tried[:4])


def test_a_finding_that_needs_two_hunks_names_both():
    candidates, attempt = outcomes(lambda kept: {0, 2} <= kept)
    found = culprit.search(candidates, attempt)
    assert (found.status, found.hunks) == (culprit.FOUND, (0, 2))


def test_a_finding_the_patch_did_not_cause_has_no_culprit():
    candidates, attempt = outcomes(lambda kept: True)
    found = culprit.search(candidates, attempt)
    assert (found.status, found.hunks) == (culprit.NOT_THIS_PATCH, ())
    assert found.tried[-1].hunks == candidates


def test_hunks_that_cannot_be_reverted_leave_it_not_computable():
    def attempt(reverted):
        if len(reverted) == 1:
            return Reversion(tuple(reverted), UNBUILT, "outside the derivable subset")
        if len(reverted) == 4:
            return Reversion(tuple(sorted(reverted)), GONE)
        return Reversion(tuple(sorted(reverted)), UNBUILT, "outside the derivable subset")
    found = culprit.search((0, 1, 2, 3), attempt)
    assert (found.status, found.hunks) == (culprit.NOT_COMPUTABLE, ())


# --- from the outside -------------------------------------------------------------------

def test_two_hunks_in_one_function_the_culprit_is_the_one_that_changes_behaviour(tmp_path):
    results = kconform_json(tmp_path, os.path.join(DATA, "two-hunks-one-function.patch"))
    (patch,) = results["patches"]
    assert patch["verdict"] == "FAIL"
    assert {h["function"] for h in patch["hunks"]} == {"make_spte"}
    harmless, broken = sorted({h["index"] for h in patch["hunks"]})
    for finding in patch["findings"]:
        assert finding["culprit_hunks"] == [broken], finding["culprit"]
        tried = {tuple(t["hunks"]): t["result"] for t in finding["culprit"]["tried"]}
        assert tried[(harmless,)] == "stays" and tried[(broken,)] == "gone"
        lines = [line["text"] for line in finding["culprit"]["lines"]]
        assert lines and all(text.startswith("-") for text in lines)
        assert any("ACC_WRITE_MASK" in text for text in lines)
        # an unstated change in what make_spte computes (seen where it is computed or
        # written), or the WARN the SPTE it computes now trips
        assert (finding["cause"].startswith("unstated change in ")
                or finding["cause"].startswith("a WARN or BUG fires")), finding["cause"]
        assert ("make_spte" in finding["cause"] or "now" in finding["cause"]
                or "writes the SPTE differently" in finding["cause"]), finding["cause"]


def _differing_hunks(mutant: str, real: str) -> set[int]:
    """Hunk indexes where the mutant's changed lines differ from the real patch's
    (whitespace aside: some copies lost their tabs)."""
    def changes(path):
        (patch,) = [p for p in ingest.read_file(path) if not p.is_cover]
        rows = {}
        for hunk in scope.scope_patch(patch):
            rows.setdefault(hunk.index, (tuple("".join(t.split()) for t in hunk.removed),
                                         tuple("".join(t.split()) for t in hunk.added)))
        return rows
    mine, theirs = changes(mutant), changes(real)
    return {i for i in mine if mine[i] != theirs.get(i)}


def _real_patch_for(name: str) -> str:
    with open(os.path.join(MUTANTS, name)) as handle:
        head = handle.read().split("\n", 12)[:12]
    for file in sorted(os.listdir(PATCHES)):
        path = os.path.join(PATCHES, file)
        if os.path.isfile(path):
            with open(path) as handle:
                if handle.read().split("\n", 12)[:12] == head:
                    return path
    raise AssertionError(f"{name}: no bundled RFC patch with the same headers")


# Mutants whose broken hunk breaks the property by itself.  (Not m01/m12: they break
# 2/4's new dirty mark in make_spte, and reverting that hunk gives back base's make_spte,
# which marks nothing either; the finding goes only when the zap-time mark 2/4 removed
# comes back, so that hunk is, by the definition, the culprit.)
@pytest.mark.parametrize("name", ["m02-drop-wrprot-flush.patch",
                                  "m03-mark-accessed-unconditionally.patch"])
def test_a_mutants_culprit_is_the_hunk_it_mutated(name, tmp_path):
    check, channel = M.MUTANTS[name]
    real = _real_patch_for(name)
    mutated = _differing_hunks(os.path.join(MUTANTS, name), real)
    assert mutated, "the mutant differs from its real patch somewhere"
    results = kconform_json(tmp_path, os.path.join(MUTANTS, name), "--checks", check)
    caught = [f for f in results["patches"][-1]["findings"]
              if (f["check"], f["channel"]) == (check, channel)]
    real_results = kconform_json(tmp_path, real, "--checks", check)
    real_keys = {(f["check"], f["channel"], f["operation"], f["function"])
                 for f in real_results["patches"][-1]["findings"]}
    new = [f for f in caught if (f["check"], f["channel"], f["operation"], f["function"])
           not in real_keys]
    assert new, "the real patch has every finding the mutant has: nothing to blame"
    for finding in new:
        assert finding["culprit"]["status"] == "found", finding["culprit"]
        assert set(finding["culprit_hunks"]) <= mutated, (finding["culprit_hunks"], mutated)
