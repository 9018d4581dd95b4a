"""Documentation hunks: reStructuredText parsed before and after with docutils (check rst_parses).

Inputs are patch files under tests/data/docs/ (RST written for these tests) and,
for the whole-file route, a small git tree built here.  Each property is tested
both ways: a harmless change gets no finding, a breaking one is caught with the
docutils message, the patch line and the offending text.
"""

import json
import shutil
import subprocess
import sys

import pytest

from harness.check import docs

DATA = "tests/data/docs"


def run(*args, tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "harness", "check", *args, "--json", str(out)],
                          capture_output=True, text=True)
    return proc, json.loads(out.read_text())


def doc_findings(results):
    return [f for p in results["patches"] for f in p["findings"] if f["check"] == "rst_parses"]


def test_a_table_whose_border_no_longer_lines_up_fails(tmp_path):
    proc, results = run(f"{DATA}/broken-table.patch", tmp_path=tmp_path)
    assert proc.returncode == 1 and results["verdict"] == "FAIL"
    [finding] = doc_findings(results)
    assert (finding["channel"], finding["severity"]) == ("docs", "FAIL")
    assert "Malformed table" in finding["summary"]
    assert "(patch line 24)" in finding["summary"]       # the first added table row
    assert "| Accessed | 1     |" in finding["summary"]
    assert finding["counterexample"]["difference"]["docs"]["extra"]


def test_an_unterminated_inline_literal_warns(tmp_path):
    proc, results = run(f"{DATA}/unterminated-literal.patch", tmp_path=tmp_path)
    assert proc.returncode == 0 and results["verdict"] == "WARN"
    [finding] = doc_findings(results)
    assert finding["severity"] == "WARN"
    assert "Inline literal start-string without end-string" in finding["summary"]


def test_a_sentence_with_a_sphinx_role_passes(tmp_path):
    proc, results = run(f"{DATA}/good-sentence.patch", tmp_path=tmp_path)
    assert results["verdict"] == "PASS" and not doc_findings(results)
    [cov] = [c for p in results["patches"] for c in p["coverage"] if c["check"] == "rst_parses"]
    assert "parsed with docutils before and after" in cov["text"]


def test_messages_both_sides_share_are_not_the_patchs():
    before = "Title\n=====\n\nThe ``open literal\n\nText.\n"
    after = "Title\n=====\n\nThe ``open literal\n\nText, longer.\n"
    assert docs.messages(before)                 # the file has its own problem...
    assert docs.new_messages(before, after) == []  # ...which the patch did not bring


def test_a_second_copy_of_a_message_counts():
    before = "The ``open literal\n"
    after = "The ``open literal\n\nAnd ``another\n"
    [fresh] = docs.new_messages(before, after)
    assert fresh.source_line == "And ``another"


def test_sphinx_directives_with_options_are_inert():
    text = ("Title\n=====\n\n.. kernel-doc:: arch/x86/kvm/mmu/mmu.c\n   :export:\n\n"
            ".. toctree::\n   :maxdepth: 2\n\n   locking\n")
    assert docs.messages(text) == []


def repaired_copy(tmp_path, blob="1111111"):
    """The web-archive style RST copy of tests/data/inputs, on a file kconform reads."""
    text = open("tests/data/inputs/rst-underline-stripped.txt").read()
    path = tmp_path / "copy.txt"
    path.write_text(text.replace("Documentation/x.rst", "Documentation/virt/kvm/locking.rst")
                    .replace("1111111", blob))
    return str(path)


def test_a_repaired_copy_says_whitespace_cannot_be_verified(tmp_path):
    _, results = run(repaired_copy(tmp_path), tmp_path=tmp_path)
    [cov] = [c for p in results["patches"] for c in p["coverage"] if c["check"] == "rst_parses"]
    assert "whitespace was repaired" in cov["text"] and "cannot be verified" in cov["text"]


def test_the_check_is_selected_by_name(tmp_path):
    _, results = run(f"{DATA}/broken-table.patch", "--checks", "refs_balanced",
                     tmp_path=tmp_path)
    assert not doc_findings(results)
    _, results = run(f"{DATA}/broken-table.patch", "--checks", "rst_parses", tmp_path=tmp_path)
    assert doc_findings(results)


FILE = "Documentation/virt/kvm/locking.rst"
WHOLE = ("Example\n=======\n\nThe list is protected by ``kvm->mmu_lock.\n\n"   # the file's own
         "Second section\n==============\n\nA paragraph.\n")


def git(tree, *args):
    return subprocess.run(["git", "-C", str(tree), *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("title, breaks", [("Second part", False),
                                           ("Second section, renamed", True)])
def test_with_a_tree_the_whole_file_is_parsed(tmp_path, title, breaks):
    tree = tmp_path / "tree"
    (tree / "Documentation/virt/kvm").mkdir(parents=True)
    (tree / FILE).write_text(WHOLE)
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    # The hunk renames the second title; the file's open literal lies outside the hunk.
    (tree / FILE).write_text(WHOLE.replace("Second section\n==============",
                                           f"{title}\n=============="))
    diff = git(tree, "diff")
    git(tree, "checkout", "-q", "--", FILE)
    patch = tmp_path / "rename.patch"
    patch.write_text("From: A Tester <t@example.org>\nSubject: [PATCH] Documentation: KVM: "
                     "rename a section\n\nRename a section.\n---\n" + diff)
    _, results = run(str(patch), "--kernel-tree", str(tree), tmp_path=tmp_path)
    [cov] = [c for p in results["patches"] for c in p["coverage"] if c["check"] == "rst_parses"]
    assert "the whole file parsed" in cov["text"]
    found = doc_findings(results)
    # the file's own open literal is never the patch's
    assert all("Inline literal" not in f["summary"] for f in found)
    assert [("Title underline too short" in f["summary"], f["severity"]) for f in found] == \
        ([(True, "WARN")] if breaks else [])


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_with_a_tree_a_repaired_copy_is_read_hunk_by_hunk(tmp_path):
    """The whole post-image of a repaired copy would mix lost and kept whitespace."""
    tree = tmp_path / "tree"
    (tree / "Documentation/virt/kvm").mkdir(parents=True)
    (tree / "Documentation/virt/kvm/locking.rst").write_text("Title\n-----\n")
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    blob = git(tree, "rev-parse", "HEAD:Documentation/virt/kvm/locking.rst").strip()
    _, results = run(repaired_copy(tmp_path, blob[:7]), "--kernel-tree", str(tree),
                     tmp_path=tmp_path)
    [cov] = [c for p in results["patches"] for c in p["coverage"] if c["check"] == "rst_parses"]
    assert "whitespace was repaired" in cov["text"] and "whole file" not in cov["text"]
