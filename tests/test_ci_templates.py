"""The CI templates are ones a maintainer would merge, and they run the real CLI.

The ``kconform check`` line of each template is parsed by the CLI's own
``build_parser()``, so a renamed flag breaks this test, not a user's pipeline;
the check step's shell is run for real (with a stand-in ``kconform`` for each
exit code, and with the real one), so "the job does not fail on SKIP" is
tested, not read.  YAML is read with PyYAML (a test dependency).
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.errors import ExitCode, KconformError

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "ci-templates"
GITHUB = ["github-actions.yml", "github-actions-kernel-tree.yml"]
ALL = GITHUB + ["gitlab-ci.yml"]
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def load(name: str):
    document = yaml.safe_load((TEMPLATES / name).read_text())
    if True in document:  # YAML 1.1 reads a bare `on` key as the boolean true
        document["on"] = document.pop(True)
    return document


def steps(name: str) -> list[dict]:
    return load(name)["jobs"]["kconform"]["steps"]


def commands(document) -> list[str]:
    """Every shell line in a workflow: GitHub ``run:`` scripts and GitLab ``script:`` lines."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "run" and isinstance(value, str):
                    found.extend(line for line in value.splitlines() if line.strip())
                elif key == "script" and isinstance(value, list):
                    found.extend(str(v) for v in value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return found


def variables(document) -> dict:
    found = {}

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("env", "variables") and isinstance(value, dict):
                    found.update({k: str(v) for k, v in value.items()})
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return found


def check_argv(document) -> list[str]:
    """The ``kconform check`` command as argv, template variables filled in."""
    lines = [c for c in commands(document) if c.strip().startswith("kconform check")]
    assert len(lines) == 1, lines
    line = lines[0].split(" || ")[0]
    for name, value in variables(document).items():
        line = line.replace(f'"${name}"', shlex.quote(value)).replace(f"${name}", value)
    assert "$" not in line, f"unfilled variable in {line!r}"
    return shlex.split(line)[1:]


def parse_cli(argv: list[str]):
    from harness.cli import build_parser

    return build_parser().parse_args(argv)


@pytest.mark.parametrize("name", ALL)
def test_template_runs_the_real_check_command(name):
    args = parse_cli(check_argv(load(name)))
    assert args.command == "check"
    assert args.report_dir == "reports"
    from harness.check import profiles
    assert args.profile == "gate" and profiles.run_seed(args.profile, args.seed) == (0, False)
    if name == "github-actions-kernel-tree.yml":
        assert args.paths == ["patches-under-test/"] and args.kernel_tree == "."
    else:
        assert args.paths == ["patches/"] and args.kernel_tree is None


def test_a_misspelt_flag_is_refused():
    """Twin: the parser the templates are checked with does say no."""
    argv = check_argv(load("github-actions.yml"))
    argv[argv.index("--report-dir")] = "--report-directory"
    with pytest.raises((SystemExit, KconformError)) as raised:
        parse_cli(argv)
    assert "report-directory" in str(raised.value)


@pytest.mark.parametrize("name", ALL)
def test_template_installs_kconform_before_running_it(name):
    lines = commands(load(name))
    install = next(n for n, c in enumerate(lines) if "pip install" in c)
    run = next(n for n, c in enumerate(lines) if c.strip().startswith("kconform check"))
    assert install < run


@pytest.mark.parametrize("name", GITHUB)
def test_every_action_is_pinned_by_commit_sha_with_its_tag_named(name):
    text = (TEMPLATES / name).read_text()
    uses = [s["uses"] for s in steps(name) if "uses" in s]
    assert len(uses) == 3
    for action in uses:
        assert PINNED.match(action), action
        line = next(line for line in text.splitlines() if action in line)
        assert re.search(r"#\s*v\d+\.\d+\.\d+$", line), line
    assert not PINNED.match("actions/checkout@v4")      # twin: a tag is not a pin


@pytest.mark.parametrize("name", GITHUB)
def test_checkout_keeps_no_credentials(name):
    (checkout,) = [s for s in steps(name) if str(s.get("uses", "")).startswith("actions/checkout")]
    assert checkout["with"]["persist-credentials"] is False
    assert load(name)["permissions"] == {"contents": "read"}


@pytest.mark.parametrize("name", GITHUB)
def test_one_trigger_per_change(name):
    """A push to a pull request's branch is the same change: pull_request alone runs it."""
    assert set(load(name)["on"]) == {"pull_request", "workflow_dispatch"}


def test_gitlab_runs_in_merge_request_pipelines_only():
    assert load("gitlab-ci.yml")["kconform"]["rules"] == [
        {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]


@pytest.mark.parametrize("name", ALL)
def test_no_untrusted_expression_is_spliced_into_a_script(name):
    """Pull request data reaches a script through env, never as ``${{ ... }}`` in its text."""
    assert not [c for c in commands(load(name)) if "${{" in c]


@pytest.mark.parametrize("name", GITHUB)
def test_github_uploads_reports_even_when_the_check_fails(name):
    workflow_steps = steps(name)
    upload = next(s for s in workflow_steps
                  if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "reports/"
    check = next(n for n, s in enumerate(workflow_steps) if "kconform check" in s.get("run", ""))
    assert workflow_steps.index(upload) > check


def test_gitlab_keeps_reports_and_junit_even_when_the_check_fails():
    job = load("gitlab-ci.yml")["kconform"]
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always"
    assert "reports/" in artifacts["paths"]
    from harness.report import outputs

    assert artifacts["reports"]["junit"] == "reports/" + "results.junit.xml"
    assert "results.junit.xml" in outputs.OUTPUT_FILES


def test_kernel_tree_template_exports_the_pull_requests_commits_first():
    workflow_steps = steps("github-actions-kernel-tree.yml")
    runs = [s.get("run", "") for s in workflow_steps]
    export = next(n for n, r in enumerate(runs) if "git format-patch" in r)
    check = next(n for n, r in enumerate(runs) if "kconform check" in r)
    assert export < check and "patches-under-test" in runs[export]
    assert '"$BASE_SHA..$HEAD_SHA"' in runs[export]
    checkout = next(s for s in workflow_steps if "checkout" in str(s.get("uses", "")))
    assert checkout["with"]["fetch-depth"] == 0


# --- the check step's shell, run -------------------------------------------------


def check_script(name: str) -> str:
    """The shell the template runs for its check step (GitLab: its script lines after pip)."""
    if name in GITHUB:
        return next(s["run"] for s in steps(name) if "kconform check" in s.get("run", ""))
    lines = load(name)["kconform"]["script"]
    return "\n".join(line for line in lines if "pip install" not in line)


def fake_kconform(directory: Path, code: int) -> Path:
    """A stand-in ``kconform`` that writes a summary and exits with ``code``."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "kconform"
    script.write_text("#!/usr/bin/env bash\nmkdir -p reports\n"
                      f"printf '### kconform: verdict for %s\\n' {code} > reports/summary.md\n"
                      f"exit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return directory


def run_step(name: str, work: Path, bin_dir: Path, extra_env: dict | None = None):
    env = {**os.environ, **variables(load(name)),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "GITHUB_STEP_SUMMARY": str(work / "step-summary.md"),
           "BASE_SHA": "a", "HEAD_SHA": "b", **(extra_env or {})}
    # GitHub runs `bash -e {0}`, GitLab `set -eo pipefail`: the stricter of the two.
    return subprocess.run(["bash", "-eo", "pipefail", "-c", check_script(name)], cwd=work,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("code, job", [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 0)])
def test_the_job_fails_on_exit_1_to_4_but_not_on_skip(tmp_path, name, code, job):
    done = run_step(name, tmp_path, fake_kconform(tmp_path / "bin", code))
    assert done.returncode == job, done.stdout + done.stderr
    if name in GITHUB:   # the verdict table is the job summary
        assert (tmp_path / "step-summary.md").read_text() == f"### kconform: verdict for {code}\n"
    else:                # GitLab has no job summary: the table goes to the log
        assert f"### kconform: verdict for {code}" in done.stdout


def test_the_job_with_the_real_cli_passes_on_patches_kconform_does_not_read(tmp_path):
    """The same step with the real kconform on out-of-scope patches: SKIP, and a green job
    whose summary is the verdict table."""
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "kconform").exists()
    done = run_step("github-actions.yml", tmp_path, bin_dir,
                    {"KCONFORM_INPUT": str(ROOT / "tests" / "data" / "ci" / "out-of-scope")})
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (tmp_path / "step-summary.md").read_text()
    assert summary.startswith(f"### kconform: SKIP (exit code {int(ExitCode.SKIP)})")
    assert "| patch | verdict | why |" in summary


def test_install_browser_is_an_idempotent_quiet_script():
    script = ROOT / ".ci" / "install-browser"
    assert script.stat().st_mode & stat.S_IXUSR
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "chromium-driver" in text and "apt-get install" in text
    subprocess.run(["bash", "-n", str(script)], check=True)
    if os.path.exists("/usr/bin/chromium") and os.path.exists("/usr/bin/chromedriver"):
        done = subprocess.run([str(script)], capture_output=True, text=True)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
