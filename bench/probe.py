"""Count what the engine did until its first counterexample.

The results document holds findings and coverage, not "how many cases until
the first failure" or "when".  ``Probe`` wraps some of the engine's inner
functions for the length of a ``with`` block (and puts them back after):

- ``check._function_step``: one function-level case run on both sides;
- ``check._function_finding``: a function-level counterexample recorded;
- ``check._run_steps``: one kept operation sequence replayed by hand;
- ``check._operation_finding``: an operation-level counterexample recorded;
  at that moment ``Run.examples`` counts the Hypothesis sequences run so far.

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
        self.cases = 0          # function-level cases run
        self.sequences = 0      # kept operation sequences replayed by hand
        self.first: dict | None = None      # {"level", "examples", "seconds"}
        self._saved = {}

    def __enter__(self) -> "Probe":
        try:
            from harness.check import engine as check
        except ImportError as exc:
            self.reason = f"engine not importable: {exc}"
            return self
        needed = ("_function_step", "_function_finding", "_operation_finding")
        missing = [n for n in needed if not hasattr(check, n)]
        if missing:
            self.reason = f"engine has no {', '.join(missing)}"
            return self
        self._module = check
        optional = [n for n in ("_run_steps",) if hasattr(check, n)]
        self._saved = {n: getattr(check, n) for n in needed + tuple(optional)}
        saved = self._saved
        probe = self

        def counted_step(*args, **kwargs):
            probe.cases += 1
            return saved["_function_step"](*args, **kwargs)

        def noted_function_finding(*args, **kwargs):
            probe.note("function", probe.cases)
            return saved["_function_finding"](*args, **kwargs)

        def counted_sequence(*args, **kwargs):
            probe.sequences += 1
            return saved["_run_steps"](*args, **kwargs)

        def noted_operation_finding(run, *args, **kwargs):
            probe.note("operation", probe.sequences + getattr(run, "examples", 0))
            return saved["_operation_finding"](run, *args, **kwargs)

        check._function_step = counted_step
        check._function_finding = noted_function_finding
        check._operation_finding = noted_operation_finding
        if "_run_steps" in saved:
            check._run_steps = counted_sequence
        self.available = True
        self.start = time.perf_counter()
        return self

    def note(self, level: str, examples: int) -> None:
        if self.first is None:
            self.first = {"level": level, "examples": examples,
                          "seconds": time.perf_counter() - self.start}

    def __exit__(self, *exc_info) -> None:
        for name, function in self._saved.items():
            setattr(self._module, name, function)
        self._saved = {}
