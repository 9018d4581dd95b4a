"""C function definitions read from a file's text.

``find_function`` locates a definition by name and brace matching (comments
and strings skipped), ``parameters`` reads its parameter names.  The text may
be a blob of a kernel tree or a post-image built in memory; nothing here
reads a tree.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.ingest.scope import code_and_comments, definition_name


class SourceMiss(Exception):
    """The definition cannot be read as the subset needs (the message says why)."""


@dataclass(frozen=True)
class FunctionSource:
    name: str
    first: int                   # 0-based line of the definition
    opening: int                 # 0-based line of the body's '{'
    last: int                    # 0-based line of the body's closing '}'
    signature: tuple[str, ...]   # code tokens from the definition to before '{'
    body: tuple[str, ...]        # code lines (comments removed) between the braces

    @property
    def lines(self) -> str:
        return f"{self.first + 1}-{self.last + 1}"


def find_function(text: str, name: str) -> FunctionSource | None:
    """The definition of ``name`` (``FNAME(x)`` too) in ``text``, or None."""
    lines = text.split("\n")
    for first, line in enumerate(lines):
        if not line[:1].strip() or line[:1] in "#/*}{" or definition_name(line) != name:
            continue
        found = _definition_at(lines, first, name)
        if found is not None:
            return found
    return None


def _definition_at(lines: list[str], first: int, name: str) -> FunctionSource | None:
    scanned = code_and_comments(lines[first:])
    signature: list[str] = []
    depth = 0
    opening = None
    for offset, (tokens, _) in enumerate(scanned):
        for position, token in enumerate(tokens):
            if opening is None:
                if token == ";" and depth == 0:
                    return None          # a prototype
                if token == "{" and depth == 0:
                    opening = (offset, position)
                    depth = 1
                    continue
                depth += token == "("
                depth -= token == ")"
                signature.append(token)
                continue
            depth += token == "{"
            depth -= token == "}"
            if depth == 0:
                body = _body_lines(scanned, opening, (offset, position))
                return FunctionSource(name, first, first + opening[0], first + offset,
                                      tuple(signature), tuple(body))
        if opening is None and offset > 40:
            return None
    return None


def _body_lines(scanned, opening: tuple[int, int], closing: tuple[int, int]) -> list[str]:
    body = []
    for offset in range(opening[0], closing[0] + 1):
        tokens = scanned[offset][0]
        low = opening[1] + 1 if offset == opening[0] else 0
        high = closing[1] if offset == closing[0] else len(tokens)
        body.append(" ".join(tokens[low:high]))
    return body


def parameters(source: FunctionSource) -> list[str]:
    """Parameter names, in order, read from the signature's tokens."""
    tokens = list(source.signature)
    # the parameter list opens at the '(' after the function's own name
    name_end = 0
    if source.name.startswith("FNAME("):
        for i in range(len(tokens) - 3):
            if tokens[i:i + 2] == ["FNAME", "("] and tokens[i + 3] == ")":
                name_end = i + 4
                break
    else:
        name_end = tokens.index(source.name) + 1 if source.name in tokens else 0
    if name_end == 0 or name_end >= len(tokens) or tokens[name_end] != "(":
        raise SourceMiss(f"cannot read the parameter list of {source.name}")
    inner = tokens[name_end + 1:-1] if tokens[-1] == ")" else None
    if inner is None:
        raise SourceMiss(f"the definition of {source.name} has attributes after its parameters")
    groups: list[list[str]] = [[]]
    depth = 0
    for token in inner:
        if token == "," and depth == 0:
            groups.append([])
            continue
        depth += token in "(["
        depth -= token in ")]"
        groups[-1].append(token)
    names = []
    for group in groups:
        if group in ([], ["void"]):
            continue
        if "(" in group:
            raise SourceMiss(f"{source.name} takes a function pointer; not in the subset")
        words = [t for t in group if t[:1].isalpha() or t[:1] == "_"]
        names.append(words[-1])
    return names
