"""What the audit's statement comparison treats as the same, and why.

``kconform audit`` compares a translated C function with its hand-written
model statement by statement.  A literal comparison reports as "differs"
things that are the same program written in the models' conventions; the
rules below rewrite both sides (the translation and the model) before the
comparison, so a ``differs`` line is a real difference.  Each rule is an
equivalence that holds for every model (the reason says why), not an
exception for one function; a deliberate difference of one model is not a
rule but a listed simplification (``kernel_models.simplifications``).

``RULES`` names them for the docs and the audit's summary.
"""

from __future__ import annotations

import ast
import copy

RULES: tuple[tuple[str, str], ...] = (
    ("a bool function returns bool(x)",
     "C converts the return value of a function declared `bool` to 0 or 1; both sides' "
     "`return x` are compared as `return bool(x)` (`bool(...)`, a comparison, `not` and and/or "
     "of those are already 0 or 1; a conditional converts each arm)"),
    ("not not x is bool(x)",
     "C's `!!x` is 0 or 1, as is Python's `bool(x)`"),
    ("vcpu.kvm is kvm",
     "a model takes the VM as its first parameter `kvm`; every vCPU of a model VM has "
     "`vcpu.kvm is kvm` (operations.new_vm), so C's `vcpu->kvm->f` is the model's `kvm.f`"),
    ("an rmap head's val is the head",
     "rmap heads (`rmap_head`, `sp->parent_ptes`) are lists in the models (pte_list_desc "
     "chains are not modelled): C's `head->val` tested for truth is the list's truth"),
    ("sp.spt passed is sp",
     "a page table handed to a callee as `sp->spt` is handed as its page `sp` in the models "
     "(the model callee reads the table and its pfn from the kvm_mmu_page)"),
    ("dead initialiser",
     "`x = <constant>` at the top of a body (a C declaration's initialiser) that no path "
     "reads before assigning x again changes nothing; it is left out on both sides"),
)


class _Equivalences(ast.NodeTransformer):
    def __init__(self, params: set[str]):
        self.vcpu_is_kvm = {"kvm", "vcpu"} <= params

    def visit_UnaryOp(self, node: ast.UnaryOp):
        self.generic_visit(node)
        inner = node.operand
        if (isinstance(node.op, ast.Not) and isinstance(inner, ast.UnaryOp)
                and isinstance(inner.op, ast.Not)):
            return ast.Call(func=ast.Name(id="bool", ctx=ast.Load()), args=[inner.operand],
                            keywords=[])
        return node

    def visit_Attribute(self, node: ast.Attribute):
        self.generic_visit(node)
        value = node.value
        if (self.vcpu_is_kvm and node.attr == "kvm" and isinstance(value, ast.Name)
                and value.id == "vcpu"):
            return ast.Name(id="kvm", ctx=node.ctx)
        if node.attr == "val" and _is_rmap_head(value):
            return value
        return node

    def visit_Call(self, node: ast.Call):
        self.generic_visit(node)
        node.args = [a.value if isinstance(a, ast.Attribute) and a.attr == "spt" else a
                     for a in node.args]
        return node


def _is_rmap_head(node: ast.expr) -> bool:
    return ((isinstance(node, ast.Attribute) and node.attr == "parent_ptes")
            or (isinstance(node, ast.Name) and node.id == "rmap_head"))


def _reads(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load)
               for n in ast.walk(node))


def _read_before_write(statements: list[ast.stmt], name: str) -> tuple[bool, bool]:
    """(may ``name`` be read before it is assigned, is it assigned on every path)."""
    for stmt in statements:
        if isinstance(stmt, ast.Assign):
            if _reads(stmt.value, name):
                return True, False
            if any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
                return False, True
            if any(_reads(t, name) for t in stmt.targets):
                return True, False
            continue
        if isinstance(stmt, ast.If):
            if _reads(stmt.test, name):
                return True, False
            read_body, set_body = _read_before_write(stmt.body, name)
            read_else, set_else = _read_before_write(stmt.orelse, name)
            if read_body or read_else:
                return True, False
            if set_body and set_else:
                return False, True
            continue
        if _reads(stmt, name):          # loops, returns, calls...: any read counts
            return True, False
    return False, False


def _without_dead_initialisers(body: list[ast.stmt]) -> list[ast.stmt]:
    kept = []
    for index, stmt in enumerate(body):
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
                and isinstance(stmt.value, ast.Constant)
                and not _read_before_write(body[index + 1:], stmt.targets[0].id)[0]):
            continue
        kept.append(stmt)
    return kept


def returns_bool(source) -> bool:
    """Is the C function declared to return ``bool`` (``_Bool``)?"""
    head = source.signature[:source.signature.index("(")] if "(" in source.signature else ()
    return "bool" in head or "_Bool" in head


def c_bool(node: ast.expr) -> ast.expr:
    """``node`` as C converts it to ``bool`` (0 or 1): ``bool(x)`` unless already boolean;
    a conditional converts each arm."""
    if isinstance(node, ast.IfExp):
        return ast.IfExp(test=node.test, body=c_bool(node.body), orelse=c_bool(node.orelse))
    if _is_boolean(node):
        return node
    return ast.Call(func=ast.Name(id="bool", ctx=ast.Load()), args=[node], keywords=[])


def _is_boolean(node: ast.expr) -> bool:
    if isinstance(node, ast.Compare) or (isinstance(node, ast.UnaryOp)
                                         and isinstance(node.op, ast.Not)):
        return True
    if isinstance(node, ast.Constant):
        return isinstance(node.value, bool)
    if isinstance(node, ast.BoolOp):
        return all(_is_boolean(v) for v in node.values)
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "bool")


class _BoolReturns(ast.NodeTransformer):
    """C's conversion of a ``bool`` function's return value (``return x & MASK`` is 0 or 1)."""

    def visit_Return(self, node: ast.Return):
        if node.value is not None:
            node.value = c_bool(node.value)
        return node


def rewrite(statements: list[ast.stmt], params: set[str], bool_function: bool = False,
            ) -> list[ast.stmt]:
    """``statements`` (a model's or a translation's body) with every rule applied;
    ``bool_function``: the C function is declared to return ``bool``."""
    rules = _Equivalences(params)
    body = [rules.visit(copy.deepcopy(s)) for s in statements]
    if bool_function:
        body = [_BoolReturns().visit(s) for s in body]
    return [ast.fix_missing_locations(s) for s in _without_dead_initialisers(body)]
