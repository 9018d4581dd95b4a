"""Resolve with a kernel tree at hand: whole functions of the pre-images the routes found.

``harness.resolve.strategies`` calls these once ``harness.resolve.preimage``
has found every read file's pre-image (and so its post-image):

1. Each changed function is read whole from both images and translated
   (``derive.translate_function``).
2. The hand-written state the other functions come from is the first of
   ``strategies.STATE_STRATEGIES``: the one whose blobs the index lines name
   (when the pre-image is that blob); else the one whose models equal the
   tree's pre-image functions (whole-function fingerprint); then, after the
   tree's own state translated whole (``tree_source``) when kconform can run
   it, the one the hunks fit by content; else the nearest (fewest differing
   model lines), said so.
3. When every changed function translates on both sides, the pair is the
   two translations (the pre-image's translation replaced by the model
   itself when they are equal); when not, the hunk-level route of the plain
   resolver runs on the chosen state, and the reason says why.
"""

from __future__ import annotations

import hashlib

from harness.translate import derive
from harness.resolve.kernel_tree import TreeMiss
from harness.translate.c_source import find_function
from kernel_models import registry
from kernel_models.model_source import HAND_WRITTEN
from kernel_models.registry import VersionSet

BEHAVIOUR = "behaviour"


def _short(file: str, blob: str | None) -> str:
    return f"{file.rsplit('/', 1)[-1]}@{blob}"


def changed_functions(hunks, images) -> dict[tuple[str, str], list]:
    groups: dict[tuple[str, str], list] = {}
    for hunk in hunks:
        if hunk.kind == BEHAVIOUR and hunk.file in images and hunk.function:
            groups.setdefault((hunk.file, hunk.function), []).append(hunk)
    return groups


def sources(groups, images):
    """(file, function) -> (pre-image FunctionSource, post-image FunctionSource); or TreeMiss."""
    found = {}
    for file, function in groups:
        pre_text, post_text = images[file]
        pre, post = find_function(pre_text, function), find_function(post_text, function)
        if pre is None or post is None:
            side = "pre" if pre is None else "post"
            raise TreeMiss(f"{function} is not defined in the {side}-image of "
                           f"{file.rsplit('/', 1)[-1]}: the patch adds or removes it")
        found[(file, function)] = (pre, post)
    return found


def translations(found, state: VersionSet, hunks_by_key, side: int):
    """(file, function) -> translated function, in ``state``; Miss on the first failure."""
    result = {}
    for (file, function), pair in found.items():
        source = pair[side]
        blob = hunks_by_key[(file, function)][0]
        named = blob.source_blob if side == 0 else blob.target_blob
        doc = (f"{function} translated whole from {_short(file, named)} (lines "
               f"{source.lines}) of the kernel tree, in state '{state.name}'.")
        result[(file, function)] = derive.translate_function(file, source, state, doc)
    return result


def pre_translations(found, groups) -> dict[str, dict | derive.Miss]:
    """Per series state: the tree's pre-image functions translated there, or the Miss."""
    by_state: dict[str, dict | derive.Miss] = {}
    for name in HAND_WRITTEN.states():
        try:
            by_state[name] = translations(found, HAND_WRITTEN.state(name), groups, 0)
        except derive.Miss as exc:
            by_state[name] = exc
    return by_state


def _model_of(state_name: str, file: str, c_name: str):
    return registry.lookup(file, c_name, VersionSet.series_state(state_name).blob(file))


def fingerprint_states(by_state) -> list[str]:
    """States whose models equal every pre-image function read from the tree."""
    return [name for name, pres in by_state.items() if not isinstance(pres, derive.Miss)
            and all(derive.same_body(fn, _model_of(name, f, c)) for (f, c), fn in pres.items())]


def nearest_state(by_state) -> tuple[str | None, int, str]:
    """The state whose models differ least from the tree's pre-image functions."""
    best: tuple[int, int, str] | None = None
    last_miss = ""
    for order, (name, pres) in enumerate(by_state.items()):
        if isinstance(pres, derive.Miss):
            last_miss = str(pres)
            continue
        distance = sum(derive.body_distance(fn, _model_of(name, f, c))
                       for (f, c), fn in pres.items())
        if best is None or (distance, -order) < (best[0], -best[1]):
            best = (distance, order, name)
    if best is None:
        return None, 0, last_miss
    return best[2], best[0], ""


def tree_pair(found, groups, state: VersionSet, touched, digest: str):
    """(before, after, registered blobs, notes) from whole-function translations; or Miss."""
    pres = translations(found, state, groups, 0)
    posts = translations(found, state, groups, 1)
    before_blobs, after_blobs = dict(state.blobs), dict(state.blobs)
    registered, notes = [], []
    files = sorted({f for f, _ in found})
    for file in files:
        source, target = touched[file]
        differing = {c: fn for (f, c), fn in pres.items() if f == file
                     and not derive.same_body(fn, registry.lookup(f, c, state.blob(f)))}
        parent = state.blob(file)
        if differing:
            blob = f"tree-{source}-{digest}"
            registry.register_blob(file, blob, parent, differing)
            registered.append((file, blob))
            before_blobs[file] = parent = blob
            notes.append(f"the tree's {', '.join(sorted(differing))} in {_short(file, source)} "
                         f"is not the model's in '{state.name}': the before side is its "
                         f"translation")
        blob = f"derived-{target or 'unknown'}-tree{digest}"
        registry.register_blob(file, blob, parent,
                               {c: fn for (f, c), fn in posts.items() if f == file})
        registered.append((file, blob))
        after_blobs[file] = blob
    pre_name = " + ".join(f"tree {_short(f, touched[f][0])}" for f in files)
    post_name = " + ".join(f"tree {_short(f, touched[f][1])}" for f in files)
    before = VersionSet.of(f"{state.name} + {pre_name}" if notes else state.name, before_blobs)
    after = VersionSet.of(f"{state.name} + {post_name}", after_blobs)
    return before, after, registered, notes


def fidelity(found, groups, state: VersionSet) -> str:
    """A note on whether the tree's pre-image functions equal the models that hold for
    their blob (the hand-written models are used either way)."""
    try:
        pres = translations(found, state, groups, 0)
    except derive.Miss as exc:
        return f"; the tree's functions were not compared with the models ({exc})"
    notes = []
    for (file, c_name), fn in sorted(pres.items()):
        version = registry.lookup(file, c_name, state.blob(file))
        if derive.same_body(fn, version):
            notes.append(f"the tree's {c_name} translates to exactly {version.model_id}")
        else:
            notes.append(f"the tree's {c_name} differs from {version.model_id} in "
                         f"{derive.body_distance(fn, version)} translated lines (the model is "
                         f"used)")
    return "".join(f"; {n}" for n in notes)


def digest_of(hunks) -> str:
    return hashlib.sha1("\n".join(h.text for h in hunks).encode()).hexdigest()[:10]
