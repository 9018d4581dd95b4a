"""How much of each file a tree state translates, and what stops the rest.

``coverage(state)`` gives one ``FileCoverage`` per file of ``REPORTED_FILES``
the state read: every function the file defines (``paging_tmpl.h`` once per
guest mode), how many translated, and for each that did not, the construct
and line that stopped it.  ``summary`` renders it for ``kconform audit``.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.translate.tree import REPORTED_FILES, TreeState

TARGET_FILES = ("arch/x86/kvm/mmu/mmu.c", "arch/x86/kvm/mmu/spte.c", "arch/x86/kvm/mmu/spte.h",
                "arch/x86/kvm/mmu/tdp_mmu.c", "arch/x86/kvm/mmu/tdp_iter.c",
                "arch/x86/kvm/mmu/tdp_iter.h", "arch/x86/kvm/mmu/paging_tmpl.h")


@dataclass(frozen=True)
class FileCoverage:
    file: str
    blob: str
    defined: int
    translated: int
    misses: tuple[tuple[str, str], ...]          # (function, construct at file:line)
    environment_gaps: int = 0                    # translated, but reaching a name nobody defines

    @property
    def share(self) -> float:
        return self.translated / self.defined if self.defined else 1.0


def coverage(state: TreeState, files=REPORTED_FILES) -> list[FileCoverage]:
    rows = []
    for file in files:
        report = state.files.get(file)
        if report is None:
            continue
        misses = tuple((f.name, f.miss) for f in report.functions if not f.translated)
        gaps = sum(1 for f in report.functions if f.translated and f.unknown)
        rows.append(FileCoverage(file, report.blob, report.defined, report.translated, misses,
                                 gaps))
    return rows


def summary(rows: list[FileCoverage], seconds: float | None = None) -> str:
    lines = []
    for row in rows:
        lines.append(f"{row.file}@{row.blob[:12]}: {row.translated}/{row.defined} functions "
                     f"translated ({100 * row.share:.0f}%)"
                     + (f", {row.environment_gaps} reach names outside tree and environment"
                        if row.environment_gaps else ""))
        for function, miss in row.misses:
            lines.append(f"  MISS {function}: {miss}")
    if seconds is not None:
        lines.append(f"translated in {seconds:.1f}s")
    return "\n".join(lines)
