"""The verdict table of a CI job summary (GitHub's ``$GITHUB_STEP_SUMMARY``): ``summary.md``.

A pure function of the results document and the run record, like every
output; the why of each row is ``outputs.reasons``, so it says what the
patchwork check and the mail say.
"""

from __future__ import annotations

import os
import re

from harness.report.outputs import (check_schema, checked_patches, one_line, reasons,
                                    series_title, shorten)

MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~&])")


def markdown_text(text) -> str:
    """Visible text on one line, with Markdown and HTML syntax escaped (subjects are data)."""
    return MARKDOWN_SPECIAL.sub(lambda m: "\\" + m.group(1), one_line(text))


def markdown_summary(results: dict, run: dict) -> str:
    """The verdict table a CI job summary shows ($GITHUB_STEP_SUMMARY): one row per patch."""
    check_schema(results)
    lines = [f"### kconform: {results.get('verdict', 'ERROR')} "
             f"(exit code {results.get('exit_code', '?')})", "",
             markdown_text(series_title(results)), "",
             "| patch | verdict | why |", "| --- | --- | --- |"]
    rows = [(label, patch, patch.get("subject") or patch.get("path"))
            for label, patch in checked_patches(results)]
    if results.get("net"):
        rows.append(("net", results["net"], results["net"].get("name")))
    for label, item, subject in rows:
        why = markdown_text(shorten(reasons(item), 200))
        lines.append(f"| {markdown_text(label)} {markdown_text(subject)} | "
                     f"**{item.get('verdict', 'ERROR')}** | {why} |")
    ignored = results.get("ignored") or []
    if ignored:
        lines += ["", f"Ignored ({len(ignored)}): " + ", ".join(
            markdown_text(os.path.basename(str(row.get("path")))) for row in ignored)]
    lines += ["", markdown_text(f"Profile {results.get('profile', '?')}, seed "
                                f"{results.get('seed', '?')}, "
                                f"{float(run.get('elapsed_s') or 0):.1f} s; the full report "
                                f"is index.html in the job's artifacts.")]
    return "\n".join(lines) + "\n"
