"""The real list patches of tests/data/list read as their README says.

Facts only, never verdicts: every mail reads as one patch with the subject, Message-ID and
touched files its README row gives, and the hunks in files kconform does not read (the files
the row marks ``*``) are the ones scope says lie outside the MMU files.  No kernel tree is
needed.  ``index.json`` holds the same facts for ``bench/list_eval.py``; it must agree with the
README, so the two cannot drift apart.
"""

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.ingest.patches import read_file
from harness.ingest.scope import is_read_file, scope_patch

LIST = Path(__file__).resolve().parent / "data" / "list"
ROW = re.compile(r"^\| `(\d{3}-[\w.-]+\.eml)` \| `([^`]+)` \| (\d{4}-\d\d-\d\d) \| (.+?) \| "
                 r"([\w-]+) \| (.+?) \| (.+?) \| (v[\d.]+) \|$")
FILE_CELL = re.compile(r"`([^`]+)`(\*?)")


@dataclass(frozen=True)
class Row:
    """One row of the README's table of mails."""

    file: str
    message_id: str
    day: str
    subject: str
    files: tuple[str, ...]
    not_read: tuple[str, ...]
    pairs: str
    rev: str


def readme_rows() -> list[Row]:
    rows = []
    for line in (LIST / "README.md").read_text().splitlines():
        match = ROW.match(line)
        if match is None:
            continue
        file, message_id, day, subject, _archive, files, pairs, rev = match.groups()
        cells = FILE_CELL.findall(files)
        rows.append(Row(file, message_id, day, subject.replace("\\|", "|"),
                        tuple(name for name, _ in cells),
                        tuple(name for name, star in cells if star), pairs, rev))
    return rows


ROWS = readme_rows()
INDEX = json.loads((LIST / "index.json").read_text())


def scoped_files(path: Path) -> tuple[str, ...]:
    """The files of a mail's hunks, in diff order, each once."""
    [patch] = read_file(str(path))
    return tuple(dict.fromkeys(hunk.file for hunk in scope_patch(patch)))


def test_the_readme_lists_every_mail_once():
    on_disk = sorted(p.name for p in LIST.glob("*.eml"))
    assert sorted(row.file for row in ROWS) == on_disk
    assert len(on_disk) >= 30


def test_index_json_holds_the_readme_facts():
    index = json.loads((LIST / "index.json").read_text())
    by_file = {mail["file"]: mail for mail in index["mails"]}
    assert set(by_file) == {row.file for row in ROWS}
    for row in ROWS:
        mail = by_file[row.file]
        assert (mail["message_id"], mail["date"][:10], mail["subject"], tuple(mail["files"]),
                tuple(mail["files_not_read"]), mail["rev"]) == (
                    row.message_id, row.day, row.subject, row.files, row.not_read, row.rev)


def test_every_fixes_pair_names_a_buggy_and_a_fix_mail_here():
    index = json.loads((LIST / "index.json").read_text())
    subjects = {mail["file"]: mail["subject"] for mail in index["mails"]}
    trailers = {mail["file"]: {fix["sha"]: fix["subject"] for fix in mail["fixes"]}
                for mail in index["mails"]}
    assert len(index["pairs"]) >= 8
    for pair in index["pairs"]:
        # The fix carries the trailer, and the trailer's subject is the buggy mail's subject.
        assert trailers[pair["fix"]][pair["fixes_sha"]] == pair["fixes_subject"]
        assert subjects[pair["buggy"]].endswith("] " + pair["fixes_subject"])
        assert pair["buggy"] < pair["fix"]          # numbered by date: the bug came first
        row_pairs = {row.file: row.pairs for row in ROWS}
        assert f"{pair['pair']} buggy" in row_pairs[pair["buggy"]]
        assert f"{pair['pair']} fix" in row_pairs[pair["fix"]]


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.file[:3])
def test_mail_reads_as_its_readme_row(row):
    [patch] = read_file(str(LIST / row.file))
    assert not patch.is_cover
    assert patch.raw_subject == row.subject
    assert patch.message_id.strip("<>") == row.message_id
    assert scoped_files(LIST / row.file) == row.files


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.file[:3])
def test_hunks_outside_the_mmu_files_are_identified(row):
    [patch] = read_file(str(LIST / row.file))
    hunks = scope_patch(patch)
    outside = tuple(dict.fromkeys(h.file for h in hunks if not is_read_file(h.file)))
    assert outside == row.not_read
    assert all(is_read_file(h.file) for h in hunks if h.file not in row.not_read)


def test_a_mail_moved_out_of_the_mmu_files_is_seen_outside(tmp_path):
    """The mutant way round: the same mail with its MMU file renamed to x86.c reads as outside."""
    row = next(r for r in ROWS if r.files == ("arch/x86/kvm/mmu/tdp_mmu.c",))
    moved = tmp_path / row.file
    moved.write_bytes((LIST / row.file).read_bytes().replace(
        b"arch/x86/kvm/mmu/tdp_mmu.c", b"arch/x86/kvm/x86.c"))
    [patch] = read_file(str(moved))
    hunks = scope_patch(patch)
    assert hunks and all(h.file == "arch/x86/kvm/x86.c" for h in hunks)
    assert not any(is_read_file(h.file) for h in hunks)


def test_a_changed_message_id_or_subject_is_read_as_changed(tmp_path):
    """The reading follows the mail, so a row that disagreed with its mail would fail."""
    row = ROWS[0]
    copy = tmp_path / row.file
    shutil.copyfile(LIST / row.file, copy)
    data = copy.read_bytes()
    data = data.replace(row.message_id.encode(), b"someone-else@example.org", 1)
    data = data.replace(b"Subject: [PATCH", b"Subject: [RFC PATCH", 1)
    copy.write_bytes(data)
    [patch] = read_file(str(copy))
    assert patch.message_id.strip("<>") == "someone-else@example.org"
    assert patch.raw_subject != row.subject and patch.raw_subject.startswith("[RFC PATCH")


@pytest.mark.parametrize("mail", INDEX.get("earlier", []), ids=lambda m: m["file"][:5])
def test_an_earlier_part_reads_as_index_json_says(mail):
    [patch] = read_file(str(LIST / "earlier" / mail["file"]))
    assert (patch.raw_subject, patch.message_id.strip("<>")) == (mail["subject"],
                                                                  mail["message_id"])
    assert scoped_files(LIST / "earlier" / mail["file"]) == tuple(mail["files"])
    assert mail["file"] in (LIST / "README.md").read_text()
    assert all(name in {m["file"] for m in INDEX["mails"]} for name in mail["earlier_part_of"])


# -- with the kernel tree: the pre-image routes the last recorded run took ------------------------

TREE = os.environ.get("KCONFORM_LIST_TREE", "/tmp/ktree")
needs_tree = pytest.mark.skipif(not (Path(TREE) / ".git").exists(),
                                reason=f"no kernel tree at {TREE} (set KCONFORM_LIST_TREE)")


def routes_at_rev(mail: dict, path: Path | None = None) -> dict:
    """file -> [route, fuzz] for the mail at its rev, after the patches it was written on,
    as ``bench/list_eval.py`` runs it (route None: no pre-image)."""
    from bench.list_eval import mail_path, prerequisites
    from harness.pipeline import first_applied, open_kernel_tree
    from harness.resolve.preimage import Memory, PreImage, find_preimages

    tree = open_kernel_tree(TREE, mail["rev"])
    collected = INDEX["mails"] + [m | {"earlier": True} for m in INDEX.get("earlier", [])]
    first = tuple(str(mail_path(m)) for m in prerequisites(mail, collected))
    base, _ = first_applied(first, tree, mail["rev"])
    [patch] = read_file(str(path or LIST / mail["file"]))
    hunks = scope_patch(patch)
    read = sorted({h.file for h in hunks if is_read_file(h.file)})
    if not read:
        return {}
    found = find_preimages(hunks, read, tree, mail["rev"], base.memory or Memory())
    return {f: [p.route, p.fuzz] if isinstance(p, PreImage) else [None, None]
            for f, p in found.items()}


@needs_tree
@pytest.mark.parametrize("mail", [m for m in INDEX["mails"] if "expected" in m
                                  and m["expected"]["verdict"] not in ("NO RESULT", "TIMEOUT")],
                         ids=lambda m: m["file"][:3])
def test_each_mail_takes_the_routes_the_recorded_run_took(mail):
    """The routes are pinned where the recorded run reported them (a run that ended without
    a result, as 013's internal error, reported none)."""
    assert routes_at_rev(mail) == mail["expected"]["routes"]


@needs_tree
def test_a_mail_whose_removed_line_is_changed_no_longer_takes_its_route(tmp_path):
    """The mutant way round: the first mail found exactly at its tag, one removed line
    altered, finds no pre-image of that file."""
    mail = next(m for m in INDEX["mails"] if "expected" in m
                and list(m["expected"]["routes"].values()) == [["rev", 0]])
    text = (LIST / mail["file"]).read_text()
    removed = next(line for line in text.split("\n")
                   if line.startswith("-") and not line.startswith("---") and len(line) > 8)
    damaged = text.replace(removed + "\n", removed + " /* not in any tree */\n", 1)
    (tmp_path / mail["file"]).write_text(damaged)
    [file] = mail["expected"]["routes"]
    assert routes_at_rev(mail, tmp_path / mail["file"]) == {file: [None, None]}
