"""The audit of one tag against the hand-written models, as a table for bench/results.

    python bench/audit_table.py [--tree /tmp/ktree] [--tag v6.9] [--state base]

Runs what ``kconform audit --kernel-tree TREE --rev TAG`` runs (the whole-tree
translation, the behaviour of every modelled function that translates on the
exhaustive domain, the statement comparison) and writes
``bench/results/audit-<tag>.md``: per file the blob read and the one the
models mirror; every function both have with its behavioural outcome (cases
run) and statement outcome; the listed simplifications with their reasons;
the functions whose inputs are not drawn, by reason.  Notes below the line
``KEPT`` in an existing file are kept.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.check import fidelity  # noqa: E402
from harness.resolve.kernel_tree import open_tree  # noqa: E402
from harness.translate import audit, audit_rules, translate_tree  # noqa: E402
from kernel_models import simplifications  # noqa: E402
from kernel_models.registry import VersionSet  # noqa: E402


KEPT = "<!-- hand-written below: kept when the table is rewritten -->"


def short(file: str) -> str:
    return file.rsplit("/", 1)[-1]


def table(tree_path: str, tag: str, state_name: str) -> str:
    tree = open_tree(tree_path)
    state = translate_tree(tree, tag)
    models = VersionSet.series_state(state_name)
    started = time.perf_counter()
    behaviour = {r.function: r for r in fidelity.compare_state(state, models)}
    behaviour_s = time.perf_counter() - started
    statements = {r.function: r for r in audit.audit_tree(tree, tag, state_name)}
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    out = [f"# Audit at {tag} against the models of '{state_name}'", "",
           f"`python bench/audit_table.py --tag {tag}` ({datetime.date.today()}, commit "
           f"{commit}); the same as `kconform audit --kernel-tree TREE --rev {tag}`.", "",
           "## Files", "", "| file | blob at the tag, and the models' |", "|---|---|"]
    seen = {}
    for row in statements.values():
        seen.setdefault(row.file, row.blobs)
    out += [f"| {short(f)} | {note} |" for f, note in sorted(seen.items())]

    both = sorted(set(behaviour) | {n for n, r in statements.items()
                                    if r.outcome != audit.ABSENT})
    ran = [n for n in both if n in behaviour and behaviour[n].cases]
    counts = {o: sum(behaviour[n].outcome == o for n in ran) for o in
              (fidelity.EQUAL, fidelity.DIFFERS, fidelity.NOT_RUN)}
    stmt = {o: sum(r.outcome == o for r in statements.values()) for o in audit.OUTCOMES}
    out += ["", "## Summary", "",
            f"- behaviour on the exhaustive domain (every SPTE mode): {len(ran)} functions run, "
            + ", ".join(f"{n} {o}" for o, n in counts.items())
            + f" ({sum(behaviour[n].cases for n in ran):,} cases, {behaviour_s:.0f} s)",
            f"- not drawn (state the domain does not build): "
            f"{sum(r.outcome == fidelity.NO_DRIVER for r in behaviour.values())}",
            "- statement comparison: " + ", ".join(f"{n} {o}" for o, n in stmt.items()), "",
            "## Every function both have", "",
            "| function | file | behaviour | cases | statements |", "|---|---|---|---|---|"]
    for name in both:
        b, s = behaviour.get(name), statements.get(name)
        file = short((b or s).file)
        outcome = b.outcome if b else "untranslated" if s and s.outcome == audit.UNTRANSLATED \
            else "-"
        out.append(f"| `{name}` | {file} | {outcome} | {b.cases if b and b.cases else ''} | "
                   f"{s.outcome if s else '-'} |")
    problems = [r for r in behaviour.values() if r.outcome in (fidelity.DIFFERS, fidelity.NOT_RUN)]
    if problems:
        out += ["", "## Not equal in behaviour", ""]
        out += [f"- `{r.function}` {r.outcome}: {r.detail.splitlines()[0]}" for r in problems]
    out += ["", "## Listed simplifications (kernel_models/simplifications.py)", ""]
    for row in simplifications.SIMPLIFICATIONS:
        found = statements.get(row.function)
        out.append(f"- `{row.function}` ({short(row.file)}; here: "
                   f"{found.outcome if found else 'not compared'}): {row.reason}")
    out += ["", "## Equivalence rules of the statement comparison (harness/translate/"
            "audit_rules.py)", ""]
    out += [f"- {name}: {reason}" for name, reason in audit_rules.RULES]
    undrawn: dict[str, list[str]] = {}
    for r in behaviour.values():
        if r.outcome == fidelity.NO_DRIVER:
            undrawn.setdefault(r.detail, []).append(r.function)
    out += ["", "## Not drawn, by reason (compared by statements and the operation mix only)", ""]
    for reason, names in sorted(undrawn.items(), key=lambda item: (-len(item[1]), item[0])):
        out.append(f"- {reason} ({len(names)}): {', '.join(f'`{n}`' for n in names)}")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", default="/tmp/ktree")
    parser.add_argument("--tag", default="v6.9")
    parser.add_argument("--state", default="base")
    args = parser.parse_args()
    text = table(args.tree, args.tag, args.state)
    target = ROOT / "bench" / "results" / f"audit-{args.tag}.md"
    old = target.read_text() if target.exists() else ""
    if KEPT in old:                     # notes a reviewer wrote below the generated table
        text += "\n" + KEPT + old.split(KEPT, 1)[1]
    target.write_text(text)
    print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
