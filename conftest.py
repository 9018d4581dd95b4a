"""Top-level pytest configuration.

The kconform pytest plugin itself is registered through the ``pytest11``
entry point (see pyproject.toml), so ``pytest some.patch`` works wherever the
package is installed.  This file only keeps pytest from treating the
project's own data (bad-input corpus, mutant patches, generated reports,
benchmark inputs) as patches to check when the test suite runs.
"""

collect_ignore_glob = [
    "tests/data/*",
    "tests/mutants/*",
    "reports/*",
    "bench/*",
]
