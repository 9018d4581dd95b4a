"""``python -m harness`` is the same as the ``kconform`` command."""

import sys

from harness.cli import main

sys.exit(main())
