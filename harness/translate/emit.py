"""One parsed C function -> the source of one Python function (a model).

The Python function takes the VM first (``_vm``) and then the C parameters,
without a leading ``struct kvm *kvm`` (the VM is that object: ``kvm = _vm``),
which is the hand-written models' calling convention.  Everything the C does
that is not plain arithmetic or control flow is a call into the environment
(``harness.translate.environment``), whose names the generated code reads as
globals: pointer loads and stores (``_load``, ``_store``, ``_index``...),
casts (``_u64``...), struct objects (``_struct``), calls of the tree's other
functions (``_vm.<name>(...)``, so the VM's dispatch runs the translation of
that name in the same tree state) and the primitives.

Control flow is kept as C has it:

- ``for``/``while``/``do`` become ``while`` loops (``continue`` still runs a
  ``for``'s step; ``do ... while (0)`` runs once);
- ``switch`` is one pass over its case groups in order, with fall-through;
- ``goto L`` raises ``_Goto('L')``; the block that holds label ``L`` runs as
  segments, restarted at ``L``'s segment when the jump reaches it (a label
  outside every enclosing block of its goto is a miss);
- a ``break``/``continue`` that the Python wrapper of a switch or a label
  dispatcher would capture is carried out of the wrapper by a flag.

Constructs with no translation raise ``Miss(construct, file, line)``.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

from pycparser import c_ast, c_generator

from harness.translate.c_types import (SIGNED, SIZES, UNSIGNED, Signature, _base,  # noqa: F401
                                       parameters, signature, type_of)

RESERVED = set(keyword.kwlist) | {"_vm", "print", "object"}
BINARY = {"+": "+", "-": "-", "*": "*", "%": "%", "<<": "<<", ">>": ">>", "&": "&", "|": "|",
          "^": "^", "==": "==", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
RISKY = re.compile(r"~|<<|(?<![eE])-")


class Miss(Exception):
    """A construct the translator does not handle (``line`` in ``file``)."""

    def __init__(self, construct: str, file: str, line: int):
        self.construct, self.file, self.line = construct, file, line
        super().__init__(f"{construct} at {file.rsplit('/', 1)[-1]}:{line}")


def py_name(name: str) -> str:
    return name + "_" if name in RESERVED else name


@dataclass
class Context:
    """What names mean in the unit: the tree's functions, enum constants, globals."""

    signatures: dict[str, Signature]
    constants: dict[str, int]
    globals: frozenset[str]
    primitives: frozenset[str]
    statement_macros: frozenset[str] = frozenset()
    host: dict = field(default_factory=dict)        # host model name -> takes kvm first
    name_arguments: frozenset[str] = frozenset()
    lvalue_first: frozenset[str] = frozenset()
    foreach_cursors: dict = field(default_factory=dict)   # iterator macro -> cursor arguments


@dataclass
class Var:
    kind: str                  # "scalar", "bool", "pointer", "struct", "array", "box"
    ctype: str = ""


class Emitter:
    def __init__(self, func: c_ast.FuncDef, context: Context, file: str):
        self.func = func
        self.context = context
        self.file = file
        self.vars: dict[str, Var] = {}
        self.lines: list[str] = []
        self.counter = 0
        self.frames: list[list] = []        # ["loop"] / ["switch", flag, kinds] / ["dispatch", ...]
        self.sig = signature(func)
        self.boxed = self._address_taken()
        self.warn_sites: dict[str, int] = {}   # a WARN's call text -> how many so far

    # -- helpers ------------------------------------------------------------
    def miss(self, construct: str, node) -> Miss:
        coord = getattr(node, "coord", None)
        return Miss(construct, (coord.file if coord and coord.file else self.file),
                    coord.line if coord else 0)

    def temp(self, stem: str) -> str:
        self.counter += 1
        return f"_{stem}{self.counter}"

    def out(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def _address_taken(self) -> set[str]:
        """Scalar locals and parameters whose address the body takes (``&x``): boxed."""
        found = set()

        class Visitor(c_ast.NodeVisitor):
            def visit_UnaryOp(self, node):          # noqa: N802 - pycparser's API
                if node.op == "&" and isinstance(node.expr, c_ast.ID):
                    found.add(node.expr.name)
                self.generic_visit(node)

        Visitor().visit(self.func.body)
        return found

    def declare(self, name: str, typ) -> Var:
        kind, base = type_of(typ)
        if name in self.boxed and kind in ("scalar", "bool", "pointer"):
            var = Var("box", base)
        else:
            var = Var(kind, base)
        self.vars[name] = var
        return var

    # -- the function -------------------------------------------------------
    def function(self) -> str:
        params = ["_vm"]
        prologue = []
        for i, param in parameters(self.func):
            if param is None:
                params.append("*varargs")
                continue
            var = self.declare(param.name, param.type)
            if i == 0 and self.sig.takes_kvm and param.name == "kvm":
                prologue.append("kvm = _vm")
                continue
            params.append(py_name(param.name))
            if type_of(param.type) == ("pointer", "struct kvm_rmap_head"):
                prologue.append(f"{py_name(param.name)} = _rmap_head({py_name(param.name)})")
            if var.kind == "box":
                prologue.append(f"{py_name(param.name)} = [{py_name(param.name)}]")
            if var.kind == "struct":        # passed by value: the callee's own copy
                prologue.append(f"{py_name(param.name)} = _copy({py_name(param.name)})")
        self.out(0, f"def {py_name(self.sig.name)}({', '.join(params)}):")
        for line in prologue:
            self.out(1, line)
        start = len(self.lines)
        self.block(self.func.body.block_items or [], 1)
        if len(self.lines) == start:
            self.out(1, "pass")
        return "\n".join(self.lines) + "\n"

    # -- statements ---------------------------------------------------------
    def block(self, items, depth: int) -> None:
        labels = [i for i, item in enumerate(items) if isinstance(item, c_ast.Label)]
        if labels:
            self.dispatch(items, labels, depth)
            return
        for item in items:
            self.statement(item, depth)

    def body(self, node, depth: int) -> None:
        start = len(self.lines)
        if isinstance(node, c_ast.Compound):
            self.block(node.block_items or [], depth)
        elif node is not None:
            self.statement(node, depth)
        if len(self.lines) == start:
            self.out(depth, "pass")

    def dispatch(self, items, labels, depth: int) -> None:
        pc, flag = self.temp("pc"), self.temp("ctl")
        segments = [items[:labels[0]]] if labels[0] else [[]]
        names = {}
        for k, index in enumerate(labels):
            end = labels[k + 1] if k + 1 < len(labels) else len(items)
            label = items[index]
            names[label.name] = len(segments)
            segments.append([label.stmt] + list(items[index + 1:end]))
        self.out(depth, f"{pc} = 0")
        self.out(depth, f"{flag} = None")
        self.out(depth, "while True:")
        self.out(depth + 1, "try:")
        frame = ["dispatch", flag, set()]
        self.frames.append(frame)
        for k, segment in enumerate(segments):
            self.out(depth + 2, f"if {pc} <= {k}:")
            start = len(self.lines)
            for item in segment:
                if item is not None:
                    self.statement(item, depth + 3)
            if len(self.lines) == start:
                self.out(depth + 3, "pass")
        self.frames.pop()
        self.out(depth + 2, "break")
        self.out(depth + 1, "except _Goto as _jump:")
        table = ", ".join(f"{name!r}: {k}" for name, k in names.items())
        self.out(depth + 2, f"{pc} = {{{table}}}.get(_jump.label, -1)")
        self.out(depth + 2, f"if {pc} < 0:")
        self.out(depth + 3, "raise")
        self.carry_out(frame, depth)

    def carry_out(self, frame, depth: int) -> None:
        for kind in sorted(frame[2]):
            self.out(depth, f"if {frame[1]} == {kind!r}:")
            self.jump(kind, depth + 1)

    def jump(self, kind: str, depth: int) -> None:
        """``break`` or ``continue`` of the innermost C loop (or switch, for break)."""
        if not self.frames:
            raise Miss(f"{kind} outside a loop", self.file, 0)
        top = self.frames[-1]
        if top[0] == "loop" or (top[0] == "switch" and kind == "break"):
            self.out(depth, kind)
            return
        top[2].add(kind)
        self.out(depth, f"{top[1]} = {kind!r}")
        self.out(depth, "break")

    def statement(self, node, depth: int) -> None:  # noqa: C901 - one branch per C statement
        if isinstance(node, c_ast.Compound):
            self.block(node.block_items or [], depth)
        elif isinstance(node, c_ast.Decl):
            self.declaration(node, depth)
        elif isinstance(node, c_ast.DeclList):
            for decl in node.decls:
                self.declaration(decl, depth)
        elif isinstance(node, c_ast.Assignment):
            self.assignment(node, depth)
        elif isinstance(node, c_ast.UnaryOp) and node.op in ("p++", "p--", "++", "--"):
            op = "+" if "+" in node.op else "-"
            self.store(node.expr, f"({self.expr(node.expr)} {op} 1)", depth, node)
        elif isinstance(node, c_ast.FuncCall):
            self.out(depth, self.call(node, statement=True))
        elif isinstance(node, c_ast.If):
            self.out(depth, f"if {self.cond(node.cond)}:")
            self.body(node.iftrue, depth + 1)
            if node.iffalse is not None:
                self.out(depth, "else:")
                self.body(node.iffalse, depth + 1)
        elif isinstance(node, c_ast.Return):
            self.out(depth, "return" if node.expr is None else f"return {self.returned(node.expr)}")
        elif isinstance(node, c_ast.While):
            self.out(depth, f"while {self.cond(node.cond)}:")
            self.loop_body(node.stmt, depth + 1)
        elif isinstance(node, c_ast.DoWhile):
            self.do_while(node, depth)
        elif isinstance(node, c_ast.For):
            self.for_loop(node, depth)
        elif isinstance(node, c_ast.Switch):
            self.switch(node, depth)
        elif isinstance(node, c_ast.Break):
            self.jump("break", depth)
        elif isinstance(node, c_ast.Continue):
            self.jump("continue", depth)
        elif isinstance(node, c_ast.Goto):
            self.out(depth, f"raise _Goto({node.name!r})")
        elif isinstance(node, c_ast.Label):
            # a label not directly in a block (e.g. the body of an if): not handled
            raise self.miss("label not at block level", node)
        elif isinstance(node, c_ast.EmptyStatement):
            pass
        elif isinstance(node, (c_ast.Case, c_ast.Default)):
            raise self.miss("case label outside a switch body", node)
        elif isinstance(node, c_ast.ExprList):
            for expr in node.exprs:
                self.statement(expr, depth)
        elif isinstance(node, (c_ast.Typedef, c_ast.Pragma, c_ast.StaticAssert)):
            pass
        elif isinstance(node, (c_ast.ID, c_ast.Constant, c_ast.Cast, c_ast.BinaryOp,
                               c_ast.StructRef, c_ast.ArrayRef, c_ast.TernaryOp, c_ast.UnaryOp)):
            self.out(depth, self.expr(node))
        else:
            raise self.miss(f"statement {type(node).__name__}", node)

    def loop_body(self, node, depth: int) -> None:
        self.frames.append(["loop"])
        self.body(node, depth)
        self.frames.pop()

    def do_while(self, node, depth: int) -> None:
        if isinstance(node.cond, c_ast.Constant) and node.cond.value == "0":
            self.out(depth, "for _once in (0,):")
            self.loop_body(node.stmt, depth + 1)
            return
        first = self.temp("first")
        self.out(depth, f"{first} = True")
        self.out(depth, f"while {first} or {self.cond(node.cond)}:")
        self.out(depth + 1, f"{first} = False")
        self.loop_body(node.stmt, depth + 1)

    def for_loop(self, node, depth: int) -> None:
        foreach = _foreach_call(node)
        if foreach is not None:
            self.foreach(node, foreach, depth)
            return
        if node.init is not None:
            self.statement(node.init, depth)
        cond = self.cond(node.cond) if node.cond is not None else "True"
        if node.next is None:
            self.out(depth, f"while {cond}:")
            self.loop_body(node.stmt, depth + 1)
            return
        if not _has_own_continue(node.stmt):
            self.out(depth, f"while {cond}:")
            self.loop_body(node.stmt, depth + 1)
            self.statement(node.next, depth + 1)
            return
        first = self.temp("first")
        self.out(depth, f"{first} = True")
        self.out(depth, "while True:")
        self.out(depth + 1, f"if {first}:")
        self.out(depth + 2, f"{first} = False")
        self.out(depth + 1, "else:")
        self.statement(node.next, depth + 2)
        self.out(depth + 1, f"if not {cond}:")
        self.out(depth + 2, "break")
        self.loop_body(node.stmt, depth + 1)

    def foreach(self, node, call: c_ast.FuncCall, depth: int) -> None:
        """An iterator macro from outside the tree (``list_for_each_entry``...): the
        environment's generator yields successive values of its cursor argument."""
        args = call.args.exprs
        macro = args[0].value.strip('"')
        positions = self.context.foreach_cursors.get(macro, (0,))
        cursors = [args[1 + p] for p in positions if 1 + p < len(args)]
        others = [a for i, a in enumerate(args[1:]) if i not in positions]
        rest = ", ".join(repr(_member_name(a)) if _member_name(a) not in (None, *self.vars)
                         else self.expr(a) for a in others)
        self.out(depth, f"for _cursor in _foreach(_vm, {macro!r}, ({rest}{',' if rest else ''})):")
        for k, cursor in enumerate(cursors):
            value = "_cursor" if len(cursors) == 1 else f"_cursor[{k}]"
            self.store(cursor, value, depth + 1, cursor)
        self.loop_body(node.stmt, depth + 1)

    def switch(self, node, depth: int) -> None:
        value, matched, flag = self.temp("switch"), self.temp("matched"), self.temp("ctl")
        self.out(depth, f"{value} = {self.expr(node.cond)}")
        self.out(depth, f"{matched} = False")
        self.out(depth, f"{flag} = None")
        items = node.stmt.block_items if isinstance(node.stmt, c_ast.Compound) else [node.stmt]
        groups = []          # (labels, statements)
        for item in items or []:
            while isinstance(item, (c_ast.Case, c_ast.Default)):
                labels = [item]
                statements = list(item.stmts or [])
                # nested "case A: case B:" parse as Case(A, [Case(B, ...)])
                while len(statements) == 1 and isinstance(statements[0], (c_ast.Case, c_ast.Default)):
                    labels.append(statements[0])
                    statements = list(statements[0].stmts or [])
                groups.append((labels, statements))
                item = None
            if item is not None:
                if not groups:
                    raise self.miss("statement before the first case label", item)
                groups[-1][1].append(item)
        values = [self.expr(label.expr) for labels, _ in groups for label in labels
                  if isinstance(label, c_ast.Case)]
        self.out(depth, "for _once in (0,):")
        frame = ["switch", flag, set()]
        self.frames.append(frame)
        for labels, statements in groups:
            tests = []
            for label in labels:
                if isinstance(label, c_ast.Default):
                    tests.append(f"{value} not in ({', '.join(values)}{',' if values else ''})")
                else:
                    tests.append(f"{value} == {self.expr(label.expr)}")
            self.out(depth + 1, f"if {matched} or {' or '.join(tests)}:")
            self.out(depth + 2, f"{matched} = True")
            for statement in statements:
                self.statement(statement, depth + 2)
        self.frames.pop()
        self.carry_out(frame, depth)

    def declaration(self, node: c_ast.Decl, depth: int) -> None:
        if node.name is None or isinstance(node.type, c_ast.FuncDecl):
            return
        if "static" in (node.storage or []):
            raise self.miss("static local variable", node)
        var = self.declare(node.name, node.type)
        name = py_name(node.name)
        init = node.init
        if var.kind == "array":
            size = self.expr(node.type.dim) if node.type.dim is not None else "0"
            if isinstance(init, c_ast.InitList):
                value = "[" + ", ".join(self.expr(e) for e in init.exprs) + "]"
                self.out(depth, f"{name} = _array({size}, {value})")
            else:
                self.out(depth, f"{name} = _array({size})")
            return
        if var.kind == "struct":
            if isinstance(init, c_ast.InitList):
                self.out(depth, f"{name} = {self.struct_init(var.ctype, init)}")
            elif init is not None:
                self.out(depth, f"{name} = _copy({self.expr(init)})")
            else:
                self.out(depth, f"{name} = _struct({var.ctype!r})")
            return
        if init is None:
            value = "None" if var.kind == "pointer" or (var.kind == "box" and
                                                        isinstance(node.type, c_ast.PtrDecl)) \
                else ("False" if var.kind == "bool" else "0")
        elif isinstance(init, c_ast.InitList):
            value = self.struct_init(var.ctype, init)
        else:
            value = self.converted(init, var)
        self.out(depth, f"{name} = [{value}]" if var.kind == "box" else f"{name} = {value}")

    def struct_init(self, ctype: str, init: c_ast.InitList) -> str:
        fields = []
        positional = []
        for item in init.exprs:
            if isinstance(item, c_ast.NamedInitializer):
                names = [n.name for n in item.name if isinstance(n, c_ast.ID)]
                value = (self.struct_init("", item.expr) if isinstance(item.expr, c_ast.InitList)
                         else self.expr(item.expr))
                if len(names) == 1:
                    fields.append(f"{py_name(names[0])}={value}")
                else:
                    raise self.miss("nested designated initializer", item)
            elif isinstance(item, c_ast.InitList):
                positional.append(self.struct_init("", item))
            else:
                positional.append(self.expr(item))
        if positional and not fields:
            if len(positional) == 1 and positional[0] == "0":
                return f"_struct({ctype!r})"
            return f"_struct({ctype!r}, _positional=({', '.join(positional)},))"
        return f"_struct({ctype!r}{', ' if fields else ''}{', '.join(fields)})"

    def converted(self, expr, var: Var) -> str:
        text = self.expr(expr)
        if var.kind == "bool":
            return f"bool({text})" if not _is_boolean(expr) else text
        width = UNSIGNED.get(var.ctype)
        if var.kind in ("scalar", "box") and width and RISKY.search(text):
            return f"_u{width}({text})"
        return text

    def returned(self, expr) -> str:
        text = self.expr(expr)
        if self.sig.returns == "bool" and not _is_boolean(expr):
            return f"bool({text})"
        width = UNSIGNED.get(self.sig.returns)
        if width and RISKY.search(text):
            return f"_u{width}({text})"
        return text

    def assignment(self, node: c_ast.Assignment, depth: int) -> None:
        if isinstance(node.rvalue, c_ast.Assignment) and node.op == "=":
            # a = b = value: b first, then a from b
            self.statement(node.rvalue, depth)
            self.store(node.lvalue, self.expr(node.rvalue.lvalue), depth, node)
            return
        if node.op == "=":
            value = self.expr(node.rvalue)
        else:
            op = node.op[:-1]
            value = f"({self.expr(node.lvalue)} {BINARY[op] if op != '/' else '//'} " \
                    f"{self.expr(node.rvalue)})"
        var = self.vars.get(node.lvalue.name) if isinstance(node.lvalue, c_ast.ID) else None
        if var is not None:
            if var.kind == "bool" and not (node.op == "=" and _is_boolean(node.rvalue)):
                value = f"bool({value})"
            width = UNSIGNED.get(var.ctype)
            if width and RISKY.search(value):
                value = f"_u{width}({value})"
        if node.op == "=" and (var is not None and var.kind == "struct"
                               or self.is_struct_value(node.rvalue)):
            value = f"_copy({value})"                       # struct assignment copies
        self.store(node.lvalue, value, depth, node)

    def is_struct_value(self, node) -> bool:
        """A struct-valued local (its assignment to a field must copy it, as C does)."""
        if isinstance(node, c_ast.ID):
            var = self.vars.get(node.name)
            return var is not None and var.kind == "struct"
        return False

    def target(self, node) -> str | None:
        """A Python assignment target for simple lvalues, None when a call must store."""
        if isinstance(node, c_ast.ID):
            var = self.vars.get(node.name)
            if var is None:
                # a kernel global (the tree's, or one defined outside it): a VM attribute
                return f"_vm.{node.name}"
            return f"{py_name(node.name)}[0]" if var.kind == "box" else py_name(node.name)
        if isinstance(node, c_ast.StructRef):
            return f"{self.expr(node.name)}.{py_name(node.field.name)}"
        return None

    def store(self, lvalue, value: str, depth: int, node) -> None:
        target = self.target(lvalue)
        if target is not None:
            self.out(depth, f"{target} = {value}")
        elif isinstance(lvalue, c_ast.ArrayRef):
            self.out(depth, f"_store_index({self.expr(lvalue.name)}, {self.expr(lvalue.subscript)},"
                            f" {value})")
        elif isinstance(lvalue, c_ast.UnaryOp) and lvalue.op == "*":
            self.out(depth, f"_store({self.expr(lvalue.expr)}, {value})")
        elif isinstance(lvalue, c_ast.Cast):
            self.store(lvalue.expr, value, depth, node)
        else:
            raise self.miss(f"assignment to {type(lvalue).__name__}", node)

    # -- expressions --------------------------------------------------------
    def cond(self, node) -> str:
        return self.expr(node, condition=True)

    def expr(self, node, condition: bool = False) -> str:  # noqa: C901 - one branch per form
        if isinstance(node, c_ast.Constant):
            return constant(node, self)
        if isinstance(node, c_ast.ID):
            return self.identifier(node)
        if isinstance(node, c_ast.BinaryOp):
            if node.op in ("&&", "||"):
                word = "and" if node.op == "&&" else "or"
                text = f"({self.cond(node.left)} {word} {self.cond(node.right)})"
                return text if condition else f"bool{text}"
            if node.op == "/":
                return f"_div({self.expr(node.left)}, {self.expr(node.right)})"
            if node.op in ("+", "-") and (self.is_pointer(node.left) or
                                          (node.op == "+" and self.is_pointer(node.right))):
                left, right = node.left, node.right
                if node.op == "+" and self.is_pointer(right):
                    left, right = right, left
                if node.op == "-" and self.is_pointer(right):
                    return f"_ptr_diff({self.expr(left)}, {self.expr(right)})"
                sign = "" if node.op == "+" else "-"
                return f"_ptr_add({self.expr(left)}, {sign}{self.expr(right)})"
            return f"({self.expr(node.left)} {BINARY[node.op]} {self.expr(node.right)})"
        if isinstance(node, c_ast.UnaryOp):
            return self.unary(node, condition)
        if isinstance(node, c_ast.TernaryOp):
            if isinstance(node.iftrue, c_ast.ID) and node.iftrue.name == "__kconform_same":
                same = self.temp("same")
                return f"({same} if ({same} := {self.expr(node.cond)}) else {self.expr(node.iffalse)})"
            return (f"({self.expr(node.iftrue)} if {self.cond(node.cond)} "
                    f"else {self.expr(node.iffalse)})")
        if isinstance(node, c_ast.Cast):
            return self.cast(node)
        if isinstance(node, c_ast.StructRef):
            base = self.expr(node.name)
            if node.field.name == "spt" and node.type == "->":
                return f"_spt({base})"
            return f"{base}.{py_name(node.field.name)}"
        if isinstance(node, c_ast.ArrayRef):
            return f"_index({self.expr(node.name)}, {self.expr(node.subscript)})"
        if isinstance(node, c_ast.FuncCall):
            return self.call(node)
        if isinstance(node, c_ast.Assignment):
            return self.assign_expr(node)
        if isinstance(node, c_ast.ExprList):
            return "(" + ", ".join(self.expr(e) for e in node.exprs) + ")[-1]"
        if isinstance(node, c_ast.CompoundLiteral):
            kind, base = type_of(node.type.type)
            if isinstance(node.init, c_ast.InitList):
                return self.struct_init(base, node.init)
            raise self.miss("compound literal", node)
        if isinstance(node, c_ast.InitList):
            return self.struct_init("", node)
        if isinstance(node, c_ast.Typename):
            return repr(_base(node.type))
        raise self.miss(f"expression {type(node).__name__}", node)

    def is_pointer(self, node) -> bool:
        if isinstance(node, c_ast.ID):
            var = self.vars.get(node.name)
            return var is not None and var.kind in ("pointer", "array") and var.ctype != "struct"
        if isinstance(node, c_ast.StructRef):
            return node.field.name in ("spt", "sptep", "pt_path")
        if isinstance(node, c_ast.Cast):
            return isinstance(node.to_type.type, c_ast.PtrDecl)
        return False

    def identifier(self, node: c_ast.ID) -> str:
        name = node.name
        var = self.vars.get(name)
        if var is not None:
            return f"{py_name(name)}[0]" if var.kind == "box" else py_name(name)
        if name in ("true", "false"):
            return "True" if name == "true" else "False"
        if name == "NULL":
            return "None"
        if name in ("__func__", "__FUNCTION__"):    # C99 6.4.2.2: the enclosing function's name
            return repr(self.func.decl.name)
        if name in self.context.constants:
            return str(self.context.constants[name])
        if name in self.context.signatures:
            return f"_fnref(_vm, {name!r})"
        if name in self.context.globals:
            return f"_vm.{name}"
        if name in self.context.primitives:
            return f"_prim(_vm, {name!r})"
        return f"_unknown_value(_vm, {name!r})"

    def unary(self, node: c_ast.UnaryOp, condition: bool) -> str:
        op = node.op
        if op == "!":
            return f"(not {self.cond(node.expr)})"
        if op == "~":
            return f"(~{self.expr(node.expr)})"
        if op == "-":
            return f"(-{self.expr(node.expr)})"
        if op == "+":
            return self.expr(node.expr)
        if op == "*":
            return f"_load({self.expr(node.expr)})"
        if op == "&":
            return self.address(node.expr)
        if op == "sizeof":
            return self.sizeof(node.expr)
        if op in ("p++", "p--", "++", "--"):
            delta = "1" if "+" in op else "-1"
            target = self.target(node.expr)
            if target is not None and isinstance(node.expr, c_ast.ID) and \
                    self.vars.get(node.expr.name, Var("")).kind != "box":
                if op.startswith("p"):
                    return f"(({target} := {target} + {delta}) - {delta})"
                return f"({target} := {target} + {delta})"
            post = "True" if op.startswith("p") else "False"
            inner = node.expr
            if isinstance(inner, c_ast.ID) and self.vars.get(inner.name, Var("")).kind == "box":
                return f"_step(_box_ref({py_name(inner.name)}), {delta}, {post})"
            if isinstance(inner, c_ast.StructRef):
                return (f"_step(_field_ref({self.expr(inner.name)}, "
                        f"{py_name(inner.field.name)!r}), {delta}, {post})")
            if isinstance(inner, c_ast.ArrayRef):
                return (f"_step(_ptr_add({self.expr(inner.name)}, {self.expr(inner.subscript)}),"
                        f" {delta}, {post})")
            if isinstance(inner, c_ast.UnaryOp) and inner.op == "*":
                return f"_step({self.expr(inner.expr)}, {delta}, {post})"
            if isinstance(inner, c_ast.ID) and inner.name in self.context.globals:
                return f"_step(_global_ref(_vm, {inner.name!r}), {delta}, {post})"
            raise self.miss(f"{op.strip('p')} inside an expression on a non-local", node)
        raise self.miss(f"unary {op}", node)

    def address(self, node) -> str:
        if isinstance(node, c_ast.ID):
            var = self.vars.get(node.name)
            if var is None:
                if node.name in self.context.signatures:
                    return f"_fnref(_vm, {node.name!r})"
                if node.name in self.context.globals:
                    return f"_global_ref(_vm, {node.name!r})"
                return f"_prim(_vm, {node.name!r})"
            if var.kind == "box":
                return f"_box_ref({py_name(node.name)})"
            return py_name(node.name)
        if isinstance(node, c_ast.StructRef):
            if node.field.name == "spt":
                return f"_spt({self.expr(node.name)})"
            return f"_field_ref({self.expr(node.name)}, {py_name(node.field.name)!r})"
        if isinstance(node, c_ast.ArrayRef):
            return f"_ptr_add({self.expr(node.name)}, {self.expr(node.subscript)})"
        if isinstance(node, c_ast.UnaryOp) and node.op == "*":
            return self.expr(node.expr)
        raise self.miss(f"address of {type(node).__name__}", node)

    def sizeof(self, node) -> str:
        if isinstance(node, c_ast.Typename):
            kind, base = type_of(node.type)
            if kind == "pointer":
                return "8"
            if base in SIZES:
                return str(SIZES[base])
            return f"_sizeof({base!r})"
        if isinstance(node, c_ast.UnaryOp) and node.op == "*":
            return "8"
        if isinstance(node, c_ast.ID) and node.name in self.vars:
            var = self.vars[node.name]
            if var.kind in ("pointer",):
                return "8"
            return str(SIZES.get(var.ctype, 8))
        return f"_sizeof({self.expr(node)!r})"

    def cast(self, node: c_ast.Cast) -> str:
        kind, base = type_of(node.to_type.type)
        inner = self.expr(node.expr)
        if kind == "pointer":
            return f"_as_pointer({inner})"
        if base == "void":
            return inner
        if base in ("bool", "_Bool"):
            return f"bool({inner})"
        words = base.split()
        if "unsigned" in words or base in UNSIGNED:
            width = UNSIGNED.get(base) or (32 if words in (["unsigned"], ["unsigned", "int"])
                                           else (8 if "char" in words else
                                                 (16 if "short" in words else 64)))
            return f"_u{width}({inner})"
        if base in SIGNED or set(words) <= {"signed", "int", "long", "short", "char"}:
            width = SIGNED.get(base, 64 if "long" in words else 32)
            return f"_s{width}({inner})"
        return inner

    def assign_expr(self, node: c_ast.Assignment) -> str:
        value = self.expr(node.rvalue)
        if node.op != "=":
            value = f"({self.expr(node.lvalue)} {BINARY[node.op[:-1]]} {value})"
        lvalue = node.lvalue
        if isinstance(lvalue, c_ast.ID) and lvalue.name in self.vars:
            var = self.vars[lvalue.name]
            if var.kind == "box":
                return f"_set_box({py_name(lvalue.name)}, {value})"
            if var.kind == "bool":
                value = f"bool({value})"
            return f"({py_name(lvalue.name)} := {value})"
        if isinstance(lvalue, c_ast.StructRef):
            return f"_set_field({self.expr(lvalue.name)}, {py_name(lvalue.field.name)!r}, {value})"
        if isinstance(lvalue, c_ast.ArrayRef):
            return f"_store_index({self.expr(lvalue.name)}, {self.expr(lvalue.subscript)}, {value})"
        if isinstance(lvalue, c_ast.UnaryOp) and lvalue.op == "*":
            return f"_store({self.expr(lvalue.expr)}, {value})"
        raise self.miss("assignment inside an expression", node)

    def call(self, node: c_ast.FuncCall, statement: bool = False) -> str:
        args = list(node.args.exprs) if node.args is not None else []
        if not isinstance(node.name, c_ast.ID):
            return f"_call({self.expr(node.name)}, {', '.join(self.expr(a) for a in args)})"
        name = node.name.name
        if name in self.vars:
            return f"_call({self.expr(node.name)}{''.join(', ' + self.expr(a) for a in args)})"
        if name in self.context.signatures:
            callee = self.context.signatures[name]
            if callee.takes_kvm and args:
                args = args[1:]
            return f"_vm.{name}({', '.join(self.expr(a) for a in args)})"
        if name.startswith("trace_"):
            return "None"           # tracepoints: no effect on the modelled state
        if name in self.context.host:
            if self.context.host[name] and args:
                args = args[1:]
            return f"_vm.{name}({', '.join(self.expr(a) for a in args)})"
        if name in self.context.lvalue_first and args:
            text = ", ".join([self.address(args[0])] + [self.argument(a) for a in args[1:]])
        elif name in self.context.name_arguments:
            text = ", ".join(repr(a.name) if isinstance(a, c_ast.ID) and a.name not in self.vars
                             else self.argument(a) for a in args)
        else:
            text = ", ".join(self.argument(a) for a in args)
        if name in WARN_LIKE:
            where = self.warn_site(name, args)
            return f"{name}(_vm, {text}, what={where!r})" if text else f"{name}(_vm, what={where!r})"
        if name in self.context.primitives:
            return f"{name}(_vm{', ' if text else ''}{text})"
        if name in self.context.statement_macros:
            raise self.miss(f"macro {name} (a GNU statement expression)", node)
        return f"_unknown(_vm, {name!r})({text})"

    def argument(self, node) -> str:
        """An argument of a primitive: types (``sizeof``-like macros) as their names."""
        if isinstance(node, c_ast.Typename):
            return repr(_base(node.type))
        return self.expr(node)

    def warn_site(self, name: str, args) -> str:
        """A WARN's identity in the events: its function and its condition as the C reads
        it (the nth of identical ones), never its line, which a patch above it moves: the
        same WARN of two versions must compare equal."""
        condition = " ".join(c_generator.CGenerator().visit(args[0]).split()) if args else ""
        site = f"{name}({condition})"
        self.warn_sites[site] = self.warn_sites.get(site, 0) + 1
        count = self.warn_sites[site]
        return f"{self.sig.name}: {site}" + (f" #{count}" if count > 1 else "")


WARN_LIKE = frozenset({"WARN_ON", "WARN_ON_ONCE", "WARN", "WARN_ONCE", "KVM_BUG_ON",
                       "KVM_MMU_WARN_ON", "KVM_BUG_ON_DATA_CORRUPTION", "BUG_ON", "BUG",
                       "WARN_ON_SMP"})


def constant(node: c_ast.Constant, emitter) -> str:
    value = node.value
    if node.type == "string":
        return repr(value.strip('"'))
    if node.type == "char":
        inner = value[1:-1]
        if inner.startswith("\\"):
            return str({"\\n": 10, "\\0": 0, "\\t": 9, "\\\\": 92, "\\'": 39}.get(inner, 0))
        return str(ord(inner[0]) if inner else 0)
    text = re.sub(r"[uUlL]+$", "", value)
    if re.fullmatch(r"0[0-7]+", text):
        return str(int(text, 8))
    if re.fullmatch(r"0[xX][0-9a-fA-F]+|[0-9]+", text):
        return str(int(text, 0))
    raise emitter.miss(f"constant {value}", node)


def _is_boolean(node) -> bool:
    if isinstance(node, c_ast.BinaryOp):
        return node.op in ("==", "!=", "<", ">", "<=", ">=", "&&", "||")
    if isinstance(node, c_ast.UnaryOp):
        return node.op == "!"
    if isinstance(node, c_ast.ID):
        return node.name in ("true", "false")
    return False


def _member_name(arg) -> str | None:
    """An iterator macro's member argument (``node``, ``id_node[slots->node_idx]``): a
    bare name or an indexed one, passed by name (it names a field, it holds no value)."""
    if isinstance(arg, c_ast.ArrayRef):
        arg = arg.name
    return arg.name if isinstance(arg, c_ast.ID) else None


def _foreach_call(node: c_ast.For) -> c_ast.FuncCall | None:
    cond = node.cond
    if (node.init is None and node.next is None and isinstance(cond, c_ast.FuncCall)
            and isinstance(cond.name, c_ast.ID) and cond.name.name == "__kconform_foreach"):
        return cond
    return None


def _has_own_continue(node) -> bool:
    """Does ``node`` hold a ``continue`` of the loop it is the body of?"""
    if isinstance(node, c_ast.Continue):
        return True
    if isinstance(node, (c_ast.For, c_ast.While, c_ast.DoWhile)):
        return False
    return any(_has_own_continue(child) for _, child in node.children())
