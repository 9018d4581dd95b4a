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


# --- shared: the formats as their consumers define them ----------------------

SCHEMAS = ROOT / "tests" / "data" / "schemas"
JUNIT_XSD_SHA256 = "a1a816f58d1bf95ebabf371994df0b9246dee66ea9572fbec4f9296f1b2c0ff6"


def junit_errors(path: Path) -> list[str]:
    """What junit-10.xsd (the copy pytest's sdist ships) says about a JUnit file."""
    import xmlschema

    schema = xmlschema.XMLSchema(str(SCHEMAS / "junit-10.xsd"))
    return [str(error.reason) for error in schema.iter_errors(str(path))]


def kcidb_errors(data: dict) -> list[str]:
    """What KCIDB's own validation (kcidb-io, schema v5.0) says about a kcidb.json."""
    import jsonschema
    from kcidb_io import schema

    try:
        schema.V5_0.validate_exactly(data)
    except jsonschema.exceptions.ValidationError as error:
        return [error.message]
    return []


PATCHWORK_FIELDS = {"state", "context", "description", "target_url"}
PATCHWORK_STATES = {"pending", "success", "warning", "fail"}     # patchwork Check.STATE_CHOICES


def patchwork_problems(check: dict) -> list[str]:
    """What patchwork's POST /api/patches/{id}/checks/ would refuse in one check."""
    import re
    from urllib.parse import urlsplit

    problems = []
    if check.get("state") not in PATCHWORK_STATES:
        problems.append(f"state {check.get('state')!r}")
    if not re.fullmatch(r"[-a-zA-Z0-9_]{1,255}", str(check.get("context"))):   # SlugField
        problems.append(f"context {check.get('context')!r}")
    url = check.get("target_url")
    if url is not None and (urlsplit(url).scheme not in ("http", "https")
                            or not urlsplit(url).netloc):             # URLField, null=True
        problems.append(f"target_url {url!r}")
    if not isinstance(check.get("description"), str):
        problems.append("description")
    return problems


def check_reports(report_dir: Path) -> dict:
    """Every machine output of a report dir, each validated as its consumer would."""
    assert junit_errors(report_dir / "results.junit.xml") == []
    kcidb = json.loads((report_dir / "kcidb.json").read_text())
    assert kcidb_errors(kcidb) == []
    patchwork = json.loads((report_dir / "patchwork.json").read_text())
    for check in patchwork["checks"]:
        assert patchwork_problems(check) == [], check
    return {"results": json.loads((report_dir / "results.json").read_text()),
            "kcidb": kcidb, "patchwork": patchwork["checks"],
            "junit": (report_dir / "results.junit.xml").read_text(),
            "mail": (report_dir / "summary.txt").read_text(),
            "markdown": (report_dir / "summary.md").read_text(),
            "html": (report_dir / "index.html").read_text()}


# --- 2. out of scope is its own outcome ---------------------------------------


def test_patches_kconform_does_not_read_are_skip_with_exit_5(capsys, tmp_path):
    code, out, err = run(capsys, "check", DATA / "out-of-scope", "--report-dir", tmp_path)
    assert code == ExitCode.SKIP == 5
    reports = check_reports(tmp_path)
    assert [p["verdict"] for p in reports["results"]["patches"]] == ["SKIP", "SKIP"]
    assert reports["results"]["verdict"] == "SKIP" and reports["results"]["exit_code"] == 5
    assert {t["status"] for t in reports["kcidb"]["tests"]} == {"SKIP"}
    assert reports["patchwork"] == []              # a bot posts nothing unless asked
    assert 'type="SKIP"' in reports["junit"] and "<failure" not in reports["junit"]
    assert "not applicable: touches no file kconform reads (x86.c)" in out


def test_patchwork_gets_skip_checks_only_when_asked(capsys, tmp_path):
    code, _, _ = run(capsys, "check", DATA / "out-of-scope", "--quiet", "--report-dir",
                     tmp_path, "--patchwork-skipped")
    assert code == ExitCode.SKIP
    checks = check_reports(tmp_path)["patchwork"]
    assert [c["state"] for c in checks] == ["success", "success"]
    assert all(c["description"].startswith("1/1 SKIP: not applicable") for c in checks)


def test_an_mmu_file_kconform_cannot_model_stays_miss(capsys):
    """Twin: SKIP is only for what kconform does not read; an unmodelled MMU function is MISS."""
    code, out, _ = run(capsys, "check", ROOT / "tests/data/bad/mmu-unmodelled-function.patch")
    assert code == ExitCode.MISS
    assert out.startswith("MISS ")


def test_a_checked_patch_outranks_a_skip(capsys, tmp_path):
    """SKIP is the lowest verdict: a series with one PASS and one SKIP patch is PASS, exit 0."""
    code, out, _ = run(capsys, "check", DATA / "out-of-scope" / "x86-only.patch",
                       DATA / "dropped" / GOOD, "--json", tmp_path / "r.json")
    results = json.loads((tmp_path / "r.json").read_text())
    assert sorted(p["verdict"] for p in results["patches"]) == ["PASS", "SKIP"]
    assert (code, results["verdict"]) == (ExitCode.PASS, "PASS")


def test_the_pytest_plugin_skips_what_kconform_does_not_read(tmp_path):
    shutil.copytree(DATA / "out-of-scope", tmp_path / "in")
    done = pytest_run("-rs", "in", cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    assert "2 skipped" in done.stdout and "touches no file kconform reads" in done.stdout


def test_readme_documents_skip_and_every_exit_code():
    readme = (ROOT / "README.md").read_text()
    for code in ExitCode:
        assert f"| {int(code)} |" in readme, code
    assert "| SKIP |" in readme
    assert "SKIP < PASS < WARN < MISS < FAIL < ERROR" in readme


# --- 3. blame where it belongs --------------------------------------------------


@pytest.fixture(scope="module")
def two_and_three(tmp_path_factory):
    """2/4 (which introduces the refs_balanced failure) and 3/4 (which inherits it).  The
    tests reading it share an xdist group, so one worker checks the pair once."""
    out = tmp_path_factory.mktemp("blame")
    code = cli.main(["check", str(PATCHES / "rfc-2-of-4.patch"),
                     str(PATCHES / "000_e8ee204d4a7b7ba7.txt"), "--quiet", "--report-dir",
                     str(out), "--target-url", "https://ci.example/kconform/7/index.html"])
    return code, check_reports(out)


@pytest.mark.xdist_group("ci-two-and-three")
def test_an_inherited_finding_is_the_introducing_patchs_in_the_json(two_and_three):
    code, reports = two_and_three
    assert code == ExitCode.FAIL
    two, three = [p for p in reports["results"]["patches"] if not p["is_cover"]]
    # 3/4's own finding is the accessed_preserved WARN (an access after aging lost when the
    # mapping is zapped); the inherited refs_balanced finding sets nothing
    assert (two["verdict"], three["verdict"]) == ("FAIL", "WARN")
    assert {f["check"] for f in three["findings"] if not f.get("inherited")} == \
        {"accessed_preserved"}
    (inherited,) = [f for f in three["findings"] if f["check"] == "refs_balanced"]
    assert inherited["inherited"] is True
    assert inherited["blame"]["kind"] == "inherited" and inherited["blame"]["patch"] == "2/4"
    (introduced,) = [f for f in two["findings"] if f["check"] == "refs_balanced"]
    assert introduced["severity"] == "FAIL" and introduced["blame"]["inherited_by"] == ["3/4"]


@pytest.mark.xdist_group("ci-two-and-three")
def test_every_output_labels_the_inherited_finding_and_spares_3_of_4(two_and_three):
    _, reports = two_and_three
    states = {c["description"][:3]: c for c in reports["patchwork"]}
    assert states["2/4"]["state"] == "fail" and states["3/4"]["state"] == "warning"
    assert states["3/4"]["description"].startswith("3/4 WARN: accessed")
    assert "refs_balanced inherited from 2/4" in states["3/4"]["description"]
    assert states["3/4"]["target_url"] == "https://ci.example/kconform/7/index.html#patch-2"
    tests = {t["path"]: t for t in reports["kcidb"]["tests"]}
    assert tests["kconform.patch2.refs_balanced"]["status"] == "PASS"
    assert tests["kconform.patch1.refs_balanced"]["status"] == "FAIL"
    assert "inherited from 2/4" in tests["kconform.patch2.refs_balanced"]["log_excerpt"]
    import xml.etree.ElementTree as ET

    suites = {s.get("name")[:3]: s for s in ET.fromstring(reports["junit"])}
    case = next(c for c in suites["3/4"] if c.get("name") == "refs_balanced")
    assert case.find("failure") is None and "inherited from 2/4" in case.find("system-out").text
    # the mail lists 3/4's own accessed WARN; 2/4's entry says who inherits its finding
    assert "3/4 inherit it" in reports["mail"]
    assert "inherited from 2/4" in reports["markdown"]
    html = reports["html"]
    start = html.index('id="patch-2"')                    # 3/4, the second patch checked
    section = html[start:html.find("<section", start + 1) % (len(html) + 1)]
    # 3/4's own accessed WARN is "outside intent"; the inherited refs finding is labelled so
    assert "c-inherited" in section
    assert "inherited from 2/4" in section


def test_alone_3_of_4_calls_the_finding_pre_existing(capsys, tmp_path):
    """Twin: without 2/4 in the input the finding was there before: pre-existing, still not
    3/4's, and nothing is blamed on a patch that is not there."""
    code, out, _ = run(capsys, "check", PATCHES / "000_e8ee204d4a7b7ba7.txt",
                       "--json", tmp_path / "r.json")
    (patch,) = json.loads((tmp_path / "r.json").read_text())["patches"]
    (finding,) = [f for f in patch["findings"] if f["check"] == "refs_balanced"]
    assert finding["blame"] == {"kind": "pre-existing", "state": "after 2/4"}
    assert (code, patch["verdict"]) == (ExitCode.PASS, "WARN")     # its own accessed WARN
    assert all(f["check"] == "accessed_preserved" for f in patch["findings"]
               if not f.get("blame", {}).get("kind") in ("inherited", "pre-existing"))
    assert "pre-existing" in out


# --- 6. formats exactly as their consumers define them --------------------------


def test_the_junit_schema_is_the_packaged_copy():
    import hashlib

    data = (SCHEMAS / "junit-10.xsd").read_bytes()
    assert hashlib.sha256(data).hexdigest() == JUNIT_XSD_SHA256


def test_junit_with_every_outcome_is_valid_against_junit_10_xsd(capsys, tmp_path):
    code, _, _ = run(capsys, "check", DATA / "dropped", DATA / "out-of-scope",
                     ROOT / "tests/data/bad/mmu-unmodelled-function.patch",
                     "--quiet", "--junit", tmp_path / "j.xml")
    assert code == ExitCode.ERROR
    text = (tmp_path / "j.xml").read_text()
    assert "<error" in text and 'type="SKIP"' in text and 'type="MISS"' in text
    assert junit_errors(tmp_path / "j.xml") == []
    # Twin: the shape the issue found (file= on a testcase, skipped= on testsuites) is refused.
    bad = text.replace("<testcase ", '<testcase file="x.patch" ', 1).replace(
        '<testsuites name="kconform"', '<testsuites name="kconform" skipped="1"', 1)
    (tmp_path / "bad.xml").write_text(bad)
    reasons = " ".join(junit_errors(tmp_path / "bad.xml"))
    assert "'file' attribute not allowed" in reasons and "'skipped' attribute" in reasons


def test_kcidb_is_valid_and_its_patchset_hash_is_sha256sum_of_the_patches(capsys, tmp_path):
    code, _, _ = run(capsys, "check", DATA / "out-of-scope", "--quiet", "--report-dir", tmp_path)
    kcidb = check_reports(tmp_path)["kcidb"]
    files = sorted(str(p) for p in (DATA / "out-of-scope").glob("*.patch"))
    shell = subprocess.run(["bash", "-c", 'sha256sum "$@" | cut -c-64 | sha256sum | cut -c-64',
                            "bash", *files], capture_output=True, text=True, check=True)
    assert kcidb["checkouts"][0]["patchset_hash"] == shell.stdout.strip()
    # Twin: KCIDB's validation does say no (a status KCIDB does not have).
    kcidb["tests"][0]["status"] = "WARN"
    assert kcidb_errors(kcidb)


def test_a_bad_target_url_is_a_usage_error_before_checking(capsys, tmp_path):
    code, out, err = run(capsys, "check", DATA / "dropped" / GOOD, "--report-dir", tmp_path,
                         "--target-url", "ci.example/no-scheme")
    assert code == ExitCode.ERROR
    assert err.startswith("kconform: error: --target-url") and "checking" not in err
    assert "Traceback" not in err and not list(tmp_path.iterdir())


@pytest.mark.parametrize("make_bad", ["a file", "under a file"])
def test_a_bad_report_dir_is_a_usage_error_before_checking(capsys, tmp_path, make_bad):
    (tmp_path / "taken").write_text("a file\n")
    report_dir = tmp_path / "taken" if make_bad == "a file" else tmp_path / "taken" / "sub"
    code, out, err = run(capsys, "check", DATA / "dropped" / GOOD, "--report-dir", report_dir)
    assert code == ExitCode.ERROR
    assert err.startswith("kconform: error: --report-dir") and "checking" not in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_json_dash_writes_the_results_to_standard_output(tmp_path):
    done = subprocess.run([sys.executable, "-m", "harness", "check", str(DATA / "out-of-scope"),
                           "--json", "-"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == ExitCode.SKIP
    assert json.loads(done.stdout)["schema"] == "kconform/1"     # only JSON on stdout
    assert "kconform: SKIP" in done.stderr                       # the summary went aside
    assert not (tmp_path / "-").exists()


def test_help_names_every_argument_and_the_exit_codes():
    parser = cli.build_parser()
    texts = {"": parser.format_help()}
    subparsers = next(a for a in parser._actions if a.choices and hasattr(a, "_name_parser_map"))
    for name, sub in subparsers.choices.items():
        texts[name] = sub.format_help()
        for action in sub._actions:
            if action.help is None:
                pytest.fail(f"kconform {name}: {action.dest} has no help text")
            shown = action.option_strings or [action.metavar or action.dest]
            assert any(s in texts[name] for s in shown), (name, action.dest)
        assert "exit codes:" in texts[name], name
    for code in ExitCode:
        assert f"  {int(code)}  " in texts[""] and f"  {int(code)}  " in texts["check"]


def test_pytest_with_an_unknown_check_is_a_usage_error_without_traceback(tmp_path):
    shutil.copy(DATA / "out-of-scope" / "x86-only.patch", tmp_path)
    done = pytest_run("--kconform-checks", "bogus", "x86-only.patch", cwd=tmp_path)
    assert done.returncode == 4                       # pytest's ExitCode.USAGE_ERROR
    assert "unknown check(s): bogus" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    ok = pytest_run("--kconform-checks", "refs_balanced", "x86-only.patch", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout


def test_a_closed_pipe_keeps_the_verdicts_exit_code(tmp_path):
    """``kconform check ... | head -1``: the reader leaves early; the exit code is still the
    verdict's (5 here), not 4, and nothing is printed about the pipe."""
    process = subprocess.Popen([sys.executable, "-m", "harness", "check",
                                str(DATA / "out-of-scope")], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()                      # gone before the first line is written
    _, err = process.communicate(timeout=300)
    assert process.returncode == ExitCode.SKIP, err
    assert b"Traceback" not in err and b"Exception ignored" not in err
    head = subprocess.run(["bash", "-c", '"$@" | head -1; exit "${PIPESTATUS[0]}"', "bash",
                           sys.executable, "-m", "harness", "check", str(DATA / "out-of-scope")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert head.returncode == ExitCode.SKIP and head.stdout.count("\n") == 1
