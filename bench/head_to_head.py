"""kconform vs plain Hypothesis vs CrossHair on the same mmu_spte_update pairs.

The question put to all three is the same: "do these two versions behave
differently, and on what input?"

- kconform: the engine's function-level check (``check.check_function``) of
  ``mmu_spte_update`` over the abstract SPTE domain, every encoding mode, in
  ``gate``, under a contract with no rules (every channel must be equal), so
  any difference is a finding.  Its time to a verdict is the whole
  exhaustive pass; the probe also records when the first counterexample came.
- plain Hypothesis: ``@given(st.integers(0, 2**64-1), st.integers(0, 2**64-1))``
  comparing the wrappers' effect summaries (``bench/pairs.py``), default
  settings (100 examples) except no example database (else a second run
  replays the first run's failure at once) and no deadline (the first call
  builds a VM).  It is randomised, so it is run several times.
- CrossHair: ``crosshair diffbehavior`` on the same two wrappers, with a
  per-condition timeout.  CrossHair keeps searching until its budget is
  spent and reports at the end; its time to a verdict is when its log says
  "Functions differ" (the moment it knew), which favours CrossHair; the
  process time is kept as well.  No difference by the end is recorded as
  "no verdict in N s".

Counterexample size: set bits in old + new (64-bit), so 0 and small values
are small, and a tool that answers "old = all ones" scores 64.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import statistics
import subprocess
import sys
import threading
import time

from bench import pairs, settings as S
from bench.probe import Probe
from bench.table import against, not_available, ratio, row, seconds
from bench.timing import repeat

SECTION = "head to head"
FUNCTION = "mmu_spte_update"
U64 = (1 << 64) - 1


def bits(*values: int) -> int:
    return sum(bin(v & U64).count("1") for v in values)


def no_change_contract():
    from harness.check import contracts as C
    return C.Contract(name="bench: no behaviour change", source=C.MESSAGE,
                      intent="every channel equal: any difference is a finding")


def kconform_pair(before_name: str, after_name: str, repeats: int) -> dict:
    from harness.check import engine as check
    before, after = pairs.version_set(before_name), pairs.version_set(after_name)
    contract = no_change_contract()
    probes = []

    def once():
        with Probe() as probe:
            findings, coverage = check.check_function(FUNCTION, before, after, contract,
                                                      profile="gate")
        probes.append(probe)
        return findings, coverage

    timing = repeat(once, repeats)
    findings, coverage = timing.value
    probe = probes[-1]
    result = {"tool": "kconform", "found": bool(findings), "findings": len(findings),
              "seconds": timing.median, "timing": timing.as_dict(),
              "cases": coverage.cases, "total": coverage.total, "mode": coverage.mode}
    if probe.available and probe.first:
        result["first_counterexample"] = {"examples": probe.first["examples"],
                                          "seconds": round(probe.first["seconds"], 4)}
    if findings:
        example = findings[0].counterexample or {}
        values = [int(s["value"], 16) for s in example.get("sptes", [])]
        result["counterexample"] = {"example": findings[0].example, "sptes": [hex(v) for v in values],
                                    "size_bits": bits(*values),
                                    "channel": findings[0].channel}
    return result


def hypothesis_pair(first, second, runs: int) -> dict:
    from hypothesis import given, settings, strategies as st

    outcomes = []
    for _ in range(max(1, runs)):
        state = {"calls": 0, "first": None, "last": None}

        @settings(database=None, deadline=None)
        @given(st.integers(0, U64), st.integers(0, U64))
        def behave_the_same(old_spte, new_spte):
            state["calls"] += 1
            if first(old_spte, new_spte) != second(old_spte, new_spte):
                if state["first"] is None:
                    state["first"] = (state["calls"], time.perf_counter() - start)
                state["last"] = (old_spte, new_spte)
                raise AssertionError("the two versions differ")

        start = time.perf_counter()
        found = False
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                behave_the_same()
            except AssertionError:
                found = True
        elapsed = time.perf_counter() - start
        outcome = {"found": found, "seconds": elapsed, "calls": state["calls"]}
        if found:
            old, new = state["last"]
            outcome.update(examples_to_first=state["first"][0],
                           seconds_to_first=round(state["first"][1], 4),
                           counterexample={"old": hex(old), "new": hex(new),
                                           "size_bits": bits(old, new)})
        outcomes.append(outcome)
    found_runs = [o for o in outcomes if o["found"]]
    result = {"tool": "hypothesis", "runs": outcomes, "found_in": len(found_runs),
              "found": len(found_runs) == len(outcomes),
              "seconds": statistics.median(o["seconds"] for o in outcomes)}
    if found_runs:
        result["examples_to_first_median"] = statistics.median(
            o["examples_to_first"] for o in found_runs)
        result["size_bits_median"] = statistics.median(
            o["counterexample"]["size_bits"] for o in found_runs)
        result["counterexample"] = found_runs[0]["counterexample"]
    return result


def crosshair_available() -> str | None:
    try:
        import crosshair  # noqa: F401
    except ImportError:
        return "crosshair-tool is not installed (pip install -r bench/requirements.txt)"
    return None


GIVEN = re.compile(r"Given:\s*\((.*?)\),?\s*$", re.MULTILINE)
ARGUMENT = re.compile(r"(\w+)=(-?\d+)")


def parse_crosshair(stdout: str, returncode: int) -> dict | None:
    """The counterexample diffbehavior printed (as u64 values), or None if it found none."""
    given = GIVEN.search(stdout)
    if returncode != 1 or not given:
        return None
    values = {k: int(v) & U64 for k, v in ARGUMENT.findall(given.group(1))}
    return {k: hex(v) for k, v in values.items()} | {"size_bits": bits(*values.values())}


def crosshair_pair(first, second, timeout: float) -> dict:
    names = [f"{f.__module__}.{f.__name__}" for f in (first, second)]
    command = [sys.executable, "-m", "crosshair", "diffbehavior", *names,
               "--per_condition_timeout", str(timeout), "--verbose"]
    env = dict(os.environ, PYTHONPATH=S.ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=S.ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    found_at = []

    def watch_log():
        for line in process.stderr:
            if "Functions differ" in line and not found_at:
                found_at.append(time.perf_counter() - start)

    watcher = threading.Thread(target=watch_log, daemon=True)
    watcher.start()
    wall_limit = timeout * 3 + 60
    try:
        stdout, _ = process.communicate(timeout=wall_limit)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, _ = process.communicate()
    watcher.join(5)
    elapsed = time.perf_counter() - start
    result = {"tool": "crosshair", "timeout_s": timeout, "process_seconds": round(elapsed, 3),
              "exit_code": process.returncode, "command": " ".join(command[1:])}
    counterexample = parse_crosshair(stdout or "", process.returncode)
    if counterexample is not None:
        result.update(found=True, seconds=found_at[0] if found_at else elapsed,
                      counterexample=counterexample)
    else:
        result.update(found=False, seconds=None,
                      verdict=f"no verdict in {timeout:g} s",
                      output=(stdout or "").strip()[-300:])
    return result


def speedup(kconform: dict, other: dict, limit: float | None = None) -> tuple[float | None, bool]:
    """(other time / kconform time, is_lower_bound)."""
    if not kconform.get("found") or not kconform.get("seconds"):
        return None, False
    if other.get("found") and other.get("seconds"):
        return other["seconds"] / kconform["seconds"], False
    if limit:
        return limit / kconform["seconds"], True
    return None, False


def describe(result: dict) -> str:
    if result.get("found"):
        size = result.get("counterexample", {}).get("size_bits")
        return f"found, {seconds(result['seconds'])}, {size} bits"
    if result.get("verdict"):
        return result["verdict"]
    return "no difference found"


def measure(settings: S.Settings, context: dict) -> tuple[dict, list[dict]]:
    data, rows = {"pairs": []}, []
    try:
        from harness import check  # noqa: F401
        pairs.version_set("base")
    except ImportError as exc:
        rows.append(not_available(SECTION, "kconform vs Hypothesis vs CrossHair",
                                  f"engine not importable: {exc}",
                                  target=f"≥ {S.CROSSHAIR_SPEEDUP:.0f}x faster than CrossHair"))
        return {"available": False}, rows
    crosshair_missing = crosshair_available()
    ratios = []
    for label, first, second, before, after in pairs.PAIRS:
        item = {"pair": label}
        try:
            item["kconform"] = kconform_pair(before, after, settings.repeats)
        except (ImportError, KeyError, FileNotFoundError) as exc:
            rows.append(not_available(SECTION, label, f"{type(exc).__name__}: {exc}"))
            data["pairs"].append({**item, "error": str(exc)})
            continue
        item["hypothesis"] = hypothesis_pair(first, second, settings.hypothesis_runs)
        if crosshair_missing:
            item["crosshair"] = {"tool": "crosshair", "found": False,
                                 "verdict": "not available", "reason": crosshair_missing}
        else:
            item["crosshair"] = crosshair_pair(first, second, settings.crosshair_timeout)
        k, h, c = item["kconform"], item["hypothesis"], item["crosshair"]
        over_h = h["seconds"] / k["seconds"] if k.get("found") and k.get("seconds") else None
        over_c, bound = speedup(k, c, None if crosshair_missing else settings.crosshair_timeout)
        item["speedup_over_hypothesis"] = over_h
        item["speedup_over_crosshair"] = over_c
        item["speedup_over_crosshair_is_lower_bound"] = bound
        data["pairs"].append(item)
        first_note = ""
        if k.get("first_counterexample"):
            first_note = (f", first counterexample after {k['first_counterexample']['examples']} "
                          f"cases ({seconds(k['first_counterexample']['seconds'])})")
        hyp = (f"Hypothesis found the difference in {h['found_in']} of {len(h['runs'])} runs "
               f"(100 examples each), median time {seconds(h['seconds'])} over all runs"
               + (f", median {h['examples_to_first_median']:g} examples to the first failure, "
                  f"counterexample {h['size_bits_median']:g} bits (median)"
                  if h.get("examples_to_first_median") is not None else ""))
        cross = f"CrossHair {describe(c)}"
        if c.get("found"):
            cross += f" (process {seconds(c['process_seconds'])})"
        rows.append(row(SECTION, f"{FUNCTION} {label}: kconform",
                        describe(k) if k.get("found") else "no difference found",
                        note=f"{k['cases']:,} {k['mode']} cases, median of {settings.repeats}"
                             f"{first_note}"))
        partial = "" if h["found"] else f" (found in {h['found_in']}/{len(h['runs'])} runs)"
        rows.append(row(SECTION, f"{label}: vs plain Hypothesis", ratio(over_h) + partial,
                        note=hyp + "; ratio = Hypothesis time / kconform time"))
        if crosshair_missing:
            rows.append(not_available(SECTION, f"{label}: vs CrossHair", crosshair_missing,
                                      target=f"≥ {S.CROSSHAIR_SPEEDUP:.0f}x"))
            continue
        shown = ("≥ " if bound else "") + ratio(over_c)
        met = over_c is not None and over_c >= S.CROSSHAIR_SPEEDUP and k.get("found")
        rows.append(against(SECTION, f"{label}: vs CrossHair", shown, bool(met),
                            f"≥ {S.CROSSHAIR_SPEEDUP:.0f}x",
                            cross + "; ratio = CrossHair time / kconform time"
                            + (" (CrossHair gave no verdict: lower bound)" if bound else "")))
        if over_c is not None:
            ratios.append((label, over_c, bound, bool(met)))
    data["crosshair_speedups"] = [{"pair": p, "ratio": r, "lower_bound": b, "met": m}
                                  for p, r, b, m in ratios]
    if ratios and not crosshair_missing:
        slowest = min(ratios, key=lambda item: item[1])
        rows.append(against(SECTION, "kconform vs CrossHair, every shared pair",
                            f"lowest {'≥ ' if slowest[2] else ''}{ratio(slowest[1])} "
                            f"({slowest[0]})",
                            all(m for _, _, _, m in ratios) and len(ratios) == len(pairs.PAIRS),
                            f"≥ {S.CROSSHAIR_SPEEDUP:.0f}x on every pair",
                            f"{sum(1 for r in ratios if r[3])} of {len(pairs.PAIRS)} pairs "
                            f"met; CrossHair per-condition budget {settings.crosshair_timeout:g} "
                            f"s CPU"))
    return data, rows
