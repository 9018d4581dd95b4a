"""Fixtures shared by the test files: expensive results computed once per session.

Under pytest-xdist (the README's test command runs ``pytest -n auto``) a
session fixture is computed once per worker process; a test that needs one
asks for it, so it is never computed where nothing uses it.
"""

from __future__ import annotations

import pytest

from tests.shared import gate_json_of_the_bundled_series


@pytest.fixture(scope="session")
def bundled_gate_json(tmp_path_factory) -> bytes:
    """The bundled series' gate results as the CLI writes them, from this process's first run."""
    return gate_json_of_the_bundled_series(tmp_path_factory.mktemp("bundled-gate") / "a.json")


# The files whose tests each check whole patches, costliest first (CPU per file measured one
# file at a time: bench/results/suite-latest.md).  Under ``pytest -n auto`` with
# ``--dist loadgroup`` (pyproject's addopts) the workers take one test at a time in collection
# order, so starting with the long tests and ending with the many short ones keeps both
# workers busy to the end instead of one finishing a long test alone.  The order inside a
# file is kept; without xdist the order changes nothing a test reads.
COSTLIEST_FILES = (
    "test_mutants.py", "test_cli.py", "test_reliability.py", "test_intent.py", "test_ci.py",
    "test_later_revisions.py", "test_culprit.py", "test_golden.py", "test_kernel_tree.py",
    "test_check.py", "test_entry_points.py", "test_preexisting.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: index for index, name in enumerate(COSTLIEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
