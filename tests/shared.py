"""Helpers the test files share (imported as ``tests.shared``; the fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATCHES = ROOT / "patches"


def gate_json_of_the_bundled_series(json_path: Path) -> bytes:
    """``kconform check --quiet patches --json FILE`` in this process: the bytes written."""
    from harness import cli

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        cli.main(["check", "--quiet", str(PATCHES), "--json", str(json_path)])
    return json_path.read_bytes()
