"""Trust the content, not the label: check a patch's index blob ids against its hunks.

An ``index a..b`` line is a label: a patch edited after ``git format-patch``
(a reviewer's fix-up, a mutant, a hand-merged resend) keeps the ids of the
commit it was made from while its hunks say something else.  So when a
post-image blob names a registered model, the after-model is still derived
from the hunks (where the C subset reads them) and compared with that model;
and the hunks must fit the before-state the pre-image blob names.

``check_labels`` returns what it found per file, as values; the resolver
decides what to do (derive the after-model from the content, or resolve the
before-state by content) and says so in the reason.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from kernel_models import registry
from kernel_models.registry import VersionSet

BEHAVIOUR = "behaviour"

# derive's words for "the hunk's pre-image code is not in this model" (as opposed
# to "the subset cannot read this construct", which says nothing about the label)
_MISFIT_WORDS = ("do not occur in the model", "does not occur in the model",
                 "does not fit the model")


@dataclass(frozen=True)
class LabelCheck:
    """One file's index line checked against its hunks."""

    file: str
    post_image: str                       # the blob id the index line names
    wrong_post_image: tuple[str, ...] = ()  # functions whose derived body differs from its model
    misfit: str = ""                      # why the hunks do not fit the named before-state
    unchecked: tuple[str, ...] = ()       # functions derive cannot read (said, not judged)
    detail: tuple[str, ...] = ()          # the first differing lines, per function

    @property
    def agrees(self) -> bool:
        return not self.wrong_post_image and not self.misfit


def _groups(hunks, file: str) -> dict[str, list]:
    groups: dict[str, list] = {}
    for hunk in hunks:
        if hunk.file == file and hunk.kind == BEHAVIOUR and hunk.function is not None:
            groups.setdefault(hunk.function, []).append(hunk)
    return groups


def _first_difference(derived_fn, version) -> str:
    from harness.translate import derive

    model, content = derive.body_lines(derived_fn, version)
    for line in difflib.unified_diff(model, content, lineterm="", n=0):
        if line[:1] in "+-" and not line.startswith(("+++", "---")):
            return line.strip()
    return "the statements differ"


def check_file(hunks, before: VersionSet, file: str, post_image: str, after_blob: str
               ) -> LabelCheck:
    """Derive each changed function of ``file`` from the hunks and compare it with the
    model registered for ``after_blob`` (the blob the index line's post-image names)."""
    from harness.translate import derive

    wrong, unchecked, detail = [], [], []
    for function, function_hunks in sorted(_groups(hunks, file).items()):
        try:
            derived_fn = derive.derive_function(file, function, function_hunks, before)
        except derive.Miss as exc:
            text = str(exc)
            if any(words in text for words in _MISFIT_WORDS):
                return LabelCheck(file, post_image, misfit=f"{function}: {text}")
            unchecked.append(f"{function} ({text})")
            continue
        version = registry.lookup(file, function, after_blob)
        if version is None:
            unchecked.append(f"{function} (no model of it in {post_image})")
            continue
        if not derive.same_body(derived_fn, version):
            wrong.append(function)
            detail.append(f"{function}: {_first_difference(derived_fn, version)}")
    return LabelCheck(file, post_image, tuple(wrong), "", tuple(unchecked), tuple(detail))


def check_labels(hunks, before: VersionSet, touched: dict) -> tuple[LabelCheck, ...]:
    """Every touched file whose post-image blob names a registered model, checked."""
    checks = []
    for file, (_, post_image) in sorted(touched.items()):
        after_blob = registry.find_blob(file, post_image)
        if after_blob is None:
            continue          # unknown post-image: derive builds the after-model anyway
        checks.append(check_file(hunks, before, file, post_image, after_blob))
    return tuple(checks)


def wrong_post_image_text(check: LabelCheck) -> str:
    short = check.file.rsplit("/", 1)[-1]
    return (f"the index line names post-image {short}@{check.post_image}, a registered model, "
            f"but the hunks make a different {', '.join(check.wrong_post_image)} "
            f"({'; '.join(check.detail)}): the index line is wrong (the patch was edited "
            f"after format-patch), so the content is checked: after-model derived from the "
            f"hunks")


def unsettled_text(check: LabelCheck, misses: dict) -> str:
    short = check.file.rsplit("/", 1)[-1]
    why = "; ".join(f"hunk {i}: {r}" for i, r in sorted(misses.items()))
    return (f"the index line names post-image {short}@{check.post_image}, a registered model, "
            f"whose {', '.join(check.wrong_post_image)} reads differently from the hunks "
            f"({'; '.join(check.detail)}), but {short} cannot be derived from the hunks to "
            f"settle it ({why}): the registered model is used, unconfirmed by the content")


def misfit_text(check: LabelCheck, state: str) -> str:
    short = check.file.rsplit("/", 1)[-1]
    return (f"the hunks of {short} do not fit the state '{state}' that the index line's "
            f"pre-image blob names ({check.misfit}): the index line is wrong (the patch was "
            f"edited after format-patch), so the before-state is resolved by content")


def unchecked_text(check: LabelCheck) -> str:
    short = check.file.rsplit("/", 1)[-1]
    return (f"{short}@{check.post_image} taken from the index line without a content check "
            f"for {', '.join(check.unchecked)}")
