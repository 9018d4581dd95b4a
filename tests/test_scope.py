"""Scope: which C function each hunk changes, and what kind of change it is."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.ingest import patches as ingest
from harness.ingest import scope
ROOT = Path(__file__).resolve().parent.parent
PATCHES = ROOT / "patches"
INPUTS = ROOT / "tests" / "data" / "inputs"
SEED = "000_e8ee204d4a7b7ba7.txt"

MMU, TMPL, SPTE, TDP = ("arch/x86/kvm/mmu/mmu.c", "arch/x86/kvm/mmu/paging_tmpl.h",
                        "arch/x86/kvm/mmu/spte.c", "arch/x86/kvm/mmu/tdp_mmu.c")
LOCKING = "Documentation/virt/kvm/locking.rst"

EXPECTED = {
    "rfc-1-of-4.patch": [(SPTE, "make_spte", "behaviour")],
    "rfc-2-of-4.patch": [
        (MMU, "mmu_spte_update", "behaviour"),
        (MMU, "mmu_spte_clear_track_bits", "behaviour"),
        (MMU, "mmu_spte_age", "behaviour"),
        (MMU, "spte_wrprot_for_clear_dirty", "behaviour"),
        (MMU, "__rmap_clear_dirty", "behaviour"),
        (MMU, "fast_pf_fix_direct_spte", "comment"),
        (TMPL, "FNAME(prefetch_gpte)", "behaviour"),
        (TMPL, None, "comment"),   # the comment above FNAME(sync_spte): not provable from the hunk
        (SPTE, "make_spte", "comment"),
        (SPTE, "make_spte", "behaviour"),
        (SPTE, "make_spte", "comment"),
        (TDP, "handle_changed_spte", "behaviour"),
        (TDP, "age_gfn_range", "behaviour"),
        (TDP, "clear_dirty_pt_masked", "behaviour"),
    ],
    SEED: [
        (LOCKING, None, "documentation"),
        (MMU, "mmu_spte_update", "behaviour"),
        (TDP, "handle_changed_spte", "behaviour"),
        (TDP, "tdp_mmu_zap_leafs", "behaviour"),
    ],
    "rfc-4-of-4.patch": [(MMU, "mmu_spte_update", "behaviour")],
}


def scoped(path: Path) -> tuple[scope.ScopedHunk, ...]:
    (patch,) = ingest.read_file(str(path))
    return scope.scope_patch(patch)


def summary(hunks) -> list[tuple]:
    return [(h.file, h.function, h.kind) for h in hunks]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundled_series_is_scoped(name):
    assert summary(scoped(PATCHES / name)) == EXPECTED[name]


@pytest.mark.parametrize("variant, name", [
    ("lost-context-space-2-of-4.patch", "rfc-2-of-4.patch"),
    ("rewrapped-2-of-4.patch", "rfc-2-of-4.patch"),
    ("quoted-printable-1-of-4.eml", "rfc-1-of-4.patch"),
    ("base64-4-of-4.eml", "rfc-4-of-4.patch"),
    ("crlf-1-of-4.patch", "rfc-1-of-4.patch"),
    ("latin1-1-of-4.eml", "rfc-1-of-4.patch"),
    ("bare-4-of-4.diff", "rfc-4-of-4.patch"),
    ("attached-4-of-4.eml", "rfc-4-of-4.patch"),
])
def test_variants_scope_like_their_originals(variant, name):
    assert summary(scoped(INPUTS / variant)) == EXPECTED[name]


def test_base64_lines_point_at_the_start_of_the_encoded_body():
    lines = (INPUTS / "base64-4-of-4.eml").read_text().split("\n")
    (hunk,) = scoped(INPUTS / "base64-4-of-4.eml")
    assert lines[hunk.line - 2] == "" and lines[hunk.line - 3].startswith("Content-Transfer-Encoding")


def test_mbox_series_scopes_like_the_bundled_files():
    patches = ingest.read_paths([str(INPUTS / "series-shuffled.mbox")])
    assert scope.scope_patch(patches[0]) == ()
    got = {p.series.index: summary(scope.scope_patch(p)) for p in patches[1:]}
    assert got == {1: EXPECTED["rfc-1-of-4.patch"], 2: EXPECTED["rfc-2-of-4.patch"],
                   3: EXPECTED[SEED], 4: EXPECTED["rfc-4-of-4.patch"]}


def test_header_hint_is_not_taken_for_the_truth():
    hunks = scoped(PATCHES / "rfc-2-of-4.patch")
    deleted = hunks[3]
    assert deleted.hint.startswith("static bool spte_clear_dirty(")
    assert deleted.function == "spte_wrprot_for_clear_dirty"
    assert "deleted by this hunk" in deleted.reason
    comment = hunks[7]
    assert comment.hint.startswith("static gpa_t FNAME(gva_to_gpa)(")
    assert comment.function is None
    assert "top-level comment" in comment.reason and "not in the hunk" in comment.reason


def test_comment_above_a_definition_in_the_hunk_belongs_to_it():
    (hunk,) = scoped(PATCHES / "rfc-4-of-4.patch")
    assert hunk.hint.startswith("static u64 mmu_spte_update_no_track(")
    assert hunk.function == "mmu_spte_update"
    assert "comment directly above the definition of mmu_spte_update" in hunk.reason


def test_damaged_copy_says_how_the_function_was_decided():
    hunks = scoped(PATCHES / SEED)
    assert all("indentation is lost" in h.reason for h in hunks[1:])
    assert "documentation file" in hunks[0].reason


def test_undamaged_copy_says_the_hint_was_confirmed():
    (hunk,) = scoped(PATCHES / "rfc-1-of-4.patch")
    assert "confirmed" in hunk.reason


def test_fields_of_a_scoped_hunk():
    hunk = scoped(PATCHES / "rfc-2-of-4.patch")[0]
    assert (hunk.index, hunk.header, hunk.line) == (0, "@@ -544,10 +544,8 @@", 104)
    assert (hunk.source_start, hunk.source_length, hunk.target_start, hunk.target_length) == \
        (544, 10, 544, 8)
    assert (hunk.source_blob, hunk.target_blob) == ("e4cc7f764980", "bd2240b94ff6")
    mail = (PATCHES / "rfc-2-of-4.patch").read_text().split("\n")
    body = mail[hunk.line:hunk.line + 11]   # the hunk's 11 body lines
    assert hunk.removed == tuple(line[1:] for line in body if line.startswith("-"))
    assert hunk.added == tuple(line[1:] for line in body if line.startswith("+"))
    assert (len(hunk.removed), len(hunk.added), len(hunk.context)) == (3, 1, 7)
    assert hunk.text.startswith("@@ -544,10 +544,8 @@ static bool mmu_spte_update(")
    assert "\n" not in repr(hunk)
    assert dataclasses.asdict(hunk)["function"] == "mmu_spte_update"


@pytest.mark.parametrize("path", [PATCHES / "rfc-2-of-4.patch", PATCHES / SEED,
                                  INPUTS / "series-shuffled.mbox", INPUTS / "rewrapped-2-of-4.patch",
                                  INPUTS / "crlf-1-of-4.patch", INPUTS / "quoted-printable-1-of-4.eml",
                                  INPUTS / "latin1-1-of-4.eml", INPUTS / "attached-4-of-4.eml"])
def test_hunk_line_points_at_the_header_in_the_input(path):
    lines = path.read_bytes().decode("latin-1").replace("\r\n", "\n").split("\n")
    for patch in ingest.read_file(str(path)):
        for hunk in scope.scope_patch(patch):
            assert lines[hunk.line - 1].startswith(hunk.header[:-3])


# --- synthetic hunks (small C written for these tests) ------------------------------


def bare(tmp_path: Path, body: str, header: str = "@@ -1,7 +1,7 @@ int first(void)") -> tuple:
    (tmp_path / "x.diff").write_text(
        "diff --git a/f.c b/f.c\nindex 1111111..2222222 100644\n--- a/f.c\n+++ b/f.c\n"
        f"{header}\n{body}")
    return scoped(tmp_path / "x.diff")


TWO_FUNCTIONS = (" \ta = 1;\n-\tb = 2;\n+\tb = 3;\n }\n \n int second(void)\n {\n"
                 "-\treturn 4;\n+\treturn 5;\n")


def test_hunk_touching_two_functions_gives_one_scoped_hunk_each(tmp_path):
    hunks = bare(tmp_path, TWO_FUNCTIONS)
    assert [(h.index, h.function) for h in hunks] == [(0, "first"), (0, "second")]
    assert hunks[0].removed == ("\tb = 2;",) and hunks[1].added == ("\treturn 5;",)
    assert all("one of 2 functions" in h.reason for h in hunks)


def test_hunk_touching_one_function_gives_one(tmp_path):
    body = TWO_FUNCTIONS.replace("-\treturn 4;\n+\treturn 5;\n", " \treturn 4;\n")
    hunks = bare(tmp_path, body, "@@ -1,7 +1,7 @@ int first(void)")
    assert [(h.index, h.function) for h in hunks] == [(0, "first")]


def test_change_after_the_closing_brace_is_outside_any_function(tmp_path):
    hunks = bare(tmp_path, " \ta = 1;\n }\n \n-static int x;\n+static int y;\n",
                 "@@ -1,4 +1,4 @@ int first(void)")
    assert [(h.function, h.kind) for h in hunks] == [(None, "behaviour")]
    assert "outside any function" in hunks[0].reason


def test_hint_that_is_not_a_function_is_not_used(tmp_path):
    hunks = bare(tmp_path, " \t.a = 1,\n-\t.b = 2,\n+\t.b = 3,\n", "@@ -1,2 +1,2 @@ struct ops ops = {")
    assert hunks[0].function is None and "not a function definition" in hunks[0].reason


@pytest.mark.parametrize("removed, added, kind", [
    ("\ta = 1; /* one */", "\ta = 1; /* uno */", "comment"),
    ("\ta = 1;", "\ta  =  1;", "whitespace"),
    ("\ta = 1;", "\ta = 2;", "behaviour"),
    ('\tp("a b");', '\tp("a  b");', "behaviour"),     # blanks inside a string are behaviour
    ("\ta = 1; // one", "\ta = 1;", "comment"),
])
def test_kind_compares_tokens_then_comments(tmp_path, removed, added, kind):
    hunks = bare(tmp_path, f" \tx = 0;\n-{removed}\n+{added}\n", "@@ -1,2 +1,2 @@ int first(void)")
    assert hunks[0].kind == kind


def test_whitespace_only_hunk_is_not_verified_in_a_repaired_copy(tmp_path):
    # The same whitespace-only change, in a copy whose context lost its
    # leading space: it must not be called whitespace-only.
    body = "\tx = 0;\n-\ta = 1;\n+\ta  =  1;\n"
    (tmp_path / "x.diff").write_text(
        "--- a/f.c\n+++ b/f.c\n@@ -1,2 +1,2 @@ int first(void)\n" + body)
    (patch,) = ingest.read_file(str(tmp_path / "x.diff"))
    assert patch.repaired
    (hunk,) = scope.scope_patch(patch)
    assert hunk.kind == "behaviour" and "cannot be verified" in hunk.reason


def test_non_c_files_are_other(tmp_path):
    (tmp_path / "x.diff").write_text("--- a/Makefile\n+++ b/Makefile\n@@ -1 +1 @@\n-a\n+b\n")
    (patch,) = ingest.read_file(str(tmp_path / "x.diff"))
    assert [(h.kind, h.function) for h in scope.scope_patch(patch)] == [("other", None)]


def test_mode_only_change_is_one_other_entry(tmp_path):
    (tmp_path / "x.diff").write_text(
        "diff --git a/s.sh b/s.sh\nold mode 100644\nnew mode 100755\n"
        "diff --git a/f.c b/f.c\nindex 1111111..2222222 100644\n--- a/f.c\n+++ b/f.c\n"
        "@@ -1 +1 @@ int first(void)\n-\ta = 1;\n+\ta = 2;\n")
    (patch,) = ingest.read_file(str(tmp_path / "x.diff"))
    hunks = scope.scope_patch(patch)
    assert [(h.index, h.file, h.kind) for h in hunks] == [(0, "s.sh", "other"), (1, "f.c", "behaviour")]


# --- properties of the kind --------------------------------------------------------

CODE = st.lists(st.sampled_from(["a", "b", "=", "1", "2", ";", "(", ")", "f", "+", "->", '"x y"']),
                min_size=1, max_size=8)
WORDS = st.lists(st.sampled_from(["one", "two", "three"]), min_size=1, max_size=4)


def scan(lines: list[str]):
    return scope.code_and_comments(lines)


@given(CODE, WORDS, WORDS)
def test_editing_only_a_comment_is_never_behaviour(code, old_words, new_words):
    old = scan([" ".join(code) + " /* " + " ".join(old_words) + " */"])
    new = scan(["\t" + " ".join(code) + " /* " + " ".join(new_words) + " */"])
    kind, _ = scope.classify(old, new, repaired=False)
    assert kind == ("whitespace" if old_words == new_words else "comment")


@given(CODE, CODE)
def test_changing_a_token_is_always_behaviour(old_code, new_code):
    # The twin: any token change must be caught, whatever the comments do.
    if old_code == new_code:
        return
    kind, _ = scope.classify(scan([" ".join(old_code) + " /* c */"]),
                             scan([" ".join(new_code) + " /* c */"]), repaired=False)
    assert kind == "behaviour"


COMMENTED = " \treturn 0;\n }\n \n /*\n- * old words\n+ * new words\n  */\nGAP int second(void)\n {\n"


def test_comment_directly_above_a_definition_belongs_to_it(tmp_path):
    hunks = bare(tmp_path, COMMENTED.replace("GAP", ""), "@@ -1,8 +1,8 @@ int first(void)")
    assert [(h.function, h.kind) for h in hunks] == [("second", "comment")]


def test_comment_separated_by_a_blank_line_belongs_to_no_function(tmp_path):
    hunks = bare(tmp_path, COMMENTED.replace("GAP", " \n"), "@@ -1,9 +1,9 @@ int first(void)")
    assert [(h.function, h.kind) for h in hunks] == [(None, "comment")]


def test_crlf_alone_does_not_make_whitespace_unverifiable(tmp_path):
    # CRLF conversion loses no whitespace inside lines: the twin of the test above.
    (tmp_path / "x.diff").write_bytes(
        b"--- a/f.c\r\n+++ b/f.c\r\n@@ -1,2 +1,2 @@ int first(void)\r\n \tx = 0;\r\n-\ta = 1;\r\n+\ta  =  1;\r\n")
    (patch,) = ingest.read_file(str(tmp_path / "x.diff"))
    assert patch.repaired
    (hunk,) = scope.scope_patch(patch)
    assert hunk.kind == "whitespace"
