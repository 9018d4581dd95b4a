"""Audit the models against a kernel tree: does each model translate-equal its C?

``kconform audit --kernel-tree PATH`` reads every modelled file at the blobs
the series' states name (those the tree holds), or with ``--rev REV`` at
``REV:<file>`` against one state's models, translates each modelled function
whole (``derive.translate_function``) and compares it with the hand-written
model statement by statement, both sides first rewritten by the equivalence
rules of ``audit_rules`` (a ``bool`` function's return value converted,
``vcpu->kvm`` as the model's ``kvm``...).  Each function is ``equal``,
``simplified`` (differs by exactly the lines a listed modelling simplification
names, ``kernel_models.simplifications``, whose reason is shown), ``differs``
(with the differing lines), ``untranslated`` (the construct outside the subset,
named) or ``absent`` (no definition found).  With ``--rev`` each file says
whether its blob there is the one the models mirror.

This is a reviewer's aid for "models read like the C they mirror": it cannot
prove a model right (a translation uses the models' own callees), but a
``differs`` line shows exactly where a model and the C part.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass

from harness.translate import audit_rules, derive
from harness.resolve.kernel_tree import KernelTree
from harness.translate.c_source import find_function
from kernel_models import registry, simplifications
from kernel_models.registry import SERIES_STATES, VersionSet

EQUAL, DIFFERS, UNTRANSLATED, ABSENT = "equal", "differs", "untranslated", "absent"
SIMPLIFIED = "simplified"   # differs exactly as a listed modelling simplification says
OUTCOMES = (EQUAL, DIFFERS, UNTRANSLATED, ABSENT, SIMPLIFIED)


@dataclass(frozen=True)
class FunctionAudit:
    file: str
    where: str              # the blob or rev:path read
    state: str
    function: str
    model: str
    outcome: str
    detail: str = ""
    blobs: str = ""          # with --rev: the file's blob there and the one the models mirror


def audit_text(file: str, text: str, where: str, state: VersionSet, blobs: str = "",
               ) -> list[FunctionAudit]:
    """Every function modelled for ``file`` in ``state``, against the C in ``text``."""
    rows = []
    for name in sorted(registry.functions_in_file(file)):
        version = registry.lookup(file, name, state.blob(file))
        if version is None:
            continue

        def row(outcome: str, detail: str = "") -> FunctionAudit:
            return FunctionAudit(file, where, state.name, name, version.model_id, outcome,
                                 detail, blobs)

        source = find_function(text, name)
        if source is None:
            rows.append(row(ABSENT, "no definition of this name (a macro, or defined "
                                    "in another file)"))
            continue
        try:
            fn = derive.translate_function(file, source, state, f"audit of {where}")
        except derive.Miss as exc:
            rows.append(row(UNTRANSLATED, str(exc)))
            continue
        model_lines, c_lines = compared_lines(fn, version, audit_rules.returns_bool(source))
        if model_lines == c_lines:
            rows.append(row(EQUAL))
            continue
        diff = difflib.unified_diff(model_lines, c_lines, lineterm="", n=0)
        lines = [line for line in list(diff)[2:] if not line.startswith("@@")]
        shown = f"- model / + C (lines {source.lines}), as Python:\n" + "\n".join(lines)
        listed = simplifications.find(file, name)
        if listed is not None and listed.accounts_for(lines):
            rows.append(row(SIMPLIFIED, f"{listed.reason}\n{shown}"))
            continue
        if listed is not None:
            shown += ("\n(the listed simplification of this function does not account for "
                      "these lines)")
        rows.append(row(DIFFERS, shown))
    return rows


def compared_lines(fn, version, bool_function: bool) -> tuple[list[str], list[str]]:
    """The model's and the translation's statements, the equivalence rules applied
    (``audit_rules``), as the normalised Python lines the audit compares."""
    model, translated = derive.bodies(fn, version)
    params = set(inspect.signature(version.function).parameters)
    return tuple(derive.normalised_lines(audit_rules.rewrite(body, params, bool_function))
                 for body in (model, translated))


def audit_tree(tree: KernelTree, rev: str | None = None, state_name: str = "base",
               ) -> list[FunctionAudit]:
    """The audit of every modelled file: at the states' blobs, or at ``rev``."""
    rows: list[FunctionAudit] = []
    if rev is not None:
        state = VersionSet.series_state(state_name)
        for file in registry.BLOB_CHAINS:
            text = tree.text_at(rev, file)
            if text is not None:
                rows += audit_text(file, text, f"{rev}:{file}", state,
                                   blob_note(tree.blob_at(rev, file), state.blob(file)))
        return rows
    seen = set()
    for name, blobs in SERIES_STATES.items():
        state = VersionSet.series_state(name)
        for file, blob in blobs.items():
            if (file, blob) in seen:
                continue
            seen.add((file, blob))
            text = tree.text(blob)
            if text is not None:
                rows += audit_text(file, text, f"{file.rsplit('/', 1)[-1]}@{blob}", state)
    return rows


def blob_note(blob: str | None, modelled: str) -> str:
    """Whether the models claim to hold at this blob: where they do not, a ``differs`` may
    be the kernel's change since (or before) the blob they mirror, not a model fault."""
    if modelled == registry.UNCHANGED:
        return f"blob {(blob or '?')[:12]}; the models mirror the series' unchanged copy"
    if blob is not None and registry.blob_matches(modelled, blob[:12]):
        return f"blob {blob[:12]}, the one the models mirror"
    return (f"blob {(blob or '?')[:12]}; the models mirror {modelled}, so a difference may be "
            f"the kernel's change")


def summary(rows: list[FunctionAudit], verbose: bool = False) -> str:
    lines = []
    for where in dict.fromkeys(r.where for r in rows):
        mine = [r for r in rows if r.where == where]
        counts = {o: sum(r.outcome == o for r in mine) for o in OUTCOMES}
        lines.append(f"{where} (models of '{mine[0].state}'): "
                     + ", ".join(f"{n} {o}" for o, n in counts.items())
                     + (f" [{mine[0].blobs}]" if mine[0].blobs else ""))
        for r in mine:
            if r.outcome in (EQUAL, ABSENT) and not verbose:
                continue
            first = r.detail.split("\n", 1)[0] if r.outcome not in (DIFFERS, SIMPLIFIED) else ""
            first = first.removeprefix(f"{r.function}: ")
            lines.append(f"  {r.outcome:<12} {r.function} ({r.model})"
                         + (f": {first}" if first else ""))
            if r.outcome in (DIFFERS, SIMPLIFIED):
                lines += [f"      {d}" for d in r.detail.split("\n")]
    if not rows:
        lines.append("the tree holds none of the modelled blobs (try --rev REV to compare a "
                     "revision's files with one state's models)")
    return "\n".join(lines)
