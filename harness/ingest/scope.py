"""Scope: map each hunk of a Patch to the C function(s) its changed lines lie in.

The hunk header's section text (git's "function name" hint) is only a hint:
git takes the last line before the hunk that starts at column 0, which may be
a function that ends inside the hunk, a struct, or a function whose comment
the hunk edits.  So the function is decided from the hunk's own lines, one
side at a time (old side = context + removed, new side = context + added):

- a definition line inside the hunk starts that function;
- a ``}`` at column 0 ends the function (only in undamaged copies);
- a top-level comment (``/*`` at column 0, `` * `` continuation lines)
  belongs to the definition directly below it when the hunk shows that
  definition, else to no function (``function=None`` with the reason);
- otherwise the header hint holds if it reads as a function definition.

In a copy whose indentation was stripped (a web-archive copy, or any C diff
with no tab-indented line) column-0 evidence is unusable: only definition
lines (followed by ``{``) and the hint count, and ``reason`` says so.  Copies
repaired for other damage (lost prefix space, wrapped lines, CRLF) keep their
indentation and are read like undamaged ones.  A hunk whose changed lines lie in several functions
gives one ``ScopedHunk`` per function, sharing ``index``.

``kind`` compares the removed and added C token streams with comments and
whitespace stripped: equal tokens and different comments -> ``comment``;
equal tokens and comments -> ``whitespace`` (but ``behaviour`` in a
repaired copy, where whitespace cannot be verified); else ``behaviour``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.ingest.patches import Patch
from harness.ingest.repair import INDENTATION_LOST

DEFINITION = re.compile(r"^(?:[A-Za-z_][\w \t\*]*?\b)?(FNAME\(\s*\w+\s*\)|\w+)\s*\(")
NOT_DEFINITION_WORDS = {"if", "for", "while", "switch", "return", "else", "do", "sizeof",
                        "case", "goto", "typedef", "struct", "union", "enum"}
LABEL = re.compile(r"^\w+:\s*$")
TOP_COMMENT_LINE = re.compile(r"^ \*( |/|$)|^ \*$")
COMMENT_CONTINUATION = re.compile(r"^\*(\s|/|$)")
# What kconform reads: the x86 MMU directory, its headers (the files of the assembled release
# trees, ../shared/kernel-trees/MANIFEST.json), and every other file a model mirrors
# (kernel_models.registry, e.g. virt/kvm/kvm_main.c).  A patch none of whose hunks touch one
# of these is not kconform's to judge (SKIP); a hunk in one of them that no model covers is a
# MISS, since kconform claims to read it; a hunk in another file of the patch is a MISS
# naming that file.
READ_DIRECTORIES = ("arch/x86/kvm/mmu/",)
READ_FILES = ("arch/x86/kvm/mmu.h", "arch/x86/include/asm/kvm_host.h",
              "include/linux/kvm_host.h", "Documentation/virt/kvm/locking.rst")


def is_read_file(path: str) -> bool:
    """Does kconform read this file of the kernel tree?"""
    from kernel_models import registry

    return (path.startswith(READ_DIRECTORIES) or path in READ_FILES
            or registry.is_modelled_file(path))


TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|[A-Za-z_]\w*|\d[\w.]*'
                   r'|->|\+\+|--|<<=|>>=|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^]=|\S')


@dataclass(frozen=True)
class ScopedHunk:
    """One hunk (or the part of it in one function) with its place and kind."""

    index: int
    file: str
    header: str
    line: int
    source_start: int
    source_length: int
    target_start: int
    target_length: int
    hint: str | None
    function: str | None
    kind: str
    removed: tuple[str, ...] = field(repr=False)
    added: tuple[str, ...] = field(repr=False)
    context: tuple[str, ...] = field(repr=False)
    source_blob: str | None = field(repr=False)
    target_blob: str | None = field(repr=False)
    text: str = field(repr=False)
    reason: str = field(repr=False)

    def __repr__(self) -> str:
        return (f"ScopedHunk(#{self.index} {self.file}:{self.line} "
                f"{self.function or '-'} {self.kind})")


# --- C reading -------------------------------------------------------------------


def definition_name(text: str) -> str | None:
    """Name of the function a definition line starts, or None."""
    stripped = text.rstrip()
    if not stripped or stripped.endswith(";") or "=" in stripped.split("(")[0]:
        return None
    match = DEFINITION.match(stripped)
    if match is None:
        return None
    first_word = stripped.split()[0].split("(")[0]
    if first_word in NOT_DEFINITION_WORDS and not stripped.startswith(("struct ", "enum ")):
        return None
    if first_word in ("struct", "union", "enum") and "(" not in stripped.split("{")[0]:
        return None
    name = re.sub(r"\s+", "", match.group(1))
    if name in NOT_DEFINITION_WORDS or stripped.startswith("#"):
        return None
    return name


def hint_function(hint: str | None) -> str | None:
    """The function named by a header hint, if the hint reads as a definition."""
    if not hint:
        return None
    return definition_name(hint)


def code_and_comments(lines: list[str]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Per line: its C tokens outside comments, and its comment words.

    The side may start inside a comment: that is so when ``*/`` appears
    before any ``/*``, or its first line reads as a comment continuation
    (``* text``; code never puts a blank after a leading ``*``).
    """
    joined = "\n".join(lines)
    opening, closing = joined.find("/*"), joined.find("*/")
    first = next((line.strip() for line in lines if line.strip()), "")
    in_comment = (closing != -1 and (opening == -1 or closing < opening)) or bool(
        COMMENT_CONTINUATION.match(first))
    result = []
    for line in lines:
        code, comment = [], []
        position = 0
        while position < len(line):
            if in_comment:
                end = line.find("*/", position)
                piece = line[position:] if end == -1 else line[position:end]
                comment.append(piece)
                if end == -1:
                    position = len(line)
                else:
                    in_comment = False
                    position = end + 2
                continue
            starts = [p for p in (line.find("/*", position), line.find("//", position)) if p != -1]
            start = min(starts) if starts else -1
            piece = line[position:] if start == -1 else line[position:start]
            code.append(piece)
            if start == -1:
                break
            if line.startswith("//", start):
                comment.append(line[start + 2:])
                break
            in_comment = True
            position = start + 2
        code_tokens = tuple(TOKEN.findall(" ".join(code)))
        comment_words = tuple(" ".join(comment).replace("*", " ").split())
        result.append((code_tokens, comment_words))
    return result


# --- attribution -------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """Who a hunk line belongs to: a function, or nothing with a reason."""

    function: str | None
    reason: str


def attribute_side(lines: list[str], hint: str | None, damaged: bool) -> list[Owner]:
    """Owner of each line of one side of a hunk (see the module docstring)."""
    hinted = hint_function(hint)
    if hinted is None:
        current = Owner(None, "the header hint is not a function definition "
                              f"({hint!r}) and no definition precedes the change")
    elif damaged:
        current = Owner(hinted, f"header hint {hinted}; indentation is lost in this copy, "
                                "so the end of the function cannot be seen (not confirmed)")
    else:
        current = Owner(hinted, f"header hint {hinted}, confirmed: no top-level brace, comment "
                                "or definition comes before the change in the hunk")
    owners: list[Owner] = []
    comment: list[int] | None = None       # indexes of the open top-level comment
    finished_comment: list[int] | None = None
    for number, text in enumerate(lines):
        column0 = bool(text) and not text[0].isspace()
        name = definition_name(text) if (column0 or damaged) else None
        if name is not None and damaged and not opens_body(lines, number):
            name = None
        if comment is not None:
            owners.append(current)
            comment.append(number)
            if "*/" in text:
                finished_comment, comment = comment, None
            continue
        if not damaged and (text.startswith("/*") or TOP_COMMENT_LINE.match(text)):
            comment = [number]
            before = current.function
            current = Owner(None, "top-level comment; the definition it documents is not "
                                  "in the hunk" + (f" (it comes after {before}, which the "
                                                   "header hint names)" if before else ""))
            owners.append(current)
            if "*/" in text:
                finished_comment, comment = comment, None
            continue
        if name is not None:
            current = Owner(name, f"definition line of {name} in the hunk")
            if finished_comment is not None:
                for index in finished_comment:
                    owners[index] = Owner(name, f"comment directly above the definition of "
                                                f"{name} in the hunk")
            finished_comment = None
            owners.append(current)
            continue
        finished_comment = None   # only a definition right below keeps the comment
        owners.append(current)
        if not damaged and column0 and text.startswith("}"):
            ended = current.function
            current = Owner(None, f"outside any function (after the closing brace of "
                                  f"{ended or 'a top-level block'})")
        elif not damaged and column0 and current.function is not None and not (
                LABEL.match(text) or text.startswith(("#", "{"))):
            current = Owner(None, "outside any function (top-level declaration)")
    return owners


def opens_body(lines: list[str], number: int) -> bool:
    """In a damaged copy, is a definition line followed by ``{`` (after its arguments)?"""
    for text in lines[number + 1:number + 6]:
        if text.strip() == "{":
            return True
        if text.rstrip().endswith((";", "}")):
            return False
    return False


# --- hunks -----------------------------------------------------------------------------


def file_kind(path: str) -> str:
    lowered = path.lower()
    if lowered.endswith((".rst", ".txt", ".md")) or lowered.startswith("documentation/"):
        return "documentation"
    if lowered.endswith((".c", ".h")):
        return "c"
    return "other"


def blob_ids(patched_file) -> tuple[str | None, str | None]:
    for text in str(patched_file.patch_info).split("\n"):
        match = re.match(r"^index ([0-9a-f]+)\.\.([0-9a-f]+)", text)
        if match:
            return match.group(1), match.group(2)
    return None, None


def content(line) -> str:
    return line.value.rstrip("\n")


def classify(removed: list[tuple], added: list[tuple], repaired: bool) -> tuple[str, str]:
    """Kind of a change from its (code tokens, comment words) per removed/added line."""
    old_code = [token for code, _ in removed for token in code]
    new_code = [token for code, _ in added for token in code]
    old_words = [word for _, words in removed for word in words]
    new_words = [word for _, words in added for word in words]
    if old_code != new_code:
        return "behaviour", "C tokens differ"
    if old_words != new_words:
        return "comment", "only comments differ"
    if repaired:
        return "behaviour", ("only whitespace differs, but this copy was whitespace-repaired, "
                             "so the change cannot be verified as whitespace-only")
    return "whitespace", "only whitespace differs"


def hunks_repaired(patch: Patch) -> bool:
    """Was whitespace inside hunks repaired (not just CRLF line ends)?"""
    return any(repair.hunk is not None for repair in patch.repairs)


def scope_patch(patch: Patch) -> tuple[ScopedHunk, ...]:
    """Scoped hunks of a patch, in diff order (a cover letter has none)."""
    if not patch.diff_text:
        return ()
    result: list[ScopedHunk] = []
    index = 0
    for patched_file in patch.patch_set():
        path = patched_file.path
        source_blob, target_blob = blob_ids(patched_file)
        damaged = INDENTATION_LOST in patch.damage or indentation_missing(patched_file)
        if len(patched_file) == 0:
            result.append(ScopedHunk(
                index=index, file=path, header="", line=file_line(patch, patched_file),
                source_start=0, source_length=0, target_start=0, target_length=0, hint=None,
                function=None, kind="other", removed=(), added=(), context=(),
                source_blob=source_blob, target_blob=target_blob,
                text=str(patched_file.patch_info).rstrip("\n"),
                reason="no hunks (binary, rename or mode change)"))
            index += 1
            continue
        for hunk in patched_file:
            result.extend(scope_hunk(patch, hunk, index, path, source_blob, target_blob, damaged))
            index += 1
    return tuple(result)


def indentation_missing(patched_file) -> bool:
    """Has a C file's diff lost its indentation (no line indented by a tab or two blanks)?

    Kernel C hunks nearly always hold tab-indented lines; a copy with none lost
    its indentation somewhere (e.g. prefixes restored after a web copy, which
    also folds ``-<tab>`` into ``- ``).
    """
    if file_kind(patched_file.path) != "c":
        return False
    texts = [content(line) for hunk in patched_file for line in hunk if content(line).strip()]
    return len(texts) >= 3 and not any(text.startswith(("\t", "  ")) for text in texts)


def file_line(patch: Patch, patched_file) -> int:
    """1-based input line of a file's first header line (hunkless files)."""
    first = str(patched_file.patch_info).split("\n")[0]
    lines = patch.diff_text.split("\n")
    position = lines.index(first) if first in lines else 0
    return patch.input_lines[position] if position < len(patch.input_lines) else position + 1


def hunk_line(patch: Patch, hunk) -> int:
    """1-based input line of the hunk header."""
    first = next(iter(hunk), None)
    if first is None or first.diff_line_no is None:
        return 0
    position = first.diff_line_no - 2   # 0-based index of the header in diff_text
    if 0 <= position < len(patch.input_lines):
        return patch.input_lines[position]
    return position + 1


def header_text(hunk) -> str:
    return (f"@@ -{hunk.source_start},{hunk.source_length} "
            f"+{hunk.target_start},{hunk.target_length} @@")


def scope_hunk(patch: Patch, hunk, index: int, path: str, source_blob, target_blob,
               damaged: bool) -> list[ScopedHunk]:
    hint = hunk.section_header.strip() or None
    kind_of_file = file_kind(path)
    lines = list(hunk)
    common = dict(index=index, file=path, header=header_text(hunk),
                  line=hunk_line(patch, hunk), source_start=hunk.source_start,
                  source_length=hunk.source_length, target_start=hunk.target_start,
                  target_length=hunk.target_length, hint=hint, source_blob=source_blob,
                  target_blob=target_blob, text=str(hunk).rstrip("\n"))
    removed = tuple(content(l) for l in lines if l.is_removed)
    added = tuple(content(l) for l in lines if l.is_added)
    context = tuple(content(l) for l in lines if l.is_context)
    if kind_of_file != "c":
        reason = ("documentation file" if kind_of_file == "documentation"
                  else "not a C file")
        return [ScopedHunk(function=None, kind=kind_of_file, removed=removed, added=added,
                           context=context, reason=reason, **common)]
    groups = group_by_function(lines, hint, damaged)
    scoped = []
    for function, members in groups.items():
        reason = members["reason"]
        kind, why = classify(members["removed_tokens"], members["added_tokens"],
                             hunks_repaired(patch))
        if len(groups) > 1:
            reason += f"; one of {len(groups)} functions this hunk touches"
        scoped.append(ScopedHunk(
            function=function, kind=kind, removed=tuple(members["removed"]),
            added=tuple(members["added"]), context=context,
            reason=f"{reason}; {why}", **common))
    return scoped


def group_by_function(lines: list, hint: str | None, damaged: bool) -> dict:
    """Changed lines grouped by owning function, in order of first change."""
    old_side = [l for l in lines if not l.is_added]
    new_side = [l for l in lines if not l.is_removed]
    owners: dict[int, Owner] = {}
    tokens: dict[int, tuple] = {}
    for side in (old_side, new_side):
        texts = [content(l) for l in side]
        for line, owner, scan in zip(side, attribute_side(texts, hint, damaged),
                                     code_and_comments(texts)):
            if not line.is_context:
                owners[id(line)] = owner
                tokens[id(line)] = scan
    changed = [l for l in lines if not l.is_context]
    meaningful = [l for l in changed if content(l).strip()] or changed
    groups: dict = {}
    for line in meaningful:
        owner = owners[id(line)]
        group = groups.setdefault(owner.function, {
            "reasons": [], "removed": [], "added": [],
            "removed_tokens": [], "added_tokens": []})
        if owner.reason not in group["reasons"]:
            group["reasons"].append(owner.reason)   # e.g. its comment and its body
        side = "removed" if line.is_removed else "added"
        group[side].append(content(line))
        group[f"{side}_tokens"].append(tokens[id(line)])
    kept = {id(line) for line in meaningful}
    for line in changed:
        if id(line) not in kept:   # blank changed lines: kept with the first group
            first = next(iter(groups.values()))
            side = "removed" if line.is_removed else "added"
            first[side].append(content(line))
    for function, group in groups.items():
        group["reason"] = "; ".join(group.pop("reasons"))
        defined_old = any(definition_name(text) == function for text in group["removed"])
        defined_new = any(definition_name(text) == function for text in group["added"])
        if function is not None and defined_old and not defined_new:
            group["reason"] += "; the function is deleted by this hunk"
    return groups
