"""Did the checks run the code a patch changed?

A check that never executes a patch's new code compares two versions that
behave the same on every path it took: a PASS from it says nothing about the
change.  So the engine watches the model functions a patch changes while it
checks them, and a function whose changed code no check ran does not cover its
hunks (``harness.pipeline.hunk_rows``): the patch cannot PASS on it.  With a
kernel tree both sides of the translated functions are watched; with the
hand-written models (and the models derived from a hunk) the after side only,
as the memo replays kept runs of a before side that no watch saw.

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

import __future__

import ast
import copy
import difflib
import gc
import inspect
import re
import textwrap
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
    lines: frozenset[int]          # its statements' positions in the body (``_flatten``)
    text: str                      # its first statement, for the reason

    def describe(self) -> str:
        what = "removed" if self.side == "before" else "new"
        more = f" and {len(self.lines) - 1} more statement(s)" if len(self.lines) > 1 else ""
        return f"its {what} code `{self.text}`{more} ({self.side})"


@dataclass(frozen=True)
class Source:
    """What a function's code was compiled from: its ``def`` (true line numbers), the
    file name and the compiler flags, so a probed copy compiles the same way."""

    tree: ast.FunctionDef
    filename: str
    flags: int
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
    return Source(tree, code.co_filename, 0, (model(name),) if model else ()), code


def _model_side(function, watched: bool):
    """(Source, code) of a hand-written or derived model function (code None when it is
    not to be watched), or None when its source cannot be read or its code swapped."""
    function = inspect.unwrap(function)
    code = getattr(function, "__code__", None)
    if code is None or code.co_freevars:
        return None
    flags = code.co_flags & __future__.annotations.compiler_flag
    derived = getattr(function, "derived_ast", None)
    if derived is not None:                       # harness.translate.derive: compiled from it
        tree = copy.deepcopy(derived)
    else:
        try:
            text = textwrap.dedent(inspect.getsource(function))
        except (OSError, TypeError):
            return None
        tree = ast.parse(text).body[0]
        if not isinstance(tree, ast.FunctionDef) or tree.name != code.co_name:
            return None
        ast.increment_lineno(tree, code.co_firstlineno - 1)
        tree.decorator_list = []
    return Source(tree, code.co_filename, flags, (function,)), (code if watched else None)


def _as_derived_from(old, old_function, new_function):
    """A derived after side was made from the before model with a shared body inlined
    (``derive.expanded_model``): compare it with that expansion."""
    if old is None or getattr(new_function, "derived_ast", None) is None:
        return old
    from harness.translate.derive import expanded_model

    try:
        expanded = expanded_model(inspect.unwrap(old_function))
    except Exception:       # noqa: BLE001 - not expandable: compare as written
        return old
    return Source(expanded, old[0].filename, old[0].flags), old[1]


def _header(node) -> str:
    """One statement as a line: a compound statement by its header."""
    if isinstance(node, ast.If):
        return f"if {ast.unparse(node.test)}:"
    if isinstance(node, ast.While):
        return f"while {ast.unparse(node.test)}:"
    if isinstance(node, (ast.For, ast.AsyncFor)):
        return f"for {ast.unparse(node.target)} in {ast.unparse(node.iter)}:"
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return "with " + ", ".join(ast.unparse(item) for item in node.items) + ":"
    if isinstance(node, ast.Try):
        return "try:"
    if isinstance(node, ast.ExceptHandler):
        return "except" + (f" {ast.unparse(node.type)}" if node.type else "") + \
            (f" as {node.name}" if node.name else "") + ":"
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return f"def {node.name}" if isinstance(node, ast.FunctionDef) else f"class {node.name}"
    return ast.unparse(node)


def _flatten(tree: ast.FunctionDef) -> list[tuple[int, object, list]]:
    """The body's statements in order as (depth, node, the list holding it); an
    ``except`` clause counts as a statement, ``elif`` as the ``if`` it is, a docstring not
    (nothing runs).  Statements are told apart by position, not line: a model derived
    from a hunk has made-up line numbers."""
    out: list[tuple[int, object, list]] = []

    def walk(body, depth):
        for node in body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and \
                    isinstance(node.value.value, str):
                continue
            out.append((depth, node, body))
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                continue
            for name in ("body", "handlers", "orelse", "finalbody"):
                walk(getattr(node, name, None) or [], depth + 1)

    walk(tree.body, 0)
    return out


def _statements(tree: ast.FunctionDef) -> list[tuple[int, str, int]]:
    """(depth, the statement as one line, its position) for each statement of the body."""
    return [(depth, _header(node), index)
            for index, (depth, node, _) in enumerate(_flatten(tree))]


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
    if old is not None and old[1] is not None:
        pieces += _pieces(function, "before", a, removed, old[1])
    if new is not None:
        pieces += _pieces(function, "after", b, added, new[1])
    return pieces


def changed_pieces(before, after) -> tuple[list[Piece], dict]:
    """The pieces of every function whose model differs between two states (a function
    on one side only: all of it), and each changed code object's Source (for ``Watch``).

    Translated states: every translated function whose Python differs, both sides
    (a translated state is always run).  Hand-written and derived models: every
    function whose model object differs, its after side only - ``harness.check.memo``
    replays kept runs of a before side that an earlier patch's check ran (patch k's
    after is patch k+1's before), which no probe sees.
    """
    pieces: list[Piece] = []
    sources: dict = {}
    if is_translated(before) and is_translated(after):
        names = sorted(set(before.state.functions) | set(after.state.functions))
        sides = [(name, _translated_side(before, name), _translated_side(after, name))
                 for name in names]
    elif not is_translated(before) and not is_translated(after) and \
            hasattr(before, "functions") and hasattr(after, "functions"):
        old_fns, new_fns = before.functions(), after.functions()
        sides = []
        for name in sorted(set(old_fns) | set(new_fns)):
            old_fn, new_fn = old_fns.get(name), new_fns.get(name)
            if old_fn is new_fn:
                continue
            old = _model_side(old_fn, watched=False) if old_fn is not None else None
            new = _model_side(new_fn, watched=True) if new_fn is not None else None
            if new is None:
                continue                  # nothing after to watch (or not readable)
            sides.append((name, _as_derived_from(old, old_fn, new_fn), new))
    else:
        return [], {}
    for name, old, new in sides:
        if old is None and new is None:
            continue
        if old is not None and new is not None and old[1] is new[1]:
            continue                       # the same code object: nothing changed
        for side in (old, new):
            if side is not None and side[1] is not None:
                sources[side[1]] = side[0]
        pieces += _diff(name, old, new)
    return pieces, sources


def is_translated(state) -> bool:
    return getattr(state, "translated", False) and hasattr(state, "state")


def probed_code(code, source: Source, wanted: dict[int, int]):
    """``code`` recompiled with ``_kconform_reached(point)`` before the statement at each
    wanted position (``{position: point}``; at the head of an ``except`` clause's body):
    an ``elif``'s probe lands in the ``else`` it stands for, so it runs exactly when that
    condition is evaluated."""
    tree = copy.deepcopy(source.tree)
    statements = _flatten(tree)
    for index, point in wanted.items():
        _depth, node, holder = statements[index]
        call = ast.Call(ast.Name(PROBE, ast.Load()), [ast.Constant(point)], [])
        probe = ast.copy_location(ast.Expr(call), node)
        if isinstance(node, ast.ExceptHandler):
            node.body.insert(0, probe)
        else:
            holder.insert(holder.index(node), probe)
    module = ast.fix_missing_locations(ast.Module(body=[tree], type_ignores=[]))
    compiled = compile(module, source.filename, "exec", flags=source.flags, dont_inherit=True)
    return _function_code(compiled, code.co_name)


# The probes in place, shared by the watches active at once (a check inside a check, as
# the search for inherited findings runs, watches again): original code object ->
# (statement positions probed, probed code, the function objects running it), and each probe point's id.
_ACTIVE: list["Watch"] = []
_SWAPPED: dict[object, tuple[frozenset, object, list]] = {}
_POINTS: dict[tuple[int, int], int] = {}


def _reached(point: int) -> None:
    for watch in _ACTIVE:
        watch.seen.add(point)


def _point(code, line: int) -> int:
    return _POINTS.setdefault((id(code), line), len(_POINTS))


def _probe(code, source: Source, lines: set[int]) -> bool:
    """Make every function running ``code`` run it with probes before the statements at
    positions ``lines`` too (and those already probed); False when it cannot be done."""
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
