"""Plain-text rendering of findings, shared by the terminal and pytest output."""

from __future__ import annotations

from harness.report import outputs


def format_finding(finding: dict) -> str:
    """A finding as a reviewer reads it in a terminal: no Python traceback."""
    lines = [f"{finding['severity']}: {finding['check']} on channel '{finding['channel']}'"
             + (f", operation {finding['operation']}" if finding.get("operation") else "")
             + (f", function {finding['function']}" if finding.get("function") else ""),
             f"  {finding['summary']}"]
    if finding.get("cause"):
        lines.insert(1, f"  {finding['cause']}")
    culprit = outputs.culprit_line(outputs.culprit_summary({}, finding))
    if culprit:
        lines.append(f"  culprit: {culprit}")
    example = finding.get("counterexample") or {}
    if example.get("steps"):
        lines.append("  Steps:")
        lines.extend(f"    {step}" for step in example["steps"])
    for spte in example.get("sptes") or []:
        bits = spte.get("bits") or ""
        if isinstance(bits, dict):
            bits = " ".join(k if v is True else f"{k}={v}" for k, v in bits.items()
                            if v not in (False, None, 0))
        lines.append(f"  {spte['name']} = {spte['value']}  [{bits}]")
    if example.get("before") is not None or example.get("after") is not None:
        lines.append("  Effects before the patch:")
        lines.extend(f"    {e}" for e in example.get("before") or ["(none)"])
        lines.append("  Effects after the patch:")
        lines.extend(f"    {e}" for e in example.get("after") or ["(none)"])
    for channel, diff in (example.get("difference") or {}).items():
        for event in diff.get("missing", []):
            lines.append(f"  - [{channel}] missing after: {event}")
        for event in diff.get("extra", []):
            lines.append(f"  + [{channel}] extra after:   {event}")
    if finding.get("replay") or finding.get("example"):
        lines.append("Reproduce with:")
        if finding.get("replay"):
            lines.append(f"  kconform replay {finding['replay']}")
        if finding.get("example"):
            lines.append(f"  {finding['example']}")
    return "\n".join(lines)
