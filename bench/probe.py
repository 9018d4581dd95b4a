"""Count what the engine did until its first counterexample.

The results document holds findings and coverage, not "how many cases until
the first failure" or "when".  ``Probe`` wraps three of the engine's inner
functions for the length of a ``with`` block (and puts them back after):

- ``check._function_step``: one function-level case run on both sides;
- ``check._function_finding``: a function-level counterexample recorded;
- ``check._search``: one Hypothesis search at operation level (returns the
  failure it found, or None); ``Run.examples`` counts its sequences.

If the engine's insides have other names, the probe records nothing and says
so (``available`` is False); the benchmark then reports those figures as not
available instead of guessing.
"""

from __future__ import annotations

import time


class Probe:
    def __init__(self):
        self.available = False
        self.reason = ""
        self.start = 0.0
        self.cases = 0
        self.first: dict | None = None      # {"level", "examples", "seconds"}
        self._saved = {}

    def __enter__(self) -> "Probe":
        try:
            from harness import check
        except ImportError as exc:
            self.reason = f"engine not importable: {exc}"
            return self
        names = ("_function_step", "_function_finding", "_search")
        missing = [n for n in names if not hasattr(check, n)]
        if missing:
            self.reason = f"engine has no {', '.join(missing)}"
            return self
        self._module = check
        self._saved = {n: getattr(check, n) for n in names}
        step, finding, search = (self._saved[n] for n in names)
        probe = self

        def counted_step(*args, **kwargs):
            probe.cases += 1
            return step(*args, **kwargs)

        def noted_finding(*args, **kwargs):
            if probe.first is None:
                probe.first = {"level": "function", "examples": probe.cases,
                               "seconds": time.perf_counter() - probe.start}
            return finding(*args, **kwargs)

        def noted_search(run, *args, **kwargs):
            before = getattr(run, "examples", 0)
            failure = search(run, *args, **kwargs)
            if failure is not None and probe.first is None:
                probe.first = {"level": "operation",
                               "examples": getattr(run, "examples", 0) - before,
                               "seconds": time.perf_counter() - probe.start}
            return failure

        check._function_step = counted_step
        check._function_finding = noted_finding
        check._search = noted_search
        self.available = True
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        for name, function in self._saved.items():
            setattr(self._module, name, function)
        self._saved = {}
