"""Check time per patch and for the whole series, in ``gate`` and (capped) ``deep``."""

from __future__ import annotations

import os

from bench import settings as S
from bench.table import against, not_available, row, seconds
from bench.timing import peak_memory, repeat

SECTION = "check"


def missing_engine() -> str | None:
    try:
        from harness import pipeline  # noqa: F401
        from harness.ingest import scope  # noqa: F401
        from harness.check import engine as check
    except ImportError as exc:
        return f"the engine has not landed ({exc})"
    return None


def run_check(paths: list[str], profile: str = "gate", seed: int = 0) -> dict:
    from harness.pipeline import RunOptions, check_paths

    results, _ = check_paths(paths, RunOptions(profile=profile, seed=seed))
    return results


def coverage_totals(results: dict) -> dict:
    """Cases per coverage mode over every patch and the series net change."""
    entries = [c for p in results.get("patches", []) for c in p.get("coverage") or []]
    entries += list((results.get("net") or {}).get("coverage") or [])
    by_mode: dict[str, dict] = {}
    for entry in entries:
        mode = entry.get("mode") or "unknown"
        totals = by_mode.setdefault(mode, {"entries": 0, "cases": 0, "total": 0})
        totals["entries"] += 1
        totals["cases"] += int(entry.get("cases") or 0)
        totals["total"] += int(entry.get("total") or entry.get("cases") or 0)
    exhaustive = by_mode.get("exhaustive", {}).get("cases", 0)
    examples = sum(t["cases"] for m, t in by_mode.items() if m != "exhaustive")
    return {"by_mode": by_mode, "exhaustive_cases": exhaustive, "examples": examples}


def summary(results: dict) -> dict:
    patches = [p for p in results.get("patches", []) if not p.get("is_cover")]
    findings = sum(len(p.get("findings") or []) for p in patches)
    findings += len((results.get("net") or {}).get("findings") or [])
    return {"verdict": results.get("verdict"),
            "patch_verdicts": {p.get("subject") or p.get("path"): p.get("verdict")
                               for p in patches},
            "findings": findings, **coverage_totals(results)}


def patch_files(settings: S.Settings) -> list[tuple[str, str]]:
    """(position such as "2/4", path) of each bundled patch, cover left out, in series order."""
    from harness.ingest import patches as ingest
    patches = [p for p in ingest.read_paths([settings.patches_dir]) if not p.is_cover]
    return [(position(p), os.path.relpath(p.path, S.ROOT)) for p in patches]


def position(patch) -> str:
    series = getattr(patch, "series", None)
    if series is not None and getattr(series, "index", None) is not None:
        return f"{series.index}/{series.total}"
    return getattr(patch, "label", None) or patch.path


def case_text(totals: dict) -> str:
    return (f"{totals['exhaustive_cases']:,} exhaustive cases, "
            f"{totals['examples']:,} examples")


def measure(settings: S.Settings, context: dict) -> tuple[dict, list[dict]]:
    data, rows = {}, []
    missing = missing_engine()
    if missing:
        rows.append(not_available(SECTION, "whole series, gate", missing,
                                  target=f"≤ {S.SERIES_GATE_S:.0f} s"))
        rows.append(not_available(SECTION, "slowest single patch, gate", missing,
                                  target=f"≤ {S.PATCH_GATE_S:.0f} s"))
        rows.append(not_available(SECTION, "deep", missing))
        return {"available": False, "reason": missing}, rows

    series = repeat(lambda: run_check([settings.patches_dir]), settings.repeats,
                    settings.repeat_budget_s)
    results = series.value
    context["gate_results"] = results
    context["gate_series_s"] = series.median
    memory = peak_memory(lambda: run_check([settings.patches_dir]))
    data["series_gate"] = {**series.as_dict(), **summary(results), "memory": memory}
    totals = data["series_gate"]
    rows.append(against(SECTION, f"whole series, gate (verdict {totals['verdict']})",
                        seconds(series.median), series.median <= S.SERIES_GATE_S,
                        f"≤ {S.SERIES_GATE_S:.0f} s",
                        f"median of {len(series.runs)} (best {seconds(series.best)}, CPU "
                        f"{seconds(series.cpu_median)}); "
                        f"{case_text(totals)}; {totals['findings']} findings; peak "
                        f"{memory['peak_traced_mib']} MiB traced, "
                        f"{memory['process_max_rss_mib']} MiB max RSS"))

    per_patch = []
    for label, path in patch_files(settings):
        timing = repeat(lambda: run_check([path]), settings.repeats, settings.repeat_budget_s)
        item = {"label": label, "path": path, **timing.as_dict(), **summary(timing.value)}
        per_patch.append(item)
        rows.append(row(SECTION, f"patch {label}, gate (verdict {item['verdict']})",
                        seconds(timing.median),
                        note=f"median of {len(timing.runs)} (CPU {seconds(timing.cpu_median)}); "
                             f"{case_text(item)}"))
    data["per_patch_gate"] = per_patch
    if per_patch:
        slowest = max(per_patch, key=lambda p: p["median_s"])
        rows.append(against(SECTION, f"slowest single patch, gate ({slowest['label']})",
                            seconds(slowest["median_s"]), slowest["median_s"] <= S.PATCH_GATE_S,
                            f"≤ {S.PATCH_GATE_S:.0f} s"))

    deep = []
    for label, path in patch_files(settings)[-settings.deep_patches:]:
        timing = repeat(lambda: run_check([path], profile="deep"), 1)
        item = {"label": label, "path": path, **timing.as_dict(), **summary(timing.value)}
        deep.append(item)
        rows.append(row(SECTION, f"patch {label}, deep (verdict {item['verdict']})",
                        seconds(timing.best),
                        note=f"deep is capped: run once, on {settings.deep_patches} patch(es) "
                             f"only (seed 0); {case_text(item)}"))
    data["deep"] = deep
    return data, rows
