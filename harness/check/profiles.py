"""Hypothesis settings profiles, registered once here and chosen by name.

- ``gate``: what CI and the default CLI run use.  Derandomized (a fixed
  seed), no example database, small: every gate run of the same input gives
  the same findings.  Sized so the bundled series checks in ~20 s on 2 cores.
- ``deep``: randomised from the run's seed, more examples, longer operation
  sequences.  For nightly runs and for hunting.  Without ``--seed`` every
  deep run draws a fresh seed (``run_seed``), which is printed and recorded
  in the results, so a nightly run searches somewhere new and any finding
  replays from the printed seed and the replay token, not from a database.

Never sniff CI or the environment: callers name the profile.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, settings

from harness.errors import UsageError

GATE = "gate"
DEEP = "deep"


@dataclass(frozen=True)
class Budget:
    """What a profile allows beyond Hypothesis's own settings.

    ``exhaustive_limit``: a function check enumerates every input when the
    domain has at most this many cases (per mode); above it, it samples
    ``sampled_examples`` inputs with Hypothesis.
    """

    exhaustive_limit: int
    sampled_examples: int
    searches: int = 12          # operation-level searches (one per distinct finding, + 1)


BUDGETS = {
    GATE: Budget(exhaustive_limit=20_000, sampled_examples=200, searches=5),
    DEEP: Budget(exhaustive_limit=200_000, sampled_examples=2_000),
}

_COMMON = dict(
    database=None,
    deadline=None,
    print_blob=False,
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
)

_registered = False


def register() -> None:
    """Register ``gate`` and ``deep`` with Hypothesis (idempotent)."""
    global _registered
    if _registered:
        return
    settings.register_profile(GATE, max_examples=50, stateful_step_count=8,
                              derandomize=True, **_COMMON)
    settings.register_profile(DEEP, max_examples=400, stateful_step_count=20,
                              derandomize=False, **_COMMON)
    _registered = True


def get(name: str) -> settings:
    """The settings object of profile ``name`` (raises UsageError if unknown)."""
    register()
    if name not in BUDGETS:
        raise UsageError(f"unknown profile {name!r}", hint=f"choose one of {', '.join(BUDGETS)}")
    return settings.get_profile(name)


def budget(name: str) -> Budget:
    get(name)
    return BUDGETS[name]


GATE_SEED = 0


def run_seed(name: str, seed: int | None) -> tuple[int, bool]:
    """The seed a run of profile ``name`` uses, and whether it was drawn.

    A seed given is used as it is.  Without one, ``gate`` uses its fixed seed
    and ``deep`` draws a fresh 32-bit seed from the operating system.
    """
    get(name)
    if seed is not None:
        return seed, False
    if name == DEEP:
        return secrets.randbits(32), True
    return GATE_SEED, False


def names() -> tuple[str, ...]:
    return tuple(BUDGETS)


register()
