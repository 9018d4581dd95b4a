"""Stage 2, resolve: scoped hunks and index blob ids become a (before, after) pair of version
sets per function, or a MISS with its reason.  ``strategies`` is the ordered list of routes;
``tree_strategies`` the routes that read a kernel tree (``kernel_tree``)."""
