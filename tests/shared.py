"""Helpers the test files share (imported as ``tests.shared``; the fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATCHES = ROOT / "patches"


# The tests that read the bundled series' gate run (the session fixture ``bundled_gate_json``)
# carry this xdist group, so ``pytest -n auto --dist loadgroup`` runs them in one worker and the
# series is checked once for all of them instead of once per worker that draws one.
BUNDLED_SERIES = "bundled-series"


def gate_json_of_the_bundled_series(json_path: Path) -> bytes:
    """``kconform check --quiet patches --json FILE`` from the repository root, in this
    process, as the README runs it (paths in the results read ``patches/...``): the bytes
    written."""
    from harness import cli

    here = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            cli.main(["check", "--quiet", "patches", "--json", str(json_path)])
    finally:
        os.chdir(here)
    return json_path.read_bytes()


def make_tree(path: Path, files: dict[str, str]) -> Path:
    """A one-commit git tree at ``path`` holding ``files`` (name -> text)."""
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-q", "-m", "c"], check=True)
    return path
