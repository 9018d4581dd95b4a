"""The benchmark runs and its JSON has the right shape (tiny settings; no timing asserted)."""

from __future__ import annotations

import json
import mailbox
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:        # bench/ is not an installed package
    sys.path.insert(0, ROOT)

from bench import head_to_head, machine, mbox, mutant_suite, pairs, run, settings, table  # noqa: E402

PATCHES = os.path.join(ROOT, "patches")
ROW_KEYS = {"section", "measure", "value", "target", "status", "note"}


def test_quick_run_writes_the_json_and_the_markdown(tmp_path):
    assert run.main(["--quick", "--sections", "ingest,domain", "--out", str(tmp_path)]) == 0
    [json_file] = [p for p in tmp_path.iterdir() if p.suffix == ".json"]
    assert json_file.name.endswith("-quick.json")
    report = json.loads(json_file.read_text())
    assert report["schema"] == "kconform-bench/1"
    for key in ("cpu", "cores", "memory_gib", "python", "os", "host"):
        assert key in report["machine"]
    assert report["settings"]["quick"] is True
    assert set(report["sections"]) == {"ingest", "domain"}
    assert report["rows"] and all(set(r) == ROW_KEYS for r in report["rows"])
    ingest = report["sections"]["ingest"]
    assert ingest["bundled"]["patches"] == 4
    assert ingest["mbox"]["patches"] == 8          # --quick: 2 copies of the 4 patches
    assert set(report["sections"]["domain"]["modes"]) == {"legacy", "ept_ad", "ept_noad"}
    # without the check section there are no gate results: said, not crashed
    statuses = {r["measure"]: r["status"] for r in report["rows"]}
    assert statuses["changed functions checked exhaustively, gate"] == table.NOT_AVAILABLE
    markdown = (tmp_path / "latest-quick.md").read_text()
    assert "Machine: " in markdown and "| section | measure |" in markdown


def test_an_unknown_section_is_refused():
    with pytest.raises(SystemExit):
        run.main(["--quick", "--sections", "nonsense"])


def test_missing_mutants_are_reported_not_available(tmp_path):
    data, rows = mutant_suite.measure(settings.Settings.quick_run(mutants_dir=str(tmp_path)), {})
    assert data["available"] is False
    assert [r["status"] for r in rows] == [table.NOT_AVAILABLE]


def test_a_section_that_crashes_becomes_a_row(monkeypatch, tmp_path):
    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(run.ingest_timing, "measure", broken)
    data, rows = run.run_section("ingest", settings.Settings.quick_run(), {}, str(tmp_path))
    assert data["available"] is False and "boom" in data["error"]
    assert rows[0]["status"] == table.FAILED


def test_the_big_mbox_holds_84_distinct_patches(tmp_path):
    path = tmp_path / "big.mbox"
    assert mbox.write_mbox(PATCHES, 21, str(path)) == 84
    mails = list(mailbox.mbox(str(path)))
    assert len({m["Message-ID"] for m in mails}) == 84
    subjects = [" ".join(m["Subject"].split()) for m in mails]
    assert subjects[0].startswith("[RFC PATCH 1/4]")
    assert subjects[-1].startswith("[RFC PATCH v21 4/4]")
    from harness.ingest import patches as ingest
    assert len([p for p in ingest.read_paths([str(path)]) if not p.is_cover]) == 84


def test_the_wrappers_compare_effect_logs():
    accessed_dirty_leaf = next(v.value for v in __import__(
        "kernel_models.spte_domain", fromlist=["spte_domain"]).spte_domain("ept_ad")
        if v.level == 1 and "A" in v.label.split() and "D" in v.label.split())
    read_only = accessed_dirty_leaf & ~0x302        # W, A and D cleared (EPT bits 1, 8, 9)
    base = pairs.mmu_spte_update_base(accessed_dirty_leaf, read_only)
    after = pairs.mmu_spte_update_after_3(accessed_dirty_leaf, read_only)
    assert base != after                             # 2/4 and 3/4 dropped the folio marks
    hash(base)
    assert pairs.mmu_spte_update_base(-1, 0) == pairs.mmu_spte_update_base((1 << 64) - 1, 0)


def test_crosshair_output_is_read_as_u64():
    stdout = ("Given: (old_spte=-1, new_spte=0),\n"
              "  bench.pairs.a : returns 1\n  bench.pairs.b : returns 2\n")
    found = head_to_head.parse_crosshair(stdout, 1)
    assert found == {"old_spte": hex((1 << 64) - 1), "new_spte": "0x0", "size_bits": 64}
    assert head_to_head.parse_crosshair("No differences found.\n", 0) is None


def test_machine_line_names_cpu_cores_and_python():
    line = machine.one_line(machine.describe())
    assert "cores" in line and "Python" in line


def test_speed_bench_times_children_cpu_and_wall_apart():
    from bench import speed
    busy = speed.timed([sys.executable, "-c", "import time\nt=time.process_time()\n"
                        "while time.process_time()-t<0.3: pass"], cwd=ROOT)
    idle = speed.timed([sys.executable, "-c", "import time; time.sleep(0.3)"], cwd=ROOT)
    assert busy["cpu_s"] >= 0.25 and busy["exit"] == 0
    assert idle["cpu_s"] < 0.25 <= idle["wall_s"]
    assert "load_before" in busy


def test_speed_bench_table_shows_cpu_wall_and_a_changed_result():
    from bench import speed
    document = {"baseline": "abc1234", "commit": "def5678", "load": [0.5, 1.5],
                "machine": machine.describe(),
                "rows": [{"measure": "bundled series, gate: baseline", "cpu_s": 10.0,
                          "wall_s": 12.0, "cpu_ratio": 1.0, "same_results": True},
                         {"measure": "bundled series, gate: current --jobs 1", "cpu_s": 4.0,
                          "wall_s": 9.0, "cpu_ratio": 0.4, "same_results": False,
                          "target": "CPU <= 0.25x baseline"}]}
    text = speed.markdown(document)
    assert "| bundled series, gate: current --jobs 1 | 4.00 | 9.00 | 0.4 |" in text
    assert "| NO |" in text and "abc1234" in text and "load average 0.5" in text


def test_the_suite_row_runs_the_readmes_test_command():
    from bench import suite_timing
    with open(suite_timing.README, encoding="utf-8") as handle:
        argv = suite_timing.readme_test_command(handle.read())
    assert argv[0] == sys.executable and argv[1:3] == ["-m", "pytest"] and "-n" in argv
    # twin: another second block is another command, so the README is what is read
    other = "```sh\nkconform check patches/\n```\n\n```sh\npip install x && python -m pytest -x\n```"
    assert suite_timing.readme_test_command(other) == [sys.executable, "-m", "pytest", "-x"]


def test_the_suite_row_reads_pytests_last_line():
    from bench import suite_timing
    assert suite_timing.outcome_counts("....\n1624 passed, 3 xfailed in 2012.21s (0:33:32)\n") \
        == {"passed": 1624, "xfailed": 3}
    assert suite_timing.outcome_counts("INTERNALERROR> boom\n") == {}
