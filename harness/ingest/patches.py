"""Ingest: mails, mboxes, bare diffs and web-archive copies -> ``Patch`` values.

Input forms (decided per file by ``detect_form``):

- ``mbox``: a file whose first line is an mbox ``From `` separator.  Split on
  separator lines here (not with ``mailbox.mbox``) so every mail keeps the
  input line numbers of its lines; ``>From `` quoting is undone (mboxrd).
- ``mail``: one RFC 5322 message, parsed with ``email`` (``policy.default``):
  quoted-printable and base64 bodies are decoded, the body is decoded by its
  declared charset (``us-ascii`` is read as UTF-8, its superset).  Bytes the
  charset cannot decode are replaced (U+FFFD) and noted as damage when they lie
  in the commit message; in the diff they raise ``PatchError``, because a diff
  with replaced bytes cannot match any tree.
- ``web``: a web-archive copy: ``[PATCH n/m] subject`` on the first line,
  ``From:``/``Date:`` pseudo-headers, the message, ``---``, diffstat, diff.
- ``diff``: a bare diff with no headers.

Text holding NUL bytes is refused.  In a many-mail mbox, review replies
(``Re:`` subjects) are skipped and noted on the patches.  The diff part of
every form is read by ``repair.read_diff`` (whitespace damage detection and
repair); ``Patch.input_lines`` maps each line of ``diff_text`` back to the
input file for ``ScopedHunk.line``.  ``read_paths`` then groups the patches into series and
orders them (``harness.ingest.series``).
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import email.utils
import hashlib
import os
import re
from dataclasses import dataclass, field, replace

import unidiff

from harness.errors import LimitError, PatchError
from harness.ingest.repair import (UNVERIFIABLE_NOTE, Repair, find_diff_start, read_diff,
                            strip_crlf)

# In a directory, a file with one of these names is always an input (a verdict or an
# ERROR, never dropped); a ``.txt`` file is one when it looks like a patch (a web-archive
# copy); every other entry is listed as ignored.
PATCH_SUFFIXES = (".patch", ".diff", ".mbox", ".mbx", ".eml")
TEXT_SUFFIX = ".txt"
MBOX_SEPARATOR = re.compile(r"^From \S+.*$")
HEADER_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:( |$)")
# A mail header field: RFC 5322 needs no blank after the colon
# ("ARC-Seal:i=1; ..." as list servers write it).
MAIL_HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:")
WEB_SUBJECT = re.compile(r"^\s*\[[^\]]*PATCH[^\]]*\]\s*\S", re.IGNORECASE)
BASE_COMMIT = re.compile(r"^base-commit: *([0-9a-f]{7,40})\s*$", re.MULTILINE)
REPLY_SUBJECT = re.compile(r"^\s*(re|aw|sv|antw)\s*:", re.IGNORECASE)
PREFIX_GROUP = re.compile(r"^\s*\[([^\]]*)\]\s*")
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class SeriesPosition:
    """Where a mail sits in its series: ``[RFC PATCH v2 3/4]`` -> ("RFC PATCH", 2, 3, 4)."""

    prefix: str
    version: int | None
    index: int
    total: int

    def __repr__(self) -> str:
        version = f" v{self.version}" if self.version is not None else ""
        return f"[{self.prefix}{version} {self.index}/{self.total}]"


@dataclass(frozen=True)
class Patch:
    """One mail (or bare diff) of a series, its diff already whitespace-repaired."""

    path: str
    mail_index: int | None
    subject: str
    raw_subject: str
    message_id: str | None
    in_reply_to: str | None
    author: str | None
    date: str | None
    series: SeriesPosition | None
    base_commit: str | None
    body: str = field(repr=False)
    diff_text: str = field(repr=False)
    damage: tuple[str, ...] = field(repr=False)
    repairs: tuple[Repair, ...] = field(repr=False)
    is_cover: bool = False
    notes: tuple[str, ...] = field(default=(), repr=False)
    # 1-based input line of each line of diff_text (for ScopedHunk.line).
    input_lines: tuple[int, ...] = field(default=(), repr=False, compare=False)
    # Message-IDs of the References header, thread root first.
    references: tuple[str, ...] = field(default=(), repr=False)
    # sha256 of the patch as given: the file's bytes, or its mail's in a many-mail mbox
    # (KCIDB's patchset_hash is made of these).
    source_sha256: str | None = field(default=None, repr=False)
    # Which series of the input this patch belongs to (numbered by order_series).
    series_group: int | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        where = f" {self.series!r}" if self.series else ""
        flags = " repaired" if self.repaired else ""
        return f"Patch({self.label}{where} {self.subject[:50]!r}{flags})"

    @property
    def repaired(self) -> bool:
        return bool(self.repairs)

    @property
    def label(self) -> str:
        name = os.path.basename(self.path)
        if self.mail_index is None:
            return name
        return f"{name}#{self.mail_index} {self.message_id or ''}".rstrip()

    def patch_set(self) -> unidiff.PatchSet:
        return parse_patch_set(self.diff_text, self.path, self.message_id)


def parse_patch_set(diff_text: str, path: str, mail: str | None) -> unidiff.PatchSet:
    """``unidiff.PatchSet`` of a diff, its errors turned into ``PatchError``."""
    try:
        return unidiff.PatchSet(diff_text)
    except (unidiff.UnidiffParseError, ValueError, IndexError) as error:
        raise PatchError(f"the diff does not parse as a unified diff: {error}",
                         file=path, mail=mail,
                         hint="check the hunk headers and line prefixes") from None


# --- reading files -----------------------------------------------------------


def read_bytes(path: str) -> bytes:
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise LimitError(f"file is {size} bytes, more than {MAX_FILE_BYTES}", file=path,
                             hint="split the mbox")
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise PatchError(f"cannot read: {error.strerror}", file=path) from None


def detect_form(data: bytes) -> str | None:
    """``"mbox"``, ``"mail"``, ``"web"``, ``"diff"`` or None (not a patch)."""
    head = data[:65536].decode("latin-1")
    lines = head.replace("\r\n", "\n").split("\n")
    first = next((line for line in lines if line.strip()), "")
    if lines and MBOX_SEPARATOR.match(lines[0]):
        return "mbox"
    if MAIL_HEADER.match(lines[0]) and looks_like_headers(lines):
        return "mail"
    if WEB_SUBJECT.match(first):
        return "web"
    if find_diff_start(lines) is not None:
        return "diff"
    return None


def looks_like_headers(lines: list[str]) -> bool:
    names = set()
    for line in lines:
        if not line:
            break
        if line[0] in " \t":
            continue
        if not MAIL_HEADER.match(line):
            return False
        names.add(line.split(":", 1)[0].lower())
    return bool(names & {"subject", "from", "message-id"})


def sniff(path: str) -> bool:
    """Is this file a patch, a mail or an mbox?"""
    try:
        with open(path, "rb") as handle:
            return detect_form(handle.read(65536)) is not None
    except OSError:
        return False


def read_file(path: str) -> list[Patch]:
    """Every patch in one file (in file order; not yet grouped into series)."""
    data = read_bytes(path)
    if not data.strip():
        raise PatchError("the file is empty" if not data else "the file holds only blank lines",
                         file=path, hint="a failed download? fetch the patch again")
    form = detect_form(data)
    if form is None:
        raise PatchError("not a patch: no mail headers, no [PATCH] subject and no diff found",
                         file=path, hint="give a .patch/.mbox file or a git diff")
    if form == "mbox":
        mails = split_mbox(data)
        if not mails:
            raise PatchError("the mbox holds no mail, only its separator line", file=path,
                             hint="a failed download? fetch the mbox again")
        if len(mails) > 1:
            return read_mbox_mails(mails, path)
        # a single mail saved as mbox: label it by file name
        patch = read_mail(mails[0][1], path, None, mails[0][0])
    elif form == "mail":
        patch = read_mail(data, path, None, 1)
    elif form == "web":
        patch = read_web_copy(decode_plain(data, path), path)
    else:
        patch = read_bare_diff(decode_plain(data, path), path)
    return [replace(patch, source_sha256=hashlib.sha256(data).hexdigest())]


def read_mbox_mails(mails: list[tuple[int, bytes]], path: str) -> list[Patch]:
    """Patches of a many-mail mbox; review replies (``Re:``) are skipped with a note.

    A thread saved by ``b4 mbox`` holds the replies too; a reply is never the
    patch itself, even when it quotes or proposes a diff.
    """
    patches: list[Patch] = []
    skipped: list[str] = []
    for index, (first_line, chunk) in enumerate(mails, start=1):
        headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(chunk)
        if REPLY_SUBJECT.match(str(headers.get("Subject", ""))):
            skipped.append(clean_id(headers.get("Message-ID")) or f"#{index}")
            continue
        patches.append(replace(read_mail(chunk, path, index, first_line),
                               source_sha256=hashlib.sha256(chunk).hexdigest()))
    if skipped and patches:
        note = f"{len(skipped)} reply mails skipped: " + ", ".join(skipped[:5]) + (
            " ..." if len(skipped) > 5 else "")
        patches = [replace(patch, notes=patch.notes + (note,)) for patch in patches]
    if not patches:
        raise PatchError("the mbox holds only replies, no patch mail", file=path,
                         hint="give the mbox of the series (e.g. b4 am output)")
    return patches


def decode_plain(data: bytes, path: str) -> str:
    """A headerless file is read as UTF-8; non-UTF-8 bytes are refused."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PatchError(f"not UTF-8 (byte {error.start}) and no header declares a charset",
                         file=path, hint="convert the file to UTF-8") from None


def split_mbox(data: bytes) -> list[tuple[int, bytes]]:
    """Mails of an mbox with the 1-based line of each mail's first header."""
    lines = data.split(b"\n")
    mails: list[tuple[int, bytes]] = []
    start = None
    for number, line in enumerate(lines):
        if line.startswith(b"From ") and (number == 0 or lines[number - 1].strip() == b""):
            if start is not None:
                mails.append((start + 1, b"\n".join(lines[start:number])))
            start = number + 1
    if start is not None:
        mails.append((start + 1, b"\n".join(lines[start:])))
    return [(first, unquote_from(chunk)) for first, chunk in mails if chunk.strip()]


def unquote_from(chunk: bytes) -> bytes:
    return re.sub(rb"(?m)^>(>*From )", rb"\1", chunk)


# --- subjects ------------------------------------------------------------------


def parse_subject(raw_subject: str) -> tuple[str, SeriesPosition | None]:
    """Normalised subject and series position of a ``[PREFIX vN i/n] subject`` line."""
    text = " ".join(raw_subject.split())
    tags: list[str] = []
    while True:
        match = PREFIX_GROUP.match(text)
        if match is None:
            break
        tags.extend(match.group(1).split())
        text = text[match.end():]
    subject = " ".join(text.split())
    if not tags:
        return subject, None
    version = None
    index = total = None
    words = []
    for tag in tags:
        if re.fullmatch(r"[vV]\d+", tag):
            version = int(tag[1:])
        elif re.fullmatch(r"\d+/\d+", tag):
            index, total = (int(n) for n in tag.split("/"))
        else:
            words.append(tag)
    prefix = " ".join(words)
    if index is None:
        if not any(word.upper() == "PATCH" for word in words):
            return subject, None
        index = total = 1
    return subject, SeriesPosition(prefix, version, index, total)


# --- mails ----------------------------------------------------------------------


def read_mail(data: bytes, path: str, mail_index: int | None, first_line: int) -> Patch:
    """One RFC 5322 mail -> Patch."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    message_id = clean_id(message.get("Message-ID"))
    where = message_id or (str(mail_index) if mail_index is not None else None)
    raw_subject = " ".join(str(message.get("Subject", "")).split())
    text, damage, numbers = mail_text(message, data, path, where)
    numbers = [first_line + number - 1 for number in numbers]
    text, crlf = strip_crlf(text)
    repairs = (crlf,) if crlf else ()
    damage += ("CRLF line endings",) if crlf else ()
    author = message.get("From")
    date = message.get("Date")
    patch = build_patch(
        path=path, mail_index=mail_index, raw_subject=raw_subject, message_id=message_id,
        in_reply_to=clean_id(message.get("In-Reply-To")),
        author=" ".join(str(author).split()) if author else None,
        date=str(date) if date else None, text=text,
        first_line=numbers, damage=damage, repairs=repairs)
    return replace(patch, references=message_ids(message.get("References")))


def message_ids(value) -> tuple[str, ...]:
    """Every ``<id>`` of a References header, in order."""
    return tuple(re.findall(r"<[^<>\s]+>", str(value))) if value else ()


def clean_id(value) -> str | None:
    if value is None:
        return None
    found = re.search(r"<[^>]+>", str(value))
    return found.group(0) if found else str(value).strip() or None


def mail_text(message, data: bytes, path: str,
              where: str | None) -> tuple[str, tuple[str, ...], list[int]]:
    """Decoded text of the mail's patch part, damage notes, and line numbers.

    The numbers give the 1-based line (within ``data``) of each decoded line:
    exact for 7bit/8bit and quoted-printable parts; every line of a base64
    part gets the part's first line.
    """
    parts = [part for part in message.walk() if not part.is_multipart()]
    texts = [part for part in parts
             if part.get_content_type() in ("text/plain", "text/x-patch", "text/x-diff")]
    if not texts:
        raise PatchError("the mail has no text/plain or patch part", file=path, mail=where)
    chosen = texts[0] if len(texts) == 1 else next(
        (part for part in texts if b"\n@@ -" in (part.get_payload(decode=True) or b"")), texts[0])
    payload = chosen.get_payload(decode=True) or b""
    charset = chosen.get_content_charset() or "utf-8"
    if charset in ("us-ascii", "ascii"):
        charset = "utf-8"
    damage: tuple[str, ...] = ()
    try:
        text = payload.decode(charset)
    except LookupError:
        raise PatchError(f"unknown charset {charset!r}", file=path, mail=where,
                         hint="re-save the mail as UTF-8") from None
    except UnicodeDecodeError as error:
        text = payload.decode(charset, errors="replace")
        start = find_diff_start(text.split("\n"))
        diff_begin = len("\n".join(text.split("\n")[:start])) if start is not None else len(text)
        if "\ufffd" in text[diff_begin:]:
            raise PatchError(f"bytes the declared charset {charset} cannot decode lie in the "
                             f"diff ({error.reason})", file=path, mail=where,
                             hint="fix the Content-Type charset of the mail") from None
        damage = (f"bytes not valid in the declared charset {charset} replaced in the "
                  "commit message",)
    return text, damage, part_line_numbers(data, chosen, text.count("\n") + 1)


def part_line_numbers(data: bytes, part, count: int) -> list[int]:
    """Input line (1-based, in ``data``) of each of the ``count`` decoded lines of a part."""
    raw = part.get_payload(decode=False)
    raw = raw if isinstance(raw, str) else ""
    try:   # undo the parser's surrogate escapes so columns match the bytes
        raw_text = raw.encode("ascii", "surrogateescape").decode("latin-1")
    except UnicodeEncodeError:   # already decoded by its charset: search as is
        raw_text = raw
    whole = data.decode("latin-1")
    headers_end = whole.find("\n\n")
    first_raw = next((line for line in raw_text.split("\n") if line.strip()), "")
    position = whole.find(first_raw, max(headers_end, 0)) if first_raw else -1
    if position == -1:
        position = max(headers_end, 0) + 2
    position = whole.rfind("\n", 0, position) + 1   # start of that line
    start = whole.count("\n", 0, position) + 1
    leading_blank = len(raw_text) - len(raw_text.lstrip("\r\n"))
    start -= raw_text[:leading_blank].count("\n")
    encoding = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    if encoding == "base64":
        return [start] * count
    if encoding == "quoted-printable":
        numbers, begins_line = [], True
        for offset, line in enumerate(raw_text.split("\n")):
            if begins_line:
                numbers.append(start + offset)
            begins_line = not line.rstrip("\r").endswith("=")
        return (numbers + [numbers[-1] if numbers else start] * count)[:count]
    return list(range(start, start + count))


def read_web_copy(text: str, path: str) -> Patch:
    """A web-archive copy: subject line, ``From:``/``Date:`` pseudo-headers, message, diff."""
    text, crlf = strip_crlf(text)
    lines = text.split("\n")
    first = next(number for number, line in enumerate(lines) if line.strip())
    raw_subject = " ".join(lines[first].split())
    headers: dict[str, str] = {}
    number = first + 1
    while number < len(lines) and not lines[number].strip():
        number += 1
    while number < len(lines) and HEADER_LINE.match(lines[number]):
        name, value = lines[number].split(":", 1)
        headers[name.strip().lower()] = value.strip()
        number += 1
    body_text = "\n".join(lines[number:])
    patch = build_patch(
        path=path, mail_index=None, raw_subject=raw_subject,
        message_id=clean_id(headers.get("message-id")),
        in_reply_to=clean_id(headers.get("in-reply-to")),
        author=headers.get("from"), date=headers.get("date"), text=body_text,
        first_line=number + 1, damage=("CRLF line endings",) if crlf else (),
        repairs=(crlf,) if crlf else ())
    return replace(patch, references=message_ids(headers.get("references")))


def read_bare_diff(text: str, path: str) -> Patch:
    text, crlf = strip_crlf(text)
    return build_patch(path=path, mail_index=None, raw_subject="", message_id=None,
                       in_reply_to=None, author=None, date=None, text=text, first_line=1,
                       damage=("CRLF line endings",) if crlf else (),
                       repairs=(crlf,) if crlf else ())


def build_patch(*, path: str, mail_index: int | None, raw_subject: str,
                message_id: str | None, in_reply_to: str | None, author: str | None,
                date: str | None, text: str, first_line: int | list[int], damage: tuple[str, ...],
                repairs: tuple[Repair, ...]) -> Patch:
    """Split a mail text into message and diff, repair the diff, make the Patch."""
    subject, series = parse_subject(raw_subject)
    where = message_id or (str(mail_index) if mail_index is not None else None)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00"))
        raise PatchError("the text holds NUL bytes: binary data, not a text patch", file=path,
                         mail=where, line=first_line + line if isinstance(first_line, int)
                         else (first_line[line] if line < len(first_line) else None),
                         hint="send the patch as plain text (git format-patch)")
    lines = text.split("\n")
    start = find_diff_start(lines)
    is_cover = series is not None and series.index == 0
    notes: list[str] = []
    if start is not None and is_cover:
        # e.g. an interdiff against the previous version: kept in the body,
        # never checked as a patch of its own.
        notes.append("the cover letter holds a diff (an interdiff?); it is not checked")
        start = None
    if start is None:
        if not is_cover:
            raise PatchError("no diff found in the mail (and it is not a 0/N cover letter)",
                             file=path, mail=where,
                             hint="give the patch mails, or mark the cover letter 0/N")
        body, diff_text, input_lines = text.strip("\n"), "", ()
    else:
        body = message_part(lines[:start])
        read = read_diff(lines, start, first_line, file=path, mail=where)
        diff_text, input_lines = read.text, read.input_lines
        damage = damage + read.damage
        repairs = repairs + read.repairs
        parse_patch_set(diff_text, path, where)  # fail here, not later in a stage
    if any(repair.hunk is not None for repair in repairs):
        notes.append(UNVERIFIABLE_NOTE)
    found = BASE_COMMIT.findall(text)
    if not subject:
        subject = first_words(body) if body else os.path.basename(path)
    return Patch(path=path, mail_index=mail_index, subject=subject, raw_subject=raw_subject,
                 message_id=message_id, in_reply_to=in_reply_to, author=author, date=date,
                 series=series, base_commit=found[-1] if found else None, body=body,
                 diff_text=diff_text, damage=tuple(damage), repairs=tuple(repairs),
                 is_cover=is_cover, notes=tuple(notes), input_lines=tuple(input_lines))


def message_part(lines: list[str]) -> str:
    """The commit message: text before the ``---`` line (diffstat dropped)."""
    for number, line in enumerate(lines):
        if line.rstrip() == "---":
            return "\n".join(lines[:number]).strip("\n")
    return "\n".join(lines).strip("\n")


def first_words(body: str) -> str:
    return " ".join(body.strip().split("\n")[0].split())[:80]


# --- series ---------------------------------------------------------------------


@dataclass(frozen=True)
class Ignored:
    """A directory entry that is not an input, and why (listed in the results)."""

    path: str
    reason: str


def find_inputs(paths: list[str]) -> tuple[list[str], list[Ignored]]:
    """The input files: every file named, and the patch files inside directories named.

    Nothing is dropped silently: a directory entry that is not an input comes
    back as ``Ignored`` with its reason.
    """
    files: list[str] = []
    ignored: list[Ignored] = []
    for path in paths:
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                reason = ignored_because(full)
                if reason is None:
                    files.append(full)
                else:
                    ignored.append(Ignored(full, reason))
        elif os.path.exists(path):
            files.append(path)
        else:
            raise PatchError("no such file or directory", file=path)
    return files, ignored


def ignored_because(path: str) -> str | None:
    """Why a directory entry is not an input, or None when it is one."""
    if os.path.isdir(path):
        return "a directory inside a directory is not searched (name it to check it)"
    if not os.path.isfile(path):
        return "not a regular file"
    name = os.path.basename(path).lower()
    if name.endswith(PATCH_SUFFIXES):
        return None
    if name.endswith(TEXT_SUFFIX):
        return None if sniff(path) else "a .txt file that does not look like a patch"
    return ("not a patch file name (" + ", ".join(PATCH_SUFFIXES)
            + f", or a {TEXT_SUFFIX} file that looks like a patch)")


def read_paths(paths: list[str]) -> list[Patch]:
    """Read files and directories into patches, grouped into series and ordered."""
    patches: list[Patch] = []
    from harness.ingest.series import order_series

    for path in find_inputs(paths)[0]:
        patches.extend(read_file(path))
    return order_series(patches)
