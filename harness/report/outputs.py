"""Machine outputs of a results document: JUnit XML, KCIDB, patchwork checks, mail.

Every output here is a pure function of the results document (schema
``kconform/1``, a plain dict loaded from JSON) and, where it needs timings,
the ``run`` record.  None of them touches engine objects, so a report can be
rebuilt from a saved ``results.json`` alone.

The facts several outputs share (the verdict of one check on one patch, the
replay command, text with its invisible characters made visible) live here
too; ``harness.report.html_report`` imports them so the page and the machines
never disagree, and ``harness.report.writer`` renders and writes them all.
The formats are documented, with examples, in ``docs/outputs.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import unicodedata
import xml.etree.ElementTree as ET

from harness.errors import KconformError


SCHEMA = "kconform/1"
JUNIT_FORMAT = "kconform-junit/1"
PATCHWORK_SCHEMA = "kconform-patchwork/1"
KCIDB_VERSION = {"major": 5, "minor": 0}
ORIGIN = "kconform"
CONTEXT = "kconform"
MAIL_WIDTH = 72

# Worst last; the series verdict is the worst of its parts (harness.report.results).
VERDICTS = ("SKIP", "PASS", "WARN", "MISS", "FAIL", "ERROR")
# The channels every report shows, in this order; others follow when present.
CHANNELS = ("accessed", "dirty", "flush", "spte", "refs", "warn")

# A SKIP gets a patchwork check only when asked (patchwork_checks(..., skipped=True)).
PATCHWORK_STATES = {"SKIP": "success", "PASS": "success", "WARN": "warning",
                    "MISS": "warning", "FAIL": "fail", "ERROR": "fail"}
# KCIDB has no WARN: a WARN passed, and says so in misc.kconform_verdict.
KCIDB_STATUSES = {"SKIP": "SKIP", "PASS": "PASS", "WARN": "PASS", "MISS": "MISS",
                  "FAIL": "FAIL", "ERROR": "ERROR"}

OUTPUT_FILES = ("index.html", "results.junit.xml", "kcidb.json", "patchwork.json",
                "summary.txt", "summary.md")


class ReportError(KconformError):
    """The document handed to an output is not a ``kconform/1`` results document."""


# --- text a reviewer can trust -------------------------------------------

def is_hidden(char: str) -> bool:
    """True for characters that change how text looks without being seen.

    Bidi overrides and isolates (Trojan Source), zero-width characters, soft
    hyphens, controls other than tab and newline, line/paragraph separators,
    lone surrogates and Unicode noncharacters.
    """
    if char in "\t\n":
        return False
    category = unicodedata.category(char)
    if category in ("Cc", "Cf", "Cs", "Zl", "Zp"):
        return True
    code = ord(char)
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def split_hidden(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into runs of ordinary text and single hidden characters."""
    parts: list[tuple[str, bool]] = []
    plain = []
    for char in text:
        if is_hidden(char):
            if plain:
                parts.append(("".join(plain), False))
                plain = []
            parts.append((char, True))
        else:
            plain.append(char)
    if plain:
        parts.append(("".join(plain), False))
    return parts


def code_point(char: str) -> str:
    return f"U+{ord(char):04X}"


def visible(text) -> str:
    """``text`` with every hidden character written as ``<U+202E>``."""
    if text is None:
        return ""
    return "".join(f"<{code_point(part)}>" if hidden else part
                   for part, hidden in split_hidden(str(text)))


def one_line(text) -> str:
    """Visible text on one line (newlines and runs of blanks become one space)."""
    return " ".join(visible(text).replace("\t", " ").split())


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: wide East Asian and emoji count 2."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def shorten(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` display columns, ending with ``...`` if cut."""
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for char in text:
        step = display_width(char)
        if used + step > width - 3:
            break
        out.append(char)
        used += step
    return "".join(out).rstrip() + "..."


def wrap(text: str, width: int, indent: str = "", hanging: str | None = None) -> list[str]:
    """Word-wrap by display width; words longer than a line are split.

    ``indent`` starts the first line, ``hanging`` (default: ``indent``) the others.
    """
    hanging = indent if hanging is None else hanging
    lines: list[str] = []
    line = ""

    def prefix() -> str:
        return hanging if lines else indent

    for word in text.split():
        while word:
            candidate = f"{line} {word}" if line else word
            if display_width(prefix() + candidate) <= width:
                line, word = candidate, ""
            elif line:
                # Close this line; the word is tried again under the next line's prefix.
                lines.append(prefix() + line)
                line = ""
            else:
                # The word alone is too long for a line: split it (at least one character).
                room = width - display_width(prefix())
                head = word[0]
                for char in word[1:]:
                    if display_width(head + char) > room:
                        break
                    head += char
                lines.append(prefix() + head)
                word = word[len(head):]
    if line:
        lines.append(prefix() + line)
    return lines


# --- facts every output shares -------------------------------------------

def check_schema(results: dict) -> None:
    if not isinstance(results, dict) or results.get("schema") != SCHEMA:
        found = results.get("schema") if isinstance(results, dict) else type(results).__name__
        raise ReportError(f"expected a {SCHEMA} results document, got schema {found!r}")


def checked_patches(results: dict) -> list[tuple[str, dict]]:
    """``(label, patch)`` for every patch that carries a verdict, in series order.

    The label is the series position (``2/4``) when the mail had one, else the
    1-based position in the input.  Cover letters carry no verdict.
    """
    rows = []
    for number, patch in enumerate(
            (p for p in results.get("patches", []) if not p.get("is_cover")), start=1):
        rows.append((patch_label(patch, number), patch))
    return rows


def cover_letter(results: dict) -> dict | None:
    return next((p for p in results.get("patches", []) if p.get("is_cover")), None)


def patch_label(patch: dict, number: int) -> str:
    series = patch.get("series")
    if series and series.get("index") is not None and series.get("total"):
        return f"{series['index']}/{series['total']}"
    return str(number)


def series_title(results: dict) -> str:
    """What a reviewer calls this input: the cover's subject, else the first patch's."""
    cover = cover_letter(results)
    if cover:
        return cover.get("raw_subject") or cover.get("subject") or cover.get("path") or ""
    rows = checked_patches(results)
    if len(rows) == 1:
        patch = rows[0][1]
        return patch.get("raw_subject") or patch.get("subject") or patch.get("path") or ""
    if rows:
        return f"{len(rows)} patches from {rows[0][1].get('path', '')}"
    return "no patches"


def uncovered_hunks(item: dict) -> list[dict]:
    if item.get("verdict") == "SKIP":
        return []       # nothing kconform reads: not a gap in what it claims
    return [h for h in item.get("hunks") or [] if not h.get("covered")]


def is_inherited(finding: dict) -> bool:
    """A finding an earlier state already had: labelled, never this patch's verdict."""
    kind = (finding.get("blame") or {}).get("kind")
    return kind in ("inherited", "pre-existing") or bool(finding.get("inherited"))


def own_findings(item: dict) -> list[dict]:
    """The findings this patch's change causes (the ones that set its verdict)."""
    return [f for f in item.get("findings") or [] if not is_inherited(f)]


def inherited_findings(item: dict) -> list[dict]:
    return [f for f in item.get("findings") or [] if is_inherited(f)]


def blame_label(finding: dict) -> str:
    """Whose a finding is, in words: "" for the patch's own (unless others inherit it)."""
    blame = finding.get("blame") or {}
    kind = blame.get("kind") or ("pre-existing" if finding.get("inherited") else "introduced")
    if kind == "inherited":
        return one_line(f"inherited from {blame.get('patch') or 'an earlier patch'}, "
                        f"not this patch's")
    if kind == "pre-existing":
        state = f" ({blame['state']})" if blame.get("state") else ""
        return one_line(f"pre-existing: the version before{state} fails it too, "
                        f"not this patch's")
    if blame.get("inherited_by"):
        return one_line(f"introduced here; {', '.join(blame['inherited_by'])} inherit it")
    return ""


def not_read_files(item: dict) -> list[str]:
    """The files of a SKIP patch (none of which kconform reads)."""
    names = []
    for hunk in item.get("hunks") or []:
        name = os.path.basename(str(hunk.get("file") or "?"))
        if name not in names:
            names.append(name)
    return names


def check_verdict(item: dict, check: str) -> str:
    """The verdict of one check on one patch (or on the series' net effect).

    ERROR if the patch could not be read; SKIP if it touches nothing kconform
    reads; FAIL if the check failed; MISS if part of the patch went unchecked
    (so a pass would claim too much); WARN if the check only warned; else
    PASS.  Inherited and pre-existing findings do not count: they are the
    introducing patch's.  Same order as the series verdict.
    """
    if item.get("error") or item.get("verdict") == "ERROR":
        return "ERROR"
    if item.get("verdict") == "SKIP":
        return "SKIP"
    severities = {f.get("severity") for f in own_findings(item) if f.get("check") == check}
    if "FAIL" in severities:
        return "FAIL"
    if item.get("verdict") == "MISS" or uncovered_hunks(item):
        return "MISS"
    if "WARN" in severities:
        return "WARN"
    return "PASS"


def replay_command(finding: dict) -> str | None:
    """``kconform replay TOKEN [INPUT...]``, shell-quoted (it is pasted into a shell).

    A finding on a derived model names the inputs that derive it again
    (``replay_inputs``, set by the pipeline).
    """
    token = finding.get("replay")
    if not token:
        return None
    token = str(token)
    if token.startswith("kconform replay "):
        token = token[len("kconform replay "):]
    inputs = [str(i) for i in finding.get("replay_inputs") or []]
    return " ".join(["kconform replay", shlex.quote(visible(token)),
                     *(shlex.quote(visible(i)) for i in inputs)])


def finding_title(finding: dict) -> str:
    """``flush_required: flush in mmu_spte_update (write_protect)``, one line."""
    where = f" in {finding['function']}" if finding.get("function") else ""
    during = f" ({finding['operation']})" if finding.get("operation") else ""
    return one_line(f"{finding.get('check', '?')}: {finding.get('channel', '?')}{where}{during}")


def finding_why(finding: dict) -> str:
    """The plain cause a reader acts on, then the check that found it:
    ``stale TLB entry: ... [flush_required: flush in mmu_spte_update]``."""
    cause = finding.get("cause")
    return one_line(f"{cause} [{finding_title(finding)}]") if cause else finding_title(finding)


def of(count: int, total: int, noun: str) -> str:
    """``1 of 1 hunk``, ``2 of 3 hunks``."""
    return f"{count} of {total} {noun}{'' if total == 1 else 's'}"


# --- why: causes and culprits ------------------------------------------------

NOT_THIS_PATCH = "not this patch"     # harness.check.culprit: the finding predates the patch
CONTRACT_CHECK = "matches_contract"


def from_earlier(finding: dict) -> bool:
    """The finding was there before this patch (inherited): it does not blame it."""
    return is_inherited(finding) or bool(finding.get("preexisting")) or \
        (finding.get("culprit") or {}).get("status") == NOT_THIS_PATCH


def cause_groups(item: dict) -> list[dict]:
    """The item's findings grouped by cause, the group to read first first.

    Findings with the same channel and the same culprit hunks are one cause
    seen by several checks (or operations); without culprit hunks, the same
    cause line is.  A group's ``lead`` says the cause best (an invariant
    before the contract comparison, which only says "unstated change"); its
    ``smallest`` is the finding with the quickest counterexample to read
    (findings come smallest first).  Order: failures this patch caused,
    then warnings, then findings from before the patch.
    """
    groups: dict[tuple, list[dict]] = {}
    for finding in item.get("findings") or []:
        culprit = finding.get("culprit") or {}
        hunks = tuple(finding.get("culprit_hunks") or culprit.get("hunks") or ())
        key = (finding.get("channel"), culprit.get("patch"), hunks) if hunks else \
            ("cause", finding.get("cause") or finding_title(finding))
        groups.setdefault((from_earlier(finding),) + key, []).append(finding)
    rows = []
    for (earlier, *_), findings in groups.items():
        failing = [f for f in findings if f.get("severity") == "FAIL"]
        lead = next((f for f in failing if f.get("check") != CONTRACT_CHECK),
                    failing[0] if failing else findings[0])
        rows.append({"lead": lead, "smallest": findings[0], "findings": findings,
                     "severity": "FAIL" if failing else lead.get("severity", "WARN"),
                     "earlier": earlier, "cause": cause_line(lead),
                     "culprit": culprit_summary(item, lead)})
    rows.sort(key=lambda g: (g["earlier"], g["severity"] != "FAIL"))
    return rows


def cause_line(finding: dict) -> str:
    """The finding in plain words (the engine's cause), else its check and channel."""
    return one_line(finding.get("cause") or f"{finding_title(finding)}: "
                                            f"{finding.get('summary', '')}")


def culprit_summary(item: dict, finding: dict) -> dict:
    """The culprit of ``finding`` as a reader needs it: the hunks (with file,
    function and header from ``item``), the changed lines, and the engine's
    words on how they were found or why they could not be."""
    found = finding.get("culprit") or {}
    hunks = {h.get("index"): h for h in item.get("hunks") or []}
    shown = []
    for index in found.get("hunks") or finding.get("culprit_hunks") or ():
        hunk = hunks.get(index) or {}
        shown.append({"index": index, "file": hunk.get("file"),
                      "function": hunk.get("function"), "header": hunk.get("header"),
                      "lines": [line for line in found.get("lines") or []
                                if line.get("hunk") == index]})
    return {"status": found.get("status"), "text": one_line(found.get("text") or ""),
            "hunks": shown, "patch": found.get("patch")}


def culprit_label(hunk: dict) -> str:
    """``hunk #6 (paging_tmpl.h FNAME(prefetch_gpte))``."""
    if not hunk.get("file"):
        return f"hunk #{hunk.get('index')}"    # a net finding: the hunk is another item's
    file = os.path.basename(str(hunk["file"]))
    where = f"{file} {hunk['function']}" if hunk.get("function") else file
    return one_line(f"hunk #{hunk.get('index')} ({where})")


def culprit_line(culprit: dict) -> str:
    """One line: the culprit hunk and its first changed line, or why there is none
    (empty for a document written before culprits were searched)."""
    if not culprit.get("status"):
        return ""
    if not culprit.get("hunks"):
        if culprit.get("status") == NOT_THIS_PATCH:
            return "not this patch: the state before it has this too"
        return f"culprit not computed: {culprit.get('text') or 'no culprit search ran'}"
    parts = []
    for hunk in culprit["hunks"]:
        text = culprit_label(hunk)
        if hunk["lines"]:
            first = hunk["lines"][0]
            more = len(hunk["lines"]) - 1
            text += (f", patch line {first.get('line')}: {one_line(first.get('text'))}"
                     + (f" (+{more} more)" if more else ""))
        parts.append(text)
    if culprit.get("patch"):
        parts[0] = f"{culprit['patch']}: {parts[0]}"
    return "; ".join(parts)


_NUMBER = re.compile(r"0x[0-9a-f]+|\b\d+\b")


def fold_repeats(lines: list[str], longest: int = 8) -> list[dict]:
    """Consecutive repeats folded: ``{"lines": block, "times": n, "rest": [...]}``.

    A block of up to ``longest`` lines that recurs at once with only its
    numbers changed (other SPTEs, folios, gfns) is shown once and counted;
    ``rest`` keeps the repeats themselves, word for word.
    """
    shapes = [_NUMBER.sub("#", str(line)) for line in lines]
    out, i = [], 0
    while i < len(lines):
        best = (1, 1)                                   # (block length, times)
        for size in range(1, longest + 1):
            times = 1
            while shapes[i + times * size:i + (times + 1) * size] == shapes[i:i + size] \
                    and i + (times + 1) * size <= len(lines):
                times += 1
            if times > 1 and size * times > best[0] * best[1]:
                best = (size, times)
        size, times = best
        out.append({"lines": list(lines[i:i + size]), "times": times,
                    "rest": list(lines[i + size:i + size * times])})
        i += size * times
    return out


def counterexample_text(finding: dict) -> str:
    """A finding as plain text: summary, steps, SPTEs, both effect logs, replay."""
    lines = [finding_title(finding), one_line(finding.get("summary", ""))]
    example = finding.get("counterexample") or {}
    if example.get("steps"):
        lines.append("Steps:")
        lines += [f"  {n}. {one_line(step)}" for n, step in enumerate(example["steps"], 1)]
    for spte in example.get("sptes") or []:
        bits = ", ".join(f"{one_line(name)}={show_bit(value)}"
                         for name, value in spte_bits(spte).items())
        lines.append(f"SPTE {one_line(spte.get('name'))} = {one_line(spte.get('value'))}: {bits}")
    for side in ("before", "after"):
        if example.get(side) is not None:
            lines.append(f"Effects {side}:")
            lines += [f"  {one_line(event)}" for event in example[side]] or ["  (none)"]
    for channel, change in (example.get("difference") or {}).items():
        for event in change.get("missing") or []:
            lines.append(f"- {one_line(channel)}: {one_line(event)}")
        for event in change.get("extra") or []:
            lines.append(f"+ {one_line(channel)}: {one_line(event)}")
    command = replay_command(finding)
    if command or finding.get("example"):
        lines.append("Reproduce with:")
        if command:
            lines.append(f"  {command}")
        if finding.get("example"):
            lines.append(f"  {one_line(finding['example'])}")
    return "\n".join(lines)


def spte_bits(spte: dict) -> dict:
    """An SPTE's named bits as a dict, whichever form the document used.

    The schema says ``{name: bool|int}``; the engine may also write one string
    of facts, ``"present W A pfn=0x12345"``, naming only the true ones.
    """
    bits = spte.get("bits")
    if isinstance(bits, dict):
        return bits
    if not isinstance(bits, str):
        return {}
    facts = {}
    for word in bits.split():
        name, equals, value = word.partition("=")
        if not equals:
            facts[name] = True
            continue
        try:
            facts[name] = int(value, 0)
        except ValueError:
            facts[name] = value
    return facts


def show_bit(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) and value > 9:
        return hex(value)
    return one_line(value)


SHA256 = re.compile(r"[0-9a-f]{64}")


def patchset_hash(results: dict) -> str | None:
    """KCIDB's patchset hash, as its schema defines it: a sha256 over the
    newline-terminated sha256 of each patch, in order (``sha256sum *.patch |
    cut -c-64 | sha256sum | cut -c-64``).

    A patch's sha256 is the pipeline's ``sha256``: of the patch file as given
    (of its mail, in a many-mail mbox).  Empty string for no patches; None when
    a patch's own hash is not known (an unreadable file, or a document written
    before kconform recorded it): then no hash is claimed at all.
    """
    rows = checked_patches(results)
    if not rows:
        return ""
    hashes = [str(patch.get("sha256") or "") for _, patch in rows]
    if not all(SHA256.fullmatch(h) for h in hashes):
        return None
    return hashlib.sha256("".join(h + "\n" for h in hashes).encode("ascii")).hexdigest()


def describe(item: dict) -> str:
    """One line saying why a patch got its verdict (patchwork, mail, JUnit)."""
    return f"{item.get('verdict', 'ERROR')}: {reasons(item)}"


def reasons(item: dict) -> str:
    """Why a patch got its verdict, without the verdict word."""
    if item.get("error"):
        return one_line(item["error"].get("message", "unreadable input"))
    if item.get("verdict") == "SKIP":
        return one_line("not applicable: touches no file kconform reads ("
                        + ", ".join(not_read_files(item)[:3]) + ")")
    findings = own_findings(item)
    failing = [f for f in findings if f.get("severity") == "FAIL"]
    warning = [f for f in findings if f.get("severity") == "WARN"]
    missing = uncovered_hunks(item)
    parts = []
    if failing:
        parts.append("; ".join(finding_why(f) for f in failing[:2])
                     + (f" (+{len(failing) - 2} more)" if len(failing) > 2 else ""))
    if missing:
        places = ", ".join(one_line(f"{os.path.basename(str(h.get('file') or '?'))} "
                                    f"{h.get('function') or '(no function)'}")
                           for h in missing[:2])
        parts.append(f"{of(len(missing), len(item.get('hunks') or []), 'hunk')} not checked"
                     f" ({places})")
    if warning:
        parts.append(("also warned: " if parts else "")
                     + "; ".join(finding_why(f) for f in warning[:2]))
    if not parts:
        hunks = item.get("hunks") or []
        parts.append(f"{of(len(hunks), len(hunks), 'hunk')} checked, no findings of its own"
                     if hunks and inherited_findings(item) else
                     f"{of(len(hunks), len(hunks), 'hunk')} checked, no findings" if hunks
                     else "nothing to check")
    for finding in inherited_findings(item)[:2]:
        parts.append(f"{one_line(finding.get('check'))} {blame_label(finding)}")
    return "; ".join(parts)


# --- JUnit XML -----------------------------------------------------------

def junit(results: dict) -> str:
    """JUnit XML: one testsuite per patch (and the net effect), one testcase per check.

    FAIL -> <failure>, ERROR -> <error>, MISS and SKIP -> <skipped> (type MISS
    or SKIP), WARN -> passed with <system-out>; an inherited finding is a
    passed testcase whose <system-out> says whose it is.  Valid against the
    widely used junit-10.xsd (no ``file`` on testcases, no ``skipped`` on
    testsuites).  No timestamps: the same results give the same file.
    """
    check_schema(results)
    checks = list(results.get("checks") or []) or ["kconform"]
    totals = {"tests": 0, "failures": 0, "errors": 0}
    root = ET.Element("testsuites", name="kconform")
    items = [(label, patch.get("path") or label, patch) for label, patch in checked_patches(results)]
    if results.get("net"):
        items.append(("net", "net", results["net"]))
    for label, classname, item in items:
        suite = ET.SubElement(root, "testsuite", name=one_line(
            f"{label} {item.get('subject') or item.get('name') or ''}").strip())
        if item.get("path"):
            suite.set("file", one_line(item["path"]))
        properties = ET.SubElement(suite, "properties")
        for name, value in (("kconform.format", JUNIT_FORMAT),
                            ("kconform.verdict", item.get("verdict", "")),
                            ("kconform.profile", results.get("profile", "")),
                            ("kconform.seed", results.get("seed", "")),
                            ("kconform.message_id", item.get("message_id") or "")):
            ET.SubElement(properties, "property", name=name, value=one_line(value))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for check in checks:
            verdict = check_verdict(item, check)
            case = ET.SubElement(suite, "testcase", classname=one_line(classname),
                                 name=one_line(check))
            counts["tests"] += 1
            mine = [f for f in own_findings(item) if f.get("check") == check]
            theirs = [f for f in inherited_findings(item) if f.get("check") == check]
            if verdict == "ERROR":
                counts["errors"] += 1
                error = item.get("error") or {}
                node = ET.SubElement(case, "error", type="PatchError",
                                     message=one_line(error.get("message", "unreadable input")))
                node.text = _error_text(error)
            elif verdict == "FAIL":
                counts["failures"] += 1
                failing = [f for f in mine if f.get("severity") == "FAIL"]
                node = ET.SubElement(case, "failure", type=one_line(failing[0].get("channel")),
                                     message=one_line(failing[0].get("summary")))
                node.text = "\n\n".join(counterexample_text(f) for f in mine) + "\n"
            elif verdict in ("MISS", "SKIP"):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", type=verdict,
                              message=_miss_message(item) if verdict == "MISS"
                              else reasons(item))
            elif verdict == "WARN" or theirs:
                out = ET.SubElement(case, "system-out")
                texts = [counterexample_text(f) for f in mine]
                texts += [f"{blame_label(f)}:\n{counterexample_text(f)}" for f in theirs]
                out.text = f"{verdict}\n" + "\n\n".join(texts) + "\n"
        for key, value in counts.items():
            suite.set(key, str(value))
            if key in totals:
                totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _error_text(error: dict) -> str:
    where = ":".join(str(x) for x in (error.get("file"), error.get("line")) if x)
    extra = [f"mail {error['mail']}" if error.get("mail") else "",
             f"hunk {error['hunk']}" if error.get("hunk") else ""]
    return one_line(": ".join(x for x in [where, *extra, error.get("message", "")] if x)) + "\n"


def _miss_message(item: dict) -> str:
    missing = uncovered_hunks(item)
    if not missing:
        return "not checked: nothing in this patch is modelled"
    first = missing[0]
    return one_line(f"not checked: {len(missing)} hunk(s); first: {first.get('file')} "
                    f"{first.get('function') or '(no function)'}: {first.get('reason') or ''}")


# --- KCIDB ---------------------------------------------------------------

def kcidb(results: dict, run: dict) -> dict:
    """KCIDB I/O schema v5.0: one checkout (base + series), one build, tests.

    The "build" is kconform resolving models for the series; it is SKIP when a
    patch could not be read (the checkout is then invalid).  One test per
    patch and check, plus the series' net effect.  Status per KCIDB_STATUSES.
    """
    check_schema(results)
    psh = patchset_hash(results)
    name = psh if psh is not None else hashlib.sha256("\n".join(
        str(p.get("path")) for _, p in checked_patches(results)).encode()).hexdigest()
    profile = _path_part(results.get("profile", ""))
    key = f"{name[:16] or 'nopatches'}-{profile}-{results.get('seed', 0)}"
    checkout_id = f"{ORIGIN}:{key}"
    build_id = f"{ORIGIN}:{key}.build"
    rows = checked_patches(results)
    valid = not any(p.get("error") or p.get("verdict") == "ERROR" for _, p in rows)
    started = run.get("started")
    checkout = {
        "id": checkout_id,
        "origin": ORIGIN,
        "comment": one_line(series_title(results)),
        "valid": valid,
        "misc": {"kconform_schema": results.get("schema"),
                 "kconform_verdict": results.get("verdict"),
                 "profile": results.get("profile"), "seed": results.get("seed"),
                 "patches": [one_line(p.get("path")) for _, p in rows]},
    }
    if psh is not None:
        checkout["patchset_hash"] = psh
    base = next((p.get("base_commit") for _, p in rows if p.get("base_commit")), None)
    if base and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", base):
        checkout["git_commit_hash"] = base
    elif base:
        checkout["misc"]["base_commit"] = one_line(base)
    message_id = _kcidb_message_id(results)
    if message_id:
        checkout["message_id"] = message_id
    if started:
        checkout["start_time"] = started
    build = {
        "id": build_id, "checkout_id": checkout_id, "origin": ORIGIN,
        "comment": "kconform model resolution for the series",
        "architecture": "x86_64",
        "config_name": one_line(results.get("profile", "")),
        "status": "PASS" if valid else "SKIP",
        "misc": {"tool_version": (results.get("tool") or {}).get("version")},
    }
    if started:
        build["start_time"] = started
    if run.get("elapsed_s") is not None:
        build["duration"] = float(run["elapsed_s"])
    if run.get("command"):
        build["command"] = one_line(run["command"])
    tests = []
    items = [(label, f"patch{number}", patch)
             for number, (label, patch) in enumerate(rows, start=1)]
    if results.get("net"):
        items.append(("net", "net", results["net"]))
    environment = {"comment": one_line(f"{run.get('host', '?')}, Python {run.get('python', '?')}")}
    for label, part, item in items:
        for check in results.get("checks") or ["kconform"]:
            verdict = check_verdict(item, check)
            mine = [f for f in own_findings(item) if f.get("check") == check]
            theirs = [f for f in inherited_findings(item) if f.get("check") == check]
            test = {
                "id": f"{ORIGIN}:{key}.{part}.{_path_part(check)}",
                "build_id": build_id, "origin": ORIGIN,
                "path": f"kconform.{part}.{_path_part(check)}",
                "comment": one_line(f"{label} {item.get('subject') or item.get('name') or ''}"),
                "status": KCIDB_STATUSES[verdict],
                "environment": environment,
                "misc": {"kconform_verdict": verdict,
                         "patch": one_line(item.get("path") or label),
                         "replay": [c for c in map(replay_command, mine) if c]},
            }
            if theirs:
                test["misc"]["kconform_inherited"] = [blame_label(f) for f in theirs]
            if started:
                test["start_time"] = started
            if mine or theirs:
                test["log_excerpt"] = "\n\n".join(
                    [counterexample_text(f) for f in mine]
                    + [f"{blame_label(f)}:\n{counterexample_text(f)}" for f in theirs])[:16384]
            elif verdict == "MISS":
                test["log_excerpt"] = _miss_message(item)
            elif verdict == "SKIP":
                test["log_excerpt"] = reasons(item)
            elif verdict == "ERROR":
                test["log_excerpt"] = _error_text(item.get("error") or {})
            tests.append(test)
    return _scrub({"version": dict(KCIDB_VERSION), "checkouts": [checkout],
                   "builds": [build], "tests": tests})


def _path_part(text) -> str:
    """A KCIDB test path component: letters, digits, ``_`` and ``-`` only."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(text)) or "_"


def _kcidb_message_id(results: dict) -> str | None:
    """The Message-ID that introduced the series, without angle brackets."""
    cover = cover_letter(results)
    candidates = [cover] if cover else []
    candidates += [p for _, p in checked_patches(results)]
    for patch in candidates:
        value = (patch or {}).get("message_id")
        if value:
            value = str(value).strip().removeprefix("<").removesuffix(">")
            if re.fullmatch(r"[^\s<>@\"]+@[^\s<>@\"]+", value):
                return value
            return None
    return None


def _scrub(value):
    """Lone surrogates (valid in JSON, not in UTF-8) become U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8") if any(
            "\ud800" <= c <= "\udfff" for c in value) else value
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


# --- patchwork -----------------------------------------------------------

def patchwork_checks(results: dict, target_url: str | None, *,
                     skipped: bool = False) -> list[dict]:
    """One patchwork check per patch: the fields of ``POST /api/patches/{id}/checks/``.

    ``state``, ``context``, ``description`` and ``target_url`` go to patchwork
    as they are; ``message_id`` and ``path`` tell the bot which patch it is.
    """
    check_schema(results)
    checks = []
    for number, (label, patch) in enumerate(checked_patches(results), start=1):
        if patch.get("verdict") == "SKIP" and not skipped:
            continue        # not kconform's patch: a bot posts nothing unless asked
        description = shorten(one_line(f"{label} {describe(patch)}"), 255)
        checks.append({
            "message_id": patch.get("message_id"),
            "path": patch.get("path"),
            "state": PATCHWORK_STATES[patch.get("verdict", "ERROR")],
            "context": CONTEXT,
            "description": description,
            "target_url": f"{target_url}#patch-{number}" if target_url else None,
        })
    return _scrub(checks)


# --- mail ----------------------------------------------------------------

def mail_summary(results: dict, run: dict) -> str:
    """A plain-text reply a bot can post: verdict first, every line <= 72 columns."""
    check_schema(results)
    width = MAIL_WIDTH
    lines = [f"kconform {one_line((results.get('tool') or {}).get('version', ''))}"
             f" verdict: {results.get('verdict', 'ERROR')}"]
    lines += wrap(one_line(series_title(results)), width, indent="  ")
    base = next((p.get("base_commit") for _, p in checked_patches(results)
                 if p.get("base_commit")), None)
    if base:
        lines.append(shorten(f"  base {one_line(base)[:12]}", width))
    lines.append("")
    for label, patch in checked_patches(results):
        head = f"  {label:>5} {patch.get('verdict', 'ERROR'):<5} "
        lines.append(head + shorten(one_line(patch.get("subject") or patch.get("path")),
                                    width - len(head)))
        lines += _mail_causes(patch, " " * len(head))
    net = results.get("net")
    if net:
        head = f"  {'net':>5} {net.get('verdict', 'ERROR'):<5} "
        lines.append(head + shorten(one_line(net.get("name") or "base..end"), width - len(head)))
    claims = mail_claims(results)
    if claims:
        lines.append("")
        lines += claims
    details = _mail_details(results)
    if details:
        lines.append("")
        lines += details
    for finding in results.get("preexisting") or []:
        lines.append("")
        lines += wrap(f"Pre-existing in '{one_line(finding.get('state'))}' (before the patches; "
                      f"fails no patch): {one_line(finding.get('check'))} "
                      f"[{one_line(finding.get('channel'))}] {one_line(finding.get('summary'))}",
                      width, hanging="    ")
        for patch in finding.get("patches") or []:
            lines.append(shorten(f"    {one_line(patch.get('status'))}: "
                                 f"{one_line(patch.get('subject') or patch.get('path'))}", width))
        command = replay_command(finding)
        if command:
            lines += _shell_lines(command)
    lines.append("")
    exhaustive = sum(1 for item in all_items(results) for c in item.get("coverage") or []
                     if c.get("mode") == "exhaustive")
    examples = (f"{_count(run['examples'], 'example')}, "
                if run.get("examples") is not None else "")
    facts = (f"Profile {one_line(results.get('profile', '?'))}, seed {results.get('seed', '?')}, "
             f"{_count(len(results.get('checks') or []), 'check')}, {examples}"
             f"{exhaustive} exhaustive, {float(run.get('elapsed_s') or 0):.1f} s.")
    lines += wrap(facts, width)
    lines += wrap("The full report is index.html next to this summary.", width)
    return "\n".join(line.rstrip() for line in lines) + "\n"


def claim_lines(item: dict, sentence_width: int = 60) -> list[str]:
    """What the message of one patch claims, one line per claim, with its sentence.

    Shared by the mail summary and the terminal: the contract's source, each
    claim ("flush may change: subset (...) <- \u201csentence\u201d"), the sentences not
    used, each fix confirmed."""
    contract = item.get("contract") or {}
    if "claims" not in contract:
        return []
    lines = []
    if contract.get("source") == "written":
        lines.append("written contract; the message's claims are checked to be observed")
    elif contract.get("message") and contract.get("message") != "read":
        lines.append(f"message {contract['message']}: no claims read, every channel must "
                     f"stay equal")
    elif not contract.get("claims"):
        lines.append("no claim read from the message: every channel must stay equal")
    for claim in contract.get("claims") or []:
        sentence = shorten(one_line(claim.get("sentence") or ""), sentence_width)
        lines.append(f"{one_line(claim.get('allows') or claim.get('kind'))} "
                     f"<- \u201c{sentence}\u201d")
    unread = contract.get("unread") or []
    if unread:
        lines.append(f"{_count(len(unread), 'sentence')} naming a channel not used "
                     f"(first: \u201c{shorten(one_line(unread[0].get('sentence')), 50)}\u201d)")
    for fix in item.get("fixes") or []:
        lines.append(one_line(fix.get("summary")))
    return lines


def mail_claims(results: dict) -> list[str]:
    """The claims section of the mail summary (what each message was read to claim)."""
    lines = []
    for label, patch in checked_patches(results):
        mine = claim_lines(patch)
        if not mine:
            continue
        if not lines:
            lines.append("Claims read from the commit messages:")
        lines += wrap(f"{label}: {mine[0]}", MAIL_WIDTH, indent="  ", hanging="      ")
        for text in mine[1:]:
            lines += wrap(f"- {text}", MAIL_WIDTH, indent="    ", hanging="      ")
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def all_items(results: dict) -> list[dict]:
    items = [p for _, p in checked_patches(results)]
    return items + ([results["net"]] if results.get("net") else [])


def _mail_details(results: dict, limit: int = 10) -> list[str]:
    """Why the series is not PASS, worst first: errors, failures, gaps, warnings."""
    entries = []  # (rank, lines of one entry)
    items = checked_patches(results)
    if results.get("net"):
        items.append(("net", results["net"]))
    for label, item in items:
        if item.get("error"):
            entries.append((0, [f"ERROR {label}: " + _error_text(item["error"]).strip()]))
        for finding in own_findings(item):
            rank = 1 if finding.get("severity") == "FAIL" else 3
            entries.append((rank, _mail_finding(label, finding, item)))
        for finding in inherited_findings(item):
            entries.append((4, [f"{label} {finding_title(finding)}: {blame_label(finding)}"]))
        for hunk in uncovered_hunks(item):
            entries.append((2, [one_line(f"MISS {label}: {hunk.get('file')} "
                                         f"{hunk.get('function') or '(no function)'} not "
                                         f"checked: {hunk.get('reason') or ''}")]))
    entries.sort(key=lambda entry: entry[0])  # stable: series order within a rank
    lines = []
    for _, entry in entries[:limit]:
        for n, text in enumerate(entry):
            if text.startswith("kconform replay "):
                lines += _shell_lines(text)
            elif n == 0:
                lines += wrap(text, MAIL_WIDTH, hanging="  ")
            else:
                lines += wrap(text, MAIL_WIDTH, indent="  ")
        lines.append("")
    if len(entries) > limit:
        lines.append(f"... and {len(entries) - limit} more in the full report.")
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _mail_causes(patch: dict, indent: str) -> list[str]:
    """Under a failing patch's row: each cause it introduced, in words, and its culprit."""
    lines = []
    for group in cause_groups(patch):
        if group["earlier"] or group["severity"] != "FAIL":
            continue
        lines += wrap(group["cause"], MAIL_WIDTH, indent=indent)
        if culprit_line(group["culprit"]):
            lines += wrap(f"culprit: {culprit_line(group['culprit'])}", MAIL_WIDTH,
                          indent=indent + "  ")
    return lines


def _mail_finding(label: str, finding: dict, item: dict | None = None) -> list[str]:
    """A finding for the mail; only failures carry their (long) replay command."""
    entry = [f"{finding.get('severity')} {label} {finding_title(finding)}"]
    if finding.get("cause"):
        entry.append(cause_line(finding))
    entry.append(one_line(finding.get("summary", "")))
    if finding.get("culprit"):
        entry.append(f"culprit: {culprit_line(culprit_summary(item or {}, finding))}")
    if blame_label(finding):
        entry.append(f"({blame_label(finding)})")
    command = replay_command(finding)
    if command and finding.get("severity") == "FAIL":
        entry += ["Reproduce with:", command]
    elif command:
        entry += ["(replay command in the full report)"]
    return entry


def _shell_lines(command: str) -> list[str]:
    """A shell command, indented, split with backslash-newline when too long.

    The shell removes backslash-newline even inside a word, so the pieces
    paste back into one command; continuation lines start at column 0 so no
    blanks end up inside the token.
    """
    first = "    " + command
    if display_width(first) <= MAIL_WIDTH:
        return [first]
    room = MAIL_WIDTH - 1
    pieces, rest = [], first
    while display_width(rest) > MAIL_WIDTH:
        head = ""
        for char in rest:
            if display_width(head + char) > room:
                break
            head += char
        pieces.append(head + "\\")
        rest = rest[len(head):]
    return pieces + [rest]


# --- writing everything --------------------------------------------------

def json_text(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
