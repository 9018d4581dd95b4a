"""The SPTE bits of a tree state, read from its own spte.h (stand-ins written here)."""

from __future__ import annotations

from harness.resolve.spte_layout import SPTE_H, read_layout
from kernel_models import spte as S
from kernel_models.spte_domain import describe_spte, following, spte_domain

# A stand-in spte.h with the shape of a release after v6.10 (not kernel text).
LATER = """\
#ifndef STANDIN_SPTE_H
#define STANDIN_SPTE_H
#define SPTE_MMU_PRESENT_MASK  BIT_ULL(11)
#define SPTE_TDP_AD_SHIFT  52
#define SPTE_TDP_AD_MASK  (3ULL << SPTE_TDP_AD_SHIFT)
#ifdef CONFIG_X86_64
#define SHADOW_NONPRESENT_VALUE  BIT_ULL(63)
#else
#define SHADOW_NONPRESENT_VALUE  0ULL
#endif
#define FROZEN_SPTE  (SHADOW_NONPRESENT_VALUE | 0x5a0ULL)
#define SPTE_BASE_ADDR_MASK (physical_mask & ~(u64)(PAGE_SIZE-1))
#endif
"""
# ... and of one before it: zero is not present, the frozen value is REMOVED_SPTE.
EARLIER = """\
#define SPTE_MMU_PRESENT_MASK  BIT_ULL(11)
#define REMOVED_SPTE  0x5a0ULL
"""


def test_a_later_release_has_a_nonzero_not_present_value():
    layout = read_layout({SPTE_H: LATER})
    assert layout.not_present == 1 << 63
    assert layout.frozen == (1 << 63) | 0x5a0 and layout.frozen_name == "FROZEN_SPTE"
    assert layout.value("SPTE_TDP_AD_MASK") == 3 << 52
    assert layout.value("SPTE_BASE_ADDR_MASK") is None      # reads a global: left out
    assert layout.names(layout.frozen) == ["FROZEN_SPTE"]
    assert layout.names((1 << 63) | (1 << 11)) == ["SPTE_MMU_PRESENT_MASK",
                                                    "SHADOW_NONPRESENT_VALUE"]


def test_an_earlier_release_keeps_zero_and_removed_spte():
    layout = read_layout({SPTE_H: EARLIER})
    assert layout.not_present == 0
    assert layout.frozen == 0x5a0 and layout.frozen_name == "REMOVED_SPTE"
    assert "is not in this state" in read_layout({})


def test_the_domain_and_the_bit_names_follow_the_release():
    later = read_layout({SPTE_H: LATER})
    plain = spte_domain("ept_ad")
    assert [i.value for i in plain if i.label == "not-present 0 L1"] == [0]
    assert any(i.value == S.REMOVED_SPTE for i in plain)
    with following(later):
        domain = spte_domain("ept_ad")
        described = describe_spte("ept_ad", 1 << 63)
    assert [i.value for i in domain if i.label.startswith("not-present")][0] == 1 << 63
    assert any(i.value == later.frozen and i.label.startswith("FROZEN_SPTE") for i in domain)
    assert not any(i.value == 0 and i.label.startswith("not-present") for i in domain)
    assert described["spte.h"] == "SHADOW_NONPRESENT_VALUE"
    assert "spte.h" not in describe_spte("ept_ad", 1 << 63)     # outside: spte.py's bits
    assert len(domain) == len(plain)
