"""Facts about how models write C statements that have no direct Python form.

Read by ``harness.translate.derive`` when it translates a hunk into model statements.
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


# Iterator macros of the C (a macro call followed by the loop body) and how
# the models write them: ``for <target> in <model generator>(kvm, <args>)``.
# (C macro) -> (number of C arguments,
#               index of the C argument that is the loop variable,
#               the model generator's name,
#               indexes of the C arguments passed on, in order, after kvm).
# Later kernels add arguments to some of these macros (a kvm first); a call
# with another argument count is not this form and stays unsupported.
# These are the forms at the series' base (v6.9-rc).  Read in stored copies
# of that era: for_each_tdp_pte_min_level (tdp_iter.h), for_each_rmap_spte
# (mmu.c) and for_each_valid_tdp_mmu_root_yield_safe (tdp_mmu.c); the others
# as each model generator's docstring states them.
LOOP_MACROS: dict[str, tuple[int, int, str, tuple[int, ...]]] = {
    # for_each_tdp_pte_min_level(iter, root, min_level, start, end)
    "for_each_tdp_pte_min_level": (5, 0, "for_each_tdp_pte_min_level", (1, 2, 3, 4)),
    # for_each_tdp_pte(iter, root, start, end)
    "for_each_tdp_pte": (4, 0, "for_each_tdp_pte", (1, 2, 3)),
    # tdp_root_for_each_pte(iter, root, start, end): for_each_tdp_pte on a root
    "tdp_root_for_each_pte": (4, 0, "for_each_tdp_pte", (1, 2, 3)),
    # tdp_root_for_each_leaf_pte(iter, root, start, end)
    "tdp_root_for_each_leaf_pte": (4, 0, "tdp_root_for_each_leaf_pte", (1, 2, 3)),
    # for_each_rmap_spte(rmap_head, &iter, sptep): the C iterator object is not modelled
    "for_each_rmap_spte": (3, 2, "for_each_rmap_spte", (0,)),
    # for_each_valid_tdp_mmu_root_yield_safe(kvm, root, as_id)
    "for_each_valid_tdp_mmu_root_yield_safe": (3, 1, "for_each_valid_tdp_mmu_root_yield_safe", (2,)),
    # for_each_tdp_mmu_root_yield_safe(kvm, root)
    "for_each_tdp_mmu_root_yield_safe": (2, 1, "for_each_tdp_mmu_root_yield_safe", ()),
    # for_each_tdp_mmu_root(kvm, root, as_id) and the valid-only form
    "for_each_tdp_mmu_root": (3, 1, "for_each_tdp_mmu_root", (2,)),
    "for_each_valid_tdp_mmu_root": (3, 1, "for_each_valid_tdp_mmu_root", (2,)),
    # for_each_gfn_valid_sp_with_gptes(kvm, sp, gfn)
    "for_each_gfn_valid_sp_with_gptes": (3, 1, "for_each_gfn_valid_sp_with_gptes", (2,)),
}

# Calls the models leave out because nothing they do is recorded: lock
# assertions and RCU read-side sections (the models run one thread, and
# record no lock state).  A translation drops these statements; used as a
# value they are still unsupported.
NO_EFFECT_CALLS: frozenset[str] = frozenset({
    "lockdep_assert_held", "lockdep_assert_held_read", "lockdep_assert_held_write",
    "rcu_read_lock", "rcu_read_unlock",
})
