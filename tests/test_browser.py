"""The HTML report in a real headless Chromium: visible, offline, inert.

Chromium is driven over ``--remote-debugging-pipe`` (the DevTools protocol on
file descriptors 3 and 4), so no selenium, no chromedriver and no TCP port.
The page is loaded from a ``file://`` URL with the network-free flags the
report must survive; every request the page makes and every console or CSP
message is recorded.  A screenshot of the sample report is saved to
``reports/screenshot.png`` (and the hostile one to
``reports/screenshot-hostile.png``) for a human to look at.

Skips only when Chromium is absent and ``CI`` is unset; in CI it must run
(``.ci/install-browser`` installs it).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.report import html_report, outputs
ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "results"
SCREENSHOTS = ROOT / "reports"
RUN = {"started": "2026-11-26T14:00:00+00:00", "elapsed_s": 3.2, "host": "ci-runner-1",
       "python": "3.11.2", "command": "kconform check patches/ --report-dir reports",
       "examples": 5120}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-pipe"]
# Generous guard for a slow CI machine; never asserted as a timing.
PATIENCE_S = 120


def chromium_binary() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = chromium_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is missing: run .ci/install-browser")
        pytest.skip("chromium is not installed (apt-get install chromium, "
                    "or run .ci/install-browser); CI is not set")
    chromium = Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


class Chromium:
    """A headless Chromium spoken to over the DevTools pipe."""

    def __init__(self, binary: str, profile: Path):
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def onto_fds_3_and_4():
            # Move both ends above 4 first so the two dup2 calls cannot clobber each other.
            read = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            write = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=onto_fds_3_and_4, pass_fds=(3, 4))
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> dict:
        for n, event in enumerate(self.events):
            if event.get("method") == method and event.get("sessionId") == session:
                return self.events.pop(n)
        while True:
            event = self._receive()
            if event.get("method") == method and event.get("sessionId") == session:
                return event
            self.events.append(event)

    def _receive(self) -> dict:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_browser], [], [], PATIENCE_S)
            if not ready:
                raise RuntimeError("chromium did not answer over the DevTools pipe")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe: "
                                   + self.process.stderr.read().decode(errors="replace")[-2000:])
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session, target)
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                  session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session)
        return page

    def close(self):
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.process.wait(timeout=PATIENCE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass


class Page:
    def __init__(self, browser: Chromium, session: str, target: str):
        self.browser, self.session, self.target = browser, session, target

    def evaluate(self, expression: str):
        result = self.browser.send("Runtime.evaluate",
                                   {"expression": expression, "returnByValue": True},
                                   session=self.session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def events(self, *methods: str) -> list[dict]:
        self.evaluate("1")  # flush: events sent before this reply are now recorded
        return [e for e in self.browser.events
                if e.get("sessionId") == self.session and e.get("method") in methods]

    def outside_requests(self) -> list[str]:
        """URLs the page asked for that are not the report file itself or data:."""
        urls = [e["params"]["request"]["url"] for e in self.events("Network.requestWillBeSent")]
        return [u for u in urls if not (u.startswith("file://") or u.startswith("data:"))]

    def blocked_by_policy(self) -> list[str]:
        """Console and log messages about the Content-Security-Policy refusing a load."""
        texts = [e["params"]["entry"].get("text", "") for e in self.events("Log.entryAdded")]
        for event in self.events("Runtime.consoleAPICalled"):
            texts += [str(a.get("value", "")) for a in event["params"].get("args", [])]
        return [t for t in texts if "Content Security Policy" in t or "Refused to" in t]

    def resource_entries(self) -> list[str]:
        return self.evaluate(
            "performance.getEntriesByType('resource').map(e => e.name)")

    def screenshot(self, path: Path):
        height = self.evaluate("Math.ceil(document.documentElement.scrollHeight)")
        self.browser.send("Emulation.setDeviceMetricsOverride",
                          {"width": 1280, "height": min(int(height), 16000),
                           "deviceScaleFactor": 1, "mobile": False}, session=self.session)
        data = self.browser.send("Page.captureScreenshot", {"format": "png"},
                                 session=self.session)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def open_all_details(self) -> None:
        self.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")

    def first_screen(self, selector: str) -> bool:
        """The first element matching ``selector`` is visible without scrolling (1280x900)."""
        return self.visible(selector) and self.evaluate(f"""(() => {{
            const box = document.querySelector({json.dumps(selector)}).getBoundingClientRect();
            return box.top >= 0 && box.bottom + window.scrollY <= 900;
        }})()""")

    def horizontal_overflow(self) -> list[str]:
        """The page, or any box on it, wider than the 1280-pixel window (scrolls sideways)."""
        return self.evaluate("""(() => {
            const page = document.documentElement;
            const wide = page.scrollWidth > page.clientWidth ? ['page ' + page.scrollWidth] : [];
            return wide.concat(Array.from(document.querySelectorAll('body *'))
                .filter(e => e.scrollWidth > e.clientWidth + 1 &&
                             getComputedStyle(e).overflowX !== 'visible')
                .map(e => e.tagName + '.' + e.className + ' ' + e.scrollWidth)); })()""")

    def height(self) -> int:
        return self.evaluate("Math.ceil(document.documentElement.scrollHeight)")

    def first_screenshot(self, path: Path):
        data = self.browser.send("Page.captureScreenshot", {"format": "png"},
                                 session=self.session)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def visible(self, selector: str) -> bool:
        """The first element matching ``selector`` has a box and is not hidden."""
        return self.evaluate(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            if (!el) return false;
            const box = el.getBoundingClientRect(), style = getComputedStyle(el);
            // checkVisibility: false inside a closed <details> too
            return box.width > 0 && box.height > 0 && style.visibility !== 'hidden'
                && style.display !== 'none' && Number(style.opacity) > 0
                && (!el.checkVisibility || el.checkVisibility());
        }})()""")


def write_report(tmp_path: Path, sample: str, mutate=None) -> str:
    results = json.loads((DATA / f"{sample}.json").read_text())
    text = html_report.render(results, RUN)
    if mutate:
        text = mutate(text)
    path = tmp_path / f"{sample}.html"
    path.write_text(text, encoding="utf-8")
    return path.as_uri()


def test_sample_report_shows_overview_finding_and_counterexample(browser, tmp_path):
    page = browser.open(write_report(tmp_path, "rfc-series"))
    assert page.evaluate("document.querySelector('#verdict .word').innerText") == "FAIL"
    assert page.visible("#overview table.overview")
    assert page.evaluate("document.querySelectorAll('table.overview tbody tr').length") == 5
    assert page.visible("#patch-4 .cause.s-FAIL")
    assert page.visible("#patch-4 .counterexample .steps")
    # the details are collapsed by default, and there when opened
    assert not page.visible("#patch-4 .counterexample table.bits")
    page.open_all_details()
    assert page.visible("#patch-4 .counterexample table.bits")
    assert page.visible("#patch-4 .logs li.missing")
    assert "kconform replay" in page.evaluate(
        "document.querySelector('#patch-4 .replay').innerText")


def test_sample_report_requests_nothing_outside_the_file(browser, tmp_path):
    page = browser.open(write_report(tmp_path, "rfc-series"))
    csp = page.evaluate("document.querySelector("
                        "'meta[http-equiv=\"Content-Security-Policy\"]').content")
    assert csp == html_report.CSP
    assert page.outside_requests() == []
    assert page.blocked_by_policy() == []
    assert page.resource_entries() == []
    assert page.evaluate("document.scripts.length") == 0


def test_a_report_that_loads_something_is_caught(browser, tmp_path):
    """Twin: an external image slipped into the page must trip the detectors."""
    def add_image(text):
        return text.replace("<body>", '<body><img src="http://127.0.0.1:9/tracker.png">', 1)

    page = browser.open(write_report(tmp_path, "rfc-series", add_image))
    assert page.blocked_by_policy() != []


def test_without_the_policy_the_request_is_seen(browser, tmp_path):
    """Twin: with the CSP meta removed, the same image shows up as a request."""
    def add_image_drop_policy(text):
        text = text.replace(f'<meta http-equiv="Content-Security-Policy" '
                            f'content="{html_report.CSP.replace(chr(39), "&#39;")}">', "", 1)
        assert "Content-Security-Policy" not in text
        return text.replace("<body>", '<body><img src="http://127.0.0.1:9/tracker.png">', 1)

    page = browser.open(write_report(tmp_path, "rfc-series", add_image_drop_policy))
    assert page.outside_requests() == ["http://127.0.0.1:9/tracker.png"]


def test_hostile_report_runs_nothing_and_shows_the_text(browser, tmp_path):
    page = browser.open(write_report(tmp_path, "hostile"))
    assert page.evaluate("document.scripts.length") == 0
    assert page.evaluate("typeof window.__kconform_pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('iframe, img, [onerror], [onload]').length") == 0
    title = page.evaluate("document.querySelector('#overview td.subject').innerText")
    assert "<script>window.__kconform_pwned=1</script>" in title
    assert "U+202E" in title and "\u202e" not in title
    assert "\U0001f41b" in title
    assert page.outside_requests() == []
    assert page.blocked_by_policy() == []
    page.screenshot(SCREENSHOTS / "screenshot-hostile.png")


# --- the bundled series as the engine wrote it: why, first ------------------------------

def lead_cause(sample: str) -> tuple[str, str, list[int]]:
    """The failing patch's anchor, the cause the report must lead with and its culprit
    hunks, read from the results document (what the engine found, not a list)."""
    results = json.loads((DATA / f"{sample}.json").read_text())
    for number, (_, patch) in enumerate(outputs.checked_patches(results), start=1):
        if patch["verdict"] == "FAIL":
            group = outputs.cause_groups(patch)[0]
            return f"patch-{number}", group["cause"], group["lead"]["culprit_hunks"]
    raise AssertionError(f"{sample}: no failing patch")


def test_first_screen_names_the_cause_and_links_the_culprit_hunk(browser, tmp_path):
    anchor, cause, culprits = lead_cause("engine-rfc-series")
    assert culprits, "the engine found the culprit hunk of the failing patch"
    page = browser.open(write_report(tmp_path, "engine-rfc-series"))
    page.first_screenshot(SCREENSHOTS / "screenshot-first-screen.png")
    page.screenshot(SCREENSHOTS / "screenshot.png")
    assert page.first_screen("#why a.cause-text")
    assert page.evaluate("document.querySelector('#why a.cause-text').innerText") == cause
    link = page.evaluate("document.querySelector('#why .culprit-link').getAttribute('href')")
    assert link == f"#{anchor}-hunk-{culprits[0]}"
    assert page.first_screen("#why .culprit-link")
    # the hunk is marked as the culprit, never as checked, and links back to its cause
    hunk = f"#{anchor}-hunk-{culprits[0]}"
    assert page.visible(f"{hunk} > summary .culprit-mark")
    assert page.evaluate(f"document.querySelector('{hunk} > summary .covered-yes')") is None
    back = page.evaluate(f"document.querySelector('{hunk} a.back-link').getAttribute('href')")
    assert page.evaluate(f"document.querySelector('{back} .cause-line').innerText").endswith(
        cause)
    # the failing patch comes before the series' net effect
    assert page.evaluate(f"document.querySelector('#{anchor}').compareDocumentPosition("
                         f"document.querySelector('#net')) & Node.DOCUMENT_POSITION_FOLLOWING")


def test_a_cause_pushed_below_the_first_screen_is_caught(browser, tmp_path):
    """Twin: the same page with a tall block above the list of causes fails the check."""
    def push_down(text):
        return text.replace('<section id="why">',
                            '<div style="height:1200px">tall</div><section id="why">', 1)

    page = browser.open(write_report(tmp_path, "engine-rfc-series", push_down))
    assert page.visible("#why a.cause-text") and not page.first_screen("#why a.cause-text")


def test_no_horizontal_scroll_at_1280_pixels_even_with_every_detail_open(browser, tmp_path):
    page = browser.open(write_report(tmp_path, "engine-rfc-series"))
    assert page.horizontal_overflow() == []
    page.open_all_details()
    assert page.horizontal_overflow() == []


def test_a_wide_block_is_caught(browser, tmp_path):
    """Twin: an unbreakable 3000-pixel line makes the page scroll sideways."""
    def widen(text):
        return text.replace("<body>", '<body><div style="width:3000px">wide</div>', 1)

    page = browser.open(write_report(tmp_path, "engine-rfc-series", widen))
    assert page.horizontal_overflow() != []
