"""Every report of a results document, rendered first and then written, each atomically.

A failure while rendering leaves the previous reports in place, and a reader
never sees half a file (``results.write_atomic``).
"""

from __future__ import annotations

import os

from harness.report import html_report, job_summary, outputs
from harness.report.results import write_atomic


def render_all(results: dict, run: dict, *, target_url: str | None = None,
               patchwork_skipped: bool = False) -> dict[str, str]:
    """Every report file's text, by file name, before anything is written."""
    checks = outputs.patchwork_checks(results, target_url, skipped=patchwork_skipped)
    return {
        "index.html": html_report.render(results, run),
        "results.junit.xml": outputs.junit(results),
        "kcidb.json": outputs.json_text(outputs.kcidb(results, run)),
        "patchwork.json": outputs.json_text({"schema": outputs.PATCHWORK_SCHEMA,
                                             "checks": checks}),
        "summary.txt": outputs.mail_summary(results, run),
        "summary.md": job_summary.markdown_summary(results, run),
    }


def write_all(results: dict, run: dict, report_dir: str, *,
              target_url: str | None = None, patchwork_skipped: bool = False) -> list[str]:
    """Write every report into ``report_dir``, each atomically; return the paths."""
    texts = render_all(results, run, target_url=target_url,
                       patchwork_skipped=patchwork_skipped)
    paths = []
    for name in outputs.OUTPUT_FILES:
        path = os.path.join(report_dir, name)
        write_atomic(path, texts[name])
        paths.append(path)
    return paths
