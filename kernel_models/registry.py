"""The registry: which body of which kernel function holds in which blob.

This is data.  Each model module ends with a ``MODEL_TABLE``: a tuple of
``Version`` rows (C file, C function, Python function, blobs where that body
holds).  This module gathers those tables into one index and builds
``VersionSet`` objects: one blob per modelled kernel file, i.e. one state of
the tree, whose ``functions()`` maps every C name to the body that holds there.

Files the series changes have a chain of blobs (from the patches' ``index``
lines); files it does not change (spte.h, tdp_iter.h, mmu_internal.h,
kvm_main.c) have the single pseudo-blob ``UNCHANGED``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

MMU_C = "arch/x86/kvm/mmu/mmu.c"
TDP_MMU_C = "arch/x86/kvm/mmu/tdp_mmu.c"
SPTE_C = "arch/x86/kvm/mmu/spte.c"
PAGING_TMPL_H = "arch/x86/kvm/mmu/paging_tmpl.h"
SPTE_H = "arch/x86/kvm/mmu/spte.h"
TDP_ITER_H = "arch/x86/kvm/mmu/tdp_iter.h"
MMU_INTERNAL_H = "arch/x86/kvm/mmu/mmu_internal.h"
KVM_MAIN_C = "virt/kvm/kvm_main.c"

UNCHANGED = "unchanged"

# Blob chains, oldest first, taken from the RFC patches' index lines.
BLOB_CHAINS: dict[str, tuple[str, ...]] = {
    MMU_C: ("e4cc7f764980", "bd2240b94ff6", "0a6c6619d213", "77d1072b130d"),
    TDP_MMU_C: ("d078157e62aa", "5866a664f46e", "340d5af454c6"),
    SPTE_C: ("4a599130e9c9", "b4c1119cc48b", "490966bc893c"),
    PAGING_TMPL_H: ("4d4e98fe4f35", "ec24a6679153"),
    SPTE_H: (UNCHANGED,),
    TDP_ITER_H: (UNCHANGED,),
    MMU_INTERNAL_H: (UNCHANGED,),
    KVM_MAIN_C: (UNCHANGED,),
}

ALL = "all"   # in a Version row: every blob of that file's chain

# The states the series passes through (cumulative), as file -> blob.
SERIES_STATES: dict[str, dict[str, str]] = {
    "base": {MMU_C: "e4cc7f764980", TDP_MMU_C: "d078157e62aa",
             SPTE_C: "4a599130e9c9", PAGING_TMPL_H: "4d4e98fe4f35"},
}
SERIES_STATES["after 1/4"] = {**SERIES_STATES["base"], SPTE_C: "b4c1119cc48b"}
SERIES_STATES["after 2/4"] = {**SERIES_STATES["after 1/4"], MMU_C: "bd2240b94ff6",
                              TDP_MMU_C: "5866a664f46e", SPTE_C: "490966bc893c",
                              PAGING_TMPL_H: "ec24a6679153"}
SERIES_STATES["after 3/4"] = {**SERIES_STATES["after 2/4"], MMU_C: "0a6c6619d213",
                              TDP_MMU_C: "340d5af454c6"}
SERIES_STATES["after 4/4"] = {**SERIES_STATES["after 3/4"], MMU_C: "77d1072b130d"}

MODEL_MODULES = (
    "kernel_models.kvm_main",
    "kernel_models.mmu_internal",
    "kernel_models.spte",
    "kernel_models.tdp_iter",
    "kernel_models.mmu",
    "kernel_models.tdp_mmu",
    "kernel_models.paging_tmpl",
    "kernel_models.x86",
)


@dataclass(frozen=True)
class Version:
    """One body of one kernel function, and the blobs of ``file`` where it holds.

    ``helper`` marks effect-producing leaves (kvm_set_pfn_dirty, SPTE store
    primitives): events they emit are attributed to their caller.
    """

    file: str
    name: str
    function: Callable
    blobs: tuple[str, ...] | str = ALL
    helper: bool = False

    def holds_in(self, blob: str) -> bool:
        if self.blobs == ALL:
            return blob in BLOB_CHAINS.get(self.file, ()) or blob in _EXTRA_BLOBS.get(self.file, {})
        return blob in self.blobs

    @property
    def model_id(self) -> str:
        """``<module>.<python name>``: names the model in results."""
        return f"{self.function.__module__.rsplit('.', 1)[-1]}.{self.function.__name__}"


# Blobs registered at run time (mutants, derived after-models):
# file -> blob -> (parent blob, {C name: Version})
_EXTRA_BLOBS: dict[str, dict[str, tuple[str, dict[str, Version]]]] = {}
_TABLE: list[Version] | None = None


def table() -> list[Version]:
    """Every registered ``Version`` row, gathered from the model modules."""
    global _TABLE
    if _TABLE is None:
        rows: list[Version] = []
        for module_name in MODEL_MODULES:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                continue
            rows.extend(getattr(module, "MODEL_TABLE", ()))
        _TABLE = rows
    return _TABLE


def duplicates(rows: list[Version] | None = None) -> list[str]:
    """Functions with two bodies holding in the same blob (must be empty; a test checks)."""
    seen: dict[tuple[str, str, str], Version] = {}
    found = []
    for row in table() if rows is None else rows:
        blobs = BLOB_CHAINS.get(row.file, ()) if row.blobs == ALL else row.blobs
        for blob in blobs:
            key = (row.file, row.name, blob)
            if key in seen and seen[key] is not row:
                found.append(f"{row.name} ({row.file}@{blob}): {seen[key].model_id} and "
                             f"{row.model_id}")
            seen[key] = row
    return found


def known_blobs(file: str) -> tuple[str, ...]:
    return BLOB_CHAINS.get(file, ()) + tuple(_EXTRA_BLOBS.get(file, {}))


# Blobs registered for models derived from a patch: "derived-<post-image id>-<digest>"
# (derive, and a tree's post-image) and "tree-<pre-image id>-<digest>" (a tree's pre-image).
DERIVED_PREFIXES = ("derived-", "tree-")


def blob_matches(known: str | None, named: str | None) -> bool:
    """Index lines abbreviate blob ids; compare on the shorter prefix (>= 7)."""
    if known is None or named is None:
        return False
    n = min(len(known), len(named))
    return n >= 7 and known[:n] == named[:n]


def find_blob(file: str, named: str | None) -> str | None:
    """The registered blob of ``file`` (chain or run time) an index id names, if any."""
    for blob in known_blobs(file):
        if blob_matches(blob, named):
            return blob
    return None


def stands_for(blob: str) -> str:
    """The index id a blob stands for: a derived blob, the id it was derived for."""
    return blob.split("-")[1] if blob.startswith(DERIVED_PREFIXES) else blob


def is_modelled_file(file: str) -> bool:
    return file in BLOB_CHAINS


def versions_of(file: str, name: str) -> list[Version]:
    return [v for v in table() if v.file == file and v.name == name]


def functions_in_file(file: str) -> set[str]:
    return {v.name for v in table() if v.file == file}


def lookup(file: str, name: str, blob: str) -> Version | None:
    """The body of ``name`` that holds in ``blob`` of ``file``, or None."""
    extra = _EXTRA_BLOBS.get(file, {}).get(blob)
    if extra is not None:
        parent, replaced = extra
        if name in replaced:
            return replaced[name]
        return lookup(file, name, parent)
    for version in table():
        if version.file == file and version.name == name and version.holds_in(blob):
            return version
    return None


def register_blob(file: str, blob: str, parent: str, replacements: dict[str, Callable],
                  ) -> None:
    """Register ``blob`` of ``file`` as ``parent`` with some bodies replaced.

    Used for mutant models (tests/mutants) and for after-models derived from
    a hunk: everything not replaced is inherited from ``parent``.
    """
    if parent not in known_blobs(file):
        raise KeyError(f"unknown parent blob {parent} of {file}")
    rows = {name: Version(file, name, fn, (blob,)) for name, fn in replacements.items()}
    _EXTRA_BLOBS.setdefault(file, {})[blob] = (parent, rows)


def unregister_blob(file: str, blob: str) -> None:
    _EXTRA_BLOBS.get(file, {}).pop(blob, None)


@dataclass(frozen=True)
class VersionSet:
    """One state of the modelled tree: a blob for each modelled file."""

    name: str
    blobs: tuple[tuple[str, str], ...]   # sorted (file, blob) pairs
    _cache: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def of(cls, name: str, blobs: dict[str, str]) -> "VersionSet":
        full = {f: chain[0] for f, chain in BLOB_CHAINS.items()}
        full.update(blobs)
        return cls(name, tuple(sorted(full.items())))

    @classmethod
    def series_state(cls, name: str) -> "VersionSet":
        return cls.of(name, SERIES_STATES[name])

    def blob(self, file: str) -> str:
        return dict(self.blobs)[file]

    def version(self, file: str, name: str) -> Version | None:
        """The body of ``name`` in this state (``kernel_models.model_source.ModelState``)."""
        return lookup(file, name, self.blob(file))

    # The hand-written models are called as written (entry_points) over spte.py's bits.
    release = None
    spte_layout = None

    def with_blob(self, file: str, blob: str, name: str | None = None) -> "VersionSet":
        blobs = dict(self.blobs)
        blobs[file] = blob
        return VersionSet.of(name or f"{self.name} + {file.rsplit('/', 1)[-1]}@{blob}", blobs)

    def rows(self) -> dict[str, Version]:
        """C name -> the Version row that holds in this state."""
        if "rows" not in self._cache:
            rows: dict[str, Version] = {}
            names = {(v.file, v.name) for v in table()}
            for file, blob in self.blobs:
                for extra_file, extra in _EXTRA_BLOBS.items():
                    if extra_file == file and blob in extra:
                        names |= {(file, n) for n in extra[blob][1]}
            for file, name in sorted(names):
                version = lookup(file, name, dict(self.blobs)[file])
                if version is None:
                    continue      # function does not exist in this blob (e.g. deleted)
                if name in rows and rows[name].file != file:
                    raise ValueError(f"{name} modelled in both {rows[name].file} and {file}")
                rows[name] = version
            self._cache["rows"] = rows
        return self._cache["rows"]

    def functions(self) -> dict[str, Callable]:
        """C name -> body (one dict per state, built once: every VM of the state reads it)."""
        if "functions" not in self._cache:
            self._cache["functions"] = {name: v.function for name, v in self.rows().items()}
        return self._cache["functions"]

    def helpers(self) -> frozenset[str]:
        if "helpers" not in self._cache:
            self._cache["helpers"] = frozenset(name for name, v in self.rows().items()
                                               if v.helper)
        return self._cache["helpers"]

    def __str__(self) -> str:
        return self.name


def series_version_sets() -> list[VersionSet]:
    return [VersionSet.series_state(name) for name in SERIES_STATES]
