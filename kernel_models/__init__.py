"""Python models of the KVM x86 MMU code touched by the folio dirty/accessed RFC.

One module per kernel file (``spte.py`` for spte.h/spte.c, ``mmu.py`` for
mmu.c, ``tdp_mmu.py`` for tdp_mmu.c and tdp_iter.h, ``paging_tmpl.py`` for
paging_tmpl.h, ``kvm_main.py`` for the virt/kvm/kvm_main.c helpers), plus:

- ``effects.py``: the typed effect events every model appends to a log;
- ``vm.py``: ``VM``, one virtual machine's state and the version-set dispatch
  through which every model function calls every other;
- ``registry.py``: the data table mapping (file, blob) to function versions;
- ``operations.py``: the entry points a VM exercises (fault, unmap, age...).

Every model function takes the ``VM`` as its first argument, named ``kvm``
(it stands for ``struct kvm`` plus the module globals the C code reads), and
calls other kernel functions as ``kvm.<c_name>(...)`` so that the version set
chosen for the VM decides which body runs.
"""
