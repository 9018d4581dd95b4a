"""Facts about how models write C statements that have no direct Python form.

Read by ``harness.derive`` when it translates a hunk into model statements.
Only control flow lives here: a ``goto label;`` of a C function is written
in its model as one Python statement (usually a call of a helper holding the
code after the label, returned), given per (file, C function, label).
"""

from kernel_models.registry import SPTE_C

# (file, C function) -> {label: the model's Python statement for "goto label;"}
GOTO_STATEMENTS: dict[tuple[str, str], dict[str, str]] = {
    # spte.py: make_spte's "out:" tail is _make_spte_out, returned on both paths.
    (SPTE_C, "make_spte"): {
        "out": "return _make_spte_out(kvm, vcpu, slot, gfn, level, spte, prefetch, wrprot)",
    },
}
