"""How the operation level behaves where a translated state cannot go (check stage).

A translated state skips the operations its environment cannot run yet, and says so; an
operation level that stops part-way on a name the environment lacks says so too, and a
function only that level checks is then uncovered (so the patch cannot PASS on it).
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from harness.check import engine
from harness.check.state_checks import entry_gfn
from harness.translate.environment import OPERATIONS_NOT_YET
from harness.translate.runtime import EnvironmentMiss
from kernel_models.model_source import HAND_WRITTEN


def test_an_indirect_pages_gfn_reads_both_the_models_pairs_and_the_kernels_packed_word():
    role = SimpleNamespace(direct=False, level=1)
    models = SimpleNamespace(role=role, shadowed_translation={3: (0x77, 7)})
    kernel = SimpleNamespace(role=role, shadowed_translation={3: (0x77 << 12) | 7})
    assert entry_gfn(models, 3) == 0x77
    assert entry_gfn(kernel, 3) == 0x77
    # twin: the access bits are not part of the gfn
    assert entry_gfn(SimpleNamespace(role=role, shadowed_translation={3: 0x77 << 12}), 3) == 0x77


def test_translated_states_skip_what_the_environment_cannot_run_and_hand_written_do_not(
        monkeypatch):
    # the environment runs every operation today; one it could not is stood in for here
    monkeypatch.setitem(OPERATIONS_NOT_YET, "slot_access", "no MMIO caching (a stand-in)")
    base = HAND_WRITTEN.state("base")
    assert not set(engine.skipped_operations(base, base)) & set(OPERATIONS_NOT_YET)
    translated = SimpleNamespace(release=(6, 9, 0))
    skipped = engine.skipped_operations(translated, translated)
    assert set(OPERATIONS_NOT_YET) <= set(skipped)
    assert all(skipped[name] for name in OPERATIONS_NOT_YET)
    # every search derives its skips, not only the patch search
    run = engine.Run(translated, translated, None, ())
    assert set(OPERATIONS_NOT_YET) <= set(run.skipped)
    assert engine.Run(base, base, None, ()).skipped == {}


def test_an_operation_level_that_stops_says_so_and_keeps_no_result(monkeypatch):
    base = HAND_WRITTEN.state("base")

    def stops(*args, **kwargs):
        raise EnvironmentMiss("list_empty: defined neither in the tree nor in the environment")

    monkeypatch.setattr(engine, "_searches", stops)
    findings, coverage = engine.check_operations(base, base, None)
    assert findings == []
    note = engine.operation_level_stopped(coverage)
    assert note is not None and "list_empty" in note
    # twin: a finished level is not read as stopped
    finished = [engine.Coverage("operations", None, "sampled", 3, None, "operations: sampled")]
    assert engine.operation_level_stopped(finished) is None


def test_a_function_only_the_stopped_level_checks_is_uncovered():
    from harness import pipeline
    from harness.resolve.strategies import HunkCoverage

    hunk = SimpleNamespace(index=0, file="arch/x86/kvm/mmu/tdp_mmu.c", function="zap_it",
                           kind="behaviour", reason=None, header="", line=1, text="")
    cover = HunkCoverage(**{f.name: None for f in dataclasses.fields(HunkCoverage)})
    cover = dataclasses.replace(cover, index=0, covered=True, model="translated", reason="ok")
    resolution = SimpleNamespace(hunks=(cover,))
    only = engine.Coverage("function", "zap_it", "sampled", 0, None,
                           f"zap_it: {engine.OPERATION_LEVEL_ONLY}")
    stopped = engine.Coverage("operations", None, "sampled", 0, None,
                              f"{engine.OPERATIONS_STOPPED} after 3 sequences")
    finished = engine.Coverage("operations", None, "sampled", 9, None, "operations: sampled")

    def covered(coverage):
        outcome = SimpleNamespace(findings=(), coverage=coverage, contract=None, fixes=(),
                                  observed=frozenset(), unexercised=())
        return pipeline.hunk_rows([hunk], resolution, outcome)[0]["covered"]

    assert covered((only, stopped)) is False
    assert covered((only, finished)) is True


def test_a_name_missing_in_one_operation_stops_the_level_instead_of_erroring(monkeypatch):
    import dataclasses as dc

    from kernel_models import operations

    def lacks(kvm, **args):
        raise EnvironmentMiss("tdp_mmu_clear_spte_bits: defined neither in the tree nor in "
                              "the environment")

    monkeypatch.setitem(operations.OPERATIONS, "zap_all",
                        dc.replace(operations.OPERATIONS["zap_all"], function=lacks))
    base = HAND_WRITTEN.state("base")
    findings, coverage = engine.check_operations(base, base, None)
    assert findings == []
    assert "tdp_mmu_clear_spte_bits" in engine.operation_level_stopped(coverage)


def _failing_zap_all(monkeypatch):
    import dataclasses as dc

    from kernel_models import operations

    def breaks(kvm, **args):
        raise AttributeError("no model of 'spte_to_child_sp' in this version set")

    monkeypatch.setitem(operations.OPERATIONS, "zap_all",
                        dc.replace(operations.OPERATIONS["zap_all"], function=breaks))


def test_a_crash_in_translated_code_stops_the_level_but_in_a_model_is_our_error(monkeypatch):
    import copy

    import pytest

    from harness.errors import ModelError
    _failing_zap_all(monkeypatch)
    base = HAND_WRITTEN.state("base")
    with pytest.raises(ModelError, match="spte_to_child_sp"):   # a hand-written model: a bug
        engine.check_operations(base, base, None)
    translated = copy.copy(base)
    object.__setattr__(translated, "release", (6, 9, 0))         # as a tree state has
    findings, coverage = engine.check_operations(translated, translated, None)
    assert findings == []
    assert "spte_to_child_sp" in engine.operation_level_stopped(coverage)


def test_a_check_that_cannot_read_a_translated_state_stops_the_level(monkeypatch):
    import copy

    import pytest

    from harness.check import checks as K

    def unreadable(step):
        raise KeyError(0)           # e.g. a per-index table the translated VM has not filled

    check = K.Check("reads_state", "f", ("spte",), ("operation",), "d", unreadable)
    base = HAND_WRITTEN.state("base")
    with pytest.raises(KeyError):                                  # hand-written: our bug
        engine.check_operations(base, base, None, checks=[check])
    translated = copy.copy(base)
    object.__setattr__(translated, "release", (6, 9, 0))
    findings, coverage = engine.check_operations(translated, translated, None, checks=[check])
    assert findings == []
    assert "check reads_state cannot read" in engine.operation_level_stopped(coverage)


def test_a_limit_struck_during_hypothesis_replay_is_the_limit_not_an_internal_error():
    from harness.errors import LimitError
    limit = LimitError("the check of 2/4 took longer than 120 s", file="p.patch")
    flaky = BaseExceptionGroup("Flaky", [ValueError("other"), ExceptionGroup("x", [limit])])
    assert engine._first_of(flaky, (LimitError,)) is limit
    # twin: a group without one is left as it is
    assert engine._first_of(BaseExceptionGroup("Flaky", [ValueError("v")]), (LimitError,)) is None
