"""Rows of the benchmark table, and the table as text and as Markdown.

Every measurement becomes one row: what was measured, the figure, the target
it is held against (if any) and a status that says plainly whether the target
was met.  A component that has not landed is a row with status
``not available`` and the reason, never a crash and never a silent gap.
"""

from __future__ import annotations

MET = "met"
MISSED = "MISSED"
NOT_AVAILABLE = "not available"
FAILED = "bench error"


def row(section: str, measure: str, value: str, *, target: str = "", status: str = "",
        note: str = "") -> dict:
    return {"section": section, "measure": measure, "value": value, "target": target,
            "status": status, "note": note}


def against(section: str, measure: str, value: str, met: bool, target: str,
            note: str = "") -> dict:
    return row(section, measure, value, target=target, status=MET if met else MISSED, note=note)


def not_available(section: str, measure: str, reason: str, target: str = "") -> dict:
    return row(section, measure, NOT_AVAILABLE, target=target, status=NOT_AVAILABLE, note=reason)


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 0.001:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


COLUMNS = ("section", "measure", "value", "target", "status", "note")


def markdown(rows: list[dict], machine_line: str = "", header: str = "") -> str:
    lines = []
    if header:
        lines += [header, ""]
    if machine_line:
        lines += [f"Machine: {machine_line}", ""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join(" --- " for _ in COLUMNS) + "|")
    for item in rows:
        cells = [str(item.get(c, "")).replace("|", "\\|").replace("\n", " ") for c in COLUMNS]
        if item.get("status") in (MISSED, FAILED):
            cells[4] = f"**{cells[4]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plain(rows: list[dict], machine_line: str) -> str:
    """The table for the terminal: fixed-width columns, notes on their own line."""
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in COLUMNS[:-1]}
    widths = {c: min(w, 48) for c, w in widths.items()}
    out = [f"Machine: {machine_line}", ""]
    out.append("  ".join(c.ljust(widths[c]) for c in COLUMNS[:-1]))
    out.append("  ".join("-" * widths[c] for c in COLUMNS[:-1]))
    for item in rows:
        out.append("  ".join(str(item.get(c, ""))[:widths[c]].ljust(widths[c])
                             for c in COLUMNS[:-1]).rstrip())
        if item.get("note"):
            out.append(" " * (widths["section"] + 2) + "  " + item["note"])
    return "\n".join(out) + "\n"
