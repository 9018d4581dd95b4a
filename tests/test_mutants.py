"""Self-check: every mutant patch is caught on the right channel, every equivalent passes.

Most mutant patches are plain patch files whose after-model the resolver derives
from the hunks; the route each patch takes (derived, or a hand-written model in
tests/mutants/models.py) is pinned here too, so a patch cannot quietly stop
going through derive.
"""

import contextlib
import functools
import os

import pytest

import tests.mutants.models as M
from harness.check import engine as E
from harness.ingest import patches as ingest
from harness.resolve import strategies as resolve
from harness.ingest import scope
from kernel_models import registry

HERE = os.path.join(os.path.dirname(__file__), "mutants")
RFC = {"rfc-1": "rfc-1-of-4.patch", "rfc-2": "rfc-2-of-4.patch",
       "rfc-3": "000_e8ee204d4a7b7ba7.txt", "rfc-4": "rfc-4-of-4.patch"}
PATCHES = os.path.join(os.path.dirname(HERE), "..", "patches")
DERIVED_AFTER = "after-model derived from the hunks"


def _extra_blobs() -> set[tuple[str, str]]:
    return {(file, blob) for file in registry.BLOB_CHAINS for blob in registry.known_blobs(file)
            if blob not in registry.BLOB_CHAINS[file]}


@contextlib.contextmanager
def _forgetting_new_blobs():
    """Resolving a mutant registers its derived blobs; drop them on the way out."""
    before = _extra_blobs()
    try:
        yield
    finally:
        for file, blob in _extra_blobs() - before:
            registry.unregister_blob(file, blob)


@pytest.fixture(autouse=True)
def forget_derived_blobs():
    with _forgetting_new_blobs():
        yield


def _resolved(path):
    (patch,) = ingest.read_file(path)
    hunks = scope.scope_patch(patch)
    return patch, hunks, resolve.resolve(hunks)


def _run(path, checks=None):
    patch, hunks, resolution = _resolved(path)
    assert resolution.complete, resolution.reason
    return E.check_patch(patch, hunks, resolution, checks=list(checks) if checks else None)


@functools.lru_cache(maxsize=None)
def _run_real(path):
    """A bundled RFC patch: its post-images are hand-modelled, nothing is derived."""
    _, _, resolution = _resolved(path)
    assert DERIVED_AFTER not in resolution.reason, resolution.reason
    return _run(path)


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
    # the counterexample replays while the mutant's (possibly derived) blobs are registered
    assert E.replay(hits[0].replay)


def _real_patch_for(name):
    with open(os.path.join(HERE, name)) as f:
        text = f.read()
    for number, file in RFC.items():
        real = open(os.path.join(PATCHES, file)).read()
        if real.split("\n", 12)[:12] == text.split("\n", 12)[:12]:
            return os.path.join(PATCHES, file)
    raise AssertionError(f"{name}: no RFC patch with the same headers")


# _run_real's runs are kept per process: in one xdist worker (loadgroup) each RFC patch is
# checked once for all the equivalents made from it, not once per worker that draws one.
@pytest.mark.xdist_group("mutants-real-rfc-patches")
@pytest.mark.parametrize("name", sorted(n for n, want in M.MUTANTS.items() if want is None))
def test_equivalent_raises_no_finding_the_real_patch_does_not(name):
    outcome = _run(os.path.join(HERE, name))
    real = _run_real(_real_patch_for(name))
    assert _keys(outcome) <= _keys(real), (_keys(outcome) - _keys(real))


@pytest.mark.parametrize("name", sorted(M.DERIVED))
def test_patch_goes_through_derive(name):
    """The resolver derives these after-models from the patch alone: no hand-written body."""
    _, hunks, resolution = _resolved(os.path.join(HERE, name))
    assert resolution.complete, resolution.reason
    assert DERIVED_AFTER in resolution.reason, resolution.reason
    derived = {h.function for h in resolution.hunks if h.model and "-> derive." in h.model}
    assert derived == set(M.DERIVED[name]), resolution.hunks
    for file, blob in resolution.after.blobs:
        assert not blob.startswith("bad0"), f"{name}: {file}@{blob} is a hand-registered blob"


@pytest.mark.parametrize("name", sorted(M.REGISTRATIONS))
def test_hand_written_patch_resolves_from_its_registered_blob_and_misses_without_it(name):
    """The twin: a patch kept hand-written is one derive cannot do, for the reason its
    docstring gives; registered, it resolves from the hand-written blob."""
    path = os.path.join(HERE, name)
    _, _, resolution = _resolved(path)
    assert resolution.complete, resolution.reason
    # a patch with one file registered and another derivable derives only the other
    derived = M.PARTLY_DERIVED.get(name)
    assert (DERIVED_AFTER in resolution.reason) == bool(derived), resolution.reason
    if derived:
        assert f"{DERIVED_AFTER} ({derived})" in resolution.reason
    M.unregister(name)
    try:
        _, _, missed = _resolved(path)
    finally:
        M.register()
    assert not missed.complete and "no after-model could be derived" in missed.reason
    for words in M.UNDERIVABLE[name]:
        assert words in missed.reason, missed.reason


def test_derived_blobs_are_forgotten_on_the_way_out():
    """Isolation: what the fixture relies on.  Inside, the derived mutant resolves from its
    derived blob; outside, that blob is gone and the hand-written ones are still there."""
    path = os.path.join(HERE, "m02-drop-wrprot-flush.patch")
    hand = set(_extra_blobs())
    with _forgetting_new_blobs():
        _, _, resolution = _resolved(path)
        derived = {(f, b) for f, b in resolution.after.blobs if b.startswith("derived-")}
        assert derived and derived <= _extra_blobs()
    assert not derived & _extra_blobs()
    assert _extra_blobs() == hand


def test_there_are_enough_mutants_and_equivalents():
    assert sum(1 for w in M.MUTANTS.values() if w) >= 12
    assert sum(1 for w in M.MUTANTS.values() if w is None) >= 4
    assert set(M.MUTANTS) == {f for f in os.listdir(HERE) if f.endswith(".patch")}
    # every patch takes exactly one route, and the hand-written ones say why
    assert set(M.DERIVED) | set(M.REGISTRATIONS) == set(M.MUTANTS)
    assert not set(M.DERIVED) & set(M.REGISTRATIONS)
    assert set(M.UNDERIVABLE) == set(M.REGISTRATIONS)


# ---------------------------------------------------------------------------
# Unseen mutants (tests/mutants/unseen/): new subjects and messages, so no written
# contract applies; each goes ingest -> scope -> resolve (derive) -> check with every
# check, as a reviewer's patch does.  Beside each patch, NAME.expect says what the
# change breaks and where it must be caught (decided from the code change).
# ---------------------------------------------------------------------------

import json  # noqa: E402

UNSEEN = os.path.join(HERE, "unseen")
CLAIM_NOT_OBSERVED = "claimed change not observed"


def _unseen(kind: str) -> list[str]:
    names = sorted(f[:-len(".patch")] for f in os.listdir(UNSEEN) if f.endswith(".patch"))
    return [n for n in names if _expect(n)["kind"] == kind]


def _expect(name: str) -> dict:
    with open(os.path.join(UNSEEN, name + ".expect")) as handle:
        return json.load(handle)


def _unseen_run(name: str):
    patch, hunks, resolution = _resolved(os.path.join(UNSEEN, name + ".patch"))
    assert resolution.complete, resolution.reason
    assert DERIVED_AFTER in resolution.reason, resolution.reason
    outcome = E.check_patch(patch, hunks, resolution)
    assert outcome.contract.source != "written", outcome.contract.name
    return outcome


def _with_gap(name):
    """A parameter, marked as a strict xfail where its .expect names a known gap."""
    gap = _expect(name).get("known_gap")
    return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=gap)) if gap else name


@pytest.mark.parametrize("name", [_with_gap(n) for n in _unseen("mutant")])
def test_unseen_mutant_is_caught_on_its_channel_in_gate(name):
    want = _expect(name)
    outcome = _unseen_run(name)
    # caught on its channel; which check catches it first is the bench's "as expected"
    # figure (a must-hold channel is both an invariant's and the default contract's)
    hits = [f for f in outcome.findings if f.channel == want["channel"]
            and f.severity in ("FAIL", "WARN") and "inherited" not in f.summary]
    assert hits, f"{name} ({want['breaks']}) not caught: {_keys(outcome)}"
    if want.get("needs") == CLAIM_NOT_OBSERVED:
        # an absence has no counterexample: the evidence is the whole domain and every
        # sequence run showing identical effects on the claimed channel
        assert any(CLAIM_NOT_OBSERVED in f.summary for f in hits), [f.summary for f in hits]
        return
    hit = next((f for f in hits if f.severity == "FAIL"), hits[0])
    assert hit.counterexample and (hit.counterexample.get("steps")
                                   or hit.counterexample.get("sptes")), hit.counterexample
    assert hit.replay and hit.example
    assert E.replay(hit.replay)




@pytest.mark.parametrize("name", [_with_gap(n) for n in _unseen("equivalent")])
def test_unseen_equivalent_gets_no_finding(name):
    outcome = _unseen_run(name)
    assert not outcome.findings, [f.summary for f in outcome.findings]


def test_unseen_suite_is_big_enough_and_every_patch_has_its_expectation():
    patches = {f[:-len(".patch")] for f in os.listdir(UNSEEN) if f.endswith(".patch")}
    expects = {f[:-len(".expect")] for f in os.listdir(UNSEEN) if f.endswith(".expect")}
    assert patches == expects
    assert len(_unseen("mutant")) >= 24 and len(_unseen("equivalent")) >= 6
    for name in _unseen("mutant"):
        want = _expect(name)
        assert want["channel"] and want["check"] and want["breaks"], name
    # new subjects: none is an RFC patch's, so no written contract can apply
    from harness.check import contracts
    for name in patches:
        (patch,) = ingest.read_file(os.path.join(UNSEEN, name + ".patch"))
        assert contracts.written_contract(patch.subject) is None, name
