"""Effects are data: typed events appended to a log by every modelled helper.

Comparing two runs is comparing two logs, channel by channel.  Each event
records ``by``: the innermost modelled kernel function that caused it (the
helper that emits it, e.g. ``kvm_set_pfn_accessed``, is not counted), so a
checker can tell "the same event now comes from another function" (moved).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

# Channels, in the order reports show them.
ACCESSED = "accessed"
DIRTY = "dirty"
FLUSH = "flush"
SPTE = "spte"
REFS = "refs"
WARN = "warn"
DIRTY_LOG = "dirty_log"
STATS = "stats"

CHANNELS = (ACCESSED, DIRTY, FLUSH, SPTE, REFS, WARN, DIRTY_LOG, STATS)

# Each channel in the words a report's plain line uses.
CHANNEL_WORDS = {ACCESSED: "accessed marking", DIRTY: "dirty marking", FLUSH: "TLB flushing",
                 SPTE: "SPTE contents", REFS: "page references", WARN: "WARN/BUG",
                 DIRTY_LOG: "dirty logging", STATS: "page statistics"}


@dataclass(frozen=True)
class Event:
    """Base of all effect events.  ``by`` is filled in by ``EffectLog.emit``."""

    channel: ClassVar[str] = ""
    # What the function that caused the event does, in plain words (a report's
    # "<function> no longer <plain>"); may name the event's fields.
    plain: ClassVar[str] = ""
    by: str = field(default="", compare=False, kw_only=True)

    def payload(self) -> dict:
        """The event's own fields (without ``by``), for reports and JSON."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "by"}

    def describe(self) -> str:
        args = ", ".join(f"{k}={_show(v)}" for k, v in self.payload().items())
        where = f" in {self.by}" if self.by else ""
        return f"{type(self).__name__}({args}){where}"


def _show(value):
    if isinstance(value, int) and not isinstance(value, bool) and value > 9:
        return hex(value)
    return repr(value)


@dataclass(frozen=True)
class FolioAccessed(Event):
    """kvm_set_pfn_accessed / kvm_set_page_accessed reached mark_page_accessed."""

    channel: ClassVar[str] = ACCESSED
    plain: ClassVar[str] = "marks the folio accessed"
    pfn: int = 0


@dataclass(frozen=True)
class FolioDirty(Event):
    """kvm_set_pfn_dirty / kvm_set_page_dirty reached SetPageDirty."""

    channel: ClassVar[str] = DIRTY
    plain: ClassVar[str] = "marks the folio dirty"
    pfn: int = 0


@dataclass(frozen=True)
class TlbFlush(Event):
    """A remote TLB flush was issued.

    ``scope`` is ``"all"`` (kvm_flush_remote_tlbs), ``"range"`` (gfn, pages),
    or ``"memslot"``.
    """

    channel: ClassVar[str] = FLUSH
    plain: ClassVar[str] = "flushes the TLB"
    scope: str = "all"
    gfn: int = 0
    pages: int = 0


@dataclass(frozen=True)
class FlushRequested(Event):
    """A function returned "flush needed" to a caller outside the model.

    Operations emit this for the flag they hand back to generic KVM code
    (which then flushes), so the flush channel sees it like a real flush.
    """

    channel: ClassVar[str] = FLUSH
    plain: ClassVar[str] = "asks its caller to flush the TLB"
    reason: str = ""


@dataclass(frozen=True)
class SpteWrite(Event):
    """An SPTE in memory changed from ``old`` to ``new``.

    ``where`` names the SPTE: ``"<table>[<index>]"`` (stable across runs).
    """

    channel: ClassVar[str] = SPTE
    plain: ClassVar[str] = "writes the SPTE"
    where: str = ""
    old: int = 0
    new: int = 0


@dataclass(frozen=True)
class PageRefGet(Event):
    """A page reference was taken (e.g. by __gfn_to_pfn_memslot)."""

    channel: ClassVar[str] = REFS
    plain: ClassVar[str] = "takes a page reference"
    pfn: int = 0


@dataclass(frozen=True)
class PageRefPut(Event):
    """A page reference was dropped (put_page); ``dirty`` for release_dirty."""

    channel: ClassVar[str] = REFS
    plain: ClassVar[str] = "releases the page it took"
    pfn: int = 0
    dirty: bool = False


@dataclass(frozen=True)
class Warn(Event):
    """WARN_ON_ONCE / WARN_ONCE / KVM_MMU_WARN_ON fired."""

    channel: ClassVar[str] = WARN
    plain: ClassVar[str] = "hits a WARN"
    what: str = ""


@dataclass(frozen=True)
class Bug(Event):
    """BUG() / KVM_BUG_ON_DATA_CORRUPTION fired."""

    channel: ClassVar[str] = WARN
    plain: ClassVar[str] = "hits a BUG"
    what: str = ""


@dataclass(frozen=True)
class MemslotDirty(Event):
    """mark_page_dirty_in_slot: the memslot dirty bitmap/ring got the gfn."""

    channel: ClassVar[str] = DIRTY_LOG
    plain: ClassVar[str] = "marks the gfn in the dirty log"
    gfn: int = 0


@dataclass(frozen=True)
class StatChange(Event):
    """kvm_update_page_stats and similar counters."""

    channel: ClassVar[str] = STATS
    plain: ClassVar[str] = "updates the page statistics"
    stat: str = ""
    level: int = 0
    delta: int = 0


class EffectLog:
    """An append-only list of events, with the call stack that produced them."""

    def __init__(self, helpers: frozenset[str] = frozenset()):
        self.events: list[Event] = []
        self.stack: list[str] = []
        self.helpers = helpers

    def emit(self, event: Event) -> None:
        """Append ``event``; ``by`` is the innermost caller that is not a helper.

        Helpers are the effect-producing leaves (``kvm_set_pfn_dirty``, the
        SPTE store primitives...): the interesting fact is who called them.
        """
        by = ""
        for name in reversed(self.stack):
            if name not in self.helpers:
                by = name
                break
        object.__setattr__(event, "by", by)
        self.events.append(event)

    def channel(self, name: str) -> list[Event]:
        return [e for e in self.events if e.channel == name]

    def mark(self) -> int:
        """A position to slice the log from (``since``)."""
        return len(self.events)

    def since(self, mark: int) -> list[Event]:
        return self.events[mark:]

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self):
        return iter(self.events)
