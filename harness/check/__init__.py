"""Stage 3, check: model pairs and contracts become findings with minimal counterexamples.
``engine`` runs function-level and operation-level checks through ``drivers``; ``checks`` holds
the named invariants, ``contracts`` what a patch may change, ``profiles`` the Hypothesis
settings, ``sequences`` the operation sequences every check runs first."""
