"""What reaches what: the call graph of the models, read from their source.

The engine checks a changed C function at function level together with the
driven functions that reach it (``affected_functions``), and a contract read
from a commit message applies its claims where the sentence says or else where
the diff is: the changed functions and the operations and driven functions
that reach them (``where_for``).  Both read the same graph: which model names
a model function's body calls, looking through the module-level helpers it
uses (an operation's helpers in ``kernel_models.operations`` included).
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap

from harness.check import contracts as C
from harness.check import drivers as D
from kernel_models.registry import VersionSet

@functools.lru_cache(maxsize=None)
def called_words(function) -> frozenset[str]:
    """Every name ``function``'s code uses (called, or passed as a handler, also by
    its name as a string argument), and the names used by the module helpers it
    calls; paging_tmpl.h's models call each other as ``FNAME(kvm, "name")``, read
    as the model ``FNAME(name)``.

    Code only, read with ``ast``: docstrings and comments, which name C
    functions freely, are not uses.  A function of the same module named
    directly (not through ``kvm.``) is a helper or a shared body
    (``age_gfn_range_body``) and is read too; so are the operations' helpers.
    """
    words: set[str] = set()
    todo, seen = [function], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(current)))
        except (OSError, TypeError, SyntaxError):
            continue
        module = inspect.getmodule(current)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                word = node.id
            elif isinstance(node, ast.Attribute):
                words.add(node.attr)     # kvm.name(...): a model, dispatched by version
                continue
            else:
                continue
            words.add(word)
            helper = getattr(module, word, None)
            if inspect.isfunction(helper) and helper is not current and \
                    inspect.getmodule(helper) is module:
                todo.append(helper)      # a helper of the same module, or a shared body
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            texts = [a.value for a in node.args
                     if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if isinstance(node.func, ast.Name) and node.func.id == "FNAME":
                words.update(f"FNAME({text})" for text in texts)
            else:
                words.update(texts)          # a handler passed by name: "kvm_zap_rmap"
    return frozenset(words)


def calls(function, names) -> set[str]:
    """The model names (of ``names``) that ``function`` calls."""
    return set(called_words(function)) & set(names)


def reaches(start: str, targets: set[str], rows: dict) -> bool:
    """Does model ``start`` call one of ``targets``, directly or through callees?"""
    names = set(rows)
    todo, done = [start], set()
    while todo:
        name = todo.pop()
        if name in targets:
            return True
        if name in done or name not in rows:
            continue
        done.add(name)
        todo.extend(calls(rows[name], names))
    return False


def changed_functions(before: VersionSet, after: VersionSet) -> tuple[str, ...]:
    """C functions whose modelled body differs between two version sets (or exists in one)."""
    rows_before, rows_after = before.rows(), after.rows()
    names = sorted(set(rows_before) | set(rows_after))
    return tuple(n for n in names
                 if (rows_before.get(n) and rows_before[n].function)
                 is not (rows_after.get(n) and rows_after[n].function))


def affected_functions(version_sets, changed) -> tuple[str, ...]:
    """Functions with a driver that reach a changed function (directly or through callees)."""
    affected = []
    for function in D.DRIVERS:
        for versions in version_sets:
            rows = versions.functions()
            if reaches(function, set(changed), rows):
                affected.append(function)
                break
    return tuple(affected)


def operations_reaching(version_sets, function: str) -> tuple[str, ...]:
    """The operations (``kernel_models.operations``) whose steps run ``function``."""
    try:
        from kernel_models import operations
    except ModuleNotFoundError:
        return ()
    found = []
    for name, operation in operations.OPERATIONS.items():
        words = called_words(operation.function)
        for versions in version_sets:
            rows = versions.functions()
            if function in words or any(reaches(w, {function}, rows)
                                        for w in words if w in rows):
                found.append(name)
                break
    return tuple(found)


def where_for(version_sets, changed) -> C.Where:
    """The contract's "where the diff is": ``changed`` and what reaches each function."""
    version_sets = tuple(v for v in version_sets if v is not None)

    @functools.lru_cache(maxsize=None)
    def reach(function: str) -> tuple[str, ...]:
        if not any(function in v.functions() for v in version_sets):
            return ()
        return (tuple(f for f in affected_functions(version_sets, (function,)) if f != function)
                + operations_reaching(version_sets, function))

    return C.Where(tuple(changed), reach)
