"""The HTML report: one self-contained page a reviewer reads in ten seconds.

``render(results, run)`` turns a ``kconform/1`` results document (a plain
dict) and the run record into one HTML file: inline CSS and inline SVG only,
a Content-Security-Policy that forbids every fetch, no script at all.  It
must open from a mail attachment on a machine with no network.

Everything that came from a patch is data: Jinja2 autoescapes it, and the
``reveal`` filter writes bidi overrides, zero-width and control characters
as visible ``U+202E`` marks, so the page shows what the patch really says.

This module only shapes the document into a view (plain dicts) for the
template ``templates/report.html.j2``; the facts it shares with the machine
outputs (verdict per check, replay command, hidden characters) come from
``harness.report.outputs``.
"""

from __future__ import annotations

import os
import unicodedata

import jinja2
from markupsafe import Markup, escape

from harness.report import outputs
from harness.report.outputs import CHANNELS, VERDICTS, checked_patches, check_schema

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

# Cells of the operation x channel matrix, least to most alarming.
CELL_ORDER = ("same", "inherited", "intended", "unchecked", "outside", "violated", "error")
CELL_TEXT = {
    "same": ("=", "same"),
    "inherited": ("^", "inherited: an earlier patch introduced it, not this one"),
    "intended": ("~", "changed as intended"),
    "unchecked": ("?", "not checked"),
    "outside": ("!", "changed outside intent"),
    "violated": ("\u2717", "violated"),
    "error": ("\u26a0", "error"),
}
# The overview repeats the cells once per patch: short words, same symbols.
CELL_SHORT = {"same": "same", "inherited": "inherited", "intended": "as intended", "unchecked": "not checked",
              "outside": "outside intent", "violated": "violated", "error": "error"}
VERDICT_TEXT = {
    "SKIP": ("-", "not applicable: no patch touches a file kconform reads"),
    "PASS": ("\u2713", "every hunk checked, every channel as intended"),
    "WARN": ("!", "a tolerant channel changed outside the stated intent"),
    "MISS": ("?", "part of the input was not checked"),
    "FAIL": ("\u2717", "a must-hold property is violated"),
    "ERROR": ("\u26a0", "the input could not be read"),
}
# A contract rule naming this operation (or none) holds for every operation.
ANY_OPERATION = "*"
# A rule with one of these relations says the channel must not change.
UNCHANGED = ("same", "equal", "unchanged", "preserved")

_TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def render(results: dict, run: dict) -> str:
    """The report page for ``results``; ``run`` adds time, host and command."""
    check_schema(results)
    return _environment().get_template("report.html.j2").render(
        report=report_view(results, run), csp=CSP)


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["reveal"] = reveal
    environment.filters["bit"] = outputs.show_bit
    return environment


def reveal(text) -> Markup:
    """Escaped ``text`` in which every hidden character is a visible mark."""
    if text is None:
        return Markup("")
    pieces = []
    for part, hidden in outputs.split_hidden(str(text)):
        if hidden:
            name = unicodedata.name(part, "control character")
            pieces.append(Markup('<span class="hidden-char" title="{}">{}</span>').format(
                name, outputs.code_point(part)))
        else:
            pieces.append(escape(part))
    return Markup("").join(pieces)


# --- the view ------------------------------------------------------------

def report_view(results: dict, run: dict) -> dict:
    """Everything the template shows, as plain values; no logic left for Jinja."""
    channels = report_channels(results)
    patches = [patch_view(label, number, patch, results, channels)
               for number, (label, patch) in enumerate(checked_patches(results), start=1)]
    net = results.get("net")
    counts = {v: sum(1 for p in patches if p["verdict"] == v) for v in VERDICTS}
    verdict = results.get("verdict", "ERROR")
    return {
        "title": outputs.series_title(results),
        "verdict": verdict,
        "verdict_symbol": VERDICT_TEXT.get(verdict, ("?", ""))[0],
        "verdict_meaning": VERDICT_TEXT.get(verdict, ("?", "unknown verdict"))[1],
        "headline": headline(patches, net),
        "cover": cover_view(outputs.cover_letter(results)),
        "channels": channels,
        "patches": patches,
        "counts": [(v, counts[v]) for v in VERDICTS if counts[v]],
        "bar": verdict_bar(patches),
        "net": net_view(net, results) if net else None,
        "preexisting": [preexisting_view(f) for f in results.get("preexisting") or []],
        "legend": [(name, *CELL_TEXT[name]) for name in CELL_ORDER],
        "run": run_view(results, run),
        "look_first": [p for p in sorted(patches, key=lambda p: -VERDICTS.index(p["verdict"]))
                       if p["verdict"] not in ("PASS", "SKIP")],
    }


def headline(patches: list[dict], net: dict | None) -> str:
    bad = [p for p in patches if p["verdict"] not in ("PASS", "SKIP")]
    text = f"{len(patches) - len(bad)} of {len(patches)} patches pass or are not kconform's"
    for verdict in ("ERROR", "FAIL", "MISS", "WARN", "SKIP"):
        labels = [p["label"] for p in patches if p["verdict"] == verdict]
        if labels:
            text += f"; {verdict} {', '.join(labels)}"
    if net:
        text += f"; series net effect {net.get('verdict', 'ERROR')}"
    return text


def report_channels(results: dict) -> list[str]:
    """The six standard channels, then any other channel the document mentions."""
    extra = []
    for item in outputs.all_items(results):
        named = [f.get("channel") for f in item.get("findings") or []]
        named += [r.get("channel") for r in ((item.get("contract") or {}).get("rules") or [])]
        for channel in named:
            if channel and channel not in CHANNELS and channel not in extra:
                extra.append(channel)
    return list(CHANNELS) + extra


def cover_view(cover: dict | None) -> dict | None:
    if not cover:
        return None
    return {"subject": cover.get("raw_subject") or cover.get("subject") or "",
            "author": cover.get("author"), "date": cover.get("date"),
            "message_id": cover.get("message_id"), "path": cover.get("path"),
            "base_commit": cover.get("base_commit"), "notes": cover.get("notes") or []}


def patch_view(label: str, number: int, patch: dict, results: dict,
               channels: list[str]) -> dict:
    operations, matrix = channel_matrix(patch, channels)
    summary = {channel: worst_cell(matrix[op][channel] for op in operations)
               for channel in channels}
    findings = [finding_view(f) for f in patch.get("findings") or []]
    hunks = patch.get("hunks") or []
    alarming = bool(findings) or any(not h.get("covered") for h in hunks)
    contract = patch.get("contract")
    return {
        "anchor": f"patch-{number}",
        "label": label,
        "subject": patch.get("subject") or patch.get("raw_subject") or patch.get("path") or "",
        "raw_subject": patch.get("raw_subject"),
        "path": patch.get("path"),
        "author": patch.get("author"),
        "date": patch.get("date"),
        "message_id": patch.get("message_id"),
        "base_commit": patch.get("base_commit"),
        "verdict": patch.get("verdict", "ERROR"),
        "verdict_symbol": VERDICT_TEXT.get(patch.get("verdict"), ("?", ""))[0],
        "why": outputs.reasons(patch),
        "intent": contract.get("intent") if contract else None,
        "contract": contract,
        "contract_source": CONTRACT_SOURCES.get((contract or {}).get("source"),
                                                "inferred from the diff (an older kconform)"),
        "claims": claims_view(contract),
        "message_status": (contract or {}).get("message"),
        "unread": (contract or {}).get("unread") or [],
        "fixes": [finding_view(f) for f in patch.get("fixes") or []],
        "versions": patch.get("versions"),
        "summary": [(channel, summary[channel], CELL_TEXT[summary[channel]][0],
                     CELL_SHORT[summary[channel]], CELL_TEXT[summary[channel]][1])
                    for channel in channels],
        "operations": operations,
        "matrix": matrix_rows(operations, matrix, channels),
        "hunks": [hunk_view(h, open_diff=alarming or not h.get("covered")) for h in hunks],
        "covered": sum(1 for h in hunks if h.get("covered")),
        "coverage": patch.get("coverage") or [],
        "checks": [(check, outputs.check_verdict(patch, check))
                   for check in results.get("checks") or []],
        "findings": findings,
        "error": patch.get("error"),
        "damage": patch.get("damage") or [],
        "repairs": patch.get("repairs") or [],
        "repaired": bool(patch.get("repaired")),
        "notes": patch.get("notes") or [],
    }


def channel_matrix(item: dict, channels: list[str]) -> tuple[list[str], dict]:
    """Operation x channel cells: same / intended / outside / violated / ...

    Rows are the operations the contract names, then those findings name;
    with neither, one row "all operations".  A FAIL finding makes its cell
    "violated", a WARN "outside" (changed outside intent); a contract rule
    whose relation is not "same" makes its cells "intended".  An inherited
    or pre-existing finding makes its cell "inherited" (the introducing
    patch's cell shows it).  A patch with no checked code is "unchecked"
    everywhere, an unreadable one "error".
    """
    rules = (item.get("contract") or {}).get("rules") or []
    findings = item.get("findings") or []
    operations = []
    for name in [op for rule in rules for op in rule.get("operations") or []] + \
            [operation_of(f) for f in findings]:
        if name not in operations and name != ANY_OPERATION:
            operations.append(name)
    if not operations:
        operations = ["all operations"]
    hunks = item.get("hunks") or []
    checked = any(h.get("covered") and h.get("kind", "code") == "code" for h in hunks) \
        or bool(item.get("coverage")) or bool(findings)
    matrix = {}
    for op in operations:
        row = {}
        for channel in channels:
            if item.get("error") or item.get("verdict") == "ERROR":
                row[channel] = "error"
                continue
            cell = "same" if checked else "unchecked"
            if checked and any(str(rule.get("relation", "")).lower() not in UNCHANGED
                               for rule in rules_for(rules, channel, op)):
                cell = "intended"  # unchecked: intent alone proves nothing
            for finding in findings:
                if finding.get("channel") == channel and operation_of(finding) == op:
                    found = ("inherited" if outputs.is_inherited(finding) else
                             "violated" if finding.get("severity") == "FAIL" else "outside")
                    cell = worst_cell([cell, found])
            row[channel] = cell
        matrix[op] = row
    return operations, matrix


def rules_for(rules: list[dict], channel: str, operation: str) -> list[dict]:
    """The contract rules that hold for ``channel`` on ``operation``.

    As in ``harness.check.contracts``: a rule naming the operation beats a ``"*"``
    rule (or one naming none); no rule at all means the channel stays equal.
    """
    mine = [r for r in rules if r.get("channel") == channel]
    named = [r for r in mine if operation in (r.get("operations") or [])]
    return named or [r for r in mine if ANY_OPERATION in (r.get("operations") or [ANY_OPERATION])]


def matrix_rows(operations: list[str], matrix: dict, channels: list[str]) -> list:
    """``(operation, [(channel, state, symbol, short text, full text)])`` per row."""
    return [(op, [(channel, matrix[op][channel], CELL_TEXT[matrix[op][channel]][0],
                   CELL_SHORT[matrix[op][channel]], CELL_TEXT[matrix[op][channel]][1])
                  for channel in channels]) for op in operations]


def operation_of(finding: dict) -> str:
    """The matrix row of a finding: its operation, else the function it calls."""
    if finding.get("operation"):
        return str(finding["operation"])
    if finding.get("function"):
        return f"{finding['function']}()"
    return "any operation"


def worst_cell(cells) -> str:
    return max(cells, key=CELL_ORDER.index, default="same")


def hunk_view(hunk: dict, *, open_diff: bool) -> dict:
    lines = []
    header = hunk.get("header")
    for text in str(hunk.get("text") or "").splitlines():
        if not lines and text.startswith("@@"):
            header = text  # the text carries its own header line: show it once
            continue
        kind = {"+": "add", "-": "del", "\\": "meta"}.get(text[:1], "ctx")
        lines.append({"kind": kind, "text": text})
    return {
        "index": hunk.get("index"), "file": hunk.get("file"),
        "function": hunk.get("function"), "kind": hunk.get("kind"),
        "covered": bool(hunk.get("covered")), "model": hunk.get("model"),
        "reason": hunk.get("reason"), "header": header, "line": hunk.get("line"),
        "lines": lines, "open": open_diff,
    }


CONTRACT_SOURCES = {
    "written": "written from the commit message",
    "message": ("read from the commit message (no written contract): every channel stays "
                "equal except what the message claims"),
}


def claims_view(contract: dict | None) -> list[dict] | None:
    """The claims a contract was read from, one row each (None: a document without them)."""
    if not contract or "claims" not in contract:
        return None
    rows = []
    for claim in contract["claims"]:
        rows.append({"what": claim.get("allows") or claim.get("kind"),
                     "sentence": claim.get("sentence"),
                     "convention": claim.get("convention"),
                     "opportunistic": bool(claim.get("opportunistic"))})
    return rows


def preexisting_view(finding: dict) -> dict:
    """A finding of the state before the patches, with what each patch does to it."""
    return {"state": finding.get("state"), "finding": finding_view(finding),
            "patches": [(p.get("subject") or p.get("path"), p.get("status"))
                        for p in finding.get("patches") or []]}


def finding_view(finding: dict) -> dict:
    example = finding.get("counterexample")
    blame = outputs.blame_label(finding)
    return {
        "title": outputs.finding_title(finding) + (f" ({blame})" if blame else ""),
        "blame": blame,
        "check": finding.get("check"), "channel": finding.get("channel"),
        "severity": finding.get("severity"), "operation": finding.get("operation"),
        "function": finding.get("function"), "summary": finding.get("summary"),
        "counterexample": counterexample_view(example) if example else None,
        "replay": outputs.replay_command(finding),
        "example": finding.get("example"),
    }


def counterexample_view(example: dict) -> dict:
    """SPTEs as a bit table (changed bits marked), logs side by side, difference.

    A bit is marked where it differs from the first row of its group: rows
    named ``X old`` / ``X new`` (or plain ``old`` / ``new``) are one SPTE seen
    twice; rows that pair with nothing are compared with each other.
    """
    sptes = example.get("sptes") or []
    # A fact string names only what is true, so a name it leaves out is false.
    absent = False if any(isinstance(s.get("bits"), str) for s in sptes) else None
    bits = [outputs.spte_bits(s) for s in sptes]
    bit_names = []
    for facts in bits:
        for name in facts:
            if name not in bit_names:
                bit_names.append(name)
    groups = [spte_group(str(s.get("name") or "")) for s in sptes]
    if len(set(groups)) == len(groups):
        groups = [""] * len(groups)
    first = {}
    for group, facts in zip(groups, bits):
        first.setdefault(group, facts)
    marks = [[repr(facts.get(name, absent)) != repr(first[group].get(name, absent))
              for name in bit_names] for group, facts in zip(groups, bits)]
    changed = {name for n, name in enumerate(bit_names) if any(row[n] for row in marks)}
    difference = example.get("difference") or {}
    missing = {e for change in difference.values() for e in change.get("missing") or []}
    extra = {e for change in difference.values() for e in change.get("extra") or []}
    return {
        "steps": example.get("steps") or [],
        "bit_names": [(name, name in changed) for name in bit_names],
        "sptes": [{"name": s.get("name"), "value": s.get("value"),
                   "bits": [(facts.get(name, absent), mark)
                            for name, mark in zip(bit_names, row)]}
                  for s, facts, row in zip(sptes, bits, marks)],
        "before": [(event, event in missing) for event in example.get("before") or []],
        "after": [(event, event in extra) for event in example.get("after") or []],
        "difference": [(channel, change.get("missing") or [], change.get("extra") or [])
                       for channel, change in difference.items()],
    }


def spte_group(name: str) -> str:
    """``tdp1@0x0[0] old`` and ``tdp1@0x0[0] new`` are one SPTE: ``tdp1@0x0[0]``."""
    for word in ("old", "new", "before", "after"):
        if name == word:
            return ""
        if name.endswith(" " + word):
            return name[:-len(word) - 1]
    return name


def net_view(net: dict, results: dict) -> dict:
    channels = report_channels(results)
    operations, matrix = channel_matrix(net, channels)
    return {
        "name": net.get("name"), "before": net.get("before"), "after": net.get("after"),
        "verdict": net.get("verdict", "ERROR"),
        "verdict_symbol": VERDICT_TEXT.get(net.get("verdict"), ("?", ""))[0],
        "matrix": matrix_rows(operations, matrix, channels),
        "summary": [(channel, cell, CELL_TEXT[cell][0], CELL_SHORT[cell], CELL_TEXT[cell][1])
                    for channel, cell in ((c, worst_cell(matrix[op][c] for op in operations))
                                          for c in channels)],
        "findings": [finding_view(f) for f in net.get("findings") or []],
        "coverage": net.get("coverage") or [],
    }


def verdict_bar(patches: list[dict]) -> list[dict]:
    """Segments of the inline-SVG bar: one per patch, coloured by verdict."""
    if not patches:
        return []
    width = 100.0 / len(patches)
    return [{"x": round(n * width, 3), "width": round(width, 3), "verdict": p["verdict"],
             "label": p["label"], "anchor": p["anchor"]} for n, p in enumerate(patches)]


def run_view(results: dict, run: dict) -> dict:
    coverage = [c for item in outputs.all_items(results) for c in item.get("coverage") or []]
    exhaustive = [c for c in coverage if c.get("mode") == "exhaustive"]
    tool = results.get("tool") or {}
    elapsed = run.get("elapsed_s")
    return {
        "tool": f"{tool.get('name', 'kconform')} {tool.get('version', '?')}",
        "schema": results.get("schema"),
        "profile": results.get("profile"), "seed": results.get("seed"),
        "checks": results.get("checks") or [],
        "examples": run.get("examples") if run.get("examples") is not None else "not recorded",
        "exhaustive": f"{len(exhaustive)} of {len(coverage)} (check, function) pairs, "
                      f"{sum(int(c.get('cases') or 0) for c in exhaustive)} cases"
                      if coverage else "none",
        "started": run.get("started"),
        "elapsed": f"{float(elapsed):.1f} s" if elapsed is not None else None,
        "host": run.get("host"), "python": run.get("python"), "command": run.get("command"),
        "exit_code": results.get("exit_code"),
    }
