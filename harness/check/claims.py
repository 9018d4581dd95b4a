"""Claims: what a commit message says its patch changes, read as data.

The intent of a patch is in its message; the diff is what is judged, so it is
never its own contract.  ``read_message(subject, body)`` reads the subject and
the body's prose (not the diffstat, not indented code or logs, not trailers,
except a ``Fixes:`` trailer) sentence by sentence, through one table,
``CONVENTIONS``.  Each row is a kernel commit-message convention: the phrase
it reads (a pattern over one sentence) and what it yields:

- a *change* claim: a channel (the one the sentence names next to its verb)
  may change with a relation (``subset``: may drop; ``superset``: may gain;
  ``moved``; ``free``) at the places the sentence names (operations, C
  functions; none named: where the diff is), or everywhere but the places an
  "only when ..." clause names;
- *no functional change*: every channel must stay equal, accessed marking too;
- *fix*: the patch says it fixes a bug (a ``Fixes:`` trailer, "Fix ...");
  the engine then looks for a check the before-state fails and the
  after-state holds, and reports it (never a failure when none is found).

Only sentences in which the patch speaks yield change claims: the subject, and
body sentences in the imperative ("Don't ...", "Mark ...", "Opportunistically
drop ...") or about "this patch".  A sentence that names a channel and a
change but that no row can use is kept as ``Unread`` with the reason, so every
output can say which sentence was not used; such a sentence leaves its channel
``equal``.  An empty, missing or non-English message yields no claims and says
so.  Claims are never invented: no row reads anything but the message.

Values (frozen, I/O-free):

- ``Claim(sentence, convention, kind, channel, relation, places, excludes,
  opportunistic)``; ``places == ()`` means "where the diff is";
- ``Unread(sentence, channels, reason)``;
- ``Intent(status, claims, unread)`` with ``changes``, ``fixes``,
  ``no_functional_change``, ``note`` and ``as_dict()``.

``harness.check.contracts.from_message`` turns an ``Intent`` into a contract.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from kernel_models.effects import ACCESSED, DIRTY, DIRTY_LOG, FLUSH, REFS, SPTE, WARN

CHANGE = "change"
NO_CHANGE = "no functional change"
FIX = "fix"

READ = "read"
EMPTY = "empty"
MISSING = "missing"
NOT_ENGLISH = "not English"

# Relations (the same spellings as harness.check.contracts).
SUBSET, SUPERSET, MOVED, FREE = "subset", "superset", "moved", "free"


@dataclass(frozen=True)
class Convention:
    """One row of the claims table."""

    name: str
    reads: str                     # the phrase, as README and docs show it
    pattern: re.Pattern
    kind: str                      # CHANGE | NO_CHANGE | FIX
    relation: str | None = None    # what a CHANGE row lets its channel do
    imperative: bool = True        # only where the patch speaks (subject, imperative)
    only: bool = False             # "only when X": the places are where it does NOT apply
    inherit: bool = False          # the channel is the sentence's other claim's


@dataclass(frozen=True)
class Claim:
    sentence: str
    convention: str
    kind: str
    channel: str | None = None
    relation: str | None = None
    places: tuple[str, ...] = ()       # operations / C functions named; () = where the diff is
    excludes: tuple[str, ...] = ()     # "only when X": X's places keep their behaviour
    opportunistic: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def allows(self) -> str:
        """What the claim lets the contract allow, in words."""
        if self.kind == NO_CHANGE:
            return "every channel must stay equal (accessed marking too)"
        if self.kind == FIX:
            return "says it fixes a bug: look for a check failing before and holding after"
        where = ", ".join(self.places) if self.places else "where the diff is"
        if self.excludes:
            where += " except " + ", ".join(self.excludes)
        return f"{self.channel} may change: {self.relation} ({where})"

    @property
    def text(self) -> str:
        """One line for reports: what the claim allows, and the sentence behind it."""
        return f"{self.allows}: \u201c{self.sentence}\u201d [{self.convention}]"


@dataclass(frozen=True)
class Unread:
    sentence: str
    channels: tuple[str, ...]
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Intent:
    """Everything read from one commit message."""

    status: str                         # READ | EMPTY | MISSING | NOT_ENGLISH
    claims: tuple[Claim, ...] = ()
    unread: tuple[Unread, ...] = ()

    @property
    def changes(self) -> tuple[Claim, ...]:
        return tuple(c for c in self.claims if c.kind == CHANGE)

    @property
    def fixes(self) -> tuple[Claim, ...]:
        return tuple(c for c in self.claims if c.kind == FIX)

    @property
    def no_functional_change(self) -> bool:
        return any(c.kind == NO_CHANGE for c in self.claims)

    @property
    def note(self) -> str | None:
        if self.status == READ:
            return None
        return (f"the commit message is {self.status}: no claims read, so every channel must "
                f"stay equal")

    def as_dict(self) -> dict:
        return {"status": self.status, "claims": [c.as_dict() for c in self.claims],
                "unread": [u.as_dict() for u in self.unread]}


# ---------------------------------------------------------------------------
# Words: channels, places, verbs
# ---------------------------------------------------------------------------

def _re(text: str) -> re.Pattern:
    return re.compile(text, re.IGNORECASE)


# The channel a noun phrase names, most specific first.  An SPTE's own A/D/W
# bits are the SPTE channel ("clears the Accessed bit"), the folio's marks are
# the accessed and dirty channels.
CHANNEL_NOUNS: tuple[tuple[str, re.Pattern], ...] = (
    (SPTE, _re(r"\b(?:accessed|dirty|a/d|writable|w|mmu-writable|host-writable|present)"
               r"[- ](?:bits?|flags?)\b|\bwrite[- ]protect\w*|\bwrite[- ]track\w*|\bread-only\b"
               r"|\bSPTE values?\b|\b(?:try(?:ing)? to )?unsync\w*")),
    (DIRTY_LOG, _re(r"\bdirty[- ](?:log(?:s|ged|ging)?|bitmaps?|rings?)\b|\bmark_page_dirty\w*")),
    (DIRTY, _re(r"\bdirty\b|\bset_page_dirty\b|\bfolio_mark_dirty\b|\bkvm_set_pfn_dirty\b"
                r"|\bkvm_release_pfn_dirty\b|\bkvm_set_page_dirty\b")),
    (ACCESSED, _re(r"\baccessed\b|\bmark_page_accessed\b|\bfolio_mark_accessed\b"
                   r"|\bkvm_set_pfn_accessed\b|\bkvm_set_page_accessed\b")),
    (FLUSH, _re(r"\bflush(?:es|ed|ing)?\b|\bTLB (?:invalidation|shootdown)s?\b"
                r"|\bkvm_flush_remote_tlbs\w*")),
    (WARN, _re(r"\bWARN\w*|\bBUG(?:_ON)?\b|\bKVM_BUG_ON\b|\bwarnings?\b|\bassert(?:s|ion|ions)?\b")),
    (REFS, _re(r"\b(?:page |folio |pfn )?(?:references?|refcounts?|refs?)\b|\bput_page\b"
               r"|\bget_page\b|\bkvm_release_p\w+|\brelease (?:the )?(?:page|pfn|folio)s?\b")),
    (SPTE, _re(r"\b(?:S|shadow )?PTEs?\b")),
)


# A channel word that qualifies one of these nouns names a piece of code, not
# the channel's behaviour: "the flush flag", "the write-protect flush check",
# "the Dirty bit handling", "the dirty test", "the flush logic".
CODE_NOUNS = _re(r"^[\s\"']*(?:flags?|variables?|locals?|booleans?|bools?|parameters?|params?|"
                 r"arguments?|fields?|checks?|tests?|conditions?|expressions?|statements?|"
                 r"logic|code|helpers?|macros?|wrappers?|handling|return values?|"
                 r"comments?)\b")


def channels_named(text: str) -> list[tuple[int, str]]:
    """(position, channel) of every channel noun in ``text``, in order; a noun
    qualifying a code noun (``CODE_NOUNS``) names code, not a channel."""
    found = []
    taken: list[tuple[int, int]] = []
    for channel, pattern in CHANNEL_NOUNS:
        for match in pattern.finditer(text):
            if any(a <= match.start() < b for a, b in taken):
                continue
            taken.append(match.span())
            if CODE_NOUNS.match(text[match.end():]):
                continue
            found.append((match.start(), channel))
    return sorted(found)


ZAPS = ("unmap", "change_pte", "zap_gfn_range", "zap_all", "memslot_delete", "memslot_remove",
        "memslot_move", "collapse", "dirty_log_disable")
INVALIDATIONS = ("unmap", "change_pte", "zap_gfn_range")
CREATIONS = ("fault", "slot_access", "async_pf_ready", "shadow_prefetch", "make_spte",
             "mmu_set_spte")
MODIFICATIONS = ("mmu_spte_update", "mmu_spte_update_no_track", "tdp_mmu_set_spte",
                 "tdp_mmu_set_spte_atomic", "tdp_mmu_clear_spte_bits")

# Places a sentence names, most specific first; a matched span is not read again.
PLACES: tuple[tuple[re.Pattern, tuple[str, ...]], ...] = (
    (_re(r"\bzap\w* (?:the )?leaf SPTEs?|\bleaf SPTEs? (?:is|are) zapped"), INVALIDATIONS),
    (_re(r"\bfast (?:page )?fault|\bfast path\b"), ("fast_fault",)),
    (_re(r"\basync(?:hronous)? (?:page )?faults?|\basync #?PF\b"), ("async_pf_ready",)),
    (_re(r"\b(?:tear(?:ing)? down|teardown|destroy\w*|dying)\b|\bzap\w* (?:all|entire) roots?"),
     ("zap_all", "memslot_delete")),
    (_re(r"\bmemslots? (?:is |are )?(?:delet|remov)\w*|\bdelet\w+ (?:a |the )?memslots?"),
     ("memslot_delete", "memslot_remove", "memslot_move")),
    (_re(r"\bdirty[- ]log(?:s|ged|ging)?\b|\bdirty (?:bitmap|ring)s?\b|\bCLEAR_DIRTY_LOG\b"),
     ("dirty_log_enable", "dirty_log_clear", "dirty_log_disable")),
    (_re(r"\bcollaps\w+|\bhuge ?page recovery\b|\breconstitut\w+"),
     ("collapse", "dirty_log_disable")),
    (_re(r"\bsplit\w*"), ("split_huge", "dirty_log_enable")),
    (_re(r"\bmmu[_ ]notifiers?\b|\binvalidat\w+|\bunmap\w*"), INVALIDATIONS),
    (_re(r"\bchange_pte\b|\bKSM\b|\bCOW\b"), ("change_pte",)),
    (_re(r"\bzap\w*"), ZAPS),
    (_re(r"\b(?:ag(?:e|es|ed|ing)|young)\b"), ("clear_flush_young", "clear_young", "test_young")),
    (_re(r"\bwrite[- ]protect\w*|\bwrprot\w*"),
     ("dirty_log_enable", "dirty_log_clear", "shadow_prefetch", "shadow_sync")),
    (_re(r"\bprefetch\w*"), ("shadow_prefetch", "async_pf_ready")),
    (_re(r"\b(?:un)?sync\w*|\bINVLPG\b"), ("shadow_sync",)),
    (_re(r"\b(?:creat\w*|install\w*|establish\w*|instantiat\w*)\b[^,;.]{0,40}?\bSPTEs?\b"
         r"|\bnew SPTEs?\b|\bmap(?:s|ped|ping)? (?:\w+ )?(?:into|in) the guest\b"
         r"|\bat map time\b|\bwhen mapping\b"), CREATIONS),
    (_re(r"\b(?:modif\w+|overwrit\w+|refresh\w*|updat\w+)\b[^,;.]{0,30}?\bSPTEs?\b"
         r"|\bSPTE updates?\b"), MODIFICATIONS),
    (_re(r"\b(?:page )?faults?\b|\bfault(?:ed|ing)(?:-in)?\b"),
     ("fault", "slot_access", "fast_fault", "async_pf_ready")),
)

_IDENTIFIER = re.compile(r"\bFNAME\(\w+\)|\b[A-Za-z_]\w*(?=\(\))|\b[a-z_][a-z0-9_]*_[a-z0-9_]+\b")


def _function_names() -> frozenset[str]:
    from kernel_models import operations, registry
    return frozenset({v.name for v in registry.table()}) | frozenset(operations.OPERATIONS)


def places_named(text: str, functions: frozenset[str]) -> tuple[str, ...]:
    """Operations and modelled C functions ``text`` names, in table order."""
    found: list[str] = []
    rest = text
    for match in _IDENTIFIER.finditer(text):
        word = match.group(0)
        if word in functions:
            if word not in found:
                found.append(word)
            rest = rest.replace(word, " ")
    for pattern, names in PLACES:
        if pattern.search(rest):
            found += [n for n in names if n not in found]
            rest = pattern.sub(" ", rest)
    return tuple(found)


# Verbs, by what they do to the channel they name.
DROP_VERBS = (r"don't|do not|doesn't|does not|no longer|never|skip|skips|skipping|drop|drops|"
              r"dropping|avoid|avoids|avoiding|stop|stops|stopping|remove|removes|removing|omit|"
              r"omits|elide|elides|eliminate|eliminates|delete|deletes|get rid of|"
              r"batch|batches|coalesce|coalesces|"
              r"(?:don't|do not|doesn't|does not) (?:need|bother) to")
ADD_VERBS = (r"add|adds|mark|marks|force|forces|always|flush|flushes|take|takes|grab|grabs|"
             r"hold|holds|acquire|acquires|set|sets|warn|warns|WARN|BUG|yell|assert|asserts|"
             r"re-mark|emit|emits|trigger|triggers")
MOVE_VERBS = r"move|moves|moving|defer|defers|deferring|hoist|hoists|sink|sinks|delay|delays"
FREE_VERBS = (r"rework|reworks|change|changes|replace|replaces|modify|modifies|rewrite|"
              r"rewrites|adjust|adjusts|tweak|tweaks|fix|fixes|correct|corrects|"
              r"redo|rearrange|reorder|reorders|refine|refines|precisely")
_BOUNDARY_WORDS = (r"\b(?:if|iff|when|whenever|unless|because|since|but|except|other than|"
                   r"while|after|before|"
                   r"instead|rather|only|in order|to avoid|to ensure|so that|as opposed|i\.e|"
                   r"e\.g)\b|[,;:.()]")
_BOUNDARY = rf"(?={_BOUNDARY_WORDS}|$)"
# Verbs that say how the code is written, not what it does (kernel refactoring
# and cleanup subjects): no row reads a claim from them.  A behaviour verb later
# in the sentence still speaks ("Refactor X to skip the flush when ...").
CODE_SHAPE_VERBS = (r"accumulate|accumulates|rename|renames|use|uses|open[- ]code|open[- ]codes|"
                    r"consolidate|consolidates|refactor|refactors|fold|folds|spell out|"
                    r"spells out|group|groups|simplify|simplifies|clean up|cleans up|tidy|"
                    r"tidies|inline|inlines|extract|extracts|factor out|factors out|split out|"
                    r"restructure|restructures|reorganize|reorganise|reorganizes|deduplicate|"
                    r"dedup|combine|combines|handle|handles|check|checks|test|tests|compute|"
                    r"computes|walk|walks|read|reads|let|lets|introduce|introduces|wrap|wraps|"
                    r"pass|passes|return|returns|compare|compares|trim|trims|tighten|tightens")
_CODE_SHAPE = _re(rf"^(?:(?:\w+ly|just|also|only|always|explicitly)\s+)*(?P<verb>"
                  rf"{CODE_SHAPE_VERBS})\b")
_NOT_BEHAVIOUR = _re(r"\b(?:comments?|typos?|documentation|docs?|changelog|spelling|names?|"
                     r"variables?|prototypes?|declarations?|whitespace|indentation|helpers? name)\b")


def _verb_row(verbs: str) -> re.Pattern:
    return _re(rf"(?<![\w-])(?P<verb>{verbs})\b(?P<what>.*?){_BOUNDARY}")


# The claims table: one row per convention, first rows first.  Adding a row
# is how kconform learns a phrase; never a row for one patch's wording.
CONVENTIONS: tuple[Convention, ...] = (
    Convention("no functional change", '"No functional change (intended)", "NFC", '
               '"no functional change"', _re(
                   r"\bno (?:intended )?functional(?:ity)? changes?\b|\bNFC\b|"
                   r"\bno (?:change in|changes? to) (?:functionality|behaviou?r)\b|"
                   r"\bnon-functional change\b|\bno behaviou?r(?:al)? changes?\b"),
               NO_CHANGE, imperative=False),
    Convention("fixes trailer", '"Fixes: <sha> (...)" trailer', _re(r"^Fixes:\s"),
               FIX, imperative=False),
    Convention("fix", '"Fix ...", "fixes a bug/race/leak", "this bug"', _re(
        r"^fix\b|\bfix(?:es|ed|ing)? (?:a|an|the|this|that|these|two|several|multiple|"
        r"various|potential|possible)\b.*\b(?:bugs?|races?|leaks?|use-after-free|"
        r"regressions?|issues?|problems?|crash\w*|splats?|corruption|hangs?|deadlocks?|"
        r"underflows?|overflows?)\b|\b(?:this|the) (?:bug|regression)\b"), FIX, imperative=False),
    Convention("only when", '"... only when/if ...", "iff", "if and only if"', _re(
        r"\bonly (?:when|if|after|for|on|in|while|during)\b(?P<where>[^;]*)|"
        r"\b(?:iff|if and only if)\b(?P<where2>[^;]*)"), CHANGE, SUBSET, only=True),
    Convention("don't / skip / drop / avoid", '"Don\'t / do not / skip / drop / avoid / '
               'stop / remove / no longer ... <channel>"', _verb_row(DROP_VERBS), CHANGE, SUBSET),
    Convention("move / defer", '"Move / defer ... <channel>"', _verb_row(MOVE_VERBS),
               CHANGE, MOVED),
    Convention("mark / add / flush / force", '"Mark ... dirty/accessed when ...", "Add/force '
               '... flush", "Flush ...", "WARN if ..."', _verb_row(ADD_VERBS), CHANGE, SUPERSET),
    Convention("not when", '"..., not when ..." (after a claim)', _re(
        r"\b(?:not|instead of|rather than) (?:when|while|if|on|in|during|after|for)\b"
        r"(?P<where>[^;]*)"), CHANGE, SUBSET, inherit=True),
    Convention("rework / change / fix", '"Rework / change / replace / fix ... <channel>"',
               _verb_row(FREE_VERBS), CHANGE, FREE),
)


# ---------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------

TRAILER = re.compile(r"^(?P<key>[A-Z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*):\s+\S")
TRAILER_KEYS = frozenset({"fixes", "link", "cc", "closes", "message-id", "change-id",
                          "base-commit", "bug", "patchwork-id", "lore"})
_SUBSYSTEM = re.compile(r"^(?:[\w./+-]+:\s+)+")
_ABBREVIATIONS = re.compile(r"\b(?:i\.e|e\.g|etc|vs|a\.k\.a|cf|approx|resp)\.", re.IGNORECASE)
_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9_*])")
_LEAD_INS = _re(r"^(?:(?:opportunistically|also|additionally|instead|now|so|thus|therefore|"
                r"similarly|finally|and|then|in addition|as a result|to fix this|to fix that|"
                r"to fix the (?:bug|issue|problem)|to do so|while at it|while here|for now|"
                r"more importantly|lastly|first|second|third|next|plus)\b,?\s+)+")
_SELF = _re(r"^(?:this|the) (?:patch|commit|change)(?: series)?(?: now| also| simply)?\s+")
_ADVERBS = _re(r"^(?:(?:\w+ly|just|simply|now|also|only|always|never|explicitly)\s+)+")
_OPPORTUNISTIC = _re(r"^(?:also,? )?(?:opportunistically|while at it|while here)\b")
IMPERATIVE_VERBS = frozenset("""
    add apply avoid batch bail bug change check clear coalesce consolidate convert correct
    defer delay delete don't do drop elide eliminate emit explicitly fix flush force get grab
    handle hold hoist honor ignore introduce invert keep leave make mark move never omit only
    pass preserve propagate put re-mark redo refine release remove rename reorder replace
    require restore retain return rework rewrite set sink skip stop take tear treat trigger
    tweak unconditionally update use warn write write-protect yell zap always acquire assert
    adjust modify rearrange
""".split())
_ENGLISH = frozenset("the a an to of and in is are when if not for that this on it be as with "
                     "by no don't doesn't only from so which".split())


def split_message(subject: str, body: str) -> tuple[list[tuple[str, bool]], list[str]]:
    """([(sentence, speaks)], trailers): the prose of subject and body, sentence by sentence.

    ``speaks`` is True for the subject, which is the patch's claim by convention.
    Indented lines (code, logs, lists of commits), quoted lines and trailers
    are not prose; trailers are returned apart (``Fixes:`` is read from them).
    """
    sentences: list[tuple[str, bool]] = []
    if subject.strip():
        sentences.append((_SUBSYSTEM.sub("", " ".join(subject.split())), True))
    trailers: list[str] = []
    paragraph: list[str] = []
    paragraphs: list[str] = []
    for line in (body or "").split("\n"):
        match = TRAILER.match(line)
        if match and (match.group("key").lower() in TRAILER_KEYS
                      or match.group("key").lower().endswith("-by")):
            trailers.append(line.strip())
            continue
        if not line.strip() or line[:1] in (" ", "\t", ">") or line.startswith("[*]"):
            if paragraph:
                paragraphs.append(" ".join(paragraph))
                paragraph = []
            continue
        paragraph.append(line.strip())
    if paragraph:
        paragraphs.append(" ".join(paragraph))
    for text in paragraphs:
        protected = _ABBREVIATIONS.sub(lambda m: m.group(0).replace(".", "\0"), text)
        for sentence in _SPLIT.split(protected):
            sentence = sentence.replace("\0", ".").strip()
            if sentence:
                sentences.append((sentence, False))
    return sentences, trailers


def _imperative(text: str) -> bool:
    rest = _ADVERBS.sub("", text)
    first = rest.split(" ", 1)[0].lower().strip("\"'(,:")
    return first in IMPERATIVE_VERBS or text.split(" ", 1)[0].lower() in IMPERATIVE_VERBS


def speaker(sentence: str, is_subject: bool) -> tuple[str | None, bool]:
    """(the part in which the patch speaks, opportunistic) or (None, False).

    The subject speaks; a body sentence speaks when it is imperative after its
    lead-in ("Opportunistically", "Also,", "To keep it simple, ...") or talks
    about "this patch/commit".
    """
    opportunistic = bool(_OPPORTUNISTIC.match(sentence))
    text = _LEAD_INS.sub("", sentence)
    text = _SELF.sub("", text)
    if is_subject or _imperative(text):
        return text, opportunistic
    head, comma, tail = text.partition(", ")
    if comma and len(head.split()) <= 8 and _imperative(tail):
        return tail, opportunistic or bool(_OPPORTUNISTIC.match(tail))
    return None, opportunistic


def _language(sentences: list[tuple[str, bool]]) -> str:
    text = " ".join(s for s, _ in sentences)
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return EMPTY
    if sum(1 for c in letters if not c.isascii()) > 0.3 * len(letters):
        return NOT_ENGLISH
    words = [w.lower().strip(".,;:()\"'") for w in text.split()]
    if len(words) >= 6 and not _ENGLISH.intersection(words):
        return NOT_ENGLISH
    return READ


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def read_message(subject: str, body: str, functions: frozenset[str] | None = None) -> Intent:
    """The claims of one commit message.  ``subject`` is "" when the patch had none."""
    if not (subject or "").strip() and not (body or "").strip():
        return Intent(MISSING)
    sentences, trailers = split_message(subject or "", body or "")
    status = _language(sentences) if sentences else EMPTY
    fixes = [Claim(t, "fixes trailer", FIX) for t in trailers
             if CONVENTIONS[1].pattern.search(t)]
    if status != READ:
        return Intent(status, tuple(fixes))
    if functions is None:
        functions = _function_names()
    claims: list[Claim] = []
    unread: list[Unread] = []
    for sentence, is_subject in sentences:
        found = read_sentence(sentence, is_subject, functions)
        claims += found
        if not any(c.kind in (CHANGE, NO_CHANGE) for c in found):
            missed = unused(sentence, is_subject)
            if missed is not None:
                unread.append(missed)
    claims += fixes
    return Intent(READ, tuple(dict.fromkeys(claims)), tuple(dict.fromkeys(unread)))


def read_sentence(sentence: str, is_subject: bool, functions: frozenset[str]) -> list[Claim]:
    """The claims one sentence makes, row by row."""
    claims: list[Claim] = []
    spoken, opportunistic = speaker(sentence, is_subject)
    main = len(re.split(_BOUNDARY_WORDS, spoken, maxsplit=1)[0]) if spoken else 0
    used: list[tuple[int, int]] = []      # spans a verb row already read
    for row in CONVENTIONS:
        if row.kind != CHANGE:
            if row.pattern.search(sentence) and row.name != "fixes trailer":
                claims.append(Claim(sentence, row.name, row.kind, opportunistic=opportunistic))
            continue
        if spoken is None:
            continue
        for match in row.pattern.finditer(spoken):
            verb_row = "verb" in match.groupdict()
            if verb_row and not _main_verb(spoken, match.start(), main, used):
                continue
            claim = _change_claim(row, match, spoken, sentence, claims, functions, opportunistic)
            if claim is None:
                continue
            if verb_row:
                used.append(match.span())
            if not _same_claim(claim, claims):
                claims.append(claim)
    return claims


# Where a verb of the patch's own clause may stand: first (after adverbs), or
# after a coordinator or "to" ("Drop X and flush Y", "Rework KVM to mark ...").
_VERB_SLOT = _re(r"(?:^|\band |\bor |\bthen |\bto |; )(?:(?:\w+ly|just|also|only|always|"
                 r"never|explicitly)\s+)*$")


def _main_verb(spoken: str, start: int, main: int, used) -> bool:
    """Is the verb at ``start`` one the patch says it does (not a noun, not a reason)?"""
    if start >= main or any(a <= start < b for a, b in used):
        return False     # a subordinate clause, or inside a phrase already read
    before = spoken[:start]
    return bool(_VERB_SLOT.search(before)) and not _NOT_BEHAVIOUR.search(before)


def _change_claim(row, match, spoken, sentence, claims, functions, opportunistic):
    groups = match.groupdict()
    where = next((_where(groups[k]) for k in ("where", "where2") if groups.get(k)), None)
    if row.inherit:
        earlier = [c for c in claims if c.kind == CHANGE]
        if not earlier:
            return None
        channel = earlier[0].channel
        named = places_named(where or "", functions)
        if not named:
            return None
        return Claim(sentence, row.name, CHANGE, channel, _relation(row, channel), named,
                     opportunistic=opportunistic)
    if row.only:
        before = spoken[:match.start()]
        found = channels_named(_last_clause(before))
        if not found:
            return None
        channel = found[0][1]
        return Claim(sentence, row.name, CHANGE, channel, _relation(row, channel), (),
                     places_named(where or "", functions), opportunistic)
    what = match.group("verb") + match.group("what")
    found = channels_named(what)
    if not found:
        return None
    position, channel = found[0]
    if _NOT_BEHAVIOUR.search(what[:position]):
        return None          # "fix the comment about flushing": no behaviour claimed
    return Claim(sentence, row.name, CHANGE, channel, _relation(row, channel),
                 places_named(_where(spoken[match.start():]), functions),
                 opportunistic=opportunistic)


def _relation(row: Convention, channel: str) -> str:
    """An SPTE is a value, not a mark: skipping, dropping or adding a step that
    shapes it changes what is written, so any claim on the SPTE channel lets
    it change (``free``) where it applies."""
    return FREE if channel == SPTE else row.relation


def _last_clause(text: str) -> str:
    parts = re.split(r"[,;:]\s+", text)
    return parts[-1] if parts else text


# Where the places of a claim end: at a "not when ..." clause (its own claim) or
# at the reasons and examples that follow ("..., as ...", "e.g.", "because").
_END_OF_PLACES = _re(r"\b(?:not|instead of|rather than) (?:when|while|if|on|in|during|after|for)\b"
                     r"|,\s*(?:e\.g|i\.e|as|which|whereas|but|so)\b|\b(?:e\.g|i\.e)\.|:\s"
                     r"|\b(?:because|since|so that|to avoid|to ensure)\b")


def _where(text: str) -> str:
    """The part of a claim's text that says where it applies."""
    return _END_OF_PLACES.split(text, maxsplit=1)[0]


def _same_claim(claim: Claim, claims: list[Claim]) -> bool:
    return any(c.kind == CHANGE and c.channel == claim.channel and c.relation == claim.relation
               and c.places == claim.places and c.excludes == claim.excludes for c in claims)


_CHANGE_WORDS = _re(rf"(?<![\w-])(?:{DROP_VERBS}|{ADD_VERBS}|{MOVE_VERBS}|{FREE_VERBS}|"
                    r"must|should|needs? to|need not|no need|only|iff|instead|now)\b")


def unused(sentence: str, is_subject: bool) -> Unread | None:
    """A sentence that names a channel and a change but gave no change claim: why."""
    names = tuple(dict.fromkeys(c for _, c in channels_named(sentence)))
    if not names:
        return None
    spoken, _ = speaker(sentence, is_subject)
    shape = _CODE_SHAPE.match(spoken) if spoken is not None else None
    if not shape and not _CHANGE_WORDS.search(sentence):
        return None
    if spoken is None:
        return Unread(sentence, names, "not read as a claim: it describes behaviour (not in the "
                                       "imperative, not about this patch)")
    if shape:
        return Unread(sentence, names, f"read as code shape: '{shape.group('verb').lower()}' "
                                       "says how the code is written, not a change of "
                                       f"{', '.join(names)}")
    return Unread(sentence, names, "no convention in the claims table reads a change of "
                                   f"{', '.join(names)} from it")
