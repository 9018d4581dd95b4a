"""Bad, odd and hostile input: never a traceback, never PASS for the unchecked.

The corpus is ``tests/data/bad/`` (small synthetic inputs, each with its
expected outcome in ``expected.json``) plus inputs derived here at test time
from the bundled patches (CRLF, QP, base64, latin-1, wrapped, mboxes with
missing, duplicate, shuffled or interleaved parts, a 50 MB mbox, a
hunk one line over the hunk-size limit), so the corpus stays small in git.
"""

from __future__ import annotations

import base64
import functools
import json
import mailbox
import os
import quopri
import random
import tempfile
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
BAD = ROOT / "tests" / "data" / "bad"
PATCHES = ROOT / "patches"
EXPECTED = json.loads((BAD / "expected.json").read_text())

OUTCOME_EXIT = {"error": {ExitCode.ERROR}, "miss": {ExitCode.MISS}, "skip": {ExitCode.SKIP},
                "error_or_note": {ExitCode.ERROR, ExitCode.MISS},
                "error_or_miss": {ExitCode.ERROR, ExitCode.MISS},
                "checked": {ExitCode.PASS, ExitCode.FAIL, ExitCode.MISS}}


def run_cli(capsys, *args):
    code = main(["check", "--quiet", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(code, err, path):
    assert code == ExitCode.ERROR, err
    lines = [line for line in err.splitlines() if line.startswith("kconform: error:")]
    assert "Traceback" not in err
    return lines


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_corpus(capsys, tmp_path, name):
    expected = EXPECTED[name]
    code, out, err = run_cli(capsys, BAD / name, "--json", tmp_path / "r.json")
    assert "Traceback" not in err + out
    assert code in OUTCOME_EXIT[expected["outcome"]], (code, out, err)
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["schema"] == "kconform/1"
    verdicts = [p["verdict"] for p in results["patches"] if not p["is_cover"]]
    if expected["outcome"] == "checked":
        assert all(h["covered"] for p in results["patches"] for h in p["hunks"])
        return
    assert "PASS" not in verdicts and "WARN" not in verdicts
    if expected["outcome"] == "skip":
        assert verdicts and set(verdicts) == {"SKIP"}
        assert not any(h["read"] for p in results["patches"] for h in p["hunks"])
    if code == ExitCode.ERROR:
        errors = [p["error"] for p in results["patches"] if p.get("error")]
        assert errors, "an ERROR exit must name the error in the results"
        assert all(e["file"] for e in errors)
        assert any(name in (e["file"] or "") for e in errors)
        assert any(name in line for line in out.splitlines() + err.splitlines()) or errors


def test_corpus_is_large_enough():
    derived = [n for n in globals() if n.startswith("make_")]
    assert len(EXPECTED) + len(derived) >= 40


# -- inputs derived from the bundled patches --------------------------------------------

def _mail(path: Path):
    return message_from_bytes(path.read_bytes(), policy=policy.compat32)


def make_crlf(tmp_path):
    data = (PATCHES / "rfc-4-of-4.patch").read_bytes().replace(b"\n", b"\r\n")
    return _write(tmp_path / "crlf.patch", data), "rfc-4-of-4.patch"


def _reencoded(tmp_path, name: str, out: str, encode, transfer_encoding: str):
    """The bundled mail ``name`` with its body sent in another transfer encoding."""
    msg = _mail(PATCHES / name)
    msg.set_payload(encode(msg.get_payload(decode=True)).decode("ascii"))
    msg["Content-Transfer-Encoding"] = transfer_encoding
    return _write(tmp_path / out, msg.as_bytes()), name


def make_quoted_printable(tmp_path):
    return _reencoded(tmp_path, "rfc-1-of-4.patch", "qp.patch", quopri.encodestring,
                      "quoted-printable")


def make_base64(tmp_path):
    return _reencoded(tmp_path, "rfc-4-of-4.patch", "b64.patch", base64.encodebytes, "base64")


def make_latin1(tmp_path):
    msg = _mail(PATCHES / "rfc-1-of-4.patch")
    body = msg.get_payload(decode=True).decode("utf-8").replace("Opportunistically",
                                                                "Opportunistically (caf\xe9)")
    msg.set_payload(body.encode("latin-1"))
    del msg["Content-Type"]
    msg["Content-Type"] = 'text/plain; charset="ISO-8859-1"'
    return _write(tmp_path / "latin1.patch", msg.as_bytes()), "rfc-1-of-4.patch"


def _series_mbox(tmp_path, name, parts):
    box_path = tmp_path / name
    box = mailbox.mbox(str(box_path))
    for part in parts:
        box.add(mailbox.mboxMessage(part.read_bytes()))
    box.flush()
    return box_path


def _series_files():
    return {i: PATCHES / f for i, f in [(0, "rfc-0-of-4.patch"), (1, "rfc-1-of-4.patch"),
                                         (2, "rfc-2-of-4.patch"), (4, "rfc-4-of-4.patch")]}


def make_mbox_missing_part(tmp_path):
    parts = _series_files()
    return _series_mbox(tmp_path, "missing-2.mbox", [parts[0], parts[1], parts[4]]), None


def make_mbox_duplicate_identical(tmp_path):
    parts = _series_files()
    return _series_mbox(tmp_path, "dup.mbox", [parts[0], parts[1], parts[1], parts[2]]), None


def make_mbox_shuffled(tmp_path):
    parts = _series_files()
    return _series_mbox(tmp_path, "shuffled.mbox", [parts[4], parts[2], parts[0], parts[1]]), None


def make_mbox_duplicate_different(tmp_path):
    parts = _series_files()
    changed = tmp_path / "changed-1.patch"
    changed.write_bytes(parts[1].read_bytes().replace(b"+\t\t * writable, skip trying",
                                                      b"+\t\t * writable, do not try"))
    return _series_mbox(tmp_path, "dup-diff.mbox", [parts[0], parts[1], changed, parts[2]]), None


def make_mbox_interleaved(tmp_path):
    parts = _series_files()
    other = []
    for index in (1, 2):
        data = parts[index].read_bytes().replace(b"[RFC PATCH ", b"[RFC PATCH v2 ")
        data = data.replace(b"3216282-", b"9999999-")
        path = tmp_path / f"v2-{index}.patch"
        path.write_bytes(data)
        other.append(path)
    return _series_mbox(tmp_path, "interleaved.mbox",
                        [parts[1], other[0], parts[2], other[1], parts[0]]), None


def make_cover_letter_only(tmp_path):
    return _series_mbox(tmp_path, "cover.mbox", [_series_files()[0]]), None


def make_huge_mbox(tmp_path):
    one = (PATCHES / "rfc-2-of-4.patch").read_bytes()
    path = tmp_path / "huge.mbox"
    with open(path, "wb") as handle:
        for _ in range(50 * 2**20 // len(one) + 1):
            handle.write(one + b"\n")
    return path, None


def make_huge_hunk(tmp_path):
    """One line over the hunk-size limit: the property is the limit's, and every line
    more is only more parsing before the same error."""
    from harness.pipeline import MAX_HUNK_LINES

    count = MAX_HUNK_LINES + 1
    lines = "".join(f"+\tvalue_{i} = {i};\n" for i in range(count))
    diff = ("diff --git a/arch/x86/kvm/x86.c b/arch/x86/kvm/x86.c\n"
            "index 1111111..2222222 100644\n--- a/arch/x86/kvm/x86.c\n+++ b/arch/x86/kvm/x86.c\n"
            f"@@ -1,0 +1,{count} @@\n{lines}")
    return _write(tmp_path / "huge-hunk.diff", diff.encode()), None


def make_rewrapped(tmp_path):
    text = (PATCHES / "rfc-4-of-4.patch").read_text()
    wrapped = []
    for line in text.splitlines():
        if len(line) > 72 and line.startswith(("+", "-", " ")) and "flush" in line:
            cut = line.rfind(" ", 0, 72)
            wrapped += [line[:cut], line[cut + 1:]]
        else:
            wrapped.append(line)
    return _write(tmp_path / "wrapped.patch", ("\n".join(wrapped) + "\n").encode()), None


def make_stripped_whitespace(tmp_path):
    text = (PATCHES / "rfc-4-of-4.patch").read_text()
    lines = [line.lstrip(" \t") if not line.startswith(("+", "-")) else line[0] + line[1:].lstrip()
             for line in text.splitlines()]
    return _write(tmp_path / "stripped.patch", ("\n".join(lines) + "\n").encode()), None


# Each derived input and what must come of it.
DERIVED = {
    "make_crlf": "same-as-original",
    "make_quoted_printable": "same-as-original",
    "make_base64": "same-as-original",
    "make_latin1": "same-as-original",
    "make_mbox_missing_part": "no-error",
    "make_mbox_duplicate_identical": "no-error",
    "make_mbox_shuffled": "no-error",
    "make_mbox_interleaved": "no-error",
    "make_rewrapped": "repaired-or-error",
    "make_stripped_whitespace": "repaired-or-error",
    "make_mbox_duplicate_different": "two-series",
    "make_cover_letter_only": "error",
    "make_huge_mbox": "error",
    "make_huge_hunk": "error",
}


@functools.lru_cache(maxsize=None)
def original_run(name: str) -> tuple[int, dict]:
    """Exit code and results of the bundled patch ``name`` checked alone by the CLI, once per
    process: two derived inputs (CRLF and base64 of 4/4, quoted-printable and latin-1 of 1/4)
    are each compared with the same original."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "o.json"
        code = main(["check", "--quiet", str(PATCHES / name), "--json", str(out)])
        return code, json.loads(out.read_text())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _derived_params():
    """The makers, those compared with the same original run in one xdist group (under
    ``--dist loadgroup`` one worker checks that original once for both)."""
    same_original = {"make_crlf": "rfc-4", "make_base64": "rfc-4",
                     "make_quoted_printable": "rfc-1", "make_latin1": "rfc-1"}
    return [pytest.param(maker, marks=pytest.mark.xdist_group(
                f"reliability-original-{same_original[maker]}"))
            if maker in same_original else maker for maker in sorted(DERIVED)]


@pytest.mark.parametrize("maker", _derived_params())
def test_derived_inputs(capsys, tmp_path, maker):
    path, original = globals()[maker](tmp_path)
    code, out, err = run_cli(capsys, path, "--json", tmp_path / "r.json")
    assert "Traceback" not in err + out
    results = json.loads((tmp_path / "r.json").read_text())
    verdicts = [p["verdict"] for p in results["patches"] if not p["is_cover"]]
    if DERIVED[maker] == "error":
        assert code == ExitCode.ERROR, (out, err)
        assert any(p.get("error") and p["error"]["file"] for p in results["patches"])
        return
    if DERIVED[maker] == "repaired-or-error":
        if code == ExitCode.ERROR:
            return
        assert all(p["repaired"] or p["damage"] for p in results["patches"] if not p["is_cover"])
        return
    assert code != ExitCode.ERROR, err
    assert verdicts
    if DERIVED[maker] == "two-series":      # a different 1/4 is checked as its own series
        ones = [p for p in results["patches"] if p.get("series") and p["series"]["index"] == 1]
        assert len(ones) == 2 and not any(p["error"] for p in results["patches"])
        assert any("checked as a series of its own" in n for p in ones for n in p["notes"])
        return
    if DERIVED[maker] == "same-as-original":
        code2, reference = original_run(original)
        assert code == code2
        got = [(p["verdict"], [h["function"] for h in p["hunks"]]) for p in results["patches"]]
        want = [(p["verdict"], [h["function"] for h in p["hunks"]]) for p in reference["patches"]]
        assert got == want
    by_version: dict = {}
    for p in results["patches"]:
        if p.get("series"):
            by_version.setdefault(p["series"]["version"], []).append(p["series"]["index"])
    for indices in by_version.values():
        assert indices == sorted(indices)
    if maker == "make_mbox_interleaved":
            assert sorted(by_version, key=str) == [2, None]
