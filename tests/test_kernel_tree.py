"""--kernel-tree: pre-images read by blob id from a git tree, whole functions translated.

The trees are built here from C written for these tests (stand-ins with the
shape of mmu.c, not kernel text); patches are made with ``git diff`` so their
index lines name real blobs of the tree.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from harness.translate import derive
from harness.ingest import scope
from harness.errors import UsageError
from harness.ingest.patches import read_file
from harness.resolve.kernel_tree import KernelTree, TreeMiss, apply_hunks, open_tree
from harness.translate.c_source import SourceMiss, find_function, parameters
from harness.pipeline import RunOptions, check_paths
from harness.resolve.strategies import TREE_HOW, resolve
from harness.resolve.preimage import file_hunks as _unique_hunks

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

MMU_C = "arch/x86/kvm/mmu/mmu.c"

# mmu_spte_update as in the models' state 'after 3/4': A or D cleared only flushes.
UPDATE_AFTER_3 = """\
/*
 * Stand-in: true when the caller must flush, e.g. { braces } in a comment.
 */
static bool mmu_spte_update(u64 *sptep, u64 new_spte)
{
	bool flush = false;
	u64 old_spte = mmu_spte_update_no_track(sptep, new_spte);

	if (!is_shadow_present_pte(old_spte))
		return false;

	if (is_mmu_writable_spte(old_spte) &&
	      !is_writable_pte(new_spte))
		flush = true;

	if (is_accessed_spte(old_spte) && !is_accessed_spte(new_spte))
		flush = true;

	if (is_dirty_spte(old_spte) && !is_dirty_spte(new_spte))
		flush = true;

	return flush;
}
"""

FILE_TEMPLATE = """\
// A stand-in for mmu.c written for kconform's tests.
#include "mmu.h"

static bool mmu_spte_update(u64 *sptep, u64 new_spte);

static u64 unrelated_helper(u64 value)
{{
	const char *text = "}} not a brace";
	return value + 1;
}}

{function}
static int after_it(void)
{{
	if (1) {{
		return 2;
	}}
	return 0;
}}
"""


def git(tree, *args) -> str:
    done = subprocess.run(["git", "-C", str(tree), "-c", "user.email=k@example.org",
                           "-c", "user.name=kconform tests", *args],
                          capture_output=True, text=True, check=True)
    return done.stdout


def make_tree(tmp_path, function: str = UPDATE_AFTER_3, *, file: str = MMU_C,
              text: str | None = None):
    """A git tree holding ``file``: the mmu.c stand-in around ``function``, or ``text``."""
    tree = tmp_path / "linux"
    (tree / "arch/x86/kvm/mmu").mkdir(parents=True)
    git(tree, "init", "-q")
    (tree / file).write_text(FILE_TEMPLATE.format(function=function) if text is None else text)
    git(tree, "add", ".")
    git(tree, "commit", "-qm", "base")
    return tree


def make_patch(tree, tmp_path, old: str, new: str, name: str = "change.patch", *,
               file: str = MMU_C):
    """A ``git diff`` of one replacement in ``file`` (the tree is left unchanged)."""
    path = tree / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    diff = git(tree, "diff")
    git(tree, "checkout", "-q", ".")
    patch = tmp_path / name
    patch.write_text(diff)
    return patch


def hunks_of(patch_path):
    return scope.scope_patch(read_file(str(patch_path))[0])


DROP_ACCESSED_FLUSH = ("\tif (is_accessed_spte(old_spte) && !is_accessed_spte(new_spte))\n"
                       "\t\tflush = true;\n\n", "")


# -- the tree --------------------------------------------------------------------

def test_a_path_that_is_not_a_directory_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such directory"):
        open_tree(str(tmp_path / "absent"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        open_tree(str(tmp_path / "file"))
    with pytest.raises(UsageError, match="not a git repository"):
        KernelTree(str(tmp_path))
    assert open_tree(str(tmp_path)).kind == "directory"
    assert open_tree(str(make_tree(tmp_path))).kind == "git"


def test_blobs_are_read_by_abbreviated_id(tmp_path):
    tree = make_tree(tmp_path)
    blob = git(tree, "rev-parse", f"HEAD:{MMU_C}").strip()
    kernel = KernelTree(str(tree))
    assert kernel.text(blob[:12]) == (tree / MMU_C).read_text()
    assert kernel.text("0123456789ab") is None
    assert kernel.text("not-hex") is None


# -- reading C -------------------------------------------------------------------

def test_find_function_skips_prototypes_comments_and_strings(tmp_path):
    text = FILE_TEMPLATE.format(function=UPDATE_AFTER_3)
    found = find_function(text, "mmu_spte_update")
    lines = text.split("\n")
    assert lines[found.first].startswith("static bool mmu_spte_update(u64 *sptep")
    assert lines[found.last] == "}" and lines[found.last + 2].startswith("static int after_it")
    assert parameters(found) == ["sptep", "new_spte"]
    helper = find_function(text, "unrelated_helper")
    assert lines[helper.last] == "}" and helper.last - helper.first == 4
    assert find_function(text, "absent") is None


def test_fname_definitions_and_their_parameters():
    text = ("static int FNAME(prefetch_gpte)(struct kvm_vcpu *vcpu, struct kvm_mmu_page *sp,\n"
            "\t\t\t     u64 *spte, pt_element_t gpte)\n{\n\treturn 0;\n}\n")
    found = find_function(text, "FNAME(prefetch_gpte)")
    assert parameters(found) == ["vcpu", "sp", "spte", "gpte"]


def test_hunks_apply_at_an_offset_and_a_mismatch_names_the_line(tmp_path):
    tree = make_tree(tmp_path)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    text = (tree / MMU_C).read_text()
    hunks = _unique_hunks(hunks_of(patch), MMU_C)
    expected = text.replace(*DROP_ACCESSED_FLUSH)
    assert apply_hunks(text, hunks, "mmu.c") == expected
    shifted = "// one more line\n// and another\n" + text
    assert apply_hunks(shifted, hunks, "mmu.c") == "// one more line\n// and another\n" + expected
    other = text.replace("is_dirty_spte(old_spte) && !is_dirty_spte(new_spte)",
                         "is_dirty_spte(old_spte)")
    with pytest.raises(TreeMiss, match=r"line \d+ reads 'if \(is_dirty_spte\(old_spte\)\)'"):
        apply_hunks(other, hunks, "mmu.c@x")


def test_whole_function_translation_equals_the_model_it_mirrors(tmp_path):
    from kernel_models import registry
    from kernel_models.registry import VersionSet

    state = VersionSet.series_state("after 3/4")
    source = find_function(FILE_TEMPLATE.format(function=UPDATE_AFTER_3), "mmu_spte_update")
    fn = derive.translate_function(MMU_C, source, state, "test")
    model = registry.lookup(MMU_C, "mmu_spte_update", state.blob(MMU_C))
    assert derive.same_body(fn, model)
    assert not derive.same_body(fn, registry.lookup(
        MMU_C, "mmu_spte_update", VersionSet.series_state("base").blob(MMU_C)))


def test_parameters_that_are_not_the_models_are_a_miss(tmp_path):
    from kernel_models.registry import VersionSet

    renamed = UPDATE_AFTER_3.replace("u64 new_spte)", "u64 spte)").replace("new_spte", "spte")
    source = find_function(renamed, "mmu_spte_update")
    with pytest.raises(derive.Miss, match=r"C parameters of mmu_spte_update \(sptep, spte\)"):
        derive.translate_function(MMU_C, source, VersionSet.series_state("base"), "test")


# -- resolution and verdicts -------------------------------------------------------

def test_a_pre_image_equal_to_a_model_resolves_by_whole_function(tmp_path):
    tree = make_tree(tmp_path)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    resolution = resolve(hunks_of(patch), tree=KernelTree(str(tree)))
    assert resolution.before.name == "after 3/4"
    assert "equals the model in state 'after 3/4' (whole-function translation)" \
        in resolution.reason
    assert resolution.complete
    assert resolution.hunks[0].reason == TREE_HOW
    pair = resolution.pairs[0]
    assert pair.before.model_id == "mmu.mmu_spte_update_without_accessed_mark"
    assert pair.after.model_id == "derive.mmu_spte_update"


UNKNOWN_VERSION = UPDATE_AFTER_3.replace("!is_writable_pte(new_spte)",
                                         "!is_mmu_writable_spte(new_spte)")


def test_an_unknown_pre_image_is_translated_not_taken_from_the_hunk(tmp_path):
    """The hunk alone fits the 'after 3/4' model (its context never shows the
    changed writable test); the tree shows the whole function, which no model
    holds, so the before side is its translation."""
    tree = make_tree(tmp_path, UNKNOWN_VERSION)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    hunks = hunks_of(patch)
    plain = resolve(hunks)
    assert plain.pairs[0].before.model_id == "mmu.mmu_spte_update_without_accessed_mark"
    with_tree = resolve(hunks, tree=KernelTree(str(tree)))
    assert with_tree.pairs[0].before.model_id == "derive.mmu_spte_update"
    assert "is not the model's in 'after 3/4': the before side is its translation" \
        in with_tree.reason
    source = with_tree.pairs[0].before.function.derived_source
    assert "is_mmu_writable_spte(new_spte)" in source


def test_a_broken_change_on_an_unknown_pre_image_fails_with_a_counterexample(tmp_path):
    tree = make_tree(tmp_path, UNKNOWN_VERSION)
    patch = make_patch(tree, tmp_path, "if (is_mmu_writable_spte(old_spte) &&",
                       "if (!is_mmu_writable_spte(old_spte) &&", "inverted.patch")
    results, run = check_paths([str(patch)], RunOptions(kernel_tree=str(tree)))
    entry = results["patches"][0]
    assert run["kernel_tree"] == str(tree)
    assert entry["verdict"] == "FAIL"
    assert "tree mmu.c@" in entry["versions"]["before"]
    failing = [f for f in entry["findings"] if f["severity"] == "FAIL"]
    assert any(f["channel"] == "flush" and f["counterexample"] for f in failing)
    example = next(f for f in failing if f["channel"] == "flush")["counterexample"]
    assert example["before_version"].startswith("after 3/4 + tree mmu.c@")


def test_a_hunk_that_does_not_apply_to_its_blob_is_a_miss(tmp_path):
    tree = make_tree(tmp_path)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    text = patch.read_text().replace(" \tif (is_dirty_spte(old_spte) && !is_dirty_spte(new_spte))",
                                     " \tif (is_dirty_spte(old_spte) && !is_young(new_spte))")
    patch.write_text(text)
    results, _ = check_paths([str(patch)], RunOptions(kernel_tree=str(tree)))
    entry = results["patches"][0]
    assert entry["verdict"] == "MISS"
    assert "does not apply to mmu.c@" in entry["versions"]["reason"]
    assert "reads 'if (is_dirty_spte(old_spte) && !is_dirty_spte(new_spte))'" \
        in entry["versions"]["reason"]


def test_a_tree_without_the_file_is_a_miss_saying_what_each_route_found(tmp_path):
    tree = make_tree(tmp_path)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    resolution = resolve(hunks_of(patch), tree=KernelTree(str(other)))
    assert resolution.before is None and not resolution.complete
    assert "the tree does not hold blob" in resolution.reason
    assert f"{MMU_C} does not exist at HEAD" in resolution.reason
    results, _ = check_paths([str(patch)], RunOptions(kernel_tree=str(other)))
    assert results["patches"][0]["verdict"] == "MISS"
    assert results["patches"][0]["versions"]["preimages"][0]["route"] is None


def test_a_construct_outside_the_subset_falls_back_or_misses_naming_it(tmp_path):
    looping = UPDATE_AFTER_3.replace("\tif (!is_shadow_present_pte(old_spte))\n",
                                     "\tdo { } while (0);\n\tif (!is_shadow_present_pte(old_spte))\n")
    tree = make_tree(tmp_path, looping)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    resolution = resolve(hunks_of(patch), tree=KernelTree(str(tree)))
    # no whole-function fingerprint: the hunk fits 'after 3/4' by content, derived from it
    assert "whole functions not translated (mmu_spte_update: unsupported construct " \
           "do-while loop at line" in resolution.reason
    assert resolution.complete
    unknown = looping.replace("!is_writable_pte(new_spte)", "!is_mmu_writable_spte(new_spte)")
    tree2 = make_tree(tmp_path / "two", unknown)
    patch2 = make_patch(tree2, tmp_path, "\tif (is_mmu_writable_spte(old_spte) &&\n"
                                         "\t      !is_mmu_writable_spte(new_spte))\n",
                        "\tif (is_mmu_writable_spte(old_spte))\n", "two.patch")
    resolution = resolve(hunks_of(patch2), tree=KernelTree(str(tree2)))
    assert not resolution.complete
    assert "unsupported construct do-while loop" in resolution.reason


def _strip_indentation(line: str) -> str:
    """As a web archive copies a diff: indentation gone, a context line's space too."""
    if line.startswith(("---", "+++", "@@", "diff ", "index ")) or not line:
        return line
    if line[0] in "-+":
        return line[0] + line[1:].lstrip()
    return line.lstrip()


def test_a_whitespace_damaged_copy_applies_to_the_tree(tmp_path):
    tree = make_tree(tmp_path)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    damaged = "\n".join(_strip_indentation(line) for line in patch.read_text().split("\n"))
    patch.write_text(damaged)
    resolution = resolve(hunks_of(patch), tree=KernelTree(str(tree)))
    assert "every hunk applies to its pre-image in the kernel tree" in resolution.reason
    assert resolution.complete


def test_the_cli_takes_kernel_tree_and_refuses_a_bad_one(tmp_path):
    tree = make_tree(tmp_path)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    out = tmp_path / "r.json"
    done = subprocess.run([sys.executable, "-m", "harness", "check", str(patch), "--kernel-tree", str(tree),
                           "--json", str(out), "--quiet"], capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr
    assert json.loads(out.read_text())["patches"][0]["hunks"][0]["reason"] == TREE_HOW
    bad = subprocess.run([sys.executable, "-m", "harness", "check", str(patch), "--kernel-tree",
                          str(patch)], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "not a directory" in bad.stderr and "Traceback" not in bad.stderr
    no_rev = subprocess.run([sys.executable, "-m", "harness", "check", str(patch), "--kernel-tree",
                             str(tree), "--rev", "v9.9"], capture_output=True, text=True)
    assert no_rev.returncode == 2
    assert "--rev v9.9: no such revision" in no_rev.stderr and "Traceback" not in no_rev.stderr


# -- a function with an iterator loop, tdp_mmu.c ----------------------------------

TDP_MMU_C = "arch/x86/kvm/mmu/tdp_mmu.c"
ZAP_LEAFS = """\
// A stand-in for tdp_mmu.c written for kconform's tests.
static bool tdp_mmu_zap_leafs(struct kvm *kvm, struct kvm_mmu_page *root,
			      gfn_t start, gfn_t end, bool can_yield, bool flush)
{
	struct tdp_iter iter;

	end = min(end, tdp_mmu_max_gfn_exclusive());

	lockdep_assert_held_write(&kvm->mmu_lock);
	rcu_read_lock();

	for_each_tdp_pte_min_level(iter, root, PG_LEVEL_4K, start, end) {
		if (can_yield &&
		    tdp_mmu_iter_cond_resched(kvm, &iter, flush, false)) {
			flush = false;
			continue;
		}

		if (!is_shadow_present_pte(iter.old_spte) ||
		    !is_last_spte(iter.old_spte, iter.level))
			continue;

		tdp_mmu_iter_set_spte(kvm, &iter, 0);

		if (!root->role.invalid)
			flush = true;
	}

	rcu_read_unlock();
	return flush;
}
"""
MARK_AFTER_ZAP = ("\t\ttdp_mmu_iter_set_spte(kvm, &iter, 0);\n",
                  "\t\ttdp_mmu_iter_set_spte(kvm, &iter, 0);\n\n"
                  "\t\tif (is_accessed_spte(iter.old_spte))\n"
                  "\t\t\tkvm_set_pfn_accessed(spte_to_pfn(iter.old_spte));\n")


def make_tdp_tree(tmp_path):
    return make_tree(tmp_path, file=TDP_MMU_C, text=ZAP_LEAFS)


def make_tdp_patch(tree, tmp_path, old, new):
    return make_patch(tree, tmp_path, old, new, "zap.patch", file=TDP_MMU_C)


def test_a_loop_function_translates_whole_and_agrees_with_the_hand_written_models(tmp_path):
    """The RFC 3/4 change to tdp_mmu_zap_leafs, made on a tree of our own C: the
    pre-image equals the model of the states before 3/4, and the translated
    post-image equals the hand-written after-3/4 model statement for statement."""
    from kernel_models import registry
    from kernel_models.registry import VersionSet

    tree = make_tdp_tree(tmp_path)
    patch = make_tdp_patch(tree, tmp_path, *MARK_AFTER_ZAP)
    resolution = resolve(hunks_of(patch), tree=KernelTree(str(tree)))
    assert resolution.before.name == "after 2/4"     # base, 1/4 and 2/4 all hold it
    assert "(also" not in resolution.reason and "whole-function translation" in resolution.reason
    pair = resolution.pairs[0]
    assert pair.before.model_id == "tdp_mmu.tdp_mmu_zap_leafs"
    hand = registry.lookup(TDP_MMU_C, "tdp_mmu_zap_leafs",
                           VersionSet.series_state("after 3/4").blob(TDP_MMU_C))
    assert hand.model_id == "tdp_mmu.tdp_mmu_zap_leafs_marks_accessed"
    assert derive.same_body(pair.after.function, hand)
    assert not derive.same_body(pair.after.function, pair.before)


def test_a_loop_macro_of_another_kernel_era_is_named(tmp_path):
    tree = make_tdp_tree(tmp_path)
    later = ZAP_LEAFS.replace("for_each_tdp_pte_min_level(iter, root,",
                              "for_each_tdp_pte_min_level(iter, kvm, root,")
    (tree / TDP_MMU_C).write_text(later)
    git(tree, "commit", "-qam", "later macro")
    patch = make_tdp_patch(tree, tmp_path, *MARK_AFTER_ZAP)
    resolution = resolve(hunks_of(patch), tree=KernelTree(str(tree)))
    assert "loop macro 'for_each_tdp_pte_min_level' with 6 arguments" in resolution.reason


CLEAR_TRACK_BITS = """\
static u64 mmu_spte_clear_track_bits(struct kvm *kvm, u64 *sptep)
{
	kvm_pfn_t pfn;
	u64 old_spte = *sptep;
	int level = sptep_to_sp(sptep)->role.level;
	struct page *page;

	if (!is_shadow_present_pte(old_spte) ||
	    !spte_has_volatile_bits(old_spte))
		__update_clear_spte_fast(sptep, 0ull);
	else
		old_spte = __update_clear_spte_slow(sptep, 0ull);

	if (!is_shadow_present_pte(old_spte))
		return old_spte;

	kvm_update_page_stats(kvm, level, -1);

	pfn = spte_to_pfn(old_spte);
	page = kvm_pfn_to_refcounted_page(pfn);
	WARN_ON_ONCE(page && !page_count(page));

	if (is_accessed_spte(old_spte))
		kvm_set_pfn_accessed(pfn);

	if (is_dirty_spte(old_spte))
		kvm_set_pfn_dirty(pfn);

	return old_spte;
}
"""


def test_pointer_reads_and_pointer_tests_translate_to_the_models_forms():
    """``*sptep`` is the model's ``sptep.get()``, ``page && ...`` its ``page is not None``."""
    from kernel_models import registry
    from kernel_models.registry import VersionSet

    base, after_2 = VersionSet.series_state("base"), VersionSet.series_state("after 2/4")
    source = find_function(CLEAR_TRACK_BITS, "mmu_spte_clear_track_bits")
    fn = derive.translate_function(MMU_C, source, base, "test")
    assert derive.same_body(fn, registry.lookup(MMU_C, "mmu_spte_clear_track_bits",
                                                base.blob(MMU_C)))
    assert not derive.same_body(fn, registry.lookup(MMU_C, "mmu_spte_clear_track_bits",
                                                    after_2.blob(MMU_C)))


# -- kconform audit ----------------------------------------------------------------

def run_audit(tree, *args):
    return subprocess.run([sys.executable, "-m", "harness", "audit", "--kernel-tree", str(tree),
                           *args], capture_output=True, text=True)


def test_audit_says_a_function_equals_its_model(tmp_path):
    tree = make_tree(tmp_path)
    done = run_audit(tree, "--rev", "HEAD", "--state", "after 3/4", "--verbose")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"HEAD:{MMU_C} (models of 'after 3/4'): 1 equal, 0 differs" in done.stdout
    assert "equal        mmu_spte_update (mmu.mmu_spte_update_without_accessed_mark)" \
        in done.stdout


def test_audit_shows_where_a_function_and_its_model_part(tmp_path):
    tree = make_tree(tmp_path, UNKNOWN_VERSION)
    done = run_audit(tree, "--rev", "HEAD", "--state", "after 3/4")
    assert done.returncode == 1
    assert "differs      mmu_spte_update" in done.stdout
    assert "-    flush = True" not in done.stdout        # only the differing lines
    assert "+if kvm.is_mmu_writable_spte(old_spte) and (not kvm.is_mmu_writable_spte(new_spte))" \
        in done.stdout.replace("      +", "+")


def test_audit_of_a_tree_without_the_series_blobs_says_so(tmp_path):
    tree = make_tree(tmp_path)
    done = run_audit(tree)
    assert done.returncode == 0
    assert "the tree holds none of the modelled blobs" in done.stdout
    bad = run_audit(tree, "--rev", "HEAD", "--state", "after 9/4")
    assert bad.returncode == 2 and "unknown state 'after 9/4'" in bad.stderr


def test_the_pytest_plugin_takes_the_kernel_tree_too(tmp_path):
    """A hunk that does not apply to the tree's blob is a failed item with the reason."""
    from tests.test_cli import _plugin_args

    tree = make_tree(tmp_path)
    patch = make_patch(tree, tmp_path, *DROP_ACCESSED_FLUSH)
    patch.write_text(patch.read_text().replace(
        " \tif (is_dirty_spte(old_spte) && !is_dirty_spte(new_spte))",
        " \tif (is_dirty_spte(old_spte) && !is_young(new_spte))"))
    base = [sys.executable, "-m", "pytest", *_plugin_args(), "-q", "-p", "no:cacheprovider",
            "-W", "ignore", "--rootdir", str(tmp_path), str(patch)]
    with_tree = subprocess.run(base + ["--kconform-kernel-tree", str(tree)], cwd=tmp_path,
                               capture_output=True, text=True, timeout=300)
    assert with_tree.returncode == 1, with_tree.stdout
    assert "does not apply to mmu.c@" in with_tree.stdout
    without = subprocess.run(base, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "does not apply" not in without.stdout


def test_audit_and_replay_refuse_bad_arguments_with_exit_2(tmp_path):
    tree = make_tree(tmp_path)
    no_rev = run_audit(tree, "--rev", "nosuchrev")
    assert no_rev.returncode == 2 and "--rev nosuchrev: no such revision" in no_rev.stderr
    lone_state = run_audit(tree, "--state", "after 3/4")
    assert lone_state.returncode == 2 and "--state needs --rev" in lone_state.stderr
    a_file = run_audit(tree / MMU_C)
    assert a_file.returncode == 2 and "not a directory" in a_file.stderr
    replay = subprocess.run([sys.executable, "-m", "harness", "replay", "eNoDAAAAAAE",
                             str(tmp_path / "absent.patch")], capture_output=True, text=True)
    assert replay.returncode == 2 and "absent.patch: no such file" in replay.stderr
    assert "Traceback" not in no_rev.stderr + lone_state.stderr + a_file.stderr + replay.stderr
