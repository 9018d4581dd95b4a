"""A light C preprocessor for the KVM MMU files of a kernel tree.

Enough of cpp for the translation units under ``arch/x86/kvm/mmu``: comments
are dropped, continued lines joined (line numbers kept), ``#include`` of a
file the tree holds is read in place (others are ignored: their macros are
either environment primitives or unknown), ``#define``/``#undef`` build the
macro table from the tree's own text, ``#if``/``#ifdef``/``#elif`` are decided
by a fixed configuration (``CONFIG``: an x86-64 KVM host; ``IS_ENABLED``
and ``defined`` understood; ``IS_ENABLED(CONFIG_X)`` in code is 1 or 0 by the
same configuration), and macros are expanded with ``#`` and ``##``.

Names in ``keep`` (the environment's primitives: ``WARN_ON``, ``KVM_BUG_ON``,
``BIT_ULL``...) are never expanded even where the tree defines them, so the
translation calls the primitive.  A macro whose body is a GNU statement
expression is not expanded either (the parser could not read it); a call to
it is then reported as a miss naming the macro.

The output is one list of ``Line(file, number, text)``: every output line
knows the file and line it came from, so a parse failure names both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# An x86-64 KVM host with both vendor modules, no debugging options.
CONFIG = frozenset({
    "CONFIG_X86_64", "CONFIG_X86", "CONFIG_KVM", "CONFIG_KVM_INTEL", "CONFIG_KVM_AMD",
    "CONFIG_MMU_NOTIFIER", "CONFIG_KVM_GENERIC_MMU_NOTIFIER", "CONFIG_KVM_MMU_NOTIFIER",
    "CONFIG_HAVE_KVM_IRQCHIP", "CONFIG_HAVE_KVM_DIRTY_RING", "CONFIG_KVM_SMM",
    "CONFIG_TRANSPARENT_HUGEPAGE", "CONFIG_HUGETLB_PAGE", "CONFIG_SMP", "CONFIG_HYPERV",
    "CONFIG_KVM_HYPERV", "CONFIG_KVM_PRIVATE_MEM", "CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES",
    "CONFIG_KVM_X86", "CONFIG_64BIT", "CONFIG_KVM_GUEST_MEMFD",
    # selected by KVMGT (DRM_I915_GVT_KVMGT); kernel_models/page_track.py takes it as on
    "CONFIG_KVM_EXTERNAL_WRITE_TRACKING",
})

CONFIG_TESTS = ("IS_ENABLED", "IS_BUILTIN", "IS_REACHABLE")

TOKEN = re.compile(r"""
    (?P<space>[ \t\f\v]+)
  | (?P<newline>\n)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>\.?[0-9](?:[eEpP][+-]|[A-Za-z0-9_.])*)
  | (?P<string>"(?:\\.|[^"\\\n])*")
  | (?P<char>'(?:\\.|[^'\\\n])*')
  | (?P<punct>\.\.\.|<<=|>>=|->|\+\+|--|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^!=<>]=|\#\#|[][(){};:,.?~!%^&*+\-/<>=|#\\])
  | (?P<other>.)
""", re.VERBOSE)

DIRECTIVE = re.compile(r"^\s*#\s*(\w+)?(.*)$")


@dataclass(frozen=True)
class Line:
    file: str
    number: int
    text: str


@dataclass(frozen=True)
class Macro:
    name: str
    params: tuple[str, ...] | None     # None: object-like
    body: tuple[str, ...]              # tokens, spaces dropped
    variadic: bool = False
    file: str = ""
    line: int = 0

    @property
    def statement_expression(self) -> bool:
        return any(a == "(" and b == "{" for a, b in zip(self.body, self.body[1:]))


_TOKENS: dict[str, tuple[str, ...]] = {}


def tokens(text: str) -> list[str]:
    """C tokens of ``text``; blanks dropped, newlines kept.  A header's lines are read by
    every unit and tree state that includes them: each text is cut once (a new list each
    call, so a caller may change it)."""
    found = _TOKENS.get(text)
    if found is None:
        found = _TOKENS[text] = tuple(match.group() for match in TOKEN.finditer(text)
                                      if match.lastgroup != "space")
    return list(found)


def single_expression(body: list[str]) -> tuple[str, ...]:
    """``( { a ; b ; } )`` rewritten to ``( a , b )``: a GNU statement expression whose
    statements are all expressions has the last one's value, as the comma expression
    has, so the macro is then an ordinary one (the tree's ``({ lockdep_assert_held(...);
    }), root`` and ``({ spte = ...; 1; })`` loop tests).  One with a declaration or a
    nested block is left alone."""
    out, i = [], 0
    while i < len(body):
        if body[i] == "(" and body[i + 1:i + 2] == ["{"]:
            j = i + 2
            while j < len(body) and body[j] not in ("{", "}"):
                j += 1
            inner = body[i + 2:j]
            statements = " ".join(inner).split(";")
            if body[j:j + 2] == ["}", ")"] and inner and inner[-1] == ";" and not any(
                    _declares(part.split()) for part in statements):
                parts = [part.split() for part in statements[:-1]]
                if all(parts):
                    out.append("(")
                    for k, part in enumerate(parts):
                        out.extend((["("] if len(parts) > 1 else []) + part +
                                   ([")"] if len(parts) > 1 else []))
                        if k + 1 < len(parts):
                            out.append(",")
                    out.append(")")
                    i = j + 2
                    continue
        out.append(body[i])
        i += 1
    return tuple(out)


DECLARING = frozenset({"struct", "union", "enum", "const", "static", "typeof", "__typeof__",
                       "unsigned", "signed", "int", "long", "char", "bool", "u8", "u16", "u32",
                       "u64", "s8", "s16", "s32", "s64", "gfn_t", "hpa_t", "gpa_t"})


def _declares(words: list[str]) -> bool:
    """A statement that declares (a type word first, or two names in a row)."""
    if not words:
        return False
    if words[0] in DECLARING:
        return True
    return len(words) > 1 and IDENT_WORD.fullmatch(words[0]) is not None and \
        IDENT_WORD.fullmatch(words[1]) is not None


IDENT_WORD = re.compile(r"[A-Za-z_]\w*")


# A comment, or a string or character literal (whose contents are never a comment): a
# literal ends at its closing quote or at the end of its line, a backslash escapes the
# character after it, the newline included.
_COMMENT_OR_LITERAL = re.compile(r"""
    /\*[\s\S]*?(?:\*/|\Z)
  | //[^\n]*
  | "(?:\\[\s\S]?|[^"\\\n])*(?:"|\n)?
  | '(?:\\[\s\S]?|[^'\\\n])*(?:'|\n)?
""", re.VERBOSE)


def _uncomment(match: re.Match) -> str:
    found = match.group()
    if found.startswith("/*"):
        return " " + "\n" * found.count("\n")
    if found.startswith("//"):
        return ""
    return found


def strip_comments(text: str) -> str:
    """Comments removed (newlines inside block comments kept), strings untouched."""
    return _COMMENT_OR_LITERAL.sub(_uncomment, text)


_LOGICAL: dict[str, list[tuple[int, str]]] = {}


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) with backslash-continued lines joined.  A header is read
    by every unit and tree state that includes it: its lines are cut once (not to be
    changed by the caller)."""
    found = _LOGICAL.get(text)
    if found is None:
        found = _LOGICAL[text] = _logical_lines(text)
    return found


def _logical_lines(text: str) -> list[tuple[int, str]]:
    rows = strip_comments(text).split("\n")
    out, i = [], 0
    while i < len(rows):
        start, line = i + 1, rows[i]
        while line.endswith("\\") and i + 1 < len(rows):
            i += 1
            line = line[:-1] + " " + rows[i]
        out.append((start, line))
        i += 1
    return out


class PreprocessError(Exception):
    def __init__(self, file: str, line: int, message: str):
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}:{line}: {message}")


@dataclass
class Preprocessor:
    """One translation unit's preprocessing state over a tree (``read(path) -> text | None``)."""

    read: object
    keep: frozenset[str] = frozenset()
    config: frozenset[str] = CONFIG
    macros: dict[str, Macro] = field(default_factory=dict)
    output: list[Line] = field(default_factory=list)
    included: list[str] = field(default_factory=list)
    depth: int = 0
    text: bool = True          # False: directives only (the macro table), no code expanded

    # -- includes -----------------------------------------------------------
    def resolve(self, name: str, quoted: bool, current: str) -> str | None:
        here = current.rsplit("/", 1)[0]
        candidates = []
        if quoted:
            candidates += [f"{here}/{name}", f"arch/x86/kvm/{name}"]
        candidates += [f"include/{name}", f"arch/x86/include/{name}"]
        for path in candidates:
            if self.read(path) is not None:
                return path
        return None

    def run(self, path: str) -> list[Line]:
        text = self.read(path)
        if text is None:
            raise PreprocessError(path, 0, "file not in the tree")
        self.included.append(path)
        self.depth += 1
        if self.depth > 20:
            raise PreprocessError(path, 0, "includes nested too deep")
        stack: list[list[bool]] = []     # [taking now, taken already, parent taking]
        pending: list[tuple[int, str]] = []

        def active() -> bool:
            return all(frame[0] for frame in stack)

        def flush():
            if pending:
                if self.text:
                    self.emit(path, pending)
                pending.clear()

        for number, line in logical_lines(text):
            match = DIRECTIVE.match(line)
            if not match:
                if active():
                    pending.append((number, line))
                else:
                    pending.append((number, ""))
                continue
            flush()
            self.output.append(Line(path, number, ""))
            word, rest = match.group(1) or "", match.group(2).strip()
            if word in ("ifdef", "ifndef"):
                name = rest.split()[0] if rest.split() else ""
                taking = (name in self.macros or name in self.config) == (word == "ifdef")
                stack.append([taking, taking])
            elif word == "if":
                taking = active() and self.condition(rest, path, number)
                stack.append([taking, taking])
            elif word == "elif":
                if not stack:
                    raise PreprocessError(path, number, "#elif without #if")
                frame = stack[-1]
                parent = all(f[0] for f in stack[:-1])
                taking = (not frame[1]) and parent and self.condition(rest, path, number)
                stack[-1] = [taking, frame[1] or taking]
            elif word == "else":
                if not stack:
                    raise PreprocessError(path, number, "#else without #if")
                stack[-1] = [not stack[-1][1], True]
            elif word == "endif":
                if not stack:
                    raise PreprocessError(path, number, "#endif without #if")
                stack.pop()
            elif not active():
                continue
            elif word == "define":
                self.define(rest, path, number)
            elif word == "undef":
                self.macros.pop(rest.split()[0] if rest.split() else "", None)
            elif word == "include":
                target = re.match(r'[<"]([^>"]+)[>"]', rest)
                if target:
                    found = self.resolve(target.group(1), rest.startswith('"'), path)
                    if found is not None and (found not in self.included or
                                              found.endswith("paging_tmpl.h")):
                        self.run(found)
        flush()
        self.depth -= 1
        return self.output

    def define(self, rest: str, path: str, number: int) -> None:
        match = re.match(r"([A-Za-z_]\w*)(\()?", rest)
        if not match:
            return
        name = match.group(1)
        if match.group(2):
            close = rest.index(")", match.end())
            params = [p.strip() for p in rest[match.end():close].split(",") if p.strip()]
            variadic = bool(params) and params[-1].endswith("...")
            if variadic:
                params[-1] = params[-1][:-3].strip() or "__VA_ARGS__"
            body = rest[close + 1:]
            self.macros[name] = Macro(name, tuple(params), single_expression(tokens(body)),
                                      variadic, path, number)
        else:
            self.macros[name] = Macro(name, None, tuple(tokens(rest[match.end():])), False,
                                      path, number)

    # -- #if ----------------------------------------------------------------
    def condition(self, text: str, path: str, number: int) -> bool:
        items = tokens(text)
        resolved = []
        i = 0
        while i < len(items):
            t = items[i]
            if t == "defined" or t in CONFIG_TESTS:
                if i + 1 < len(items) and items[i + 1] == "(":
                    name, i = items[i + 2], i + 4
                else:
                    name, i = items[i + 1], i + 2
                resolved.append("1" if name in self.macros or name in self.config else "0")
                continue
            resolved.append(t)
            i += 1
        expanded = self.expand(resolved, frozenset())
        python = []
        for t in expanded:
            if t == "&&":
                python.append(" and ")
            elif t == "||":
                python.append(" or ")
            elif t == "!":
                python.append(" not ")
            elif re.match(r"[A-Za-z_]", t):
                python.append(" 0 ")
            elif re.match(r"[0-9]", t):
                python.append(re.sub(r"[uUlL]+$", "", t))
            else:
                python.append(t)
        try:
            return bool(eval("".join(python), {"__builtins__": {}}))   # noqa: S307 - digits and operators only
        except Exception:  # noqa: BLE001 - a condition we cannot read is reported
            raise PreprocessError(path, number, f"cannot evaluate #if {text}") from None

    # -- expansion ----------------------------------------------------------
    def emit(self, path: str, rows: list[tuple[int, str]]) -> None:
        stream = []
        for number, text in rows:
            stream += tokens(text) + ["\n"]
        expanded = self.expand(stream, frozenset())
        lines, current = [], []
        for t in expanded:
            if t == "\n":
                lines.append(" ".join(current))
                current = []
            else:
                current.append(t)
        if current:
            lines.append(" ".join(current))
        for (number, _), text in zip(rows, lines):
            self.output.append(Line(path, number, text))
        for number, _ in rows[len(lines):]:
            self.output.append(Line(path, number, ""))

    def expand(self, items: list[str], disabled: frozenset[str]) -> list[str]:
        out: list[str] = []
        i, n = 0, len(items)
        while i < n:
            t = items[i]
            macro = self.macros.get(t)
            if (macro is None and t in CONFIG_TESTS and items[i + 1:i + 2] == ["("]
                    and items[i + 3:i + 4] == [")"]):
                # IS_ENABLED(CONFIG_X) in code: kconfig.h is not in the tree; the fixed
                # configuration answers, as it does in #if
                out.append("1" if items[i + 2] in self.config else "0")
                i += 4
                continue
            if (macro is None or t in disabled or t in self.keep
                    or macro.statement_expression):
                out.append(t)
                i += 1
                continue
            if macro.params is None:
                out += self.expand(list(macro.body), disabled | {t})
                i += 1
                continue
            j = i + 1
            newlines = 0
            while j < n and items[j] == "\n":
                j += 1
                newlines += 1
            if j >= n or items[j] != "(":
                out.append(t)
                i += 1
                continue
            args, j, newlines_in = collect_arguments(items, j)
            body = self.substitute(macro, args, disabled | {t})
            out += self.expand(body, disabled | {t})
            out += ["\n"] * (newlines + newlines_in)
            i = j
        return out

    def substitute(self, macro: Macro, args: list[list[str]], disabled) -> list[str]:
        params = list(macro.params)
        if macro.variadic:
            fixed = len(params) - 1
            if len(args) > fixed:
                rest = []
                for k, arg in enumerate(args[fixed:]):
                    rest += ([","] if k else []) + arg
                args = args[:fixed] + [rest]
        if len(args) == 1 and not args[0] and not params:
            args = []
        while len(args) < len(params):
            args.append([])
        values = dict(zip(params, args))
        body = list(macro.body)
        out: list[str] = []
        k = 0
        while k < len(body):
            t = body[k]
            if t == "#" and k + 1 < len(body) and body[k + 1] in values:
                out.append('"' + " ".join(values[body[k + 1]]).replace('"', '\\"') + '"')
                k += 2
                continue
            if t == "##":
                k += 1
                if k < len(body):
                    right = values.get(body[k], [body[k]])
                    right = [r for r in right if r != "\n"]
                    if not right and out and out[-1] == "," and macro.variadic \
                            and body[k] == params[-1]:
                        out.pop()           # GNU ", ## __VA_ARGS__" with no arguments
                    elif out and right:
                        out[-1] = out[-1] + right[0]
                        out += right[1:]
                    elif right:
                        out += right
                k += 1
                continue
            if t in values:
                pasted = (k + 1 < len(body) and body[k + 1] == "##")
                value = [v for v in values[t] if v != "\n"]
                out += value if pasted else self.expand(value, disabled)
                k += 1
                continue
            out.append(t)
            k += 1
        return out


def collect_arguments(items: list[str], j: int) -> tuple[list[list[str]], int, int]:
    """Arguments of a macro call whose ``(`` is at ``j``; (args, index after ``)``, newlines)."""
    depth, args, current, newlines = 0, [], [], 0
    j += 1
    while j < len(items):
        t = items[j]
        if t == "\n":
            newlines += 1
        elif t in "([{" and len(t) == 1:
            depth += 1
            current.append(t)
        elif t in ")]}" and len(t) == 1:
            if depth == 0:
                args.append(current)
                return args, j + 1, newlines
            depth -= 1
            current.append(t)
        elif t == "," and depth == 0:
            args.append(current)
            current = []
        else:
            current.append(t)
        j += 1
    args.append(current)
    return args, j, newlines
