"""The conformance engine: run the before and after version sets side by side.

Two levels, both driven by Hypothesis profiles (``harness.check.profiles``):

- function level: every changed function that has a driver
  (``harness.check.drivers``) is called on a fresh VM of each side for every case
  of the abstract SPTE domain, in every encoding mode (exhaustive where the
  domain is small enough for the profile, sampled otherwise), and the two
  effect logs are compared channel by channel against the contract;
- operation level: a ``RuleBasedStateMachine`` whose rules are the kernel
  operations (``operations.OPERATIONS``) drives two VMs, one per side, in
  lockstep; after every step each selected check runs (the contract
  comparison and the invariants, ``harness.check.checks``).

A failing step raises ``StepFailed`` inside Hypothesis, which shrinks the
operation sequence; the engine records the minimal failure as a
``Finding`` with a counterexample, then runs again with that failure's key
excluded to look for the next one (so one bug does not hide another).

When the contract lets the SPTE channel differ and the two sides' page
tables then differ, later steps are compared by the invariants only: the
two VMs are no longer in the same state, so comparing their effects would
report consequences of the allowed change, not new ones.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from hypothesis import seed as hypothesis_seed

from harness.check import cause as plain_words
from harness.check import checks as K
from harness.check import docs
from harness.check import exercised
from harness.check import memo
from harness.check import contracts as C
from harness.check import drivers as D
from harness.check import profiles
from harness.check.lockstep import (  # noqa: F401 - moved there; callers still name them here
    Lockstep, Run, StepFailed, _describe_step, _machine, _py, _spte_entry, _state,
    skipped_operations)
from harness.check.reach import affected_functions, changed_functions, where_for
from harness.check.replay import (_contract_json, _contract_named, _replayed,  # noqa: F401
                                  _versions_from, _versions_json, decode_replay, encode_replay,
                                  replay, replay_needs_inputs)
from harness.errors import KconformError, ModelError
from harness.translate.runtime import EnvironmentMiss
from kernel_models.registry import VersionSet

# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    check: str
    channel: str
    severity: str                 # "FAIL" | "WARN"
    operation: str | None
    function: str | None
    summary: str
    counterexample: dict | None
    replay: str | None
    example: str | None
    cause: str = ""                       # the finding in plain words (harness.check.cause)
    culprit_hunks: tuple[int, ...] = ()   # the patch's hunks it comes from (harness.check.culprit)
    culprit: dict | None = None           # how they were found, or why they could not be
    # The before side fails the same invariant: not this change's finding (the pipeline
    # says which earlier patch introduced it, or that it was there before the input).
    inherited: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        """Readable failure text, ending with "Reproduce with:"."""
        lines = [f"{self.severity} {self.check} [{self.channel}]: {self.summary}"]
        cx = self.counterexample or {}
        if cx.get("steps"):
            lines.append("Steps:")
            lines += [f"  {i + 1}. {s}" for i, s in enumerate(cx["steps"])]
        for spte in cx.get("sptes", ()):
            lines.append(f"  SPTE {spte['name']} = {spte['value']}  {spte['bits']}")
        for side in ("before", "after"):
            if cx.get(side) is not None:
                lines.append(f"{side.capitalize()} ({cx.get(side + '_version', side)}):")
                lines += [f"  {line}" for line in cx[side]] or ["  (no events)"]
        for channel, diff in (cx.get("difference") or {}).items():
            for line in diff.get("missing", ()):
                lines.append(f"  {channel} missing: {line}")
            for line in diff.get("extra", ()):
                lines.append(f"  {channel} extra:   {line}")
        if self.replay or self.example:
            lines.append("Reproduce with:")
            if self.replay:
                lines.append(f"  kconform replay {self.replay}")
            if self.example:
                lines.append(f"  {self.example}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Coverage:
    check: str
    function: str | None
    mode: str                     # "exhaustive" | "sampled"
    cases: int
    total: int | None
    text: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CheckOutcome:
    findings: tuple[Finding, ...]
    coverage: tuple[Coverage, ...]
    contract: C.Contract
    observed: frozenset = frozenset()     # channels on which before and after ever differed
    fixes: tuple[Finding, ...] = ()       # checks the before-state fails and the after holds
    unexercised: tuple = ()               # (function, why): changed code no check ran

    def as_dict(self) -> dict:
        return {"findings": [f.as_dict() for f in self.findings],
                "coverage": [c.as_dict() for c in self.coverage],
                "contract": self.contract.as_dict(),
                "fixes": [f.as_dict() for f in self.fixes],
                "unexercised": [list(u) for u in self.unexercised]}


MAX_FINDINGS_PER_LEVEL = 12

# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def check_patch(patch, hunks, resolution, *, profile: str = "gate", seed: int = 0,
                checks=None, doc_images: dict | None = None) -> CheckOutcome:
    """Check one patch: its contract, the functions it changes, the operations over them,
    and its documentation hunks (``doc_images``: whole files from a kernel tree).

    Then what the message claims: a claimed change that never showed is a WARN
    (``claims_not_observed``), and a message that says it fixes a bug gets a
    search for a check the before-state fails and the after-state holds
    (``find_fixes``; none found is a note, never a failure).
    """
    documentation = check_documentation(hunks, getattr(patch, "repairs", ()), doc_images,
                                        checks)
    contract = patch_contract(patch, hunks, resolution)
    if resolution is None or resolution.before is None or resolution.after is None:
        return CheckOutcome(documentation.findings, documentation.coverage, contract)
    changed = tuple(dict.fromkeys(p.function for p in resolution.pairs))
    version_sets = (resolution.before, resolution.after)
    functions = changed + tuple(f for f in affected_functions(version_sets, changed)
                                if f not in changed)
    name = getattr(patch, "subject", "") or "patch"
    outcome = check_transition(name, resolution.before, resolution.after, contract,
                               profile=profile, seed=seed, checks=checks, functions=functions)
    selected = K.select(checks)
    unobserved = claims_not_observed(contract, outcome.observed) \
        if any(c.name == "matches_contract" for c in selected) else []
    fixes = _kept_fixes(resolution.before, resolution.after, contract, profile, seed,
                        selected) if contract.claims and contract.claims.fixes else ()
    from harness.check import culprit      # it replays through this module

    findings = culprit.attach(outcome.findings, hunks, resolution.before, resolution.after,
                              contract)
    return CheckOutcome(findings + tuple(unobserved) + documentation.findings,
                        outcome.coverage + documentation.coverage, contract,
                        outcome.observed, tuple(fixes), outcome.unexercised)


def _kept_fixes(before, after, contract, profile, seed, selected) -> tuple:
    """``find_fixes``, run once per (bodies, contract, settings) in a run (``memo``)."""
    key = memo.transition_key(before, after, contract, profile, seed,
                              [c.name for c in selected], ("find_fixes",), None)
    found = memo.kept_transition(key)
    if found is None:
        found = tuple(find_fixes(before, after, contract, profile=profile, seed=seed,
                                 checks=selected))
        memo.keep_transition(key, found)
    return found


def patch_contract(patch, hunks, resolution) -> C.Contract:
    """The contract ``check_patch`` checks ``patch`` against (the same value every time)."""
    if resolution is None or resolution.before is None or resolution.after is None:
        return C.contract_for(patch, hunks)
    changed = tuple(dict.fromkeys(p.function for p in resolution.pairs))
    return C.contract_for(patch, hunks, where_for((resolution.before, resolution.after), changed))


def claims_not_observed(contract: C.Contract, observed) -> list[Finding]:
    """A WARN per channel the message claims a change on, where before and after never differed."""
    findings = []
    claims = contract.claims.changes if contract.claims else ()
    for channel in dict.fromkeys(c.channel for c in claims):
        if channel in observed:
            continue
        claim = next(c for c in claims if c.channel == channel)
        findings.append(Finding(
            "matches_contract", channel, "WARN", None, None,
            f"claimed change not observed: the message claims {channel} may change "
            f"({claim.relation}) \u2014 \u201c{claim.sentence}\u201d \u2014 but the before and "
            f"after effects on {channel} are identical over the whole domain and every "
            f"operation sequence run (a wrong message, a change on a path kconform does not "
            f"model, or a patch that does not do what it says)", None, None, None))
    return findings


def check_documentation(hunks, repairs, images, checks) -> CheckOutcome:
    """The ``rst_parses`` check over a patch's reStructuredText hunks (``harness.check.docs``)."""
    if checks is not None and docs.CHECK not in checks:
        return CheckOutcome((), (), None)
    found, notes = docs.check_hunks(hunks, repairs, images)
    findings = tuple(Finding(
        check=docs.CHECK, channel=docs.DOCS, severity=f.severity, operation=None,
        function=None, summary=f.summary(),
        counterexample={
            "steps": [f"parse {f.file} (hunk {f.hunk}) before and after the patch with docutils"],
            "before": [],
            "after": [_doc_event(f)],
            "difference": {docs.DOCS: {"missing": [], "extra": [_doc_event(f)]}}},
        replay=None, example=None,
        cause=f"documentation that no longer parses: {f.message.text}",
        culprit_hunks=(f.hunk,),
        culprit={"status": "found", "text": f"parsing hunk #{f.hunk} alone gives this message "
                                            f"after the patch and not before",
                 "lines": [], "tried": []}) for f in found)
    coverage = tuple(Coverage(check=docs.CHECK, function=None, mode="exhaustive", cases=1,
                              total=1, text=f"hunk {index}: {note}")
                     for index, note in sorted(notes.items()))
    return CheckOutcome(findings, coverage, None)


def _doc_event(finding) -> str:
    level = {2: "WARNING", 3: "ERROR", 4: "SEVERE"}.get(finding.message.level, "INFO")
    where = f"line {finding.message.line}" if finding.message.line else "somewhere"
    text = finding.message.source_line.strip()
    return f"{level} at {where} of the parsed text: {finding.message.text}" + \
        (f" [{text}]" if text else "")


def check_transition(name: str, before: VersionSet, after: VersionSet, contract: C.Contract, *,
                     profile: str = "gate", seed: int = 0, checks=None, functions=None,
                     operations: bool = True) -> CheckOutcome:
    """Compare two version sets under ``contract`` (a patch, or a series' net change).

    ``functions``: the C functions to check at function level; None means every
    function whose body differs between the two version sets, plus the driven
    functions that reach one of them.
    """
    from kernel_models.model_source import spte_layout_of
    from kernel_models.spte_domain import following

    key = memo.transition_key(before, after, contract, profile, seed, checks, functions,
                              operations)
    outcome = memo.kept_transition(key)
    if outcome is not None:         # the same bodies, contract and settings: the same answer
        return replace(outcome, contract=contract)
    # which of the changed code the checks run (``exercised``)
    pieces, sources = exercised.changed_pieces(before, after)
    # a translated state of another release has its own spte.h: its domain and bit names
    with following(spte_layout_of(before)), exercised.Watch(pieces, sources) as watch:
        findings, coverage, observed = _check_transition(before, after, contract, profile, seed,
                                                         checks, functions, operations)
    outcome = CheckOutcome(tuple(findings), tuple(coverage), contract, frozenset(observed),
                           unexercised=watch.unexercised())
    memo.keep_transition(key, outcome)
    return outcome


def _check_transition(before, after, contract, profile, seed, checks, functions, operations):
    selected = K.select(checks)
    if functions is None:
        functions = changed_functions(before, after)
        functions += tuple(f for f in affected_functions((before, after), functions)
                           if f not in functions)
    findings: list[Finding] = []
    coverage: list[Coverage] = []
    observed: set[str] = set()
    function_checks = [c for c in selected if "function" in c.levels]
    for function in functions or ():
        if not function_checks:
            break
        f, cov = check_function(function, before, after, contract, profile=profile,
                                checks=function_checks, observed=observed)
        findings += f
        coverage.append(cov)
    operation_checks = [c for c in selected if "operation" in c.levels]
    if operations and operation_checks:
        f, cov = check_operations(before, after, contract, profile=profile, seed=seed,
                                  checks=operation_checks, observed=observed)
        findings += f
        coverage += cov
    return findings, coverage, observed


# ---------------------------------------------------------------------------
# Function level
# ---------------------------------------------------------------------------

def _kernel_stops() -> tuple[type, ...]:
    """What a translated function raises where the kernel stops (BUG()); it has already
    appended its Bug event, so the run ends there and the logs are compared as they are."""
    try:
        from harness.translate.environment import KernelStop
    except ImportError:
        return ()
    return (KernelStop,)


def _function_step(function: str, before: VersionSet, after: VersionSet, contract, case: dict,
                   sides=(None, None)) -> tuple[K.Step, object, object]:
    """One case on both sides; ``sides``: each side's ``memo.fingerprint`` (a run kept
    under the same key is read instead of run again)."""
    driver = D.DRIVERS[function]
    mode = case["mode"]
    vms = []
    for versions, side in zip((before, after), sides):
        run_key = memo.key(function, side, case)
        run = memo.kept(run_key)
        if run is None:
            run = _run_case(driver, function, versions, case)
            memo.keep(run_key, run)
        vms.append(memo.RunVM(versions, mode, run))
    step = K.Step("function", function, K.Side("before", vms[0], 0), K.Side("after", vms[1], 0),
                  contract, extra_before=vms[0].extra, extra_after=vms[1].extra)
    return step, vms[0], vms[1]


def _run_case(driver, function: str, versions: VersionSet, case: dict) -> memo.Run:
    """Run one case on a fresh VM of ``versions``; the VM is torn down after."""
    vm = driver.new_vm(versions, case["mode"])
    extra = ()
    if function in vm.functions:
        try:
            extra = tuple(driver.call(vm, case))
        except KconformError:
            raise
        except _kernel_stops():    # BUG() in translated C: the log so far holds its Bug event
            extra = ()
        except Exception as exc:   # a model that cannot run this input is our bug
            raise ModelError(f"model of {function} in '{versions.name}' failed on "
                             f"{driver.describe(case)} ({case['mode']}): {exc!r}") from exc
    run = memo.Run(tuple(vm.log.events), extra)
    vm.tear_down()
    return run


def check_function(function: str, before: VersionSet, after: VersionSet, contract, *,
                   profile: str = "gate", checks=None, observed: set | None = None
                   ) -> tuple[list[Finding], Coverage]:
    """Run ``function``'s driver over every case, first failure per (check, channel) kept.

    ``observed`` collects the channels on which a case's two logs differ."""
    selected = [c for c in (checks or K.select(None)) if "function" in c.levels]
    driver = D.DRIVERS.get(function)
    present = [function in versions.functions() for versions in (before, after)]
    if not all(present):
        side = "before" if not present[0] else "after"
        return [], Coverage("matches_contract", function, "exhaustive", 0, 0,
                            f"{function}: absent {side} the change; covered through its "
                            f"callers (their function checks and the operations)")
    if driver is None:
        return [], Coverage("function", function, "sampled", 0, None,
                            f"{function}: {OPERATION_LEVEL_ONLY}")
    budget = profiles.budget(profile)
    all_cases = [case for mode in D.MODES for case in driver.cases(mode)]
    total = len(all_cases)
    if total <= budget.exhaustive_limit:
        chosen, kind = all_cases, "exhaustive"
    else:
        stride = max(1, total // budget.sampled_examples)
        chosen, kind = all_cases[::stride], "sampled"
    first: dict[tuple, Finding] = {}
    sides = (memo.fingerprint(function, driver, before), memo.fingerprint(function, driver, after))
    for case in chosen:
        step, _, _ = _function_step(function, before, after, contract, case, sides)
        if observed is not None:
            observed |= K.changed_channels(step)
        for check in selected:
            for violation in check.function(step):
                if violation.fixed:
                    continue
                key = violation.key
                if key in first:
                    continue
                first[key] = _function_finding(function, before, after, contract, case,
                                               step, violation)
        if len(first) >= MAX_FINDINGS_PER_LEVEL:
            break
    if kind == "exhaustive":
        text = f"{function}: exhaustive: 100% of {total:,} cases"
    else:
        text = f"{function}: sampled: {len(chosen):,} of {total:,} cases"
    return list(first.values()), Coverage("matches_contract", function, kind, len(chosen), total,
                                          text)


def _function_finding(function, before, after, contract, case, step, violation) -> Finding:
    driver = D.DRIVERS[function]
    mode = case["mode"]
    before_events = list(step.before.events) + list(step.extra_before)
    after_events = list(step.after.events) + list(step.extra_after)
    sptes = [_spte_entry(name, mode, case[name]) for name in driver.spte_fields if name in case]
    token = encode_replay({"kind": "function", "function": function, "case": case,
                           "before": _versions_json(before), "after": _versions_json(after),
                           **_contract_json(contract)})
    args = ", ".join(f"{k}={_py(v)}" for k, v in case.items())
    counterexample = {
        "steps": [driver.describe(case) + f"  [mode {mode}]"],
        "sptes": sptes,
        "before": [e.describe() for e in before_events],
        "after": [e.describe() for e in after_events],
        "before_version": before.name,
        "after_version": after.name,
        "difference": {violation.channel: {"missing": list(violation.missing),
                                           "extra": list(violation.extra)}},
        "replay": token,
        "example": f"@example({args})",
    }
    cause = plain_words.line(K.CHECKS[violation.check], violation, before_events, after_events,
                             before_name=before.name, actor=function)
    return Finding(violation.check, violation.channel, violation.severity, None, function,
                   f"{function}: {violation.summary}", counterexample, token,
                   counterexample["example"], cause)



# ---------------------------------------------------------------------------
# Operation level
# ---------------------------------------------------------------------------

def _operations_module():
    try:
        from kernel_models import operations
    except ModuleNotFoundError as exc:
        if exc.name != "kernel_models.operations":
            raise
        return None
    return operations



OPERATIONS_STOPPED = "operation level: stopped on this state"
OPERATION_LEVEL_ONLY = "no function driver; covered at operation level only"


def operation_level_stopped(coverage) -> str | None:
    """The note of an operation level that stopped part-way, if it did."""
    return next((c.text for c in coverage if c.text.startswith(OPERATIONS_STOPPED)), None)


def operation_level_only(coverage) -> set[str]:
    """Functions that only the operation level checks (they have no function driver)."""
    return {c.function for c in coverage if c.text.endswith(OPERATION_LEVEL_ONLY)}


def check_operations(before: VersionSet, after: VersionSet, contract, *, profile="gate",
                     seed: int = 0, checks=None, observed: set | None = None, as_finding=None
                     ) -> tuple[list[Finding], list[Coverage]]:
    as_finding = as_finding or _operation_finding
    operations = _operations_module()
    selected = tuple(c for c in (checks or K.select(None)) if "operation" in c.levels)
    cannot = getattr(before, "operations_reason", None) or getattr(after, "operations_reason",
                                                                   None)
    if cannot:      # a translated state whose VM the operation mix cannot build yet
        return [], [Coverage("operations", None, "sampled", 0, None,
                             f"operation level: not run on this state ({cannot})")]
    if operations is None:
        return [], [Coverage("operations", None, "sampled", 0, None,
                             "operation level: no operations model yet (not checked)")]
    run = Run(before, after, contract, selected,
              directed=directed_operations(before, after))
    try:
        findings, runs = _searches(run, operations, profile, seed, as_finding)
    except EnvironmentMiss as exc:  # a translated state reached a name the environment lacks
        return [], [Coverage("operations", None, "sampled", 0, None,
                             f"{OPERATIONS_STOPPED} after {run.examples:,} "
                             f"sequences, none of its results kept (EnvironmentMiss: {exc})")]
    if observed is not None:
        observed |= run.observed
    config = profiles.get(profile)
    text = (f"operations: sampled: {run.examples:,} operation sequences "
            f"(<= {config.stateful_step_count} steps, {run.steps_run:,} steps in all, "
            f"{runs} search{'es' if runs != 1 else ''}), modes {', '.join(operations.MODES)}, "
            f"MMUs {', '.join(operations.MMUS)}, PML on and off (where the mode has it)")
    if run.skipped:
        text += "; skipped for this state: " + "; ".join(
            f"{name} ({why})" for name, why in sorted(run.skipped.items()))
    return findings, [Coverage(",".join(c.name for c in selected), None, "sampled",
                               run.examples, None, text)]


def _searches(run: Run, operations, profile: str, seed: int, as_finding=None
              ) -> tuple[list[Finding], int]:
    """The kept sequences, then one search per distinct failure (each excluded once found)."""
    as_finding = as_finding or _operation_finding
    findings = _kept_sequences(run, operations, as_finding)
    runs = 0
    searches = profiles.budget(profile).searches
    while len(findings) < MAX_FINDINGS_PER_LEVEL and runs < searches:
        failure = _search(run, operations, profile, seed)
        runs += 1
        if failure is None:
            break
        findings.append(as_finding(run, failure))
        run.excluded.add(failure.violation.key)
    return findings, runs


def find_fixes(before: VersionSet, after: VersionSet, contract, *, profile="gate",
               seed: int = 0, checks=None) -> list[Finding]:
    """Invariant violations the before-state shows and the after-state does not.

    The same searches as ``check_operations``, over the invariants only, each
    stopping on a step whose before side fails an invariant that its after
    side holds.  Each is a note ("fix confirmed"), never a failure.
    """
    operations = _operations_module()
    invariants = _invariant_checks(checks)
    if operations is None or not invariants:
        return []
    run = Run(before, after, contract, invariants, seek_fixes=True,
              directed=directed_operations(before, after))
    try:
        found, _ = _searches(run, operations, profile, seed, _operation_finding)
    except EnvironmentMiss:     # the operation level says so in its coverage; no fix to tell
        return []
    return [Finding(f.check, f.channel, "NOTE", f.operation, f.function,
                    f"fix confirmed: {f.check} held after, failed before: {f.summary}",
                    f.counterexample, f.replay, f.example) for f in found]



def directed_operations(before: VersionSet, after: VersionSet) -> tuple[str, ...]:
    """The operations whose steps run a function that differs between the two states."""
    from harness.check.reach import operations_reaching
    found: list[str] = []
    for function in changed_functions(before, after):
        found += [name for name in operations_reaching((before, after), function)
                  if name not in found]
    return tuple(found)


def _kept_sequences(run: Run, operations, as_finding) -> list[Finding]:
    """Run harness.check.sequences.KEPT_SEQUENCES, then the directed sequences of the
    operations that reach the change, in every mode and MMU where they apply."""
    from harness.check.sequences import KEPT_SEQUENCES, directed_sequences
    findings = []
    for _, steps in KEPT_SEQUENCES + directed_sequences(run.directed):
        for mode in operations.MODES:
            for mmu in operations.MMUS:
                if not all(operations.OPERATIONS[n].applies_to(mmu, mode)
                           and n not in run.skipped for n, _ in steps):
                    continue
                for pml in (False, True) if operations.pml_supported(mode) else (False,):
                    failure = _run_steps(run, operations, mode, mmu, steps, pml)
                    if failure is not None:
                        findings.append(as_finding(run, failure))
                        run.excluded.add(failure.violation.key)
    return findings


def _run_steps(run: Run, operations, mode: str, mmu: str, steps, pml=False) -> StepFailed | None:
    """Drive the lockstep pair through ``steps`` by hand (no Hypothesis)."""
    lockstep = Lockstep(run, operations, mode, mmu, pml=pml)
    try:
        for name, args in steps:
            lockstep.do(name, dict(args))
    except StepFailed as failure:
        return failure
    return None


def _search(run: Run, operations, profile: str, seed: int) -> StepFailed | None:
    from hypothesis.stateful import run_state_machine_as_test
    machine = _machine(run, operations)
    config = profiles.get(profile)
    try:
        if profile == profiles.GATE and not seed:
            run_state_machine_as_test(machine, settings=config)
        else:
            _run_seeded(machine, config, seed)
    except StepFailed as failure:
        return failure
    except KconformError:
        raise
    except BaseExceptionGroup as group:   # hypothesis' FlakyFailure: the replay raised anew
        inner = _first_of(group, (KconformError, EnvironmentMiss))
        if inner is None:
            raise
        raise inner from group    # e.g. the per-patch time limit struck during the replay
    return None


def _first_of(group: BaseExceptionGroup, kinds: tuple):
    """The first exception of ``kinds`` in an exception group, nested groups included."""
    for exc in group.exceptions:
        if isinstance(exc, kinds):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_of(exc, kinds)
            if found is not None:
                return found
    return None


def _run_seeded(machine, config, seed: int) -> None:
    """Run the machine with an explicit seed (deep profile, or gate with a chosen seed)."""
    from hypothesis.stateful import get_state_machine_test
    test = get_state_machine_test(machine, settings=config)
    hypothesis_seed(seed)(test)()


def _operation_finding(run: Run, failure: StepFailed) -> Finding:
    v = failure.violation
    record = failure.record
    steps = [_describe_step(n, a) for n, a in record["steps"]]
    last = record["steps"][-1][0]
    severity = v.severity
    summary = v.summary
    if v.inherited:
        severity = "WARN"
        summary = (f"{summary} (inherited: the before state '{run.before.name}' fails it too, "
                   f"so this change did not cause it)")
    pml = record.get("pml", False)
    token = encode_replay({"kind": "operation", "mode": record["mode"], "mmu": record["mmu"],
                           "pml": pml, "steps": record["steps"],
                           "before": _versions_json(run.before),
                           "after": _versions_json(run.after), **_contract_json(run.contract)})
    example = (f"@example(mode={record['mode']!r}, mmu={record['mmu']!r}, pml={pml!r}, "
               f"steps={json.dumps(record['steps'])})")
    counterexample = {
        "steps": steps + [f"[mode {record['mode']}, mmu {record['mmu']}, "
                          f"PML {'on' if pml else 'off'}]"],
        "pml": pml,
        "sptes": record["sptes"],
        "before": record["before"],
        "after": record["after"],
        "before_version": run.before.name,
        "after_version": run.after.name,
        "difference": {v.channel: {"missing": list(v.missing), "extra": list(v.extra)}},
        "replay": token,
        "example": example,
    }
    return Finding(v.check, v.channel, severity, last, None, summary, counterexample, token,
                   example, record["cause"], inherited=v.inherited)


# ---------------------------------------------------------------------------
# Findings that predate the patches
# ---------------------------------------------------------------------------

PREEXISTING_CONTRACT = C.Contract(
    name="pre-existing", source=C.MESSAGE,
    intent="One state against itself: only the invariants, which must hold on every state, "
           "are checked.")

KEEPS, FIXES, CHANGES = "keeps", "fixes", "changes"


def _invariant_checks(checks) -> tuple:
    return tuple(c for c in (checks or K.select(None))
                 if "operation" in c.levels and c.name != "matches_contract")


def check_preexisting(versions: VersionSet, *, profile: str = "gate", seed: int = 0,
                      checks=None) -> list[Finding]:
    """Invariant violations of ``versions`` by itself: bugs that predate the patches checked.

    The state is run against itself over the operation mix (kept sequences
    first, then the profile's searches), so a violation is the state's own.
    Each finding keeps the invariant's own severity: it is reported in its
    own section, and never fails a patch that did not cause it.
    """
    findings, _ = check_operations(versions, versions, PREEXISTING_CONTRACT, profile=profile,
                                   seed=seed, checks=_invariant_checks(checks),
                                   as_finding=_preexisting_finding)
    return findings


def _preexisting_finding(run: Run, failure: StepFailed) -> Finding:
    finding = _operation_finding(run, failure)
    v = failure.violation
    summary = (f"{v.summary} (pre-existing: the state '{run.before.name}', before any patch "
               f"checked here, fails it by itself)")
    return replace(finding, severity=v.severity, summary=summary)


def preexisting_status(finding: Finding, versions: VersionSet, checks=None) -> str:
    """Does ``versions`` (a later state) keep, fix or change a pre-existing finding?

    The finding's own steps are run on the later state against itself:
    the same check fails -> keeps; no check fails -> fixes; another check
    fails, or the steps no longer run there -> changes.
    """
    operations = _operations_module()
    data = decode_replay(finding.replay)
    run = Run(versions, versions, PREEXISTING_CONTRACT, _invariant_checks(checks))
    lockstep = Lockstep(run, operations, data["mode"], data["mmu"], pml=data.get("pml", False))
    try:
        for name, args in data["steps"]:
            if name not in operations.OPERATIONS or not lockstep.applies(name):
                return CHANGES
            lockstep.do(name, dict(args))      # runs every invariant on the step
    except StepFailed as failure:
        return KEEPS if failure.violation.check == finding.check else CHANGES
    except EnvironmentMiss:       # the steps do not run on that (translated) state
        return CHANGES
    return FIXES
