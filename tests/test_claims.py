"""The claims table: each convention read from a sentence, and its twin that is not."""

import pytest

from harness.check import claims as M
from harness.check.claims import read_message

FUNCTIONS = frozenset({"mmu_spte_update", "mmu_spte_clear_track_bits", "make_spte",
                       "FNAME(prefetch_gpte)"})


def read(subject, body=""):
    return read_message(subject, body, FUNCTIONS)


def changes(intent):
    return {(c.channel, c.relation) for c in intent.changes}


@pytest.mark.parametrize("sentence", ["No functional change intended.", "No functional change.",
                                      "NFC.", "There are no functional changes.",
                                      "No intended functional change."])
def test_no_functional_change_in_its_usual_spellings(sentence):
    intent = read("KVM: x86/mmu: Rename a local variable", f"Rename it.\n\n{sentence}")
    assert intent.no_functional_change
    assert intent.changes == ()


def test_twin_a_message_about_function_names_is_not_nfc():
    intent = read("KVM: x86/mmu: Rename a local variable", "Make the functional names clearer.")
    assert not intent.no_functional_change


@pytest.mark.parametrize("subject", [
    "KVM: x86/mmu: Don't flush TLBs when zapping leaf SPTEs",
    "KVM: x86/mmu: Do not flush remote TLBs when zapping leaf SPTEs",
    "KVM: x86/mmu: Skip the TLB flush when zapping leaf SPTEs",
    "KVM: x86/mmu: Drop the remote TLB flush when zapping leaf SPTEs",
    "KVM: x86/mmu: Avoid flushing TLBs when zapping leaf SPTEs",
])
def test_dont_skip_drop_avoid_a_flush_lets_flush_drop_where_the_sentence_says(subject):
    (claim,) = read(subject).changes
    assert (claim.channel, claim.relation) == ("flush", "subset")
    assert claim.places == ("unmap", "change_pte", "zap_gfn_range")
    assert claim.sentence == subject.split(": ", 2)[-1]


def test_a_claim_naming_a_function_applies_there_and_else_where_the_diff_is():
    (named,) = read("KVM: x86/mmu: Don't force a TLB flush in mmu_spte_update()").changes
    assert named.places == ("mmu_spte_update",)
    (unnamed,) = read("KVM: x86/mmu: Don't force a TLB flush").changes
    assert unnamed.places == ()          # where the diff is


def test_twin_the_same_verbs_without_a_channel_claim_nothing():
    assert read("KVM: x86/mmu: Drop the unused parameter from make_spte()").changes == ()
    assert read("KVM: x86/mmu: Update the comment about TLB flushes").changes == ()
    assert read("KVM: x86/mmu: Fix a typo in the comment above the flush").changes == ()


def test_mark_dirty_when_gains_there_and_not_when_drops_there():
    intent = read("KVM: x86/mmu: Mark folio dirty when creating SPTE, not when zapping")
    gain, drop = intent.changes
    assert (gain.channel, gain.relation) == ("dirty", "superset")
    assert "fault" in gain.places and "unmap" not in gain.places
    assert (drop.channel, drop.relation, drop.convention) == ("dirty", "subset", "not when")
    assert "unmap" in drop.places and "fault" not in drop.places


def test_only_when_drops_everywhere_but_the_place_it_names():
    claims = read("KVM: x86/mmu: Mark folios accessed only when zapping leaf SPTEs").changes
    only = next(c for c in claims if c.convention == "only when")
    assert (only.channel, only.relation, only.places) == ("accessed", "subset", ())
    assert only.excludes == ("unmap", "change_pte", "zap_gfn_range")


def test_the_patch_speaks_in_the_imperative_a_description_is_not_a_claim():
    body = ("KVM marks every 4KiB pfn dirty when zapping collapsible SPTEs.\n\n"
            "Mark the folio dirty in make_spte() instead.")
    intent = read("KVM: x86/mmu: Rework dirty marking", body)
    described = [u for u in intent.unread if u.sentence.startswith("KVM marks")]
    assert described and "describes behaviour" in described[0].reason
    assert ("dirty", "superset") in changes(intent)
    assert any(c.places == ("make_spte",) for c in intent.changes)


def test_an_opportunistic_sentence_adds_its_own_claim():
    intent = read("KVM: x86/mmu: Rename a helper",
                  "Rename it.\n\nOpportunistically drop the redundant TLB flush in "
                  "mmu_spte_update().\n\nNo functional change intended.")
    (claim,) = intent.changes
    assert claim.opportunistic and (claim.channel, claim.relation) == ("flush", "subset")
    assert intent.no_functional_change


def test_a_sentence_no_row_reads_is_listed_as_unread_and_claims_nothing():
    intent = read("KVM: x86/mmu: Zap SPTEs through the common helper instead")
    assert intent.changes == ()
    (unread,) = intent.unread
    assert unread.channels == ("spte",) and "no convention" in unread.reason


def test_a_claim_on_the_spte_channel_lets_it_change_freely():
    """Skipping the unsync path decides whether the new SPTE is write-protected:
    an SPTE is a value, so a claim on it is 'free', never a subset of writes."""
    intent = read('KVM: x86/mmu: Skip the "try unsync" path iff the old SPTE was a leaf SPTE')
    assert changes(intent) == {("spte", "free")}


@pytest.mark.parametrize("body, fixes", [
    ("Blah.\n\nFixes: 0123456789ab (\"KVM: x86/mmu: Something\")\nSigned-off-by: A <a@b.c>", 1),
    ("This fixes a race between the fast path and aging.", 1),
    ("Use a fixed-size array for the iterator.", 0),
])
def test_fixes_trailer_and_fix_sentences_are_fix_claims(body, fixes):
    intent = read("KVM: x86/mmu: Tweak the iterator", body)
    assert len(intent.fixes) == fixes


def test_fix_names_the_channel_it_changes():
    intent = read("KVM: x86/mmu: Fix the page reference leak in FNAME(prefetch_gpte)")
    assert intent.fixes
    assert ("refs", "free") in changes(intent)
    assert all(c.places == ("FNAME(prefetch_gpte)",) for c in intent.changes)


def test_trailers_indented_text_and_quotes_are_not_read():
    body = ("Reorder two statements.\n\n"
            "    kvm_flush_remote_tlbs(kvm);   /* a quoted log line: drop this flush */\n\n"
            "> Don't mark the folio dirty here.\n\n"
            "Suggested-by: Don't Flush <flush@example.org>\n"
            "Signed-off-by: A <a@b.c>")
    intent = read("KVM: x86/mmu: Reorder two statements", body)
    assert intent.claims == () and intent.unread == ()


@pytest.mark.parametrize("subject, body, status", [
    ("", "", M.MISSING),
    ("   ", "\n\n", M.MISSING),
    ("KVM: x86/mmu: Не сбрасывать TLB при обновлении SPTE",
     "Не сбрасывать TLB, если очищается только бит доступа.", M.NOT_ENGLISH),
])
def test_empty_missing_or_not_english_reads_no_claims_and_says_so(subject, body, status):
    intent = read(subject, body)
    assert intent.status == status and intent.changes == ()
    assert "no claims read" in intent.note


def test_twin_an_english_message_is_read():
    intent = read("KVM: x86/mmu: Don't flush when zapping", "")
    assert intent.status == M.READ and intent.note is None and intent.changes


def test_the_table_is_data_one_row_per_convention():
    names = [row.name for row in M.CONVENTIONS]
    assert len(names) == len(set(names))
    assert {row.kind for row in M.CONVENTIONS} == {M.CHANGE, M.NO_CHANGE, M.FIX}
    assert all(row.reads and (row.kind != M.CHANGE or row.relation) for row in M.CONVENTIONS)


def test_every_claim_says_what_it_allows_and_quotes_its_sentence():
    (claim,) = read("KVM: x86/mmu: Don't flush when zapping leaf SPTEs").changes
    assert claim.allows == "flush may change: subset (unmap, change_pte, zap_gfn_range)"
    assert "\u201cDon't flush when zapping leaf SPTEs\u201d" in claim.text
    assert claim.as_dict()["sentence"] == "Don't flush when zapping leaf SPTEs"


def test_docs_describe_every_row_of_the_table():
    from pathlib import Path
    docs = (Path(__file__).resolve().parent.parent / "docs" / "claims.md").read_text()
    for row in M.CONVENTIONS:
        assert f"| `{row.name}` |" in docs, row.name


@pytest.mark.parametrize("subject", [
    "KVM: x86/mmu: Accumulate the write-protect flush with |= in mmu_spte_update()",
    "KVM: x86/mmu: Consolidate the Dirty vs. Writable clearing logic",
    "KVM: x86/mmu: Handle the Dirty bit first in mmu_spte_clear_track_bits()",
    "KVM: x86/mmu: Spell out both flush paths in mmu_spte_update()",
    "KVM: x86/mmu: Fold the dirty marking of make_spte() into one statement",
])
def test_a_refactoring_verb_describes_code_shape_and_claims_nothing(subject):
    """Kernel refactoring subjects say how the code is written: no behaviour claimed,
    and the unread sentence says it was read as code shape."""
    intent = read(subject)
    assert intent.changes == ()
    (unread,) = intent.unread
    assert "read as code shape" in unread.reason


def test_twin_a_behaviour_verb_after_a_refactoring_verb_still_claims():
    intent = read("KVM: x86/mmu: Refactor the rmap zap to skip the flush when zapping leaf SPTEs")
    assert changes(intent) == {("flush", "subset")}
    assert changes(read("KVM: x86/mmu: Don't flush when zapping leaf SPTEs")) == {
        ("flush", "subset")}


def test_a_channel_word_qualifying_a_code_noun_names_code_not_the_channel():
    assert read("KVM: x86/mmu: Set the flush flag explicitly in mmu_spte_update()").changes == ()
    assert read("KVM: x86/mmu: Drop the dirty test from make_spte()").changes == ()


def test_twin_the_channel_word_on_its_own_is_a_claim():
    assert changes(read("KVM: x86/mmu: Set the Dirty bit in make_spte()")) == {("spte", "free")}
    assert changes(read("KVM: x86/mmu: Drop the flush from mmu_spte_update()")) == {
        ("flush", "subset")}
    # a bit the kernel calls a flag is the SPTE's own, not a code noun
    assert changes(read("KVM: x86/mmu: Flush remote TLBs iff MMU-writable flag is cleared")) \
        >= {("flush", "subset")}


def test_what_a_drop_keeps_with_except_is_not_what_it_drops():
    """"Drop everything except marking the PFN dirty" keeps the dirty mark: no dirty
    claim; the twin without "except" drops it."""
    kept = read("KVM: x86/mmu: Drop everything except marking the PFN dirty in make_spte()")
    assert ("dirty", "subset") not in changes(kept)
    assert changes(read("KVM: x86/mmu: Drop marking the PFN dirty in make_spte()")) == {
        ("dirty", "subset")}
