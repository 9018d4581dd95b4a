"""pytest plugin: ``pytest some.patch`` / ``pytest patches/`` run kconform.

A thin adapter over ``harness.pipeline`` (never a second engine), shaped like
pytest's own non-python example: ``pytest_collect_file`` returns a
``PatchFile``, which yields one item per modelled (function, check) pair and
one per hunk's coverage.  Node ids read ``patch::file::function::check``.
A failing item's ``repr_failure`` is the finding as text with its replay
command, not a Python traceback.  Registered through the ``pytest11`` entry
point; the engine is imported lazily inside the hooks.
"""

from __future__ import annotations

import os
import warnings

import pytest

_OPTIONS = pytest.StashKey[dict]()


def pytest_addoption(parser):
    from harness.cli import add_check_options

    group = parser.getgroup("kconform", "kconform patch conformance")
    add_check_options(group.addoption, prefix="kconform-")


def pytest_configure(config):
    """Options are checked here, once: a bad one is pytest's usage error, no traceback."""
    from harness.check import profiles
    from harness.cli import parse_checks
    from harness.errors import KconformError

    try:
        checks = parse_checks(config.getoption("kconform_checks"))
    except KconformError as error:
        raise pytest.UsageError(f"--kconform-checks: {error.one_line()}") from None
    tree = config.getoption("kconform_kernel_tree")
    if tree is not None and not os.path.isdir(tree):
        raise pytest.UsageError(f"--kconform-kernel-tree {tree}: no such directory")
    profile = config.getoption("kconform_profile")
    seed, drawn = profiles.run_seed(profile, config.getoption("kconform_seed"))
    config.stash[_OPTIONS] = {
        "profile": profile,
        "seed": seed,
        "seed_drawn": drawn,
        "checks": checks,
        "kernel_tree": tree,
        "rev": config.getoption("kconform_rev"),
    }


def pytest_report_header(config):
    """The deep profile's drawn seed, so any finding of the session replays from it."""
    stash = config.stash[_OPTIONS]
    if stash["seed_drawn"]:
        return (f"kconform: deep profile, seed {stash['seed']} drawn for this session "
                f"(rerun the same search with --kconform-seed {stash['seed']})")
    return None


def pytest_collect_file(file_path, parent):
    """Every file with a patch name is collected (an empty or corrupt one is an ERROR
    item, never dropped); a ``.txt`` file only when it looks like a patch."""
    from harness.ingest import patches as ingest
    if ingest.ignored_because(str(file_path)) is not None:
        return None
    return PatchFile.from_parent(parent, path=file_path)


class KconformFailure(Exception):
    """Raised by an item; ``repr_failure`` renders it as plain text."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


class PatchFile(pytest.File):
    def collect(self):
        from harness import pipeline

        stash = self.config.stash[_OPTIONS]
        options = pipeline.RunOptions(profile=stash["profile"], seed=stash["seed"],
                                      checks=stash["checks"], series_net=False,
                                      kernel_tree=stash["kernel_tree"], rev=stash["rev"],
                                      cover_only_is_error=False,
                                      command=f"pytest {self.path}")
        results, _ = pipeline.check_paths([str(self.path)], options)
        for entry in results["patches"]:
            if entry.get("is_cover"):
                continue
            yield from self._items_for(entry, results)

    def _items_for(self, entry, results):
        prefix = ""
        if entry.get("series"):
            prefix = f"[{entry['series']['index']}of{entry['series']['total']}]::"
        if entry.get("error"):
            yield PatchItem.from_parent(self, name=f"{prefix}input", entry=entry,
                                        kind="error", payload=entry["error"])
            return
        if entry.get("verdict") == "SKIP":
            from harness.report.outputs import reasons

            item = PatchItem.from_parent(self, name=f"{prefix}applicable", entry=entry,
                                         kind="skip", payload=None)
            item.add_marker(pytest.mark.skip(reason=f"SKIP: {reasons(entry)}"))
            yield item
            return
        for hunk in entry["hunks"]:
            name = (f"{prefix}{os.path.basename(hunk['file'])}::"
                    f"{hunk['function'] or 'hunk' + str(hunk['index'])}::covered")
            yield PatchItem.from_parent(self, name=f"{name}[{hunk['index']}]", entry=entry,
                                        kind="hunk", payload=hunk)
        pairs: dict[tuple[str, str], list[dict]] = {}
        for coverage in entry["coverage"]:
            pairs.setdefault((coverage.get("function") or "operations", coverage["check"]), [])
        for finding in entry["findings"]:
            key = (finding.get("function") or "operations", finding["check"])
            pairs.setdefault(key, []).append(finding)
        for (function, check), findings in sorted(pairs.items()):
            yield PatchItem.from_parent(self, name=f"{prefix}{function}::{check}", entry=entry,
                                        kind="check", payload=findings)


class PatchItem(pytest.Item):
    def __init__(self, *, entry, kind, payload, **kwargs):
        super().__init__(**kwargs)
        self.entry = entry
        self.kind = kind
        self.payload = payload

    def runtest(self):
        from harness.report.text import format_finding

        if self.kind == "error":
            from harness.cli import error_line

            raise KconformFailure(f"ERROR: {error_line(self.payload)}")
        if self.kind == "hunk":
            if not self.payload["covered"]:
                raise KconformFailure(f"MISS: {self.payload['file']}::"
                                      f"{self.payload['function'] or '?'} is not checked: "
                                      f"{self.payload['reason']}")
            return
        from harness.report.outputs import blame_label, is_inherited

        own = [f for f in self.payload if not is_inherited(f)]
        failures = [f for f in own if f["severity"] == "FAIL"]
        for finding in own:
            if finding["severity"] == "WARN":
                warnings.warn(format_finding(finding), stacklevel=1)
        for finding in self.payload:
            if is_inherited(finding):   # labelled, shown with -rA; never this item's outcome
                self.add_report_section("call", "kconform", f"{blame_label(finding)}:\n"
                                        + format_finding(finding))
        if failures:
            raise KconformFailure("\n\n".join(format_finding(f) for f in failures))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, KconformFailure):
            return excinfo.value.text
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        line = self.payload.get("line") if isinstance(self.payload, dict) else None
        return self.path, (line - 1 if line else 0), f"kconform: {self.name}"
