"""Documentation hunks, checked: reStructuredText parsed before and after with docutils.

The kernel's documentation is Sphinx reStructuredText.  A documentation hunk
carries no behaviour, but it can break the document: an unterminated inline
literal, a table whose borders no longer line up, a title underline too
short.  For each ``.rst`` hunk the text of both sides (its context and
removed lines, its context and added lines; with a kernel tree, the whole
file before and after) is parsed with docutils, and every system message is
collected.  A message the after side has and the before side does not (same
level, same message, same offending source line; counted with multiplicity)
is a finding on the ``docs`` channel: FAIL for a docutils error or severe
message, WARN for a warning.  Messages both sides share are the file's own,
not the patch's, and are not reported.

Sphinx's roles and directives (``:c:func:``, ``.. kernel-doc::`` ...) are
unknown to plain docutils; they are registered here as inert ones, so only
the reStructuredText itself is judged, never whether a Sphinx extension
would resolve a reference.

A copy whose whitespace was repaired (a web-archive copy) cannot show what
depends on whitespace (tables, literal blocks, indentation): the hunk's note
says so instead of claiming it checked that.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass

DOCS = "docs"
CHECK = "rst_parses"
RST_SUFFIXES = (".rst",)

# docutils levels: 1 info, 2 warning, 3 error, 4 severe.
WARNING_LEVEL = 2
ERROR_LEVEL = 3

# Sphinx roles and directives used in Documentation/ (plain docutils does not know them).
SPHINX_ROLES = (
    "ref", "doc", "numref", "term", "kbd", "file", "command", "envvar", "option", "manpage",
    "abbr", "samp", "program", "menuselection", "guilabel", "any", "download", "math",
    "c:func", "c:type", "c:macro", "c:data", "c:member", "c:struct", "c:union", "c:enum",
    "c:enumerator", "c:expr", "c:texpr", "c:var", "cpp:func", "cpp:class", "rust:item",
)
SPHINX_DIRECTIVES = (
    "kernel-doc", "kernel-include", "kernel-abi", "kernel-feat", "kernel-figure",
    "kernel-render", "toctree", "only", "tabularcolumns", "code-block", "sourcecode",
    "highlight", "literalinclude", "glossary", "index", "c:function", "c:type", "c:macro",
    "c:struct", "c:union", "c:enum", "c:var", "c:member", "cpp:function", "seealso",
    "versionadded", "versionchanged", "deprecated", "hlist", "centered", "productionlist",
    "sectionauthor", "moduleauthor", "codeauthor", "ifconfig", "maintainers-include",
)


@dataclass(frozen=True)
class Message:
    level: int
    text: str
    source_line: str          # the offending line's text ("" when docutils names none)
    line: int | None          # 1-based line within the parsed text

    @property
    def key(self) -> tuple[int, str, str]:
        return (self.level, self.text, self.source_line.strip())


@dataclass(frozen=True)
class DocFinding:
    """A message the after side has and the before side does not."""
    file: str
    hunk: int
    severity: str             # "FAIL" | "WARN"
    message: Message
    patch_line: int           # line of the patch input, 0 when unknown

    def summary(self) -> str:
        where = f" (patch line {self.patch_line})" if self.patch_line else ""
        text = f" (offending text: {self.message.source_line.strip()!r})" \
            if self.message.source_line.strip() else ""
        kind = "error" if self.severity == "FAIL" else "warning"
        return (f"{self.file}: docutils {kind} after the patch, not before{where}: "
                f"{self.message.text}{text}")


_registered = False


def _register_sphinx_names() -> None:
    global _registered
    if _registered:
        return
    from docutils import nodes
    from docutils.parsers.rst import Directive, directives, roles

    def inert_role(name, rawtext, text, lineno, inliner, options=None, content=None):
        return [nodes.literal(rawtext, text)], []

    class InertDirective(Directive):
        required_arguments = 0
        optional_arguments = 100
        final_argument_whitespace = True
        has_content = True
        option_spec = None

        def run(self):
            return []

    # Any option is accepted: a directive's options are Sphinx's business.
    class _AnyOption(dict):
        def __bool__(self):
            return True

        def __contains__(self, key):
            return True

        def __getitem__(self, key):
            return directives.unchanged

    InertDirective.option_spec = _AnyOption()
    for name in SPHINX_ROLES:
        roles.register_canonical_role(name, inert_role)
    for name in SPHINX_DIRECTIVES:
        directives.register_directive(name, InertDirective)
    _registered = True


def messages(text: str, source: str = "<hunk>") -> list[Message]:
    """Every docutils system message (warning and above) that parsing ``text`` gives."""
    from docutils import nodes
    from docutils.core import publish_doctree

    _register_sphinx_names()
    stream = io.StringIO()
    tree = publish_doctree(text, source_path=source, settings_overrides={
        "report_level": WARNING_LEVEL, "halt_level": 5, "warning_stream": stream,
        "file_insertion_enabled": False, "raw_enabled": False, "input_encoding": "unicode",
        "_disable_config": True})
    lines = text.split("\n")
    found = []
    for node in tree.findall(nodes.system_message):
        level = int(node.get("level", 0))
        if level < WARNING_LEVEL:
            continue
        line = node.get("line")
        body = node.children[0].astext() if node.children else node.astext()
        source_line = lines[line - 1] if isinstance(line, int) and 0 < line <= len(lines) else ""
        found.append(Message(level, " ".join(body.split()), source_line, line))
    return found


def new_messages(before: str, after: str) -> list[Message]:
    """Messages of ``after`` that ``before`` does not have (with multiplicity)."""
    seen = Counter(m.key for m in messages(before))
    fresh = []
    for message in messages(after):
        if seen[message.key] > 0:
            seen[message.key] -= 1
            continue
        fresh.append(message)
    return fresh


def hunk_sides(hunk) -> tuple[str, str, list[int]]:
    """(before text, after text, patch line of each after-side line) of one hunk."""
    from harness.ingest.hunks import hunk_lines

    before, after, patch_lines = [], [], []
    for line in hunk_lines(hunk):
        if line.kind != "+":
            before.append(line.text)
        if line.kind != "-":
            after.append(line.text)
            patch_lines.append(line.patch)
    return "\n".join(before) + "\n", "\n".join(after) + "\n", patch_lines


def is_rst(hunk) -> bool:
    return hunk.file.lower().endswith(RST_SUFFIXES)


def _repaired(hunk, repairs) -> bool:
    return any(r.hunk is not None and r.hunk == f"{hunk.file} {hunk.header}" for r in repairs)


def check_hunks(hunks, repairs=(), images: dict | None = None
                ) -> tuple[list[DocFinding], dict[int, str]]:
    """Findings and a note per checked documentation hunk (index -> note).

    ``images`` maps a file to its (pre-image, post-image) text when a kernel
    tree gave them: the whole file is parsed then, once per file.
    """
    findings: list[DocFinding] = []
    notes: dict[int, str] = {}
    whole_done: set[str] = set()
    # A repaired copy's added lines lost their whitespace while the tree's context kept its
    # own: the whole post-image would mix the two, so such a file is read hunk by hunk, where
    # both sides carry the same damage.
    repaired_files = {h.file for h in hunks if _repaired(h, repairs)}
    for hunk in hunks:
        if not is_rst(hunk):
            continue
        if images and hunk.file in images and hunk.file not in repaired_files:
            notes[hunk.index] = "reStructuredText: the whole file parsed with docutils " \
                                "before and after"
            if hunk.file in whole_done:
                continue
            whole_done.add(hunk.file)
            pre, post = images[hunk.file]
            for message in new_messages(pre, post):
                findings.append(_finding(hunk, message, 0))
            continue
        before, after, patch_lines = hunk_sides(hunk)
        note = "reStructuredText: the hunk's text parsed with docutils before and after"
        if _repaired(hunk, repairs):
            note += ("; this copy's whitespace was repaired, so what depends on whitespace "
                     "(tables, literal blocks, indentation) cannot be verified from it")
        notes[hunk.index] = note
        for message in new_messages(before, after):
            line = patch_lines[message.line - 1] if message.line and \
                message.line <= len(patch_lines) else 0
            findings.append(_finding(hunk, message, line))
    return findings, notes


def _finding(hunk, message: Message, patch_line: int) -> DocFinding:
    severity = "FAIL" if message.level >= ERROR_LEVEL else "WARN"
    return DocFinding(hunk.file, hunk.index, severity, message, patch_line)
