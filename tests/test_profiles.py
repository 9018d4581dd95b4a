"""Profiles: gate is fixed, deep draws a fresh seed per run and says which (issue 16 item 7)."""

import json
import subprocess
import sys

import pytest

from harness.check import profiles
from harness.errors import UsageError

SMALL = "tests/data/inputs/rst-underline-stripped.txt"   # checks in well under a second


def test_gate_without_a_seed_uses_its_fixed_seed():
    assert profiles.run_seed("gate", None) == (profiles.GATE_SEED, False)


def test_a_given_seed_is_used_as_it_is():
    assert profiles.run_seed("deep", 1234) == (1234, False)
    assert profiles.run_seed("gate", 7) == (7, False)


def test_deep_without_a_seed_draws_a_new_one_each_run():
    seeds = {profiles.run_seed("deep", None) for _ in range(8)}
    assert all(drawn for _, drawn in seeds)
    # eight 32-bit draws all equal would mean the seed is fixed after all
    assert len({seed for seed, _ in seeds}) > 1


def test_an_unknown_profile_is_a_usage_error():
    with pytest.raises(UsageError):
        profiles.run_seed("nightly", None)


def _check(tmp_path, *args):
    out = tmp_path / f"r{len(list(tmp_path.iterdir()))}.json"
    proc = subprocess.run([sys.executable, "-m", "harness", "check", SMALL, "--json", str(out),
                           *args], capture_output=True, text=True)
    return proc, json.loads(out.read_text())


def test_cli_deep_run_prints_and_records_its_drawn_seed(tmp_path):
    first, results = _check(tmp_path, "--profile", "deep")
    second, again = _check(tmp_path, "--profile", "deep")
    assert results["seed_drawn"] and again["seed_drawn"]
    assert results["seed"] != again["seed"]
    seed = results["seed"]
    assert f"seed {seed} (drawn; rerun with --seed {seed})" in first.stdout
    assert f"seed {seed} drawn for this run" in first.stderr


def test_cli_deep_run_with_the_printed_seed_is_that_seed(tmp_path):
    _, results = _check(tmp_path, "--profile", "deep", "--seed", "99")
    assert (results["seed"], results["seed_drawn"]) == (99, False)


def test_cli_gate_run_keeps_seed_zero(tmp_path):
    proc, results = _check(tmp_path)
    assert (results["seed"], results["seed_drawn"]) == (0, False)
    assert "drawn" not in proc.stdout + proc.stderr


def test_plugin_deep_session_reports_its_seed(tmp_path):
    patch = tmp_path / "small.patch"
    patch.write_bytes(open(SMALL, "rb").read())
    proc = subprocess.run([sys.executable, "-m", "pytest", str(patch), "-p", "no:cacheprovider",
                           "--kconform-profile", "deep", "--rootdir", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path)
    line = next(l for l in proc.stdout.splitlines() if l.startswith("kconform: deep profile"))
    seed = int(line.split("seed ")[1].split()[0])
    assert f"--kconform-seed {seed}" in line
