"""C to models: the C subset (``c_subset``), after-models derived from hunks or whole functions
(``derive``), C function sources read from text (``c_source``), and the comparison of a tree's
translations with the hand-written models (``audit``).  Used by resolve; imports no later stage.

Whole files of a kernel tree (``tree``, with ``preprocess``, ``units``, ``emit`` and the
hand-written ``environment``):
Translate a kernel tree's MMU files, whole, into runnable Python models.

API (what ``resolve``/``check``/``audit`` use)::

    from harness.translate import translate_tree, translate_sources
    state = translate_tree("/path/to/linux", "v6.9")      # a git tree and a revision
    state = translate_sources({path: text, ...})          # files in memory (tests)

    state.functions                   # C name -> FunctionTranslation (translated or not)
    state.files                       # file -> FileReport (every function the file defines)
    state.blobs                       # file -> blob id of every file read
    fn = state.model("spte_write_protect")      # Python function(kvm, *C args), or None
    versions = state.version_set()    # a VersionSet look-alike: functions(), helpers(), name
    vm = kernel_models.vm.VM(versions, "ept_ad")   # runs the translations
    vm.spte_write_protect(sptep, True)

A translated function has the hand-written models' calling convention: the VM
first, then the C parameters without a leading ``struct kvm *kvm`` (the VM is
that object).  It calls its callees' translations from the same tree state
through the VM (``_vm.callee(...)``), and the environment's primitives for
everything the tree does not define (``harness.translate.environment``: the
one hand-written module, which lists what is assumed).

How a file is read: the C files of ``UNITS`` are preprocessed
(``preprocess``: macros from the tree's own headers, ``#ifdef CONFIG_*`` by a
fixed x86-64 configuration, ``paging_tmpl.h`` once per guest mode with
``FNAME()`` giving ``ept_*``, ``paging64_*``, ``paging32_*``), cut into
function definitions and parsed (``units``: pycparser, kernel typedefs
opaque), and each function is turned into Python (``emit``).  A function
that cannot be is a ``FunctionTranslation`` with ``miss`` naming the
construct, file and line; nothing is guessed.

Translations are cached by the blob ids of every file read and a digest of the
translator's own source: in memory, and on disk under
``$XDG_CACHE_HOME/kconform/translate-<version>`` (or ``~/.cache``), so a second
run on the same tree state reads the Python back.  Set ``KCONFORM_NO_CACHE=1``
to skip the disk cache.  ``runtime`` holds the C semantics the generated code
needs; ``coverage`` counts what translated per file; ``harness.check.fidelity``
runs a translated state against the hand-written models.
"""

_TREE_API = ("translate_tree", "translate_sources", "TreeState", "FunctionTranslation",
             "FileReport", "TranslatedVersionSet", "TreeError", "REPORTED_FILES", "UNITS")


def __getattr__(name):
    """The tree API, imported on first use (pycparser and the environment load only then)."""
    if name in _TREE_API:
        from harness.translate import tree
        return getattr(tree, name)
    raise AttributeError(f"module 'harness.translate' has no attribute {name!r}")
