"""Function-level runs done once per run of kconform, then reused.

A function-level case runs one side's model of a function on a fresh VM
(``engine._function_step``): what it leaves (the effect log and the
pseudo-events of the return value) depends only on the case and on the
bodies that run, i.e. the function and everything it can reach.  The
patches of a series share most of those bodies (patch k's after side is
patch k+1's before side; the series' net change is made of the same two
ends), so each side's run is kept under

    (function, the bodies it can reach on that side, the case)

and a later check of the same function on a side with the same bodies reads
the kept run instead of running it again.  The checks themselves always run
again (the contract differs from patch to patch and from the net change).

"The bodies it can reach" is the closure of ``harness.check.reach``'s call
graph from the function and its driver's code, over that side's models, as
(name, body) pairs: a body changed anywhere in the closure makes a new key.
Only the hand-written models' version sets are kept this way; a translated
tree state is always run (its environment is more than its bodies).

The operation level keeps a side the same way (``harness.check.lockstep.Track``):
what one side of a lockstep did at each step of a sequence (its events, its page
tables, what each invariant said of it) depends only on that side's bodies, the
VM's shape (mode, MMU, PML), the invariants asked and the steps so far, so it is
kept as a tree of ``Point``s per (bodies, mode, MMU, PML, invariants), one branch
per step, while a run of kconform is on (``start`` .. ``clear``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.check.reach import called_words, calls
from kernel_models.registry import VersionSet

# (function, fingerprint of one side, case items) -> Run
_RUNS: dict[tuple, "Run"] = {}
MAX_RUNS = 1_000_000          # a safety bound for long-lived processes (tests)


@dataclass(frozen=True)
class Run:
    """What one side's run of a function-level case left."""

    events: tuple             # the effect log of the call
    extra: tuple              # pseudo-events: what the function returned


class RunLog:
    """The part of an ``EffectLog`` the checks read from a kept run."""

    __slots__ = ("events",)

    def __init__(self, events):
        self.events = list(events)

    def since(self, mark: int) -> list:
        return self.events[mark:]

    def mark(self) -> int:
        return len(self.events)


class RunVM:
    """What the checks read of a function-level VM, for a kept run: its version set,
    the functions it has, the encoding mode and the log.  Anything else a check would
    read of a VM is an AttributeError, never a silent default."""

    __slots__ = ("versions", "functions", "mode", "log", "extra")

    def __init__(self, versions, mode: str, run: Run):
        self.versions = versions
        self.functions = versions.functions()
        self.mode = mode
        self.log = RunLog(run.events)
        self.extra = run.extra


def fingerprint(function: str, driver, versions) -> frozenset | None:
    """The bodies ``function``'s driver can run on ``versions``, or None (not kept)."""
    if type(versions) is not VersionSet:
        return None
    cache = versions._cache.setdefault("memo fingerprints", {})
    if function not in cache:
        functions = versions.functions()
        names = set(functions)
        start = {function} | set(called_words(driver.call))
        if driver.make_vm is not None:
            start |= set(called_words(driver.make_vm))
        todo, reached = [n for n in start if n in names], set()
        while todo:
            name = todo.pop()
            if name in reached:
                continue
            reached.add(name)
            todo.extend(calls(functions[name], names) - reached)
        helpers = versions.helpers()
        cache[function] = frozenset((name, functions[name], name in helpers)
                                    for name in reached)
    return cache[function]


def key(function: str, side: frozenset | None, case: dict) -> tuple | None:
    if side is None:
        return None
    return (function, side, tuple(case.items()))


def kept(run_key: tuple | None) -> Run | None:
    return None if run_key is None else _RUNS.get(run_key)


def keep(run_key: tuple | None, run: Run) -> None:
    if run_key is None:
        return
    if len(_RUNS) >= MAX_RUNS:
        _RUNS.clear()
    _RUNS[run_key] = run


# A whole transition (engine.check_transition): the same two states (by every body), the
# same contract (by value) and the same settings give the same outcome.  A series checked
# twice in one run (an mbox holding v2 and v3 of the same patches) checks each once.
# None outside a run of kconform (``start``): the key holds the states' bodies, not the
# operation table, so a caller that swaps an operation between two checks must not be
# answered from the first.
_TRANSITIONS: dict[tuple, object] | None = None


def bodies(versions) -> frozenset | None:
    """Every (name, body, helper) of a registry version set, or None (not kept)."""
    if type(versions) is not VersionSet:
        return None
    if "memo bodies" not in versions._cache:
        helpers = versions.helpers()
        versions._cache["memo bodies"] = frozenset(
            (name, function, name in helpers) for name, function in versions.functions().items())
    return versions._cache["memo bodies"]


def transition_key(before, after, contract, profile, seed, checks, functions, operations):
    sides = (bodies(before), bodies(after))
    if None in sides or contract is None:
        return None
    key = (sides, before.name, after.name, contract, getattr(contract, "where", None), profile,
           seed, None if checks is None else tuple(checks),
           None if functions is None else tuple(functions), operations)
    try:
        hash(key)
    except TypeError:           # a contract holding something unhashable: not kept
        return None
    return key


def kept_transition(key):
    return None if key is None or _TRANSITIONS is None else _TRANSITIONS.get(key)


def keep_transition(key, outcome) -> None:
    if key is not None and _TRANSITIONS is not None:
        _TRANSITIONS[key] = outcome


# (bodies, mode, MMU, PML, invariant names) -> the Point before the first step; None
# outside a run of kconform (``start``), so nothing else relies on it.
_TRAJECTORIES: dict[tuple, "Point"] | None = None
_POINTS = [0]
MAX_POINTS = 400_000          # a safety bound, as MAX_RUNS


@dataclass(eq=False)
class Point:
    """Where one side of a lockstep stands after a step: what that step left on it."""

    events: tuple             # the step's effect log
    tables: tuple | None      # the page tables after it (lockstep._state); None at the start
    said: dict | None         # each invariant's one-side function -> its violations here
    next: dict = field(default_factory=dict)     # memo.step_key -> the Point after it


def trajectory(versions, mode: str, mmu: str, pml: bool, invariants) -> Point | None:
    """The start of the kept trajectory of ``versions`` in that VM shape, or None (not kept)."""
    if _TRAJECTORIES is None:
        return None
    sides = bodies(versions)
    if sides is None:
        return None
    key = (sides, mode, mmu, pml, tuple(c.name for c in invariants))
    found = _TRAJECTORIES.get(key)
    if found is None:
        found = _TRAJECTORIES[key] = Point((), None, None)
    return found


def step_key(name: str, args: dict) -> tuple | None:
    """The branch a step takes (values by type too: ``1`` is not ``True``), or None."""
    key = (name, tuple((k, type(v), v) for k, v in args.items()))
    try:
        hash(key)
    except TypeError:           # an argument that is not a value: not kept
        return None
    return key


def keep_point(point: Point, key: tuple | None, events: tuple, tables: tuple,
               said: dict) -> Point | None:
    """The point after ``point``'s step ``key`` (kept; None when ``key`` is None)."""
    if key is None or _TRAJECTORIES is None:
        return None
    if _POINTS[0] >= MAX_POINTS:
        _TRAJECTORIES.clear()       # the tracks holding points keep them; new ones start over
        _POINTS[0] = 0
    _POINTS[0] += 1
    point.next[key] = found = Point(events, tables, said)
    return found


def start() -> None:
    """A run of kconform starts: forget every kept run and keep trajectories from now on."""
    global _TRAJECTORIES, _TRANSITIONS
    clear()
    _TRAJECTORIES = {}
    _TRANSITIONS = {}


def clear() -> None:
    """Forget every kept run (a new run of kconform starts, or one ended)."""
    global _TRAJECTORIES, _TRANSITIONS
    _RUNS.clear()
    _TRANSITIONS = None
    _TRAJECTORIES = None
    _POINTS[0] = 0


def size() -> int:
    return len(_RUNS)
