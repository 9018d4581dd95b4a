"""Find the text a patch applies to, the way ``git am -3`` would.

With ``--kernel-tree PATH`` every file a patch touches gets its pre-image
from the tree, by the first of these routes that works (``ROUTES``, tried in
order, each returning a ``PreImage`` or the reason it could not):

1. ``series``  - an earlier patch of the same run changed the file: the text
   it left, held in memory (a series applies patch after patch to one state);
2. ``index``   - the blob the diff's ``index a..b`` line names, if the tree
   holds it (a plain directory holds the blobs of its files, with ids
   computed as ``git hash-object`` does);
3. ``rev``     - the file at ``--rev REV`` (default ``HEAD``), if every hunk
   applies there (at an offset if need be; whitespace-insensitively, so a
   repaired web-archive copy applies);
4. ``history`` - the newest commit of ``git log REV -- FILE`` (at most
   ``HISTORY_LIMIT`` commits) whose text of the file the hunks apply to;
5. ``later``   - only when a file has no pre-image by the four above, no earlier
   patch of the run changed a file, and for the whole patch at once: the oldest
   commit after ``REV`` (towards the tree's ``HEAD``) at which every read file
   takes the hunks, as ``git apply`` would (a patch posted before a release and
   merged after it applies to that release).  Before = that commit's files, so the
   pre-image is a real tree state, only newer than ``REV``: the detail says so;
6. ``reverse`` - only when a file has no pre-image by the five above, and for
   the whole patch at once: the oldest commit after ``REV`` (towards the
   tree's ``HEAD``) that holds the patch as merged, i.e. from which every
   read file's hunks can be taken out again as ``git apply -R`` would (the
   added lines and context must match; removed lines are put back as the
   patch has them).  Before = that commit minus the patch, after = that
   commit.  The base is approximate (changes between ``REV`` and that commit
   are on both sides), and a removed line that no version of the file from
   ``REV`` up to that commit holds is taken from the patch alone: the detail
   says both, listing those lines.

Every route is first tried with the hunks applying exactly (at an offset if
need be), then again with a fuzz of up to ``MAX_FUZZ`` context lines at each
end of a hunk, as GNU ``patch`` and ``git am -3``'s fallback do: an exact
place in an older version beats a fuzzy one in a newer.  The route, the fuzz
and the offsets used are part of the result.  When none works the file is a
``PreImageMiss`` naming the first hunk line that does not apply at
``--rev`` (or the removed line the file holds nowhere).  Nothing here writes
to the tree.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from harness.ingest.hunks import UnreadableHunk, hunk_lines
from harness.resolve.kernel_tree import MAX_FUZZ, Mismatch, already_applied, apply_file, \
    hash_object, reverse_hunk

HISTORY_LIMIT = 200           # commits of one file's history tried, newest first


def is_absent(blob: str | None) -> bool:
    """An index line's id for "no file" (a created or deleted file)."""
    return bool(blob) and set(blob) == {"0"}


# ---------------------------------------------------------------------------
# The state a series leaves, in memory
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Memory:
    """The texts earlier patches of this run left: path -> (text, the patch's label)."""

    files: tuple[tuple[str, str, str], ...] = ()
    # (file, line, label): lines the patches applied first add, applied or not; what the
    # base the checked patch was written on held ('reverse' checks removed lines against them)
    added: tuple[tuple[str, str, str], ...] = ()
    # the commit the texts sit on when a patch's pre-images came from one after --rev
    # (routes 'later', 'reverse'): the patches after it read the rest of the tree there
    rev: str | None = None

    def text(self, path: str) -> tuple[str, str] | None:
        for file, text, label in self.files:
            if file == path:
                return text, label
        return None

    def with_files(self, posts: dict[str, str], label: str, rev: str | None = None,
                   ) -> "Memory":
        kept = [row for row in self.files if row[0] not in posts]
        return Memory(tuple(sorted(kept + [(f, t, label) for f, t in posts.items()])),
                      self.added, rev or self.rev)

    def with_added(self, hunks, label: str) -> "Memory":
        rows = {(h.file, " ".join(line.split()), label) for h in hunks for line in h.added}
        return Memory(self.files, tuple(sorted(set(self.added) | rows)), self.rev)

    def added_lines(self, path: str) -> dict[str, str]:
        """Line (whitespace-normalised) -> the label of a patch applied first that adds it."""
        return {line: label for file, line, label in self.added if file == path}


# ---------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """One file of one patch: what the routes look for."""

    file: str
    hunks: tuple               # the file's hunks, once each, in order
    source_blob: str | None    # the index line's pre-image id (abbreviated)
    rev: str
    memory: Memory = Memory()
    max_fuzz: int = 0          # context lines a hunk may ignore at each end (GNU patch's fuzz)
    routes: tuple[str, ...] = ("series", "index", "rev", "history", "reverse")   # to try

    @property
    def short(self) -> str:
        return self.file.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class PreImage:
    """Where one file's pre-image came from, and its text before and after the hunks."""

    file: str
    route: str                 # a name of ROUTES
    blob: str                  # the pre-image's blob id (full)
    commit: str | None         # the commit it was read at (None: by blob id, or in memory)
    detail: str                # one sentence for the report
    text: str = field(repr=False, compare=False)
    post: str = field(repr=False, compare=False)
    fuzz: int = 0              # the most context lines a hunk ignored at one end
    offsets: tuple[int, ...] = ()   # per hunk: lines from its header's place to where it went
    # route 'reverse': (hunk index, removed line) no version of the file holds, nor a patch
    # applied first adds: the patch alone gives them, so those hunks cannot be checked
    unverified: tuple[tuple[int, str], ...] = ()

    @property
    def how(self) -> str:
        """How the hunks fit: exactly, at an offset, or with fuzz."""
        moved = sum(1 for offset in self.offsets if offset)
        parts = [f"fuzz {self.fuzz}"] if self.fuzz else []
        if moved:
            total = len(self.offsets)
            parts.append(f"{moved} of {total} hunk{'' if total == 1 else 's'} at an offset")
        return ", ".join(parts) or "exactly"

    @property
    def post_blob(self) -> str:
        return hash_object(self.post)

    @property
    def note(self) -> str:
        """The line the terminal and HTML reports show."""
        commit = f"commit {self.commit[:12]}, " if self.commit else ""
        return (f"pre-image of {self.file} by route '{self.route}': {self.detail} "
                f"({commit}blob {self.blob[:12]}; hunks applied {self.how})")

    def as_dict(self) -> dict:
        found = {"file": self.file, "route": self.route, "blob": self.blob,
                 "commit": self.commit, "detail": self.detail, "fuzz": self.fuzz,
                 "offsets": list(self.offsets), "applied": self.how}
        if self.unverified:
            found["removed_lines_unverified"] = [{"hunk": h, "line": line}
                                                 for h, line in self.unverified]
        return found

    def unverified_reason(self, hunk_index: int) -> str | None:
        """Why a hunk of this pre-image cannot be checked (route 'reverse'), or None."""
        lines = [line for h, line in self.unverified if h == hunk_index]
        if not lines:
            return None
        return (f"no applicable pre-image for this hunk: its removed line '{lines[0]}'"
                f"{f' (and {len(lines) - 1} more)' if len(lines) > 1 else ''} is in no "
                f"version of {self.file.rsplit('/', 1)[-1]} in the tree nor added by a patch "
                f"applied first; the pre-image ({self.detail.split(':')[0]}) takes it from the "
                f"patch alone, so the before side of this hunk is unverified")


@dataclass(frozen=True)
class PreImageMiss:
    file: str
    reason: str                # names the first hunk line that does not apply
    tried: tuple[tuple[str, str], ...]   # (route, why not), in order

    @property
    def note(self) -> str:
        return f"no pre-image of {self.file}: {self.reason}"

    def as_dict(self) -> dict:
        return {"file": self.file, "route": None, "reason": self.reason,
                "tried": [{"route": r, "reason": why} for r, why in self.tried]}


def _found(request, route, text, commit, detail) -> PreImage | str:
    if request.max_fuzz and already_applied(text, request.hunks):
        # with fuzz an added-only hunk fits almost anywhere, also in a text that has it
        return f"the hunks' new lines are already in {detail}: the patch is in that version"
    applied = apply_file(text, request.hunks, request.max_fuzz)
    if isinstance(applied, Mismatch):
        return applied.describe(detail)
    return PreImage(request.file, route, hash_object(text), commit, detail, text, applied.text,
                    applied.fuzz, applied.offsets)


def from_series(request: Request, tree) -> PreImage | str:
    held = request.memory.text(request.file)
    if held is None:
        return "no earlier patch of this run changed the file"
    text, label = held
    return _found(request, "series", text, None,
                  f"{request.short} as {label} left it (in memory)")


def from_index(request: Request, tree) -> PreImage | str:
    blob = request.source_blob
    if not blob:
        return "the diff has no index line"
    if is_absent(blob):
        return _found(request, "index", "", None, f"{request.short}: a new file")
    text = tree.text(blob)
    if text is None:
        return f"the tree does not hold blob {blob}"
    return _found(request, "index", text, None, f"{request.short}@{blob}")


def from_rev(request: Request, tree) -> PreImage | str:
    text = tree.text_at(request.rev, request.file)
    if text is None:
        return f"{request.file} does not exist at {request.rev}"
    commit = tree.commit(request.rev)
    return _found(request, "rev", text, commit, f"{request.short} at {request.rev}")


def from_history(request: Request, tree) -> PreImage | str:
    commits = tree.history(request.rev, request.file, HISTORY_LIMIT)
    if commits is None:
        return "the tree has no history (a plain directory)"
    tried: set[str] = set()
    for commit in commits:
        blob = tree.blob_at(commit, request.file)
        if blob is None or blob in tried:
            continue
        tried.add(blob)
        found = _found(request, "history", tree.text(blob), commit,
                       f"{request.short} at {commit[:12]} ({tree.describe(commit)})")
        if isinstance(found, PreImage):
            return found
    return (f"none of the {len(tried)} versions of {request.short} in the last "
            f"{len(commits)} commits of its history before {request.rev} takes the hunks")


ROUTES = (("series", from_series), ("index", from_index), ("rev", from_rev),
          ("history", from_history))


def find_preimage(request: Request, tree) -> PreImage | PreImageMiss:
    """The first route's exact pre-image, else the first with fuzz, else a miss saying why
    each route failed (with fuzz)."""
    tried = []
    for fuzz in (0, MAX_FUZZ):
        tried = []
        for name, route in ROUTES:
            if name not in request.routes:
                continue
            found = route(dataclasses.replace(request, max_fuzz=fuzz), tree)
            if isinstance(found, PreImage):
                return found
            tried.append((name, found))
    # the first text that was there but did not take the hunks names the line
    reason = next((why for _, why in tried if "does not apply" in why), None)
    if reason is None:
        reason = "; ".join(f"{name}: {why}" for name, why in tried)
    return PreImageMiss(request.file, reason, tuple(tried))


def file_hunks(hunks, file: str) -> tuple:
    """``file``'s hunks, each once (a hunk scoped to two functions appears twice), in order."""
    seen, result = set(), []
    for hunk in hunks:
        if hunk.file == file and hunk.index not in seen:
            seen.add(hunk.index)
            result.append(hunk)
    return tuple(sorted(result, key=lambda h: h.source_start))


# After the per-file routes, for the whole patch: a later commit it applies to, then the
# patch as merged in a later commit, taken out again.
LATER = "later"
REVERSE = "reverse"
ALL_ROUTES = tuple(name for name, _ in ROUTES) + (LATER, REVERSE)


def find_preimages(hunks, files, tree, rev: str, memory: Memory,
                   routes: tuple[str, ...] = ALL_ROUTES,
                   ) -> dict[str, PreImage | PreImageMiss]:
    """Every file of ``files`` the hunks touch -> its pre-image or the miss.

    When a file has no pre-image by the per-file ``ROUTES``, every file's
    pre-image comes from one later commit: the oldest the patch applies to
    (``from_later``), else the oldest that holds the patch (``from_reverse``), so
    the files of one patch are of one tree state."""
    found = {}
    for file in files:
        blob = next((h.source_blob for h in hunks if h.file == file), None)
        found[file] = find_preimage(Request(file, file_hunks(hunks, file), blob, rev, memory,
                                            routes=routes), tree)
    for name, route in ((LATER, from_later), (REVERSE, from_reverse)):
        if name not in routes or not any(isinstance(p, PreImageMiss) for p in found.values()):
            continue
        whole = route(hunks, files, tree, rev, memory)
        if isinstance(whole, dict):
            return whole
        found = {f: p if isinstance(p, PreImage) else dataclasses.replace(
                     p, tried=p.tried + ((name, whole),)) for f, p in found.items()}
    return found


def from_later(hunks, files, tree, rev: str, memory: Memory) -> dict[str, PreImage] | str:
    """Every file's pre-image at the oldest commit after ``rev`` at which all of ``files``
    take their hunks (exactly in every commit first, then with fuzz), or why there is none.
    Not when an earlier patch of the run changed a file: that commit would drop its change."""
    if memory.files:
        return ("not tried: an earlier patch of this run changed "
                f"{', '.join(sorted({f for f, _, _ in memory.files}))}, and a later commit's "
                "files would drop that change")
    commits = tree.later(rev, list(files), HISTORY_LIMIT)
    if commits is None:
        return "the tree has no history (a plain directory)"
    if not commits:
        return f"no commit after {rev} (towards HEAD) changes {', '.join(files)}"
    by_file = {f: file_hunks(hunks, f) for f in files}
    first_reason = ""
    for fuzz in (0, MAX_FUZZ):
        for commit in commits:
            images = {}
            for file in files:
                request = Request(file, by_file[file], None, commit, max_fuzz=fuzz)
                text = tree.text_at(commit, file)
                found = (f"{file} does not exist at {commit[:12]}" if text is None else
                         _found(request, LATER, text, commit, _later_detail(
                             file, tree, commit, rev)))
                if not isinstance(found, PreImage):
                    first_reason = first_reason or found
                    break
                images[file] = found
            else:
                return images
    return (f"none of the {len(commits)} commits after {rev} that change "
            f"{', '.join(f.rsplit('/', 1)[-1] for f in files)} takes the whole patch "
            f"(first: {first_reason})")


def _later_detail(file: str, tree, commit: str, rev: str) -> str:
    return (f"{file.rsplit('/', 1)[-1]} at {commit[:12]} ({tree.describe(commit)}): the "
            f"oldest commit after {rev} that takes the whole patch; a real tree state, newer "
            f"than {rev}")


def removed_runs(hunk) -> list[list[str]]:
    """The hunk's runs of consecutive removed lines (each as the text holds it)."""
    runs, current = [], []
    for row in hunk_lines(hunk):
        if row.kind == "-":
            current.append(row.text)
        elif row.kind == " " and current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def _holds(text: str | None, run: list[str]) -> bool:
    if text is None:
        return False
    keys = "\n" + "\n".join(" ".join(line.split()) for line in text.split("\n")) + "\n"
    return "\n" + "\n".join(" ".join(line.split()) for line in run) + "\n" in keys


def _unseen_removed(hunks, versions: list[str | None], added: dict[str, str],
                    ) -> list[tuple[int, str]]:
    """(hunk index, line) of removed lines of ``hunks`` that none of ``versions`` (texts
    of the file) holds as the hunk has them (each run of removed lines in one piece) and
    that no patch applied first adds (``added``): lines only the patch gives."""
    unseen = []
    for hunk in hunks:
        for run in removed_runs(hunk):
            if any(_holds(text, run) for text in versions):
                continue
            unseen.extend((hunk.index, line.strip()) for line in run
                          if " ".join(line.split()) not in added)
    return unseen


def _reverse_detail(request_file: str, tree, commit: str, rev: str, unseen: list[str]) -> str:
    short = request_file.rsplit("/", 1)[-1]
    detail = (f"{short} at {commit[:12]} ({tree.describe(commit)}) with the patch taken out "
              f"again (git apply -R): the oldest commit after {rev} that holds the patch as "
              f"merged; the base is approximate (that commit minus the patch, not the tree "
              f"the patch was written on: what changed between {rev} and it is on both sides)")
    if unseen:
        shown = "; ".join(f"'{line}'" for _, line in unseen[:6] if line)
        more = f" and {len(unseen) - 6} more" if len(unseen) > 6 else ""
        lines = "line is" if len(unseen) == 1 else "lines are"
        detail += (f"; {len(unseen)} removed {lines} in no version of {short} from {rev} "
                   f"to it nor added by a patch applied first, taken from the patch alone "
                   f"(their hunks are not checked): {shown}{more}")
    return detail


def from_reverse(hunks, files, tree, rev: str, memory: Memory) -> dict[str, PreImage] | str:
    """Every file's pre-image from the oldest later commit that holds the whole patch, or
    why there is none.  Exact fits first (in every commit), then with fuzz, which a hunk
    that only removes lines never takes."""
    commits = tree.later(rev, list(files), HISTORY_LIMIT)
    if commits is None:
        return "the tree has no history (a plain directory)"
    if not commits:
        return f"no commit after {rev} (towards HEAD) changes {', '.join(files)}"
    by_file = {f: file_hunks(hunks, f) for f in files}
    try:
        backwards = {f: tuple(reverse_hunk(h) for h in hs) for f, hs in by_file.items()}
        for hs in by_file.values():
            for hunk in hs:
                hunk_lines(hunk)
    except UnreadableHunk as exc:
        return f"a hunk cannot be read ({exc})"
    # reversed, a hunk that only removes lines only adds them back: with fuzz it would fit
    # almost anywhere, so it must fit exactly (its context whole)
    only_removing = frozenset(h.index for hs in by_file.values() for h in hs if not h.added)
    first_reason = ""
    for fuzz in (0, MAX_FUZZ):
        for commit in commits:
            images = {}
            for file in files:
                text = tree.text_at(commit, file)
                if text is None:
                    reason = f"{file} does not exist at {commit[:12]}"
                    break
                undone = apply_file(text, backwards[file], fuzz, only_removing)
                if isinstance(undone, Mismatch):
                    reason = undone.describe(f"{file.rsplit('/', 1)[-1]} at {commit[:12]} "
                                             f"(reversed)").replace(
                        "its removed line", "its added line")
                    break
                images[file] = (text, undone)
            else:
                return _reverse_images(by_file, images, tree, commit, commits, rev, memory)
            first_reason = first_reason or reason
    return (f"none of the {len(commits)} commits after {rev} that change "
            f"{', '.join(f.rsplit('/', 1)[-1] for f in files)} holds the patch as merged "
            f"(first: {first_reason})")


def _reverse_images(by_file, images, tree, commit, commits, rev, memory) -> dict:
    found = {}
    for file, (text, undone) in images.items():
        # the versions a removed line may be checked in: the state at rev, then every later
        # commit before the one that holds the patch
        versions = [_state_text(file, tree, rev, memory)] + [
            tree.text_at(c, file) for c in commits[:commits.index(commit)]]
        unseen = _unseen_removed(by_file[file], versions, memory.added_lines(file))
        # offsets as the other routes give them: from each header's place in the pre-image
        forward = apply_file(undone.text, by_file[file], MAX_FUZZ)
        offsets = undone.offsets if isinstance(forward, Mismatch) else forward.offsets
        found[file] = PreImage(file, REVERSE, hash_object(undone.text), commit,
                               _reverse_detail(file, tree, commit, rev, unseen), undone.text,
                               text, undone.fuzz, offsets, tuple(unseen))
    return found


# A patch applied first joins the state at ``rev``: only routes that keep that state (the
# index blob or an older version of the file would bring another release's text into it).
FIRST_ROUTES = ("series", "rev")


def applied_first(patches, tree, rev: str, read_file) -> tuple[Memory, list[dict]]:
    """The state ``patches`` leave on the tree at ``rev``, in memory, and what each did.

    ``patches`` are (label, scoped hunks) of patches the checked ones were
    written on top of (``--apply-first``: an earlier part of their series,
    the commit a ``Fixes:`` names), applied in order by the same routes; they
    are not judged.  A file that already holds the patch (a stable tree holds
    the commit a backport fixes) stays as it is; so does a file that does not
    take the hunks exactly (fuzz is for the patch under check, not for guessing
    what a tree holds).  As ``git am`` does, a patch applies whole or not at all:
    when one of its files does not take its hunks, none of its files change, so
    the state never holds half a patch (one file calling what the patch's other
    file removed); the record says which file went which way and why.  Only ``FIRST_ROUTES`` are taken: the index blob
    or an older version of a file must not bring another release into the
    state at ``rev``.  ``read_file(path)`` says whether kconform reads a file.
    """
    memory, record = Memory(), []
    for label, hunks in patches:
        files = list(dict.fromkeys(h.file for h in hunks if read_file(h.file)))
        held = {f: _state_text(f, tree, rev, memory) for f in files}
        there = [f for f in files if held[f] is not None
                 and already_applied(held[f], file_hunks(hunks, f))]
        found = find_preimages(hunks, [f for f in files if f not in there], tree, rev, memory,
                               FIRST_ROUTES)
        # as ``git am``: the patch changes its files only when every one takes its hunks
        fits = {f: p.post for f, p in found.items()
                if isinstance(p, PreImage) and p.fuzz == 0}
        refused = [f for f in found if f not in fits]
        taken = {} if refused else fits
        memory = memory.with_files(taken, label).with_added(
            [h for h in hunks if read_file(h.file)], label)
        rows = [{"file": f, "route": None, "reason": f"already in {rev}: left as it is"}
                for f in there]
        rows += [p.as_dict() | ({} if f in taken else {
                     "route": None, "reason": p.reason if isinstance(p, PreImageMiss) else
                     f"rejected: it takes the hunks only with fuzz {p.fuzz}"
                     if f in refused else
                     f"not applied: {', '.join(refused)} of the same patch does not take "
                     "its hunks, and a patch applies whole or not at all (as git am)"})
                 for f, p in found.items()]
        record.append({"patch": label, "applied": sorted(taken), "preimages": rows})
    return memory, record


def _state_text(file: str, tree, rev: str, memory: Memory) -> str | None:
    """The file as the state holds it: an earlier patch's text, else the tree's at ``rev``."""
    held = memory.text(file)
    return held[0] if held is not None else tree.text_at(rev, file)


# The reason scope gives a hunk part whose header hint is no definition (a label such as
# ``retry:``, which git's hunk-header rule takes for one) and before which the hunk shows none.
UNNAMED_HINT = "the header hint is not a function definition"


def enclosing_function(text: str, line: int) -> tuple[str, int] | None:
    """The function whose body holds line ``line`` (1-based) of a C text, read backwards
    to its definition line: (name, definition line), or None when a top-level closing
    brace comes first (the line is outside any function)."""
    from harness.ingest.scope import definition_name

    lines = text.splitlines()
    for number in range(min(line, len(lines)) - 1, -1, -1):
        code = lines[number]
        if not code or code[0].isspace():
            continue
        if code.startswith("}"):
            return None
        name = definition_name(code)
        if name is not None:
            return name, number + 1
    return None


def functions_in_preimages(hunks, found: dict) -> tuple:
    """Hunks scope could not name a function for (``UNNAMED_HINT``), named from the
    pre-image they were applied to: the function whose body holds the hunk's first line
    there (at its offset).  Other hunks, and those a pre-image does not place inside a
    function, are returned as they came."""
    result = []
    for hunk in hunks:
        image = found.get(hunk.file)
        if hunk.function is None and image is not None and hunk.reason.startswith(UNNAMED_HINT):
            order = [h.index for h in file_hunks(hunks, hunk.file)]
            offset = image.offsets[order.index(hunk.index)] if len(image.offsets) == len(
                order) else 0
            where = enclosing_function(image.text, hunk.source_start + offset)
            if where is not None:
                name, number = where
                hunk = dataclasses.replace(hunk, function=name, reason=(
                    f"{hunk.reason}; named from the pre-image ({image.detail}): the hunk "
                    f"lies in the body of {name}, defined at line {number}"))
        result.append(hunk)
    return tuple(result)
