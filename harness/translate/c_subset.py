"""A small subset of C statements -> Python model statements (``ast`` nodes).

Used by ``harness.translate.derive`` to turn the lines of a hunk into statements of a
model function.  The C is read with a real parser (pycparser) on a fragment
wrapped in a dummy function, after ``scope.code_and_comments`` has dropped
comments; nothing here pattern-matches C text.

The subset, and how each form is written in a model (``kernel_models/vm.py``):

- expressions: identifiers, integer constants, ``true``/``false``/``NULL``,
  ``!`` ``~`` unary ``-``, ``&&`` ``||``, comparisons, ``+ - * % << >> & | ^``,
  ``?:``, ``a.b`` and ``a->b`` (attributes), ``a[i]``, ``&name`` of an object
  the model uses as one (``&iter`` -> ``iter``), ``likely``/``unlikely``/``READ_ONCE``; ``*p`` of a
  local the model reads as ``p.get()`` (an SPTE pointer);
- calls: a modelled kernel function ``f(args)`` -> ``kvm.f(args)`` (a first
  argument ``kvm`` or ``x->kvm`` becomes the receiver, as models write
  ``kvm.f(...)`` / ``vcpu.kvm.f(...)``); a plain function of the model's
  module is called as written there (``kvm`` prepended when it takes one).
  The argument count must fit the model's signature.  WARN-like macros used
  without a message get one naming the function and the C condition;
- statements: declarations (``u64 x = e;`` -> ``x = e``), ``=`` and compound
  assignments, ``x++``/``x--``, calls, ``if``/``else`` (with and without
  braces), ``return``, nested blocks, empty statements;
- loops: the kernel's iterator macros (``for_each_rmap_spte(head, &it, sptep)``,
  ``for_each_tdp_pte_min_level(iter, ...)``...) in the forms
  ``kernel_models.line_maps.LOOP_MACROS`` lists, as the model's
  ``for x in generator(kvm, ...)``, with ``continue`` and ``break`` inside;
- ``min``/``max``; calls ``line_maps.NO_EFFECT_CALLS`` lists (lock assertions,
  RCU read sections) are dropped as statements.

Everything else raises ``Unsupported`` naming the construct and the line of
the fragment: ``for``/``while``/``do`` loops, a loop macro with another
argument count, ``goto`` (unless ``kernel_models.line_maps`` says how the
model writes that jump) and labels, ``break``/``continue`` outside a loop, ``switch``,
casts, dereferences, ``sizeof``, ``/``, assignments inside expressions, the
comma operator, string and character constants, unknown identifiers and
calls to unmodelled functions.  Nothing is guessed.

Identifiers resolve in this order: locals of the model function (its
parameters and every name it assigns, plus declarations in the fragment),
kernel globals the VM carries (``shadow_accessed_mask``...), then constants
of the model modules (``PG_LEVEL_4K``...).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from pycparser import c_ast, c_generator, c_parser

FRAGMENT_FUNCTION = "kconform_fragment"
PRELUDE = ("typedef unsigned long long u64; typedef unsigned int u32; typedef unsigned short u16; "
           "typedef unsigned char u8; typedef long long s64; typedef int s32; typedef _Bool bool; "
           "typedef u64 gfn_t; typedef u64 gpa_t; typedef u64 gva_t; typedef u64 hpa_t; "
           "typedef u64 hva_t; typedef u64 kvm_pfn_t; typedef u64 *tdp_ptep_t; "
           "typedef unsigned long size_t; "
           f"void {FRAGMENT_FUNCTION}(void) {{")

# Macros whose model takes an optional message: the translation supplies one.
WARN_MACROS = frozenset({"WARN_ON_ONCE", "WARN_ON", "KVM_MMU_WARN_ON", "KVM_BUG_ON",
                         "KVM_BUG_ON_DATA_CORRUPTION"})
# Branch hints that do not change the value of their argument.
PASS_THROUGH = frozenset({"likely", "unlikely", "READ_ONCE"})

BINARY = {"+": ast.Add, "-": ast.Sub, "*": ast.Mult, "%": ast.Mod, "<<": ast.LShift,
          ">>": ast.RShift, "&": ast.BitAnd, "|": ast.BitOr, "^": ast.BitXor}
COMPARE = {"==": ast.Eq, "!=": ast.NotEq, "<": ast.Lt, ">": ast.Gt, "<=": ast.LtE,
           ">=": ast.GtE}
AUGMENTED = {f"{op}=": node for op, node in BINARY.items()}
UNSUPPORTED_STATEMENTS = {
    c_ast.For: "for loop", c_ast.While: "while loop", c_ast.DoWhile: "do-while loop",
    c_ast.Switch: "switch", c_ast.Case: "case label", c_ast.Default: "default label",
    c_ast.Goto: "goto", c_ast.Label: "label", c_ast.Break: "break",
    c_ast.Continue: "continue", c_ast.Pragma: "pragma", c_ast.Typedef: "typedef",
}


class Unsupported(Exception):
    """A C construct outside the subset, at ``line`` (1-based, within the fragment)."""

    def __init__(self, construct: str, line: int, detail: str = ""):
        self.construct = construct
        self.line = line
        self.detail = detail
        super().__init__(f"unsupported construct {construct} at line {line}"
                         + (f" ({detail})" if detail else ""))


class NotParsed(Exception):
    """The fragment is not a sequence of complete C statements (``line`` within it)."""

    def __init__(self, line: int, message: str):
        self.line = line
        self.message = message
        super().__init__(f"not complete C statements at line {line}: {message}")


@dataclass(frozen=True)
class Callee:
    """What a C function name becomes in Python."""

    dispatched: bool          # kvm.<name>(...) through the VM
    takes_kvm: bool           # a plain module function whose first parameter is kvm
    required: int             # argument counts, kvm excluded
    maximum: int | None       # None: *args
    has_message: bool = False  # a trailing ``what`` parameter (WARN-like macros)


@dataclass
class Names:
    """What identifiers mean in the function the fragment belongs to."""

    function: str
    locals: set[str]
    objects: set[str]                       # locals the model uses as objects (``x.field``)
    callees: dict[str, Callee]
    vm_globals: frozenset[str]
    constants: frozenset[str]
    used_constants: set[str] = field(default_factory=set)
    gotos: dict[str, str] = field(default_factory=dict)   # label -> the model's statement
    loops: dict[str, tuple] = field(default_factory=dict)  # C macro -> line_maps.LOOP_MACROS row
    no_effect: frozenset[str] = frozenset()                 # calls a model leaves out
    pointers: set[str] = field(default_factory=set)         # locals read as ``p.get()``


def loops_as_while(lines: list[str], macros) -> list[str]:
    """Write each iterator macro call ``m(args) body`` as ``while (m(args)) body``.

    What the preprocessor would do with the macro's own ``for (...)``, kept
    recognisable: the translator turns such a ``while`` into the model's
    ``for``.  Lines are kept (only text within a line is added).
    """
    if not macros:
        return lines
    pattern = re.compile(r"\b(" + "|".join(re.escape(m) for m in sorted(macros)) + r")\s*\(")
    out = [list(line) for line in lines]
    opened: list[tuple[int, int]] = []      # (line, column) of pending closes
    for number, line in enumerate(lines):
        for match in pattern.finditer(line):
            opened.append((number, match.start()))
    inserts: dict[int, list[tuple[int, str]]] = {}
    for number, column in opened:
        depth, close = 0, None
        position = line_start = None
        row, col = number, column
        while row < len(lines) and close is None:
            text = lines[row]
            for i in range(col, len(text)):
                if text[i] == "(":
                    depth += 1
                elif text[i] == ")":
                    depth -= 1
                    if depth == 0:
                        close = (row, i + 1)
                        break
            row, col = row + 1, 0
        if close is None:
            continue
        inserts.setdefault(number, []).append((column, "while ("))
        inserts.setdefault(close[0], []).append((close[1], ")"))
    for number, items in inserts.items():
        for column, text in sorted(items, reverse=True):
            out[number][column:column] = list(text)
    return ["".join(chars) for chars in out]


def parse_fragment(lines: list[str], loops=()) -> c_ast.Compound:
    """Parse C statement lines (comments already removed) as one block."""
    lines = loops_as_while(lines, loops)
    text = PRELUDE + "\n" + "\n".join(lines) + "\n}\n"
    try:
        unit = c_parser.CParser().parse(text, "<fragment>")
    except c_parser.ParseError as exc:
        match = re.match(r"[^:]*:(\d+):(?:\d+:)?\s*(.*)", str(exc))
        line = int(match.group(1)) - 1 if match else 0
        message = match.group(2) if match else str(exc)
        if message.startswith("before: "):
            message = f"the parser stopped before '{message[len('before: '):]}'"
        raise NotParsed(max(line, 1), message) from None
    except AssertionError:
        # pycparser's lexer asserts on a '}' that closes more scopes than were opened
        raise NotParsed(1, "a '}' closes a block the fragment did not open") from None
    body = unit.ext[-1]
    if not isinstance(body, c_ast.FuncDef) or body.decl.name != FRAGMENT_FUNCTION:
        raise NotParsed(1, "the fragment closes the dummy function early")
    return body.body


def translate_block(block: c_ast.Compound, names: Names) -> list[ast.stmt]:
    """Python statements for the block's items (an empty list for an empty block)."""
    statements = Translator(names).block(block.block_items or [])
    ast.fix_missing_locations(ast.Module(body=statements, type_ignores=[]))
    return statements


def line_of(node) -> int:
    coord = getattr(node, "coord", None)
    return max(coord.line - 1, 1) if coord is not None and coord.line else 1


def c_text(node) -> str:
    return c_generator.CGenerator().visit(node)


def _load(name: str) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Load())


def _kvm_attribute(base: ast.expr, name: str, ctx=None) -> ast.Attribute:
    return ast.Attribute(value=base, attr=name, ctx=ctx or ast.Load())


def _body(statements: list[ast.stmt]) -> list[ast.stmt]:
    return statements or [ast.Pass()]


class Translator:
    def __init__(self, names: Names):
        self.names = names
        self.loop_depth = 0

    # -- statements ---------------------------------------------------------
    def block(self, items) -> list[ast.stmt]:
        result: list[ast.stmt] = []
        for item in items:
            result.extend(self.statement(item))
        return result

    def statement(self, node) -> list[ast.stmt]:
        if isinstance(node, c_ast.Compound):
            return self.block(node.block_items or [])
        if isinstance(node, c_ast.EmptyStatement):
            return []
        if isinstance(node, c_ast.Decl):
            return self.declaration(node)
        if isinstance(node, c_ast.Assignment):
            return [self.assignment(node)]
        if isinstance(node, c_ast.UnaryOp) and node.op in ("p++", "p--", "++", "--"):
            op = ast.Add() if "+" in node.op else ast.Sub()
            return [ast.AugAssign(target=self.target(node.expr), op=op, value=ast.Constant(1))]
        if isinstance(node, c_ast.FuncCall):
            if isinstance(node.name, c_ast.ID) and node.name.name in self.names.no_effect:
                return []       # line_maps.NO_EFFECT_CALLS: nothing the models record
            return [ast.Expr(value=self.call(node))]
        if isinstance(node, c_ast.While):
            return [self.loop(node)]
        if isinstance(node, (c_ast.Continue, c_ast.Break)) and self.loop_depth:
            return [ast.Continue() if isinstance(node, c_ast.Continue) else ast.Break()]
        if isinstance(node, c_ast.If):
            orelse = self.statement(node.iffalse) if node.iffalse is not None else []
            return [ast.If(test=self.expression(node.cond),
                           body=_body(self.statement(node.iftrue)), orelse=orelse)]
        if isinstance(node, c_ast.Goto) and node.name in self.names.gotos:
            return [ast.parse(self.names.gotos[node.name]).body[0]]
        if isinstance(node, c_ast.Return):
            value = self.expression(node.expr) if node.expr is not None else None
            return [ast.Return(value=value)]
        for kind, construct in UNSUPPORTED_STATEMENTS.items():
            if isinstance(node, kind):
                raise Unsupported(construct, line_of(node))
        raise Unsupported(f"{type(node).__name__} statement", line_of(node), c_text(node))

    def loop(self, node: c_ast.While) -> ast.stmt:
        """An iterator macro (``loops_as_while`` wrote it as a ``while``) -> the model's ``for``.

        A plain ``while`` is outside the subset: no touched function uses one.
        """
        cond = node.cond
        if not (isinstance(cond, c_ast.FuncCall) and isinstance(cond.name, c_ast.ID)
                and cond.name.name in self.names.loops):
            raise Unsupported("while loop", line_of(node))
        target, generator = self.iterator(cond)
        self.loop_depth += 1
        try:
            return ast.For(target=target, iter=generator,
                           body=_body(self.statement(node.stmt)), orelse=[])
        finally:
            self.loop_depth -= 1

    def iterator(self, call: c_ast.FuncCall) -> tuple[ast.expr, ast.expr]:
        macro = call.name.name
        count, target_index, generator, passed = self.names.loops[macro]
        args = list(call.args.exprs) if call.args is not None else []
        if len(args) != count:
            raise Unsupported(f"loop macro '{macro}' with {len(args)} arguments", line_of(call),
                              f"the models mirror its {count}-argument form")
        target = args[target_index]
        if not isinstance(target, c_ast.ID):
            raise Unsupported(f"loop variable of '{macro}' that is not a name", line_of(call))
        self.names.locals.add(target.name)
        values = [_load("kvm")] + [self.expression(args[i]) for i in passed]
        return (ast.Name(id=target.name, ctx=ast.Store()),
                ast.Call(func=_load(generator), args=values, keywords=[]))

    def declaration(self, node: c_ast.Decl) -> list[ast.stmt]:
        declared = node.type
        if isinstance(declared, (c_ast.FuncDecl, c_ast.ArrayDecl)) or node.name is None:
            raise Unsupported("declaration of a function, array or type", line_of(node),
                              c_text(node))
        if node.bitsize is not None or (node.storage and "static" in node.storage):
            raise Unsupported("static or bit-field declaration", line_of(node))
        if isinstance(node.init, c_ast.InitList):
            raise Unsupported("initializer list", line_of(node))
        value = self.expression(node.init) if node.init is not None else None
        self.names.locals.add(node.name)
        if value is None:
            return []           # a declaration alone has no behaviour in the model
        return [ast.Assign(targets=[ast.Name(id=node.name, ctx=ast.Store())], value=value)]

    def assignment(self, node: c_ast.Assignment) -> ast.stmt:
        target = self.target(node.lvalue)
        value = self.expression(node.rvalue)
        if node.op == "=":
            return ast.Assign(targets=[target], value=value)
        if node.op in AUGMENTED:
            return ast.AugAssign(target=target, op=AUGMENTED[node.op](), value=value)
        raise Unsupported(f"assignment operator '{node.op}'", line_of(node))

    def target(self, node) -> ast.expr:
        if isinstance(node, c_ast.ID):
            if node.name not in self.names.locals:
                raise Unsupported(f"assignment to '{node.name}'", line_of(node),
                                  "not a local of the model")
            return ast.Name(id=node.name, ctx=ast.Store())
        if isinstance(node, c_ast.StructRef):
            return ast.Attribute(value=self.expression(node.name), attr=node.field.name,
                                 ctx=ast.Store())
        if isinstance(node, c_ast.ArrayRef):
            return ast.Subscript(value=self.expression(node.name),
                                 slice=self.expression(node.subscript), ctx=ast.Store())
        raise Unsupported("assignment through a pointer or to an expression", line_of(node),
                          c_text(node))

    # -- expressions --------------------------------------------------------
    def expression(self, node) -> ast.expr:
        method = getattr(self, f"expr_{type(node).__name__}", None)
        if method is None:
            construct = {"Cast": "cast", "Assignment": "assignment inside an expression",
                         "ExprList": "comma operator", "CompoundLiteral": "compound literal",
                         "InitList": "initializer list"}.get(type(node).__name__,
                                                             type(node).__name__)
            raise Unsupported(construct, line_of(node), c_text(node))
        return method(node)

    def expr_ID(self, node: c_ast.ID) -> ast.expr:
        name = node.name
        if name in ("true", "false"):
            return ast.Constant(name == "true")
        if name == "NULL":
            return ast.Constant(None)
        if name in self.names.locals or name == "kvm":
            return _load(name)
        if name in self.names.vm_globals:
            return _kvm_attribute(_load("kvm"), name)
        if name in self.names.constants:
            self.names.used_constants.add(name)
            return _load(name)
        raise Unsupported(f"identifier '{name}'", line_of(node),
                          "not a local of the model, a kernel global or a modelled constant")

    def expr_Constant(self, node: c_ast.Constant) -> ast.expr:
        if node.type in ("string", "char"):
            raise Unsupported(f"{node.type} constant", line_of(node), node.value)
        text = node.value.rstrip("uUlL")
        try:
            if re.fullmatch(r"0[0-7]+", text):
                return ast.Constant(int(text, 8))
            return ast.Constant(int(text, 0))
        except ValueError:
            raise Unsupported("non-integer constant", line_of(node), node.value) from None

    def expr_UnaryOp(self, node: c_ast.UnaryOp) -> ast.expr:
        if node.op == "!":
            return ast.UnaryOp(op=ast.Not(), operand=self.expression(node.expr))
        if node.op == "~":
            return ast.UnaryOp(op=ast.Invert(), operand=self.expression(node.expr))
        if node.op == "-":
            return ast.UnaryOp(op=ast.USub(), operand=self.expression(node.expr))
        if node.op == "+":
            return self.expression(node.expr)
        if node.op == "&":
            operand = node.expr
            if isinstance(operand, c_ast.ID) and operand.name in self.names.objects:
                return _load(operand.name)
            raise Unsupported("address-of", line_of(node),
                              f"&{c_text(operand)} is not an object the model passes by "
                              "reference (an output pointer to a scalar is not modelled)")
        if node.op == "*" and isinstance(node.expr, c_ast.ID) \
                and node.expr.name in self.names.pointers:
            # an SPTE pointer: the model reads it with .get() (kernel_models.mmu_internal.SptePointer)
            return ast.Call(func=_kvm_attribute(_load(node.expr.name), "get"), args=[],
                            keywords=[])
        construct = {"*": "pointer dereference", "sizeof": "sizeof"}.get(
            node.op, f"'{node.op}' inside an expression")
        raise Unsupported(construct, line_of(node), c_text(node))

    def expr_BinaryOp(self, node: c_ast.BinaryOp) -> ast.expr:
        if node.op in ("&&", "||"):
            kind = ast.And if node.op == "&&" else ast.Or
            left = self.expression(node.left)
            # C's left-nested chain a && b && c is one BoolOp, as Python parses it
            values = left.values if isinstance(left, ast.BoolOp) and isinstance(left.op, kind) \
                else [left]
            return ast.BoolOp(op=kind(), values=[*values, self.expression(node.right)])
        if node.op in COMPARE:
            return ast.Compare(left=self.expression(node.left), ops=[COMPARE[node.op]()],
                               comparators=[self.expression(node.right)])
        if node.op in BINARY:
            return ast.BinOp(left=self.expression(node.left), op=BINARY[node.op](),
                             right=self.expression(node.right))
        raise Unsupported(f"operator '{node.op}'", line_of(node),
                          "C division truncates; not modelled" if node.op == "/" else "")

    def expr_TernaryOp(self, node: c_ast.TernaryOp) -> ast.expr:
        return ast.IfExp(test=self.expression(node.cond), body=self.expression(node.iftrue),
                         orelse=self.expression(node.iffalse))

    def expr_StructRef(self, node: c_ast.StructRef) -> ast.expr:
        return _kvm_attribute(self.expression(node.name), node.field.name)

    def expr_ArrayRef(self, node: c_ast.ArrayRef) -> ast.expr:
        return ast.Subscript(value=self.expression(node.name),
                             slice=self.expression(node.subscript), ctx=ast.Load())

    def expr_FuncCall(self, node: c_ast.FuncCall) -> ast.expr:
        return self.call(node)

    def call(self, node: c_ast.FuncCall) -> ast.expr:
        if not isinstance(node.name, c_ast.ID):
            raise Unsupported("call through a function pointer", line_of(node), c_text(node))
        name = node.name.name
        c_args = list(node.args.exprs) if node.args is not None else []
        if name in PASS_THROUGH and len(c_args) == 1:
            return self.expression(c_args[0])
        if name in ("min", "max") and len(c_args) == 2:
            return ast.Call(func=_load(name), args=[self.expression(a) for a in c_args],
                            keywords=[])
        callee = self.names.callees.get(name)
        if callee is None:
            raise Unsupported(f"call to unmodelled function '{name}'", line_of(node))
        receiver: ast.expr = _load("kvm")
        if callee.dispatched and c_args and _names_kvm(c_args[0]):
            receiver = self.expression(c_args[0])
            c_args = c_args[1:]
        elif not callee.dispatched and c_args and _names_kvm(c_args[0]) and callee.takes_kvm:
            c_args = c_args[1:]
        args = [self.expression(arg) for arg in c_args]
        count = len(args)
        if callee.has_message and count == callee.required and callee.maximum == count + 1:
            args.append(ast.Constant(f"{self.names.function}: {name}"
                                     f"({', '.join(c_text(a) for a in c_args)})"))
        elif count < callee.required or (callee.maximum is not None and count > callee.maximum):
            raise Unsupported(f"call to '{name}' with {count} arguments", line_of(node),
                              f"its model takes {callee.required}"
                              + (f" to {callee.maximum}" if callee.maximum != callee.required
                                 else ""))
        if callee.dispatched:
            return ast.Call(func=_kvm_attribute(receiver, name), args=args, keywords=[])
        if callee.takes_kvm:
            args.insert(0, _load("kvm"))
        return ast.Call(func=_load(name), args=args, keywords=[])


def _names_kvm(node) -> bool:
    """Is this argument the VM (``kvm`` or ``something->kvm``)?"""
    if isinstance(node, c_ast.ID):
        return node.name == "kvm"
    return isinstance(node, c_ast.StructRef) and node.field.name == "kvm"
