"""The CI templates run the real CLI and keep the reports.

The ``kconform check`` line of each template is parsed by the CLI's own
``build_parser()`` when it exists (else checked against the documented
flags), so a renamed flag breaks this test, not a user's pipeline.
YAML is read with PyYAML when it is installed (it is not a dependency);
otherwise a small structural reader checks the same facts.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from harness.errors import KconformError

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "ci-templates"
DOCUMENTED_FLAGS = {"--json", "--report-dir", "--junit", "--profile", "--seed", "--checks"}

try:
    import yaml
except ImportError:  # PyYAML is optional: fall back to reading lines
    yaml = None


def load(name: str) -> dict:
    text = (TEMPLATES / name).read_text()
    if yaml is not None:
        return yaml.safe_load(text)
    return {"_text": text}


def commands(document) -> list[str]:
    """Every shell command in a workflow: GitHub ``run:`` and GitLab ``script:`` lines."""
    if "_text" in document:
        found = re.findall(r"^\s*(?:-\s+)?(?:run:\s*|-\s+)(.+)$", document["_text"], re.M)
        return [c.strip() for c in found if "kconform" in c or "pip" in c]
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "run" and isinstance(value, str):
                    found.append(value)
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
    if "_text" in document:
        return dict(re.findall(r'^\s+(KCONFORM_[A-Z]+):\s*"([^"]*)"', document["_text"], re.M))
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
    line = lines[0]
    for name, value in variables(document).items():
        line = line.replace(f'"${name}"', shlex.quote(value)).replace(f"${name}", value)
    assert "$" not in line, f"unfilled variable in {line!r}"
    return shlex.split(line)[1:]


def parse_cli(argv: list[str]):
    """Parse with the real CLI parser, or check against the documented flags."""
    try:
        from harness.cli import build_parser
    except ImportError:
        build_parser = None
    if build_parser is not None:
        return build_parser().parse_args(argv)
    assert argv[0] == "check"
    flags = {a.split("=")[0] for a in argv if a.startswith("--")}
    unknown = flags - DOCUMENTED_FLAGS
    if unknown:
        raise SystemExit(f"unknown flags {unknown}")
    return None


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_template_runs_the_real_check_command(name):
    argv = check_argv(load(name))
    args = parse_cli(argv)
    if args is not None:
        assert args.command == "check"
        assert args.report_dir == "reports"
        assert args.paths == ["patches/"]
        assert args.profile == "gate" and args.seed == 0
    else:
        assert argv[argv.index("--report-dir") + 1] == "reports"


def test_a_misspelt_flag_is_refused():
    """Twin: the parser the templates are checked with does say no."""
    argv = check_argv(load("github-actions.yml"))
    argv[argv.index("--report-dir")] = "--report-directory"
    with pytest.raises((SystemExit, KconformError)) as raised:
        parse_cli(argv)
    assert "report-directory" in str(raised.value)


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_line_reader_agrees_with_yaml(name):
    """Without PyYAML the fallback reader must find the same command."""
    text_only = {"_text": (TEMPLATES / name).read_text()}
    assert check_argv(text_only) == check_argv(load(name))


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_template_installs_kconform_before_running_it(name):
    lines = commands(load(name))
    install = next(n for n, c in enumerate(lines) if "pip install" in c)
    run = next(n for n, c in enumerate(lines) if c.strip().startswith("kconform check"))
    assert install < run


@pytest.mark.skipif(yaml is None, reason="PyYAML not installed; the line checks above ran")
def test_github_uploads_reports_even_when_the_check_fails():
    workflow = load("github-actions.yml")
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "pull_request" in triggers
    steps = workflow["jobs"]["kconform"]["steps"]
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "reports/"
    check = next(n for n, s in enumerate(steps) if "kconform check" in s.get("run", ""))
    assert steps.index(upload) > check


@pytest.mark.skipif(yaml is None, reason="PyYAML not installed; the line checks above ran")
def test_gitlab_keeps_reports_and_junit_even_when_the_check_fails():
    job = load("gitlab-ci.yml")["kconform"]
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always"
    assert "reports/" in artifacts["paths"]
    from harness import outputs

    assert artifacts["reports"]["junit"] == "reports/" + "results.junit.xml"
    assert "results.junit.xml" in outputs.OUTPUT_FILES


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
