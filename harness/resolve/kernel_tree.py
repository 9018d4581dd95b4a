"""A kernel tree at hand (``--kernel-tree PATH``): its files, blobs and history.

Kernel CI has a tree, and with one the harness need not trust the hunk's
context alone.  The tree is either a git repository (``GitTree``: blobs by
id with ``git cat-file``, files at a revision, a file's history with ``git
log``) or a plain source directory (``PlainDirectory``: its files are the
only revision, and a blob id is what ``git hash-object`` computes for a
file's bytes).  ``open_tree`` picks the kind.

``apply_file`` applies one file's hunks to a text as GNU ``patch`` does,
checking every context and removed line (whitespace-insensitively, so a
repaired web-archive copy applies; the post-image keeps the text's own
context lines), at an offset and with a fuzz of up to two context lines at
each end of a hunk if need be, preferring the C function the hunk's header
names; a hunk that does not fit is a ``Mismatch`` naming the first line
that differs (or the removed line the text holds nowhere).

``harness.resolve.preimage`` chooses which text a patch applies to.
Nothing here writes to the tree.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
from dataclasses import dataclass

from harness.errors import UsageError
from harness.ingest.hunks import UnreadableHunk, hunk_lines
from harness.ingest.scope import definition_name
from harness.translate.c_source import find_function


class TreeMiss(Exception):
    """The tree cannot give what was asked (the message says why)."""


def hash_object(text: str) -> str:
    """The blob id ``git hash-object`` gives a file holding ``text``."""
    data = text.encode("utf-8", "surrogateescape")
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _is_hex(blob: str | None) -> bool:
    return bool(blob) and all(c in "0123456789abcdef" for c in blob.lower())


def _check_directory(path: str) -> None:
    if not path:
        raise UsageError("--kernel-tree needs a path")
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--kernel-tree {path}: not a directory")
    if not os.path.isdir(path):
        raise UsageError(f"--kernel-tree {path}: no such directory")


def _git(path: str, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", path, *args], capture_output=True, timeout=60,
                              check=False)
    except FileNotFoundError:
        raise UsageError("--kernel-tree needs git, and git is not installed") from None
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "surrogateescape")


def open_tree(path: str) -> "GitTree | PlainDirectory":
    """The tree at ``path``: a git repository when it is the top of one, else a directory."""
    _check_directory(path)
    top = _git(path, "rev-parse", "--show-toplevel")
    if top is not None and os.path.realpath(top.strip()) == os.path.realpath(path):
        return GitTree(path)
    return PlainDirectory(path)


class GitTree:
    """A git repository holding kernel sources (any branch; nothing is written)."""

    kind = "git"

    def __init__(self, path: str):
        _check_directory(path)
        self.path = path
        if _git(path, "rev-parse", "--git-dir") is None:
            raise UsageError(f"--kernel-tree {path}: not a git repository")
        self._texts: dict[str, str | None] = {}
        self._commits: dict[str, str | None] = {}

    def _git(self, *args: str) -> str | None:
        return _git(self.path, *args)

    def text(self, blob: str | None) -> str | None:
        """The blob's text, or None when the tree does not hold it (or holds it ambiguously)."""
        if not _is_hex(blob):
            return None
        if blob not in self._texts:
            kind = self._git("cat-file", "-t", blob)
            self._texts[blob] = (self._git("cat-file", "blob", blob)
                                 if kind is not None and kind.strip() == "blob" else None)
        return self._texts[blob]

    def has_revision(self, rev: str) -> bool:
        return self.commit(rev) is not None

    def commit(self, rev: str) -> str | None:
        """The commit id ``rev`` names, or None."""
        if rev.startswith("-"):
            return None
        if rev not in self._commits:
            found = self._git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
            self._commits[rev] = found.strip() if found else None
        return self._commits[rev]

    def text_at(self, rev: str, path: str) -> str | None:
        """The file at ``rev`` (a commit, tag or branch), or None when absent there."""
        if rev.startswith("-"):
            raise UsageError(f"--rev {rev}: not a revision")
        blob = self.blob_at(rev, path)
        return self.text(blob) if blob else None

    def blob_at(self, rev: str, path: str) -> str | None:
        found = self._git("rev-parse", "--verify", "--quiet", f"{rev}:{path}")
        return found.strip() if found else None

    def history(self, rev: str, path: str, limit: int) -> list[str]:
        """Commits before ``rev`` (inclusive) that changed ``path``, newest first."""
        found = self._git("log", "--format=%H", f"-n{limit}", rev, "--", path)
        return found.split() if found else []

    def later(self, rev: str, paths, limit: int) -> list[str]:
        """Commits after ``rev`` on the way to ``HEAD`` that changed one of ``paths``,
        oldest first (at most ``limit``)."""
        found = self._git("log", "--format=%H", "--reverse", "--ancestry-path",
                          f"{rev}..HEAD", "--", *paths)
        return found.split()[:limit] if found else []

    def files(self, rev: str, prefixes: tuple[str, ...]) -> dict[str, str]:
        """path -> text of every file at ``rev`` whose path starts with one of ``prefixes``."""
        listing = self._git("ls-tree", "-r", rev, "--", *sorted({p.rstrip("/") for p in prefixes}))
        if not listing:
            return {}
        blobs = {}
        for row in listing.splitlines():
            meta, path = row.split("\t", 1)
            _, kind, blob = meta.split()
            if kind == "blob" and path.startswith(prefixes):
                blobs[path] = blob
        texts = self._batch(sorted(set(blobs.values())))
        return {path: texts[blob] for path, blob in blobs.items() if blob in texts}

    def _batch(self, blobs: list[str]) -> dict[str, str]:
        """Blob id -> text, read with one ``git cat-file --batch``."""
        if not blobs:
            return {}
        done = subprocess.run(["git", "-C", self.path, "cat-file", "--batch"],
                              input=("\n".join(blobs) + "\n").encode(), capture_output=True,
                              timeout=120, check=False)
        data, texts, at = done.stdout, {}, 0
        for blob in blobs:
            end = data.index(b"\n", at)
            header = data[at:end].split()
            if len(header) < 3 or header[1] != b"blob":
                at = end + 1
                continue
            size = int(header[2])
            texts[blob] = data[end + 1:end + 1 + size].decode("utf-8", "surrogateescape")
            self._texts.setdefault(blob, texts[blob])
            at = end + 1 + size + 1
        return texts

    def describe(self, commit: str) -> str:
        """A tag or one-line subject naming ``commit``."""
        tag = self._git("describe", "--tags", "--exact-match", commit)
        if tag:
            return tag.strip()
        subject = self._git("log", "-1", "--format=%s", commit)
        return subject.strip() if subject else commit[:12]

    def label(self, rev: str) -> str:
        return rev


class PlainDirectory:
    """A plain source directory: its files are the one revision, blob ids hashed."""

    kind = "directory"
    REVISIONS = ("HEAD", "")

    def __init__(self, path: str):
        _check_directory(path)
        self.path = path
        self._hashes: dict[str, str] | None = None    # blob id -> relative path

    def _read(self, path: str) -> str | None:
        full = os.path.join(self.path, path)
        if ".." in path.split("/") or not os.path.isfile(full):
            return None
        with open(full, "rb") as handle:
            return handle.read().decode("utf-8", "surrogateescape")

    def _blobs(self) -> dict[str, str]:
        if self._hashes is None:
            self._hashes = {}
            for directory in READ_DIRECTORIES:
                top = os.path.join(self.path, directory)
                for root, _, names in os.walk(top):
                    for name in sorted(names):
                        relative = os.path.relpath(os.path.join(root, name), self.path)
                        text = self._read(relative)
                        if text is not None:
                            self._hashes[hash_object(text)] = relative
        return self._hashes

    def text(self, blob: str | None) -> str | None:
        if not _is_hex(blob) or len(blob) < 7:
            return None
        found = [p for b, p in self._blobs().items() if b.startswith(blob.lower())]
        return self._read(found[0]) if len(found) == 1 else None

    def has_revision(self, rev: str) -> bool:
        return rev in self.REVISIONS

    def commit(self, rev: str) -> str | None:
        return None

    def text_at(self, rev: str, path: str) -> str | None:
        if rev not in self.REVISIONS:
            raise UsageError(f"--rev {rev}: {self.path} is a plain directory, not a git "
                             f"tree; it has only its files (leave --rev out)")
        return self._read(path)

    def blob_at(self, rev: str, path: str) -> str | None:
        text = self.text_at(rev, path)
        return hash_object(text) if text is not None else None

    def history(self, rev: str, path: str, limit: int) -> None:
        return None            # no history to search

    def later(self, rev: str, paths, limit: int) -> None:
        return None            # no later commits either

    def files(self, rev: str, prefixes: tuple[str, ...]) -> dict[str, str]:
        self.text_at(rev, "")          # refuses any other revision
        found = {}
        for prefix in prefixes:
            top = os.path.join(self.path, prefix)
            if os.path.isfile(top):
                found[prefix] = self._read(prefix)
            for root, _, names in os.walk(top):
                for name in names:
                    relative = os.path.relpath(os.path.join(root, name), self.path)
                    text = self._read(relative)
                    if text is not None:
                        found[relative] = text
        return found

    def describe(self, commit: str) -> str:
        return ""

    def label(self, rev: str) -> str:
        return "the directory's files"


# The directories whose files a plain directory hashes (the MMU files and their headers).
READ_DIRECTORIES = ("arch/x86/kvm", "arch/x86/include/asm", "include/linux", "virt/kvm")

KernelTree = GitTree           # the name the audit and older callers use


# ---------------------------------------------------------------------------
# Applying hunks to a pre-image
# ---------------------------------------------------------------------------

MAX_FUZZ = 2                   # context lines a hunk may lose at each end, as GNU patch allows


@dataclass(frozen=True)
class Mismatch:
    """Why one file's hunks do not apply to a text: the first line that differs."""

    hunk: int                  # index of the hunk in the patch
    header: str
    line: int                  # 1-based line of the text where the hunk was expected
    found: str                 # what the text holds there
    wanted: str                # what the hunk has
    absent: str = ""           # the hunk's first removed line the text holds nowhere

    def describe(self, where: str) -> str:
        if self.absent:
            return (f"hunk {self.hunk} ({self.header}) does not apply to {where}: its removed "
                    f"line '{self.absent.strip()}' is nowhere in the file")
        return (f"hunk {self.hunk} ({self.header}) does not apply to {where}: line "
                f"{self.line} reads '{self.found.strip()}' where the hunk has "
                f"'{self.wanted.strip()}', and no other place in the file holds all its old "
                f"lines, even with fuzz {MAX_FUZZ}")


@dataclass(frozen=True)
class Applied:
    """A file's text after its hunks, and how far the hunks had to bend to fit."""

    text: str
    fuzz: int                  # the most context lines any hunk ignored at one end (0..2)
    offsets: tuple[int, ...]   # per hunk: lines between its header's place and where it went
    in_function: tuple[bool | None, ...]   # per hunk: inside the header's function (None: no name)


def _key(line: str) -> str:
    return " ".join(line.split())


def apply_file(text: str, hunks, max_fuzz: int = MAX_FUZZ,
               exact: frozenset[int] = frozenset()) -> Applied | Mismatch:
    """``text`` with ``hunks`` (one file's, once each, in order) applied, or the Mismatch.

    As GNU ``patch`` does: each hunk applies where all its old-side lines
    (context and removed) match, whitespace-insensitively, at its header's
    line or the nearest offset, never before the previous hunk's end; if no
    place holds them all, up to ``max_fuzz`` context lines at each end of the
    hunk are ignored (the fuzz), never a removed line.  Among equal places
    the one inside the C function the hunk's header names wins.  The
    post-image keeps the text's own context lines.  Each hunk takes the
    smallest fuzz that places it; the hunks whose index is in ``exact`` take none.
    """
    lines = text.split("\n")
    keys = [_key(line) for line in lines]
    where: dict[str, list[int]] = {}
    for number, key in enumerate(keys):
        where.setdefault(key, []).append(number)
    result: list[str] = []
    done, fuzz_used, offsets, inside = 0, 0, [], []
    spans: dict[str, tuple[int, int] | None] = {}
    for hunk in hunks:
        try:
            rows = hunk_lines(hunk)
        except UnreadableHunk as exc:
            return Mismatch(hunk.index, hunk.header, hunk.source_start, "", str(exc))
        span = _function_span(text, _header_function(hunk), spans)
        placed = None
        for fuzz in range((0 if hunk.index in exact else max_fuzz) + 1):
            placed = _place_fuzzy(keys, where, rows, fuzz, done, span)
            if placed is not None:
                break
        if placed is None:
            return _mismatch(lines, keys, where, rows, hunk)
        at, head, tail, fuzz, expected = placed
        fuzz_used = max(fuzz_used, fuzz)
        offsets.append(at - expected)
        inside.append(None if span is None else span[0] <= at <= span[1])
        body = rows[head:len(rows) - tail]
        result.extend(lines[done:at])
        position = at
        for row in body:
            if row.kind == "+":
                result.append(row.text)
            else:
                if row.kind == " ":
                    result.append(lines[position])
                position += 1
        done = position
    result.extend(lines[done:])
    return Applied("\n".join(result), fuzz_used, tuple(offsets), tuple(inside))


def _header_function(hunk) -> str | None:
    """The C function the hunk's ``@@`` header names, if it names one."""
    return definition_name(hunk.hint) if getattr(hunk, "hint", None) else None


def _function_span(text: str, name: str | None, spans: dict) -> tuple[int, int] | None:
    if name is None:
        return None
    if name not in spans:
        found = find_function(text, name)
        spans[name] = (found.first, found.last) if found else None
    return spans[name]


def _trim(rows, fuzz: int) -> tuple[int, int]:
    """How many context rows to drop at the start and at the end for ``fuzz``."""
    head = 0
    while head < fuzz and head < len(rows) and rows[head].kind == " ":
        head += 1
    tail = 0
    while tail < fuzz and tail < len(rows) - head and rows[len(rows) - 1 - tail].kind == " ":
        tail += 1
    return head, tail


def _place_fuzzy(keys, where, rows, fuzz: int, done: int, span):
    """(line, rows dropped at the start, at the end, fuzz, expected line), or None."""
    head, tail = _trim(rows, fuzz)
    if fuzz and head < fuzz and tail < fuzz:
        return None               # nothing more to drop than at the previous fuzz
    body = rows[head:len(rows) - tail]
    old = [r for r in body if r.kind != "+"]
    first_old = next((r.old for r in rows if r.kind != "+"), None)
    expected = (first_old - 1 + sum(1 for r in rows[:head] if r.kind != "+")
                if first_old is not None else 0)
    if not old:
        if any(r.kind == "-" for r in rows) or fuzz:
            return None
        return min(max(expected, done), len(keys)), head, tail, fuzz, expected
    old_keys = [_key(r.text) for r in old]
    candidates = [at for at in where.get(old_keys[0], ())
                  if at >= done and at + len(old_keys) <= len(keys)
                  and keys[at:at + len(old_keys)] == old_keys]
    if not candidates:
        return None

    def rank(at):
        outside = span is not None and not (span[0] <= at <= span[1])
        return (outside, abs(at - expected), at)

    return min(candidates, key=rank), head, tail, fuzz, expected


def _mismatch(lines, keys, where, rows, hunk) -> Mismatch:
    absent = next((r.text for r in rows if r.kind == "-" and _key(r.text) not in where), "")
    old = [r for r in rows if r.kind != "+"]
    start = (old[0].old - 1) if old else max(hunk.source_start, 0)
    for k, row in enumerate(old):
        at = start + k
        found = lines[at] if 0 <= at < len(lines) else "(end of file)"
        if (keys[at] if 0 <= at < len(keys) else None) != _key(row.text):
            return Mismatch(hunk.index, hunk.header, at + 1, found, row.text, absent)
    return Mismatch(hunk.index, hunk.header, start + 1, "", "", absent)


def already_applied(text: str, hunks) -> bool:
    """Does ``text`` hold every hunk's new side (context and added lines) in one piece, and
    at least one hunk changes lines?  Then the patch is in it, as ``git apply -R`` would see."""
    keys = [_key(line) for line in text.split("\n")]
    joined = "\n" + "\n".join(keys) + "\n"
    changed = False
    for hunk in hunks:
        try:
            rows = hunk_lines(hunk)
        except UnreadableHunk:
            return False
        new = [_key(r.text) for r in rows if r.kind != "-"]
        changed = changed or any(r.kind != " " for r in rows)
        if not new or "\n" + "\n".join(new) + "\n" not in joined:
            return False
    return changed


_FULL_HEADER = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@")


def reverse_hunk(hunk):
    """The hunk as ``git apply -R`` reads it: its two sides swapped (the header's ranges,
    removed and added lines, the index line's blobs), so applying it undoes the change."""
    rows = hunk.text.split("\n")
    match = _FULL_HEADER.match(rows[0]) if rows else None
    if match is None:
        return hunk                  # apply_file reports the unreadable header
    old, old_len, new, new_len = match.groups()
    header = f"@@ -{new}{new_len or ''} +{old}{old_len or ''} @@" + rows[0][match.end():]
    swap = {"-": "+", "+": "-"}
    body = [swap[row[0]] + row[1:] if row[:1] in swap else row for row in rows[1:]]
    return dataclasses.replace(
        hunk, text="\n".join([header] + body),
        source_start=hunk.target_start, source_length=hunk.target_length,
        target_start=hunk.source_start, target_length=hunk.source_length,
        removed=hunk.added, added=hunk.removed,
        source_blob=hunk.target_blob, target_blob=hunk.source_blob)


def apply_hunks(text: str, hunks, where: str) -> str:
    """The post-image of ``text`` after ``hunks``, or TreeMiss naming the line that differs."""
    post = apply_file(text, hunks)
    if isinstance(post, Mismatch):
        raise TreeMiss(post.describe(where))
    return post.text
