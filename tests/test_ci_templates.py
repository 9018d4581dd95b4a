"""The CI templates run the real CLI and keep the reports.

The ``kconform check`` line of each template is parsed by the CLI's own
``build_parser()`` when it exists (else checked against the documented
flags), so a renamed flag breaks this test, not a user's pipeline.
YAML is read with PyYAML when it is installed (it is not a dependency);
otherwise with ``tiny_yaml`` below, which is checked against PyYAML when both exist.
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
except ImportError:  # PyYAML is optional: tiny_yaml reads our two templates
    yaml = None

MAPPING_ITEM = re.compile(r"^[A-Za-z_][\w.-]*:(\s|$)")


def tiny_yaml(text: str):
    """Block mappings and sequences of one-line scalars: all our templates use.

    No flow collections, anchors, multi-line scalars or inline comments; a
    template that needs them must make PyYAML a test dependency instead.
    """
    rows = [[len(raw) - len(raw.lstrip()), raw.strip()] for raw in text.splitlines()
            if raw.strip() and not raw.strip().startswith("#")]

    def scalar(text: str):
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            return text[1:-1]
        return text

    def block(pos: int, indent: int):
        if rows[pos][1].startswith("- "):
            items = []
            while pos < len(rows) and rows[pos][0] == indent and rows[pos][1].startswith("- "):
                content = rows[pos][1][2:].strip()
                if MAPPING_ITEM.match(content):
                    rows[pos] = [indent + 2, content]
                    value, pos = block(pos, indent + 2)
                else:
                    value, pos = scalar(content), pos + 1
                items.append(value)
            return items, pos
        mapping = {}
        while pos < len(rows) and rows[pos][0] == indent and not rows[pos][1].startswith("- "):
            key, _, rest = rows[pos][1].partition(":")
            pos += 1
            if rest.strip():
                mapping[key] = scalar(rest.strip())
            elif pos < len(rows) and (rows[pos][0] > indent or rows[pos][1].startswith("- ")):
                mapping[key], pos = block(pos, rows[pos][0])
            else:
                mapping[key] = None
        return mapping, pos

    value, pos = block(0, rows[0][0])
    assert pos == len(rows), f"tiny_yaml stopped at {rows[pos]}"
    return value


def load(name: str):
    text = (TEMPLATES / name).read_text()
    return yaml.safe_load(text) if yaml is not None else tiny_yaml(text)


def commands(document) -> list[str]:
    """Every shell command in a workflow: GitHub ``run:`` and GitLab ``script:`` lines."""
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
        from harness.check import profiles
        assert args.profile == "gate" and profiles.run_seed(args.profile, args.seed) == (0, False)
    else:
        assert argv[argv.index("--report-dir") + 1] == "reports"


def test_a_misspelt_flag_is_refused():
    """Twin: the parser the templates are checked with does say no."""
    argv = check_argv(load("github-actions.yml"))
    argv[argv.index("--report-dir")] = "--report-directory"
    with pytest.raises((SystemExit, KconformError)) as raised:
        parse_cli(argv)
    assert "report-directory" in str(raised.value)


@pytest.mark.skipif(yaml is None, reason="PyYAML not installed: nothing to compare with")
@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_tiny_reader_agrees_with_yaml(name):
    """Without PyYAML the tests read the templates with tiny_yaml: it must agree."""
    text = (TEMPLATES / name).read_text()
    full = yaml.safe_load(text)
    if True in full:  # YAML 1.1 reads a bare `on` key as the boolean true
        full["on"] = full.pop(True)
    assert tiny_yaml(text) == _strings(full)


def _strings(node):
    if isinstance(node, dict):
        return {str(k): _strings(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_strings(v) for v in node]
    return None if node is None else str(node)


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_template_installs_kconform_before_running_it(name):
    lines = commands(load(name))
    install = next(n for n, c in enumerate(lines) if "pip install" in c)
    run = next(n for n, c in enumerate(lines) if c.strip().startswith("kconform check"))
    assert install < run


def test_github_uploads_reports_even_when_the_check_fails():
    workflow = load("github-actions.yml")
    triggers = workflow.get("on", workflow.get(True))  # PyYAML reads a bare `on` as True
    assert "pull_request" in triggers
    steps = workflow["jobs"]["kconform"]["steps"]
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "reports/"
    check = next(n for n, s in enumerate(steps) if "kconform check" in s.get("run", ""))
    assert steps.index(upload) > check


def test_gitlab_keeps_reports_and_junit_even_when_the_check_fails():
    job = load("gitlab-ci.yml")["kconform"]
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always"
    assert "reports/" in artifacts["paths"]
    from harness.report import outputs
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
