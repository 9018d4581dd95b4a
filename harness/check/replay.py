"""Replay tokens: one counterexample as a string, and running it again.

A finding's ``replay`` token holds what it needs to run again: the kind
(function case or operation steps), the case or steps, both sides' version
sets (by blobs, or a translated state by name) and the contract (a written
one by name, a message's by its rules).  ``replay`` re-runs it through the
engine and prints both logs and their difference.
"""

from __future__ import annotations

import base64
import json
import zlib

from harness.check import checks as K
from harness.check import contracts as C
from harness.check import drivers as D
from harness.errors import KconformError
from kernel_models import registry
from kernel_models.registry import VersionSet



def _versions_json(versions: VersionSet) -> dict:
    if getattr(versions, "translated", False):     # rebuilt from the inputs, found by name
        return {"name": versions.name, "translated": True, "blobs": {}}
    return {"name": versions.name, "blobs": dict(versions.blobs)}


def _versions_from(data: dict) -> VersionSet:
    if data.get("translated"):
        from kernel_models.model_source import state_named

        state = state_named(data["name"])
        if state is None:
            raise KconformError(f"replay token names the translated tree state "
                                f"'{data['name']}', which this run has not built",
                                hint="give the patch files that were checked, in order, after "
                                     "the token, with the --kernel-tree and --rev of the check")
        return state
    for file, blob in data["blobs"].items():
        if blob not in registry.known_blobs(file):
            hint = ("this model was derived from a patch: give the patch files that were "
                    "checked, in order, after the token (and --kernel-tree PATH if the check "
                    "used one)" if blob.startswith(registry.DERIVED_PREFIXES) else
                    "register the mutant models first (import tests.mutants.models)")
            raise KconformError(f"replay token names {file}@{blob}, which is not registered",
                                hint=hint)
    return VersionSet.of(data["name"], data["blobs"])


def replay_needs_inputs(token: str) -> bool:
    """Does the token name a model derived from a patch (not in the registry's tables)?"""
    try:
        data = decode_replay(token)
    except KconformError:
        return False
    return any(data[side].get("translated") for side in ("before", "after")) or any(
        str(blob).startswith(registry.DERIVED_PREFIXES)
        for side in ("before", "after") for blob in data[side]["blobs"].values())


def encode_replay(data: dict) -> str:
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def decode_replay(token: str) -> dict:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(zlib.decompress(base64.urlsafe_b64decode(padded.encode())))
    except Exception as exc:
        raise KconformError(f"not a kconform replay token: {token[:40]!r}",
                            hint="copy the token from a finding's 'replay:' or "
                                 "'Reproduce with:' line") from exc
    if not isinstance(data, dict) or data.get("kind") not in ("function", "operation"):
        raise KconformError("replay token has no kind", hint="copy the whole token")
    return data


def _contract_json(contract: C.Contract) -> dict:
    """A contract as a replay token holds it: a written one by name, a message's by its rules."""
    if contract.source == C.WRITTEN and not contract.name.startswith("series: "):
        return {"contract": contract.name}
    return {"contract": contract.name, "strict": contract.strict,
            "rules": [[r.channel, list(r.operations), r.relation] for r in contract.rules]}


def _contract_named(data: dict) -> C.Contract:
    name = data.get("contract", "")
    for contract in C.WRITTEN_CONTRACTS.values():
        if contract.name == name:
            return contract
    if "rules" not in data:
        return C.Contract(name=name, source=C.MESSAGE,
                          intent="(contract not recoverable from the token: every channel "
                                 "compared as equal)")
    rules = tuple(C.Rule(channel, tuple(operations), relation, "from the replay token")
                  for channel, operations, relation in data["rules"])
    return C.Contract(name=name, source=C.MESSAGE, intent="(the rules the token holds)",
                      rules=rules, strict=bool(data.get("strict")))


def _replayed(v) -> str:
    """A violation as replay prints it: an inherited one as the check judged it, WARN."""
    if v.inherited:
        return (f"WARN {v.check} [{v.channel}]: {v.summary} (inherited: the before side "
                f"fails it too)")
    if v.fixed:
        return (f"NOTE {v.check} [{v.channel}]: {v.summary} (fixed: the after side holds it)")
    return f"{v.severity} {v.check} [{v.channel}]: {v.summary}"


def replay(token: str) -> str:
    """Re-run one counterexample; return the readable text of both logs and the difference."""
    from harness.check import engine      # it runs the cases and steps the engine runs

    data = decode_replay(token)
    before = _versions_from(data["before"])
    after = _versions_from(data["after"])
    contract = _contract_named(data)
    lines = [f"replay {data['kind']} check: '{before.name}' vs '{after.name}', "
             f"contract {contract.name}"]
    if data["kind"] == "function":
        case = data["case"]
        function = data["function"]
        if function not in D.DRIVERS:
            raise KconformError(f"no driver for {function}")
        step, _, _ = engine._function_step(function, before, after, contract, case)
        lines.append(D.DRIVERS[function].describe(case) + f"  [mode {case['mode']}]")
        steps = [step]
    else:
        operations = engine._operations_module()
        if operations is None:
            raise KconformError("this build has no operations model to replay with")
        pml = data.get("pml", False)
        lines.append(f"PML {'on' if pml else 'off'} (mode {data['mode']}, mmu {data['mmu']})")
        vms = (operations.new_vm(before, data["mode"], data["mmu"], pml=pml),
               operations.new_vm(after, data["mode"], data["mmu"], pml=pml))
        memory = ({}, {})
        steps = []
        compare = True
        for name, args in data["steps"]:
            marks = [vm.log.mark() for vm in vms]
            for vm in vms:
                operations.OPERATIONS[name].function(vm, **args)
            step = K.Step("operation", name, K.Side("before", vms[0], marks[0], memory[0]),
                          K.Side("after", vms[1], marks[1], memory[1]), contract,
                          compare=compare)
            steps.append(step)
            lines.append(f"step {len(steps)}: {engine._describe_step(name, args)}")
            for check in K.CHECKS.values():
                if "operation" in check.levels:
                    for v in check.function(step):
                        lines.append(f"  {_replayed(v)}")
            compare = compare and engine._state(vms[0]) == engine._state(vms[1])
    final = steps[-1]
    for side, extra in ((final.before, final.extra_before), (final.after, final.extra_after)):
        lines.append(f"{side.name} ({side.vm.versions.name}):")
        events = list(side.events) + list(extra)
        lines += [f"  {e.describe()}" for e in events] or ["  (no events)"]
    if data["kind"] == "function":
        for check in K.CHECKS.values():
            if "function" in check.levels:
                for v in check.function(final):
                    lines.append(_replayed(v))
                    lines += [f"  missing: {m}" for m in v.missing]
                    lines += [f"  extra:   {x}" for x in v.extra]
    diff = K.difference(list(final.before.events) + list(final.extra_before),
                        list(final.after.events) + list(final.extra_after))
    for channel, d in diff.items():
        lines += [f"difference {channel} missing: {m}" for m in d["missing"]]
        lines += [f"difference {channel} extra:   {x}" for x in d["extra"]]
    return "\n".join(lines)
