"""Ingest + scope time, for the bundled series and for a generated big mbox."""

from __future__ import annotations

import os

from bench import mbox, settings as S
from bench.table import against, not_available, row, seconds
from bench.timing import repeat

SECTION = "ingest"


def read(paths: list[str]) -> list:
    from harness.ingest import patches as ingest
    return [p for p in ingest.read_paths(paths) if not p.is_cover]


def scope_all(patches: list) -> int:
    from harness.ingest import scope
    return sum(len(scope.scope_patch(p)) for p in patches)


def have_scope() -> str | None:
    try:
        from harness.ingest import scope  # noqa: F401
    except ImportError as exc:
        return f"harness/ingest/scope.py has not landed ({exc})"
    return None


def time_input(paths: list[str], repeats: int) -> dict:
    """Ingest alone, scope alone (over ingested patches), and both together."""
    ingest_only = repeat(lambda: read(paths), repeats)
    patches = ingest_only.value
    result = {"patches": len(patches), "ingest": ingest_only.as_dict()}
    missing = have_scope()
    if missing:
        result["scope"] = None
        result["missing"] = missing
        return result
    scope_only = repeat(lambda: scope_all(patches), repeats)
    both = repeat(lambda: scope_all(read(paths)), repeats)
    result.update(hunks=scope_only.value, scope=scope_only.as_dict(), total=both.as_dict(),
                  per_patch_s=round(both.median / max(1, len(patches)), 6))
    return result


def measure(settings: S.Settings, workdir: str) -> tuple[dict, list[dict]]:
    data, rows = {}, []
    try:
        from harness import ingest  # noqa: F401
    except ImportError as exc:
        rows.append(not_available(SECTION, "ingest + scope", f"harness/ingest/patches.py: {exc}"))
        return {"available": False}, rows

    bundled = time_input([settings.patches_dir], settings.repeats)
    data["bundled"] = bundled
    path = os.path.join(workdir, f"series-x{settings.copies}.mbox")
    count = mbox.write_mbox(settings.patches_dir, settings.copies, path)
    big = time_input([path], settings.repeats)
    big["mails"] = count
    big["bytes"] = os.path.getsize(path)
    data["mbox"] = big

    for name, item, label in (("bundled", bundled, "bundled series"),
                              ("mbox", big, f"{big['patches']}-patch mbox")):
        ingest_s = item["ingest"]["median_s"]
        if item.get("scope") is None:
            rows.append(row(SECTION, f"ingest only, {label}", seconds(ingest_s),
                            note=f"median of {settings.repeats}; scope not measured"))
            target = f"≤ {S.MBOX_INGEST_S:.0f} s" if name == "mbox" else ""
            rows.append(not_available(SECTION, f"ingest + scope, {label}", item["missing"],
                                      target=target))
            continue
        total = item["total"]["median_s"]
        measure_name = f"ingest + scope, {label} ({item['patches']} patches, {item['hunks']} hunks)"
        value = f"{seconds(total)} ({seconds(item['per_patch_s'])}/patch)"
        note = (f"median of {settings.repeats} (CPU {seconds(item['total']['cpu_median_s'])}); "
                f"ingest {seconds(ingest_s)}, "
                f"scope {seconds(item['scope']['median_s'])}")
        if name == "mbox" and item["patches"] == 84:
            rows.append(against(SECTION, measure_name, value, total <= S.MBOX_INGEST_S,
                                f"≤ {S.MBOX_INGEST_S:.0f} s", note))
        else:
            rows.append(row(SECTION, measure_name, value, note=note))
    return data, rows
