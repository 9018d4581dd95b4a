"""A scoped hunk read as numbered lines of its two sides.

``hunk_lines`` gives every line of a hunk with its kind (context, removed,
added), its line number in the pre-image and the post-image, its line in the
patch input, and whether it is one of the changed lines scoped to the hunk's
function.  Resolve, translate and check read hunks through it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from harness.ingest.scope import code_and_comments

HEADER = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


class UnreadableHunk(Exception):
    """The hunk's text cannot be read as lines of two sides; the message says why."""


@dataclass(frozen=True)
class HunkLine:
    kind: str                 # " " context, "-" removed, "+" added
    text: str
    old: int | None           # line number in the pre-image
    new: int | None           # line number in the post-image
    patch: int                # line of the patch input (0 when unknown)
    mine: bool                # a changed line of this hunk's function


def hunk_lines(hunk) -> list[HunkLine]:
    """The hunk's lines in order, numbered on both sides."""
    rows = hunk.text.split("\n")
    match = HEADER.match(rows[0]) if rows else None
    if match is None:
        raise UnreadableHunk("the hunk has no readable header")
    old, new = int(match.group(1)), int(match.group(2))
    wanted = Counter(("-", t) for t in hunk.removed) + Counter(("+", t) for t in hunk.added)
    lines = []
    for offset, row in enumerate(rows[1:], start=1):
        if row.startswith("\\"):
            continue
        kind, text = (row[0], row[1:]) if row and row[0] in " -+" else (" ", row)
        mine = kind != " " and wanted[(kind, text)] > 0
        if mine:
            wanted[(kind, text)] -= 1
        lines.append(HunkLine(kind, text, old if kind != "+" else None,
                              new if kind != "-" else None,
                              hunk.line + offset if hunk.line else 0, mine))
        old += kind != "+"
        new += kind != "-"
    return lines


def side_code(lines: list[HunkLine], side: str) -> dict[int, str]:
    """Line index -> C code with comments removed, for one side ("-" old, "+" new)."""
    indexes = [i for i, line in enumerate(lines) if line.kind in (" ", side)]
    scanned = code_and_comments([lines[i].text for i in indexes])
    return {i: " ".join(tokens) for i, (tokens, _) in zip(indexes, scanned)}
