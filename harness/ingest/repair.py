"""Read the diff part of a mail, detecting and repairing whitespace damage.

A diff that went through a mail client or a web archive can lose whitespace:

(a) context lines lose their leading space (the line no longer starts with
    ``' '``, ``'-'`` or ``'+'``);
(b) every line loses its leading whitespace and runs of blanks are folded
    (web-archive copies such as the bundled RFC 3/4): a context line whose
    content starts with ``-``/``+`` now looks like a removed/added line;
(c) long lines are wrapped by the mail client (a continuation line without a
    diff prefix);
(d) CRLF line endings.

The hunk header's line counts are the only trustworthy record of what the
body held, so every hunk body is read by enumerating the classifications of
its lines that fit those counts (a small dynamic programme over
``(lines read, old lines used, new lines used)``).  Exactly one reading ->
the hunk is rewritten in clean unified form and each change is recorded as a
``Repair``; none -> the counts lie (or the damage is of a kind we do not
model); more than one -> the damage is ambiguous.  Both raise ``PatchError``.

Undamaged hunks have exactly one classification per line, so the same code
checks their counts strictly.  The line options widen only in a hunk that
shows damage, never in a clean one: a clean hunk with a wrong count is
refused, not "repaired".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from math import comb

from harness.errors import PatchError

HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")

# Lines allowed after the last hunk of a mail: the signature and the trailers
# git format-patch writes.
TRAILER_START = re.compile(
    r"^(-- ?|--|base-commit: .*|prerequisite-patch-id: .*|change-id: .*)$")

# A mail client breaks a line only when the next word would not fit; every
# common client wraps somewhere between 64 and 80 columns.
SHORTEST_WRAP_WIDTH = 60

CONTEXT, REMOVED, ADDED, MARKER, JOINED = "context", "removed", "added", "marker", "joined"
STEP = {CONTEXT: (1, 1), REMOVED: (1, 0), ADDED: (0, 1), MARKER: (0, 0), JOINED: (0, 0)}

UNVERIFIABLE_NOTE = ("whitespace was repaired: whitespace-only content (indentation, tabs "
                     "inside RST tables, blanks inside string literals) cannot be verified "
                     "from this copy")


@dataclass(frozen=True)
class Repair:
    """One repair made to a hunk (``hunk`` is None for whole-mail repairs)."""

    hunk: str | None
    kind: str
    detail: str

    def __repr__(self) -> str:
        return f"Repair({self.hunk or '<mail>'}: {self.kind}: {self.detail})"


@dataclass(frozen=True)
class ReadDiff:
    """A diff as clean unified text, with where each of its lines came from."""

    text: str
    input_lines: tuple[int, ...]   # 1-based input line of each line of ``text``
    damage: tuple[str, ...]
    repairs: tuple[Repair, ...]
    end: int                       # index (in the lines given) just past the diff


def strip_crlf(text: str) -> tuple[str, Repair | None]:
    """Convert CRLF line ends to LF when every line of ``text`` has one."""
    lines = text.split("\n")
    ended = [line for line in lines[:-1]]
    if ended and all(line.endswith("\r") for line in ended):
        repair = Repair(None, "crlf", f"{len(ended)} CRLF line ends converted to LF")
        return text.replace("\r\n", "\n"), repair
    return text, None


def is_diff_start(lines: list[str], i: int) -> bool:
    """Does a file's diff start at ``lines[i]``?"""
    line = lines[i]
    if line.startswith("diff --git ") or line.startswith("Index: "):
        return True
    return (line.startswith("--- ") and i + 2 < len(lines)
            and lines[i + 1].startswith("+++ ") and HUNK_HEADER.match(lines[i + 2]) is not None)


def find_diff_start(lines: list[str], begin: int = 0) -> int | None:
    """Index of the first line that starts a file's diff, or None."""
    for i in range(begin, len(lines)):
        if is_diff_start(lines, i):
            return i
    return None


def is_boundary(lines: list[str], i: int) -> bool:
    """Can no hunk body line sit at ``lines[i]`` (next hunk or next file)?"""
    return HUNK_HEADER.match(lines[i]) is not None or is_diff_start(lines, i)


def display_width(text: str) -> int:
    return len(text.expandtabs(8))


def line_options(line: str, previous: str | None, damaged: bool, stripped: bool) -> tuple[str, ...]:
    """The classifications a hunk body line can have under the damage model."""
    if line.startswith("\\"):
        return (MARKER,)
    if line == "" or line.startswith(" "):
        return (CONTEXT,)
    if line.startswith("-"):
        return (REMOVED, CONTEXT) if damaged else (REMOVED,)
    if line.startswith("+"):
        return (ADDED, CONTEXT) if damaged else (ADDED,)
    options = [CONTEXT]
    if not stripped and could_be_wrapped(line, previous):
        options.append(JOINED)
    return tuple(options)


def could_be_wrapped(line: str, previous: str | None) -> bool:
    """Could ``line`` be the rest of ``previous`` after a mail client broke it?"""
    if previous is None or previous.startswith("\\") or line[:1].isspace():
        return False
    first_word = line.split()[0] if line.split() else ""
    return display_width(previous) + 1 + len(first_word) > SHORTEST_WRAP_WIDTH


def hunk_counts(match: re.Match) -> tuple[int, int, int, int]:
    old_start, old_len, new_start, new_len = match.group(1, 2, 3, 4)
    return (int(old_start), 1 if old_len is None else int(old_len),
            int(new_start), 1 if new_len is None else int(new_len))


@dataclass(frozen=True)
class Reading:
    """The result of enumerating readings of one hunk body."""

    count: int
    length: int                       # lines of the body consumed by the reading
    classes: tuple[str, ...]          # classification of each consumed line


def count_readings(body: list[str], old_len: int, new_len: int, damaged: bool,
                   stripped: bool, end_allowed) -> Reading:
    """Enumerate classifications of ``body`` lines whose counts fit the header.

    ``end_allowed(k)`` says whether the hunk may end after ``k`` lines (the
    rest being blank lines or a mail trailer).  Returns how many readings
    fit, and the unique one when there is exactly one.
    """
    options = [line_options(line, body[k - 1] if k else None, damaged, stripped)
               for k, line in enumerate(body)]
    return count_by_choosing(body, options, old_len, new_len, end_allowed)


def count_by_choosing(body: list[str], options: list[tuple[str, ...]], old_len: int,
                      new_len: int, end_allowed) -> Reading:
    """Count readings in closed form (linear in the hunk's length).

    Each line's choice is independent of the others: a line starting with
    '-' is removed (1, 0) or context (1, 1); one starting with '+' is added
    (0, 1) or context (1, 1); a possible wrap continuation is context (1, 1)
    or joined (0, 0); every other line has one reading.  For a hunk ending
    after k lines with R, A and J such lines, choosing z of the J as context
    forces X = new_len - (certain new) - A - z of the R and
    Y = old_len - (certain old) - R - z of the A to be context, so there are
    sum over z of C(J, z) * C(R, X) * C(A, Y) readings.  ``count_by_walking``
    is the plain enumeration the tests check this against.
    """
    total, unique = 0, None
    fixed_old = fixed_new = either_removed = either_added = either_joined = 0
    for k in range(len(body) + 1):
        if end_allowed(k) and not (k < len(body) and body[k].startswith("\\")):
            for joined_as_context in range(either_joined + 1):
                removed_as_context = new_len - fixed_new - either_added - joined_as_context
                added_as_context = old_len - fixed_old - either_removed - joined_as_context
                if not (0 <= removed_as_context <= either_removed
                        and 0 <= added_as_context <= either_added):
                    continue
                ways = (comb(either_joined, joined_as_context)
                        * comb(either_removed, removed_as_context)
                        * comb(either_added, added_as_context))
                total += ways
                if ways == 1:
                    unique = (k, removed_as_context == either_removed,
                              added_as_context == either_added,
                              joined_as_context == either_joined)
        if k == len(body):
            break
        choice = options[k]
        if choice == (REMOVED, CONTEXT):
            either_removed += 1
        elif choice == (ADDED, CONTEXT):
            either_added += 1
        elif choice == (CONTEXT, JOINED):
            either_joined += 1
        else:
            step_old, step_new = STEP[choice[0]]
            fixed_old += step_old
            fixed_new += step_new
    if total != 1:
        return Reading(total, 0, ())
    length, removed_are_context, added_are_context, wraps_are_context = unique
    classes = []
    for choice in options[:length]:
        if choice == (REMOVED, CONTEXT):
            classes.append(CONTEXT if removed_are_context else REMOVED)
        elif choice == (ADDED, CONTEXT):
            classes.append(CONTEXT if added_are_context else ADDED)
        elif choice == (CONTEXT, JOINED):
            classes.append(CONTEXT if wraps_are_context else JOINED)
        else:
            classes.append(choice[0])
    return Reading(1, length, tuple(classes))


def count_by_walking(body: list[str], old_len: int, new_len: int, damaged: bool,
                     stripped: bool, end_allowed) -> Reading:
    """Count readings by walking every classification, state by state.

    The reference for ``count_by_choosing`` (the tests compare the two): a
    dynamic programme over (lines read, old lines used, new lines used),
    cubic in the hunk's length, so not used on real input.
    """
    # rows[k] maps (old used, new used) -> (number of readings, back pointer)
    rows: list[dict] = [{(0, 0): (1, None)}]
    total = 0
    ends: list[tuple[int, tuple[int, int]]] = []
    for k in range(len(body) + 1):
        row = rows[k]
        if (old_len, new_len) in row and end_allowed(k) and not (
                k < len(body) and body[k].startswith("\\")):
            total += row[(old_len, new_len)][0]
            ends.append((k, (old_len, new_len)))
        if k == len(body) or not row:
            break
        previous = body[k - 1] if k else None
        following: dict = {}
        for option in line_options(body[k], previous, damaged, stripped):
            step_old, step_new = STEP[option]
            if option == JOINED and k == 0:
                continue
            for (used_old, used_new), (ways, _) in row.items():
                state = (used_old + step_old, used_new + step_new)
                if state[0] > old_len or state[1] > new_len:
                    continue
                before = following.get(state, (0, None))[0]
                following[state] = (before + ways, ((used_old, used_new), option))
        rows.append(following)
    if total != 1:
        return Reading(total, 0, ())
    length, state = ends[0]   # one reading: exactly one end was reached
    classes = []
    for k in range(length, 0, -1):
        state, option = rows[k][state][1]
        classes.append(option)
    return Reading(1, length, tuple(reversed(classes)))


def rewrite(body: list[str], classes: tuple[str, ...],
            space_lost: bool = False) -> list[tuple[str, int]]:
    """Clean unified lines for a reading, each with its body line index.

    ``space_lost``: every line of the mail lost one leading space, so a line
    that still starts with a blank is a context line whose content did.
    """
    out: list[tuple[str, int]] = []
    for k, option in enumerate(classes):
        line = body[k]
        if option == JOINED:
            text, origin = out[-1]
            out[-1] = (f"{text} {line}", origin)
        elif option == CONTEXT and (not line.startswith(" ") or space_lost):
            out.append((f" {line}" if line else "", k))
        else:
            out.append((line, k))
    return out


def describe_changes(body: list[str], classes: tuple[str, ...], body_numbers: list[int],
                     stripped: bool, space_lost: bool = False) -> dict[str, list[int]]:
    """Input line numbers of each kind of repair made in one hunk."""
    found: dict[str, list[int]] = {}
    for k, option in enumerate(classes):
        line = body[k]
        if option == JOINED:
            kind = "rewrapped"
        elif option == CONTEXT and line and (not line.startswith(" ") or space_lost):
            if line[0] in "-+":
                kind = "prefix-is-content"
            else:
                kind = "stripped-indentation" if stripped else "lost-leading-space"
        else:
            continue
        found.setdefault(kind, []).append(body_numbers[k])
    return found


REPAIR_WORDS = {
    "stripped-indentation": "read as context lines whose leading whitespace was stripped "
                            "(indentation cannot be restored)",
    "lost-leading-space": "read as context lines that lost their leading space",
    "prefix-is-content": "starting with '-'/'+' read as context lines whose content starts so",
    "rewrapped": "joined to the line before (a mail client had wrapped it); the whitespace at "
                 "the break is assumed to be one space",
}


def line_list(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:8])
    return shown + (f" and {len(numbers) - 8} more" if len(numbers) > 8 else "")


def stripped_state(lines: list[str], start: int) -> str:
    """Did every line of this diff lose its leading whitespace (damage b)?

    ``"stripped"`` when no hunk line starts with a blank and some hunk line
    has no diff prefix at all; ``"possible"`` when no hunk line starts with a
    blank but every line has a prefix (the damage would be invisible until the
    counts fail); ``"no"`` when some hunk line starts with a blank.
    """
    in_hunk = False
    unprefixed = False
    for line in lines[start:]:
        if HUNK_HEADER.match(line):
            in_hunk = True
            continue
        if not in_hunk:
            continue
        if line == "-- ":
            break   # an intact signature: the rest is not diff
        if line == "--":
            continue   # a stripped signature, or a removed "-": no evidence either way
        if line[:1] in (" ", "\t"):
            return "no"
        if line.startswith("diff ") or is_file_header(line):
            continue
        if line and line[0] not in "-+\\":
            unprefixed = True
    return "stripped" if unprefixed else "possible"


def lost_one_space(lines: list[str], start: int) -> bool:
    """Did every line lose exactly one leading space (a broken format=flowed decode)?

    Evidence: a hunk line starting with a tab, which only a context line
    whose prefix space was removed can do.
    """
    in_hunk = False
    for line in lines[start:]:
        if HUNK_HEADER.match(line):
            in_hunk = True
        elif in_hunk and line.startswith("\t"):
            return True
        elif line == "-- ":
            break
    return False


def before_trailer(body: list[str]) -> list[str]:
    """The lines of a hunk body before the first mail trailer line."""
    for k, text in enumerate(body):
        if text and TRAILER_START.match(text):
            return body[:k]
    return body


def read_diff(lines: list[str], start: int, first_line: int | list[int] = 1,
              file: str | None = None, mail: str | None = None) -> ReadDiff:
    """Read the diff beginning at ``lines[start]`` into clean unified text.

    ``first_line`` is the 1-based input line number of ``lines[0]``, or a
    list of the input line number of every line (decoded mails).  Stops
    after the last hunk, at the mail trailer.  Raises ``PatchError`` for a
    hunk whose counts fit no reading, or more than one.
    """
    if isinstance(first_line, int):
        input_number = list(range(first_line, first_line + len(lines)))
    else:
        input_number = list(first_line) + [first_line[-1] if first_line else 1] * (
            len(lines) - len(first_line))
    state = stripped_state(lines, start)
    stripped = state == "stripped"
    space_lost = not stripped and lost_one_space(lines, start)
    out: list[str] = []
    numbers: list[int] = []
    repairs: list[Repair] = []
    damage: set[str] = set()
    i = start
    current_file = "?"
    revealed = False   # a stripped copy revealed only by its counts
    while i < len(lines):
        line = lines[i]
        match = HUNK_HEADER.match(line)
        if match is None:
            if is_diff_start(lines, i) or (out and is_file_header(line)):
                if line.startswith("+++ ") or line.startswith("--- "):
                    current_file = header_path(line) or current_file
                elif line.startswith("diff --git "):
                    current_file = git_path(line) or current_file
                out.append(line)
                numbers.append(input_number[i])
                i += 1
                if line.startswith("GIT binary patch"):
                    # base85 data up to the next file (unidiff skips it)
                    while i < len(lines) and not is_diff_start(lines, i) \
                            and lines[i] not in ("-- ", "--"):
                        out.append(lines[i])
                        numbers.append(input_number[i])
                        i += 1
                continue
            refuse_diff_after(lines, i, input_number, file, mail)
            break
        old_start, old_len, new_start, new_len = hunk_counts(match)
        label = f"{current_file} @@ -{old_start},{old_len} +{new_start},{new_len} @@"
        end = i + 1
        while end < len(lines) and not is_boundary(lines, end):
            end += 1
        body = lines[i + 1:end]
        final = end == len(lines)
        damaged = stripped or any(
            text and text[0] not in " -+\\" for text in before_trailer(body))

        def end_allowed(k: int, body=body, final=final, state=state) -> bool:
            # git writes nothing between a hunk and the next one; only the
            # last hunk of a mail may be followed by blank lines or a trailer.
            rest = list(body[k:])
            if not rest:
                return True
            if not final:
                return False
            while rest and rest[0] == "":
                rest.pop(0)
            if rest and rest[0] == "--" and state == "no":
                return False  # only a stripped copy loses the signature's blank
            return not rest or TRAILER_START.match(rest[0]) is not None

        if state == "possible":
            # No line starts with a blank, so this may be a stripped copy whose
            # damage only the counts reveal: read it as one (a clean hunk
            # without context lines reads the same either way).
            damaged = revealed = True
        reading = count_readings(body, old_len, new_len, damaged,
                                 stripped or state == "possible", end_allowed)
        where = dict(file=file, mail=mail, hunk=label, line=input_number[i])
        if reading.count == 0:
            raise PatchError(no_reading_message(body, old_len, new_len, damaged), **where)
        if reading.count > 1:
            raise PatchError(
                f"ambiguous whitespace damage: the hunk counts fit {reading.count} readings "
                f"of its {len(body)} lines (which lines starting with '-'/'+' are context, or "
                f"which lines are wrapped, cannot be told apart)",
                hint="use the mail as sent (e.g. the raw message from lore.kernel.org) "
                     "instead of this copy", **where)
        out.append(line)
        numbers.append(input_number[i])
        for text, k in rewrite(body, reading.classes, space_lost):
            out.append(text)
            numbers.append(input_number[i + 1 + k])
        found_changes = describe_changes(body, reading.classes, input_number[i + 1:end], stripped,
                                         space_lost)
        for kind, found in found_changes.items():
            damage.add(kind)
            repairs.append(Repair(label, kind,
                                  f"lines {line_list(found)} {REPAIR_WORDS[kind]}"))
        i = i + 1 + reading.length
        if reading.length < len(body):
            refuse_diff_after(lines, i, input_number, file, mail)
            break  # the rest is the mail trailer
    if not any(HUNK_HEADER.match(text) for text in out) and not any(
            text.startswith("Binary files ") or text.startswith("GIT binary patch")
            or text.startswith("rename ") or text.startswith("new file mode")
            or text.startswith("deleted file mode") or text.startswith("old mode")
            for text in out):
        raise PatchError("no hunk found after the diff header",
                         hint="check that the file holds a unified diff", file=file,
                         mail=mail, line=input_number[start])
    if stripped or (revealed and damage):
        damage.add("stripped-indentation")
    notes = tuple(sorted({DAMAGE_WORDS[kind] for kind in damage}))
    return ReadDiff("\n".join(out) + "\n", tuple(numbers), notes, tuple(repairs), i)


INDENTATION_LOST = "leading whitespace stripped from every line (web-archive copy)"
DAMAGE_WORDS = {
    "stripped-indentation": INDENTATION_LOST,
    "lost-leading-space": "context lines lost their leading space",
    "prefix-is-content": "context lines starting with '-'/'+' lost their leading space",
    "rewrapped": "lines wrapped by a mail client",
}


def refuse_diff_after(lines: list[str], i: int, input_number: list[int],
                      file: str | None, mail: str | None) -> None:
    """Refuse a diff that goes on after text that is neither diff nor trailer.

    Without this, a stray line between two files would silently drop every
    file after it.
    """
    for k in range(i, len(lines)):
        if lines[k] in ("-- ", "--"):
            return   # the signature: what follows is not ours to read
        if is_diff_start(lines, k):
            raise PatchError(
                f"unexpected text inside the diff: {lines[i][:60]!r} (line "
                f"{input_number[i]}) is neither a diff line nor a mail trailer, and a "
                "further file's diff follows it", file=file, mail=mail, line=input_number[i],
                hint="remove the stray text or fix the hunk counts before it")


def is_file_header(line: str) -> bool:
    """An extended git header line or a ---/+++ line inside a file's diff."""
    return line.startswith((
        "index ", "--- ", "+++ ", "new file mode", "deleted file mode", "old mode",
        "new mode", "similarity index", "dissimilarity index", "rename from",
        "rename to", "copy from", "copy to", "Binary files ", "GIT binary patch"))


def header_path(line: str) -> str | None:
    path = line[4:].split("\t")[0].strip()
    if path == "/dev/null":
        return None
    return path[2:] if path[:2] in ("a/", "b/") else path


def git_path(line: str) -> str | None:
    match = re.match(r"^diff --git a/(\S+) b/(\S+)", line)
    return match.group(2) if match else None


def no_reading_message(body: list[str], old_len: int, new_len: int, damaged: bool) -> str:
    plain_old = sum(1 for t in body if t == "" or t[0] in " -" and not TRAILER_START.match(t))
    plain_new = sum(1 for t in body if t == "" or t[0] in " +" and not TRAILER_START.match(t))
    said = f"the header says {old_len} old and {new_len} new lines"
    if damaged:
        return (f"whitespace damage cannot be repaired: no reading of the {len(body)} "
                f"damaged lines fits the hunk counts ({said})")
    return (f"the hunk counts do not fit its body: {said}, the body has {plain_old} old "
            f"and {plain_new} new lines (was the patch edited by hand?)")
