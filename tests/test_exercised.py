"""Changed translated code that no check runs covers nothing (harness.check.exercised).

The states here are stand-ins with the one attribute ``exercised`` reads (the
state's translations' Python); the functions are written as the translator
writes them (``_vm`` first, one statement per line).
"""

from __future__ import annotations

from types import SimpleNamespace

from harness.check import exercised
from harness.pipeline import hunk_rows
from harness.report.results import patch_verdict
from harness.resolve.strategies import BEHAVIOUR, HunkCoverage
from harness.translate.tree import compiled

BEFORE = """def do_fault(_vm, r, private):
    if r == 1:
        r = 2
    return r
"""

# The patch: a new branch after the old one (the list's 015 has this shape).
AFTER = """def do_fault(_vm, r, private):
    if r == 1:
        r = 2
    if r == 2 and private:
        _vm.exit_to_user(r)
        return -14
    return r
"""


def state(python: str):
    translation = SimpleNamespace(python=python)
    return SimpleNamespace(translated=True, state=SimpleNamespace(functions={
        "do_fault": translation}))


def model(python: str):
    scope: dict = {}
    exec(compiled("do_fault", python), scope)    # noqa: S102 - the text above
    return scope["do_fault"]


def watched(calls):
    """Run ``calls(before_fn, after_fn)`` under a Watch; its unexercised()."""
    before, after = state(BEFORE), state(AFTER)
    pieces, sources = exercised.changed_pieces(before, after)
    old, new = model(BEFORE), model(AFTER)
    with exercised.Watch(pieces, sources) as watch:
        calls(old, new)
    return pieces, watch.unexercised()


VM = SimpleNamespace(exit_to_user=lambda r: None)


def test_the_new_branch_is_two_pieces_its_condition_and_its_body():
    pieces, _ = watched(lambda old, new: None)
    assert [(p.side, p.text) for p in pieces] == [
        ("after", "if r == 2 and private:"), ("after", "_vm.exit_to_user(r)")]


def test_a_branch_that_never_runs_is_unexercised_and_named():
    def calls(old, new):
        for r in (0, 1, 2):
            assert old(VM, r, False) == new(VM, r, False)   # never private
    _, unexercised = watched(calls)
    assert unexercised == (("do_fault", "its new code `_vm.exit_to_user(r)` and 1 more "
                                        "line(s) (after)"),)


def test_a_branch_that_runs_once_is_exercised():
    def calls(old, new):
        for r, private in ((0, False), (1, True)):
            old(VM, r, private)
            new(VM, r, private)
    _, unexercised = watched(calls)
    assert unexercised == ()


def test_the_probes_are_gone_after_the_watch():
    before, after = state(BEFORE), state(AFTER)
    pieces, sources = exercised.changed_pieces(before, after)
    new = model(AFTER)
    code = new.__code__
    with exercised.Watch(pieces, sources):
        assert new.__code__ is not code
        assert new(VM, 1, True) == -14           # the probed copy computes the same
    assert new.__code__ is code


def test_an_elif_is_probed_where_its_condition_is_evaluated():
    before = "def f(_vm, x):\n    if x == 1:\n        return 1\n    return 0\n"
    after = ("def f(_vm, x):\n    if x == 1:\n        return 1\n    elif x == 2:\n"
             "        return 2\n    return 0\n")
    states = [SimpleNamespace(translated=True, state=SimpleNamespace(functions={
        "f": SimpleNamespace(python=text)})) for text in (before, after)]
    pieces, sources = exercised.changed_pieces(*states)
    scope: dict = {}
    exec(compiled("f", after), scope)            # noqa: S102
    with exercised.Watch(pieces, sources) as watch:
        scope["f"](None, 1)                     # returns before the elif is evaluated
    assert len(watch.unexercised()) == 1
    with exercised.Watch(pieces, sources) as watch:
        scope["f"](None, 3)                     # the elif's condition runs, its body not
    assert "return 2" in watch.unexercised()[0][1]
    with exercised.Watch(pieces, sources) as watch:
        scope["f"](None, 2)
    assert watch.unexercised() == ()


def test_renumbered_temporaries_are_not_a_change():
    before = "def g(_vm):\n    _t1 = 1\n    return _t1\n"
    after = "def g(_vm):\n    _t2 = 1\n    return _t2\n"
    states = [SimpleNamespace(translated=True, state=SimpleNamespace(functions={
        "g": SimpleNamespace(python=text)})) for text in (before, after)]
    assert exercised.changed_pieces(*states)[0] == []


def test_an_unexercised_hunk_is_not_covered_and_the_patch_cannot_pass():
    hunk = SimpleNamespace(index=0, file="arch/x86/kvm/mmu/mmu.c", function="do_fault",
                           kind=BEHAVIOUR, reason=None, header="", line=1, text="")
    cover = HunkCoverage(0, hunk.file, "do_fault", BEHAVIOUR, True, "translated do_fault",
                         "translated whole")
    resolution = SimpleNamespace(hunks=(cover,))
    for unexercised, covered in (((), True), ((("do_fault", "its new code"),), False)):
        outcome = SimpleNamespace(coverage=(), unexercised=unexercised)
        (row,) = hunk_rows([hunk], resolution, outcome)
        assert row["covered"] is covered
        verdict = patch_verdict(error=False, hunks_covered=[row["covered"]], severities=[],
                                hunks_read=[True])
        assert verdict.name == ("PASS" if covered else "MISS")
    assert "no check ran the change: in do_fault, its new code" in row["reason"]


def test_fname_is_unexercised_only_when_no_instance_ran_its_change():
    def instance(name, text):
        return name, SimpleNamespace(python=text.replace("do_fault", name))
    states = [SimpleNamespace(translated=True, state=SimpleNamespace(functions=dict(
        instance(name, text) for name in ("ept_do_fault", "paging64_do_fault"))))
        for text in (BEFORE, AFTER)]
    pieces, sources = exercised.changed_pieces(*states)
    functions = {}
    for name in ("ept_do_fault", "paging64_do_fault"):
        scope: dict = {}
        exec(compiled(name, AFTER.replace("do_fault", name)), scope)   # noqa: S102
        functions[name] = scope[name]
    with exercised.Watch(pieces, sources) as watch:
        functions["ept_do_fault"](VM, 1, False)
    assert "FNAME(do_fault)" in dict(watch.unexercised())
    with exercised.Watch(pieces, sources) as watch:
        functions["paging64_do_fault"](VM, 1, True)
    unexercised = dict(watch.unexercised())
    assert "FNAME(do_fault)" not in unexercised and "ept_do_fault" in unexercised


def test_a_watch_inside_a_watch_leaves_the_outer_ones_probes_in_place():
    before, after = state(BEFORE), state(AFTER)
    pieces, sources = exercised.changed_pieces(before, after)
    new = model(AFTER)
    code = new.__code__
    with exercised.Watch(pieces, sources) as outer:
        with exercised.Watch(pieces, sources):       # a check inside the check
            new(VM, 0, False)
        new(VM, 1, True)                             # after the inner one ended
        assert new.__code__ is not code
    assert new.__code__ is code
    assert outer.unexercised() == ()
