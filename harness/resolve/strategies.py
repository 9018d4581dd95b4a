"""Resolve: scoped hunks + index blob ids -> (before, after) models, or MISS.

The diff itself picks the versions: each modelled file's ``index a..b`` line
names the pre-image blob ``a`` and the post-image blob ``b``.  The *before*
version set is a state of the tree (``registry.SERIES_STATES``) whose blobs
match every pre-image the patch names; the *after* set is the same state with
each touched file moved to its post-image blob.  A behaviour hunk is covered
only when its function is modelled in both (or deleted/added on purpose).

With a kernel tree (``resolve(..., tree=...)``) resolution is an ordered list
too: first each read file's pre-image (``preimage.ROUTES``: series memory,
index blob, ``--rev``, history; then, for the whole patch, ``reverse``: a
later commit minus the patch, whose state the models then come from, the
approximate base said in the reason), then the models (``_models_for``): a
hand-written state that holds exactly the tree's functions
(``STATE_STRATEGIES`` index / equal models), else the tree's own state
translated whole (``tree_source``) if kconform can run it, else the
hand-written state the hunks fit by content, else the nearest.  Each step
that fails says why, and the reasons are kept in the result.

Nothing here guesses: a missing index line, an unknown blob, an unmodelled
function or a change outside any function is a MISS with the reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from harness.ingest.hunks import hunk_lines, side_code
from harness.ingest.scope import is_read_file
from harness.resolve import labels
from harness.resolve.preimage import (LATER, REVERSE, Memory, PreImage, PreImageMiss, find_preimages,
                                      functions_in_preimages)
from kernel_models import registry
from kernel_models.model_source import HAND_WRITTEN
from kernel_models.registry import Version, VersionSet

DOCUMENTATION = "documentation"
BEHAVIOUR = "behaviour"
COMMENT = "comment"
WHITESPACE = "whitespace"


@dataclass(frozen=True)
class FunctionPair:
    """One changed function: its body before and after (None = absent there)."""

    file: str
    function: str
    before: Version | None
    after: Version | None

    @property
    def label(self) -> str:
        return f"{self.file.rsplit('/', 1)[-1]}::{self.function}"


@dataclass(frozen=True)
class HunkCoverage:
    index: int
    file: str
    function: str | None
    kind: str
    covered: bool
    model: str | None
    reason: str


@dataclass(frozen=True)
class Resolution:
    before: VersionSet | None
    after: VersionSet | None
    pairs: tuple[FunctionPair, ...]
    hunks: tuple[HunkCoverage, ...]
    reason: str
    notes: tuple[str, ...] = ()      # said on the patch's verdict line too (the CLI's "note:")
    preimages: tuple = ()            # with a kernel tree: each read file's PreImage or miss
    memory: Memory | None = None     # with a kernel tree: the texts the series has left

    @property
    def complete(self) -> bool:
        return bool(self.hunks) and all(h.covered for h in self.hunks)

    def as_dict(self) -> dict | None:
        found = {"before": self.before.name if self.before else None,
                 "after": self.after.name if self.after else None, "reason": self.reason}
        if self.preimages:
            found["preimages"] = [p.as_dict() for p in self.preimages]
        return found


def _touched_blobs(hunks) -> dict[str, tuple[str | None, str | None]]:
    blobs: dict[str, tuple[str | None, str | None]] = {}
    for hunk in hunks:
        if registry.is_modelled_file(hunk.file):
            blobs.setdefault(hunk.file, (hunk.source_blob, hunk.target_blob))
    return blobs


# After-states this process derived (name -> VersionSet): the next patch of a
# series may name a derived post-image as its pre-image.
DERIVED_STATES: dict[str, VersionSet] = {}


def find_before_state(pre_images: dict[str, str | None], previous: str | None = None,
                      ) -> tuple[str | None, str]:
    """The series state whose blobs match every pre-image; reason text."""
    missing = sorted(f for f, blob in pre_images.items() if blob is None)
    if missing:
        return None, (f"no index line for {', '.join(missing)}: the diff does not say which "
                      f"version it applies to")
    left = DERIVED_STATES.get(previous) if previous else None
    if left is not None and all(registry.blob_matches(registry.stands_for(left.blob(f)), b)
                                for f, b in pre_images.items()):
        return previous, (f"pre-image blobs are the post-images the previous patch of the series "
                          f"left (derived state '{previous}')")
    candidates = [name for name, blobs in registry.SERIES_STATES.items()
                  if all(registry.blob_matches(blobs.get(f), b) for f, b in pre_images.items())]
    if not candidates:
        named = ", ".join(f"{f.rsplit('/', 1)[-1]}@{b}" for f, b in sorted(pre_images.items()))
        return None, f"pre-image blobs {named} match no modelled state of the tree"
    if previous in candidates:
        return previous, f"pre-image blobs match the state left by the previous patch ({previous})"
    if len(candidates) == 1:
        return candidates[0], f"pre-image blobs match the state '{candidates[0]}'"
    return candidates[0], (f"pre-image blobs match states {', '.join(candidates)}; "
                           f"using the earliest, '{candidates[0]}'")


def find_state_by_content(hunks, per_function: dict | None = None) -> tuple[str | None, str]:
    """The state whose models the hunks' removed and context lines fit.

    For a patch whose index lines name blobs no model knows (a later revision
    on another base, or a plain diff without index lines): every behaviour hunk
    must apply, statement by statement, to the model of its function in that
    state (``derive.derive_function`` refuses a hunk whose removed or context
    code the model does not hold).  Several fitting states: the latest, said so.
    When none fits, ``per_function`` (if given) is filled with why each changed
    function does or does not fit the closest state.
    """
    from harness.translate import derive
    groups: dict[tuple[str, str], list] = {}
    for hunk in hunks:
        if hunk.kind == BEHAVIOUR and registry.is_modelled_file(hunk.file) and hunk.function:
            groups.setdefault((hunk.file, hunk.function), []).append(hunk)
    if not groups:
        return None, "no behaviour hunk in a modelled function to match by content"
    fitting = []
    # the closest state: most functions fitting, then fewest unknown names; the latest on ties
    closest: tuple[tuple[int, int], str, list[str]] | None = None
    for name in HAND_WRITTEN.states():
        state = HAND_WRITTEN.state(name)
        why: dict[tuple[str, str], str] = {}
        unknown_names = 0
        for (file, function), function_hunks in groups.items():
            unknown = _unknown_words(file, function, function_hunks, state)
            unknown_names += len(unknown)
            if unknown:
                why[(file, function)] = (f"its hunk names {', '.join(unknown[:4])}, which the "
                                         f"model does not")
                continue
            try:
                derive.derive_function(file, function, function_hunks, state)
            except derive.Miss as exc:
                why[(file, function)] = str(exc)
        if not why:
            fitting.append(name)
        score = (len(groups) - len(why), -unknown_names)
        if closest is None or score >= closest[0]:
            closest = (score, name, why)
    functions = ", ".join(sorted(f for _, f in groups))
    if not fitting:
        (fits, _), name, why = closest
        if per_function is not None:
            for key in groups:
                per_function[key] = (
                    f"{key[1]} does not fit state '{name}', the closest: {why[key]}"
                    if key in why else
                    f"{key[1]} fits state '{name}', but the patch's other changed functions "
                    f"do not ({', '.join(sorted(f for _, f in why))}): the patch's state is "
                    f"not modelled")
        return None, (f"the hunks' removed and context lines fit no modelled version of "
                      f"{functions} (closest: state '{name}', where {fits} of {len(groups)} "
                      f"fit; {'; '.join(f'{k[1]}: {v}' for k, v in why.items())}); if an "
                      f"earlier patch of its series changed these functions, check the "
                      f"patches together, in order")
    chosen = fitting[-1]
    models = ", ".join(sorted({registry.lookup(f, fn, VersionSet.series_state(chosen).blob(f))
                               .model_id for f, fn in groups}))
    also = f" (also fit: {', '.join(fitting[:-1])}; using the latest)" if len(fitting) > 1 else ""
    return chosen, (f"pre-image resolved by content: the hunks' removed and context lines fit "
                    f"{models} in state '{chosen}'{also}; the functions the patch does not "
                    f"touch are that state's models, not necessarily its own tree's")


C_WORDS = frozenset("""if else return true false NULL bool int long unsigned signed char void
u8 u16 u32 u64 s64 gfn_t kvm_pfn_t static inline const struct sizeof likely unlikely
goto""".split())


def _unknown_words(file: str, function: str, hunks, state: VersionSet) -> list[str]:
    """Identifiers of the hunks' context and removed code that the model of
    ``function`` in ``state`` does not hold (C keywords aside); empty when all
    are known.  Resolving by content must not rest on a window that skipped
    lines the model knows nothing of."""
    import ast
    import re

    from harness.translate import derive
    version = registry.lookup(file, function, state.blob(file))
    if version is None:
        return [function]
    tree = derive.expanded_model(version.function)
    from kernel_models.line_maps import NO_EFFECT_CALLS

    known = set(C_WORDS) | set(NO_EFFECT_CALLS) | {function,
                                                   function.removeprefix("FNAME(").rstrip(")")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            known.add(node.id)
        elif isinstance(node, ast.Attribute):
            known.add(node.attr)
        elif isinstance(node, ast.arg):
            known.add(node.arg)
    unknown: list[str] = []
    for hunk in hunks:
        lines = hunk_lines(hunk)
        low, high = _function_extent(lines)
        for index, code in side_code(lines, "-").items():
            if not low <= index <= high:
                continue
            code = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', " ", code)  # no literals
            labels = set(re.findall(r"\bgoto\s+([A-Za-z_]\w*)", code))
            for word in re.findall(r"[A-Za-z_]\w*", code):
                if word not in known and word not in labels and word not in unknown:
                    unknown.append(word)
    return unknown


def _function_extent(lines) -> tuple[int, int]:
    """Indexes of the hunk lines that belong to the function its changed lines are in.

    A hunk's context can run past the function's closing ``}`` into the next
    definition (or start in the previous one); a ``}`` at column 0 marks the
    edge.  In a copy whose indentation was lost every line is at column 0 and
    nothing is cut.
    """
    changed = [i for i, line in enumerate(lines) if line.mine]
    indented = any(line.text[:1] in (" ", "\t") for line in lines)
    if not changed or not indented:
        return 0, len(lines) - 1
    low = next((i + 1 for i in range(changed[0] - 1, -1, -1)
                if lines[i].kind != "+" and lines[i].text.startswith("}")), 0)
    high = next((i for i in range(changed[-1] + 1, len(lines))
                 if lines[i].kind != "+" and lines[i].text.startswith("}")), len(lines) - 1)
    return low, high


def resolve(hunks, *, previous: str | None = None, tree=None, rev: str = "HEAD",
            memory: Memory | None = None, label: str = "the previous patch") -> Resolution:
    """Pick before/after version sets for a patch's scoped hunks.

    With ``tree`` (``harness.resolve.kernel_tree.open_tree``) each file's
    pre-image is found first (``harness.resolve.preimage``: the series held in
    ``memory``, the index blob, the file at ``rev``, the file's history), then
    the models (``harness.resolve.tree_strategies``); without, the hunks and
    index lines alone decide.  ``label`` names this patch in the memory the
    resolution leaves for the next one.
    """
    touched = _touched_blobs(hunks)
    if tree is not None:
        return _resolve_with_tree(hunks, touched, tree, previous, rev, memory or Memory(),
                                  label)
    return _resolve_plain(hunks, touched, previous)


def _resolve_plain(hunks, touched, previous: str | None, note: str = "") -> Resolution:
    pre_images = {f: registry.find_blob(f, src) or src for f, (src, _) in touched.items()}
    before_name, reason = (None, "the patch changes no modelled file")
    by_content = False
    if touched:
        before_name, reason = find_before_state(pre_images, previous)
        if before_name is None:
            per_function: dict = {}
            before_name, content_reason = find_state_by_content(hunks, per_function)
            by_content = before_name is not None
            reason = f"{reason}; {content_reason}"
            if before_name is None and per_function:
                return _finish(hunks, touched, None, reason + note, False, per_function)
    return _finish(hunks, touched, before_name, reason + note, by_content)


def _finish(hunks, touched, before_name: str | None, reason: str, by_content: bool,
            per_function: dict | None = None) -> Resolution:
    """The after side for a chosen before state: the post-image blobs' models, or derived."""
    before = after = None
    misses: dict[int, str] = {}
    notes: list[str] = []
    if before_name is not None:
        before = DERIVED_STATES.get(before_name) or VersionSet.series_state(before_name)
        checked = labels.check_labels(hunks, before, touched)
        misfit = next((c for c in checked if c.misfit), None)
        if misfit is not None and not by_content:
            text = labels.misfit_text(misfit, before_name)
            by_content_name, content_reason = find_state_by_content(hunks)
            if by_content_name is not None and by_content_name != before_name:
                resolved = _finish(hunks, touched, by_content_name,
                                   f"{reason}; {text}: {content_reason}", True, per_function)
                return dataclasses.replace(resolved, notes=(text,) + resolved.notes)
            notes.append(f"{text}, but no modelled state fits them either, so the index "
                         f"line's state is used and the hunks' fit is not verified")
        relabelled = frozenset(c.file for c in checked if c.wrong_post_image)
        for check in checked:
            if check.unchecked and not check.wrong_post_image:
                reason += "; " + labels.unchecked_text(check)
        after, misses, said = _after_side(hunks, touched, before, before_name, by_content,
                                          relabelled)
        if after is None and relabelled:
            # the content cannot be derived whole: say what differs, keep the label
            for check in checked:
                if check.wrong_post_image:
                    notes.append(labels.unsettled_text(check, misses))
            reason += "".join(f"; {note}" for note in notes[-len(relabelled):])
            after, misses, said = _after_side(hunks, touched, before, before_name, by_content,
                                              frozenset())
        elif relabelled:
            for check in checked:
                if check.wrong_post_image:
                    notes.append(labels.wrong_post_image_text(check))
                    reason += "; " + notes[-1]
        reason += said
    if before is None:     # why there is no before-model, on every hunk it leaves uncovered
        misses = {h.index: (per_function or {}).get((h.file, h.function), reason)
                  for h in hunks}
    derived_how = (("the before-model of the state the hunks fit by content" if by_content
                    else "the before-model resolved from the index blob")
                   + "; the after-model derived from the hunk")
    hows = {f: derived_how for f, b in (after.blobs if after is not None else ())
            if b.startswith("derived-")}
    coverage = tuple(_cover(h, before, after, misses.get(h.index), hows.get(h.file))
                     for h in hunks)
    pairs = _pairs(hunks, coverage, before, after)
    return Resolution(before, after, pairs, coverage, reason, tuple(notes))


def _after_side(hunks, touched, before: VersionSet, before_name: str, by_content: bool,
                relabelled: frozenset[str]) -> tuple[VersionSet | None, dict[int, str], str]:
    """(after version set or None, misses per hunk, what to add to the reason): the
    post-image blobs' models, derived from the hunks where a blob is unknown or its
    index line was found wrong (``relabelled``)."""
    after_blobs = dict(before.blobs)
    unknown_after = []
    for file, (_, dst) in touched.items():
        full = registry.find_blob(file, dst)
        if full is None or file in relabelled:
            unknown_after.append(f"{file.rsplit('/', 1)[-1]}@{dst}"
                                 + (" (its index line is wrong)" if full else ""))
        else:
            after_blobs[file] = full
    if not unknown_after:
        after_name = _state_name(after_blobs) or f"{before_name} + this patch"
        return VersionSet.of(after_name, after_blobs), {}, ""
    from harness.translate import derive
    derived = derive.derive_after(hunks, before, only_unknown=True,
                                  pre_image_by_content=by_content, derive_known=relabelled)
    if derived.after is None:
        why = "; ".join(f"hunk {i}: {r}" for i, r in derived.misses)
        return None, dict(derived.misses), (
            f"; post-image {', '.join(unknown_after)} is not modelled and no after-model "
            f"could be derived ({why})")
    DERIVED_STATES[derived.after.name] = derived.after
    names = ", ".join(f"{f.rsplit('/', 1)[-1]}::{fn}" for f, fn in derived.derived)
    return derived.after, dict(derived.misses), (
        f"; post-image {', '.join(unknown_after)} is not modelled: after-model derived from "
        f"the hunks ({names or 'no function changes'})")


TREE_HOW = ("before translated whole from the pre-image blob in the kernel tree, after from "
            "that text with the hunks applied")


def _resolve_with_tree(hunks, touched, tree, previous: str | None, rev: str, memory: Memory,
                       label: str) -> Resolution:
    """Pre-images from the tree, then the models (``tree_strategies``' docstring: the order)."""
    read = sorted({h.file for h in hunks if is_read_file(h.file)})
    if not read:
        return _not_read(_resolve_plain(hunks, {}, previous), hunks, OUT_OF_SCOPE)
    rev = memory.rev or rev      # an earlier patch of the run moved the state to a later commit
    routes = find_preimages(hunks, read, tree, rev, memory)
    found = {f: r for f, r in routes.items() if isinstance(r, PreImage)}
    missed = {f: r for f, r in routes.items() if isinstance(r, PreImageMiss)}
    preimages = tuple(routes[f] for f in read)
    hunks = functions_in_preimages(hunks, found)    # a label header: the pre-image names it
    if missed:
        reason = "; ".join(f"no pre-image of {f}: {m.reason}" for f, m in missed.items())
        coverage = tuple(_cover(h, None, None, derive_miss=(
            f"no pre-image: {missed[h.file].reason}" if h.file in missed else
            f"not checked: the pre-image of {', '.join(missed)} was not found"))
            for h in hunks)
        return _not_read(Resolution(None, None, (), coverage, reason, preimages=preimages,
                                    memory=memory, notes=tuple(p.note for p in preimages)),
                         hunks)
    state_rev, state_memory = rev, memory
    moved_to = {p.commit for p in found.values() if p.route in (LATER, REVERSE)}
    if moved_to:
        # the pre-images are a later commit's ('later'), or that commit minus the patch
        # ('reverse'): the state is that commit's, which holds what the earlier patches in
        # memory were ('reverse': they are merged before it; 'later': there were none)
        [state_rev] = moved_to
        state_memory = Memory()
    # the next patch of the run reads that commit too, with this patch's texts on it
    after_memory = (Memory(added=memory.added) if moved_to else memory).with_files(
        {f: p.post for f, p in found.items()}, label, rev=state_rev if moved_to else None)
    merged_at = {p.commit for p in found.values() if p.route == REVERSE}
    resolution = _models_for(hunks, touched, previous, found, tree, state_rev, state_memory)
    if merged_at:
        resolution = _unverified_hunks(dataclasses.replace(resolution, reason=(
            f"{resolution.reason}; {REVERSE_CAVEAT}" if resolution.reason else REVERSE_CAVEAT)),
            found)
    notes = resolution.notes + tuple(p.note for p in preimages)
    return _not_read(dataclasses.replace(resolution, preimages=preimages, notes=notes,
                                         memory=after_memory), hunks)


REVERSE_CAVEAT = ("the base is approximate: the pre-images are a later commit of the tree "
                  "with the patch taken out again (route 'reverse'), not the tree the patch "
                  "was written on")


def _unverified_hunks(resolution: Resolution, found: dict) -> Resolution:
    """A hunk whose removed lines only the patch gives (route 'reverse') is not covered: its
    before side was never seen in a tree, so no check of it may pass."""
    coverage = []
    for cover in resolution.hunks:
        image = found.get(cover.file)
        why = image.unverified_reason(cover.index) if image is not None else None
        if why is not None and cover.kind != DOCUMENTATION:
            cover = dataclasses.replace(cover, covered=False, model=None, reason=why)
        coverage.append(cover)
    return dataclasses.replace(resolution, hunks=tuple(coverage))


# Hand-written states chosen this way hold exactly the tree's functions (or the blobs the
# index lines name): they are used before a translation of the tree.
VERIFIED_ROUTES = ("index", "equal models")


def _models_for(hunks, touched, previous, preimages, tree, rev, memory) -> Resolution:
    """The models of a patch whose pre-images were found, from the first source that has
    them: the hand-written states the tree's functions equal, else the tree's own state
    translated whole, else the hand-written states the hunks fit by content or nearest."""
    hand, route = _resolve_on_images(hunks, touched, previous, preimages)
    if hand.complete and route in VERIFIED_ROUTES:
        return hand
    translated = _translated(hunks, tree, rev, memory, preimages)
    if isinstance(translated, Resolution):
        if hand.reason:
            translated = dataclasses.replace(translated, reason=(
                f"{translated.reason}; the hand-written models were not used ({hand.reason})"))
        return translated
    note = f"the tree's translated state was not used: {translated}"
    coverage = tuple(c if c.covered else dataclasses.replace(c, reason=f"{c.reason}; {note}")
                     for c in hand.hunks)
    return dataclasses.replace(hand, hunks=coverage, reason=f"{hand.reason}; {note}")


def _translated(hunks, tree, rev, memory, preimages) -> Resolution | str:
    """The Resolution over the tree's translated state, or why there is none."""
    try:
        from harness.resolve import tree_source
    except ImportError as exc:                  # pycparser missing: an install problem
        return f"the translator cannot be loaded ({exc})"
    before, after = tree_source.tree_pair(tree, rev, memory, preimages)
    return tree_source.translated_resolution(hunks, before, after)


OUT_OF_SCOPE = ("out of scope: the patch changes none of the files kconform reads (the KVM "
                "x86 MMU, arch/x86/kvm/mmu/, and its headers)")


def _not_read(resolution: Resolution, hunks, reason: str | None = None) -> Resolution:
    """A hunk of a file kconform does not read is a MISS naming the file."""
    coverage = []
    for hunk, cover in zip(hunks, resolution.hunks):
        if not is_read_file(hunk.file) and hunk.kind != DOCUMENTATION:
            cover = dataclasses.replace(cover, covered=False, model=None, reason=(
                f"{hunk.file} is not read: kconform reads the KVM x86 MMU files "
                f"(arch/x86/kvm/mmu/) and their headers"))
        coverage.append(cover)
    changed = dict(hunks=tuple(coverage), pairs=tuple(
        p for p in resolution.pairs if is_read_file(p.file)))
    if reason is not None:
        changed["reason"] = reason
    return dataclasses.replace(resolution, **changed)


def _pre_image_id(index_id: str | None, preimage: PreImage) -> str | None:
    """The id the hand-written states are matched on: the index line's, when the pre-image
    is that blob (or the text the series left for it); else the text's own blob id."""
    return index_id if preimage.route in ("index", "series") else preimage.blob


@dataclass
class StateRequest:
    """What the state strategies read: the changed functions, found whole in the tree."""

    hunks: tuple
    groups: dict                 # (file, function) -> hunks
    found: dict                  # (file, function) -> (pre FunctionSource, post FunctionSource)
    previous: str | None
    pre_images: dict             # file -> the id to match the states' blobs on
    _translations: dict | None = None

    @property
    def functions(self) -> str:
        return ", ".join(sorted(c for _, c in self.groups))

    def translations(self) -> dict:
        """Per hand-written state: the tree's pre-image functions translated there."""
        from harness.resolve import tree_strategies as T

        if self._translations is None:
            self._translations = T.pre_translations(self.found, self.groups)
        return self._translations


@dataclass(frozen=True)
class StateChoice:
    state: str
    route: str                   # the strategy's name
    reason: str


def state_by_index(request: StateRequest) -> StateChoice | str:
    name, reason = find_before_state(request.pre_images, request.previous)
    return StateChoice(name, "index", reason) if name is not None else reason


def state_by_equal_models(request: StateRequest) -> StateChoice | str:
    from harness.resolve import tree_strategies as T

    fitting = T.fingerprint_states(request.translations())
    if not fitting:
        return f"no modelled state's models equal the tree's {request.functions}"
    name = request.previous if request.previous in fitting else fitting[-1]
    verb = "equals the model" if len(request.groups) == 1 else "equal the models"
    return StateChoice(name, "equal models", f"the tree's pre-image {request.functions} {verb} "
                                             f"in state '{name}' (whole-function translation)")


def state_by_content(request: StateRequest) -> StateChoice | str:
    name, reason = find_state_by_content(request.hunks)
    return StateChoice(name, "content", reason) if name is not None else reason


def state_nearest(request: StateRequest) -> StateChoice | str:
    from harness.resolve import tree_strategies as T

    name, distance, miss = T.nearest_state(request.translations())
    if name is None:
        return f"the tree's {request.functions} cannot be translated: {miss}"
    return StateChoice(name, "nearest", f"no modelled state holds the tree's "
                                        f"{request.functions}: the other functions come from "
                                        f"the nearest state '{name}' ({distance} model lines "
                                        f"differ)")


# The hand-written state a tree's pre-image is checked in, tried in order.
STATE_STRATEGIES = (state_by_index, state_by_equal_models, state_by_content, state_nearest)


def choose_state(request: StateRequest) -> tuple[StateChoice | None, list[str]]:
    """The first strategy's choice, and the reasons of those before it."""
    tried = []
    for strategy in STATE_STRATEGIES:
        found = strategy(request)
        if isinstance(found, StateChoice):
            return found, tried
        tried.append(found)
    return None, tried


def _resolve_on_images(hunks, touched, previous: str | None, preimages: dict,
                       ) -> tuple[Resolution, str]:
    """The hand-written models for pre-images read from the tree, and the route that chose
    the state (a name of STATE_STRATEGIES' results, or "hunks" for the hunk-level route)."""
    from harness.resolve import tree_strategies as T
    from harness.resolve.kernel_tree import TreeMiss
    from harness.translate import derive

    touched = {f: blobs for f, blobs in touched.items() if f in preimages}
    images = {f: (preimages[f].text, preimages[f].post) for f in touched}
    routes = "; ".join(f"{p.detail} ({p.route})" for _, p in sorted(preimages.items()))
    verified = f"; every hunk applies to its pre-image in the kernel tree ({routes})"
    if not touched:
        return _resolve_plain(hunks, touched, previous, note=verified), "hunks"
    groups = T.changed_functions(hunks, images)
    try:
        found = T.sources(groups, images)
    except TreeMiss as exc:
        return _resolve_plain(hunks, touched, previous,
                              note=f"{verified}; whole functions not used: {exc}"), "hunks"
    if not groups:
        return _resolve_plain(hunks, touched, previous, note=verified), "hunks"
    request = StateRequest(hunks, groups, found, previous, {
        f: _pre_image_id(src, preimages[f]) for f, (src, _) in touched.items()})
    choice, tried = choose_state(request)
    functions = request.functions
    if choice is None:
        return _finish(hunks, touched, None, "; ".join(tried), False), "none"
    name, reason = choice.state, "; ".join(tried + [choice.reason])
    by_id, nearest = choice.route == "index", choice.route == "nearest"
    state = DERIVED_STATES.get(name) or VersionSet.series_state(name)
    if by_id and all(registry.find_blob(f, dst) for f, (_, dst) in touched.items()):
        return _finish(hunks, touched, name,
                       reason + verified + T.fidelity(found, groups, state), False), choice.route
    try:
        before, after, _, notes = T.tree_pair(found, groups, state, touched,
                                              T.digest_of(hunks))
    except derive.Miss as exc:
        if nearest:
            return _finish(hunks, touched, None, f"{reason}; {exc}", False), "none"
        unproven = ("" if by_id else
                    f", so the tree's {functions} is not known to equal the model: the change "
                    f"is checked on the model its hunks fit, not on the tree's function")
        return _finish(hunks, touched, name, f"{reason}{verified}; whole functions not "
                                             f"translated ({exc}){unproven}", not by_id), "content"
    DERIVED_STATES[after.name] = after
    reason += verified + f"; {TREE_HOW}" + "".join(f"; {n}" for n in notes)
    tree_keys = set(groups)
    coverage = tuple(_cover(h, before, after, None,
                            how=TREE_HOW if (h.file, h.function) in tree_keys else None)
                     for h in hunks)
    return (Resolution(before, after, _pairs(hunks, coverage, before, after), coverage, reason),
            choice.route)


def _state_name(blobs: dict[str, str]) -> str | None:
    for name, state in registry.SERIES_STATES.items():
        if all(blobs.get(f) == b for f, b in state.items()):
            return name
    return None


def _cover(hunk, before: VersionSet | None, after: VersionSet | None,
           derive_miss: str | None = None, how: str | None = None) -> HunkCoverage:
    def result(covered, model, reason):
        return HunkCoverage(hunk.index, hunk.file, hunk.function, hunk.kind, covered, model,
                            reason)

    if hunk.kind == DOCUMENTATION:
        if hunk.file.lower().endswith(".rst"):
            return result(True, None, "documentation: no behaviour to model; its "
                                      "reStructuredText is parsed before and after "
                                      "(check rst_parses)")
        return result(True, None, "documentation is not compiled: no behaviour to model")
    if not registry.is_modelled_file(hunk.file):
        return result(False, None, f"{hunk.file} is not a modelled file" if is_read_file(hunk.file)
                      else f"{hunk.file} is not a modelled file (kconform reads the KVM x86 MMU)")
    if hunk.kind == COMMENT:
        return result(True, "c-tokens", "comment-only: the code tokens before and after are "
                                        "identical")
    if hunk.kind == WHITESPACE:
        return result(True, "c-tokens", "whitespace-only: code tokens and comments identical")
    if hunk.kind != BEHAVIOUR:
        return result(False, None, f"a '{hunk.kind}' change is not modelled")
    if hunk.function is None:
        return result(False, None, "the change lies outside any function the scope could "
                                   "identify" + (f" ({hunk.reason})" if hunk.reason else ""))
    if before is None:
        return result(False, None, f"no before-model: {derive_miss}" if derive_miss
                      else "no before-model: the pre-image version is unknown")
    old = before.version(hunk.file, hunk.function)
    if old is None and not registry.versions_of(hunk.file, hunk.function):
        return result(False, None, f"{hunk.function} is not modelled")
    if after is None:
        why = f": {derive_miss}" if derive_miss else ""
        return result(False, old.model_id if old else None,
                      "no after-model: the post-image blob is not modelled and the change "
                      f"could not be derived from the hunk{why}")
    new = after.version(hunk.file, hunk.function)
    if old is None and new is None:
        return result(False, None, f"{hunk.function} is modelled, but in neither "
                                   f"{before.blob(hunk.file)} nor {after.blob(hunk.file)}")
    model = " -> ".join(v.model_id if v else "(absent)" for v in (old, new))
    if old is new:
        return result(True, model, "the same model body holds before and after "
                                   "(the change does not alter the modelled logic)")
    return result(True, model, how or "before and after models resolved from the index blobs")


def _pairs(hunks, coverage, before, after) -> tuple[FunctionPair, ...]:
    if before is None or after is None:
        return ()
    seen: dict[tuple[str, str], FunctionPair] = {}
    for hunk, cover in zip(hunks, coverage):
        if hunk.kind != BEHAVIOUR or not cover.covered or hunk.function is None:
            continue
        key = (hunk.file, hunk.function)
        if key not in seen:
            seen[key] = FunctionPair(hunk.file, hunk.function,
                                     before.version(hunk.file, hunk.function),
                                     after.version(hunk.file, hunk.function))
    return tuple(seen.values())
