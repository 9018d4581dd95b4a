"""A kernel git tree at hand (``--kernel-tree PATH``): whole pre-images by blob id.

A patch's ``index a..b`` line names the pre-image blob ``a`` of each file.
Kernel CI has a git tree, and with one the harness need not trust the hunk's
context alone:

- ``KernelTree.text(blob)`` reads the pre-image with ``git cat-file`` (an
  abbreviated id is fine when the tree knows it unambiguously);
- ``apply_hunks`` applies the patch's hunks of that file to it, checking every
  context and removed line against the blob (whitespace-insensitively, so a
  repaired web-archive copy applies; the post-image keeps the blob's own
  context lines), which gives the post-image text;
- ``harness.translate.c_source`` then locates the changed C functions in the
  pre-image and post-image text.

``harness.translate.derive.translate_function`` turns such a whole function into a
model; ``harness.resolve.strategies`` decides where that is used.  Nothing here writes to
the tree.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from harness.errors import UsageError
from harness.ingest.hunks import UnreadableHunk, hunk_lines


class TreeMiss(Exception):
    """The tree cannot give what was asked (the message says why)."""


class KernelTree:
    """A git repository holding kernel sources (any branch; only blobs are read)."""

    def __init__(self, path: str):
        self.path = path
        if not path:
            raise UsageError("--kernel-tree needs a path")
        if os.path.exists(path) and not os.path.isdir(path):
            raise UsageError(f"--kernel-tree {path}: not a directory")
        if not os.path.isdir(path):
            raise UsageError(f"--kernel-tree {path}: no such directory")
        if self._git("rev-parse", "--git-dir") is None:
            raise UsageError(f"--kernel-tree {path}: not a git repository")
        self._texts: dict[str, str | None] = {}

    def _git(self, *args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", self.path, *args], capture_output=True,
                                  timeout=60, check=False)
        except FileNotFoundError:
            raise UsageError("--kernel-tree needs git, and git is not installed") from None
        except subprocess.TimeoutExpired:
            return None
        if done.returncode != 0:
            return None
        return done.stdout.decode("utf-8", "surrogateescape")

    def text(self, blob: str | None) -> str | None:
        """The blob's text, or None when the tree does not hold it (or holds it ambiguously)."""
        if not blob or not all(c in "0123456789abcdef" for c in blob.lower()):
            return None
        if blob not in self._texts:
            kind = self._git("cat-file", "-t", blob)
            self._texts[blob] = (self._git("cat-file", "blob", blob)
                                 if kind is not None and kind.strip() == "blob" else None)
        return self._texts[blob]


    def has_revision(self, rev: str) -> bool:
        return not rev.startswith("-") and self._git("rev-parse", "--verify", "--quiet",
                                                     f"{rev}^{{commit}}") is not None

    def text_at(self, rev: str, path: str) -> str | None:
        """The file at ``rev`` (a commit, tag or branch), or None when absent there."""
        if rev.startswith("-"):
            raise UsageError(f"--rev {rev}: not a revision")
        return self._git("cat-file", "blob", f"{rev}:{path}")


# ---------------------------------------------------------------------------
# Applying hunks to the pre-image
# ---------------------------------------------------------------------------

def _same(a: str, b: str) -> bool:
    return a.split() == b.split()


def apply_hunks(text: str, hunks, where: str) -> str:
    """The post-image of ``text`` after ``hunks`` (one file's, in order), or TreeMiss.

    Each hunk must apply at its header's line or, as ``git apply`` allows, at
    the nearest offset where all its old-side lines match.
    """

    lines = text.split("\n")
    result: list[str] = []
    done = 0                     # lines of ``lines`` already copied or replaced
    for hunk in hunks:
        try:
            rows = hunk_lines(hunk)
        except UnreadableHunk as exc:
            raise TreeMiss(f"hunk {hunk.index}: {exc}") from None
        old = [r for r in rows if r.kind != "+"]
        start = (old[0].old - 1) if old else hunk.source_start
        at = _place(lines, old, start, done)
        if at is None:
            raise TreeMiss(_mismatch(lines, old, start, hunk, where))
        result.extend(lines[done:at])
        position = at
        for row in rows:
            if row.kind == "+":
                result.append(row.text)
            elif row.kind == " ":
                result.append(lines[position])
                position += 1
            else:
                position += 1
        done = position
    result.extend(lines[done:])
    return "\n".join(result)


def _place(lines: list[str], old, start: int, done: int) -> int | None:
    def fits(at: int) -> bool:
        return (at >= done and at + len(old) <= len(lines)
                and all(_same(lines[at + k], row.text) for k, row in enumerate(old)))

    for offset in range(len(lines) + 1):
        for at in (start - offset, start + offset) if offset else (start,):
            if fits(at):
                return at
    return None


def _mismatch(lines: list[str], old, start: int, hunk, where: str) -> str:
    for k, row in enumerate(old):
        at = start + k
        found = lines[at] if 0 <= at < len(lines) else "(end of file)"
        if not _same(found, row.text):
            return (f"hunk {hunk.index} ({hunk.header}) does not apply to {where}: line "
                    f"{at + 1} reads '{found.strip()}', the hunk has '{row.text.strip()}', and "
                    f"no other place in the file holds all its old lines")
    return f"hunk {hunk.index} ({hunk.header}) does not apply to {where}"


def whole_images(tree: KernelTree, hunks, wanted) -> dict[str, tuple[str, str]]:
    """file -> (pre-image, post-image) text for the files ``wanted(file)`` selects.

    A file whose pre-image blob the tree lacks, or whose hunks do not apply,
    is left out: its hunks are then read alone.
    """
    by_file: dict[str, list] = {}
    for hunk in hunks:
        if wanted(hunk.file) and all(h.index != hunk.index for h in by_file.get(hunk.file, ())):
            by_file.setdefault(hunk.file, []).append(hunk)
    images = {}
    for file, file_hunks in by_file.items():
        pre = tree.text(file_hunks[0].source_blob)
        if pre is None:
            continue
        try:
            images[file] = (pre, apply_hunks(pre, file_hunks, file))
        except TreeMiss:
            continue
    return images

