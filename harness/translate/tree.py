"""Whole-tree translation: Translate a kernel tree's MMU files, whole, into runnable Python models.

The API is documented in the package docstring (``harness.translate``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import marshal
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field, replace

from harness.translate import emit, environment, environment_reach, units
from harness.translate.preprocess import Preprocessor, PreprocessError

MMU = "arch/x86/kvm/mmu/"
UNITS = (MMU + "mmu.c", MMU + "spte.c", MMU + "tdp_mmu.c", MMU + "tdp_iter.c",
         MMU + "page_track.c")
REPORTED_FILES = (MMU + "mmu.c", MMU + "spte.c", MMU + "spte.h", MMU + "tdp_mmu.c",
                  MMU + "tdp_iter.c", MMU + "tdp_iter.h", MMU + "paging_tmpl.h",
                  MMU + "mmu_internal.h", MMU + "tdp_mmu.h", "arch/x86/kvm/mmu.h",
                  MMU + "page_track.c", MMU + "page_track.h")
TRANSLATOR_REVISION = "5"       # bump when the generated code changes


@dataclass(frozen=True)
class FunctionTranslation:
    name: str                      # the C name (paging_tmpl.h: ept_*, paging64_*, paging32_*)
    file: str
    line: int
    python: str | None = None      # the Python source, None when it did not translate
    miss: str | None = None        # "construct at file:line" when it did not
    takes_kvm: bool = False
    params: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()  # names reached that neither the tree nor the environment has

    @property
    def translated(self) -> bool:
        return self.python is not None


@dataclass(frozen=True)
class FileReport:
    file: str
    blob: str
    functions: tuple[FunctionTranslation, ...]

    @property
    def defined(self) -> int:
        return len(self.functions)

    @property
    def translated(self) -> int:
        return sum(f.translated for f in self.functions)


@dataclass
class TreeState:
    name: str
    blobs: dict[str, str]
    functions: dict[str, FunctionTranslation]
    files: dict[str, FileReport]
    seconds: float = 0.0
    layouts: dict = field(default_factory=dict, repr=False)   # "struct x" -> fields
    _compiled: dict = field(default_factory=dict, repr=False)
    _namespace: dict | None = field(default=None, repr=False, compare=False)

    def model(self, name: str):
        """The translated function ``name`` as a callable model, or None."""
        if name in self._compiled:
            return self._compiled[name]
        translation = self.functions.get(name)
        fn = None
        if translation is not None and translation.python is not None:
            if self._namespace is None:
                # the environment's names, once per state; each function gets its own copy
                scope = environment.namespace()
                layouts = self.layouts
                scope["_struct"] = lambda ctype, _positional=(), **fields: \
                    environment_reach.new_struct(layouts, ctype, _positional, **fields)
                self._namespace = scope
            scope = dict(self._namespace)
            exec(compiled(name, translation.python), scope)  # noqa: S102
            fn = scope[emit.py_name(name)]
            fn.__doc__ = f"{name}: translated from {translation.file}:{translation.line}"
        self._compiled[name] = fn
        return fn

    def version_set(self, name: str | None = None) -> "TranslatedVersionSet":
        return TranslatedVersionSet(name or self.name, self)


@dataclass(frozen=True)
class TranslatedVersionSet:
    """What ``kernel_models.vm.VM`` needs of a version set, over a translated state."""

    name: str
    state: TreeState = field(compare=False, repr=False)
    overrides: tuple = ()          # (C name, function) pairs replacing translations

    def functions(self) -> dict:
        found = dict(environment.host_models())
        for name in self.state.functions:
            fn = self.state.model(name)
            if fn is not None:
                found[name] = fn
        for name, fn in list(found.items()):
            translation = self.state.functions.get(name)
            if translation is not None and name in environment.OUTPUT_POINTERS:
                found[name] = environment.output_pointer_adapter(fn, len(translation.params))
        for name in list(found):
            for prefix in ("ept_", "paging64_"):
                if name.startswith(prefix):
                    generic = f"FNAME({name[len(prefix):]})"
                    found.setdefault(generic, _by_guest_mode(name[len(prefix):]))
        for name, adapt in environment_reach.ADAPTERS.items():
            if name in found and self.state.functions.get(name) is not None:
                found[name] = adapt(found[name])
        found.update(environment.MEMSLOT_FUNCTIONS)
        found.update(dict(self.overrides))
        return found

    def helpers(self) -> frozenset[str]:
        return environment.HELPERS

    def prepare_vm(self, vm) -> None:
        """Called by ``VM.__init__``: the kernel-named fields the translations read."""
        environment.prepare_vm(vm, self.state.layouts)

    def prepare_vcpu(self, vcpu) -> None:
        """Called by ``kernel_models.operations.new_vm``: the vCPU's kernel-named fields."""
        from harness.translate import environment_reach, vm_objects
        vm_objects.prepare_vcpu(vcpu)
        environment_reach.prepare_vcpu(vcpu)

    def signature(self, name: str):
        t = self.state.functions.get(name)
        return emit.Signature(name, t.params, t.takes_kvm, "") if t is not None else None

    @property
    def blobs(self) -> tuple:
        return tuple(sorted(self.state.blobs.items()))

    def __str__(self) -> str:
        return self.name


def _by_guest_mode(name: str):
    """``FNAME(name)`` as the models call it: the instantiation of the VM's guest PTE type."""
    def dispatch(vm, *args):
        prefix = {"ept": "ept_", "64": "paging64_", "32": "paging32_"}[getattr(vm, "pttype", "64")]
        return getattr(vm, prefix + name)(*args)
    dispatch.__name__ = f"FNAME({name})"
    return dispatch


# ---------------------------------------------------------------------------
# Reading a tree
# ---------------------------------------------------------------------------

class TreeError(Exception):
    """The tree cannot be read at that revision (the message says why)."""


def tree_files(path: str, rev: str) -> dict[str, str]:
    """path -> blob id of every file at ``rev`` under arch/x86 and include/."""
    done = subprocess.run(["git", "-C", path, "ls-tree", "-r", rev, "--", "arch/x86", "include",
                           "virt"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise TreeError(f"{path}: cannot list {rev}: {done.stderr.strip() or 'git failed'}")
    files = {}
    for row in done.stdout.splitlines():
        meta, name = row.split("\t", 1)
        mode, kind, blob = meta.split()
        if kind == "blob":
            files[name] = blob
    return files


def blob_texts(path: str, blobs: list[str]) -> dict[str, str]:
    if not blobs:
        return {}
    done = subprocess.run(["git", "-C", path, "cat-file", "--batch"], input=("\n".join(blobs) + "\n").encode(),
                          capture_output=True, check=False)
    data, texts, i = done.stdout, {}, 0
    for blob in blobs:
        header_end = data.index(b"\n", i)
        header = data[i:header_end].split()
        size = int(header[2])
        texts[blob] = data[header_end + 1:header_end + 1 + size].decode("utf-8", "surrogateescape")
        i = header_end + 1 + size + 1
    return texts


def translate_tree(tree, rev: str = "HEAD", *, cache: bool = True) -> TreeState:
    """Translate the MMU units of ``tree`` (a path or a ``KernelTree``) at ``rev``."""
    path = getattr(tree, "path", tree)
    files = tree_files(path, rev)
    wanted = [p for p in files if p.startswith(("arch/x86/kvm/", "include/linux/kvm_host.h",
                                                "arch/x86/include/asm/kvm_host.h"))]
    texts = blob_texts(path, [files[p] for p in wanted])
    sources = {p: texts[files[p]] for p in wanted}
    return translate_sources(sources, name=rev, blobs={p: files[p] for p in wanted}, cache=cache)


def hash_object(text: str) -> str:
    data = text.encode("utf-8", "surrogateescape")
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's id


_MEMORY: dict[str, list[FunctionTranslation]] = {}


def translator_digest() -> str:
    """A digest of the translator's own source: a change to it invalidates the cache."""
    global _DIGEST
    if _DIGEST is None:
        here = os.path.dirname(__file__)
        digest = hashlib.sha256(TRANSLATOR_REVISION.encode())
        for name in ("preprocess.py", "units.py", "c_types.py", "emit.py", "runtime.py",
                     "environment.py", "vm_objects.py", "tree.py", "environment_reach.py"):
            with open(os.path.join(here, name), "rb") as handle:
                digest.update(handle.read())
        _DIGEST = digest.hexdigest()
    return _DIGEST


_DIGEST = None


def state_key(blobs: dict[str, str]) -> str:
    """The cache key of a tree state: the translator's source and every blob read."""
    return hashlib.sha256(json.dumps([translator_digest(), sorted(blobs.items())])
                          .encode()).hexdigest()


def translate_sources(sources: dict[str, str], *, name: str = "sources",
                      blobs: dict[str, str] | None = None, cache: bool = False) -> TreeState:
    """Translate the units of ``sources`` (path -> text); blob ids computed when not given."""
    import time
    start = time.perf_counter()
    blobs = dict(blobs or {})
    for path, text in sources.items():
        blobs.setdefault(path, hash_object(text))
    key = state_key({p: blobs[p] for p in sources})
    found = _MEMORY.get(key)
    if found is None and cache:
        found = _disk_read(key)
    if found is None:
        found = translate_units([u for u in UNITS if u in sources], sources.get)
        if cache:
            _disk_write(key, found)
    _MEMORY[key] = found
    rows, layouts = found
    functions: dict[str, FunctionTranslation] = {}
    per_file: dict[str, dict[str, FunctionTranslation]] = {}
    for translation in rows:
        slot = per_file.setdefault(translation.file, {})
        known = slot.get(translation.name)
        if known is None or (not known.translated and translation.translated):
            slot[translation.name] = translation
        current = functions.get(translation.name)
        if current is None or (not current.translated and translation.translated):
            functions[translation.name] = translation
    files = {file: FileReport(file, blobs.get(file, ""), tuple(found.values()))
             for file, found in sorted(per_file.items())}
    return TreeState(name, {p: blobs[p] for p in sources}, functions, files,
                     time.perf_counter() - start, layouts)


@dataclass
class _Unit:
    path: str
    parsed: list
    constants: dict
    globals: frozenset
    statement_macros: frozenset
    miss: FunctionTranslation | None = None
    layouts: dict = field(default_factory=dict)


def _read_unit(unit: str, read, parse_cache: dict) -> _Unit:
    pre = Preprocessor(read, keep=frozenset(environment.PRIMITIVES) | emit.WARN_LIKE)
    pre.define('KBUILD_MODNAME "kvm"', "<built-in>", 0)
    for level in ("EMERG", "ALERT", "CRIT", "ERR", "WARNING", "NOTICE", "INFO", "DEBUG", "CONT"):
        pre.define(f'KERN_{level} ""', "<built-in>", 0)     # include/linux/kern_levels.h
    try:
        lines = pre.run(unit)
    except PreprocessError as exc:
        return _Unit(unit, [], {}, frozenset(), frozenset(),
                     FunctionTranslation("<unit>", unit, exc.line, miss=f"preprocessor: {exc}"))
    items = units.scan_items(lines)
    parser = units.Parser(units.typedef_names(lines, items))
    parsed = []
    for definition in units.definitions(lines, items):
        # a header's function reads the same in every unit that includes it: parse it once
        key = (definition.file, definition.line, definition.text)
        if key not in parse_cache:
            try:
                parse_cache[key] = (parser.parse(definition), None)
            except units.ParseMiss as exc:
                parse_cache[key] = (None, f"{exc.construct} at "
                                          f"{exc.file.rsplit('/', 1)[-1]}:{exc.line}")
        node, miss = parse_cache[key]
        if node is not None:
            definition = replace(definition, name=node.decl.name)
        parsed.append((definition, node, miss))
    constants = dict(environment.CONSTANTS)
    constants.update(units.enum_constants(lines, parser, items))
    return _Unit(unit, parsed, constants,
                 frozenset(units.global_names(lines, items)) | GLOBALS_FROM_OUTSIDE,
                 frozenset(n for n, m in pre.macros.items() if m.statement_expression),
                 layouts=units.struct_layouts(lines, parser, constants, items))


def translate_units(paths: list[str], read) -> tuple[list[FunctionTranslation], dict]:
    """Every function of the units, translated against the signatures of all of them;
    and the struct layouts the units define."""
    parse_cache: dict = {}
    read_units = [_read_unit(path, read, parse_cache) for path in paths]
    layouts = {}
    for unit in read_units:
        for ctype, fields in unit.layouts.items():
            layouts.setdefault(ctype, fields)
    signatures = {}
    for unit in read_units:
        for definition, node, _ in unit.parsed:
            if node is not None and definition.name not in signatures:
                signatures[definition.name] = emit.signature(node)
    out = []
    for unit in read_units:
        if unit.miss is not None:
            out.append(unit.miss)
        host = {name: name in environment.HOST_TAKES_KVM for name in environment.host_models()
                if name not in signatures and name not in environment.PRIMITIVES}
        context = emit.Context(signatures=signatures, constants=unit.constants,
                               globals=unit.globals, primitives=frozenset(environment.PRIMITIVES),
                               statement_macros=unit.statement_macros, host=host,
                               name_arguments=environment.NAME_ARGUMENTS,
                               lvalue_first=environment.LVALUE_FIRST,
                               foreach_cursors=environment.FOREACH_CURSORS)
        for definition, node, miss in unit.parsed:
            out.append(_translate_one(definition, node, miss, context))
    return out, layouts


# (C name, Python source) -> its code object: compiled once to check the translation, and
# that object is what ``TreeState.model`` runs; read back from the disk cache when warm.
_CODE: dict[tuple[str, str], object] = {}


def compiled(name: str, python: str):
    """The code object of one translated function's source."""
    key = (name, python)
    code = _CODE.get(key)
    if code is None:
        code = _CODE[key] = compile(python, f"<translated {name}>", "exec")
    return code


def _translate_one(definition, node, miss, context) -> FunctionTranslation:
    where = (definition.name, definition.file, definition.line)
    if node is None:
        return FunctionTranslation(*where, miss=miss)
    sig = emit.signature(node)
    try:
        python = emit.Emitter(node, context, definition.file).function()
        compiled(definition.name, python)
    except emit.Miss as exc:
        return FunctionTranslation(*where, miss=str(exc), takes_kvm=sig.takes_kvm,
                                   params=sig.params)
    except (SyntaxError, RecursionError) as exc:
        return FunctionTranslation(*where, miss=f"translator produced invalid Python ({exc})",
                                   takes_kvm=sig.takes_kvm, params=sig.params)
    unknown = tuple(sorted(set(_UNKNOWN.findall(python))))
    return FunctionTranslation(*where, python, None, sig.takes_kvm, sig.params, unknown)


# Kernel globals defined outside the tree that the MMU reads (VM attributes).
GLOBALS_FROM_OUTSIDE = frozenset({"enable_mmio_caching", "tdp_enabled", "tdp_mmu_enabled",
                                  "nx_huge_pages", "kvm_x86_ops", "boot_cpu_data",
                                  "enable_ept", "allow_smaller_maxphyaddr"})

import re as _re  # noqa: E402 - used only for the unknown-name scan

_UNKNOWN = _re.compile(r"_unknown(?:_value)?\(_vm, '([^']+)'\)")


# ---------------------------------------------------------------------------
# The disk cache
# ---------------------------------------------------------------------------

def cache_dir() -> str:
    from harness import __version__
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kconform", f"translate-{__version__}")


def _code_path(key: str) -> str:
    """The compiled translations of one cache entry: bytecode is this Python's own, so the
    file is named by its magic number (another Python compiles the sources again)."""
    return os.path.join(cache_dir(), f"{key}.{importlib.util.MAGIC_NUMBER.hex()}.code")


def _disk_read(key: str):
    if os.environ.get("KCONFORM_NO_CACHE"):
        return None
    path = os.path.join(cache_dir(), key + ".json")
    try:
        with open(path, encoding="utf-8") as handle:
            rows = json.load(handle)
    except (OSError, ValueError):
        return None
    try:
        functions = [FunctionTranslation(**{**row, "params": tuple(row["params"]),
                                            "unknown": tuple(row["unknown"])})
                     for row in rows["functions"]]
        layouts = {k: tuple(tuple(f) for f in v) for k, v in rows["layouts"].items()}
    except (TypeError, KeyError):
        return None
    _read_code(key, functions)
    return functions, layouts


def _read_code(key: str, functions: list[FunctionTranslation]) -> None:
    """The code objects ``_disk_write`` kept beside the rows, one per translated row in
    order, taken only when they match the rows (else the sources compile on first use)."""
    try:
        with open(_code_path(key), "rb") as handle:
            codes = marshal.load(handle)
    except (OSError, EOFError, ValueError, TypeError):
        return
    translated = [f for f in functions if f.python is not None]
    if not isinstance(codes, list) or len(codes) != len(translated) or any(
            getattr(code, "co_filename", None) != f"<translated {translation.name}>"
            for translation, code in zip(translated, codes)):
        return
    for translation, code in zip(translated, codes):
        _CODE.setdefault((translation.name, translation.python), code)


def _disk_write(key: str, found) -> None:
    rows, layouts = found
    if os.environ.get("KCONFORM_NO_CACHE"):
        return
    directory = cache_dir()
    try:
        os.makedirs(directory, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"functions": [asdict(r) for r in rows], "layouts": layouts}, handle)
        codes = [compiled(r.name, r.python) for r in rows if r.python is not None]
        fd, code_temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            marshal.dump(codes, handle)
        # the code first: rows found on disk always have their code beside them
        os.replace(code_temporary, _code_path(key))
        os.replace(temporary, os.path.join(directory, key + ".json"))
    except OSError:
        pass    # a cache that cannot be written is only slower
