"""A translated tree state as a model source (``kernel_models.model_source``).

With ``--kernel-tree`` a patch's before side is the tree at ``--rev`` with
the texts the series left in memory and the patch's pre-images; its after
side is the same with the post-images.  ``tree_pair`` translates both whole
(``harness.translate.translate_sources``; cached by blob ids) and wraps each
as a ``TranslatedState``, which the engine runs like the hand-written
version sets: one function object per distinct translation, so a function
whose translated body is the same on both sides is the same model (the
engine compares only what changed).

The release a state stands for is read from the tree's top Makefile; it
picks the entry points' argument lists (``kernel_models.entry_points``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kernel_models.entry_points import parse_release
from kernel_models.registry import Version

# The files translate_tree reads (harness.translate.tree): KVM x86 and the two kvm_host.h.
TRANSLATED_PREFIXES = ("arch/x86/kvm/", "include/linux/kvm_host.h",
                       "arch/x86/include/asm/kvm_host.h")

_COMPILED: dict[tuple[str, str], object] = {}     # (C name, Python text) -> function


def _compiled(name: str, python: str, where: str):
    key = (name, python)
    if key not in _COMPILED:
        from harness.translate import emit, environment

        scope = environment.namespace()
        exec(compile(python, f"<translated {name}>", "exec"), scope)  # noqa: S102 - our output
        function = scope[emit.py_name(name)]
        function.__doc__ = f"{name}: translated from {where}"
        _COMPILED[key] = function
    return _COMPILED[key]


@dataclass(frozen=True)
class TranslatedState:
    """One translated tree state, read through ``kernel_models.model_source.ModelState``."""

    name: str
    state: object = field(compare=False, repr=False)      # harness.translate TreeState
    release: tuple[int, int, int] | None = None
    spte_layout: object = field(default=None, compare=False, repr=False)
    _cache: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def rows(self) -> dict[str, Version]:
        if "rows" not in self._cache:
            rows = {}
            for name, translation in self.state.functions.items():
                if translation.python is None:
                    continue
                where = f"{translation.file}:{translation.line}"
                rows[name] = Version(translation.file, name,
                                     _compiled(name, translation.python, where),
                                     (self.blob(translation.file),))
            self._cache["rows"] = rows
        return self._cache["rows"]

    def functions(self) -> dict:
        return {name: row.function for name, row in self.rows().items()}

    def helpers(self) -> frozenset[str]:
        from harness.translate import environment

        return environment.HELPERS

    def blob(self, file: str) -> str:
        return self.state.blobs.get(file, "absent")

    @property
    def blobs(self) -> tuple:
        return tuple(sorted(self.state.blobs.items()))

    def version(self, file: str, name: str) -> Version | None:
        """``name``'s translation in ``file`` (``FNAME(x)``: its 64-bit guest instance)."""
        if name.startswith("FNAME("):
            name = "paging64_" + name[len("FNAME("):-1]
        row = self.rows().get(name)
        return row if row is not None and row.file == file else None

    def miss(self, file: str, name: str) -> str | None:
        """Why ``name`` has no translation here (the construct and line), or None."""
        if name.startswith("FNAME("):
            name = "paging64_" + name[len("FNAME("):-1]
        translation = self.state.functions.get(name)
        if translation is None:
            return f"{name} is not defined in {file.rsplit('/', 1)[-1]} of this state"
        return translation.miss

    def __str__(self) -> str:
        return self.name


def sources_at(tree, rev: str) -> dict[str, str]:
    """path -> text of every file the translator reads, at ``rev``."""
    return tree.files(rev, TRANSLATED_PREFIXES)


def state_texts(base: dict[str, str], memory, images: dict[str, str]) -> dict[str, str]:
    """The tree's files, then what the series left in memory, then this patch's images."""
    texts = dict(base)
    for file, text, _ in (memory.files if memory is not None else ()):
        texts[file] = text
    texts.update(images)
    return texts


def translate_state(texts: dict[str, str], name: str, makefile: str | None) -> TranslatedState:
    from harness.resolve.spte_layout import read_layout
    from harness.translate import translate_sources

    state = translate_sources(texts, name=name, cache=True)
    layout = read_layout(texts)
    return TranslatedState(name, state, parse_release(makefile) if makefile else None,
                           layout if not isinstance(layout, str) else None)


def tree_pair(tree, rev: str, memory, preimages: dict) -> tuple[TranslatedState,
                                                               TranslatedState]:
    """(before, after): the tree state a patch applies to, and the one it leaves."""
    base = sources_at(tree, rev)
    makefile = tree.text_at(rev, "Makefile")
    label = tree.label(rev)
    files = ", ".join(sorted(f.rsplit("/", 1)[-1] for f in preimages))
    before = translate_state(state_texts(base, memory, {f: p.text for f, p in preimages.items()}),
                             f"tree {label} (translated)", makefile)
    after = translate_state(state_texts(base, memory, {f: p.post for f, p in preimages.items()}),
                            f"tree {label} + this patch's {files} (translated)", makefile)
    return before, after


# ---------------------------------------------------------------------------
# The translated route of resolve
# ---------------------------------------------------------------------------

TRANSLATED_HOW = ("before and after translated whole from the kernel tree's state (the tree "
                  "at --rev, the series so far, this patch's pre-image / post-image)")


def runs(before: TranslatedState, after: TranslatedState, functions) -> str | None:
    """None when kconform can run these states; else why not (the first failure).

    A translation nothing can execute checks nothing, so it must not cover a
    hunk: the operation mix must build its VM on both sides, and each changed
    function's driver must run a case.
    """
    from harness.check import drivers
    from kernel_models import operations

    for state in (before, after):
        for mmu in operations.MMUS:
            try:
                operations.new_vm(state, "ept_ad", mmu)
            except Exception as exc:   # noqa: BLE001 - the reason is the result
                return (f"the operation mix cannot build a VM ({mmu} MMU) on '{state.name}': "
                        f"{type(exc).__name__}: {exc}")
        for function in functions:
            driver = drivers.DRIVERS.get(function)
            if driver is None or function not in state.functions():
                continue
            case = driver.cases("ept_ad")[0]
            try:
                driver.call(driver.new_vm(state, "ept_ad"), case)
            except Exception as exc:   # noqa: BLE001
                return (f"the function driver of {function} cannot run on '{state.name}': "
                        f"{type(exc).__name__}: {exc}")
    return None


def cover(hunk, before: TranslatedState, after: TranslatedState):
    """How a translated tree state covers one hunk (``strategies.HunkCoverage``)."""
    from harness.ingest.scope import is_read_file
    from harness.resolve.strategies import BEHAVIOUR, COMMENT, DOCUMENTATION, WHITESPACE, \
        HunkCoverage

    def result(covered, model, reason):
        return HunkCoverage(hunk.index, hunk.file, hunk.function, hunk.kind, covered, model,
                            reason)

    if hunk.kind == DOCUMENTATION:
        return result(True, None, "documentation is not compiled: no behaviour to model")
    if not is_read_file(hunk.file):
        return result(False, None, f"{hunk.file} is not read")
    if hunk.kind in (COMMENT, WHITESPACE):
        return result(True, "c-tokens", f"{hunk.kind}-only: the code tokens before and after "
                                        f"are identical")
    if hunk.kind != BEHAVIOUR:
        return result(False, None, f"a '{hunk.kind}' change is not modelled")
    if hunk.function is None:
        return result(False, None, "the change lies outside any function the scope could "
                                   "identify" + (f" ({hunk.reason})" if hunk.reason else ""))
    old, new = before.version(hunk.file, hunk.function), after.version(hunk.file, hunk.function)
    for side, state, row in (("before", before, old), ("after", after, new)):
        if row is None:
            why = state.miss(hunk.file, hunk.function)
            if why and "is not defined" not in why:
                return result(False, None, f"{hunk.function} does not translate {side} the "
                                           f"change: {why}")
    if old is None and new is None:
        return result(False, None, f"{hunk.function} is defined on neither side")
    model = " -> ".join(f"translated {hunk.function}" if row else "(absent)"
                        for row in (old, new))
    return result(True, model, TRANSLATED_HOW)


def translated_resolution(hunks, before: TranslatedState, after: TranslatedState):
    """The Resolution over two translated states, or the reason they cannot be used."""
    from harness.resolve.strategies import BEHAVIOUR, FunctionPair, Resolution

    coverage = tuple(cover(h, before, after) for h in hunks)
    pairs, seen = [], set()
    for hunk, covered in zip(hunks, coverage):
        key = (hunk.file, hunk.function)
        if hunk.kind != BEHAVIOUR or not covered.covered or key in seen:
            continue
        seen.add(key)
        pairs.append(FunctionPair(hunk.file, hunk.function, before.version(*key),
                                  after.version(*key)))
    why = runs(before, after, [p.function for p in pairs])
    if why is not None:
        return why
    reason = f"the tree's state translated whole: '{before.name}' -> '{after.name}'"
    return Resolution(before, after, tuple(pairs), coverage, reason)
