"""Ingest: every input form, series grouping, and the bad inputs it must refuse."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.ingest import patches as ingest
from harness.ingest import series
from harness.errors import PatchError
from harness.ingest.patches import SeriesPosition, parse_subject

ROOT = Path(__file__).resolve().parent.parent
PATCHES = ROOT / "patches"
INPUTS = ROOT / "tests" / "data" / "inputs"
SEED = "000_e8ee204d4a7b7ba7.txt"
BASE = "964d0c614c7f71917305a5afdca9178fe8231434"


def only(path: Path) -> ingest.Patch:
    patches = ingest.read_file(str(path))
    assert len(patches) == 1
    return patches[0]


def original(name: str) -> ingest.Patch:
    return only(PATCHES / name)


def edit_first_line(path: Path, start: bytes, edit) -> bytes:
    """The file's bytes with ``edit`` applied to the first line after ``start``.

    Keeps kernel text out of the tests: the line changed is found, not quoted.
    """
    data = path.read_bytes()
    begin = data.index(start) + 1
    end = data.index(b"\n", begin)
    return data[:begin] + edit(data[begin:end]) + data[end:]


# --- the bundled series -------------------------------------------------------


def test_bundled_directory_comes_out_in_series_order():
    patches = ingest.read_paths([str(PATCHES)])
    assert [p.series.index for p in patches] == [0, 1, 2, 3, 4]
    assert [p.is_cover for p in patches] == [True, False, False, False, False]
    assert os.path.basename(patches[3].path) == SEED
    assert all(p.series.prefix == "RFC PATCH" and p.series.total == 4 for p in patches)


def test_cover_base_commit_is_copied_with_a_note():
    patches = ingest.read_paths([str(PATCHES)])
    assert {p.base_commit for p in patches} == {BASE}
    assert all(any("base-commit taken from the cover" in n for n in p.notes)
               for p in patches[1:])
    assert not any("base-commit" in n for n in patches[0].notes)


def test_without_the_cover_there_is_no_base_commit():
    patches = ingest.read_paths([str(PATCHES / "rfc-1-of-4.patch")])
    assert patches[0].base_commit is None


def test_mail_headers_are_read():
    patch = original("rfc-1-of-4.patch")
    assert patch.subject == ('KVM: x86/mmu: Skip the "try unsync" path iff the old SPTE '
                             'was a leaf SPTE')
    assert patch.raw_subject.startswith("[RFC PATCH 1/4] ")
    assert patch.message_id == "<20240320005024.3216282-2-seanjc@google.com>"
    assert patch.in_reply_to == "<20240320005024.3216282-1-seanjc@google.com>"
    assert patch.author == "Sean Christopherson <seanjc@google.com>"
    assert patch.date == "Tue, 19 Mar 2024 17:50:21 -0700"
    assert patch.series == SeriesPosition("RFC PATCH", None, 1, 4)
    assert patch.body.startswith("Apply make_spte()'s optimization")
    assert patch.body.rstrip().endswith("Signed-off-by: Sean Christopherson <seanjc@google.com>")
    assert patch.diff_text.startswith("diff --git a/arch/x86/kvm/mmu/spte.c")
    assert not patch.repaired and patch.damage == () and patch.label == "rfc-1-of-4.patch"


def test_web_archive_copy_is_read():
    patch = original(SEED)
    assert patch.series == SeriesPosition("RFC PATCH", None, 3, 4)
    assert patch.author == "Sean Christopherson"
    assert patch.date == "Tue Mar 19 2024 - 20:51:38 EST"
    assert patch.message_id is None
    assert patch.body.startswith("Mark folios as accessed only when zapping leaf SPTEs")
    assert patch.repaired
    assert any("cannot be verified" in note for note in patch.notes)


def test_values_are_frozen_printable_and_serialisable():
    patch = original("rfc-2-of-4.patch")
    with pytest.raises(dataclasses.FrozenInstanceError):
        patch.subject = "x"
    assert "\n" not in repr(patch) and len(repr(patch)) < 160
    data = dataclasses.asdict(patch)
    assert data["series"] == {"prefix": "RFC PATCH", "version": None, "index": 2, "total": 4}
    assert len(patch.patch_set()) == 4


# --- every input form ----------------------------------------------------------


def test_quoted_printable_mail_decodes_to_the_original():
    assert only(INPUTS / "quoted-printable-1-of-4.eml").diff_text == \
        original("rfc-1-of-4.patch").diff_text


def test_base64_mail_decodes_to_the_original():
    patch = only(INPUTS / "base64-4-of-4.eml")
    assert patch.diff_text == original("rfc-4-of-4.patch").diff_text
    assert patch.body == original("rfc-4-of-4.patch").body


def test_patch_attached_to_a_multipart_mail_is_read():
    patch = only(INPUTS / "attached-4-of-4.eml")
    assert patch.diff_text == original("rfc-4-of-4.patch").diff_text
    assert patch.series.index == 4 and patch.body.startswith("Don't force a TLB")


def test_crlf_mail_is_converted_and_the_repair_recorded():
    patch = only(INPUTS / "crlf-1-of-4.patch")
    assert patch.diff_text == original("rfc-1-of-4.patch").diff_text
    assert [r.kind for r in patch.repairs] == ["crlf"] and patch.repairs[0].hunk is None
    assert "CRLF line endings" in patch.damage


def test_latin1_mail_is_decoded_by_its_declared_charset():
    patch = only(INPUTS / "latin1-1-of-4.eml")
    assert "Reported-by: Ren\u00e9 Fran\u00e7ois" in patch.body
    assert patch.diff_text == original("rfc-1-of-4.patch").diff_text


def test_latin1_mail_misread_as_utf8_is_the_twin(tmp_path):
    # Same bytes declared UTF-8: the accented bytes no longer decode.
    data = (INPUTS / "latin1-1-of-4.eml").read_bytes().replace(b'"ISO-8859-1"', b'"UTF-8"')
    (tmp_path / "x.eml").write_bytes(data)
    patch = only(tmp_path / "x.eml")
    assert "Ren\u00e9" not in patch.body
    assert any("replaced in the commit message" in d for d in patch.damage)


def test_undecodable_bytes_in_the_diff_are_refused(tmp_path):
    data = edit_first_line(PATCHES / "rfc-1-of-4.patch", b"\n+\t", lambda line: line + b"\xff")
    (tmp_path / "x.patch").write_bytes(data)
    with pytest.raises(PatchError, match="cannot decode lie in the diff") as caught:
        ingest.read_file(str(tmp_path / "x.patch"))
    assert caught.value.mail == "<20240320005024.3216282-2-seanjc@google.com>"


def test_unknown_charset_is_refused(tmp_path):
    data = (PATCHES / "rfc-1-of-4.patch").read_bytes().replace(b'"UTF-8"', b'"x-klingon"')
    (tmp_path / "x.patch").write_bytes(data)
    with pytest.raises(PatchError, match="unknown charset"):
        ingest.read_file(str(tmp_path / "x.patch"))


def test_bare_diff_has_no_series():
    patch = only(INPUTS / "bare-4-of-4.diff")
    assert patch.series is None and patch.message_id is None and patch.body == ""
    assert patch.diff_text == original("rfc-4-of-4.patch").diff_text
    assert patch.subject == "bare-4-of-4.diff"


def test_non_utf8_bare_diff_is_refused(tmp_path):
    data = (INPUTS / "bare-4-of-4.diff").read_bytes().replace(b"Remote TLBs", b"Remote \xe9TLBs")
    (tmp_path / "x.diff").write_bytes(data)
    with pytest.raises(PatchError, match="not UTF-8"):
        ingest.read_file(str(tmp_path / "x.diff"))


def test_shuffled_mbox_is_ordered_with_its_cover():
    patches = ingest.read_paths([str(INPUTS / "series-shuffled.mbox")])
    assert [p.series.index for p in patches] == [0, 1, 2, 3, 4]
    assert [p.mail_index for p in patches] == [3, 5, 2, 4, 1]
    assert patches[0].is_cover and patches[0].diff_text == ""
    assert patches[2].label == "series-shuffled.mbox#2 <20240320005024.3216282-3-seanjc@google.com>"
    assert {p.base_commit for p in patches} == {BASE}
    assert patches[2].diff_text == original("rfc-2-of-4.patch").diff_text


def test_mbox_keeps_input_line_numbers():
    patches = ingest.read_file(str(INPUTS / "series-shuffled.mbox"))
    lines = (INPUTS / "series-shuffled.mbox").read_text().split("\n")
    for patch in patches:
        for text, number in zip(patch.diff_text.split("\n"), patch.input_lines):
            if text.startswith(("diff --git", "@@ ")):
                assert lines[number - 1] == text


def test_read_file_keeps_file_order():
    patches = ingest.read_file(str(INPUTS / "series-shuffled.mbox"))
    assert [p.series.index for p in patches] == [4, 2, 0, 3, 1]


# --- series grouping -------------------------------------------------------------


def copy(tmp_path: Path, *names: str) -> Path:
    for name in names:
        shutil.copy(PATCHES / name, tmp_path / name)
    return tmp_path


def test_identical_duplicate_is_dropped_with_a_note(tmp_path):
    copy(tmp_path, "rfc-1-of-4.patch")
    shutil.copy(PATCHES / "rfc-1-of-4.patch", tmp_path / "resend-1-of-4.patch")
    patches = ingest.read_paths([str(tmp_path)])
    assert len(patches) == 1
    assert any("identical copies dropped: rfc-1-of-4.patch" in n for n in patches[0].notes)


def test_a_different_patch_with_the_same_index_is_a_series_of_its_own(tmp_path):
    """Two different 1/4 in one thread: both are checked, as two series, and noted;
    never one error for the whole input.  The twin above: an identical copy is dropped."""
    copy(tmp_path, "rfc-1-of-4.patch")
    data = edit_first_line(PATCHES / "rfc-1-of-4.patch", b"\n+\t", lambda line: line + b" x")
    (tmp_path / "other-1-of-4.patch").write_bytes(data)
    patches = ingest.read_paths([str(tmp_path)])
    assert [p.label for p in patches] == ["other-1-of-4.patch", "rfc-1-of-4.patch"]
    assert len({p.series_group for p in patches}) == 2
    assert any("another patch numbered 1/4 in the same thread (other-1-of-4.patch) differs"
               in n for n in patches[1].notes)


def test_missing_parts_are_noted(tmp_path):
    patches = ingest.read_paths([str(copy(tmp_path, "rfc-1-of-4.patch", "rfc-4-of-4.patch"))])
    assert [p.series.index for p in patches] == [1, 4]
    assert all(any("series incomplete: 2/4, 3/4 absent" in n for n in p.notes) for p in patches)


def test_complete_series_has_no_missing_note():
    patches = ingest.read_paths([str(PATCHES)])
    assert not any("incomplete" in n for p in patches for n in p.notes)


def as_version(text: str, version: int, tag: str) -> str:
    return (text.replace("[RFC PATCH ", f"[RFC PATCH v{version} ")
            .replace("-seanjc@google.com>", f"-{tag}@example.org>"))


def test_two_interleaved_versions_are_kept_apart(tmp_path):
    one, two = (PATCHES / "rfc-1-of-4.patch").read_text(), (PATCHES / "rfc-2-of-4.patch").read_text()
    two_v2 = as_version(two, 2, "v2").replace("disbling dirty logging", "disabling dirty logging")
    mails = [as_version(one, 2, "v2"), one, two_v2, two]
    (tmp_path / "both.mbox").write_text("\n".join(m.rstrip("\n") + "\n" for m in mails))
    patches = ingest.read_paths([str(tmp_path / "both.mbox")])
    assert [(p.series.version, p.series.index) for p in patches] == [(2, 1), (2, 2), (None, 1), (None, 2)]


def test_interleaved_copies_without_versions_are_two_series(tmp_path):
    one, two = (PATCHES / "rfc-1-of-4.patch").read_text(), (PATCHES / "rfc-2-of-4.patch").read_text()
    changed = edit_first_line(PATCHES / "rfc-2-of-4.patch", b"\n-\t",
                              lambda line: line + b" x").decode("utf-8")
    (tmp_path / "both.mbox").write_text("\n".join(m.rstrip("\n") + "\n" for m in (one, two, changed)))
    patches = ingest.read_paths([str(tmp_path / "both.mbox")])
    assert [(p.series_group, p.series.index) for p in patches] == [(0, 1), (0, 2), (1, 2)]
    assert any("another patch numbered 2/4 in the same thread" in n for n in patches[2].notes)


# --- subjects --------------------------------------------------------------------


@pytest.mark.parametrize("raw, subject, series", [
    ("[RFC PATCH v2 3/4] KVM: x86/mmu: Foo", "KVM: x86/mmu: Foo", SeriesPosition("RFC PATCH", 2, 3, 4)),
    ("[PATCH 0/12]   Cover\n   letter", "Cover letter", SeriesPosition("PATCH", None, 0, 12)),
    ("[PATCH] x", "x", SeriesPosition("PATCH", None, 1, 1)),
    ("[PATCH v3] x", "x", SeriesPosition("PATCH", 3, 1, 1)),
    ("[PATCH] [v2 1/2] x", "x", SeriesPosition("PATCH", 2, 1, 2)),
    ("no prefix", "no prefix", None),
])
def test_subject_prefix_is_parsed(raw, subject, series):
    assert parse_subject(raw) == (subject, series)


words = st.lists(st.from_regex(r"[A-Za-z:/\-]{1,8}", fullmatch=True), min_size=1, max_size=6)


@given(words, st.sampled_from(["PATCH", "RFC PATCH", "PATCH net-next"]),
       st.none() | st.integers(1, 9), st.integers(1, 30), st.integers(0, 30),
       st.sampled_from([" ", "  ", "\n "]))
@example(["x"], "PATCH", 2, 4, 3, " ")
def test_resend_has_the_same_subject(text, prefix, version, total, index, gap):
    version_tag = f" v{version}" if version else ""
    first = parse_subject(f"[{prefix} {index}/{total}] " + " ".join(text))
    again = parse_subject(f"[{prefix}{version_tag} {index}/{total}]{gap}" + gap.join(text))
    assert first[0] == again[0] == " ".join(text)
    assert again[1] == SeriesPosition(prefix, version, index, total)


@given(words, words)
def test_different_subjects_stay_different(one, other):
    if " ".join(one) != " ".join(other):
        assert parse_subject("[PATCH 1/2] " + " ".join(one))[0] != \
            parse_subject("[PATCH 1/2] " + " ".join(other))[0]


# --- refusals and sniffing ---------------------------------------------------------


def test_missing_path_is_refused():
    with pytest.raises(PatchError, match="no such file"):
        ingest.read_paths(["/nonexistent/x.patch"])


def test_non_patch_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("just some notes\n")
    assert not ingest.sniff(str(tmp_path / "notes.txt"))
    with pytest.raises(PatchError, match="not a patch"):
        ingest.read_file(str(tmp_path / "notes.txt"))


def test_directory_skips_files_that_are_not_patches(tmp_path):
    copy(tmp_path, "rfc-4-of-4.patch")
    (tmp_path / "notes.txt").write_text("just some notes\n")
    (tmp_path / "script.py").write_text("print(1)\n")
    assert [p.label for p in ingest.read_paths([str(tmp_path)])] == ["rfc-4-of-4.patch"]


BUNDLED = sorted(str(p.relative_to(PATCHES)) for p in PATCHES.rglob("*")
                 if p.is_file() and p.name != "README.md")


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_files_sniff_as_patches(name):
    assert ingest.sniff(str(PATCHES / name))


def test_mail_without_a_diff_is_refused(tmp_path):
    text = (PATCHES / "rfc-1-of-4.patch").read_text()
    (tmp_path / "x.patch").write_text(text[:text.index("diff --git")])
    with pytest.raises(PatchError, match="no diff found") as caught:
        ingest.read_file(str(tmp_path / "x.patch"))
    assert caught.value.mail == "<20240320005024.3216282-2-seanjc@google.com>"


def test_cover_letter_without_a_diff_is_accepted():
    patch = original("rfc-0-of-4.patch")
    assert patch.is_cover and patch.diff_text == "" and patch.base_commit == BASE
    assert patch.body.startswith("Rework KVM to mark folios dirty")


# --- robustness: bad input raises PatchError and nothing else --------------------------

SOURCES = [PATCHES / name for name in BUNDLED] + [
    INPUTS / "quoted-printable-1-of-4.eml", INPUTS / "base64-4-of-4.eml",
    INPUTS / "rewrapped-2-of-4.patch", INPUTS / "attached-4-of-4.eml"]


@st.composite
def mutated_inputs(draw):
    data = draw(st.sampled_from(SOURCES)).read_bytes()
    lines = data.split(b"\n")
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "strip", "garble", "truncate", "swap"]))
        if action == "delete":
            del lines[where]
        elif action == "duplicate":
            lines.insert(where, lines[where])
        elif action == "strip":
            lines[where] = lines[where].lstrip()
        elif action == "garble":
            lines[where] = draw(st.binary(max_size=12)) + lines[where][3:]
        elif action == "truncate":
            lines = lines[:where + 1]
        elif action == "swap" and where + 1 < len(lines):
            lines[where], lines[where + 1] = lines[where + 1], lines[where]
        if not lines:
            lines = [b""]
    return b"\n".join(lines)


@settings(max_examples=150, deadline=None)
@given(mutated_inputs())
def test_mutated_input_is_read_or_refused_with_patch_error(tmp_path_factory, data):
    from harness.ingest import scope
    path = tmp_path_factory.mktemp("fuzz") / "x.patch"
    path.write_bytes(data)
    try:
        for patch in ingest.read_paths([str(path)]):
            scope.scope_patch(patch)
            patch.patch_set()
    except PatchError as error:
        assert error.message and error.file == str(path)


def small_series(cover_id: str, word: str) -> list[str]:
    cover = (f"From x@y Thu Jan  1 00:00:00 1970\nMessage-ID: <{cover_id}>\n"
             f"Subject: [PATCH 0/1] {word} cover\nFrom: A <a@example.org>\n\nCover.\n")
    patch = (f"From x@y Thu Jan  1 00:00:00 1970\nMessage-ID: <{cover_id}.1>\n"
             f"In-Reply-To: <{cover_id}>\nSubject: [PATCH 1/1] {word}\nFrom: A <a@example.org>\n\n"
             f"Change {word}.\n---\n--- a/f.c\n+++ b/f.c\n@@ -1 +1 @@\n-a\n+{word}\n")
    return [cover, patch]


def test_same_sized_series_are_told_apart_by_in_reply_to(tmp_path):
    one, two = small_series("one@x", "alpha"), small_series("two@x", "beta")
    (tmp_path / "x.mbox").write_text("\n".join([two[1], one[0], one[1], two[0]]))
    patches = ingest.read_paths([str(tmp_path / "x.mbox")])
    assert [(p.subject, p.series.index) for p in patches] == [
        ("beta cover", 0), ("beta", 1), ("alpha cover", 0), ("alpha", 1)]


def test_same_sized_series_without_in_reply_to_are_kept_apart_with_a_note(tmp_path):
    one, two = small_series("one@x", "alpha"), small_series("two@x", "beta")
    mails = [m.replace("In-Reply-To", "X-Old-Reply") for m in (one[0], two[0], one[1], two[1])]
    (tmp_path / "x.mbox").write_text("\n".join(mails))
    patches = ingest.read_paths([str(tmp_path / "x.mbox")])
    assert sorted(p.subject for p in patches) == ["alpha", "alpha cover", "beta", "beta cover"]
    assert all(any("could belong to 2 series" in n for n in p.notes)
               for p in patches if not p.is_cover)


def test_review_replies_in_a_thread_mbox_are_skipped_with_a_note(tmp_path):
    series = small_series("one@x", "alpha")
    reply = ("From x@y Thu Jan  1 00:00:00 1970\nMessage-ID: <reply@x>\nIn-Reply-To: <one@x.1>\n"
             "Subject: Re: [PATCH 1/1] alpha\nFrom: B <b@example.org>\n\n"
             "> -a\n> +alpha\nLooks good, but try this:\n--- a/f.c\n+++ b/f.c\n@@ -1 +1 @@\n-a\n+b\n")
    (tmp_path / "x.mbox").write_text("\n".join([series[0], series[1], reply]))
    patches = ingest.read_paths([str(tmp_path / "x.mbox")])
    assert [p.subject for p in patches] == ["alpha cover", "alpha"]
    assert all("1 reply mails skipped: <reply@x>" in p.notes for p in patches)


def test_reply_on_its_own_is_refused(tmp_path):
    reply = ("Message-ID: <reply@x>\nSubject: Re: [PATCH 1/1] alpha\nFrom: B <b@example.org>\n\n"
             "> -a\n> +alpha\nLooks good.\n")
    (tmp_path / "x.eml").write_text(reply)
    with pytest.raises(PatchError, match="no diff found"):
        ingest.read_file(str(tmp_path / "x.eml"))


def test_cover_letter_with_an_interdiff_is_kept_as_a_cover(tmp_path):
    cover = small_series("one@x", "alpha")[0] + (
        "\nInterdiff against v1:\ndiff --git a/f.c b/f.c\n--- a/f.c\n+++ b/f.c\n@@ -1 +1 @@\n-a\n+b\n")
    (tmp_path / "x.eml").write_text(cover.split("\n", 1)[1])
    (patch,) = ingest.read_file(str(tmp_path / "x.eml"))
    assert patch.is_cover and patch.diff_text == "" and "Interdiff against v1:" in patch.body
    assert any("interdiff" in note for note in patch.notes)


def test_base_commit_of_a_coverless_series_comes_from_the_patch_that_has_it(tmp_path):
    one = (PATCHES / "rfc-1-of-4.patch").read_text().replace(
        "\n-- \n", f"\n\nbase-commit: {BASE}\n-- \n")
    (tmp_path / "a-1-of-4.patch").write_text(one)
    copy(tmp_path, "rfc-2-of-4.patch")
    patches = ingest.read_paths([str(tmp_path)])
    assert [p.base_commit for p in patches] == [BASE, BASE]
    assert any("base-commit taken from patch a-1-of-4.patch" in n for n in patches[1].notes)


def test_bare_diffs_do_not_take_a_base_commit(tmp_path):
    one = (PATCHES / "rfc-1-of-4.patch").read_text().replace(
        "\n-- \n", f"\n\nbase-commit: {BASE}\n-- \n")
    (tmp_path / "a-1-of-4.patch").write_text(one)
    shutil.copy(INPUTS / "bare-4-of-4.diff", tmp_path / "b.diff")
    patches = ingest.read_paths([str(tmp_path)])
    assert [p.base_commit for p in patches] == [BASE, None]


def test_nul_bytes_are_refused(tmp_path):
    data = edit_first_line(PATCHES / "rfc-1-of-4.patch", b"\n+\t", lambda line: line + b"\x00")
    (tmp_path / "x.patch").write_bytes(data)
    with pytest.raises(PatchError, match="NUL bytes") as caught:
        ingest.read_file(str(tmp_path / "x.patch"))
    lines = data.split(b"\n")
    assert b"\x00" in lines[caught.value.line - 1]


def test_absent_parts_of_a_long_series_are_given_as_ranges():
    assert series._ranges([1, 2, 3, 4, 5, 6, 7, 9, 10, 11], 84) == ["1/84-7/84", "9/84-11/84"]
    assert series._ranges([2, 3, 5], 5) == ["2/5, 3/5", "5/5"]


def test_two_different_single_patches_are_two_series(tmp_path):
    """A directory of unrelated '[PATCH] ...' mails (patchwork, CI): not one series with a
    clash at 1/1.  The twin: the same mail twice is still one patch."""
    source = (PATCHES / "rfc-4-of-4.patch").read_text()
    single = source.replace("[RFC PATCH 4/4]", "[PATCH]")
    (tmp_path / "a.patch").write_text(single)
    other = single.replace("Subject: [PATCH] KVM", "Subject: [PATCH] Other: KVM").replace(
        "Message-Id: <", "Message-Id: <other-").replace("Message-ID: <", "Message-ID: <other-")
    (tmp_path / "b.patch").write_text(other)
    patches = ingest.read_paths([str(tmp_path)])
    assert len(patches) == 2 and patches[0].subject != patches[1].subject
    (tmp_path / "b.patch").write_text(single)
    assert len(ingest.read_paths([str(tmp_path)])) == 1
