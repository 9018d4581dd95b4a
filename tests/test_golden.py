"""The bundled series' gate results stay equal to a committed copy.

Speed work (cheaper VMs, reused function-level results, a process pool) must
never change a verdict, a finding, a counterexample or a coverage line
silently.  This test checks ``patches/`` in ``gate`` as ``kconform check
patches/ --json`` does and compares the document with
``tests/data/golden/gate-patches.json``, field by field, with only the fields
that change without a semantic change taken out (the tool's version).

The copy is regenerated only in a commit that names the semantic change
behind it::

    python tests/test_golden.py --regenerate
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:          # run as a script (--regenerate): tests.shared importable
    sys.path.insert(0, str(ROOT))
from tests.shared import BUNDLED_SERIES  # noqa: E402

GOLDEN = ROOT / "tests" / "data" / "golden" / "gate-patches.json"

# Fields that change with no change to what was checked or found.
VOLATILE = (("tool", "version"),)


def normalised(results: dict) -> dict:
    """``results`` without its volatile fields (a copy; the argument is left alone)."""
    document = copy.deepcopy(results)
    for path in VOLATILE:
        holder = document
        for key in path[:-1]:
            holder = holder.get(key) or {}
        holder.pop(path[-1], None)
    return document


def as_text(results: dict) -> str:
    from harness.report.results import dumps
    return dumps(normalised(results))


def gate_results(jobs: int | None = None) -> dict:
    """``kconform check patches/`` in gate, run from the repository root."""
    from harness.pipeline import RunOptions, check_paths

    here = os.getcwd()
    os.chdir(ROOT)
    try:
        options = RunOptions() if jobs is None else RunOptions(jobs=jobs)
        results, _ = check_paths(["patches"], options)
    finally:
        os.chdir(here)
    return json.loads(as_text(results))


def differences(expected, actual, where: str = "") -> list[str]:
    """Where two JSON values differ, as readable paths (at most the first 20)."""
    found: list[str] = []
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                found.append(f"{where}.{key}: missing")
            elif key not in expected:
                found.append(f"{where}.{key}: unexpected {json.dumps(actual[key])[:120]}")
            else:
                found += differences(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            found.append(f"{where}: {len(expected)} items expected, {len(actual)} found")
        for index, (e, a) in enumerate(zip(expected, actual)):
            found += differences(e, a, f"{where}[{index}]")
    elif expected != actual:
        found.append(f"{where}: expected {json.dumps(expected)[:120]}, "
                     f"found {json.dumps(actual)[:120]}")
    return found[:20]


# Both runs below read or make the bundled series' gate run; in one xdist worker (loadgroup)
# with test_cli's byte-identical test, the session's run is made once for all three.
pytestmark = pytest.mark.xdist_group(BUNDLED_SERIES)


def test_gate_results_of_the_bundled_series_equal_the_committed_copy(bundled_gate_json):
    """The session's ``kconform check --quiet patches --json`` (the CLI as the README runs it,
    with its default ``--jobs``: the usable cores) against the committed copy."""
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    actual = json.loads(as_text(json.loads(bundled_gate_json)))
    found = differences(expected, actual)
    assert not found, ("gate results of patches/ differ from tests/data/golden/"
                       "gate-patches.json:\n" + "\n".join(found))


def test_the_other_job_count_gives_the_committed_copy_too():
    """The run above used the CLI's default job count; this one the other way: one job
    (no pool) where the default is a pool, two (the process pool, merged in input order)
    where the default is one.  So both the serial and the pooled run are compared."""
    from harness.check import parallel

    jobs = 1 if parallel.cores() > 1 else 2
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    found = differences(expected, gate_results(jobs=jobs))
    assert not found, (f"gate results of patches/ with {jobs} job(s) differ from tests/data/"
                       "golden/gate-patches.json:\n" + "\n".join(found))


def test_the_comparison_sees_a_changed_verdict_and_a_changed_coverage_line():
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    changed = copy.deepcopy(expected)
    patch = next(p for p in changed["patches"] if p.get("coverage"))
    patch["verdict"] = "PASS" if patch["verdict"] != "PASS" else "FAIL"
    patch["coverage"][0]["cases"] += 1
    found = differences(expected, changed)
    assert any(line.endswith(".verdict: expected " + json.dumps(expected["patches"][
        changed["patches"].index(patch)]["verdict"]) + ", found " + json.dumps(patch["verdict"]))
        for line in found)
    assert any(".coverage[0].cases" in line for line in found)
    # only the tool's version is taken out, never a verdict or a finding
    assert normalised(changed)["patches"] == changed["patches"]
    assert "version" not in normalised(expected)["tool"]


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        sys.exit("usage: python tests/test_golden.py --regenerate")
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(gate_results(), indent=2, sort_keys=True,
                                 ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN.relative_to(ROOT)}")
