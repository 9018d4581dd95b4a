"""A large mbox made at run time from the bundled series.

``make_mbox(copies)`` writes ``copies`` copies of the bundled series' patches
(cover letters left out) into one mbox: copy ``k`` (k >= 1) is tagged
``v{k+1}`` in every Subject and gets its own Message-IDs, so no two mails
share an id and every copy reads as a new version of the series.  The web
archive copy of 3/4 (no mail headers) is given plain headers and keeps its
body unchanged, whitespace damage included, so ingest repairs it every time
as it does for the bundled file.
"""

from __future__ import annotations

import os
import re

SEPARATOR = "From mboxrd@z Thu Jan  1 00:00:00 1970\n"
POSITION = re.compile(r"\[[^\]]*?(\d+)/(\d+)\]")
MESSAGE_ID = re.compile(r"<(\d+\.\d+)-(\d+)-([^>]+)>")


def bundled_patches(directory: str) -> list[tuple[int, str, str]]:
    """(index in series, file name, text) of every non-cover patch, in series order."""
    found = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
        position = _position(text)
        if position is None or position == 0:
            continue
        found.append((position, name, text))
    return sorted(found)


def _position(text: str) -> int | None:
    for line in text.splitlines()[:40]:
        if line.startswith("Subject:") or line.startswith("["):
            match = POSITION.search(line)
            if match:
                return int(match.group(1))
    return None


def as_mail(text: str, position: int) -> str:
    """The patch as one mail (headers, blank line, body), without a From_ line."""
    if text.startswith("From "):
        return text.split("\n", 1)[1]
    subject, _, body = text.partition("\n")
    headers = (f"From: Sean Christopherson <seanjc@google.com>\n"
               f"Date: Tue, 19 Mar 2024 17:50:24 -0700\n"
               f"Message-ID: <20240320005024.3216282-{position + 1}-seanjc@google.com>\n"
               f"In-Reply-To: <20240320005024.3216282-1-seanjc@google.com>\n"
               f"Subject: {subject.strip()}\n"
               f"Content-Type: text/plain; charset=\"UTF-8\"\n")
    return headers + "\n" + body.lstrip("\n")


def tagged(mail: str, copy: int) -> str:
    """Copy ``copy`` of a mail: version tag v{copy+1} and distinct Message-IDs."""
    if copy == 0:
        return mail
    header, _, body = mail.partition("\n\n")
    header = re.sub(r"^(Subject:\s*\[[^\]]*?PATCH)(?: v\d+)?", rf"\1 v{copy + 1}", header,
                    flags=re.MULTILINE)
    header = MESSAGE_ID.sub(lambda m: f"<{m.group(1)}.{copy}-{m.group(2)}-{m.group(3)}>",
                            header)
    return header + "\n\n" + body


def mbox_text(directory: str, copies: int) -> tuple[str, int]:
    """The mbox text and the number of patch mails in it."""
    patches = bundled_patches(directory)
    mails = [as_mail(text, position) for position, _, text in patches]
    parts = []
    for copy in range(copies):
        for mail in mails:
            message = tagged(mail, copy)
            if not message.endswith("\n"):
                message += "\n"
            parts.append(SEPARATOR + message + "\n")
    return "".join(parts), len(parts)


def write_mbox(directory: str, copies: int, path: str) -> int:
    """Write the mbox to ``path``; returns how many patch mails it holds."""
    text, count = mbox_text(directory, copies)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(text)
    return count


def first_mails(directory: str, copies: int, count: int, path: str) -> int:
    """An mbox of the first ``count`` patch mails of the ``copies``-copy mbox."""
    text, _ = mbox_text(directory, copies)
    mails = text.split(SEPARATOR)[1:][:count]
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write("".join(SEPARATOR + mail for mail in mails))
    return len(mails)
