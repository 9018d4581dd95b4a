"""Stage 4, report: findings become the results document (``results``), the machine outputs
(``outputs``: JUnit, KCIDB, patchwork, mail), the HTML page (``html_report``), terminal text
(``text``), all written together by ``writer``.  Reads results only, never engine objects."""
