"""Top-level pytest configuration.

The kconform pytest plugin itself is registered through the ``pytest11``
entry point (see pyproject.toml), so ``pytest some.patch`` works wherever the
package is installed.  This file only keeps pytest from treating the
project's own data (bad-input corpus, mutant patches, generated reports,
benchmark inputs) as patches to check when the test suite runs.
"""

# pytester: a pytest session run inside this one (test_cli runs the kconform plugin so).
pytest_plugins = ["pytester"]

collect_ignore_glob = [
    "tests/data/*",
    "tests/mutants/*",
    "reports/*",
    "bench/*",
]


def _register_test_profiles() -> None:
    """The test suite's own Hypothesis profiles, chosen by name.

    ``kconform-tests`` (default) is derandomized so a CI run is repeatable;
    ``kconform-tests-random`` is for hunting locally:
    ``HYPOTHESIS_PROFILE=kconform-tests-random pytest``.
    """
    import os

    from hypothesis import settings

    settings.register_profile("kconform-tests", derandomize=True, database=None, deadline=None,
                              print_blob=True)
    settings.register_profile("kconform-tests-random", derandomize=False, deadline=None,
                              print_blob=True)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "kconform-tests"))


_register_test_profiles()
