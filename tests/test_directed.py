"""Directed sequences: every operation that reaches a changed function is walked over a
present writable mapping in gate, whatever the random search draws."""

from harness.check import engine as E
from harness.check import sequences as S
from kernel_models import operations, registry


def test_every_operation_has_directed_steps_made_of_operations():
    assert set(S.DIRECTED_STEPS) == set(operations.OPERATIONS)
    for name, steps in S.DIRECTED_STEPS.items():
        assert steps[-1][0] == name, name          # the operation itself ends its sequence
        for step, args in (S.MAP_WRITABLE,) + steps:
            assert step in operations.OPERATIONS, (name, step)
            assert isinstance(args, dict)


def test_directed_sequences_hold_every_invariant_on_base():
    """The faithful side: base against itself over every directed sequence finds nothing
    (the caught side is the unseen mutant u03 in tests/test_mutants.py)."""
    base = registry.VersionSet.series_state("base")
    run = E.Run(base, base, E.PREEXISTING_CONTRACT, E._invariant_checks(None),
                directed=tuple(operations.OPERATIONS))
    assert E._kept_sequences(run, operations, E._operation_finding) == []
    # every directed sequence ran in at least one mode and MMU
    assert run.examples >= len(S.KEPT_SEQUENCES) + len(operations.OPERATIONS)


def test_the_operations_directed_are_those_reaching_the_change():
    base = registry.VersionSet.series_state("base")
    after = registry.VersionSet.series_state("after 1/4")
    assert E.directed_operations(base, base) == ()
    directed = E.directed_operations(base, after)
    assert directed and set(directed) <= set(operations.OPERATIONS)
    from harness.check.reach import changed_functions, operations_reaching
    expected = {op for f in changed_functions(base, after)
                for op in operations_reaching((base, after), f)}
    assert set(directed) == expected
