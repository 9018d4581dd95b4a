"""Verdicts and the machine-readable results document (schema ``kconform/1``).

``Verdict`` is the one ordered verdict enum, spelled one way everywhere.  A
series verdict is the worst of its parts in this order, chosen on purpose:

    SKIP < PASS < WARN < MISS < FAIL < ERROR

- SKIP is lowest: the patch touches no file kconform reads, so there is
  nothing to claim either way; any patch that was checked outranks it, and a
  series is SKIP only when every patch is.  Its own exit code (5) lets a bot
  tell "not applicable" from "passed" without reading the JSON.
- WARN sits above PASS: a tolerant channel changed outside what the message
  states; still exit 0.
- MISS sits above WARN: something was not checked, so nothing is known about
  it; a MISS must never read as success.
- FAIL sits above MISS: evidence of a broken must-hold outweighs a gap.
- ERROR is worst: the input could not be read, so no verdict at all exists.

The results document is deterministic for a given input, profile and seed;
timings and timestamps live in the separate ``run`` record (``run.json``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from enum import IntEnum

from harness import TOOL_NAME, __version__
from harness.errors import ExitCode

SCHEMA = "kconform/1"


class Verdict(IntEnum):
    SKIP = 0
    PASS = 1
    WARN = 2
    MISS = 3
    FAIL = 4
    ERROR = 5

    @classmethod
    def worst(cls, verdicts) -> "Verdict":
        return max(verdicts, default=cls.PASS)


EXIT_CODES = {
    Verdict.SKIP: ExitCode.SKIP,
    Verdict.PASS: ExitCode.PASS,
    Verdict.WARN: ExitCode.PASS,
    Verdict.MISS: ExitCode.MISS,
    Verdict.FAIL: ExitCode.FAIL,
    Verdict.ERROR: ExitCode.ERROR,
}


def exit_code_for(verdict: Verdict) -> ExitCode:
    return EXIT_CODES[verdict]


def patch_verdict(*, error: bool, hunks_covered: list[bool], severities: list[str],
                  hunks_read: list[bool] | None = None) -> Verdict:
    """PASS only when every hunk is covered and nothing fell short; SKIP when no
    hunk touches a file kconform reads (``hunks_read``)."""
    if error:
        return Verdict.ERROR
    if hunks_read is not None and hunks_read and not any(hunks_read):
        return Verdict.SKIP
    if "FAIL" in severities:
        return Verdict.FAIL
    if not all(hunks_covered) or not hunks_covered:
        return Verdict.MISS
    if "WARN" in severities:
        return Verdict.WARN
    return Verdict.PASS


def to_jsonable(value):
    """Dataclasses, tuples, enums and sets as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not f.name.startswith("_")}
    if isinstance(value, Verdict):
        return value.name
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(to_jsonable(v) for v in value)
    return value


def dumps(document: dict) -> str:
    """Canonical JSON text: sorted keys, fixed indentation, trailing newline."""
    return json.dumps(to_jsonable(document), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_atomic(path: str, text: str | bytes) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename.

    A reader sees the old file or the new one, never half of either.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(prefix=".kconform-", suffix=".tmp", dir=directory)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)     # mkstemp makes 0600; reports are for reading
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def document(patches: list[dict], *, profile: str, seed: int, checks: list[str],
             net: dict | None, seed_drawn: bool = False,
             preexisting: list[dict] | None = None, ignored: list[dict] = ()) -> dict:
    """The top-level results document; ``ignored`` lists the directory entries not read."""
    verdicts = [Verdict[p["verdict"]] for p in patches if not p.get("is_cover")]
    if net is not None:
        verdicts.append(Verdict[net["verdict"]])
    worst = Verdict.worst(verdicts) if verdicts else Verdict.MISS
    return {
        "schema": SCHEMA,
        "tool": {"name": TOOL_NAME, "version": __version__},
        "profile": profile,
        "seed": seed,
        "seed_drawn": seed_drawn,
        "checks": list(checks),
        "verdict": worst.name,
        "exit_code": int(exit_code_for(worst)),
        "patches": patches,
        "net": net,
        "preexisting": list(preexisting or ()),
        "ignored": list(ignored),
    }
