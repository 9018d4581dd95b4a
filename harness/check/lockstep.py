"""Two version sets driven through the same operations, step by step (the operation level).

``Lockstep`` runs one operation on both sides, builds the ``checks.Step`` the
checks read, runs the pairwise comparison and raises ``StepFailed`` on a new
violation; ``_machine`` wraps it in a Hypothesis ``RuleBasedStateMachine``
(``harness.check.engine`` runs the kept sequences and the searches).

Each side is a ``Track``.  In a run of kconform the same state is a side of
several transitions (base: patch 1, the net change, the pre-existing check;
every later state: the patch before it and the patch after it), and the kept
and directed sequences, and every search that finds nothing, walk the same
steps on it each time.  What a side did at a step depends on that side alone:
its events, its page tables, and what each invariant said of it (an
invariant reads one side, ``checks.per_side``).  So a track of a hand-written
state keeps that per step in ``memo``'s trajectory of the state, and a later
track of the same state (by every body) reads it instead of running it; only
the pairwise comparison (``matches_contract``, the page tables of the two
sides, the inheritance of a violation) runs again, since it depends on the
pair.  A track that steps where no track of its state has been runs a fresh
VM through the steps so far first (its invariants' memory is rebuilt with
it), then the new step, and keeps that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from harness.check import cause as plain_words
from harness.check import checks as K
from harness.check import contracts as C
from harness.check import memo
from harness.errors import KconformError, ModelError
from harness.translate.runtime import EnvironmentMiss
from kernel_models.model_source import release_of
from kernel_models.registry import VersionSet


class StepFailed(AssertionError):
    """Raised inside Hypothesis when a step violates a check; carries the record."""

    def __init__(self, violation: K.Violation, record: dict):
        super().__init__(violation.summary)
        self.violation = violation
        self.record = record


def _py(value):
    if isinstance(value, int) and not isinstance(value, bool) and value > 9:
        return hex(value)
    return repr(value)


def _spte_entry(name: str, mode: str, value: int) -> dict:
    from kernel_models.spte_domain import describe_spte
    facts = describe_spte(mode, value)
    bits = " ".join(k if v is True else f"{k}={v}" for k, v in facts.items()
                    if k != "value" and v not in (False, None))
    return {"name": name, "value": hex(value), "bits": bits}


@dataclass
class Run:
    """One operation-level search: what to compare and what is already known."""

    before: VersionSet
    after: VersionSet
    contract: C.Contract
    checks: tuple
    excluded: set = field(default_factory=set)
    skipped: dict | None = None   # operation -> why a side lacks it (None: work it out)
    examples: int = 0
    steps_run: int = 0
    failure: StepFailed | None = None
    observed: set = field(default_factory=set)   # channels on which the two logs differed
    seek_fixes: bool = False     # stop on what the before side fails and the after holds
    directed: tuple = ()         # operations reaching a changed function (sequences.DIRECTED_STEPS)

    def __post_init__(self):
        # every search, fix search, pre-existing and culprit replay skips the same operations
        if self.skipped is None:
            self.skipped = skipped_operations(self.before, self.after)


def _state(vm) -> tuple:
    """The page tables of a VM, comparable across the two sides."""
    return tuple(sorted((pfn, tuple(sorted(sp.spt.items())))
                        for pfn, sp in vm.mmu_pages.items()))


def _describe_step(name: str, args: dict) -> str:
    shown = ", ".join(f"{k}={_py(v)}" for k, v in args.items())
    return f"{name}({shown})"


class Track:
    """One side of a lockstep: a VM of ``versions``, and where that side stands on its
    state's kept trajectory (``memo.Point``; None when the state is not kept: a
    translated tree state, a check without a one-side part, or outside a run of
    kconform, and then the VM runs every step and the checks read it as they read a
    VM).  A kept track that steps where a track of the same state has been reads the
    point instead of running the step; one that steps elsewhere brings a fresh VM
    through the steps so far first."""

    def __init__(self, versions, operations, mode: str, mmu: str, pml: bool, invariants):
        self.versions, self.operations = versions, operations
        self.mode, self.mmu, self.pml = mode, mmu, pml
        self.invariants = invariants
        self.point = memo.trajectory(versions, mode, mmu, pml, invariants) \
            if all(hasattr(c.function, "one_side") for c in invariants) else None
        # a track that was kept works out what its invariants say at every step itself
        # (with its own memory), so the checks read ``said`` even once it stops being kept
        self.eager = self.point is not None
        self.said: dict | None = None
        self.memory: dict = {}
        self.path: list = []          # the steps taken so far
        self.mark = 0                 # where the last step began in the live VM's log
        self.vm = None if self.eager else self._new_vm()

    def _new_vm(self):
        return self.operations.new_vm(self.versions, self.mode, self.mmu, pml=self.pml)

    def step(self, name: str, args: dict, steps: list) -> None:
        """Take one step (``steps``: the lockstep's steps, this one last, for messages)."""
        key = memo.step_key(name, args) if self.point is not None else None
        kept = self.point.next.get(key) if key is not None else None
        if kept is not None:
            self.point, self.said, self.vm = kept, kept.said, None   # a live VM is behind now
            self.path.append((name, args))
            return
        if self.vm is None:
            self._catch_up()
        self.mark = self.vm.log.mark()
        self._run(name, args, steps)
        self.path.append((name, args))
        if self.eager:
            self.said = self._say(name)
        if self.point is not None:
            self.point = memo.keep_point(self.point, key, tuple(self.vm.log.since(self.mark)),
                                         _state(self.vm), self.said)

    def _run(self, name: str, args: dict, steps: list) -> None:
        vm = self.vm
        try:
            self.operations.OPERATIONS[name].function(vm, **args)
        except (KconformError, EnvironmentMiss):
            raise       # EnvironmentMiss: check_operations says the level stopped
        except Exception as exc:
            where = (f"operation {name} failed on '{vm.versions.name}' ({self.mode}, "
                     f"{self.mmu}) after steps "
                     f"{[_describe_step(n, a) for n, a in steps]}: {exc!r}")
            if release_of(vm.versions) is not None:
                # translated C in our environment: a gap of the translation or of the
                # environment, which stops the operation level on this state (MISS
                # for what only it checks), never a verdict and never a crash
                raise EnvironmentMiss(where) from exc
            raise ModelError(where) from exc      # a hand-written model: our bug

    def _say(self, name: str) -> dict:
        """What each invariant says of this side's last step (``checks.per_side``)."""
        side = K.Side("kept", self.vm, self.mark, self.memory)
        alone = K.Step("operation", name, side, side, None)
        return {c.function.one_side: tuple(c.function.one_side(alone, side))
                for c in self.invariants}

    def _catch_up(self) -> None:
        """A fresh VM brought through the steps taken so far, with its invariants' memory."""
        self.vm, self.memory = self._new_vm(), {}
        for index, (name, args) in enumerate(self.path):
            self.mark = self.vm.log.mark()
            self._run(name, args, self.path[:index + 1])
            self._say(name)

    def live(self):
        """The VM itself, from now on run at every step (whoever asks may change it)."""
        if self.vm is None:
            self._catch_up()
        self.point = None
        return self.vm

    def side(self, name: str, memory: dict) -> K.Side:
        """What the checks read of this side's last step (``memory``: a lazy check's own,
        for a track that is not kept)."""
        if self.vm is None:
            return K.Side(name, memo.RunVM(self.versions, self.mode,
                                           memo.Run(self.point.events, ())),
                          0, {}, self.said)
        return K.Side(name, self.vm, self.mark, memory, self.said)

    def tables(self) -> tuple:
        return self.point.tables if self.point is not None else _state(self.vm)


class Lockstep:
    """Two sides driven through the same operations (no Hypothesis here)."""

    def __init__(self, run: Run, operations, mode: str, mmu: str, inline=None, pml=False):
        run.examples += 1
        self.run, self.operations = run, operations
        self.inline = run.checks if inline is None else inline   # checks run inside do()
        self.last: K.Step | None = None
        self.checked: dict = {}             # invariant name -> the step it last checked
        self.mode, self.mmu = mode, mmu
        self.pml = pml and operations.pml_supported(mode)
        invariants = tuple(c for c in run.checks if c.name != "matches_contract")
        first = Track(run.before, operations, mode, mmu, self.pml, invariants)
        # one state against itself (the pre-existing check): both sides are the same run,
        # so it is run once and each side reads it (each keeps its own check memory)
        self.tracks = (first, first if run.after is run.before else
                       Track(run.after, operations, mode, mmu, self.pml, invariants))
        self.memory = ({}, {})
        self.steps = []
        self.compare = True

    @property
    def vms(self) -> tuple:
        """The two sides' VMs (one, shared, for a state against itself), run at every
        step from now on: a caller may change them."""
        return tuple(track.live() for track in self.tracks)

    def applies(self, name: str) -> bool:
        return (name not in self.run.skipped
                and self.operations.OPERATIONS[name].applies_to(self.mmu, self.mode))

    def do(self, name: str, args: dict) -> None:
        """Run one operation on both sides; raise StepFailed on a new violation."""
        run = self.run
        run.steps_run += 1
        self.steps.append((name, args))
        before, after = self.tracks
        for track in dict.fromkeys(self.tracks):     # a side both share runs once
            track.step(name, args, self.steps)
        step = K.Step("operation", name, before.side("before", self.memory[0]),
                      after.side("after", self.memory[1]), run.contract, compare=self.compare)
        self.last = step
        if self.compare:
            run.observed |= K.changed_channels(step)
        if self.compare and before is not after and before.tables() != after.tables():
            self.compare = False
        for check in self.inline:
            self.verify(check, step)

    def verify(self, check, step: K.Step) -> None:
        """Run one check on ``step``; raise StepFailed on a violation not yet reported."""
        try:
            violations = list(check.function(step))
        except Exception as exc:
            if not any(release_of(track.versions) is not None for track in self.tracks):
                raise                     # a check failing on the hand-written models: a bug
            # the check reads state a translated VM keeps in a form it does not know
            raise EnvironmentMiss(f"check {check.name} cannot read the translated state "
                                  f"after steps {[_describe_step(n, a) for n, a in self.steps]}"
                                  f": {exc!r}") from exc
        for violation in violations:
            if violation.key in self.run.excluded or violation.fixed != self.run.seek_fixes:
                continue
            record = {"mode": self.mode, "mmu": self.mmu, "pml": self.pml,
                      "steps": list(self.steps),
                      "before": [e.describe() for e in step.before.events],
                      "after": [e.describe() for e in step.after.events],
                      "sptes": _step_sptes(step),
                      "cause": plain_words.line(check, violation, step.before.events,
                                                step.after.events,
                                                before_name=self.run.before.name)}
            raise StepFailed(violation, record)



def _machine(run: Run, operations):
    """A RuleBasedStateMachine class for ``run``: one rule per operation."""
    from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                     rule)
    comparisons = [c for c in run.checks if c.name == "matches_contract"]
    invariants = [c for c in run.checks if c.name != "matches_contract"]

    def create_vms(self, mode, mmu, pml):
        self.lockstep = Lockstep(run, operations, mode, mmu, inline=comparisons, pml=pml)

    namespace = {
        "create_vms": initialize(mode=st.sampled_from(operations.MODES),
                                 mmu=st.sampled_from(operations.MMUS),
                                 pml=st.booleans())(create_vms),
    }
    for name, operation in operations.OPERATIONS.items():
        namespace[name] = _rule_for(name, operation, rule, precondition)
    for check in invariants:
        namespace[check.name] = _invariant_for(check, invariant)
    return type("LockstepMachine", (RuleBasedStateMachine,), namespace)


def _invariant_for(check, invariant):
    """A Hypothesis invariant named after the property: checks the step just run."""
    def holds(self):
        lockstep = getattr(self, "lockstep", None)
        if lockstep is None or lockstep.last is None:
            return              # right after initialisation: no step to check yet
        if lockstep.checked.get(check.name) is not lockstep.last:
            lockstep.checked[check.name] = lockstep.last
            lockstep.verify(check, lockstep.last)

    holds.__name__ = check.name
    holds.__doc__ = check.description
    return invariant()(holds)


def _rule_for(name, operation, rule, precondition):
    def step(self, args):
        self.lockstep.do(name, dict(args))

    step.__name__ = name
    step.__doc__ = operation.description
    step = precondition(lambda self: self.lockstep.applies(name))(step)
    return rule(args=operation.arguments)(step)


def _step_sptes(step: K.Step) -> list[dict]:
    seen = []
    for side in step.sides():
        for event in side.events:
            if type(event).__name__ == "SpteWrite":
                for label, value in (("old", event.old), ("new", event.new)):
                    entry = (f"{event.where} {label}", value)
                    if entry not in seen:
                        seen.append(entry)
    mode = step.before.vm.mode
    return [_spte_entry(name, mode, value) for name, value in seen[:8]]


def skipped_operations(before, after) -> dict[str, str]:
    """Operations a side's release lacks (``kernel_models.entry_points``), and those the
    translation environment cannot run yet (``environment.OPERATIONS_NOT_YET``), with the
    reason."""
    from harness.translate.environment import OPERATIONS_NOT_YET
    from kernel_models.entry_points import skipped
    from kernel_models.model_source import release_of

    found: dict[str, str] = {}
    for state in (before, after):
        release = release_of(state)
        if release is not None:         # a translated state
            found.update(skipped(release))
            found.update(OPERATIONS_NOT_YET)
    return found
