"""A kernel tree at hand (``--kernel-tree PATH``): its files, blobs and history.

Kernel CI has a tree, and with one the harness need not trust the hunk's
context alone.  The tree is either a git repository (``GitTree``: blobs by
id with ``git cat-file``, files at a revision, a file's history with ``git
log``) or a plain source directory (``PlainDirectory``: its files are the
only revision, and a blob id is what ``git hash-object`` computes for a
file's bytes).  ``open_tree`` picks the kind.

``apply_file`` applies one file's hunks to a text, checking every context
and removed line (whitespace-insensitively, so a repaired web-archive copy
applies; the post-image keeps the text's own context lines); a hunk that
does not fit is a ``Mismatch`` naming the first line that differs.

``harness.resolve.preimage`` chooses which text a patch applies to.
Nothing here writes to the tree.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass

from harness.errors import UsageError
from harness.ingest.hunks import UnreadableHunk, hunk_lines


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

@dataclass(frozen=True)
class Mismatch:
    """Why one file's hunks do not apply to a text: the first line that differs."""

    hunk: int                  # index of the hunk in the patch
    header: str
    line: int                  # 1-based line of the text where the hunk was expected
    found: str                 # what the text holds there
    wanted: str                # what the hunk has

    def describe(self, where: str) -> str:
        return (f"hunk {self.hunk} ({self.header}) does not apply to {where}: line "
                f"{self.line} reads '{self.found.strip()}' where the hunk has "
                f"'{self.wanted.strip()}', and no other place in the file holds all its old "
                f"lines")


def _key(line: str) -> str:
    return " ".join(line.split())


def apply_file(text: str, hunks) -> str | Mismatch:
    """``text`` with ``hunks`` (one file's, once each, in order) applied, or the Mismatch.

    Each hunk applies where all its old-side lines (context and removed)
    match, whitespace-insensitively: at its header's line or, as ``git
    apply`` allows, at the nearest offset, never before the previous hunk's
    end.  The post-image keeps the text's own context lines.
    """
    lines = text.split("\n")
    keys = [_key(line) for line in lines]
    where: dict[str, list[int]] = {}
    for number, key in enumerate(keys):
        where.setdefault(key, []).append(number)
    result: list[str] = []
    done = 0
    for hunk in hunks:
        try:
            rows = hunk_lines(hunk)
        except UnreadableHunk as exc:
            return Mismatch(hunk.index, hunk.header, hunk.source_start, "", str(exc))
        old = [r for r in rows if r.kind != "+"]
        start = (old[0].old - 1) if old else max(hunk.source_start, 0)
        at = _place(keys, where, [_key(r.text) for r in old], start, done)
        if at is None:
            return _mismatch(lines, keys, old, start, hunk)
        result.extend(lines[done:at])
        position = at
        for row in rows:
            if row.kind == "+":
                result.append(row.text)
            else:
                if row.kind == " ":
                    result.append(lines[position])
                position += 1
        done = position
    result.extend(lines[done:])
    return "\n".join(result)


def _place(keys, where, old_keys, start: int, done: int) -> int | None:
    if not old_keys:
        return min(max(start, done), len(keys))
    candidates = [at for at in where.get(old_keys[0], ())
                  if at >= done and at + len(old_keys) <= len(keys)
                  and keys[at:at + len(old_keys)] == old_keys]
    if not candidates:
        return None
    return min(candidates, key=lambda at: (abs(at - start), at))


def _mismatch(lines, keys, old, start: int, hunk) -> Mismatch:
    for k, row in enumerate(old):
        at = start + k
        found = lines[at] if 0 <= at < len(lines) else "(end of file)"
        if (keys[at] if 0 <= at < len(keys) else None) != _key(row.text):
            return Mismatch(hunk.index, hunk.header, at + 1, found, row.text)
    return Mismatch(hunk.index, hunk.header, start + 1, "", "")


def apply_hunks(text: str, hunks, where: str) -> str:
    """The post-image of ``text`` after ``hunks``, or TreeMiss naming the line that differs."""
    post = apply_file(text, hunks)
    if isinstance(post, Mismatch):
        raise TreeMiss(post.describe(where))
    return post
