"""Finding a patch's pre-image in a kernel tree, as ``git am -3`` would.

Trees are built here from C written for these tests (a git tree with a short
history, and a plain directory); patches are made with ``git diff``.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harness.errors import UsageError
from harness.pipeline import RunOptions, check_paths
from harness.resolve.kernel_tree import Mismatch, PlainDirectory, already_applied, apply_file, \
    hash_object, open_tree
from harness.resolve.preimage import Memory, PreImage, PreImageMiss, Request, file_hunks, \
    find_preimage
from harness.resolve.strategies import OUT_OF_SCOPE, resolve
from tests.test_kernel_tree import (DROP_ACCESSED_FLUSH, FILE_TEMPLATE, MMU_C, UPDATE_AFTER_3,
                                    git, hunks_of, make_patch, make_tree)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

X86_C = "arch/x86/kvm/x86.c"
DIRTY_FLUSH = "\tif (is_dirty_spte(old_spte) && !is_dirty_spte(new_spte))\n\t\tflush = true;\n"


def commit_text(tree, text: str, message: str, file: str = MMU_C) -> str:
    (tree / file).parent.mkdir(parents=True, exist_ok=True)
    (tree / file).write_text(text)
    git(tree, "add", ".")
    git(tree, "commit", "-qm", message)
    return git(tree, "rev-parse", "HEAD").strip()


def request_for(patch, rev: str = "HEAD", memory: Memory = Memory(), file: str = MMU_C):
    hunks = hunks_of(patch)
    return Request(file, file_hunks(hunks, file),
                   next(h.source_blob for h in hunks if h.file == file), rev, memory)


def renamed_index(patch, blob: str = "1234567") -> None:
    """The patch as if made on another tree: its index line names a blob nobody has."""
    lines = patch.read_text().split("\n")
    patch.write_text("\n".join(
        f"index {blob}..89abcde 100644" if line.startswith("index ") else line
        for line in lines))


# -- the routes ------------------------------------------------------------------

def test_the_blob_the_index_line_names_comes_first(tmp_path):
    tree = make_tree(tmp_path)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    found = find_preimage(request_for(patch), open_tree(str(tree)))
    assert isinstance(found, PreImage) and found.route == "index"
    assert found.blob == git(tree, "rev-parse", f"HEAD:{MMU_C}").strip()
    assert found.commit is None
    assert "is_accessed_spte(old_spte) && !is_accessed_spte" not in found.post


def test_without_the_blob_the_file_at_rev_is_used_at_an_offset(tmp_path):
    tree = make_tree(tmp_path)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    renamed_index(patch)
    text = (tree / MMU_C).read_text()
    head = commit_text(tree, "// two lines added\n// above everything\n" + text, "shift")
    found = find_preimage(request_for(patch), open_tree(str(tree)))
    assert isinstance(found, PreImage) and found.route == "rev"
    assert found.commit == head
    assert found.detail == "mmu.c at HEAD"
    assert found.post.startswith("// two lines added\n")


def test_when_rev_does_not_take_the_hunks_the_newest_commit_that_does_is_used(tmp_path):
    tree = make_tree(tmp_path)
    first = git(tree, "rev-parse", "HEAD").strip()
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    renamed_index(patch)
    text = (tree / MMU_C).read_text()
    commit_text(tree, text.replace("return value + 1;", "return value + 2;"), "unrelated")
    middle = git(tree, "rev-parse", "HEAD").strip()
    commit_text(tree, text.replace(DIRTY_FLUSH, ""), "dirty flush gone")
    tagged = commit_text(tree, text.replace(DIRTY_FLUSH, "").replace("after_it", "after"), "tip")
    git(tree, "tag", "v9.0")
    found = find_preimage(request_for(patch), open_tree(str(tree)))
    assert isinstance(found, PreImage) and found.route == "history"
    assert found.commit == middle != first          # the newest that takes them
    assert "unrelated" in found.detail
    # at an older --rev the file there takes them directly
    at_first = find_preimage(request_for(patch, rev=first), open_tree(str(tree)))
    assert at_first.route == "rev" and at_first.commit == first
    assert tagged


def test_a_patch_no_version_takes_is_a_miss_naming_the_line(tmp_path):
    patch = make_patch(make_tree(tmp_path), tmp_path, *DROP_ACCESSED_FLUSH)
    renamed_index(patch)
    other = make_tree(tmp_path / "other", UPDATE_AFTER_3.replace("!is_dirty_spte(new_spte)",
                                                                 "!is_young(new_spte)"))
    text = (other / MMU_C).read_text()
    commit_text(other, text.replace("return value + 1;", "return value + 2;"), "tip")
    found = find_preimage(request_for(patch), open_tree(str(other)))
    assert isinstance(found, PreImageMiss)
    assert "does not apply to mmu.c at HEAD" in found.reason
    assert "reads 'if (is_dirty_spte(old_spte) && !is_young(new_spte))'" in found.reason
    assert [route for route, _ in found.tried] == ["series", "index", "rev", "history"]
    assert "none of the 2 versions of mmu.c" in dict(found.tried)["history"]


def test_a_whitespace_damaged_copy_applies_at_rev(tmp_path):
    from tests.test_kernel_tree import _strip_indentation

    tree = make_tree(tmp_path)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    renamed_index(patch)
    patch.write_text("\n".join(_strip_indentation(line)
                               for line in patch.read_text().split("\n")))
    found = find_preimage(request_for(patch), open_tree(str(tree)))
    assert isinstance(found, PreImage) and found.route == "rev"
    assert "\tbool flush = false;" in found.post          # the tree's own context lines


# -- fuzz and the function the header names ----------------------------------------------

def test_an_outer_context_line_that_differs_is_fuzz_and_an_inner_one_is_a_miss(tmp_path):
    """GNU patch's fuzz: up to two context lines at each end may differ, never one next to a
    changed line of a three-line-context hunk, never a removed line."""
    tree = make_tree(tmp_path)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    renamed_index(patch)
    text = (tree / MMU_C).read_text()
    hunks = file_hunks(hunks_of(patch), MMU_C)
    # the hunk's first context line ('if (is_mmu_writable_spte(old_spte) &&' + 2 more) is
    # three lines above the removed ones: change the line two above the removed lines
    outer = text.replace("\t      !is_writable_pte(new_spte))", "\t      !is_writable(new_spte))")
    assert outer != text
    fuzzy = apply_file(outer, hunks)
    assert not isinstance(fuzzy, Mismatch) and fuzzy.fuzz == 1
    assert "is_accessed_spte(old_spte) && !is_accessed_spte" not in fuzzy.text
    assert "!is_writable(new_spte))" in fuzzy.text            # the tree's own line stays
    assert isinstance(apply_file(outer, hunks, max_fuzz=0), Mismatch)
    commit_text(tree, outer, "outer context changed")
    found = find_preimage(request_for(patch), open_tree(str(tree)))
    assert (found.route, found.fuzz) == ("history", 0)     # an exact older version comes first
    only = make_tree(tmp_path / "only", UPDATE_AFTER_3.replace("!is_writable_pte(new_spte))",
                                                               "!is_writable(new_spte))"))
    found = find_preimage(request_for(patch), open_tree(str(only)))
    assert (found.route, found.fuzz, found.as_dict()["applied"]) == ("rev", 1, "fuzz 1")
    # the line right before the removed ones is past the fuzz: a miss naming it
    inner = text.replace("\tif (is_accessed_spte(old_spte) && !is_accessed_spte(new_spte))",
                         "\tif (is_accessed_spte(old_spte) && !is_young(new_spte))")
    missed = apply_file(inner, hunks)
    assert isinstance(missed, Mismatch)
    assert "its removed line 'if (is_accessed_spte(old_spte) && !is_accessed_spte(new_spte))' " \
           "is nowhere in the file" in missed.describe("mmu.c")


def test_a_patch_already_in_the_tree_is_not_applied_again_with_fuzz(tmp_path):
    patch = make_patch(make_tree(tmp_path), tmp_path, *DROP_ACCESSED_FLUSH)
    renamed_index(patch)
    merged = make_tree(tmp_path / "merged", UPDATE_AFTER_3.replace(DROP_ACCESSED_FLUSH[0], ""))
    found = find_preimage(request_for(patch), open_tree(str(merged)))
    assert isinstance(found, PreImageMiss)
    assert "already in mmu.c at HEAD: the patch is in that version" in dict(found.tried)["rev"]
    assert not already_applied((tmp_path / "linux" / MMU_C).read_text(),
                               file_hunks(hunks_of(patch), MMU_C))


TWIN = ("static bool {name}(u64 *sptep, u64 new_spte)\n{{\n\tbool flush = false;\n\n"
        "\tif (is_dirty_spte(old_spte))\n\t\tflush = true;\n\n\treturn flush;\n}}\n")


def test_of_two_places_the_hunk_goes_into_the_function_its_header_names(tmp_path):
    first, second = TWIN.format(name="first_helper"), TWIN.format(name="second_helper")
    tree = tmp_path / "t"
    tree.mkdir()
    git(tree, "init", "-q")
    commit_text(tree, first + "\n" + second, "two helpers")
    (tree / MMU_C).write_text(first + "\n" + second.replace(
        "\tif (is_dirty_spte(old_spte))\n\t\tflush = true;\n\n", ""))
    patch = tmp_path / "second.patch"
    patch.write_text(git(tree, "diff"))
    git(tree, "checkout", "-q", ".")
    # the same patch made on a tree with ten more lines ahead of both: the first helper's
    # copy of the lines is now nearest the header's line number
    (tree / MMU_C).write_text("// x\n" * 10 + first + "\n" + second)
    hunks = file_hunks(hunks_of(patch), MMU_C)
    applied = apply_file((tree / MMU_C).read_text(), hunks)
    assert applied.in_function == (True,)
    assert applied.text.count("is_dirty_spte(old_spte)") == 1
    assert applied.text.index("is_dirty_spte") < applied.text.index("second_helper")
    # renamed in the header, the hunk names no function here: the nearest place wins
    renamed = patch.read_text().replace("@@ static bool second_helper", "@@ static bool other")
    patch.write_text(renamed)
    other = apply_file((tree / MMU_C).read_text(), file_hunks(hunks_of(patch), MMU_C))
    assert other.in_function == (None,)
    assert other.text.index("is_dirty_spte") > other.text.index("second_helper")


# -- a plain directory -------------------------------------------------------------

def test_a_plain_directory_hashes_blobs_as_git_does(tmp_path):
    tree = make_tree(tmp_path)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    plain = tmp_path / "plain"
    shutil.copytree(tree, plain, ignore=shutil.ignore_patterns(".git"))
    directory = open_tree(str(plain))
    assert isinstance(directory, PlainDirectory)
    expected = subprocess.run(["git", "hash-object", str(plain / MMU_C)], capture_output=True,
                              text=True, check=True).stdout.strip()
    assert hash_object((plain / MMU_C).read_text()) == expected
    found = find_preimage(request_for(patch), directory)
    assert found.route == "index" and found.blob == expected
    renamed_index(patch)
    found = find_preimage(request_for(patch), directory)
    assert found.route == "rev" and found.commit is None
    (plain / MMU_C).write_text((plain / MMU_C).read_text().replace("!is_dirty_spte(new_spte)",
                                                                    "!is_young(new_spte)"))
    missed = find_preimage(request_for(patch), open_tree(str(plain)))
    assert isinstance(missed, PreImageMiss)
    assert dict(missed.tried)["history"] == "the tree has no history (a plain directory)"
    with pytest.raises(UsageError, match="plain directory"):
        directory.text_at("v6.9", MMU_C)


def test_a_plain_directory_refuses_rev_on_the_command_line(tmp_path):
    plain = tmp_path / "plain"
    (plain / "arch/x86/kvm/mmu").mkdir(parents=True)
    (plain / MMU_C).write_text(FILE_TEMPLATE.format(function=UPDATE_AFTER_3))
    patch = tmp_path / "p.patch"
    patch.write_text("")
    with pytest.raises(UsageError, match="a plain directory has only its files"):
        check_paths([str(patch)], RunOptions(kernel_tree=str(plain), rev="v6.9"))
    with pytest.raises(UsageError, match="--rev needs --kernel-tree"):
        check_paths([str(patch)], RunOptions(rev="v6.9"))


# -- a series, in memory -------------------------------------------------------------

def test_a_series_applies_patch_after_patch_in_memory(tmp_path):
    tree = make_tree(tmp_path)
    first = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH, name="1.patch")
    # the second patch is made on top of the first (its pre-image exists in no tree)
    original = (tree / MMU_C).read_text()
    (tree / MMU_C).write_text(original.replace(DROP_ACCESSED_FLUSH[0], ""))
    git(tree, "commit", "-qam", "first applied")
    second = make_patch(tree, tmp_path, DIRTY_FLUSH, "", name="2.patch")
    git(tree, "reset", "-q", "--hard", "HEAD~1")
    post_of_first = hash_object(original.replace(DROP_ACCESSED_FLUSH[0], ""))
    renamed_index(second, "abcdef0")          # as mailed from a tree kconform has not got
    kernel = open_tree(str(tree))
    one = resolve(hunks_of(first), tree=kernel, label="patch 1")
    assert one.preimages[0].route == "index"
    two = resolve(hunks_of(second), tree=kernel, memory=one.memory, label="patch 2")
    assert two.preimages[0].route == "series"
    assert two.preimages[0].detail == "mmu.c as patch 1 left it (in memory)"
    assert two.preimages[0].blob == post_of_first
    assert (two.preimages[0].fuzz, two.preimages[0].how) == (0, "exactly")
    # alone, HEAD still has the accessed flush: the hunk does not fit exactly...
    head = (tree / MMU_C).read_text()
    exact = apply_file(head, file_hunks(hunks_of(second), MMU_C), max_fuzz=0)
    assert isinstance(exact, Mismatch)
    assert "line 27 reads 'if (is_accessed_spte(old_spte)" in exact.describe("mmu.c")
    # ...and only with its outer context line ignored (fuzz 1), as GNU patch would apply it
    alone = resolve(hunks_of(second), tree=kernel)
    assert (alone.preimages[0].route, alone.preimages[0].fuzz) == ("rev", 1)
    assert "hunks applied fuzz 1" in alone.preimages[0].note
    assert (tree / MMU_C).read_text() == original     # the tree was never written


def test_apply_first_puts_the_patch_a_fix_was_written_on_into_the_tree_state(tmp_path):
    """A fix mailed on top of an earlier patch the tree lacks: alone it finds no pre-image
    (the line it removes is nowhere in the tree); with the earlier patch applied first, in
    memory, its pre-image is what that patch left, and the run record says so."""
    tree = make_tree(tmp_path)
    new_line = "\tif (is_accessed_spte(old_spte) && !is_young(new_spte))\n\t\tflush = true;\n\n"
    first = make_patch(tree, tmp_path, DROP_ACCESSED_FLUSH[0], new_line, name="1.patch")
    original = (tree / MMU_C).read_text()
    (tree / MMU_C).write_text(original.replace(DROP_ACCESSED_FLUSH[0], new_line))
    git(tree, "commit", "-qam", "first applied")
    fix = make_patch(tree, tmp_path, new_line, "", name="2.patch")
    git(tree, "reset", "-q", "--hard", "HEAD~1")
    renamed_index(fix, "abcdef0")
    alone, _ = check_paths([str(fix)], RunOptions(kernel_tree=str(tree)))
    (miss,) = alone["patches"][0]["versions"]["preimages"]
    assert miss["route"] is None and "is_young(new_spte)" in miss["reason"]
    assert "is nowhere in the file" in miss["reason"]
    results, run = check_paths([str(fix)], RunOptions(kernel_tree=str(tree),
                                                      apply_first=(str(first),)))
    (found,) = results["patches"][0]["versions"]["preimages"]
    assert found["route"] == "series" and "(applied first)" in found["detail"]
    assert found["blob"] == hash_object(original.replace(DROP_ACCESSED_FLUSH[0], new_line))
    [record] = run["applied_first"]
    assert "(applied first)" in record["patch"] and record["applied"] == [MMU_C]
    assert [p["route"] for p in record["preimages"]] == ["rev"]
    assert (tree / MMU_C).read_text() == original     # the tree was never written
    # given twice, the second finds it already in the state and leaves the file as it is
    again, run = check_paths([str(fix)], RunOptions(kernel_tree=str(tree),
                                                    apply_first=(str(first), str(first))))
    assert again["patches"][0]["versions"]["preimages"][0]["blob"] == found["blob"]
    assert run["applied_first"][1]["preimages"] == [
        {"file": MMU_C, "route": None, "reason": "already in HEAD: left as it is"}]
    with pytest.raises(UsageError, match="--apply-first needs --kernel-tree"):
        check_paths([str(fix)], RunOptions(apply_first=(str(first),)))


# -- which files are read ----------------------------------------------------------------

def test_a_hunk_in_another_kvm_file_is_a_miss_naming_it(tmp_path):
    tree = make_tree(tmp_path)
    commit_text(tree, "static int x86_thing(void)\n{\n\treturn 1;\n}\n", "x86", file=X86_C)
    (tree / X86_C).write_text("static int x86_thing(void)\n{\n\treturn 2;\n}\n")
    text = (tree / MMU_C).read_text()
    (tree / MMU_C).write_text(text.replace(DROP_ACCESSED_FLUSH[0], ""))
    patch = tmp_path / "both.patch"
    patch.write_text(git(tree, "diff"))
    git(tree, "checkout", "-q", ".")
    resolution = resolve(hunks_of(patch), tree=open_tree(str(tree)))
    by_file = {h.file: h for h in resolution.hunks}
    assert not by_file[X86_C].covered
    assert f"{X86_C} is not read" in by_file[X86_C].reason
    assert by_file[MMU_C].covered
    assert [p.file for p in resolution.preimages] == [MMU_C]


def test_a_patch_outside_the_mmu_is_out_of_scope(tmp_path):
    tree = make_tree(tmp_path)
    commit_text(tree, "static int x86_thing(void)\n{\n\treturn 1;\n}\n", "x86", file=X86_C)
    patch = make_patch(tree, tmp_path, "return 1;", "return 2;", file=X86_C)
    resolution = resolve(hunks_of(patch), tree=open_tree(str(tree)))
    assert resolution.reason == OUT_OF_SCOPE
    assert not resolution.complete and resolution.preimages == ()


# -- what the results say ----------------------------------------------------------------

def test_the_results_say_which_route_and_blob_were_used(tmp_path):
    tree = make_tree(tmp_path)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    renamed_index(patch)
    head = git(tree, "rev-parse", "HEAD").strip()
    git(tree, "tag", "v1.0")
    results, run = check_paths([str(patch)], RunOptions(kernel_tree=str(tree), rev="v1.0"))
    entry = results["patches"][0]
    (preimage,) = entry["versions"]["preimages"]
    assert preimage == {"file": MMU_C, "route": "rev", "commit": head,
                        "blob": git(tree, "rev-parse", f"HEAD:{MMU_C}").strip(),
                        "detail": "mmu.c at v1.0", "fuzz": 0, "offsets": [0],
                        "applied": "exactly"}
    assert run["rev"] == "v1.0"


def test_the_terminal_report_names_the_route(tmp_path):
    import html
    import sys

    tree = make_tree(tmp_path)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    renamed_index(patch)
    head = git(tree, "rev-parse", "HEAD").strip()
    done = subprocess.run([sys.executable, "-m", "harness", "check", str(patch), "--kernel-tree",
                           str(tree), "--rev", "HEAD", "--report-dir", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert done.returncode in (0, 1, 3), done.stderr
    line = f"pre-image of {MMU_C} by route 'rev': mmu.c at HEAD (commit {head[:12]}, blob "
    assert line in done.stdout
    page = html.unescape((tmp_path / "r" / "index.html").read_text())
    assert line in page


# -- a label header named from the pre-image -------------------------------------------

LABELLED = """static int other(void)
{
\treturn 0;
}

static bool walk(struct kvm *kvm, int start)
{
\tint i;

retry:
\tfor (i = start; i < 4; i++) {
\t\tif (step(kvm, i))
\t\t\tgoto retry;
\t}
\treturn true;
}

int tail;
"""


def test_a_line_in_a_body_is_named_by_its_definition_and_one_outside_is_not():
    from harness.resolve.preimage import enclosing_function
    assert enclosing_function(LABELLED, 12) == ("walk", 6)
    assert enclosing_function(LABELLED, 3) == ("other", 1)
    # twin: after a function's closing brace nothing encloses the line
    assert enclosing_function(LABELLED, 19) is None


def test_a_hunk_under_a_label_header_gets_its_function_from_the_pre_image():
    import dataclasses
    from types import SimpleNamespace

    from harness.resolve.preimage import UNNAMED_HINT, functions_in_preimages
    hunk = SimpleNamespace(index=0, file="f.c", function=None, source_start=11,
                           reason=f"{UNNAMED_HINT} ('retry:') and no definition precedes it")
    hunk = _Hunk(**vars(hunk))
    image = SimpleNamespace(text=LABELLED, offsets=(0,), detail="f.c at v1")
    named = functions_in_preimages((hunk,), {"f.c": image})[0]
    assert named.function == "walk" and "defined at line 6" in named.reason
    # twin: a part scope placed outside any function for another reason stays unnamed
    outside = dataclasses.replace(hunk, reason="outside any function (top-level declaration)")
    assert functions_in_preimages((outside,), {"f.c": image})[0].function is None
    # twin: at an offset that puts the hunk after the function, it stays unnamed
    moved = SimpleNamespace(text=LABELLED, offsets=(8,), detail="f.c at v1")
    assert functions_in_preimages((hunk,), {"f.c": moved})[0].function is None


@__import__("dataclasses").dataclass(frozen=True)
class _Hunk:
    index: int
    file: str
    function: str | None
    source_start: int
    reason: str


# -- the reverse route: the patch as merged in a later commit, taken out again --------------

from harness.resolve.kernel_tree import reverse_hunk          # noqa: E402
from harness.resolve.preimage import ALL_ROUTES, find_preimages  # noqa: E402
from tests import shared                                       # noqa: E402

FIRST_AT_V1 = """\
static int first(int a)
{
	int x = a;

	x += 1;
	x += 2;
	x += 3;
	if (x > 10)
		return 10;
	return x;
}

static int second(int b)
{
	return b;
}
"""
# upstream, after v1: the lines around the check change, and the check's return value too
FIRST_BETWEEN = (FIRST_AT_V1.replace("x += 1;", "x += 11;").replace("x += 2;", "x += 12;")
                 .replace("x += 3;", "x += 13;").replace("return 10;", "return 100;")
                 .replace("return x;", "return x + 0;"))
# upstream, nearer the patch's base than v1 but still not it: two context lines above the
# check differ (more than the fuzz ignores), so no commit takes the patch and only
# 'reverse' can place it; the check's removed lines are as the patch has them
NEAR_BETWEEN = FIRST_BETWEEN.replace("x += 12;", "x += 120;").replace("x += 13;", "x += 130;")
CHECK_BEFORE = "\tif (x > 10)\n\t\treturn 100;\n"
CHECK_AFTER = "\tif (x > 20)\n\t\treturn 20;\n"


def tagged(tree, text: str, tag: str | None, message: str) -> str:
    head = commit_text(tree, text, message)
    if tag:
        git(tree, "tag", tag)
    return head


def patch_on(tmp_path, text: str, old: str, new: str):
    """The patch ``git diff`` makes of one replacement in ``text`` (written on that text),
    its index line naming a blob no tree here holds (a mail's base is not in the tree)."""
    scratch = shared.make_tree(tmp_path / "scratch", {MMU_C: text})
    patch = make_patch(scratch, tmp_path, old, new)
    renamed_index(patch)
    return patch


def reverse_tree(tmp_path, between_committed: bool, merged: str, between: str = NEAR_BETWEEN):
    """v1, then (optionally) the upstream change ``between``, then ``merged`` tagged v2."""
    tree = shared.make_tree(tmp_path / "linux", {MMU_C: FIRST_AT_V1})
    git(tree, "tag", "v1")
    if between_committed:
        tagged(tree, between, None, "upstream change")
    merged_at = tagged(tree, merged, "v2", "merged")
    return tree, merged_at


def reverse_preimages(tree, patch, rev: str = "v1", routes=ALL_ROUTES):
    hunks = hunks_of(patch)
    return find_preimages(hunks, [MMU_C], open_tree(str(tree)), rev, Memory(), routes)[MMU_C]


def test_reverse_hunk_undoes_what_the_hunk_does(tmp_path):
    patch = patch_on(tmp_path, FIRST_BETWEEN, CHECK_BEFORE, CHECK_AFTER)
    hunks = file_hunks(hunks_of(patch), MMU_C)
    after = apply_file(FIRST_BETWEEN, hunks)
    assert after.text == FIRST_BETWEEN.replace(CHECK_BEFORE, CHECK_AFTER)
    back = apply_file(after.text, tuple(reverse_hunk(h) for h in hunks), 0)
    assert back.text == FIRST_BETWEEN
    assert all(reverse_hunk(reverse_hunk(h)) == h for h in hunks)
    # the wrong way round: the reversed hunk does not take the text it was written on
    assert isinstance(apply_file(FIRST_BETWEEN, tuple(reverse_hunk(h) for h in hunks)),
                      Mismatch)


def test_a_patch_written_between_tags_is_found_reversed_in_the_later_tag(tmp_path):
    patch = patch_on(tmp_path, FIRST_BETWEEN, CHECK_BEFORE, CHECK_AFTER)
    merged = FIRST_BETWEEN.replace(CHECK_BEFORE, CHECK_AFTER)
    tree, merged_at = reverse_tree(tmp_path, True, merged)
    # at v1 the hunk's context differs in more lines than the fuzz ignores
    assert isinstance(apply_file(FIRST_AT_V1, file_hunks(hunks_of(patch), MMU_C)), Mismatch)
    found = reverse_preimages(tree, patch)
    assert isinstance(found, PreImage) and found.route == "reverse"
    assert found.commit == merged_at and found.fuzz == 0
    assert found.text == FIRST_BETWEEN and found.post == merged
    assert "(v2)" in found.detail and "approximate" in found.detail
    assert "taken from the patch alone" not in found.detail      # the upstream commit has them
    assert found.as_dict()["route"] == "reverse" and found.as_dict()["commit"] == merged_at


def test_removed_lines_no_version_holds_are_listed_as_the_patchs_alone(tmp_path):
    patch = patch_on(tmp_path, FIRST_BETWEEN, CHECK_BEFORE, CHECK_AFTER)
    tree, _ = reverse_tree(tmp_path, False, FIRST_BETWEEN.replace(CHECK_BEFORE, CHECK_AFTER))
    found = reverse_preimages(tree, patch)
    assert isinstance(found, PreImage) and found.route == "reverse"
    assert "2 removed lines are in no version of mmu.c from v1" in found.detail
    assert "'return 100;'" in found.detail
    [hunk] = file_hunks(hunks_of(patch), MMU_C)
    assert found.unverified == ((hunk.index, "if (x > 10)"), (hunk.index, "return 100;"))
    assert "its removed line 'if (x > 10)' (and 1 more)" in found.unverified_reason(hunk.index)
    assert found.as_dict()["removed_lines_unverified"][1] == {"hunk": hunk.index,
                                                              "line": "return 100;"}


def test_removed_lines_a_patch_applied_first_adds_are_verified(tmp_path):
    """The base a patch was written on held what the patches applied first add."""
    patch = patch_on(tmp_path, FIRST_BETWEEN, CHECK_BEFORE, CHECK_AFTER)
    tree, _ = reverse_tree(tmp_path, False, FIRST_BETWEEN.replace(CHECK_BEFORE, CHECK_AFTER))
    earlier = patch_on(tmp_path / "earlier", FIRST_AT_V1, "\t\treturn 10;\n",
                       "\t\treturn 100;\n")
    memory = Memory().with_added(hunks_of(earlier), "0001")
    found = find_preimages(hunks_of(patch), [MMU_C], open_tree(str(tree)), "v1",
                           memory)[MMU_C]
    assert isinstance(found, PreImage) and found.route == "reverse"
    # 'return 100;' is added by 0001; 'if (x > 10)' is held by v1, but not in one piece with
    # it, so only the run's other line is still unverified
    assert [line for _, line in found.unverified] == ["if (x > 10)"]


def test_a_later_commit_without_the_patchs_new_lines_is_not_taken(tmp_path):
    patch = patch_on(tmp_path, FIRST_BETWEEN, CHECK_BEFORE, CHECK_AFTER)
    other = FIRST_BETWEEN.replace(CHECK_BEFORE, "\tif (x > 20)\n\t\treturn 30;\n")
    tree, _ = reverse_tree(tmp_path, True, other)
    found = reverse_preimages(tree, patch)
    assert isinstance(found, PreImageMiss)
    assert "line" in found.reason and "does not apply to mmu.c at v1" in found.reason
    [(route, why)] = [row for row in found.tried if row[0] == "reverse"]
    # the commit nearest v1 is named: the upstream change, which lacks the new lines
    assert "holds the patch as merged" in why
    assert "its added line 'if (x > 20)' is nowhere in the file" in why


def test_the_new_lines_elsewhere_in_a_later_commit_are_not_a_place_for_the_hunk(tmp_path):
    patch = patch_on(tmp_path, FIRST_BETWEEN, CHECK_BEFORE, CHECK_AFTER)
    elsewhere = FIRST_BETWEEN.replace("\treturn b;\n", "\tint x = b;\n\n" + CHECK_AFTER
                                      + "\treturn b;\n")
    tree, _ = reverse_tree(tmp_path, True, elsewhere)
    assert CHECK_AFTER in elsewhere and CHECK_BEFORE in elsewhere
    # v2 still takes the patch forward (route 'later' finds it); reversed, it does not
    assert reverse_preimages(tree, patch).route == "later"
    without_later = tuple(r for r in ALL_ROUTES if r != "later")
    assert isinstance(reverse_preimages(tree, patch, routes=without_later), PreImageMiss)


def test_a_hunk_that_only_removes_lines_must_fit_exactly(tmp_path):
    removed = "\tx += 12;\n"
    patch = patch_on(tmp_path, FIRST_BETWEEN, removed, "")
    exact = FIRST_BETWEEN.replace(removed, "")
    tree, merged_at = reverse_tree(tmp_path, True, exact)
    found = reverse_preimages(tree, patch)
    assert isinstance(found, PreImage) and found.route == "reverse" and found.fuzz == 0
    # the outermost context line changed too: with fuzz 1 it would fit, but a hunk that only
    # removes lines, reversed, would fit almost anywhere with fuzz
    moved = tmp_path / "moved"
    moved.mkdir()
    tree, _ = reverse_tree(moved, True, exact.replace("int x = a;", "int x = a - 0;"))
    assert isinstance(reverse_preimages(tree, patch), PreImageMiss)


def test_reverse_comes_only_after_the_other_routes_and_not_in_a_plain_directory(tmp_path):
    patch = patch_on(tmp_path, FIRST_BETWEEN, CHECK_BEFORE, CHECK_AFTER)
    tree, _ = reverse_tree(tmp_path, True, FIRST_BETWEEN.replace(CHECK_BEFORE, CHECK_AFTER),
                           FIRST_BETWEEN)
    # at the commit before the merge, the file at rev takes the patch: no reverse
    found = reverse_preimages(tree, patch, rev="v2~1")
    assert isinstance(found, PreImage) and found.route == "rev"
    plain = tmp_path / "plain"
    (plain / MMU_C).parent.mkdir(parents=True)
    (plain / MMU_C).write_text(FIRST_AT_V1)
    found = reverse_preimages(plain, patch, rev="HEAD")
    assert isinstance(found, PreImageMiss)
    assert ("reverse", "the tree has no history (a plain directory)") in found.tried


def test_a_reverse_pre_image_says_in_the_reason_that_the_base_is_approximate(tmp_path):
    patch = patch_on(tmp_path, FIRST_BETWEEN, CHECK_BEFORE, CHECK_AFTER)
    tree, _ = reverse_tree(tmp_path, True, FIRST_BETWEEN.replace(CHECK_BEFORE, CHECK_AFTER))
    resolution = resolve(hunks_of(patch), tree=open_tree(str(tree)), rev="v1")
    [image] = resolution.preimages
    assert image.route == "reverse" and not image.unverified
    assert "the base is approximate" in resolution.reason
    assert any("by route 'reverse'" in note for note in resolution.notes)
    assert not any("unverified" in cover.reason for cover in resolution.hunks)


def test_a_hunk_whose_removed_line_no_tree_holds_is_not_covered_naming_the_line(tmp_path):
    """The mutant way round: one removed line altered, the patch still reverses from v2 (its
    new lines are there), but no version holds the altered line: that hunk is a MISS."""
    patch = patch_on(tmp_path, FIRST_BETWEEN, CHECK_BEFORE, CHECK_AFTER)
    text = patch.read_text()
    patch.write_text(text.replace("-\t\treturn 100;", "-\t\treturn 100; /* altered */"))
    tree, _ = reverse_tree(tmp_path, True, FIRST_BETWEEN.replace(CHECK_BEFORE, CHECK_AFTER))
    resolution = resolve(hunks_of(patch), tree=open_tree(str(tree)), rev="v1")
    [image] = resolution.preimages
    assert image.route == "reverse"
    [cover] = [c for c in resolution.hunks if c.file == MMU_C]
    assert not cover.covered
    assert "its removed line 'if (x > 10)' (and 1 more) is in no version" in cover.reason


def test_a_patch_applied_first_changes_no_file_when_one_of_its_files_does_not_take_it(tmp_path):
    """As ``git am``: an earlier patch that applies to one of its files and not to the other
    leaves the state as it was (never half a patch, one file calling what the other removed);
    the record names the file that refused and why the other was not applied."""
    from harness.resolve.preimage import applied_first
    spte_h = "arch/x86/kvm/mmu/spte.h"
    tree = make_tree(tmp_path)
    commit_text(tree, "static inline int helper(void)\n{\n\treturn 1;\n}\n", "spte", file=spte_h)
    original = (tree / MMU_C).read_text()
    (tree / MMU_C).write_text(original.replace(*DROP_ACCESSED_FLUSH))
    (tree / spte_h).write_text("static inline int helper(void)\n{\n\treturn 2;\n}\n")
    patch = tmp_path / "both.patch"
    patch.write_text(git(tree, "diff"))
    git(tree, "checkout", "-q", ".")
    both = open_tree(str(tree))
    memory, [record] = applied_first([("both", hunks_of(patch))], both, "HEAD", lambda f: True)
    assert record["applied"] == [MMU_C, spte_h] and memory.text(spte_h) is not None
    # the tree moves on in mmu.c so the patch's mmu.c hunk no longer fits there
    commit_text(tree, original.replace(DROP_ACCESSED_FLUSH[0], DIRTY_FLUSH), "moved on")
    memory, [record] = applied_first([("both", hunks_of(patch))], open_tree(str(tree)),
                                     "HEAD", lambda f: True)
    assert record["applied"] == [] and memory.text(MMU_C) is None and memory.text(spte_h) is None
    reasons = {row["file"]: row["reason"] for row in record["preimages"]}
    assert "not applied: arch/x86/kvm/mmu/mmu.c of the same patch" in reasons[spte_h]
    assert "whole or not at all" in reasons[spte_h]


# -- route 'later': a commit after --rev the patch applies to -------------------------

def test_a_patch_posted_before_a_release_is_found_in_the_commit_after_rev_that_takes_it(tmp_path):
    """The patch's base is in the tree, only after --rev: that real state is the pre-image,
    before 'reverse' (the merged v2 could be taken out again, but it is a constructed base)."""
    patch = patch_on(tmp_path, FIRST_BETWEEN, CHECK_BEFORE, CHECK_AFTER)
    tree, _ = reverse_tree(tmp_path, True, FIRST_BETWEEN.replace(CHECK_BEFORE, CHECK_AFTER),
                           FIRST_BETWEEN)
    between = git(tree, "rev-parse", "v2~1").strip()
    found = reverse_preimages(tree, patch)
    assert isinstance(found, PreImage) and found.route == "later"
    assert found.commit == between and found.fuzz == 0 and not found.unverified
    assert found.text == FIRST_BETWEEN
    assert "oldest commit after v1 that takes the whole patch" in found.detail
    resolution = resolve(hunks_of(patch), tree=open_tree(str(tree)), rev="v1")
    [image] = resolution.preimages
    assert image.route == "later" and "approximate" not in (resolution.reason or "")
    assert resolution.memory.rev == between       # the run's next patch reads that commit


def test_later_is_not_taken_over_an_earlier_patch_of_the_run(tmp_path):
    """An earlier patch of the run changed a file: a later commit's files would drop it."""
    patch = patch_on(tmp_path, FIRST_BETWEEN, CHECK_BEFORE, CHECK_AFTER)
    tree, _ = reverse_tree(tmp_path, True, FIRST_BETWEEN.replace(CHECK_BEFORE, CHECK_AFTER),
                           FIRST_BETWEEN)
    memory = Memory().with_files({"arch/x86/kvm/mmu/spte.h": "int x;\n"}, "0001")
    found = find_preimages(hunks_of(patch), [MMU_C], open_tree(str(tree)), "v1", memory)[MMU_C]
    assert found.route == "reverse"
    plain = tmp_path / "plain"
    (plain / MMU_C).parent.mkdir(parents=True)
    (plain / MMU_C).write_text(FIRST_AT_V1)
    found = reverse_preimages(plain, patch, rev="HEAD")
    assert ("later", "the tree has no history (a plain directory)") in found.tried


def test_the_patch_after_one_found_later_reads_the_rest_of_the_tree_at_that_commit(tmp_path):
    """Patch 2 of a run changes mmu.c (in memory from patch 1) and spte.h, which only the
    commit patch 1 was found at holds as patch 2 needs it: read there, not at --rev."""
    spte_h = "arch/x86/kvm/mmu/spte.h"
    tree = shared.make_tree(tmp_path / "linux", {MMU_C: FIRST_AT_V1, spte_h: "#define A 1\n"})
    git(tree, "tag", "v1")
    commit_text(tree, "#define A 2\n", "upstream spte.h", file=spte_h)
    commit_text(tree, FIRST_BETWEEN, "upstream mmu.c")
    one = patch_on(tmp_path / "one", FIRST_BETWEEN, CHECK_BEFORE, CHECK_AFTER)
    after_one = FIRST_BETWEEN.replace(CHECK_BEFORE, CHECK_AFTER)
    scratch = shared.make_tree(tmp_path / "scratch2", {MMU_C: after_one, spte_h: "#define A 2\n"})
    (scratch / MMU_C).write_text(after_one.replace("return 20;", "return 21;"))
    (scratch / spte_h).write_text("#define A 3\n")
    two = tmp_path / "two.patch"
    two.write_text(git(scratch, "diff"))
    renamed_index(two)
    first = resolve(hunks_of(one), tree=open_tree(str(tree)), rev="v1")
    assert first.preimages[0].route == "later"
    second = resolve(hunks_of(two), tree=open_tree(str(tree)), rev="v1", memory=first.memory)
    routes = {p.file: p.route for p in second.preimages}
    assert routes == {MMU_C: "series", spte_h: "rev"}
    assert [p.commit for p in second.preimages if p.file == spte_h] == [first.memory.rev]
