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
