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

import dataclasses
from dataclasses import dataclass, field

from kernel_models.entry_points import parse_release
from kernel_models.registry import Version

# The files translate_tree reads (harness.translate.tree): KVM x86 and the two kvm_host.h.
TRANSLATED_PREFIXES = ("arch/x86/kvm/", "include/linux/kvm_host.h",
                       "arch/x86/include/asm/kvm_host.h")

# (C name, Python text, struct layouts) -> the function: a body translated the same way in two
# states is one model, so the engine sees only what a patch changed.
_SHARED: dict[tuple, object] = {}
ENVIRONMENT = "harness/translate/environment.py"


def _layouts_key(layouts: dict) -> str:
    import hashlib

    return hashlib.sha1(repr(sorted((k, repr(v)) for k, v in layouts.items())).encode()
                        ).hexdigest()


@dataclass(frozen=True)
class TranslatedState:
    """One translated tree state, read through ``kernel_models.model_source.ModelState``."""

    name: str
    state: object = field(compare=False, repr=False)      # harness.translate TreeState
    release: tuple[int, int, int] | None = None
    spte_layout: object = field(default=None, compare=False, repr=False)
    operations_reason: str | None = None      # why the operation mix cannot run here, if so
    translated = True                          # replay tokens name it, not its blobs
    _cache: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def _version_set(self):
        if "versions" not in self._cache:
            self._cache["versions"] = self.state.version_set(self.name)
        return self._cache["versions"]

    def rows(self) -> dict[str, Version]:
        """C name -> Version, from the translator's version set (host models, FNAME()
        dispatch and output-pointer adapters included), one object per distinct body."""
        if "rows" not in self._cache:
            layouts = _layouts_key(getattr(self.state, "layouts", {}) or {})
            rows = {}
            for name, function in self._version_set().functions().items():
                translation = self.state.functions.get(name)
                if translation is not None and translation.python is not None:
                    key, file = (name, translation.python, layouts), translation.file
                else:
                    key, file = (name, "environment"), ENVIRONMENT
                rows[name] = Version(file, name, _SHARED.setdefault(key, function),
                                     (self.blob(file),))
            self._cache["rows"] = rows
        return self._cache["rows"]

    def functions(self) -> dict:
        if "functions" not in self._cache:
            self._cache["functions"] = {name: row.function for name, row in self.rows().items()}
        return self._cache["functions"]

    def helpers(self) -> frozenset[str]:
        return self._version_set().helpers()

    def prepare_vm(self, vm) -> None:
        """``kernel_models.vm.VM`` calls it: the kernel-named fields translations read."""
        self._version_set().prepare_vm(vm)

    def prepare_vcpu(self, vcpu) -> None:
        self._version_set().prepare_vcpu(vcpu)

    def signature(self, name: str):
        """The C parameters of ``name`` (drivers adapt their calls to them)."""
        return self._version_set().signature(name)

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
    """(before, after): the tree state a patch applies to, and the one it leaves.

    Each is named by the tree's revision and the blobs of the files that differ
    from it, so two states of one run never share a name (replay finds them so).
    """
    from harness.resolve.kernel_tree import hash_object

    base = sources_at(tree, rev)
    makefile = tree.text_at(rev, "Makefile")
    label = f"tree {tree.label(rev)}"
    before_texts = state_texts(base, memory, {f: p.text for f, p in preimages.items()})
    after_texts = state_texts(base, memory, {f: p.post for f, p in preimages.items()})

    def name(texts):
        changed = [f"{f.rsplit('/', 1)[-1]}@{hash_object(t)[:12]}"
                   for f, t in sorted(texts.items()) if base.get(f) != t]
        return f"{label} + {', '.join(changed)}" if changed else label

    return (translate_state(before_texts, name(before_texts), makefile),
            translate_state(after_texts, name(after_texts), makefile))


# ---------------------------------------------------------------------------
# The translated route of resolve
# ---------------------------------------------------------------------------

TRANSLATED_HOW = ("before and after translated whole from the kernel tree's state (the tree "
                  "at --rev, the series so far, this patch's pre-image / post-image)")


def operations_run(before: TranslatedState, after: TranslatedState) -> str | None:
    """None when the operation mix runs on both states; else why not.

    Each state builds its VM through its translated init path and runs a
    writable fault, an unmap and a zap of everything (the entry points every
    sequence starts from), under both MMUs: a state where those stop on a name
    the environment lacks cannot run the mix.
    """
    from kernel_models import operations

    smoke = (("fault", {"gfn": 0, "write": True, "exec": False, "prefetch": False}),
             ("unmap", {"start": 0, "end": 512}), ("zap_all", {}))
    for state in (before, after):
        for mmu in operations.MMUS:
            step = "building the VM"
            try:
                vm = operations.new_vm(state, "ept_ad", mmu)
                for step, args in smoke:
                    operations.run(vm, step, **args)
            except Exception as exc:   # noqa: BLE001 - the reason is the result
                what = ("cannot build a VM" if step == "building the VM"
                        else f"stops in its {step} step")
                return (f"the operation mix {what} ({mmu} MMU) on '{state.name}': "
                        f"{type(exc).__name__}: {exc}")
    return None


def driver_runs(state: TranslatedState, function: str) -> str | None:
    """None when ``function``'s driver runs a case of every mode on ``state``; else why not."""
    from harness.check import drivers

    driver = drivers.DRIVERS.get(function)
    if driver is None:
        return f"{function} has no function driver"
    if function not in state.functions():
        return None                   # absent on this side: its callers are driven
    for mode in drivers.MODES:
        cases = driver.cases(mode)
        if not cases:
            continue
        try:
            driver.call(driver.new_vm(state, mode), cases[0])
        except Exception as exc:   # noqa: BLE001
            return (f"the function driver of {function} cannot run on '{state.name}' "
                    f"({mode}): {type(exc).__name__}: {exc}")
    return None


def runs(before: TranslatedState, after: TranslatedState, function: str,
         operations: str | None) -> str | None:
    """None when something kconform has runs ``function``'s change; else why nothing does.

    A translation nothing executes checks nothing, so it must not cover a hunk:
    the function's driver must run on both sides, or the operation mix must.
    """
    why = driver_runs(before, function) or driver_runs(after, function)
    if why is None or operations is None:
        return None
    return f"{why}, and {operations}"


def defined_elsewhere(hunk, before: TranslatedState, after: TranslatedState,
                      changed: frozenset) -> str | None:
    """The file that defines the function a header hunk only declares (a prototype), when
    it is translated there on each side that has it (a new function: after only; a removed
    one: before only) and this patch changes that definition too; else None.  The
    declaration has no behaviour of its own: the definition's hunks carry the change (a
    prototype changed without its definition does not compile, and is not modelled)."""
    rows = [state.rows().get(hunk.function) for state in (before, after)]
    files = {row.file for row in rows if row is not None}
    if len(files) != 1 or files & {hunk.file, ENVIRONMENT}:
        return None
    [file] = files
    if any(row is None and state.miss(file, hunk.function) not in (None, "") and
           "is not defined" not in state.miss(file, hunk.function)
           for row, state in zip(rows, (before, after))):
        return None                   # there, but not translated: that side is not modelled
    return file if (file, hunk.function) in changed else None


def cover(hunk, before: TranslatedState, after: TranslatedState,
          changed: frozenset = frozenset()):
    """How a translated tree state covers one hunk (``strategies.HunkCoverage``);
    ``changed``: the (file, function) pairs of the patch's other behaviour hunks."""
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
        definition = defined_elsewhere(hunk, before, after, changed)
        if definition is None:
            return result(False, None, f"{hunk.function} is defined on neither side")
        short = definition.rsplit("/", 1)[-1]
        return result(True, f"declaration of {hunk.function} (defined in {short})", (
            f"a declaration in {hunk.file.rsplit('/', 1)[-1]}: {hunk.function} is defined in "
            f"{short}, translated on each side that has it, and this patch's hunks there "
            f"carry the change"))
    model = " -> ".join(f"translated {hunk.function}" if row else "(absent)"
                        for row in (old, new))
    return result(True, model, TRANSLATED_HOW)


def translated_resolution(hunks, before: TranslatedState, after: TranslatedState):
    """The Resolution over two translated states, or the reason they cannot be used."""
    from harness.resolve.strategies import BEHAVIOUR, FunctionPair, Resolution

    changed = frozenset((h.file, h.function) for h in hunks if h.kind == BEHAVIOUR)
    coverage = tuple(cover(h, before, after, changed) for h in hunks)
    pairs, seen = [], set()
    for hunk, covered in zip(hunks, coverage):
        key = (hunk.file, hunk.function)
        if hunk.kind != BEHAVIOUR or not covered.covered or key in seen:
            continue
        seen.add(key)
        pairs.append(FunctionPair(hunk.file, hunk.function, before.version(*key),
                                  after.version(*key)))
    operations = operations_run(before, after)
    unrun = {p.function: runs(before, after, p.function, operations) for p in pairs}
    unrun = {f: why for f, why in unrun.items() if why is not None}
    if pairs and len(unrun) == len(pairs):
        return "; ".join(f"nothing runs the translated {f}: {why}" for f, why in unrun.items())
    if operations is not None:
        before = dataclasses.replace(before, operations_reason=operations)
        after = dataclasses.replace(after, operations_reason=operations)
    coverage = tuple(dataclasses.replace(c, covered=False, reason=(
        f"translated, but nothing runs it: {unrun[c.function]}"))
        if c.covered and c.function in unrun and c.kind == BEHAVIOUR else c for c in coverage)
    pairs = [p for p in pairs if p.function not in unrun]
    from kernel_models.model_source import register_state

    register_state(before)
    register_state(after)
    reason = f"the tree's state translated whole: '{before.name}' -> '{after.name}'"
    if operations is not None:
        reason += f"; operation level not run ({operations})"
    return Resolution(before, after, tuple(pairs), coverage, reason)
