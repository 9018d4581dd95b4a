"""What a review bot and its CI see, from the outside: the CLI and pytest as a user runs them.

Inputs are the files under ``tests/data/ci/`` (and the bundled patches); each
property is asserted both ways: the input that must pass it, and the one that
must not.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli
from harness.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "ci"
PATCHES = ROOT / "patches"
GOOD = "0003-skip-unsync-leaf.patch"


def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def pytest_run(*args, cwd):
    """pytest in a fresh process, as a user types it (the plugin through its entry point)."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-W", "ignore", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


# --- 1. nothing silently dropped -------------------------------------------


def test_a_directory_with_an_empty_and_a_corrupt_patch_is_an_error_naming_both(
        capsys, tmp_path):
    code, out, err = run(capsys, "check", DATA / "dropped", "--json", tmp_path / "r.json")
    assert code == ExitCode.ERROR
    assert "0001-empty.patch: the file is empty" in err
    assert "0002-corrupt.patch:1: the input holds NUL bytes" in err
    results = json.loads((tmp_path / "r.json").read_text())
    verdicts = {Path(p["path"]).name: p["verdict"] for p in results["patches"]}
    assert verdicts == {"0001-empty.patch": "ERROR", "0002-corrupt.patch": "ERROR",
                        GOOD: "PASS"}
    ignored = {Path(row["path"]).name: row["reason"] for row in results["ignored"]}
    assert sorted(ignored) == ["download.log", "notes.md"]
    assert "not a patch file name" in ignored["notes.md"]
    assert "ignored" in err and "notes.md" in err


def test_the_good_patch_alone_passes(capsys, tmp_path):
    """Twin: without the two bad files the same directory passes, so the ERROR is theirs."""
    shutil.copy(DATA / "dropped" / GOOD, tmp_path)
    shutil.copy(DATA / "dropped" / "notes.md", tmp_path)
    code, out, err = run(capsys, "check", tmp_path, "--quiet")
    assert code == ExitCode.PASS, out + err
    assert "ERROR" not in out


def test_report_dir_run_record_lists_what_was_ignored(capsys, tmp_path):
    code, _, _ = run(capsys, "check", DATA / "dropped", "--quiet", "--report-dir", tmp_path)
    assert code == ExitCode.ERROR
    run_record = json.loads((tmp_path / "run.json").read_text())
    assert sorted(Path(r["path"]).name for r in run_record["ignored"]) == [
        "download.log", "notes.md"]


def test_the_pytest_plugin_fails_on_the_empty_and_the_corrupt_patch(tmp_path):
    shutil.copytree(DATA / "dropped", tmp_path / "dropped")
    done = pytest_run("dropped", cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert "0001-empty.patch::input" in done.stdout and "the file is empty" in done.stdout
    assert "0002-corrupt.patch::input" in done.stdout and "NUL bytes" in done.stdout
    assert "Traceback" not in done.stdout
    for name in ("0001-empty.patch", "0002-corrupt.patch"):
        (tmp_path / "dropped" / name).unlink()
    again = pytest_run("dropped", cwd=tmp_path)
    assert again.returncode == 0, again.stdout


# --- 4. series grouping as the list threads them -----------------------------


def test_two_unrelated_1_of_4_replying_to_different_covers_are_two_series(capsys, tmp_path):
    code, out, err = run(capsys, "check", DATA / "two-series", "--json", tmp_path / "r.json")
    results = json.loads((tmp_path / "r.json").read_text())
    verdicts = {Path(p["path"]).name: p["verdict"] for p in results["patches"]}
    assert "ERROR" not in verdicts.values(), err
    assert verdicts["a-1-of-4.patch"] == "PASS"
    assert sorted(verdicts) == ["a-1-of-4.patch", "b-1-of-4.patch"]
    assert "two different patches" not in err


def test_two_senders_without_threading_headers_are_two_series(capsys, tmp_path):
    code, out, err = run(capsys, "check", DATA / "two-senders", "--json", tmp_path / "r.json")
    results = json.loads((tmp_path / "r.json").read_text())
    assert [p["verdict"] for p in results["patches"]] != ["ERROR"]
    assert sorted(Path(p["path"]).name for p in results["patches"]) == [
        "alice-1-of-2.patch", "bob-1-of-2.patch"]
    assert not any(p["error"] for p in results["patches"])


def test_parts_of_one_series_still_come_together(capsys, tmp_path):
    """Twin: the bundled series (cover, three mails and a web copy without threading
    headers) is still one series in index order."""
    from harness.ingest import patches as ingest

    patches = ingest.read_paths([str(PATCHES)])
    assert [p.series.index for p in patches] == [0, 1, 2, 3, 4]
    assert len({p.series_group for p in patches}) == 1
