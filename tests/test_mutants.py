"""Self-check: every mutant patch is caught on the right channel, every equivalent passes."""

import functools
import os

import pytest

import tests.mutants.models as M
from harness import check as E
from harness import ingest, resolve, scope

HERE = os.path.join(os.path.dirname(__file__), "mutants")
RFC = {"rfc-1": "rfc-1-of-4.patch", "rfc-2": "rfc-2-of-4.patch",
       "rfc-3": "000_e8ee204d4a7b7ba7.txt", "rfc-4": "rfc-4-of-4.patch"}
PATCHES = os.path.join(os.path.dirname(HERE), "..", "patches")


@functools.lru_cache(maxsize=None)
def _run(path, checks=None):
    checks = list(checks) if checks else None
    (patch,) = ingest.read_file(path)
    hunks = scope.scope_patch(patch)
    resolution = resolve.resolve(hunks)
    assert resolution.complete, resolution.reason
    return E.check_patch(patch, hunks, resolution, checks=checks)


def _keys(outcome):
    return {(f.check, f.channel, f.severity) for f in outcome.findings}


@pytest.mark.parametrize("name", sorted(n for n, want in M.MUTANTS.items() if want))
def test_mutant_is_caught_on_its_channel_with_a_counterexample(name):
    check, channel = M.MUTANTS[name]
    outcome = _run(os.path.join(HERE, name), checks=(check,))
    hits = [f for f in outcome.findings if f.check == check and f.channel == channel
            and "inherited" not in f.summary]
    assert hits, f"{name} not caught by {check} on {channel}: {_keys(outcome)}"
    assert hits[0].counterexample["steps"] and hits[0].replay and hits[0].example


def _real_patch_for(name):
    with open(os.path.join(HERE, name)) as f:
        text = f.read()
    for number, file in RFC.items():
        real = open(os.path.join(PATCHES, file)).read()
        if real.split("\n", 12)[:12] == text.split("\n", 12)[:12]:
            return os.path.join(PATCHES, file)
    raise AssertionError(f"{name}: no RFC patch with the same headers")


@pytest.mark.parametrize("name", sorted(n for n, want in M.MUTANTS.items() if want is None))
def test_equivalent_raises_no_finding_the_real_patch_does_not(name):
    outcome = _run(os.path.join(HERE, name))
    real = _run(_real_patch_for(name))
    assert _keys(outcome) <= _keys(real), (_keys(outcome) - _keys(real))


def test_there_are_enough_mutants_and_equivalents():
    assert sum(1 for w in M.MUTANTS.values() if w) >= 12
    assert sum(1 for w in M.MUTANTS.values() if w is None) >= 4
    assert set(M.MUTANTS) == {f for f in os.listdir(HERE) if f.endswith(".patch")}
