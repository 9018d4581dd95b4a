"""Did the checks run the code a patch changed?  (translated tree states)

A check that never executes a patch's new code compares two versions that
behave the same on every path it took: a PASS from it says nothing about the
change.  So, with a kernel tree, the engine watches the translated functions
the patch changes while it checks them, and a function whose changed code no
check ran does not cover its hunks (``harness.pipeline.hunk_rows``): the patch
cannot PASS on it.

The changed code of a function is read from its two translations: the lines
of the Python each side runs that the other side does not have (temporaries'
numbers aside, which shift when a line is added above them), split into
*pieces* - runs of consecutive changed lines at one indentation, so a new
``if``'s body is a piece of its own, apart from its condition.  A piece is
exercised when its first statement ran on its side (removed code on the before
side, added code on the after side) in any check of the transition.  Lines
with no bytecode (``else:``) are not counted.

For the length of the checks, the function objects that run a changed
function's code run a copy with a probe before each piece's first statement
(``Watch``); every other function runs untouched, so watching costs next to
nothing.
"""

from __future__ import annotations

import ast
import difflib
import gc
import re
import types
from dataclasses import dataclass

_TEMP = re.compile(r"\b(_[a-z]+)\d+\b")


@dataclass(frozen=True)
class Piece:
    """A run of changed lines of one side of one function."""

    function: str
    side: str                      # "before" | "after"
    code: object                   # the code object whose frames run it
    lines: frozenset[int]          # its executable line numbers in that code
    text: str                      # its first line, for the reason

    def describe(self) -> str:
        what = "removed" if self.side == "before" else "new"
        more = f" and {len(self.lines) - 1} more line(s)" if len(self.lines) > 1 else ""
        return f"its {what} code `{self.text}`{more} ({self.side})"


def _function_code(module_code, name: str):
    for const in module_code.co_consts:
        if hasattr(const, "co_name") and const.co_name == name:
            return const
    return None


def _executable(code) -> set[int]:
    lines = {line for _start, _end, line in code.co_lines() if line is not None}
    for const in code.co_consts:
        if hasattr(const, "co_lines"):
            lines |= _executable(const)
    return lines


def _side(state, name: str):
    """(Python lines, code object) of ``name``'s translation in a TranslatedState, or None."""
    from harness.translate.emit import py_name
    from harness.translate.tree import compiled

    translation = state.state.functions.get(name)
    if translation is None or translation.python is None:
        return None
    code = _function_code(compiled(name, translation.python), py_name(name))
    if code is None:
        return None
    return translation.python.splitlines(), code


def _pieces(function, side, lines, changed, code) -> list[Piece]:
    """Changed line indexes (0-based, sorted) -> pieces at one indentation each."""
    executable = _executable(code)
    pieces, run, indent, last = [], [], None, None
    for index in changed + [None]:
        depth = None if index is None else len(lines[index]) - len(lines[index].lstrip())
        if run and (index is None or index != last + 1 or depth != indent):
            numbers = frozenset(i + 1 for i in run) & executable
            if numbers:
                first = lines[min(numbers) - 1].strip().replace("(_vm, ", "(").replace(
                    "(_vm)", "()")
                pieces.append(Piece(function, side, code, numbers, first[:100]))
            run = []
        if index is not None:
            run.append(index)
            indent, last = depth, index
    return pieces


def changed_pieces(before, after) -> tuple[list[Piece], dict]:
    """The pieces of every translated function whose Python differs between two
    translated states (a function on one side only: all of it), and each changed
    code object's Python text (for ``Watch``)."""
    names = set(before.state.functions) | set(after.state.functions)
    pieces: list[Piece] = []
    sources: dict = {}
    for name in sorted(names):
        old, new = _side(before, name), _side(after, name)
        if old is None and new is None:
            continue
        if old is not None and new is not None and old[1] is new[1]:
            continue                       # the same translation: the same code object
        a = [_TEMP.sub(r"\1", line) for line in old[0]] if old else []
        b = [_TEMP.sub(r"\1", line) for line in new[0]] if new else []
        removed, added = [], []
        matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag != "equal":
                removed += range(i1, i2)
                added += range(j1, j2)
        # the ``def`` line is not a statement: a body's lines are what runs
        for side, found, lines in (("before", old, removed), ("after", new, added)):
            if found is not None:
                pieces += _pieces(name, side, found[0], [i for i in lines if i], found[1])
                sources[found[1]] = "\n".join(found[0]) + "\n"
    return pieces, sources


def is_translated(state) -> bool:
    return getattr(state, "translated", False) and hasattr(state, "state")


PROBE = "_kconform_reached"
FNAME_PREFIXES = ("ept_", "paging64_", "paging32_")


class _Probes(ast.NodeTransformer):
    """Put ``_kconform_reached(k)`` before the statement that starts at each wanted line
    (at the head of the handler's body for an ``except`` line): an ``elif``'s probe lands
    in the ``else`` it stands for, so it runs exactly when that condition is evaluated."""

    def __init__(self, wanted: dict[int, int]):
        self.wanted = dict(wanted)

    def _probe(self, key: int, where):
        call = ast.Call(ast.Name(PROBE, ast.Load()), [ast.Constant(key)], [])
        return ast.copy_location(ast.Expr(call), where)

    def generic_visit(self, node):
        super().generic_visit(node)
        if isinstance(node, ast.ExceptHandler) and node.lineno in self.wanted:
            node.body.insert(0, self._probe(self.wanted.pop(node.lineno), node))
        for name in ("body", "orelse", "finalbody"):
            statements = getattr(node, name, None)
            if not isinstance(statements, list) or not statements or \
                    not isinstance(statements[0], ast.stmt):
                continue
            probed = []
            for statement in statements:
                if statement.lineno in self.wanted:
                    probed.append(self._probe(self.wanted.pop(statement.lineno), statement))
                probed.append(statement)
            setattr(node, name, probed)
        return node


def _statement_lines(tree) -> set[int]:
    return {node.lineno for node in ast.walk(tree)
            if isinstance(node, (ast.stmt, ast.ExceptHandler))}


def probed_code(code, python: str, pieces: list[tuple[int, Piece]]):
    """``code`` (a translated function) recompiled with a probe at each piece's first
    statement; the pieces with no statement of their own are returned apart."""
    tree = ast.parse(python)
    starts = _statement_lines(tree)
    wanted, unprobed = {}, []
    for key, piece in pieces:
        lines = sorted(piece.lines & starts)
        if lines:
            wanted.setdefault(lines[0], key)
        else:
            unprobed.append(key)
    module = compile(ast.fix_missing_locations(_Probes(wanted).visit(tree)),
                     code.co_filename, "exec")
    return _function_code(module, code.co_name), {k: line for line, k in wanted.items()}, \
        unprobed


class Watch:
    """``with Watch(pieces) as watch:`` records which pieces run; ``unexercised()`` after.

    For the length of the block, every function object running a watched code
    object runs a copy of it with probes (its ``__code__`` swapped, then put back),
    so nothing else is slowed down."""

    def __init__(self, pieces: list[Piece], sources: dict | None = None):
        self.pieces = pieces
        self.sources = sources or {}        # code object -> its module's Python text
        self.seen: set[int] = set()
        self.swapped: list[tuple] = []

    def reached(self, key: int) -> None:
        self.seen.add(key)

    def __enter__(self):
        by_code: dict[object, list] = {}
        for key, piece in enumerate(self.pieces):
            by_code.setdefault(piece.code, []).append((key, piece))
        for code, pieces in by_code.items():
            probed, _lines, unprobed = probed_code(code, self.sources[code], pieces)
            self.seen.update(unprobed)       # no statement starts there: cannot tell, not claimed
            for function in gc.get_referrers(code):
                if isinstance(function, types.FunctionType) and function.__code__ is code:
                    function.__globals__[PROBE] = self.reached
                    function.__code__ = probed
                    self.swapped.append((function, code))
        return self

    def __exit__(self, *exc):
        for function, code in self.swapped:
            function.__code__ = code
        self.swapped = []
        return False

    def unexercised(self) -> tuple[tuple[str, str], ...]:
        """(function, why) for each function with a piece that never ran."""
        found: dict[str, list[str]] = {}
        for key, piece in enumerate(self.pieces):
            if key not in self.seen:
                found.setdefault(piece.function, []).append(piece.describe())
        # paging_tmpl.h's FNAME(x), as hunks name it: no instance of it fully exercised
        instances: dict[str, set[str]] = {}
        for piece in self.pieces:
            prefix = next((p for p in FNAME_PREFIXES if piece.function.startswith(p)), None)
            if prefix:
                instances.setdefault(f"FNAME({piece.function[len(prefix):]})", set()).add(
                    piece.function)
        for generic, names in instances.items():
            if names <= set(found):
                found[generic] = [f"{name}: {'; '.join(found[name])}" for name in sorted(names)]
        return tuple((name, "; ".join(whys)) for name, whys in sorted(found.items()))
