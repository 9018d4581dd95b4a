"""C types as the translator needs them: widths, sizes, declaration kinds, signatures."""

from __future__ import annotations

from dataclasses import dataclass

from pycparser import c_ast

UNSIGNED = {"u64": 64, "__u64": 64, "uint64_t": 64, "gfn_t": 64, "gpa_t": 64, "gva_t": 64,
            "hpa_t": 64, "hva_t": 64, "kvm_pfn_t": 64, "hfn_t": 64, "phys_addr_t": 64,
            "size_t": 64, "uintptr_t": 64, "ulong": 64, "u32": 32, "__u32": 32, "uint32_t": 32,
            "uint": 32, "u16": 16, "__u16": 16, "u8": 8, "__u8": 8, "uint8_t": 8,
            "pt_element_t": 64}
SIGNED = {"s64": 64, "__s64": 64, "int64_t": 64, "s32": 32, "int": 32, "s16": 16, "s8": 8,
          "long": 64, "short": 16, "char": 8, "ssize_t": 64, "loff_t": 64}
SIZES = {**{k: v // 8 for k, v in UNSIGNED.items()}, **{k: v // 8 for k, v in SIGNED.items()},
         "bool": 1, "_Bool": 1}

@dataclass(frozen=True)
class Signature:
    name: str
    params: tuple[str, ...]
    takes_kvm: bool            # first parameter is ``struct kvm *kvm``: the VM itself
    returns: str               # "bool", "void", an integer type, "pointer", "other"


def type_of(node) -> tuple[str, str]:
    """(kind, base type name) of a declaration's type."""
    if isinstance(node, c_ast.PtrDecl):
        return "pointer", _base(node.type)
    if isinstance(node, c_ast.ArrayDecl):
        return "array", _base(node.type)
    if isinstance(node, c_ast.FuncDecl):
        return "pointer", "function"
    base = _base(node)
    if base.startswith(("struct ", "union ")):
        return "struct", base
    if base in ("bool", "_Bool"):
        return "bool", base
    return "scalar", base


def _base(node) -> str:
    while isinstance(node, (c_ast.TypeDecl, c_ast.PtrDecl, c_ast.ArrayDecl)):
        node = node.type
    if isinstance(node, c_ast.IdentifierType):
        return " ".join(n for n in node.names if n not in ("const", "volatile"))
    if isinstance(node, c_ast.Struct):
        return f"struct {node.name}"
    if isinstance(node, c_ast.Union):
        return f"union {node.name}"
    if isinstance(node, c_ast.Enum):
        return "int"
    return "other"


def parameters(func: c_ast.FuncDef):
    """The function's parameters in order, as (position, param); an ellipsis
    comes as (position, None) and unnamed parameters (``void``) are left out."""
    decl = func.decl.type
    if decl.args is None:
        return
    for i, param in enumerate(decl.args.params):
        if isinstance(param, c_ast.EllipsisParam):
            yield i, None
        elif param.name is not None:
            yield i, param


def signature(func: c_ast.FuncDef) -> Signature:
    decl = func.decl.type
    params = []
    takes_kvm = False
    for i, param in parameters(func):
        if param is None:
            params.append("*varargs")
            continue
        if i == 0 and param.name == "kvm" and type_of(param.type) == ("pointer", "struct kvm"):
            takes_kvm = True
            continue
        params.append(param.name)
    kind, base = type_of(decl.type)
    returns = "pointer" if kind == "pointer" else ("bool" if kind == "bool" else
                                                  ("void" if base == "void" else base))
    return Signature(func.decl.name, tuple(params), takes_kvm, returns)
