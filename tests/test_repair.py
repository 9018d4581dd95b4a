"""Whitespace damage: repaired only when the hunk counts leave one reading."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.ingest import patches as ingest
from harness.ingest import repair
from harness.errors import PatchError

ROOT = Path(__file__).resolve().parent.parent
PATCHES = ROOT / "patches"
INPUTS = ROOT / "tests" / "data" / "inputs"
SEED = PATCHES / "000_e8ee204d4a7b7ba7.txt"


def only(path: Path) -> ingest.Patch:
    (patch,) = ingest.read_file(str(path))
    return patch


def blank_normalised(text: str) -> list[str]:
    # A blank context line may be " " or "" (git and unidiff accept both).
    return ["" if line == " " else line for line in text.split("\n")]


# --- the seed (web-archive copy of RFC 3/4) -----------------------------------------


def test_seed_parses_after_repair():
    patch = only(SEED)
    hunks = [(f.path, h.source_start, h.source_length, h.target_start, h.target_length)
             for f in patch.patch_set() for h in f]
    assert hunks == [
        ("Documentation/virt/kvm/locking.rst", 138, 49, 138, 51),
        ("arch/x86/kvm/mmu/mmu.c", 539, 10, 539, 8),
        ("arch/x86/kvm/mmu/tdp_mmu.c", 520, 10, 520, 6),
        ("arch/x86/kvm/mmu/tdp_mmu.c", 841, 6, 837, 9),
    ]


def test_seed_repairs_are_recorded_per_hunk():
    patch = only(SEED)
    assert repair.INDENTATION_LOST in patch.damage
    assert [r.hunk for r in patch.repairs] == [
        "Documentation/virt/kvm/locking.rst @@ -138,49 +138,51 @@",
        "arch/x86/kvm/mmu/mmu.c @@ -539,10 +539,8 @@",
        "arch/x86/kvm/mmu/tdp_mmu.c @@ -520,10 +520,6 @@",
        "arch/x86/kvm/mmu/tdp_mmu.c @@ -841,6 +837,9 @@",
    ]
    assert {r.kind for r in patch.repairs} == {"stripped-indentation"}
    assert "lines 138, 139, 143" in patch.repairs[1].detail
    assert repair.UNVERIFIABLE_NOTE in patch.notes


def test_seed_table_rows_stay_removed_and_added():
    # The RST table borders start with '-'/'+': the counts say they are changes.
    (locking, *_) = ingest.read_file(str(SEED))[0].patch_set()
    (hunk,) = locking
    assert len([l for l in hunk if l.is_removed]) == 37
    assert len([l for l in hunk if l.is_added]) == 39
    assert "-+------------------------------------------------------------------------+" \
        in str(hunk).split("\n")


def test_undamaged_patches_are_not_repaired():
    for name in ("rfc-1-of-4.patch", "rfc-2-of-4.patch", "rfc-4-of-4.patch"):
        patch = only(PATCHES / name)
        assert patch.repairs == () and patch.damage == () and patch.notes == ()


# --- the variants ------------------------------------------------------------------


def test_lost_context_space_is_restored():
    patch = only(INPUTS / "lost-context-space-2-of-4.patch")
    assert blank_normalised(patch.diff_text) == blank_normalised(only(PATCHES / "rfc-2-of-4.patch").diff_text)
    assert {r.kind for r in patch.repairs} == {"lost-leading-space"}
    assert patch.damage == ("context lines lost their leading space",)


def test_rewrapped_lines_are_joined():
    patch = only(INPUTS / "rewrapped-2-of-4.patch")
    assert patch.diff_text == only(PATCHES / "rfc-2-of-4.patch").diff_text
    assert {r.kind for r in patch.repairs} == {"rewrapped"}
    assert len(patch.repairs) == 10


def test_rst_underline_read_as_context():
    patch = only(INPUTS / "rst-underline-stripped.txt")
    (hunk,) = patch.patch_set()[0]
    assert [(l.line_type, l.value.rstrip("\n")) for l in hunk] == [
        (" ", "Title"), (" ", "-----"), ("+", "A new sentence.")]
    assert "prefix-is-content" in {r.kind for r in patch.repairs}


def test_ambiguous_rst_table_is_refused():
    with pytest.raises(PatchError, match="ambiguous whitespace damage.*fit 3 readings") as caught:
        ingest.read_file(str(INPUTS / "ambiguous-rst-table.txt"))
    assert caught.value.hunk == "Documentation/x.rst @@ -10,3 +10,3 @@"
    assert caught.value.line == 12


def test_lying_count_in_a_clean_mail_is_refused():
    with pytest.raises(PatchError, match="counts do not fit") as caught:
        ingest.read_file(str(INPUTS / "lying-count-1-of-4.patch"))
    assert caught.value.line == 41 and "spte.c @@ -206,12 +206,21 @@" in caught.value.hunk


def test_lying_count_in_a_damaged_copy_is_refused():
    with pytest.raises(PatchError, match="no reading of the 11 damaged lines fits") as caught:
        ingest.read_file(str(INPUTS / "lying-count-3-of-4.txt"))
    assert caught.value.line == 137


def test_crlf_only_converted_when_every_line_has_it():
    assert repair.strip_crlf("a\r\nb\r\n") == ("a\nb\n", repair.Repair(None, "crlf", "2 CRLF line ends converted to LF"))
    assert repair.strip_crlf("a\r\nb\n") == ("a\r\nb\n", None)


def test_body_running_past_the_counts_is_refused():
    text = "--- a/f.c\n+++ b/f.c\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n d\n"
    with pytest.raises(PatchError, match="counts do not fit"):
        repair.read_diff(text.split("\n"), 0, 1)


def test_wrapped_line_after_a_short_line_is_not_joined():
    # Line 5 follows a short line, so it cannot be a wrap: it must be context,
    # and then the counts do not fit.
    text = "--- a/f.c\n+++ b/f.c\n@@ -1,2 +1,2 @@\n a\n-b\nword\n+c\n"
    with pytest.raises(PatchError, match="no reading"):
        repair.read_diff(text.split("\n"), 0, 1)


# --- properties: damage then repair gives the original, or a refusal ----------------


CONTENT = st.one_of(
    st.sampled_from(["", "x", "-x", "+x", "--", "++", "+---+", "| a | b |", "\tfoo();",
                     "\t\tif (a && b)", "}", "{", "int f(void)", "/*", " * c", " */"]),
    st.from_regex(r"[a-z(){};*+\- \t]{0,12}", fullmatch=True),
)
BODY_LINE = st.tuples(st.sampled_from(" -+"), CONTENT)


@st.composite
def hunks(draw):
    lines = draw(st.lists(BODY_LINE, min_size=1, max_size=12))
    old = sum(1 for kind, _ in lines if kind in " -")
    new = sum(1 for kind, _ in lines if kind in " +")
    return old, new, lines


def diff_text(old: int, new: int, lines, final: bool = True) -> str:
    body = "".join(f"{kind}{text}\n" for kind, text in lines)
    trailer = "-- \n2.44.0\n" if final else ""
    return f"--- a/f.c\n+++ b/f.c\n@@ -1,{old} +1,{new} @@ f\n{body}{trailer}"


def read(text: str) -> str:
    return repair.read_diff(text.split("\n"), 0, 1).text


def strip_line(line: str) -> str:
    return " ".join(line.split()) if line.strip() else ""


@settings(max_examples=150, deadline=None)
@given(hunks())
@example((2, 2, [(" ", "+---+"), ("-", "| a |"), ("+", "| b |")]))
def test_stripped_copy_repairs_to_the_original_or_is_refused(hunk):
    old, new, lines = hunk
    clean = diff_text(old, new, lines, final=False)
    expected = [strip_line(l[:1]) + strip_line(l[1:]) if l[:1] in "-+" else strip_line(l)
                for l in clean.split("\n")[3:]]
    damaged = "\n".join(clean.split("\n")[:3] + [strip_line(l) for l in clean.split("\n")[3:]])
    try:
        repaired = read(damaged).split("\n")[3:]
    except PatchError as error:
        assert "ambiguous" in error.message or "counts do not fit" in error.message \
            or "no reading" in error.message
        return
    assert [strip_line(l[:1]) + strip_line(l[1:]) if l[:1] in "-+" else strip_line(l)
            for l in repaired] == expected


@settings(max_examples=150, deadline=None)
@given(hunks())
def test_lost_context_space_repairs_to_the_original_or_is_refused(hunk):
    old, new, lines = hunk
    clean = diff_text(old, new, lines)
    damaged = "\n".join(l[1:] if l.startswith(" ") and i >= 3 else l
                        for i, l in enumerate(clean.split("\n")))
    try:
        repaired = read(damaged)
    except PatchError as error:
        # Refusing is always allowed; a damage no line shows (every context
        # line still starts with a blank or a prefix) is refused by the counts.
        assert "ambiguous" in error.message or "counts do not fit" in error.message
        return
    # A context line whose content starts with a blank looks undamaged after
    # losing one: only its indentation can differ (whitespace is unverifiable).
    assert [prefix_and_words(l) for l in repaired.split("\n")] == \
        [prefix_and_words(l) for l in read(clean).split("\n")]


def prefix_and_words(line: str) -> tuple[str, str]:
    return ((line[:1] or " ").replace("\t", " "), " ".join(line[1:].split()))


@settings(max_examples=150, deadline=None)
@given(hunks(), st.sampled_from([(1, 0), (0, 1), (-1, 0), (0, -1)]))
def test_clean_hunk_with_a_wrong_count_is_always_refused(hunk, change):
    # The twin of the properties above: a clean hunk never gets "repaired".
    old, new, lines = hunk
    if old + change[0] < 0 or new + change[1] < 0 or not any(k == " " for k, _ in lines):
        return
    with pytest.raises(PatchError):
        read(diff_text(old + change[0], new + change[1], lines))


@settings(max_examples=100, deadline=None)
@given(hunks())
def test_clean_hunk_reads_back_unchanged(hunk):
    old, new, lines = hunk
    clean = diff_text(old, new, lines)
    assert read(clean) == clean[:clean.index("-- \n")]


DAMAGED_LINE = st.one_of(
    st.sampled_from(["", "-", "+", "-x", "+x", "x", "*)p;", "\tx", " x", "\\ No newline at end of file",
                     "+" + "w " * 35, "-" + "w " * 35, "y" * 70, "word"]),
    st.from_regex(r"[-+ a-z]{0,6}", fullmatch=True))


@settings(max_examples=150, deadline=None)
@given(st.lists(DAMAGED_LINE, max_size=12), st.booleans(), st.booleans(),
       st.integers(0, 12), st.integers(0, 12))
def test_closed_form_count_agrees_with_the_walk(body, stripped, final, old, new):
    # Two ways of counting readings must agree (the closed form is the one used).
    def end_allowed(k):
        return not final and k == len(body) or final and all(t == "" for t in body[k:])

    options = [repair.line_options(line, body[k - 1] if k else None, True, stripped)
               for k, line in enumerate(body)]
    fast = repair.count_by_choosing(body, options, old, new, end_allowed)
    slow = repair.count_by_walking(body, old, new, True, stripped, end_allowed)
    assert fast == slow


BINARY_THEN_TEXT = (
    "diff --git a/x.bin b/x.bin\nnew file mode 100644\nindex 0000000..1111111\n"
    "GIT binary patch\nliteral 5\nMc${NkU|?VZ00B||0RR91\n\nliteral 0\nHcmV?d00001\n\n"
    "diff --git a/f.c b/f.c\nindex 1111111..2222222 100644\n--- a/f.c\n+++ b/f.c\n"
    "@@ -1 +1 @@\n-a\n+b\n")


def test_binary_patch_data_does_not_end_the_diff():
    text = repair.read_diff(BINARY_THEN_TEXT.split("\n"), 0, 1).text
    assert text.endswith("@@ -1 +1 @@\n-a\n+b\n")


def test_stray_text_between_file_headers_is_refused():
    # The twin: text that is not binary data inside a file header must not
    # silently drop the files after it.
    text = BINARY_THEN_TEXT.replace("diff --git a/f.c b/f.c\n", "diff --git a/f.c b/f.c\nstray words\n")
    with pytest.raises(PatchError, match="unexpected text inside the diff") as caught:
        repair.read_diff(text.split("\n"), 0, 1)
    assert caught.value.line == 12


def test_stray_text_after_a_hunk_is_refused_by_the_counts():
    text = "--- a/g.c\n+++ b/g.c\n@@ -1 +1 @@\n-a\n+b\nstray words\n" + \
        BINARY_THEN_TEXT[BINARY_THEN_TEXT.index("diff --git a/f.c"):]
    with pytest.raises(PatchError, match="no reading"):
        repair.read_diff(text.split("\n"), 0, 1)
