"""Cut a preprocessed translation unit into its function definitions, and parse each.

``definitions(lines)`` finds every top-level function definition of the
unit's text (the file itself and the tree headers it includes), with the
file and line it starts at.  ``parse_definition`` hands one definition to
pycparser after the GNU forms a C99 parser does not read are dropped
(attributes, ``inline`` and section markers, lock annotations after the
parameter list); kernel typedef names the tree uses but does not define
(they live in headers outside it) are declared opaque: ``KERNEL_TYPEDEFS``,
the tree's own ``typedef`` lines, and any identifier the parser stops
before where a type must stand (one retry per name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pycparser import c_ast, c_parser

from harness.translate.preprocess import Line, tokens

KERNEL_TYPEDEFS = (
    "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "__u8", "__u16", "__u32", "__u64",
    "__s64", "__le64", "bool", "size_t", "ssize_t", "uintptr_t", "ulong", "uint",
    "gfn_t", "gpa_t", "gva_t", "hpa_t", "hva_t", "hfn_t", "kvm_pfn_t", "phys_addr_t",
    "tdp_ptep_t", "atomic_t", "atomic64_t", "atomic_long_t", "spinlock_t", "rwlock_t",
    "raw_spinlock_t", "cpumask_var_t", "pgprot_t", "pte_t", "pmd_t", "pud_t", "p4d_t", "pgd_t",
    "gfp_t", "loff_t", "wait_queue_head_t", "pfn_t", "vm_fault_t", "uint64_t", "uint32_t",
    "uint8_t", "int64_t", "u_int", "blkcnt_t", "fmode_t", "refcount_t", "kvm_pte_t",
    "gfn_handler_t", "hva_handler_t", "on_lock_fn_t", "on_unlock_fn_t", "pmd_val_t",
    "pteval_t", "pmdval_t", "cpumask_t", "nodemask_t", "rcuwait_t", "wait_queue_entry_t",
    "__poll_t", "seqcount_t", "xa_mark_t", "kuid_t", "ktime_t", "pid_t",
)

PRELUDE_TYPES = "typedef unsigned long long __kconform_opaque;\n"

# Words with no meaning for a translation (sections, inlining, sparse annotations).
DROPPED_WORDS = frozenset({
    "inline", "__inline", "__inline__", "__always_inline", "noinline", "__init", "__exit",
    "__read_mostly", "__ro_after_init", "__rcu", "__user", "__iomem", "__must_check",
    "__maybe_unused", "__always_unused", "__cold", "__hot", "notrace", "__weak", "__force",
    "__percpu", "asmlinkage", "__visible", "__noreturn", "__used", "__flatten",
    "noinstr", "__initdata", "__init_or_module", "__sched", "fallthrough", "__aligned_largest",
    "__nocfi", "__no_kcsan", "__no_sanitize_address", "__randomize_layout",
})
ANNOTATION_CALLS = frozenset({
    "__attribute__", "__attribute", "__acquires", "__releases", "__must_hold",
    "__cond_acquires", "__cond_releases", "__printf", "__aligned", "__section",
    "__diag_ignore", "__no_sanitize_or_inline", "__guarded_by", "__counted_by",
})


@dataclass(frozen=True)
class Definition:
    """One function definition of a unit: its name, origin and (preprocessed) text."""

    name: str
    file: str
    line: int                     # first line, in ``file``
    text: str                     # preprocessed, one line per source line
    end_line: int = 0


class ParseMiss(Exception):
    def __init__(self, file: str, line: int, construct: str):
        self.file, self.line, self.construct = file, line, construct
        super().__init__(f"{file.rsplit('/', 1)[-1]}:{line}: {construct}")


IDENT = re.compile(r"[A-Za-z_]\w*")


def _scan_items(lines: list[Line]):
    """Top-level items as (first line index, last line index, text, is_function)."""
    item_start, depth, parens, item = None, 0, 0, []
    for index, line in enumerate(lines):
        text = line.text
        if not text.strip() and item_start is None:
            continue
        pieces = []
        for token in tokens(text):
            if token == "\n":
                continue
            if item_start is None:
                item_start = index
            pieces.append(token)
            if token == "(":
                parens += 1
            elif token == ")":
                parens -= 1
            elif token == "{":
                if depth == 0 and parens == 0:
                    head = " ".join(item + pieces[:-1])
                    if _looks_like_function(head):
                        item.append("\x00FUNC")
                depth += 1
            elif token == "}":
                depth -= 1
                if depth == 0 and "\x00FUNC" in item:
                    item += pieces
                    yield item_start, index, _join(item), True
                    item_start, item, pieces = None, [], []
            elif token == ";" and depth == 0 and parens == 0:
                item += pieces
                yield item_start, index, _join(item), False
                item_start, item, pieces = None, [], []
        item += pieces
        if item_start is not None:
            item.append("\n")


def _join(item: list[str]) -> str:
    return " ".join(t for t in item if t != "\x00FUNC").replace(" \n ", "\n").replace("\n ", "\n")


def _looks_like_function(head: str) -> bool:
    flat = head.replace("\n", " ").strip()
    if not flat.endswith(")") or re.search(r"(^|[^=!<>])=([^=]|$)", flat):
        return False
    first = flat.split()[0] if flat.split() else ""
    return first not in ("struct", "union", "enum") or "(" in flat.split("{")[0]


def function_name(head: str) -> str | None:
    """The declared name: the identifier before the first top-level ``(`` of the head."""
    flat = head.replace("\n", " ")
    index = flat.find("(")
    while index >= 0:
        before = flat[:index].rstrip()
        match = re.search(r"([A-Za-z_]\w*)$", before)
        if match and match.group(1) not in ANNOTATION_CALLS:
            return match.group(1)
        index = flat.find("(", index + 1)
    return None


def scan_items(lines: list[Line]) -> list[tuple[int, int, str, bool]]:
    """The unit's top-level items, once: each reader below takes them as ``items``."""
    return list(_scan_items(lines))


def definitions(lines: list[Line], items=None) -> list[Definition]:
    """Every function definition in the unit, in order."""
    found = []
    for first, last, text, is_function in (items if items is not None else _scan_items(lines)):
        if not is_function:
            continue
        head = text.split("{", 1)[0]
        name = function_name(head)
        if name is None:
            continue
        # the item may start on a line shared with nothing else; skip blank leading lines
        found.append(Definition(name, lines[first].file, lines[first].number,
                                "\n".join(line.text for line in lines[first:last + 1]),
                                lines[last].number))
    return found


def typedef_names(lines: list[Line], items=None) -> set[str]:
    """Names the unit's own ``typedef`` declarations introduce."""
    names = set()
    for _, _, text, is_function in (items if items is not None else _scan_items(lines)):
        if is_function or not text.lstrip().startswith("typedef"):
            continue
        flat = text.replace("\n", " ")
        pointer = re.search(r"\(\s*\*\s*([A-Za-z_]\w*)\s*\)\s*\(", flat)
        if pointer:
            names.add(pointer.group(1))
            continue
        match = re.search(r"([A-Za-z_]\w*)\s*(\[[^]]*\]\s*)*;\s*$", flat)
        if match:
            names.add(match.group(1))
    return names


TYPE_FIRST = frozenset({"min_t", "max_t", "clamp_t", "round_up_t"})
DECLARING_MACROS = {"LIST_HEAD": "struct list_head", "HLIST_HEAD": "struct hlist_head"}


def rewrite_macros(rows: list[list[str]]) -> None:
    """Iterator macros from outside the tree, and declaring macros, in forms C99 reads.

    ``name(args) statement`` with ``for_each`` in the name becomes
    ``for (; __kconform_foreach("name", args);) statement`` (the translator
    turns it into a loop over the environment's generator for ``name``);
    ``LIST_HEAD(x);`` becomes a declaration of ``x``.
    """
    flat = [(r, c) for r, row in enumerate(rows) for c in range(len(row))]

    def at(k):
        return rows[flat[k][0]][flat[k][1]] if 0 <= k < len(flat) else ""

    # a type as a macro argument (container_of(p, struct x, member)): its name as a string
    for k in range(1, len(flat) - 2):
        if at(k) in ("struct", "union") and at(k - 1) in ("(", ",") and IDENT.fullmatch(at(k + 1)) \
                and at(k + 2) in (",", ")") and at(k - 2) != "sizeof" \
                and not (at(k + 2) == ")" and at(k + 3) == "{"):
            r, c = flat[k]
            rows[r][c] = f'"{at(k)} {at(k + 1)}"'
            r1, c1 = flat[k + 1]
            rows[r1][c1] = ""
    flat = [(r, c) for r, row in enumerate(rows) for c in range(len(row)) if row[c]]
    # a type as the first argument (min_t(u32, a, b)): its name as a string
    for k in range(len(flat) - 2):
        if at(k) in TYPE_FIRST and at(k + 1) == "(":
            m = k + 2
            while m < len(flat) and at(m) not in (",", ")", "("):
                m += 1
            if at(m) == "," and m > k + 2:
                words = [at(j) for j in range(k + 2, m)]
                for j in range(k + 2, m):
                    rows[flat[j][0]][flat[j][1]] = ""
                rows[flat[k + 2][0]][flat[k + 2][1]] = '"' + " ".join(words) + '"'
    # GNU "a ?: b": the middle operand is the condition itself
    for k in range(len(flat) - 1):
        if at(k) == "?" and at(k + 1) == ":":
            rows[flat[k][0]][flat[k][1]] = "? __kconform_same"
    flat = [(r, c) for r, row in enumerate(rows) for c in range(len(row)) if row[c]]
    for k, (r, c) in enumerate(flat):
        token = rows[r][c]
        if not IDENT.fullmatch(token) or k + 1 >= len(flat):
            continue
        nr, nc = flat[k + 1]
        if rows[nr][nc] != "(":
            continue
        depth, end = 0, None
        for m in range(k + 1, len(flat)):
            t = rows[flat[m][0]][flat[m][1]]
            depth += t == "("
            depth -= t == ")"
            if depth == 0:
                end = m
                break
        if end is None or end + 1 >= len(flat):
            continue
        after = rows[flat[end + 1][0]][flat[end + 1][1]]
        if "for_each" in token and after != ";" and (k == 0 or
                                                   rows[flat[k - 1][0]][flat[k - 1][1]] != "define"):
            er, ec = flat[end]
            rows[r][c] = f'for ( ; __kconform_foreach ( "{token}" ,'
            rows[nr][nc] = ""
            rows[er][ec] = ") ; )"
        elif token in DECLARING_MACROS and after == ";" and end == k + 3:
            name_r, name_c = flat[k + 2]
            er, ec = flat[end]
            rows[r][c] = DECLARING_MACROS[token]
            rows[nr][nc] = ""
            rows[er][ec] = "= { }"
            rows[name_r][name_c] = rows[name_r][name_c]


_CLEANED: dict[str, str] = {}


def clean(text: str) -> str:
    """The definition without the GNU forms pycparser does not read (line count kept)."""
    found = _CLEANED.get(text)
    if found is None:
        found = _CLEANED[text] = _clean(text)
    return found


def _clean(text: str) -> str:
    items = text.split("\n")
    out_lines = []
    skip_depth = 0
    pending_call = False
    for row in items:
        out = []
        for token in tokens(row):
            if token == "\n":
                continue
            if skip_depth:
                if token == "(":
                    skip_depth += 1
                elif token == ")":
                    skip_depth -= 1
                continue
            if pending_call:
                pending_call = False
                if token == "(":
                    skip_depth = 1
                    continue
            if token in DROPPED_WORDS:
                continue
            if token in ANNOTATION_CALLS:
                pending_call = True
                continue
            out.append(token)
        out_lines.append(out)
    rewrite_macros(out_lines)
    return "\n".join(" ".join(t for t in row if t) for row in out_lines)


GNU_FORMS = (("( {", "GNU statement expression"), ("typeof", "typeof"),
             ("__builtin_", "compiler builtin"), ("asm", "inline assembly"),
             ("__auto_type", "__auto_type"), ("? :", "GNU ?: without a middle operand"))


def diagnose(text: str, first_line: int) -> tuple[str, int] | None:
    """The first GNU form a C99 parser cannot read, and its line, if the text has one."""
    for offset, row in enumerate(text.split("\n")):
        flat = " ".join(tokens(row))
        for needle, construct in GNU_FORMS:
            if needle in flat.split() or (" " in needle and needle in flat) or (
                    needle.endswith("_") and needle in flat):
                return construct, first_line + offset
    return None


class _SeededParser(c_parser.CParser):
    """pycparser with typedef names declared before the text is read: the same scope a
    prelude of ``typedef __kconform_opaque NAME;`` lines leaves, without parsing them
    (the prelude was most of every parse)."""

    seed: frozenset[str] = frozenset()

    def _parse_translation_unit_or_empty(self):
        self._scope_stack[0].update(dict.fromkeys(self.seed, True))
        return super()._parse_translation_unit_or_empty()


# pycparser 3 reads recursively through this method; pycparser 2 (PLY) does not call it,
# and there the prelude is parsed as text.
_SEEDABLE = hasattr(c_parser.CParser, "_parse_translation_unit_or_empty")

# (Parser._key, file, line, text) -> FuncDef, or the ParseMiss as (file, line, construct).
# A parse reads the typedef table only for identifiers of its text, so this key decides the
# result; a header's function parsed for one unit or tree state serves the next.
_PARSED: dict[tuple, object] = {}
# (Parser._key, file name, text) -> FileAST, or None when it does not parse.
_PARSED_ITEMS: dict[tuple, object] = {}


class Parser:
    """pycparser, reused, with the unit's typedef names declared opaque."""

    def __init__(self, typedefs: set[str]):
        self.parser = _SeededParser() if _SEEDABLE else c_parser.CParser()
        self.typedefs = frozenset(KERNEL_TYPEDEFS) | frozenset(typedefs)
        keywords = getattr(self.parser.clex, "_keyword_map", None)
        # seeding stands for the prelude only when every name reads as an identifier there
        self.seeded = _SEEDABLE and keywords is not None and all(
            IDENT.fullmatch(n) and n not in keywords for n in self.typedefs)
        self._keywords = keywords or {}

    def prelude(self, extra: set[str]) -> str:
        names = sorted((self.typedefs | extra) - {"__kconform_opaque"})
        return PRELUDE_TYPES + "".join(f"typedef __kconform_opaque {n};\n" for n in names)

    def parse_text(self, text: str, filename: str, extra: frozenset[str] = frozenset()
                   ) -> c_ast.FileAST:
        """pycparser on ``text`` with the typedef names (and ``extra``) declared opaque."""
        if self.seeded and all(IDENT.fullmatch(n) and n not in self._keywords for n in extra):
            self.parser.seed = self.typedefs | extra | {"__kconform_opaque"}
            return self.parser.parse(text, filename)
        self.prelude_read = True
        if _SEEDABLE:
            self.parser.seed = frozenset()
        return self.parser.parse(self.prelude(set(extra)) + text, filename)

    def _key(self, body: str) -> tuple:
        """What a parse of ``body`` depends on of this parser: the typedef names among its
        words when they are declared by seeding; the whole table when the prelude is read
        (a name the prelude cannot declare fails at a line that depends on all of them)."""
        if not self.seeded:
            return (False, self.typedefs)
        return (True, self.typedefs & set(IDENT.findall(body)))

    def parse_item(self, text: str, filename: str):
        """A file-scope item (struct, enum) parsed, or None when pycparser cannot read it."""
        body = clean(text)
        key = (self._key(body), filename, body)
        if key not in _PARSED_ITEMS:
            try:
                _PARSED_ITEMS[key] = self.parse_text(body, filename)
            except (c_parser.ParseError, AssertionError):
                _PARSED_ITEMS[key] = None
        return _PARSED_ITEMS[key]

    def parse(self, definition: Definition) -> c_ast.FuncDef:
        body = clean(definition.text)
        key = (self._key(body), definition.file, definition.line, body)
        found = _PARSED.get(key)
        if found is None:
            self.prelude_read = False
            try:
                found = self._parse(definition, body)
            except ParseMiss as exc:
                found = (exc.file, exc.line, exc.construct)
            if not self.prelude_read:      # a retry read the prelude: its result is not keyed
                _PARSED[key] = found
        if isinstance(found, tuple):
            raise ParseMiss(*found)
        return found

    def _parse(self, definition: Definition, body: str) -> c_ast.FuncDef:
        extra: set[str] = set()
        for _ in range(8):
            text = f'# {definition.line} "{definition.file}"\n{body}\n'
            try:
                unit = self.parse_text(text, definition.file, frozenset(extra))
            except c_parser.ParseError as exc:
                match = re.match(r"[^:]*:(\d+):(?:\d+:)?\s*(.*)", str(exc))
                line = int(match.group(1)) if match else definition.line
                message = match.group(2) if match else str(exc)
                before = re.match(r"before: ([A-Za-z_]\w*)$", message)
                if before and before.group(1) not in extra and before.group(1) not in self.typedefs:
                    extra.add(before.group(1))
                    continue
                found = diagnose(body, definition.line)
                if found is not None:
                    raise ParseMiss(definition.file, found[1], found[0]) from None
                raise ParseMiss(definition.file, line, f"C the parser cannot read ({message})") \
                    from None
            except AssertionError:
                raise ParseMiss(definition.file, definition.line,
                                "unbalanced braces after preprocessing") from None
            for node in reversed(unit.ext):
                if isinstance(node, c_ast.FuncDef):
                    return node
            raise ParseMiss(definition.file, definition.line, "not a function definition")
        raise ParseMiss(definition.file, definition.line, "too many unknown type names")


def global_names(lines: list[Line], items=None) -> set[str]:
    """Variables the unit declares at file scope (``shadow_accessed_mask``...)."""
    names = set()
    for _, _, text, is_function in (items if items is not None else _scan_items(lines)):
        if is_function:
            continue
        flat = " ".join(clean(text).split())
        if flat.startswith(("typedef", "#")) or "{" in flat.split("=")[0]:
            continue
        declarator = flat.split("=", 1)[0]
        if "(" in declarator:
            continue
        for part in declarator.rstrip(";").split(","):
            part = re.sub(r"\[[^]]*\]", "", part)
            match = re.search(r"([A-Za-z_]\w*)\s*$", part.strip())
            if match and match.group(1) not in DROPPED_WORDS and len(part.split()) >= 1:
                words = part.split()
                if len(words) >= 2 or names:
                    names.add(match.group(1))
    return names


def enum_constants(lines: list[Line], parser: "Parser", items=None) -> dict[str, int]:
    """Enumerator values of the unit's ``enum`` definitions (file scope)."""
    values: dict[str, int] = {}
    for _, _, text, is_function in (items if items is not None else _scan_items(lines)):
        flat = " ".join(text.split())
        if is_function or not re.match(r"(typedef )?enum\b[^;]*\{", flat):
            continue
        unit = parser.parse_item(text, "<enum>")
        if unit is None:
            continue

        class Visitor(c_ast.NodeVisitor):
            def visit_Enumerator(self, node):   # noqa: N802 - pycparser's API
                pass

        for node in unit.ext:
            for enum in _enums(node):
                current = -1
                for item in enum.values.enumerators if enum.values else []:
                    if item.value is None:
                        current += 1
                    else:
                        value = _constant_value(item.value, values)
                        if value is None:
                            break
                        current = value
                    values[item.name] = current
    return values


def _enums(node):
    found = []

    class Visitor(c_ast.NodeVisitor):
        def visit_Enum(self, enum):             # noqa: N802 - pycparser's API
            found.append(enum)

    Visitor().visit(node)
    return found


def _constant_value(node, known: dict[str, int]) -> int | None:
    if isinstance(node, c_ast.Constant) and node.type in ("int", "unsigned int", "long int",
                                                          "unsigned long int", "long long int",
                                                          "unsigned long long int"):
        text = re.sub(r"[uUlL]+$", "", node.value)
        return int(text, 8) if re.fullmatch(r"0[0-7]+", text) else int(text, 0)
    if isinstance(node, c_ast.ID):
        return known.get(node.name)
    if isinstance(node, c_ast.UnaryOp) and node.op in ("-", "~", "+"):
        inner = _constant_value(node.expr, known)
        return None if inner is None else {"-": -inner, "~": ~inner, "+": inner}[node.op]
    if isinstance(node, c_ast.BinaryOp):
        a, b = _constant_value(node.left, known), _constant_value(node.right, known)
        if a is None or b is None:
            return None
        ops = {"+": a + b, "-": a - b, "*": a * b, "<<": a << b if b < 200 else None,
               ">>": a >> b, "|": a | b, "&": a & b}
        return ops.get(node.op)
    if isinstance(node, c_ast.FuncCall) and isinstance(node.name, c_ast.ID) \
            and node.name.name in ("BIT", "BIT_ULL") and node.args:
        inner = _constant_value(node.args.exprs[0], known)
        return None if inner is None else 1 << inner
    return None


def struct_layouts(lines: list[Line], parser: "Parser", constants: dict[str, int],
                   items=None) -> dict:
    """``struct NAME`` -> ((field, kind, base type, array size), ...) for the unit's structs.

    kind is "scalar", "bool", "pointer", "struct" or "array"; what a fresh
    local of that type holds (``environment._struct`` builds it).
    """
    from harness.translate.emit import type_of
    layouts: dict[str, tuple] = {}
    for _, _, text, is_function in (items if items is not None else _scan_items(lines)):
        flat = " ".join(text.split())
        if is_function or not re.match(r"(typedef )?(struct|union) \w+ \{", flat):
            continue
        unit = parser.parse_item(text, "<struct>")
        if unit is None:
            continue
        for node in unit.ext:
            target = node.type if isinstance(node, c_ast.Decl) else None
            if isinstance(node, c_ast.Typedef):
                target = node.type.type
            if not isinstance(target, (c_ast.Struct, c_ast.Union)) or target.decls is None:
                continue
            fields = []
            for decl in target.decls:
                if decl.name is None:
                    # an anonymous struct/union member: its fields are the parent's
                    inner = decl.type
                    if isinstance(inner, (c_ast.Struct, c_ast.Union)) and inner.decls:
                        for sub in inner.decls:
                            if sub.name:
                                fields.append(_field(sub, constants, type_of))
                    continue
                fields.append(_field(decl, constants, type_of))
                _nested_layouts(decl.type, layouts, constants, type_of)
            kind = "union" if isinstance(target, c_ast.Union) else "struct"
            layouts[f"{kind} {target.name}"] = tuple(fields)
    return layouts


def _nested_layouts(node, layouts: dict, constants, type_of) -> None:
    """A struct defined inside a field's declaration (mmu.c ``struct kvm_mmu_pages``'s
    ``struct mmu_page_and_offset {...} page[...]``) is laid out too."""
    while isinstance(node, (c_ast.ArrayDecl, c_ast.TypeDecl)):
        node = node.type
    if isinstance(node, c_ast.Struct) and node.name and node.decls:
        layouts[f"struct {node.name}"] = tuple(_field(d, constants, type_of)
                                               for d in node.decls if d.name)


def _field(decl, constants, type_of):
    kind, base = type_of(decl.type)
    size = 0
    if kind == "array" and decl.type.dim is not None:
        size = _constant_value(decl.type.dim, constants) or 0
    if kind == "array" and isinstance(decl.type.type, c_ast.PtrDecl):
        base = "pointer"            # an array of pointers: its entries start NULL
    return (decl.name, kind, base, size)
