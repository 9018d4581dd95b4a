"""Did the checks run the code a patch changed?  (translated tree states)

A check that never executes a patch's new code compares two versions that
behave the same on every path it took: a PASS from it says nothing about the
change.  So, with a kernel tree, the engine watches the translated functions a
patch changes while it checks them, and a function whose changed code no check
ran does not cover its hunks (``harness.pipeline.hunk_rows``): the patch cannot
PASS on it.  (Hand-written and derived models are not watched: the memo replays
their kept runs, which a watch cannot see.)

The changed code of a function is read from its two models: the statements
each side runs that the other side does not have (temporaries' numbers aside,
which shift when a line is added above them; a compound statement counts by
its header), split into *pieces* - runs of consecutive changed statements at
one depth, so a new ``if``'s body is a piece of its own, apart from its
condition.  A piece is exercised when its first statement ran on its side
(removed code on the before side, added code on the after side) in any check
of the transition.

For the length of the checks, the function objects that run a changed
function's code run a copy with a probe before each piece's first statement
(``Watch``); every other function runs untouched, so watching costs next to
nothing.  A side whose code cannot be swapped is not watched, and its pieces
are claimed neither way.
"""

from __future__ import annotations

import ast
import copy
import difflib
import gc
import re
import types
from dataclasses import dataclass

_TEMP = re.compile(r"\b(_[a-z]+)\d+\b")
PROBE = "_kconform_reached"
FNAME_PREFIXES = ("ept_", "paging64_", "paging32_")


@dataclass(frozen=True)
class Piece:
    """A run of changed statements of one side of one function."""

    function: str
    side: str                      # "before" | "after"
    code: object                   # the code object whose frames run it
    lines: frozenset[int]          # the lines its statements start on, in that code
    text: str                      # its first statement, for the reason

    def describe(self) -> str:
        what = "removed" if self.side == "before" else "new"
        more = f" and {len(self.lines) - 1} more line(s)" if len(self.lines) > 1 else ""
        return f"its {what} code `{self.text}`{more} ({self.side})"


@dataclass(frozen=True)
class Source:
    """What a function's code was compiled from: its ``def``, with the line numbers the
    code carries, so a probed copy compiles the same way."""

    tree: ast.FunctionDef
    functions: tuple = ()          # function objects known to run it (the collector may not
                                   # see them: objects made before ``gc.freeze``)


def _function_code(module_code, name: str):
    for const in module_code.co_consts:
        if hasattr(const, "co_name") and const.co_name == name:
            return const
    return None


def _translated_side(state, name: str):
    """(Source, code) of ``name``'s translation in a TranslatedState, or None."""
    from harness.translate.emit import py_name
    from harness.translate.tree import compiled

    translation = state.state.functions.get(name)
    if translation is None or translation.python is None:
        return None
    code = _function_code(compiled(name, translation.python), py_name(name))
    tree = next((node for node in ast.parse(translation.python).body
                 if isinstance(node, ast.FunctionDef) and node.name == py_name(name)), None)
    if code is None or tree is None:
        return None
    model = getattr(state.state, "model", None)
    return Source(tree, (model(name),) if model else ()), code


def _header(node) -> str:
    """One statement as a line: a compound statement by its header."""
    if isinstance(node, ast.If):
        return f"if {ast.unparse(node.test)}:"
    if isinstance(node, ast.While):
        return f"while {ast.unparse(node.test)}:"
    if isinstance(node, ast.For):
        return f"for {ast.unparse(node.target)} in {ast.unparse(node.iter)}:"
    if isinstance(node, ast.Try):
        return "try:"
    if isinstance(node, ast.ExceptHandler):
        return "except" + (f" {ast.unparse(node.type)}" if node.type else "") + \
            (f" as {node.name}" if node.name else "") + ":"
    return ast.unparse(node)


def _statements(tree: ast.FunctionDef) -> list[tuple[int, str, int]]:
    """The body's statements in order: (depth, text, line), ``elif`` kept as one."""
    out: list[tuple[int, str, int]] = []

    def walk(body, depth):
        for node in body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and \
                    isinstance(node.value.value, str):
                continue                                 # a docstring: not run as code
            out.append((depth, _header(node), node.lineno))
            for name in ("body", "handlers", "orelse", "finalbody"):
                walk(getattr(node, name, None) or [], depth + 1)

    walk(tree.body, 0)
    return out


def _pieces(function, side, statements, changed, code) -> list[Piece]:
    """Changed statement indexes (sorted) -> runs of consecutive ones at one depth."""
    pieces, run = [], []
    for index in changed + [None]:
        if run and (index is None or index != run[-1] + 1 or
                    statements[index][0] != statements[run[0]][0]):
            lines = frozenset(statements[i][2] for i in run)
            text = statements[run[0]][1].replace("(_vm, ", "(").replace("(_vm)", "()")
            pieces.append(Piece(function, side, code, lines, text[:100]))
            run = []
        if index is not None:
            run.append(index)
    return pieces


def _diff(function, old, new) -> list[Piece]:
    """The pieces of one function between its two sides ((Source, code) or None each)."""
    a = _statements(old[0].tree) if old else []
    b = _statements(new[0].tree) if new else []
    removed, added = [], []
    matcher = difflib.SequenceMatcher(None, [(d, _TEMP.sub(r"\1", t)) for d, t, _ in a],
                                      [(d, _TEMP.sub(r"\1", t)) for d, t, _ in b],
                                      autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            removed += range(i1, i2)
            added += range(j1, j2)
    pieces = []
    if old is not None:
        pieces += _pieces(function, "before", a, removed, old[1])
    if new is not None:
        pieces += _pieces(function, "after", b, added, new[1])
    return pieces


def changed_pieces(before, after) -> tuple[list[Piece], dict]:
    """The pieces of every function whose model differs between two states (a function
    on one side only: all of it), and each changed code object's Source (for ``Watch``).

    Translated states only: a translated state is always run (``harness.check.memo``
    keeps and replays runs of hand-written and derived models, which a watch would
    not see), so every translated function whose Python differs is watched.
    """
    pieces: list[Piece] = []
    sources: dict = {}
    if not (is_translated(before) and is_translated(after)):
        return [], {}
    old_functions, new_functions = before.state.functions, after.state.functions
    for name in sorted(set(old_functions) | set(new_functions)):
        if _python(old_functions, name) == _python(new_functions, name):
            continue                       # the same text: the same code object, unchanged
        old, new = _translated_side(before, name), _translated_side(after, name)
        if old is None and new is None:
            continue
        for side in (old, new):
            if side is not None:
                sources[side[1]] = side[0]
        pieces += _diff(name, old, new)
    return pieces, sources


def _python(functions: dict, name: str) -> str | None:
    translation = functions.get(name)
    return translation.python if translation is not None else None


def is_translated(state) -> bool:
    return getattr(state, "translated", False)


class _Probes(ast.NodeTransformer):
    """Put ``_kconform_reached(point)`` before the statement that starts at each wanted
    line (at the head of the handler's body for an ``except`` line): an ``elif``'s probe
    lands in the ``else`` it stands for, so it runs exactly when that condition is
    evaluated."""

    def __init__(self, wanted: dict[int, int]):
        self.wanted = dict(wanted)

    def _probe(self, point: int, where):
        call = ast.Call(ast.Name(PROBE, ast.Load()), [ast.Constant(point)], [])
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


def probed_code(code, source: Source, wanted: dict[int, int]):
    """``code`` recompiled with a probe of point ``wanted[line]`` before the statement at
    each line."""
    tree = _Probes(wanted).visit(copy.deepcopy(source.tree))
    module = ast.fix_missing_locations(ast.Module(body=[tree], type_ignores=[]))
    compiled = compile(module, code.co_filename, "exec", dont_inherit=True)
    return _function_code(compiled, code.co_name)


# The probes in place, shared by the watches active at once (a check inside a check, as
# the search for inherited findings runs, watches again): original code object ->
# (lines probed, probed code, the function objects running it), and each probe point's id.
_ACTIVE: list["Watch"] = []
_SWAPPED: dict[object, tuple[frozenset, object, list]] = {}
_POINTS: dict[tuple[int, int], int] = {}


def _reached(point: int) -> None:
    for watch in _ACTIVE:
        watch.seen.add(point)


def _point(code, line: int) -> int:
    return _POINTS.setdefault((id(code), line), len(_POINTS))


def _probe(code, source: Source, lines: set[int]) -> bool:
    """Make every function running ``code`` run it with probes at ``lines`` too (and at
    the lines already probed); False when it cannot be done."""
    done, probed, functions = _SWAPPED.get(code, (frozenset(), None, []))
    wanted = done | frozenset(lines)
    if wanted == done:
        return True
    try:
        new = probed_code(code, source, {line: _point(code, line) for line in wanted})
    except (SyntaxError, ValueError, TypeError):
        return False
    if new is None or new.co_freevars != code.co_freevars:
        return False
    running = {probed, code} - {None}
    known = list(source.functions) + gc.get_referrers(code) + functions
    functions = [f for f in {id(f): f for f in known}.values()
                 if isinstance(f, types.FunctionType) and f.__code__ in running]
    for function in functions:
        function.__globals__[PROBE] = _reached
        function.__code__ = new
    _SWAPPED[code] = (wanted, new, functions)
    return True


class Watch:
    """``with Watch(pieces, sources) as watch:`` records which pieces run;
    ``unexercised()`` after.

    For the length of the block, every function object running a watched code
    object runs a copy of it with probes (its ``__code__`` swapped, and put back
    when the last watch ends), so nothing else is slowed down."""

    def __init__(self, pieces: list[Piece], sources: dict | None = None):
        self.pieces = pieces
        self.sources = sources or {}        # code object -> its Source
        self.seen: set[int] = set()
        self.unwatched: set[int] = set()     # pieces that could not be probed: not claimed

    def __enter__(self):
        _ACTIVE.append(self)
        by_code: dict[object, list] = {}
        for key, piece in enumerate(self.pieces):
            by_code.setdefault(piece.code, []).append((key, piece))
        for code, pieces in by_code.items():
            if not _probe(code, self.sources[code], {min(p.lines) for _, p in pieces}):
                self.unwatched.update(key for key, _ in pieces)
        return self

    def __exit__(self, *exc):
        _ACTIVE.remove(self)
        if not _ACTIVE:
            for code, (_lines, _probed, functions) in _SWAPPED.items():
                for function in functions:
                    function.__code__ = code
            _SWAPPED.clear()
        return False

    def ran(self, key: int) -> bool:
        piece = self.pieces[key]
        return key in self.unwatched or _point(piece.code, min(piece.lines)) in self.seen

    def unexercised(self) -> tuple[tuple[str, str], ...]:
        """(function, why) for each function with a piece that never ran."""
        found: dict[str, list[str]] = {}
        for key, piece in enumerate(self.pieces):
            if not self.ran(key):
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
