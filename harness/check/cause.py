"""A finding's cause in plain words: one line a reviewer reads first.

Built from the check's defect and the finding's own data, never written per
patch: the events of the finding's channel that the after side no longer
has or newly has, grouped by the kernel function that caused them, each
said with the event's plain verb (``kernel_models.effects``)::

    page-reference leak: FNAME(prefetch_gpte) no longer releases the page it took

When the two sides' events do not differ on the channel (an invariant the
before side breaks too, or a difference in the state rather than the log),
the line falls back to the check's own summary of the violation.
"""

from __future__ import annotations

from collections import Counter

from kernel_models.effects import CHANNEL_WORDS

# At most this many "function verb" parts in one line; the rest are counted.
MAX_PARTS = 2


def defect(check, violation) -> str:
    """What the check calls this violation, in words."""
    words = violation.defect or check.defect or check.failure
    return words.format(channel=CHANNEL_WORDS.get(violation.channel, violation.channel))


def plain(event) -> str:
    """The event's verb phrase: "releases the page it took"."""
    words = getattr(event, "plain", "") or f"emits {type(event).__name__}"
    return words.format(**event.payload())


def _actor(event, default: str = "the operation") -> str:
    return event.by or default


def changes(channel: str, before: list, after: list, actor: str = "the operation") -> list[str]:
    """"<function> no longer / now <verb>" parts for the events of ``channel``
    that differ between the two logs, most frequent first."""
    def kinds(events):
        return Counter((type(e).__name__, _actor(e, actor), plain(e)) for e in events
                       if e.channel == channel)

    b, a = kinds(before), kinds(after)
    missing, extra = b - a, a - b
    parts: list[tuple[int, str]] = []
    for (kind, actor, verb), count in missing.items():
        moved_to = [x for (k, x, v) in extra if k == kind and v == verb and x != actor]
        same = [x for (k, x, v) in extra if k == kind and v == verb and x == actor]
        if same:
            continue                          # counted once, below, as "differently"
        if moved_to:
            parts.append((count, f"{moved_to[0]} now {verb} instead of {actor}"))
            extra = extra - Counter({(kind, moved_to[0], verb): count})
            continue
        parts.append((count, f"{actor} no longer {verb}"))
    for (kind, actor, verb), count in extra.items():
        if (kind, actor, verb) in missing:
            continue
        parts.append((count, f"{actor} now {verb}"))
    if not parts:
        # same events by count, different payloads: say which functions changed them
        differ = _payload_changes(channel, before, after, actor)
        parts = [(1, f"{actor} {verb} differently") for actor, verb in differ]
    parts.sort(key=lambda part: -part[0])
    return [text for _, text in parts]


def _payload_changes(channel: str, before: list, after: list, actor: str,
                     ) -> list[tuple[str, str]]:
    b = Counter((e, _actor(e, actor)) for e in before if e.channel == channel)
    a = Counter((e, _actor(e, actor)) for e in after if e.channel == channel)
    seen: list[tuple[str, str]] = []
    for event, actor in list((b - a)) + list((a - b)):
        key = (actor, plain(event))
        if key not in seen:
            seen.append(key)
    return seen


def line(check, violation, before: list, after: list, *, before_name: str = "",
         actor: str = "the operation") -> str:
    """The plain line for ``violation`` of ``check``, given both sides' events;
    ``actor`` names who caused an event no modelled function did (a function
    check's return value: the function called)."""
    parts = changes(violation.channel, before, after, actor)
    if parts:
        said = "; ".join(parts[:MAX_PARTS])
        if len(parts) > MAX_PARTS:
            said += f" (and {len(parts) - MAX_PARTS} more)"
    else:
        said = violation.summary.removeprefix("after: ")
    text = f"{defect(check, violation)}: {said}"
    if violation.inherited:
        where = f"'{before_name}'" if before_name else "the state before this patch"
        text += f" (inherited: {where} does this too)"
    return text
