"""Derive an after-model from a hunk, for a post-image blob nobody modelled.

``derive_after(hunks, before)`` takes a patch's scoped hunks and the
before version set, and for each changed function edits the before model:

1. The model function is read back as Python (``inspect.getsource`` +
   ``ast``; a derived function keeps its own tree, so derivations chain).
   A model written as a shared ``*_body`` plus small per-version statement
   functions (``handle_changed_spte``, ``tdp_mmu_zap_leafs``, ``make_spte``)
   is first inlined into one plain body, so the edit sees the statements in
   C order.
2. The hunk's lines are cut into a window of complete C statements: the
   changed lines, grown by context lines until the pre-image part and the
   post-image part both parse (``harness.translate.c_subset``), start at a statement
   boundary, and the translated pre-image statements occur exactly once, as
   a run of consecutive statements, in the model (compared as normalised
   Python: WARN message strings dropped, ``and``/``or`` chains flattened).
   The widest window of the hunk the subset reads around it must occur in
   the model too, so the hunk's context agrees with the model.
3. That run is replaced by the translation of the post-image part, the
   function is compiled in its model module's namespace, and registered as
   a derived blob (``registry.register_blob``) whose parent is the
   pre-image blob.

Anything that cannot be done this way is a miss naming why: a construct
outside the subset (with its line), lines that never form complete
statements, pre-image statements or context the model does not contain, or
contains more than once, a function the hunk deletes.  If any behaviour
hunk of a modelled file misses, there is no after-model at all: inheriting
the before body for that function would be a guess.

Derived blobs are named ``derived-<post-image blob>-<digest of the hunks>``,
so two different patches naming the same post-image never share a model; a
derived blob stands for its post-image id when the next patch names it as
its pre-image.  Known limit: a hunk's first lines are only checked against
the model from the first statement boundary the hunk shows.
"""

from __future__ import annotations

import __future__
import ast
import copy
import hashlib
import importlib
import inspect
import re
import textwrap
from dataclasses import dataclass, field

from harness.translate import c_subset
from harness.translate.c_subset import Callee, Names, NotParsed, Unsupported
from harness.translate.c_source import SourceMiss, parameters
from harness.ingest.hunks import HunkLine, UnreadableHunk, hunk_lines, side_code
from kernel_models import registry
from kernel_models.registry import VersionSet

BEHAVIOUR = "behaviour"
EXTRA_MODEL_MODULES = ("kernel_models.mmu_fault", "kernel_models.mmu_rmap",
                       "kernel_models.mmu_slot", "kernel_models.tdp_mmu_iter",
                       "kernel_models.tdp_mmu_notifier", "kernel_models.tdp_mmu_slot",
                       "kernel_models.spte_domain")
VM_ATTRIBUTES = frozenset({"tdp_enabled", "tdp_mmu_enabled"})


class Miss(Exception):
    """The hunk cannot be turned into an edit of the model; the message says why."""


@dataclass(frozen=True)
class DeriveResult:
    after: VersionSet | None
    derived: tuple[tuple[str, str], ...]            # (file, C function)
    misses: tuple[tuple[int, str], ...]             # (hunk index, reason)
    registered: tuple[tuple[str, str], ...] = ()    # (file, derived blob)
    sources: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)  # (file, fn, py)

    def unregister(self) -> None:
        """Forget the derived blobs (tests; a long-lived process checking many patches)."""
        for file, blob in self.registered:
            registry.unregister_blob(file, blob)


# ---------------------------------------------------------------------------
# The model as one plain Python function
# ---------------------------------------------------------------------------

def _docstring_free(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[1:]
    return body


def _parse_function(fn) -> ast.FunctionDef:
    derived = getattr(fn, "derived_ast", None)
    if derived is not None:
        return copy.deepcopy(derived)
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    return tree.body[0]


class _Rename(ast.NodeTransformer):
    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping

    def visit_Name(self, node: ast.Name):
        if node.id in self.mapping:
            return ast.copy_location(ast.Name(id=self.mapping[node.id], ctx=node.ctx), node)
        return node


def _assigned(nodes) -> set[str]:
    names = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                names.add(sub.id)
    return names


def _call_binding(call: ast.Call, params: list[str]) -> dict[str, ast.expr]:
    if call.keywords or len(call.args) != len(params):
        raise Miss("a shared model body is called with keywords or a different argument count")
    return dict(zip(params, call.args))


class _Inline(ast.NodeTransformer):
    """Replace calls of per-version statement functions by their bodies."""

    def __init__(self, strategies: dict[str, object], host_names: set[str]):
        self.strategies = strategies
        self.host_names = host_names

    def _strategy(self, call) -> tuple[ast.FunctionDef, dict[str, str]] | None:
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                and call.func.id in self.strategies):
            return None
        tree = _parse_function(self.strategies[call.func.id])
        params = [a.arg for a in tree.args.args]
        binding = _call_binding(call, params)
        if not all(isinstance(v, ast.Name) for v in binding.values()):
            raise Miss(f"{tree.name} is called with an argument that is not a plain name")
        mapping = {p: v.id for p, v in binding.items()}
        body = _docstring_free(tree.body)
        clashes = (_assigned(body) - set(params)) & self.host_names
        if clashes:
            raise Miss(f"inlining {tree.name} would clash with locals {sorted(clashes)}")
        return tree, mapping

    def _renamed(self, tree, mapping, statements):
        return [_Rename(mapping).visit(copy.deepcopy(s)) for s in statements]

    def visit_Expr(self, node: ast.Expr):
        found = self._strategy(node.value)
        if found is None:
            return self.generic_visit(node)
        tree, mapping = found
        body = _docstring_free(tree.body)
        if any(isinstance(s, ast.Return) for b in body for s in ast.walk(b)):
            raise Miss(f"{tree.name} returns a value where its caller ignores it")
        return self._renamed(tree, mapping, body)

    def visit_Assign(self, node: ast.Assign):
        found = self._strategy(node.value)
        if found is None:
            return self.generic_visit(node)
        tree, mapping = found
        body = _docstring_free(tree.body)
        last = body[-1] if body else None
        target = node.targets[0]
        returns = [s for b in body for s in ast.walk(b) if isinstance(s, ast.Return)]
        if (len(node.targets) == 1 and isinstance(target, ast.Name)
                and isinstance(last, ast.Return) and isinstance(last.value, ast.Name)
                and mapping.get(last.value.id, last.value.id) == target.id
                and returns == [last]):
            return self._renamed(tree, mapping, body[:-1]) or [ast.Pass()]
        if len(body) == 1 and isinstance(last, ast.Return):
            node.value = self._renamed(tree, mapping, [last])[0].value
            return node
        raise Miss(f"{tree.name} cannot be inlined where its value is assigned")

    def visit_Call(self, node: ast.Call):
        found = self._strategy(node)
        if found is None:
            return self.generic_visit(node)
        tree, mapping = found
        body = _docstring_free(tree.body)
        if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
            raise Miss(f"{tree.name} is used as a value but is not a single return")
        return self._renamed(tree, mapping, body)[0].value


def expanded_model(fn) -> ast.FunctionDef:
    """The model ``fn`` as one FunctionDef, with a shared ``*_body`` inlined.

    Only the pattern the models use is expanded: a body that is one call
    ``shared(kvm, per_version_fn..., names...)`` (returned or not) of a
    module function, with plain names as arguments and at least one of them
    a module function.  Anything else is returned as written.
    """
    tree = _parse_function(fn)
    tree.decorator_list = []
    namespace = fn.__globals__
    body = _docstring_free(tree.body)
    tree.body = body
    if not (len(body) == 1 and isinstance(body[0], (ast.Return, ast.Expr))
            and isinstance(body[0].value, ast.Call) and isinstance(body[0].value.func, ast.Name)):
        return tree
    call = body[0].value
    shared = namespace.get(call.func.id)
    host_params = {a.arg for a in tree.args.args}
    if not (inspect.isfunction(shared) and call.args and not call.keywords
            and all(isinstance(a, ast.Name) for a in call.args) and call.args[0].id == "kvm"):
        return tree
    inner = _parse_function(shared)
    params = [a.arg for a in inner.args.args]
    if len(params) != len(call.args) or inner.args.vararg or inner.args.kwonlyargs:
        return tree
    binding = dict(zip(params, (a.id for a in call.args)))
    strategies = {p: namespace[v] for p, v in binding.items()
                  if v not in host_params and inspect.isfunction(namespace.get(v))}
    if not strategies:
        return tree
    rename = {p: v for p, v in binding.items() if p not in strategies}
    inner_body = _docstring_free(inner.body)
    clashes = (_assigned(inner_body) - set(params)) & set(rename.values())
    if clashes:
        raise Miss(f"inlining {inner.name} would clash with {sorted(clashes)}")
    statements = [_Rename(rename).visit(copy.deepcopy(s)) for s in inner_body]
    inline = _Inline(strategies, _assigned(statements) | host_params)
    inlined: list[ast.stmt] = []
    for statement in statements:
        result = inline.visit(statement)
        inlined.extend(result if isinstance(result, list) else [result])
    left = {n.id for s in inlined for n in ast.walk(s) if isinstance(n, ast.Name)}
    if left & set(strategies):
        raise Miss(f"{inner.name} uses a per-version function other than by a call")
    tree.body = inlined
    return tree


# ---------------------------------------------------------------------------
# What identifiers mean
# ---------------------------------------------------------------------------

def _callee(fn, dispatched: bool) -> Callee | None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    params = list(signature.parameters.values())
    takes_kvm = bool(params) and params[0].name == "kvm"
    if dispatched or takes_kvm:
        params = params[1:]
    if any(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) and p.default is p.empty for p in params):
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(1 for p in positional if p.default is p.empty)
    variadic = any(p.kind == p.VAR_POSITIONAL for p in params)
    has_message = bool(positional) and positional[-1].name == "what"
    return Callee(dispatched, takes_kvm, required, None if variadic else len(positional),
                  has_message)


_CONSTANTS: dict[str, int] | None = None


def model_constants() -> dict[str, int]:
    """Integer constants of the model modules (the kernel's #defines they mirror)."""
    global _CONSTANTS
    if _CONSTANTS is None:
        found: dict[str, int] = {}
        for name in registry.MODEL_MODULES + EXTRA_MODEL_MODULES:
            module = importlib.import_module(name)
            for key, value in vars(module).items():
                if key.isupper() and isinstance(value, int) and not isinstance(value, bool):
                    found.setdefault(key, value)
        _CONSTANTS = found
    return _CONSTANTS


def names_for(tree: ast.FunctionDef, namespace: dict, versions: VersionSet, c_name: str,
              file: str = "") -> Names:
    from kernel_models import spte
    from kernel_models.line_maps import GOTO_STATEMENTS, LOOP_MACROS, NO_EFFECT_CALLS
    params = {a.arg for a in tree.args.args}
    local = params | _assigned([tree])
    objects = {n.value.id for n in ast.walk(tree)
               if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)} & local
    pointers = {n.func.value.id for n in ast.walk(tree)
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                and n.func.attr == "get" and not n.args and isinstance(n.func.value, ast.Name)
                } & local
    callees: dict[str, Callee] = {}
    for key, value in namespace.items():
        if inspect.isfunction(value) and not key.startswith("_"):
            callee = _callee(value, dispatched=False)
            if callee is not None:
                callees[key] = callee
    for key, value in versions.functions().items():
        callee = _callee(value, dispatched=True)
        if callee is not None:
            callees[key] = callee
    vm_globals = frozenset(next(iter(spte.MODES.values())).as_globals()) | VM_ATTRIBUTES
    constants = frozenset(model_constants()) | frozenset(
        k for k, v in namespace.items() if k.isupper() and isinstance(v, int))
    return Names(c_name, set(local - {"kvm"}), objects, callees, vm_globals, constants,
                 gotos=dict(GOTO_STATEMENTS.get((file, c_name), {})),
                 loops={macro: row for macro, row in LOOP_MACROS.items()
                        if inspect.isfunction(namespace.get(row[2]))},
                 no_effect=NO_EFFECT_CALLS, pointers=pointers)


# ---------------------------------------------------------------------------
# Matching and editing
# ---------------------------------------------------------------------------

class _Normalise(ast.NodeTransformer):
    """What two statements must share to be "the same": no messages, flat and/or.

    ``p is not None`` and ``p``, ``p is None`` and ``not p`` are the same
    tests: C tests a pointer by its truth (``page && ...``, ``!sp->ptep``),
    models write ``is not None`` / ``is None``; no model uses a falsy object
    for a pointer.
    """

    def visit_Compare(self, node: ast.Compare):
        self.generic_visit(node)
        if (len(node.ops) == 1 and isinstance(node.ops[0], (ast.Is, ast.IsNot))
                and isinstance(node.comparators[0], ast.Constant)
                and node.comparators[0].value is None):
            if isinstance(node.ops[0], ast.IsNot):
                return node.left
            return ast.UnaryOp(op=ast.Not(), operand=node.left)
        return node

    def visit_Call(self, node: ast.Call):
        self.generic_visit(node)
        node.args = [a for a in node.args
                     if not (isinstance(a, ast.JoinedStr)
                             or (isinstance(a, ast.Constant) and isinstance(a.value, str)))]
        node.keywords = []
        return node

    def visit_BoolOp(self, node: ast.BoolOp):
        self.generic_visit(node)
        values = []
        for value in node.values:
            if isinstance(value, ast.BoolOp) and type(value.op) is type(node.op):
                values.extend(value.values)
            else:
                values.append(value)
        node.values = values
        return node


def normalised(statements: list[ast.stmt]) -> tuple[str, ...]:
    return tuple(ast.dump(_Normalise().visit(copy.deepcopy(s))) for s in statements)


def statement_lists(tree: ast.FunctionDef):
    """Every list of statements in the function (bodies, else branches...)."""
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            value = getattr(node, name, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                yield value


def find_run(tree: ast.FunctionDef, wanted: list[ast.stmt]) -> list[tuple[list, int]]:
    """Places (statement list, start) where ``wanted`` occurs as consecutive statements."""
    key = normalised(wanted)
    n = len(key)
    places = []
    for statements in statement_lists(tree):
        dumps = normalised(statements)
        for start in range(len(dumps) - n + 1):
            if dumps[start:start + n] == key:
                places.append((statements, start))
    return places


STATEMENT_BOUNDARY = {None, ";", "{", "}", ":"}
ERROR_RANK = {"parse": 0, "match": 1, "unsupported": 2}


@dataclass
class _Attempt:
    rank: int = -1
    reason: str = ""

    def note(self, kind: str, reason: str) -> None:
        if ERROR_RANK[kind] > self.rank:
            self.rank, self.reason = ERROR_RANK[kind], reason


def _where(line: HunkLine, file: str) -> str:
    number = line.old if line.old is not None else line.new
    where = f"line {number} of {file.rsplit('/', 1)[-1]}"
    return where + (f" (patch line {line.patch})" if line.patch else "")


def apply_hunk(tree: ast.FunctionDef, hunk, names: Names, model_id: str) -> None:
    """Edit ``tree`` in place by one hunk, or raise ``Miss``."""
    try:
        lines = hunk_lines(hunk)
    except UnreadableHunk as exc:
        raise Miss(str(exc)) from None
    code = {"-": side_code(lines, "-"), "+": side_code(lines, "+")}
    changed = [i for i, line in enumerate(lines)
               if line.mine and code[line.kind].get(i, "").strip()]
    if not changed:
        return          # only comments or blank lines change in this function
    low, high = changed[0], changed[-1]
    attempt = _Attempt()
    seen = set()
    for extra in range(len(lines)):
        for up in range(extra + 1):
            first, last = low - up, high + extra - up
            if first < 0 or last >= len(lines):
                continue
            span = [i for i in range(first, last + 1)
                    if code["-"].get(i, "").strip() or code["+"].get(i, "").strip()]
            key = (span[0], span[-1])      # blank or comment lines at the edges add nothing
            if key in seen:
                continue
            seen.add(key)
            done = _try_window(tree, lines, code, first, last, names, hunk, model_id, attempt)
            if done:
                return
    raise Miss(attempt.reason or "no window of the hunk forms complete C statements")


def _boundary_ok(lines, code, side: str, first: int, last: int, strict: bool = False) -> bool:
    """Does the window start and end where statements do?

    At the hunk's first line nothing says whether it is the body of a
    braceless ``if`` above the hunk: ``strict`` refuses such a start unless a
    blank or comment line separates it from the hunk's start (kernel style
    never puts one between an ``if`` and its body).  For the edit window the
    match against the model decides instead."""
    before = [code[side][i] for i in range(first) if i in code[side] and code[side][i].strip()]
    after = [code[side][i] for i in range(last + 1, len(lines))
             if i in code[side] and code[side][i].strip()]
    previous = before[-1].split()[-1] if before else None
    following = after[0].split()[0] if after else None
    if strict and previous is None and not any(lines[i].kind in (" ", side)
                                               for i in range(first)):
        return False
    return previous in STATEMENT_BOUNDARY and following != "else"


def _translate_side(lines, code, side, first, last, names: Names, file: str):
    indexes = [i for i in range(first, last + 1) if i in code[side]]
    fragment = [code[side][i] for i in indexes]
    try:
        block = c_subset.parse_fragment(fragment, names.loops)
        return c_subset.translate_block(block, names), None
    except NotParsed as exc:
        line = lines[indexes[min(exc.line, len(indexes)) - 1]] if indexes else None
        where = _where(line, file) if line else "the hunk"
        return None, ("parse", f"the changed lines do not form complete C statements the "
                               f"subset reads (near {where}: {exc.message}); a macro the "
                               f"subset does not know reads as an incomplete statement")
    except Unsupported as exc:
        line = lines[indexes[min(exc.line, len(indexes)) - 1]]
        detail = f": {exc.detail}" if exc.detail else ""
        return None, ("unsupported", f"unsupported construct {exc.construct} at "
                                     f"{_where(line, file)}{detail}")


def _try_window(tree, lines, code, first, last, names: Names, hunk, model_id: str,
                attempt: _Attempt) -> bool:
    if not (_boundary_ok(lines, code, "-", first, last)
            and _boundary_ok(lines, code, "+", first, last)):
        return False
    old_names = copy.deepcopy(names)
    old, error = _translate_side(lines, code, "-", first, last, old_names, hunk.file)
    if error is None:
        new_names = copy.deepcopy(names)
        new, error = _translate_side(lines, code, "+", first, last, new_names, hunk.file)
    if error is not None:
        attempt.note(*error)
        return False
    if not old:
        return False          # no anchor: grow the window to take in context
    places = find_run(tree, old)
    where = _where(lines[first], hunk.file)
    if not places:
        attempt.note("match", f"the pre-image statements from {where} do not occur in the "
                              f"model {model_id} (the model differs there: it abstracts these lines, or the hunk does not apply to this version)")
        return False
    if len(places) > 1:
        attempt.note("match", f"the pre-image statements from {where} occur {len(places)} "
                              f"times in the model {model_id}; the hunk's context does not "
                              f"single one out")
        return False
    disagreement = _context_disagrees(tree, lines, code, first, last, names, hunk, model_id)
    if disagreement:
        raise Miss(disagreement)
    statements, start = places[0]
    statements[start:start + len(old)] = new or ([ast.Pass()] if len(statements) == len(old)
                                                 else [])
    names.used_constants |= new_names.used_constants
    names.locals |= new_names.locals
    return True


def _context_disagrees(tree, lines, code, first, last, names: Names, hunk, model_id: str,
                       ) -> str | None:
    """Does the hunk's wider context contradict the model around the matched window?

    The widest window of complete statements the subset reads that contains
    the edit must occur in the model too; otherwise the hunk's context
    (e.g. two statements it shows as adjacent) is not what the model says.
    """
    rows = [i for i in range(len(lines))
            if code["-"].get(i, "").strip() or code["+"].get(i, "").strip()]
    windows = sorted(((a, b) for a in rows if a <= first for b in rows if b >= last),
                     key=lambda window: window[0] - window[1])
    for a, b in windows:
        if a >= first and b <= last:
            return None          # nothing wider reads: the matched window is all there is
        if not (_boundary_ok(lines, code, "-", a, b, strict=True)
                and _boundary_ok(lines, code, "+", a, b, strict=True)):
            continue
        old, error = _translate_side(lines, code, "-", a, b, copy.deepcopy(names), hunk.file)
        if error is None:
            _, error = _translate_side(lines, code, "+", a, b, copy.deepcopy(names), hunk.file)
        if error is not None or not old:
            continue
        if find_run(tree, old):
            return None
        return (f"the hunk's context from {_where(lines[a], hunk.file)} to "
                f"{_where(lines[b], hunk.file)} does not occur in the model {model_id}: the "
                f"hunk does not fit the model's version of this function")
    return None


# ---------------------------------------------------------------------------
# Building and registering
# ---------------------------------------------------------------------------

def build_function(tree: ast.FunctionDef, namespace: dict, c_name: str, doc: str,
                   constants: set[str]):
    tree = copy.deepcopy(tree)
    tree.name = c_name if c_name.isidentifier() else tree.name   # FNAME(x) is not one
    tree.body = [ast.Expr(ast.Constant(doc))] + (tree.body or [ast.Pass()])
    module = ast.fix_missing_locations(ast.Module(body=[tree], type_ignores=[]))
    scope = dict(namespace)
    for name in constants:
        scope.setdefault(name, model_constants()[name])
    code = compile(module, f"<derived {c_name}>", "exec",
                   flags=__future__.annotations.compiler_flag, dont_inherit=True)
    exec(code, scope)                     # noqa: S102 - our own translated AST
    fn = scope[tree.name]
    fn.__module__ = "harness.translate.derive"
    fn.derived_ast = copy.deepcopy(tree)
    fn.derived_source = ast.unparse(tree)
    return fn


def derive_function(file: str, c_name: str, hunks, before: VersionSet):
    """The derived body of ``c_name`` after ``hunks`` (all in that function), or Miss."""
    version = registry.lookup(file, c_name, before.blob(file))
    if any("deleted by this hunk" in hunk.reason for hunk in hunks):
        raise Miss(f"the hunk deletes {c_name}: deriving edits function bodies, it does not "
                   f"remove or add functions")
    if version is None:
        raise Miss(f"{c_name} is not modelled in {file.rsplit('/', 1)[-1]}@{before.blob(file)}")
    tree = expanded_model(version.function)
    names = names_for(tree, version.function.__globals__, before, c_name, file)
    for hunk in hunks:
        apply_hunk(tree, hunk, names, version.model_id)
    headers = ", ".join(h.header for h in hunks)
    doc = (f"{c_name} derived from {version.model_id} by {headers} of {file} "
           f"({hunks[0].source_blob} -> {hunks[0].target_blob}).")
    try:
        return build_function(tree, version.function.__globals__, c_name, doc,
                              names.used_constants)
    except SyntaxError as exc:
        raise Miss(f"the edited model of {c_name} does not compile: {exc.msg}") from None


def derive_after(hunks, before: VersionSet, *, only_unknown: bool = False,
                 pre_image_by_content: bool = False,
                 derive_known: frozenset[str] = frozenset()) -> DeriveResult:
    """An after version set for ``hunks`` applied to ``before``, derived from its models.

    With ``only_unknown`` a file whose post-image blob is hand-modelled keeps
    that model (it is not derived), unless it is in ``derive_known`` (the
    resolver found that the hunks do not make that model: the index line is
    wrong); the cross-check tests derive everything.
    With ``pre_image_by_content`` the hunks' pre-image blob ids are not required
    to be the before state's (resolve matched the state by the hunks' code).
    """
    misses: list[tuple[int, str]] = []
    by_file: dict[str, list] = {}
    for hunk in hunks:
        if registry.is_modelled_file(hunk.file):
            by_file.setdefault(hunk.file, []).append(hunk)
    derived: list[tuple[str, str]] = []
    sources: list[tuple[str, str, str]] = []
    replacements: dict[str, dict] = {}
    targets: dict[str, str] = {}
    known: dict[str, str] = {}
    for file, file_hunks in by_file.items():
        parent = before.blob(file)
        source, target = file_hunks[0].source_blob, file_hunks[0].target_blob
        if only_unknown and registry.find_blob(file, target) is not None \
                and file not in derive_known:
            known[file] = registry.find_blob(file, target)
            continue
        if not pre_image_by_content and not registry.blob_matches(registry.stands_for(parent),
                                                                   source):
            misses += [(h.index, f"the hunk's pre-image {source} is not the before state's "
                                 f"blob {parent}") for h in file_hunks if h.kind == BEHAVIOUR]
            continue
        targets[file] = target or "unknown"
        functions: dict[str, list] = {}
        for hunk in file_hunks:
            if hunk.kind != BEHAVIOUR:
                continue
            if hunk.function is None:
                misses.append((hunk.index, "the change lies outside any function"))
                continue
            functions.setdefault(hunk.function, []).append(hunk)
        for c_name, function_hunks in functions.items():
            try:
                fn = derive_function(file, c_name, function_hunks, before)
            except Miss as exc:
                misses += [(h.index, str(exc)) for h in function_hunks]
                continue
            replacements.setdefault(file, {})[c_name] = fn
            derived.append((file, c_name))
            sources.append((file, c_name, fn.derived_source))
    if misses:
        return DeriveResult(None, tuple(derived), tuple(misses), (), tuple(sources))
    blobs = {**dict(before.blobs), **known}
    registered = []
    digest = hashlib.sha1("\n".join(h.text for h in hunks).encode()).hexdigest()[:10]
    for file, target in targets.items():
        blob = f"derived-{target}-{digest}"
        registry.register_blob(file, blob, before.blob(file), replacements.get(file, {}))
        registered.append((file, blob))
        blobs[file] = blob
    touched = ", ".join([f"derived {f.rsplit('/', 1)[-1]}@{t}" for f, t in targets.items()]
                        + [f"{f.rsplit('/', 1)[-1]}@{b}" for f, b in known.items()])
    after = VersionSet.of(f"{before.name} + {touched}", blobs) if targets or known else None
    return DeriveResult(after, tuple(derived), (), tuple(registered), tuple(sources))


# ---------------------------------------------------------------------------
# Whole functions (a kernel tree at hand: harness.resolve.kernel_tree)
# ---------------------------------------------------------------------------

def translate_function(file: str, source, versions: VersionSet, doc: str):
    """A model of ``source`` (a whole C definition) translated in ``versions``, or Miss.

    The C parameters must be the model's (``kvm`` first in a model whose C
    function has no ``kvm`` parameter, as models write it); callees and
    constants are those of ``versions``.  Returns the compiled function; its
    ``derived_ast`` is the translated tree.
    """

    c_name = source.name
    version = registry.lookup(file, c_name, versions.blob(file))
    if version is None:
        raise Miss(f"{c_name} is not modelled in {file.rsplit('/', 1)[-1]}@{versions.blob(file)}")
    model = expanded_model(version.function)
    try:
        c_params = parameters(source)
    except SourceMiss as exc:
        raise Miss(str(exc)) from None
    model_params = [a.arg for a in model.args.args]
    wanted = model_params[1:] if model_params[:1] == ["kvm"] and c_params[:1] != ["kvm"] \
        else model_params
    if c_params != wanted:
        raise Miss(f"the C parameters of {c_name} ({', '.join(c_params)}) are not its model's "
                   f"({', '.join(wanted)})")
    names = names_for(model, version.function.__globals__, versions, c_name, file)
    try:
        block = c_subset.parse_fragment(list(source.body), names.loops)
        statements = c_subset.translate_block(block, names)
    except Unsupported as exc:
        raise Miss(f"{c_name}: unsupported construct {exc.construct} at line "
                   f"{source.opening + exc.line} of {file.rsplit('/', 1)[-1]}"
                   + (f" ({exc.detail})" if exc.detail else "")) from None
    except NotParsed as exc:
        raise Miss(f"{c_name}: not read as C statements at line {source.opening + exc.line} of "
                   f"{file.rsplit('/', 1)[-1]}: {exc.message}") from None
    tree = copy.deepcopy(model)
    tree.body = statements
    try:
        return build_function(tree, version.function.__globals__, c_name, doc,
                              names.used_constants)
    except SyntaxError as exc:
        raise Miss(f"the translation of {c_name} does not compile: {exc.msg}") from None


def _bodies(fn, version) -> tuple[list[ast.stmt], list[ast.stmt]]:
    """(model statements, translated statements): the docstring build_function adds left out."""
    return expanded_model(version.function).body, _parse_function(fn).body[1:]


def bodies(fn, version) -> tuple[list[ast.stmt], list[ast.stmt]]:
    """(model statements, translated statements) of a translation and a model version."""
    return _bodies(fn, version)


def normalised_lines(statements: list[ast.stmt]) -> list[str]:
    """Statements as the Python lines the comparisons read (no messages, flat and/or)."""
    plain = [_Normalise().visit(copy.deepcopy(s)) for s in statements]
    return ast.unparse(ast.Module(body=plain, type_ignores=[])).splitlines()


def same_body(fn, version) -> bool:
    """Do a translated function and a model version hold the same statements?"""
    model, translated = _bodies(fn, version)
    return normalised(translated) == normalised(model)


def body_lines(fn, version) -> tuple[list[str], list[str]]:
    """The model's and the translation's statements as normalised Python lines."""
    return tuple(normalised_lines(body) for body in _bodies(fn, version))


def body_distance(fn, version) -> int:
    """Lines of Python that differ between a translation and a model (for "nearest")."""
    import difflib

    model, translated = body_lines(fn, version)
    return sum(1 for line in difflib.ndiff(translated, model) if line[:1] in "+-")
