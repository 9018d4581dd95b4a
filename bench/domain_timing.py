"""The abstract SPTE domain: size per encoding mode, time to enumerate it, and
whether every changed function was checked exhaustively over it in ``gate``."""

from __future__ import annotations

from collections import Counter

from bench import settings as S
from bench.table import against, not_available, row, seconds
from bench.timing import repeat

SECTION = "domain"


def enumerate_mode(mode: str):
    """Build the domain afresh (bypassing its cache) and every same-slot (old, new) pair."""
    from kernel_models import spte_domain

    items = spte_domain._spte_domain.__wrapped__(mode, spte_domain._LAYOUT.get())
    per_level = Counter(item.level for item in items)
    pairs = sum(n * n for n in per_level.values())
    return items, per_level, pairs


def changed_functions(results: dict) -> list[tuple[str, str]]:
    """(patch position, function) for every covered behaviour hunk."""
    found = []
    for patch in results.get("patches", []):
        where = (patch.get("series") or {}).get("index")
        label = f"{where}/{(patch.get('series') or {}).get('total')}" if where else patch["path"]
        for hunk in patch.get("hunks") or []:
            if hunk.get("kind") == "behaviour" and hunk.get("function"):
                key = (label, hunk["function"])
                if key not in found:
                    found.append(key)
    return found


def exhaustive_status(results: dict) -> list[dict]:
    """Per changed function: its exhaustive coverage entries, and whether 100% was reached."""
    rows = []
    by_label = {}
    for patch in results.get("patches", []):
        series = patch.get("series") or {}
        label = f"{series.get('index')}/{series.get('total')}" if series.get("index") else \
            patch["path"]
        by_label[label] = patch
    for label, function in changed_functions(results):
        entries = [c for c in by_label[label].get("coverage") or []
                   if c.get("function") == function]
        exhaustive = [c for c in entries if c.get("mode") == "exhaustive"]
        cases = sum(int(c.get("cases") or 0) for c in exhaustive)
        total = sum(int(c.get("total") or 0) for c in exhaustive)
        complete = bool(exhaustive) and all(c.get("cases") == c.get("total") for c in exhaustive)
        rows.append({"patch": label, "function": function, "exhaustive_entries": len(exhaustive),
                     "cases": cases, "total": total, "complete": complete,
                     "other_modes": sorted({c.get("mode") for c in entries} - {"exhaustive"})})
    return rows


def time_changed_functions(results: dict, settings: S.Settings) -> list[dict]:
    """Time the engine's function-level check of every changed function that has a
    driver, between the before and after states the gate run resolved for its patch."""
    from harness.check import engine as check
    from harness.check import contracts
    from harness.check import drivers
    from kernel_models.registry import SERIES_STATES, VersionSet

    timings = []
    for patch in results.get("patches", []):
        versions = patch.get("versions") or {}
        before, after = versions.get("before"), versions.get("after")
        if before not in SERIES_STATES or after not in SERIES_STATES:
            continue
        series = patch.get("series") or {}
        label = f"{series.get('index')}/{series.get('total')}"
        contract = contracts.written_contract(patch.get("subject") or "") or \
            contracts.Contract(name="bench: no change", source=contracts.MESSAGE, intent="")
        pair = (VersionSet.series_state(before), VersionSet.series_state(after))
        functions = dict.fromkeys(h["function"] for h in patch.get("hunks") or []
                                  if h.get("kind") == "behaviour" and h.get("function"))
        for function in functions:
            if function not in drivers.DRIVERS:
                continue
            timing = repeat(lambda: check.check_function(function, *pair, contract,
                                                         profile="gate"),
                            settings.repeats, settings.repeat_budget_s)
            _, coverage = timing.value
            timings.append({"patch": label, "function": function, "pair": f"{before} -> {after}",
                            "mode": coverage.mode, "cases": coverage.cases,
                            "total": coverage.total, **timing.as_dict()})
    return timings


def measure(settings: S.Settings, context: dict) -> tuple[dict, list[dict]]:
    data, rows = {}, []
    try:
        from kernel_models.spte import MODES
        from kernel_models.spte_domain import spte_domain  # noqa: F401
    except ImportError as exc:
        rows.append(not_available(SECTION, "SPTE domain", f"kernel_models: {exc}"))
        return {"available": False}, rows

    modes = {}
    for mode in MODES:
        timing = repeat(lambda: enumerate_mode(mode), max(settings.repeats, 5))
        items, per_level, pairs = timing.value
        valid = sum(1 for item in items if item.valid)
        modes[mode] = {"values": len(items), "valid": valid,
                       "per_level": {str(k): v for k, v in sorted(per_level.items())},
                       "same_slot_pairs": pairs, "enumerate": timing.as_dict()}
        rows.append(row(SECTION, f"domain size, {mode}",
                        f"{len(items)} values ({valid} valid)",
                        note=f"{pairs:,} (old, new) pairs sharing a slot level; built in "
                             f"{seconds(timing.median)} (median of {max(settings.repeats, 5)})"))
    data["modes"] = modes

    results = context.get("gate_results")
    if results is None:
        rows.append(not_available(SECTION, "changed functions checked exhaustively, gate",
                                  "no gate results (the check section did not run)",
                                  target="100% of changed functions"))
        return data, rows
    functions = exhaustive_status(results)
    data["changed_functions"] = functions
    complete = [f for f in functions if f["complete"]]
    short = [f"{f['patch']} {f['function']}" for f in functions if not f["complete"]]
    cases = sum(f["cases"] for f in functions)
    series_s = (context.get("gate_series_s"))
    note = f"{cases:,} exhaustive cases over the changed functions"
    if series_s is not None:
        note += f", inside the whole-series gate run ({seconds(series_s)})"
    if short:
        note += "; not exhaustive: " + ", ".join(short)
    rows.append(against(SECTION, "changed functions checked exhaustively, gate",
                        f"{len(complete)} / {len(functions)}",
                        bool(functions) and len(complete) == len(functions),
                        "100% of changed functions", note))
    timings = time_changed_functions(results, settings)
    data["function_timing"] = timings
    for item in timings:
        rows.append(row(SECTION, f"{item['mode']} check of {item['function']} "
                                 f"({item['patch']})",
                        seconds(item["median_s"]),
                        note=f"{item['cases']:,} of {item['total']:,} cases, "
                             f"{item['pair']}; median of {item['runs']}"))
    if timings:
        total = sum(item["median_s"] for item in timings)
        rows.append(row(SECTION, "every changed function with a driver, function level",
                        seconds(total),
                        note=f"{len(timings)} function checks, "
                             f"{sum(i['cases'] for i in timings):,} cases; sum of medians"))
    return data, rows
