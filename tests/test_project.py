"""Project rules that CI must keep true: the README's commands and .ci/run agree."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text, flags=re.S)


def test_readme_has_exactly_two_commands():
    commands = readme_commands()
    assert len(commands) == 2
    assert "kconform check patches/" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci.splitlines()


def test_no_kernel_source_outside_patches_and_tests():
    pattern = re.compile(r"^\s*(static (inline )?(bool|void|u64|int) \w+\(|#include <linux/)",
                         re.M)
    offenders = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if not path.is_file() or rel.parts[0] in {"patches", "tests", ".git", ".venv", "reports"}:
            continue
        if path.suffix in {".py", ".md", ".j2", ".html", ".toml", ".yml", ".txt", ""}:
            try:
                if pattern.search(path.read_text(errors="replace")):
                    offenders.append(str(rel))
            except OSError:
                continue
    assert offenders == []


def test_no_function_is_registered_twice():
    from kernel_models import registry

    assert registry.duplicates() == []


def test_duplicates_are_found():
    from kernel_models import registry

    rows = registry.table()
    row = next(r for r in rows if r.name == "mmu_spte_update")
    twin = registry.Version(row.file, row.name, lambda kvm: None, row.blobs)
    assert registry.duplicates(rows + [twin])
