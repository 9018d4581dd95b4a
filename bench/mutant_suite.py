"""The mutant suite (tests/mutants/): kill rate in ``gate``, and how soon each
mutant's counterexample comes.

Each ``mNN-*.patch`` is an RFC patch with one thing broken and must be
caught; each ``eNN-*.patch`` is an RFC patch written differently with the
same behaviour and must pass.  Most are plain patch files whose after-model
the resolver derives from the hunks; ``tests/mutants/models.py`` registers
hand-written bodies for the few derive cannot do and names, per mutant, the
check and channel expected to catch it.

A mutant is *killed* when its check has a FAIL or WARN finding; it is
*caught as expected* when one of those findings comes from the named check
on the named channel.  "Examples until the counterexample" counts
function-level cases (in the engine's fixed order) or, at operation level,
the sequences of the Hypothesis search that found it (shrinking included),
as the probe saw them.
"""

from __future__ import annotations

import json
import os
import statistics
import time

from bench import pairs, settings as S
from bench.probe import Probe
from bench.table import against, not_available, row, seconds
from bench.timing import repeat

SECTION = "mutants"


def mutant_files(directory: str) -> list[str]:
    if not os.path.isdir(directory):
        return []
    return sorted(name for name in os.listdir(directory)
                  if name.endswith(".patch") and name[:1] in "me")


def real_patch_for(path: str) -> str | None:
    """The bundled RFC patch an equivalent rewrites: the one with the same mail headers."""
    with open(path) as handle:
        head = handle.read().split("\n", 12)[:12]
    patches = os.path.join(S.ROOT, "patches")
    for name in sorted(os.listdir(patches)):
        if not os.path.isfile(os.path.join(patches, name)):
            continue          # e.g. patches/later/: later revisions, not the RFC series
        with open(os.path.join(patches, name)) as handle:
            if handle.read().split("\n", 12)[:12] == head:
                return os.path.join(patches, name)
    return None


def check_one(path: str, repeats: int, budget_s: float | None) -> dict:
    from harness.pipeline import RunOptions, check_paths

    probes = []

    def once():
        with Probe() as probe:
            results, _ = check_paths([path], RunOptions(profile="gate"))
        probes.append(probe)
        return results

    timing = repeat(once, repeats, budget_s)
    results = timing.value
    patches = [p for p in results.get("patches", []) if not p.get("is_cover")]
    findings = [f for p in patches for f in p.get("findings") or []]
    errors = [p["error"]["message"] for p in patches if p.get("error")]
    probe = probes[-1]
    reasons = [(p.get("versions") or {}).get("reason") or "" for p in patches]
    return {"verdict": results.get("verdict"), **timing.as_dict(),
            "route": "derived" if any("after-model derived" in r for r in reasons) else
                     "hand-written or real",
            "findings": [{"check": f.get("check"), "channel": f.get("channel"),
                          "severity": f.get("severity"), "summary": f.get("summary")}
                         for f in findings],
            "errors": errors,
            "first": probe.first if probe.available else None,
            "probe": probe.available or probe.reason}


def measure(settings: S.Settings, context: dict) -> tuple[dict, list[dict]]:
    rows = []
    names = mutant_files(settings.mutants_dir)
    target = "100% killed"
    if not names:
        rows.append(not_available(SECTION, "mutant kill rate, gate",
                                  f"no mutant patches in {os.path.relpath(settings.mutants_dir, S.ROOT)}",
                                  target=target))
        return {"available": False}, rows
    try:
        from harness import pipeline  # noqa: F401
        models = pairs.load_mutant_models()
    except (ImportError, FileNotFoundError, AttributeError) as exc:
        rows.append(not_available(SECTION, "mutant kill rate, gate", f"{type(exc).__name__}: {exc}",
                                  target=target))
        return {"available": False}, rows
    expected_table = getattr(models, "MUTANTS", {})
    mutants = [n for n in names if n.startswith("m")]
    equivalents = [n for n in names if n.startswith("e")]
    if settings.mutant_limit is not None:
        mutants = mutants[:settings.mutant_limit]
        equivalents = equivalents[:max(1, settings.mutant_limit // 2)]
    results = {}
    for name in mutants + equivalents:
        item = check_one(os.path.join(settings.mutants_dir, name), settings.repeats,
                         settings.repeat_budget_s)
        expected = expected_table.get(name)
        item["expected"] = list(expected) if expected else None
        flagged = [f for f in item["findings"] if f["severity"] in ("FAIL", "WARN")]
        item["killed"] = bool(flagged)
        item["caught_as_expected"] = bool(expected) and any(
            (f["check"], f["channel"]) == tuple(expected) for f in flagged)
        results[name] = item

    killed = [n for n in mutants if results[n]["killed"]]
    as_expected = [n for n in mutants if results[n]["caught_as_expected"]]
    # An equivalent behaves like the RFC patch it rewrites, so it may (and must) raise
    # what that patch raises; a false alarm is a finding the real patch does not have.
    real_findings = {}
    for name in equivalents:
        real = real_patch_for(os.path.join(settings.mutants_dir, name))
        if real not in real_findings:
            real_findings[real] = check_one(real, 1, None)["findings"] if real else []
        keys = {(f["check"], f["channel"], f["severity"]) for f in results[name]["findings"]}
        base = {(f["check"], f["channel"], f["severity"]) for f in real_findings[real]}
        results[name]["real_patch"] = os.path.relpath(real, S.ROOT) if real else None
        results[name]["new_findings"] = sorted(keys - base)
    false_alarms = [n for n in equivalents if results[n]["new_findings"]]
    firsts = [results[n]["first"] for n in killed if results[n].get("first")]
    data = {"mutants": len(mutants), "equivalents": len(equivalents), "killed": killed,
            "caught_as_expected": as_expected, "false_alarms": false_alarms,
            "results": results, "limited_to": settings.mutant_limit}
    survivors = [n for n in mutants if n not in killed]
    scope = "" if settings.mutant_limit is None else f" (first {len(mutants)} only: --quick)"
    rows.append(against(SECTION, f"mutants killed, gate{scope}",
                        f"{len(killed)} / {len(mutants)}",
                        bool(mutants) and not survivors, target,
                        ("survivors: " + ", ".join(survivors)) if survivors else
                        f"{len(as_expected)} / {len(mutants)} caught by the expected check and "
                        f"channel"))
    rows.append(row(SECTION, "equivalents without a false alarm",
                    f"{len(equivalents) - len(false_alarms)} / {len(equivalents)}",
                    status="" if not false_alarms else "false alarm",
                    note=("flagged: " + ", ".join(false_alarms)) if false_alarms else
                    "an equivalent may only raise what its real RFC patch raises; none raised "
                    "more"))
    if firsts:
        examples = statistics.median(f["examples"] for f in firsts)
        when = statistics.median(f["seconds"] for f in firsts)
        data["median_examples_to_counterexample"] = examples
        data["median_seconds_to_counterexample"] = when
        rows.append(row(SECTION, "median examples until counterexample", f"{examples:g}",
                        note=f"over {len(firsts)} killed mutants; function-level cases or "
                             f"operation sequences, whichever found it first"))
        rows.append(row(SECTION, "median time until counterexample", seconds(when),
                        note="from the start of the patch check to the first finding"))
    elif killed:
        rows.append(not_available(SECTION, "median examples / time until counterexample",
                                  "the probe could not see the engine's first finding"))
    unseen_data, unseen_rows = measure_unseen(settings)
    data["unseen"] = unseen_data
    rows.extend(unseen_rows)
    verdict_times = [results[n]["median_s"] for n in mutants]
    if verdict_times:
        rows.append(row(SECTION, "median time to verdict per mutant patch",
                        seconds(statistics.median(verdict_times)),
                        note=f"whole gate check of each mutant patch, median of up to "
                             f"{settings.repeats} runs each (fewer past "
                             f"{settings.repeat_budget_s:g} s)"))
    for name in mutants + equivalents:
        item = results[name]
        first = item.get("first")
        how = (f"first counterexample after {first['examples']} {first['level']}-level "
               f"examples ({seconds(first['seconds'])})") if first else ""
        found = ", ".join(sorted({f"{f['check']}/{f['channel']}" for f in item["findings"]}))
        note = "; ".join(x for x in (f"after-model {item['route']}",
                                     f"findings: {found}" if found else "no findings", how,
                                     "; ".join(item["errors"])) if x)
        rows.append(row(SECTION, name.removesuffix(".patch"),
                        f"{item['verdict']} in {seconds(item['median_s'])}", note=note))
    return data, rows


# ---------------------------------------------------------------------------
# Unseen mutants: new subjects and messages, so no written contract applies
# ---------------------------------------------------------------------------

def unseen_files(directory: str) -> list[tuple[str, dict]]:
    """(patch name, its .expect data) for every patch in tests/mutants/unseen/."""
    if not os.path.isdir(directory):
        return []
    out = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".patch"):
            with open(os.path.join(directory, name[:-len(".patch")] + ".expect")) as handle:
                out.append((name, json.load(handle)))
    return out


def measure_unseen(settings: S.Settings) -> tuple[dict, list[dict]]:
    """Each unseen mutant must be caught on its channel (FAIL or WARN, not inherited);
    each equivalent must get no finding at all.  The suite's wall time is one gate
    check per patch, run one after another as a reviewer's CI would."""
    directory = os.path.join(settings.mutants_dir, "unseen")
    entries = unseen_files(directory)
    if not entries:
        return {"available": False}, [not_available(SECTION, "unseen mutants caught, gate",
                                                    "no tests/mutants/unseen/", target="100%")]
    if settings.mutant_limit is not None:
        entries = entries[:settings.mutant_limit]
    results = {}
    started = time.perf_counter()
    for name, expect in entries:
        item = check_one(os.path.join(directory, name), 1, None)
        flagged = [f for f in item["findings"] if f["severity"] in ("FAIL", "WARN")
                   and "inherited" not in (f["summary"] or "")]
        item["expect"] = expect
        if expect["kind"] == "mutant":
            on_channel = [f for f in flagged if f["channel"] == expect["channel"]]
            item["caught"] = bool(on_channel)
            item["caught_by"] = sorted({f["check"] for f in on_channel})
            item["as_expected"] = expect["check"] in item["caught_by"]
        else:
            item["false_alarm"] = bool(item["findings"])
        results[name] = item
    total = time.perf_counter() - started
    mutants = [n for n, e in entries if e["kind"] == "mutant"]
    equivalents = [n for n, e in entries if e["kind"] != "mutant"]
    caught = [n for n in mutants if results[n]["caught"]]
    expected = [n for n in mutants if results[n]["as_expected"]]
    alarms = [n for n in equivalents if results[n]["false_alarm"]]
    rows = [against(SECTION, "unseen mutants caught on their channel, gate",
                    f"{len(caught)} / {len(mutants)}", len(caught) == len(mutants),
                    "100% caught",
                    ("not caught: " + ", ".join(n for n in mutants if n not in caught))
                    if len(caught) < len(mutants) else
                    f"{len(expected)} / {len(mutants)} by the check their .expect names"),
            row(SECTION, "unseen equivalents without a finding",
                f"{len(equivalents) - len(alarms)} / {len(equivalents)}",
                status="" if not alarms else "false alarm",
                note=("flagged: " + ", ".join(alarms)) if alarms else "none flagged"),
            row(SECTION, "unseen suite, gate, one patch after another", seconds(total),
                note=f"{len(entries)} patches; median "
                     f"{seconds(statistics.median(results[n]['median_s'] for n, _ in entries))}"
                     f" per patch")]
    for name, expect in entries:
        item = results[name]
        found = ", ".join(sorted({f"{f['check']}/{f['channel']}" for f in item["findings"]}))
        if expect["kind"] == "mutant":
            status = (f"caught by {', '.join(item['caught_by'])}" if item["caught"]
                      else "NOT caught")
            note = f"expected {expect['check']}/{expect['channel']}; {status}; findings: {found}"
        else:
            note = f"equivalent; findings: {found or 'none'}"
            if expect.get("known_gap"):
                note += f"; known gap: {expect['known_gap']}"
        rows.append(row(SECTION, name.removesuffix(".patch"),
                        f"{item['verdict']} in {seconds(item['median_s'])}", note=note))
    data = {"patches": len(entries), "mutants": len(mutants), "caught": caught,
            "as_expected": expected, "equivalents": len(equivalents), "false_alarms": alarms,
            "seconds": total, "results": results}
    return data, rows
