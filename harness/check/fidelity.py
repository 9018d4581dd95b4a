"""Fidelity: does a translated function behave as its hand-written model?

For every function with a driver (``harness.check.drivers``) that a tree
state translates, both versions run every case of the exhaustive domain in
every SPTE mode, each on a fresh VM, and their effect logs are compared
event by event (the event's payload; a WARN's message text is left out,
since the translation names the C line and the model a phrase).  A
disagreement is a bug in one of them: the C decides which.

A driver with its own VM builder (``make_vm``: a shadow-MMU VM reached through
the fault path) has its VM built by the models; only the call runs the
translation.

Outcomes: ``equal`` (every case agrees), ``differs`` (the first case that
does not, with both logs), ``not run`` (the translated side stopped: a name
the environment lacks, or a calling convention the driver assumes of the
hand-written model), ``untranslated`` (the function did not translate),
``no driver`` (modelled and translated, but its inputs are state the domain
does not draw; the detail says which, and only operation-level runs call it).

Functions without a hand-made driver get one drawn from their parameters
(``harness.check.drawn``: SPTE values, pointers, pages, faults, pfns) where
that is possible.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.check import drawn as draw
from harness.check import drivers

EQUAL, DIFFERS, NOT_RUN, UNTRANSLATED = "equal", "differs", "not run", "untranslated"
NO_DRIVER = "no driver"


@dataclass(frozen=True)
class Fidelity:
    function: str
    file: str
    outcome: str
    cases: int = 0
    detail: str = ""


def _log(driver, versions, mode: str, case: dict, setup=None):
    """The effects of one driver case; with ``setup``, the VM is built by that version
    set (the models) and only the call runs ``versions``."""
    from harness.translate.environment import KernelStop
    vm = driver.new_vm(setup or versions, mode)
    if setup is not None:
        _switch(vm, versions)
    mark = vm.log.mark()
    try:
        returned = driver.call(vm, case)
    except KernelStop:          # BUG(): the kernel stops; what it did so far is the result
        returned = []
    events = vm.log.since(mark) + list(returned)
    return tuple((type(e).__name__, tuple((k, v) for k, v in e.payload().items() if k != "what"))
                 for e in events)


def _switch(vm, versions) -> None:
    """Run ``vm`` on another version set from now on (its state is kept)."""
    vm.use_versions(versions)


def _show(log) -> str:
    return "; ".join(f"{name}({', '.join(f'{k}={v:#x}' if isinstance(v, int) and not isinstance(v, bool) and v > 9 else f'{k}={v!r}' for k, v in payload)})"
                     for name, payload in log) or "(no effects)"


def compare_function(driver, translated, model, modes=drivers.MODES) -> Fidelity:
    """Run ``driver``'s whole domain on both version sets."""
    cases = 0
    for mode in modes:
        for case in driver.cases(mode):
            cases += 1
            expected = _log(driver, model, mode, case)
            try:
                got = _log(driver, translated, mode, case,
                           setup=model if driver.make_vm is not None else None)
            except Exception as exc:  # noqa: BLE001 - the translated side's stop is the finding
                return Fidelity(driver.function, driver.file, NOT_RUN, cases,
                                f"{driver.describe(case)} [{mode}]: {type(exc).__name__}: {exc}")
            if got != expected:
                return Fidelity(driver.function, driver.file, DIFFERS, cases,
                                f"{driver.describe(case)} [{mode}]\n"
                                f"  model:      {_show(expected)}\n"
                                f"  translated: {_show(got)}")
    return Fidelity(driver.function, driver.file, EQUAL, cases)


def _c_name(name: str) -> str:
    """paging_tmpl.h: FNAME(x) runs the instantiation of the VM's guest mode; its EPT one
    stands for all three in the tree state's table."""
    return name.replace("FNAME(", "ept_").rstrip(")") if name.startswith("FNAME(") else name


def compare_state(state, model, only: tuple[str, ...] = (), drawn: bool = True,
                  ) -> list[Fidelity]:
    """Every driven function of ``model`` (a VersionSet) against ``state`` (a TreeState);
    with ``drawn``, every other modelled function that translates too, on inputs drawn
    from its parameters (``harness.check.drawn``) where they can be."""
    translated = state.version_set()
    rows = []
    for name, driver in sorted(drivers.DRIVERS.items()):
        if only and name not in only:
            continue
        if name not in model.functions():
            continue
        translation = state.functions.get(_c_name(name))
        if translation is None or not translation.translated:
            rows.append(Fidelity(name, driver.file, UNTRANSLATED, 0,
                                 translation.miss if translation else "not defined in the tree"))
            continue
        rows.append(compare_function(driver, translated, model))
    if not only or drawn:
        helpers = model.helpers()
        for name, function in sorted(model.functions().items()):
            if name in drivers.DRIVERS or name in helpers or (only and name not in only):
                continue
            translation = state.functions.get(_c_name(name))
            if translation is None or not translation.translated:
                continue
            found = draw.driver_for(name, translation.file, function) if drawn else \
                "not drawn in this run"
            if isinstance(found, str):
                rows.append(Fidelity(name, translation.file, NO_DRIVER, 0, found))
                continue
            rows.append(compare_function(found, translated, model))
    return rows


# ---------------------------------------------------------------------------
# Operation level: the gate's operation mix on both sources
# ---------------------------------------------------------------------------

# One call of every operation (after a writable fault of gfn 0, so there is something
# to act on), besides the kept sequences: together they are the gate's explicit mix.
OPERATION_EXAMPLES: dict[str, dict] = {
    "fault": {"gfn": 1, "write": False, "exec": True, "prefetch": False},
    "fast_fault": {"gfn": 0, "write": True},
    "async_pf_ready": {"gfn": 0},
    "guest_access": {"gfn": 0, "write": True},
    "nested_access": {"index": 0, "write": True},
    "unmap": {"start": 0, "end": 16},
    "change_pte": {"gfn": 0, "writable": False},
    "clear_flush_young": {"start": 0, "end": 16},
    "clear_young": {"start": 0, "end": 16},
    "test_young": {"start": 0, "end": 16},
    "zap_all": {},
    "memslot_delete": {},
    "dirty_log_enable": {},
    "dirty_log_clear": {"gfn": 0, "mask": 1},
    "dirty_log_disable": {},
    "split_huge": {"gfn": 0},
    "collapse": {"gfn": 0},
    "zap_gfn_range": {"start": 0, "end": 512},
    "shadow_prefetch": {"index": 0, "gfn": 0, "writable": True, "dirty": True, "accessed": True},
    "shadow_sync": {"index": 0, "gfn": 0, "writable": False, "dirty": False, "accessed": True},
}
PROLOGUE = (("fault", {"gfn": 0, "write": True, "exec": False, "prefetch": False}),)


def operation_mix() -> list[tuple[str, tuple]]:
    """(name, steps) of the explicit mix: the kept sequences, then each operation once."""
    from harness.check.sequences import KEPT_SEQUENCES
    mix = [(name, tuple(steps)) for name, steps in KEPT_SEQUENCES]
    mix += [(f"fault, then {name}", PROLOGUE + ((name, args),))
            for name, args in OPERATION_EXAMPLES.items()]
    return mix


@dataclass(frozen=True)
class OperationFidelity:
    sequence: str
    mode: str
    mmu: str
    outcome: str                       # EQUAL, DIFFERS, NOT_RUN, or "skipped"
    channels: tuple[str, ...] = ()     # channels the first differing step differs on
    detail: str = ""


SKIPPED = "skipped"


def _events(log, mark) -> tuple:
    return tuple((e.channel, type(e).__name__,
                  tuple((k, v) for k, v in e.payload().items() if k != "what"))
                 for e in log.since(mark))


def _drive(vm, operations, steps) -> list[tuple]:
    """Each step's events (channel, event, payload); a stop ends the list with its error."""
    from harness.translate.environment import KernelStop
    logs = []
    for name, args in steps:
        mark = vm.log.mark()
        try:
            operations.run(vm, name, **args)
        except KernelStop:
            pass
        logs.append(_events(vm.log, mark))
    return logs


def compare_sequence(translated, model, name: str, steps, mode: str, mmu: str,
                     pml: bool = False) -> OperationFidelity:
    """Run ``steps`` on a VM of each source; compare every step's effects per channel."""
    from kernel_models import entry_points, operations
    release = getattr(translated, "release", None)
    lacking = entry_points.skipped(release) if release else {}
    missing = [op for op, _ in steps if op in lacking]
    if missing:
        return OperationFidelity(name, mode + pml * "+pml", mmu, SKIPPED, (), lacking[missing[0]])
    mode_name = mode + pml * "+pml"
    expected = _drive(operations.new_vm(model, mode, mmu, pml=pml), operations, steps)
    try:
        got = _drive(operations.new_vm(translated, mode, mmu, pml=pml), operations, steps)
    except Exception as exc:  # noqa: BLE001 - the translated side's stop is the finding
        return OperationFidelity(name, mode_name, mmu, NOT_RUN, (), f"{type(exc).__name__}: {exc}")
    for (step, args), want, have in zip(steps, expected, got):
        if want != have:
            channels = tuple(sorted({e[0] for e in set(want) ^ set(have)} or
                                    {e[0] for e in want + have}))
            return OperationFidelity(
                name, mode_name, mmu, DIFFERS, channels,
                f"step {step}({args}):\n  model:      {_show([e[1:] for e in want])}\n"
                f"  translated: {_show([e[1:] for e in have])}")
    return OperationFidelity(name, mode_name, mmu, EQUAL)


def compare_operations(translated, model, modes=None, mmus=None) -> list[OperationFidelity]:
    """The explicit operation mix in every mode and MMU where each sequence applies
    (with PML too where the mode has it), as the engine's kept sequences run."""
    from kernel_models import operations
    rows = []
    for name, steps in operation_mix():
        for mode in modes or operations.MODES:
            for mmu in mmus or operations.MMUS:
                if not all(operations.OPERATIONS[op].applies_to(mmu, mode) for op, _ in steps):
                    continue
                for pml in (False, True) if operations.pml_supported(mode) else (False,):
                    rows.append(compare_sequence(translated, model, name, steps, mode, mmu, pml))
    return rows
