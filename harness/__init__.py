"""kconform: patch-conformance regression harness for KVM x86 MMU patches.

Stages (each one module, data flows one way):
ingest -> scope -> resolve -> check -> report.
"""

__version__ = "0.1.0"
TOOL_NAME = "kconform"
