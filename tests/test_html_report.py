"""The HTML report: verdict first, self-contained, and inert whatever the patch says.

Every property here has a twin that must fail: a renderer that forgets to
escape, a document whose finding changes severity, a page that loads
something, so the checks below are known to be able to say no.
"""

from __future__ import annotations

import copy
import json
import shlex
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import Markup

from harness.report import html_report
from harness.report import outputs
DATA = Path(__file__).resolve().parent / "data" / "results"
SAMPLES = sorted(p.stem for p in DATA.glob("*.json"))
RUN = {"started": "2026-11-26T14:00:00+00:00", "elapsed_s": 3.2, "host": "ci-runner-1",
       "python": "3.11.2", "command": "kconform check patches/ --report-dir reports",
       "examples": 5120}


def load(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


class Elements(HTMLParser):
    """Every start tag with its attributes, as the browser's parser would see them."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "section", "div",
                "h2", "h3", "h4", "p", "span", "strong", "em", "a", "ul", "ol", "li", "dl",
                "dt", "dd", "table", "thead", "tbody", "tr", "th", "td", "pre", "details",
                "summary", "article", "bdi", "svg", "circle", "text", "rect"}


def active_content(text: str) -> list[str]:
    """Anything in the page that could run, load or navigate: must be empty."""
    problems = []
    for tag, attrs in Elements(text).tags:
        if tag not in ALLOWED_TAGS:
            problems.append(f"<{tag}>")
        for name, value in attrs.items():
            if name.startswith("on"):
                problems.append(f"<{tag} {name}>")
            if name in ("href", "src", "action", "xlink:href", "formaction") and \
                    not (value or "").startswith("#"):
                problems.append(f"<{tag} {name}={value!r}>")
    return problems


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_sample_renders_without_active_content(sample):
    assert active_content(html_report.render(load(sample), RUN)) == []


def test_hostile_text_renders_as_text():
    page = html_report.render(load("hostile"), RUN)
    assert active_content(page) == []
    assert "&lt;script&gt;window.__kconform_pwned=1&lt;/script&gt;" in page
    assert "&lt;svg onload=alert(1)&gt;" in page
    assert "&lt;/pre&gt;&lt;script&gt;window.__kconform_pwned=5&lt;/script&gt;" in page
    assert "&#34;double&#34; &#39;single&#39; &amp;" in page
    assert "{{7*7}}" in page
    assert "\U0001f41b\U0001f525" in page  # emoji are ordinary text and stay


def test_hostile_hidden_characters_become_visible_marks():
    page = html_report.render(load("hostile"), RUN)
    for char in "\u202e\u202c\u2066\u2069\u200b\u200d\ufeff\u0007\u001b\u0000":
        assert char not in page
        assert outputs.code_point(char) in page
    assert 'title="RIGHT-TO-LEFT OVERRIDE"' in page


def test_hostile_run_record_renders_as_text():
    run = dict(RUN, host="<script>x</script>", command="kconform check '<img src=x>'",
               python="3.11\u202e")
    page = html_report.render(load("pass"), run)
    assert active_content(page) == []
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "U+202E" in page


def test_a_renderer_that_does_not_escape_is_caught(monkeypatch):
    """Twin: with escaping switched off the same sample yields script elements."""
    monkeypatch.setattr(html_report, "reveal", lambda text: Markup("" if text is None else text))
    problems = active_content(html_report.render(load("hostile"), RUN))
    assert "<script>" in problems
    assert "<iframe>" in problems


def test_csp_forbids_every_fetch_and_comes_before_any_style():
    page = html_report.render(load("rfc-series"), RUN)
    metas = [a for t, a in Elements(page).tags if t == "meta"
             and a.get("http-equiv") == "Content-Security-Policy"]
    assert [m["content"] for m in metas] == [html_report.CSP]
    assert "default-src 'none'" in html_report.CSP
    assert page.index("Content-Security-Policy") < page.index("<style>")
    assert "http://" not in page and "https://" not in page and "@import" not in page


def test_verdict_comes_first_in_words_and_colour():
    page = html_report.render(load("rfc-series"), RUN)
    banner = page.index('class="banner v-FAIL"')
    assert banner < page.index('id="overview"')
    assert '<div class="word">FAIL</div>' in page[banner:page.index('id="overview"')]


def test_overview_has_one_row_per_patch_and_net_and_every_channel():
    view = html_report.report_view(load("rfc-series"), RUN)
    assert [p["label"] for p in view["patches"]] == ["1/4", "2/4", "3/4", "4/4"]
    assert view["channels"][:6] == ["accessed", "dirty", "flush", "spte", "refs", "warn"]
    assert view["cover"]["subject"].startswith("[RFC PATCH 0/4]")
    page = html_report.render(load("rfc-series"), RUN)
    overview = page[page.index('<table class="overview">'):page.index("</table>",
                                                                        page.index('id="overview"'))]
    assert overview.count("<tr>") == 1 + 4 + 1  # header, patches, net


def cells(patch_view: dict) -> dict:
    return {(op, channel): state for op, row in patch_view["matrix"]
            for channel, state, *_ in row}


def test_matrix_tells_intended_outside_violated_and_unchecked_apart():
    patches = html_report.report_view(load("rfc-series"), RUN)["patches"]
    second, third, fourth = cells(patches[1]), cells(patches[2]), cells(patches[3])
    assert second[("zap", "dirty")] == "intended"
    assert second[("age", "dirty")] == "outside"
    assert second[("zap", "flush")] == "same"
    assert fourth[("write_protect", "flush")] == "violated"
    assert fourth[("clear_accessed", "flush")] == "intended"
    assert set(third.values()) == {"unchecked"}
    summary = {channel: state for channel, state, *_ in patches[3]["summary"]}
    assert summary["flush"] == "violated" and summary["dirty"] == "same"


def test_matrix_follows_the_finding_not_the_position():
    """Twin: the same cell turns from outside to violated when the finding is a FAIL."""
    results = load("rfc-series")
    results["patches"][2]["findings"][0]["severity"] = "FAIL"
    second = cells(html_report.report_view(results, RUN)["patches"][1])
    assert second[("age", "dirty")] == "violated"


def test_a_rule_for_every_operation_yields_to_a_rule_naming_one():
    results = load("rfc-series")
    results["patches"][4]["contract"]["rules"] = [
        {"channel": "accessed", "operations": ["*"], "relation": "free", "why": "aging"},
        {"channel": "accessed", "operations": ["write_protect"], "relation": "equal", "why": "-"},
        {"channel": "flush", "operations": ["clear_accessed"], "relation": "subset", "why": "-"},
    ]
    fourth = cells(html_report.report_view(results, RUN)["patches"][3])
    assert "*" not in {op for op, _channel in fourth}
    assert fourth[("write_protect", "accessed")] == "same"
    assert fourth[("clear_accessed", "accessed")] == "intended"


def test_every_cell_says_its_state_in_words():
    page = html_report.render(load("rfc-series"), RUN)
    for tag, attrs in Elements(page).tags:
        if tag == "td" and "cell" in attrs.get("class", ""):
            assert attrs.get("title") in {text for _sym, text in html_report.CELL_TEXT.values()}
    for _name, _symbol, text in html_report.report_view(load("rfc-series"), RUN)["legend"]:
        assert text in page


def test_counterexample_marks_the_bits_that_changed():
    view = html_report.report_view(load("rfc-series"), RUN)
    example = view["patches"][3]["findings"][0]["counterexample"]
    changed = [name for name, flag in example["bit_names"] if flag]
    assert changed == ["mmu_writable"]
    assert example["before"][1] == (
        "TlbFlush(scope='all') in kvm_mmu_slot_remove_write_access", True)
    assert example["after"] == [
        ("SpteWrite(old=0x12345c25, new=0x12345825) in spte_write_protect", False)]


def test_counterexample_reads_the_engines_fact_strings():
    view = html_report.report_view(load("function-level"), RUN)
    finding = view["patches"][0]["findings"][0]
    names = dict(finding["counterexample"]["bit_names"])
    assert names["pfn"] is True and names["D"] is True and names["W"] is False
    old, new = finding["counterexample"]["sptes"]
    assert dict(zip(names, [v for v, _ in old["bits"]]))["D"] is False
    assert dict(zip(names, [v for v, _ in new["bits"]]))["pfn"] == 0x12345
    # function-level findings have no operation: the row is the function
    assert [op for op, _row in view["patches"][0]["matrix"]] == ["make_spte()"]


def test_replay_command_is_shown_and_quoted_for_the_shell():
    page = html_report.render(load("rfc-series"), RUN)
    assert "kconform replay kcf1.gate.1234.mmu_spte_update.flush.02b7e1" in page
    hostile = load("hostile")["patches"][0]["findings"][0]
    command = outputs.replay_command(hostile)
    assert shlex.split(command) == ["kconform", "replay", 'tok"; rm -rf / #']


def test_run_metadata_is_shown():
    page = html_report.render(load("rfc-series"), RUN)
    run = page[page.index('id="run"'):]
    for text in ("kconform 0.1.0", "gate", "1234", "5120", "7 of 9 (check, function) pairs, 12800 cases",
                 "2026-11-26T14:00:00+00:00", "3.2 s", "ci-runner-1"):
        assert text in run


def test_error_patch_shows_the_error_and_error_cells():
    view = html_report.report_view(load("error"), RUN)
    patch = view["patches"][0]
    assert set(cells(patch).values()) == {"error"}
    assert {state for _c, state, *_ in patch["summary"]} == {"error"}
    page = html_report.render(load("error"), RUN)
    assert "Could not read this patch" in page and "claims 9 old lines" in page
    assert "every channel must stay the same" not in page


def test_uncovered_hunks_open_and_say_not_checked():
    """An unchecked hunk is shown open; checked hunks that no finding blames fold away."""
    view = html_report.report_view(load("rfc-series"), RUN)
    patch = view["patches"][2]
    assert [(h["covered"], h["open"]) for h in patch["hunks"]] == [(False, True)]
    assert [(h["covered"], h["open"]) for h in patch["quiet_hunks"]] == [(True, False)]
    assert view["patches"][0]["hunks"] == []
    assert [h["open"] for h in view["patches"][0]["quiet_hunks"]] == [False]


def test_rendering_is_deterministic():
    assert html_report.render(load("rfc-series"), RUN) == html_report.render(load("rfc-series"), RUN)


def test_rendering_does_not_change_the_document():
    results = load("hostile")
    before = copy.deepcopy(results)
    html_report.render(results, RUN)
    assert results == before


def test_a_document_of_another_schema_is_refused():
    results = load("pass")
    html_report.render(results, RUN)
    results["schema"] = "kconform/0"
    with pytest.raises(outputs.ReportError, match="kconform/1"):
        html_report.render(results, RUN)


def test_reveal_escapes_and_marks():
    assert str(html_report.reveal("a<b\u202ec")) == (
        'a&lt;b<span class="hidden-char" title="RIGHT-TO-LEFT OVERRIDE">U+202E</span>c')
    assert str(html_report.reveal("plain\ttext\n")) == "plain\ttext\n"


def test_spte_rows_of_one_location_are_compared_with_each_other():
    """engine-rfc-1.json is what the engine wrote: four rows, two SPTEs seen twice."""
    view = html_report.report_view(load("engine-rfc-1"), RUN)
    example = view["patches"][0]["findings"][0]["counterexample"]
    names = [name for name, _ in example["bit_names"]]
    rows = {s["name"]: dict(zip(names, [mark for _, mark in s["bits"]]))
            for s in example["sptes"]}
    assert rows["tdp1@0x0[0] new"]["W"] is True      # 0x200e47 -> 0x600805 loses W
    assert rows["tdp2@0x0[0] new"]["W"] is False     # 0x200ec7 -> 0x803827 keeps W
    assert not any(rows["tdp1@0x0[0] old"].values())  # an old row is the reference


def test_unpaired_spte_rows_are_compared_with_the_first():
    """Twin: the same four rows renamed so nothing pairs: now every row is against row one."""
    results = load("engine-rfc-1")
    sptes = results["patches"][0]["findings"][0]["counterexample"]["sptes"]
    for n, spte in enumerate(sptes):
        spte["name"] = f"row{n}"
    example = html_report.report_view(results, RUN)["patches"][0]["findings"][0]["counterexample"]
    names = [name for name, _ in example["bit_names"]]
    third = dict(zip(names, [mark for _, mark in example["sptes"][2]["bits"]]))
    assert third["W"] is False and third["accessed"] is False  # row2 vs row0, not vs row1


def test_a_hunk_text_with_its_own_header_shows_it_once():
    patch = html_report.report_view(load("engine-rfc-1"), RUN)["patches"][0]
    hunk = (patch["hunks"] + patch["quiet_hunks"])[0]
    assert hunk["header"].startswith("@@ -206,12 +206,20 @@ bool make_spte(")
    assert not any(line["text"].startswith("@@") for line in hunk["lines"])
    page = html_report.render(load("engine-rfc-1"), RUN)
    assert page.count("@@ -206,12 +206,20 @@") == 1
