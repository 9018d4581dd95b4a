"""Where runnable models come from: one interface, two sources.

``check`` and ``resolve`` read version sets through ``ModelState`` and get
them from a ``ModelSource``:

- ``HAND_WRITTEN`` (``HandWrittenSource``): the models of ``kernel_models/``,
  the states of ``registry.SERIES_STATES`` (the RFC series' tree, March
  2024).  The default, and the only source without a kernel tree.
- a translated tree state (``harness.resolve.tree_source``): the MMU files
  of a kernel tree (with a patch's pre-image or post-image in memory)
  translated whole by ``harness.translate``.

A ``ModelState`` is what the engine runs: ``functions()`` (C name -> model
callable, the VM first), ``helpers()``, ``rows()`` (C name -> ``Version``,
whose ``function`` identity tells changed bodies apart), ``blob(file)``,
``version(file, name)`` (the ``Version`` of one function), ``name``, ``release`` (the kernel release it stands for, which picks the
entry points' argument lists in ``kernel_models.entry_points``; None for
the hand-written models, called as they are written) and ``spte_layout``
(None: the hand-written ``kernel_models.spte`` bits).
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

from kernel_models import registry
from kernel_models.registry import Version, VersionSet


@runtime_checkable
class ModelState(Protocol):
    name: str

    @property
    def release(self) -> tuple[int, int, int] | None: ...

    @property
    def spte_layout(self): ...

    def functions(self) -> dict[str, Callable]: ...

    def helpers(self) -> frozenset[str]: ...

    def rows(self) -> dict[str, Version]: ...

    def blob(self, file: str) -> str: ...

    def version(self, file: str, name: str) -> Version | None: ...


class ModelSource(Protocol):
    """A provider of model states, by name."""

    name: str

    def states(self) -> tuple[str, ...]: ...

    def state(self, name: str) -> ModelState: ...



class HandWrittenSource:
    """The hand-written models (``kernel_models/``) and the series' states of the registry."""

    name = "hand-written models"

    def states(self) -> tuple[str, ...]:
        return tuple(registry.SERIES_STATES)

    def state(self, name: str) -> VersionSet:
        return VersionSet.series_state(name)


HAND_WRITTEN = HandWrittenSource()


def release_of(state) -> tuple[int, int, int] | None:
    """The release a state stands for (None: the hand-written models)."""
    return getattr(state, "release", None)


def spte_layout_of(state):
    """The SPTE bits a state's spte.h defines (None: the hand-written ones)."""
    return getattr(state, "spte_layout", None)


# States built at run time (translated tree states), by name: a replay token names its
# states, and ``kconform replay`` rebuilds them from the same inputs before looking them up.
_RUNTIME: dict[str, ModelState] = {}


def register_state(state: ModelState) -> None:
    _RUNTIME[state.name] = state


def state_named(name: str) -> ModelState | None:
    return _RUNTIME.get(name)
