"""Stage 1, ingest and scope: a mail, mbox, diff or damaged web copy becomes ``Patch`` values
(``patches``), whitespace damage is repaired where only one reading exists (``repair``), and
every hunk is mapped to its file and C function (``scope``).  ``hunks`` reads a hunk as numbered
lines of two sides for the later stages."""
