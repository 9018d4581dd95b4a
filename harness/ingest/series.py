"""Series: which mails belong together, in which order.

Parts of a series are found the way a mailing list threads them, in this order:

1. ``In-Reply-To``/``References`` naming a mail of the input (the cover letter,
   or another part): the part joins that mail's series;
2. the same thread root (the first ``References`` id, else ``In-Reply-To``) as a
   series already begun, when the cover letter itself is not in the input;
3. for a mail without threading headers (a web-archive copy, a bare mail): the
   one series with the same sender, version and total that still lacks its
   index.

A part joins a series only when its version and total agree and its index is
still free there (or holds an identical copy, which is dropped with a note).
Two different mails with the same index are two series, each checked and
noted, never an error for the whole run: two unrelated ``[PATCH 1/4]`` that
reply to different cover letters are two series.  A cover letter (0/N)
always starts a series; patches without a series position stay alone.

``order_series`` returns the patches series by series (in the order each
series was first seen), each series by index, every patch carrying its
series number in ``Patch.series_group``.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass, field, replace

from harness.ingest.patches import Patch


@dataclass
class SeriesGroup:
    """Patches gathered into one series while ordering (mutable, local)."""

    version: int | None
    total: int | None
    thread: str | None                  # the thread root: cover letter's Message-ID
    senders: frozenset[str] = frozenset()
    patches: list[Patch] = field(default_factory=list)


def thread_ids(patch: Patch) -> tuple[str, ...]:
    """The mails this one answers: ``References`` (root first), then ``In-Reply-To``."""
    ids = list(patch.references)
    if patch.in_reply_to and patch.in_reply_to not in ids:
        ids.append(patch.in_reply_to)
    return tuple(ids)


def thread_root(patch: Patch) -> str | None:
    """The thread a part belongs to: its cover letter's id (a cover: its own)."""
    if patch.is_cover:
        return patch.message_id
    ids = thread_ids(patch)
    return ids[0] if ids else None


def sender_keys(patch: Patch) -> frozenset[str]:
    """The sender's address and name, lower-cased (a web copy often names only one)."""
    if not patch.author:
        return frozenset()
    if "@" not in patch.author:     # a name alone ("Sean Christopherson", a web copy)
        name, address = patch.author, ""
    else:
        name, address = email.utils.parseaddr(patch.author)
    return frozenset(" ".join(key.split()).lower() for key in (name, address) if key.strip())


def same_sender(patch: Patch, group: SeriesGroup) -> bool:
    """Unknown on either side is no contradiction."""
    mine = sender_keys(patch)
    return not mine or not group.senders or bool(mine & group.senders)


def same_patch(one: Patch, other: Patch) -> bool:
    return one.diff_text == other.diff_text and one.subject == other.subject


def index_of(patch: Patch) -> int:
    return patch.series.index if patch.series else 1


def fits(patch: Patch, group: SeriesGroup) -> bool:
    """Version and total agree, and the index is free (or holds an identical copy)."""
    series = patch.series
    if series is None or group.version != series.version or group.total != series.total:
        return False
    return not any(index_of(p) == series.index and not same_patch(p, patch)
                   for p in group.patches)


def clash_note(patch: Patch, group: SeriesGroup, how: str) -> str:
    other = next(p for p in group.patches if index_of(p) == index_of(patch))
    return (f"another patch numbered {index_of(patch)}/{patch.series.total} {how} "
            f"({other.label}) differs: this one is checked as a series of its own")


def find_group(patch: Patch, groups: list[SeriesGroup],
               by_id: dict[str, SeriesGroup]) -> tuple[SeriesGroup | None, str | None]:
    """The series a patch joins (None: it starts one), and a note on why, if any."""
    if patch.series is None or patch.is_cover:
        return None, None
    named = thread_ids(patch)
    for message_id in reversed(named):        # the nearest mail first
        group = by_id.get(message_id)
        if group is not None and fits(patch, group):
            return group, None
    root = thread_root(patch)
    if root is not None:
        threaded = [g for g in groups
                    if g.thread == root or any(p.message_id in named for p in g.patches)]
        for group in threaded:
            if fits(patch, group):
                return group, None
        clashing = [g for g in threaded if g.version == patch.series.version
                    and g.total == patch.series.total]
        if clashing:
            return None, clash_note(patch, clashing[0], "in the same thread")
        if threaded:
            return None, None    # another version of the series, replying in its thread
    # No thread to go by (or its first part here): sender, version and total.
    candidates = [g for g in groups if (root is None or g.thread is None)
                  and same_sender(patch, g) and g.version == patch.series.version
                  and g.total == patch.series.total]
    if patch.series.total == 1:
        # Two different single patches ([PATCH] or 1/1) are two series: a directory of
        # unrelated patches, as patchwork or CI hands them over; a copy is still a copy.
        candidates = [g for g in candidates
                      if all(p.is_cover or same_patch(p, patch) for p in g.patches)]
    fitting = [g for g in candidates if fits(patch, g)]
    if len(fitting) == 1:
        return fitting[0], None
    if len(fitting) > 1:
        return None, (f"could belong to {len(fitting)} series of the same sender, version and "
                      "size (no In-Reply-To to tell them apart); kept as a series of its own")
    if candidates and patch.series.total != 1:
        return None, clash_note(patch, candidates[0], "from the same sender")
    return None, None


def order_series(patches: list[Patch]) -> list[Patch]:
    """Group patches into series (see the module doc) and order each by index."""
    groups: list[SeriesGroup] = []
    by_id: dict[str, SeriesGroup] = {}
    for patch in sorted(patches, key=lambda p: (not p.is_cover,)):
        group, note = find_group(patch, groups, by_id)
        if note:
            patch = replace(patch, notes=patch.notes + (note,))
        if group is None:
            series = patch.series
            group = SeriesGroup(version=series.version if series else None,
                                total=series.total if series else None,
                                thread=thread_root(patch) if series else None)
            groups.append(group)
        elif group.thread is None:
            group.thread = thread_root(patch)
        group.senders = group.senders | sender_keys(patch)
        group.patches.append(patch)
        if patch.message_id:
            by_id.setdefault(patch.message_id, group)
    first_seen = {(patch.path, patch.mail_index): number for number, patch in enumerate(patches)}
    groups.sort(key=lambda group: min(first_seen[(patch.path, patch.mail_index)]
                                      for patch in group.patches))
    ordered: list[Patch] = []
    for number, group in enumerate(groups):
        ordered.extend(replace(patch, series_group=number) for patch in finish_group(group))
    return ordered


def _ranges(numbers: list[int], total: int) -> list[str]:
    """[1, 2, 3, 5] of 9 -> ["1/9-3/9", "5/9"]: a long run of absent parts stays one item."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return [f"{r[0]}/{total}" if len(r) == 1 else
            f"{r[0]}/{total}, {r[1]}/{total}" if len(r) == 2 else
            f"{r[0]}/{total}-{r[-1]}/{total}" for r in runs]


def base_source(cover: Patch | None, patches: list[Patch]) -> Patch | None:
    """The mail whose ``base-commit:`` a series uses: the cover's, else the one
    patch's that carries it (git writes it into the first patch when there is
    no cover letter).  Several different ones among the patches: none.
    """
    if cover is not None and cover.base_commit:
        return cover
    carriers = [patch for patch in patches if patch.base_commit]
    if len({patch.base_commit for patch in carriers}) == 1:
        return carriers[0]
    return None


def finish_group(group: SeriesGroup) -> list[Patch]:
    """One series in index order: copies dropped, absent parts and base-commit noted."""
    by_index: dict[int, Patch] = {}
    dropped: dict[int, list[str]] = {}
    for patch in group.patches:
        index = index_of(patch)
        kept = by_index.get(index)
        if kept is None:
            by_index[index] = patch
        else:           # find_group lets only identical copies share an index
            dropped.setdefault(index, []).append(patch.label)
    ordered = [by_index[index] for index in sorted(by_index)]
    cover = by_index.get(0) if by_index.get(0) is not None and by_index[0].is_cover else None
    series_notes: list[str] = []
    total = group.total
    if total is not None and group.patches[0].series is not None:
        missing = [n for n in range(1, total + 1) if n not in by_index]
        if missing:
            series_notes.append(
                "series incomplete: " + ", ".join(_ranges(missing, total))
                + " absent; the patches present are checked on their own")
    result = []
    for patch in ordered:
        notes = list(patch.notes) + series_notes
        index = index_of(patch)
        if index in dropped:
            notes.append("identical copies dropped: " + ", ".join(dropped[index]))
        base_commit = patch.base_commit
        source = base_source(cover, ordered) if patch.series is not None else None
        if base_commit is None and source is not None:
            base_commit = source.base_commit
            what = "the cover letter" if source.is_cover else "patch"
            notes.append(f"base-commit taken from {what} {source.label}")
        result.append(replace(patch, notes=tuple(notes), base_commit=base_commit))
    return result
