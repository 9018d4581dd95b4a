"""The SPTE bits of one tree state, read from its own spte.h.

The hand-written models hold the bits of one tree (``kernel_models.spte``,
spring 2024).  A translated state of another release has its own: from
v6.10 a not-present SPTE is ``SHADOW_NONPRESENT_VALUE`` (bit 63 on x86-64),
not 0, and the frozen value ``FROZEN_SPTE`` carries it too (``REMOVED_SPTE``
before).  ``read_layout`` preprocesses the state's spte.h with the
translator's preprocessor (its ``#ifdef CONFIG_X86_64`` taken as on x86-64)
and evaluates the object-like macros named in ``NAMES``; the result names
the bits counterexamples show (``SpteLayout.bit_names``) and the fixed
values of the exhaustive domain (``not_present``, ``frozen``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SPTE_H = "arch/x86/kvm/mmu/spte.h"

# The fixed-bit macros of spte.h that do not depend on the encoding mode.
NAMES = ("SPTE_MMU_PRESENT_MASK", "SHADOW_NONPRESENT_VALUE", "REMOVED_SPTE", "FROZEN_SPTE",
         "SPTE_TDP_AD_MASK", "SPTE_TDP_AD_ENABLED", "SPTE_TDP_AD_DISABLED",
         "SPTE_TDP_AD_WRPROT_ONLY", "SPTE_TDP_AD_ENABLED_MASK", "SPTE_TDP_AD_DISABLED_MASK",
         "SPTE_TDP_AD_WRPROT_ONLY_MASK", "SHADOW_ACC_TRACK_SAVED_BITS_SHIFT",
         "SHADOW_ACC_TRACK_SAVED_BITS_MASK", "DEFAULT_SPTE_HOST_WRITABLE",
         "DEFAULT_SPTE_MMU_WRITABLE", "EPT_SPTE_HOST_WRITABLE", "EPT_SPTE_MMU_WRITABLE",
         "SPTE_EPT_READABLE_MASK", "SPTE_EPT_EXECUTABLE_MASK")

# Bit macros defined outside the MMU files (include/linux/bits.h, vdso/const.h).
_FUNCTIONS = {"BIT_ULL": lambda n: 1 << n, "BIT": lambda n: 1 << n,
              "GENMASK_ULL": lambda h, low: ((1 << (h - low + 1)) - 1) << low,
              "_BITULL": lambda n: 1 << n, "_AC": lambda x, _: x, "_ULL": lambda x: x}


@dataclass(frozen=True)
class SpteLayout:
    """The mode-independent SPTE constants of one state's spte.h: name -> value."""

    values: tuple[tuple[str, int], ...]
    source: str                       # the spte.h blob or label read

    def value(self, name: str) -> int | None:
        return dict(self.values).get(name)

    @property
    def not_present(self) -> int:
        """What a zapped or never-set SPTE holds (0 before SHADOW_NONPRESENT_VALUE)."""
        value = self.value("SHADOW_NONPRESENT_VALUE")
        return 0 if value is None else value

    @property
    def frozen(self) -> int | None:
        """The value an SPTE holds while frozen (REMOVED_SPTE, later FROZEN_SPTE)."""
        value = self.value("FROZEN_SPTE")
        return self.value("REMOVED_SPTE") if value is None else value

    @property
    def frozen_name(self) -> str:
        return "FROZEN_SPTE" if self.value("FROZEN_SPTE") is not None else "REMOVED_SPTE"

    def names(self, value: int) -> list[str]:
        """``value`` by name: the whole-value constant it equals, else its single bits."""
        if value == self.frozen:
            return [self.frozen_name]
        if value == self.not_present and value:
            return ["SHADOW_NONPRESENT_VALUE"]
        return self.bit_names(value)

    def bit_names(self, value: int) -> list[str]:
        """The single-bit macros set in ``value`` (for counterexamples), low bit first."""
        named = []
        for name, mask in sorted(self.values, key=lambda item: item[1]):
            if mask and mask & (mask - 1) == 0 and value & mask and name not in named:
                named.append(name)
        return named


def _evaluate(items: list[str]) -> int | None:
    python = []
    for token in items:
        if re.fullmatch(r"0[xX][0-9a-fA-F]+[uUlL]*|\d+[uUlL]*", token):
            python.append(re.sub(r"[uUlL]+$", "", token))
        elif token in _FUNCTIONS or token in "()|&~<>+-*^" or token in ("<<", ">>", ","):
            python.append(f" {token} ")
        elif token in ("u64", "ULL"):
            continue                  # a cast's type: (u64)x reads as (x)
        else:
            return None               # a mode-dependent global or an unknown name
    text = "".join(python).replace("( )", "")
    try:
        value = eval(text, {"__builtins__": {}}, dict(_FUNCTIONS))   # noqa: S307 - digits, ops
    except Exception:  # noqa: BLE001 - a macro we cannot read is left out
        return None
    return value & ((1 << 64) - 1) if isinstance(value, int) else None


def read_layout(texts: dict[str, str], source: str = SPTE_H) -> SpteLayout | str:
    """The layout of the state whose files are ``texts``, or why it cannot be read."""
    from harness.translate.preprocess import Preprocessor, PreprocessError

    if SPTE_H not in texts:
        return f"{SPTE_H} is not in this state"
    pre = Preprocessor(texts.get, text=False)     # only the macro table is read
    try:
        pre.run(SPTE_H)
    except PreprocessError as exc:
        return f"spte.h cannot be preprocessed: {exc}"
    values = []
    for name in NAMES:
        if name in pre.macros and pre.macros[name].params is None:
            value = _evaluate(pre.expand([name], frozenset()))
            if value is not None:
                values.append((name, value))
    if not values:
        return "spte.h defines none of the fixed SPTE bits kconform reads"
    return SpteLayout(tuple(values), source)
