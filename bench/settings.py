"""What one benchmark run measures, and how hard: full or ``--quick``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATCHES = os.path.join(ROOT, "patches")
MUTANTS = os.path.join(ROOT, "tests", "mutants")

SECTIONS = ("ingest", "check", "domain", "mutants", "head_to_head", "scaling", "suite")

# Targets (2 cores), from issue 8.
SERIES_GATE_S = 20.0
PATCH_GATE_S = 5.0
MBOX_INGEST_S = 2.0
CROSSHAIR_SPEEDUP = 10.0


@dataclass
class Settings:
    quick: bool = False
    repeats: int = 3                 # timings: best and median of this many runs
    copies: int = 21                 # copies of the 4-patch series in the big mbox
    scaling_patches: tuple[int, ...] = (1, 4, 16, 84)
    scaling_check_patches: tuple[int, ...] = (1, 4, 16, 84)
    scaling_steps: tuple[int, ...] = (2, 4, 8, 16, 32)
    deep_patches: int = 1            # deep is capped: run it on this many patches
    crosshair_timeout: float = 60.0  # CPU seconds per condition, then "no verdict"
    hypothesis_runs: int = 3         # plain Hypothesis is randomised: repeat it
    repeat_budget_s: float = 60.0    # stop repeating a measurement past this much (runs kept)
    scaling_budget_s: float = 900.0  # skip a gate scaling point projected to take longer
    mutant_limit: int | None = None  # None: every mutant
    patches_dir: str = PATCHES
    mutants_dir: str = MUTANTS
    sections: tuple[str, ...] = SECTIONS
    notes: list[str] = field(default_factory=list)

    @classmethod
    def quick_run(cls, **changes) -> "Settings":
        """A small setting that still exercises every section (for tests and a first look)."""
        values = dict(quick=True, repeats=1, copies=2, scaling_patches=(1, 4, 8),
                      scaling_check_patches=(1,), scaling_steps=(2, 4), deep_patches=1,
                      crosshair_timeout=5.0, hypothesis_runs=1, mutant_limit=2,
                      repeat_budget_s=0.0, scaling_budget_s=30.0)
        values.update(changes)
        return cls(**values)
