"""How cost grows: time vs number of patches, and vs operation-sequence length.

- patches: the first N mails of the generated mbox (N = 1, 4, 16, 84), for
  ingest + scope (cheap: every N) and for the whole gate check.  A gate point
  whose projected time (per-patch time of the largest point measured so far
  times N) passes the scaling budget is not run, and the table says so with
  the projection: a skipped point is shown, never hidden.
- sequence length: the operation-level search of one transition (after 3/4 ->
  after 4/4, under 4/4's written contract), with the ``gate`` profile's
  ``stateful_step_count`` set to each length in turn for the measurement and
  put back after.  Findings make the engine search again (one search per
  finding, up to a cap), so the findings count is shown beside each time.
"""

from __future__ import annotations

import os
import re

from bench import mbox, settings as S
from bench.table import not_available, row, seconds
from bench.timing import repeat

SECTION = "scaling"
FOUR_FOUR = "KVM: x86/mmu: Don't force flush if SPTE update clears Accessed bit"


def ingest_points(settings: S.Settings, workdir: str) -> list[dict]:
    from bench.ingest_timing import have_scope, read, scope_all

    missing = have_scope()
    points = []
    for count in settings.scaling_patches:
        path = os.path.join(workdir, f"first-{count}.mbox")
        mails = mbox.first_mails(settings.patches_dir, max(settings.copies, -(-count // 4)),
                                 count, path)
        if missing:
            timing = repeat(lambda: read([path]), settings.repeats)
        else:
            timing = repeat(lambda: scope_all(read([path])), settings.repeats)
        points.append({"patches": mails, "what": "ingest" if missing else "ingest + scope",
                       **timing.as_dict()})
    return points


def check_points(settings: S.Settings, workdir: str) -> list[dict]:
    from bench.check_timing import coverage_totals, run_check

    points, per_patch = [], None
    for count in settings.scaling_check_patches:
        path = os.path.join(workdir, f"check-first-{count}.mbox")
        mails = mbox.first_mails(settings.patches_dir, max(settings.copies, -(-count // 4)),
                                 count, path)
        projected = per_patch * mails if per_patch is not None else None
        if projected is not None and projected > settings.scaling_budget_s:
            points.append({"patches": mails, "skipped": True, "projected_s": round(projected, 1)})
            continue
        timing = repeat(lambda: run_check([path]), settings.repeats, settings.repeat_budget_s)
        per_patch = timing.median / max(1, mails)
        totals = coverage_totals(timing.value)
        points.append({"patches": mails, **timing.as_dict(),
                       "per_patch_s": round(per_patch, 4), "verdict": timing.value.get("verdict"),
                       "examples": totals["examples"],
                       "exhaustive_cases": totals["exhaustive_cases"]})
    return points


def with_step_count(steps: int):
    """Context: the ``gate`` profile with ``stateful_step_count = steps``."""
    import contextlib

    from hypothesis import settings as hypothesis_settings

    from harness.check import profiles
    @contextlib.contextmanager
    def change():
        original = profiles.get("gate")
        hypothesis_settings.register_profile("gate", parent=original, stateful_step_count=steps)
        try:
            yield
        finally:
            hypothesis_settings.register_profile("gate", parent=original)
    return change()


def sequence_points(settings: S.Settings) -> list[dict]:
    from harness.check import engine as check
    from harness.check import contracts
    from kernel_models.registry import VersionSet

    before, after = VersionSet.series_state("after 3/4"), VersionSet.series_state("after 4/4")
    contract = contracts.written_contract(FOUR_FOUR)
    points = []
    for steps in settings.scaling_steps:
        with with_step_count(steps):
            timing = repeat(lambda: check.check_transition(
                "scaling", before, after, contract, profile="gate", functions=()),
                settings.repeats, settings.repeat_budget_s)
        outcome = timing.value
        text = " ".join(c.text for c in outcome.coverage)
        steps_run = re.search(r"([\d,]+) steps in all", text)
        sequences = re.search(r"([\d,]+) operation sequences", text)
        points.append({"steps": steps, **timing.as_dict(), "findings": len(outcome.findings),
                       "steps_run": int(steps_run.group(1).replace(",", "")) if steps_run else None,
                       "sequences": int(sequences.group(1).replace(",", "")) if sequences else None,
                       "coverage": text})
    return points


def growth(points: list[dict], key: str) -> str:
    measured = [p for p in points if not p.get("skipped")]
    if len(measured) < 2:
        return ""
    first, last = measured[0], measured[-1]
    if not first["median_s"] or first[key] == last[key]:
        return ""
    return (f"x{last[key] / first[key]:g} {key} -> x{last['median_s'] / first['median_s']:.1f} "
            f"time")


def measure(settings: S.Settings, workdir: str) -> tuple[dict, list[dict]]:
    data, rows = {}, []
    try:
        from harness import ingest  # noqa: F401
    except ImportError as exc:
        rows.append(not_available(SECTION, "time vs patches", f"harness/ingest/patches.py: {exc}"))
        return {"available": False}, rows
    points = ingest_points(settings, workdir)
    data["ingest"] = points
    what = points[0]["what"] if points else "ingest"
    rows.append(row(SECTION, f"{what} vs patches",
                    ", ".join(f"{p['patches']}: {seconds(p['median_s'])}" for p in points),
                    note=growth(points, "patches")))
    try:
        from harness import pipeline  # noqa: F401
        from harness.check import engine as check
    except ImportError as exc:
        rows.append(not_available(SECTION, "gate check vs patches", f"engine: {exc}"))
        rows.append(not_available(SECTION, "operation search vs sequence length", f"engine: {exc}"))
        return data, rows
    points = check_points(settings, workdir)
    data["check"] = points
    shown = []
    for p in points:
        if p.get("skipped"):
            shown.append(f"{p['patches']}: not run (projected {seconds(p['projected_s'])})")
        else:
            shown.append(f"{p['patches']}: {seconds(p['median_s'])}")
    skipped = [p for p in points if p.get("skipped")]
    measured = [p for p in points if not p.get("skipped")]
    note = ("per patch: " + ", ".join(f"{p['patches']}: {seconds(p['per_patch_s'])}"
                                      for p in measured)
            + "; CPU: " + ", ".join(f"{p['patches']}: {seconds(p['cpu_median_s'])}"
                                    for p in measured)
            + f"; runs: {', '.join(str(p['runs']) for p in measured)}"
            + " (a single patch is 1/4, the cheapest; wall time above CPU time is other work "
              "sharing the machine)")
    if skipped:
        note += (f"; points projected past the {settings.scaling_budget_s:g} s scaling budget "
                 f"were not run")
    rows.append(row(SECTION, "gate check vs patches", ", ".join(shown), note=note.strip("; ")))
    points = sequence_points(settings)
    data["sequence_length"] = points
    rows.append(row(SECTION, "operation search vs sequence length (3/4 -> 4/4)",
                    ", ".join(f"{p['steps']}: {seconds(p['median_s'])}" for p in points),
                    note="; ".join([growth(points, "steps")] +
                                   [f"{p['steps']} steps: {p['findings']} findings, "
                                    f"{p['steps_run'] or '?'} steps run" for p in points])
                    .strip("; ")))
    return data, rows
