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

import functools
import inspect
import re

from harness.check import contracts as C
from harness.check import drivers as D
from kernel_models.registry import VersionSet

_CALL = re.compile(r"\b(\w+)\(")


@functools.lru_cache(maxsize=None)
def called_words(function, follow_public: bool = False) -> frozenset[str]:
    """Every ``name(`` in ``function``'s source and in the module helpers it calls.

    Helpers are the module's ``_private`` functions (and, with
    ``follow_public``, any function of the module: the operations' helpers).
    """
    words: set[str] = set()
    todo, seen = [function], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            source = inspect.getsource(current)
        except (OSError, TypeError):
            continue
        module = inspect.getmodule(current)
        for word in _CALL.findall(source):
            words.add(word)
            helper = getattr(module, word, None)
            if inspect.isfunction(helper) and helper is not current and \
                    (word.startswith("_") or follow_public) and \
                    inspect.getmodule(helper) is module:
                todo.append(helper)
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
        words = called_words(operation.function, follow_public=True)
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
