"""C to models: the C subset (``c_subset``), after-models derived from hunks or whole functions
(``derive``), C function sources read from text (``c_source``), and the comparison of a tree's
translations with the hand-written models (``audit``).  Used by resolve; imports no later stage."""
