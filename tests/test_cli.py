"""The command line end to end: exit codes, determinism, interruption, pytest plugin."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from harness import cli
from harness.errors import ExitCode
from tests.shared import BUNDLED_SERIES

ROOT = Path(__file__).resolve().parent.parent
PATCHES = ROOT / "patches"
BAD = ROOT / "tests" / "data" / "bad"


def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_usage_errors_are_one_line_exit_2(capsys):
    for argv in ([], ["check"], ["check", "no/such/file.patch"], ["frobnicate"],
                 ["check", str(PATCHES / "rfc-4-of-4.patch"), "--checks", "no_such_check"],
                 ["check", str(PATCHES / "rfc-4-of-4.patch"), "--profile", "fast"]):
        code, out, err = run(capsys, *argv)
        assert code == ExitCode.ERROR, argv
        assert "Traceback" not in err
        assert err.startswith("kconform: error:") and len(err.strip().splitlines()) == 1, err


def test_bad_replay_token_is_a_clear_error(capsys):
    code, _, err = run(capsys, "replay", "not-a-token")
    assert code == ExitCode.ERROR
    assert err.startswith("kconform: error:") and "Traceback" not in err


def test_checks_lists_names(capsys):
    from harness.check import checks
    code, out, _ = run(capsys, "checks")
    assert code == ExitCode.PASS
    assert all(name in out for name in checks.names())


def test_exit_code_follows_the_worst_verdict(capsys, tmp_path):
    code, out, _ = run(capsys, "check", "--quiet", BAD / "mmu-unmodelled-function.patch")
    assert code == ExitCode.MISS and out.startswith("MISS")
    code, out, _ = run(capsys, "check", "--quiet", BAD / "unmodelled-file.patch")
    assert code == ExitCode.SKIP and out.startswith("SKIP")
    code, _, _ = run(capsys, "check", "--quiet", BAD / "empty.patch")
    assert code == ExitCode.ERROR
    code, _, _ = run(capsys, "check", "--quiet", BAD / "empty.patch",
                     BAD / "mmu-unmodelled-function.patch", "--json", tmp_path / "r.json")
    results = json.loads((tmp_path / "r.json").read_text())
    assert code == ExitCode.ERROR and results["verdict"] == "ERROR"
    assert sorted(p["verdict"] for p in results["patches"]) == ["ERROR", "MISS"]


@pytest.mark.xdist_group(BUNDLED_SERIES)
def test_gate_results_are_byte_identical_across_runs(bundled_gate_json, tmp_path):
    """The bundled series checked three times: this process's first run (the session's,
    shared), a second run in this same process (whatever a run leaves behind in the
    process must not change the next one) and a fresh process with another hash seed
    (set and dict order must not leak into the output).  The fresh process runs while
    this one reruns, so the test costs one run's wall time on top of the shared one."""
    from tests.shared import gate_json_of_the_bundled_series

    fresh = tmp_path / "fresh.json"
    seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "check", "--quiet", "patches", "--json", str(fresh)],
        cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": seed},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        again = gate_json_of_the_bundled_series(tmp_path / "again.json")
    finally:
        _, err = process.communicate(timeout=900)
    assert "Traceback" not in err, err
    first = bundled_gate_json
    assert again == first
    assert fresh.read_bytes() == first
    results = json.loads(first)
    assert results["profile"] == "gate" and b"elapsed" not in first
    assert [p["series"]["index"] for p in results["patches"]] == [0, 1, 2, 3, 4]


def _previous_report(directory: Path) -> dict[str, bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    files = {"index.html": b"<p>previous report</p>", "results.json": b'{"previous": true}'}
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return files


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_keeps_the_previous_report(tmp_path, signum):
    report = tmp_path / "reports"
    previous = _previous_report(report)
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "check", str(PATCHES), "--report-dir", str(report)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stderr.readline()          # "checking ..." once the first patch starts
    assert first.startswith("checking"), first
    time.sleep(1)
    process.send_signal(signum)
    out, rest = process.communicate(timeout=60)
    err = first + rest
    assert process.returncode == ExitCode.INTERRUPTED, (out, err)
    assert "interrupted" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in report.iterdir()} == previous


def test_model_exception_keeps_the_previous_report(capsys, tmp_path, monkeypatch):
    from harness.check import engine as check
    def broken(*args, **kwargs):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(check, "check_patch", broken)
    report = tmp_path / "reports"
    previous = _previous_report(report)
    code, out, err = run(capsys, "check", PATCHES / "rfc-4-of-4.patch", "--report-dir", report)
    assert code == ExitCode.INTERRUPTED
    assert "internal error" in err and "model exploded" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in report.iterdir()} == previous


def test_report_dir_gets_every_output(capsys, tmp_path):
    report = tmp_path / "reports"
    code, _, _ = run(capsys, "check", "--quiet", PATCHES / "rfc-4-of-4.patch", "--report-dir",
                     report, "--junit", tmp_path / "junit.xml")
    assert code in (ExitCode.PASS, ExitCode.FAIL, ExitCode.MISS)
    names = {p.name for p in report.iterdir()}
    assert {"index.html", "results.json", "run.json", "results.junit.xml", "kcidb.json",
            "patchwork.json", "summary.txt"} <= names
    assert not [n for n in names if n.startswith(".kconform-")]    # no temp file left
    assert (tmp_path / "junit.xml").read_text().startswith("<?xml")


def _plugin_args():
    registered = any(ep.name == "kconform" for ep in entry_points(group="pytest11"))
    return [] if registered else ["-p", "harness.pytest_plugin"]


@pytest.mark.parametrize("name", ["rfc-2-of-4.patch", "rfc-4-of-4.patch"])
def test_pytest_plugin_agrees_with_the_cli(name, pytester):
    """The plugin is an adapter: its outcome must be the CLI's, whatever that is.  The
    plugin runs in this process (a pytest session of its own, as ``pytest PATCH`` starts
    it), so both sides share what one run of the engine leaves for the next; running it
    from the command line in a fresh process is test_ci's."""
    from harness import pipeline
    results, _ = pipeline.check_paths([str(PATCHES / name)],
                                      pipeline.RunOptions(series_net=False))
    entry = results["patches"][0]
    fails = [f for f in entry["findings"] if f["severity"] == "FAIL"]
    misses = [h for h in entry["hunks"] if not h["covered"]]
    done = pytester.runpytest_inprocess(*_plugin_args(), "-q", "-p", "no:cacheprovider",
                                        "-W", "ignore", "--rootdir", str(PATCHES),
                                        str(PATCHES / name))
    out = done.stdout.str()
    assert done.ret == (1 if fails or misses else 0), out
    assert ("Reproduce with:" in out) == bool(fails), out
    assert "Traceback" not in out and "AttributeError" not in out


def test_pytest_plugin_misses_are_failures_never_passes():
    process = subprocess.run(
        [sys.executable, "-m", "pytest", *_plugin_args(), "-q", "-p", "no:cacheprovider",
         "--rootdir", str(BAD), str(BAD / "mmu-unmodelled-function.patch")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert process.returncode == 1, process.stdout
    assert "MISS" in process.stdout


def test_a_hostile_patch_renders_as_text_end_to_end(capsys, tmp_path):
    """Subject, From, Message-ID and hunk text with markup, quotes and odd Unicode."""
    from html.parser import HTMLParser

    report = tmp_path / "reports"
    code, _, err = run(capsys, "check", "--quiet", ROOT / "tests/data/hostile/hostile.patch",
                       "--report-dir", report)
    assert code == ExitCode.SKIP and "Traceback" not in err     # x86.c: not kconform's
    html = (report / "index.html").read_text()

    class Elements(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags = []

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, dict(attrs)))

    parser = Elements()
    parser.feed(html)
    assert not [t for t, _ in parser.tags if t in ("script", "img", "iframe", "object")]
    assert not [a for _, attrs in parser.tags for a in attrs if a.startswith("on")]
    assert "&lt;script&gt;" in html
    import xml.etree.ElementTree as ET

    junit = ET.parse(report / "results.junit.xml").getroot()     # well-formed despite the input
    assert any("<script>" in (case.get("name") or "") + (case.get("classname") or "")
               or "<script>" in ET.tostring(case, encoding="unicode")
               for case in junit.iter("testcase")) or "&lt;script&gt;" in (
        report / "results.junit.xml").read_text()
    for name in ("patchwork.json", "kcidb.json"):
        json.loads((report / name).read_text())
