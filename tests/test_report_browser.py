"""The review report renders in a real browser: headless Chromium (Debian ``chromium``).

For the bundled example's report (tests/report_helpers.py) the test
1. screenshots the landing page and checks its pixels (not blank; the text column is
   drawn where the DOM says the summary is);
2. loads a copy of the report with a probe script appended (the report itself is a
   JavaScript app with every result embedded as a data URI), which clicks through the
   menu like a reviewer: every category, every subcategory (subject), every result's
   view button; it records whether each picture loaded (``naturalWidth > 0``) and
   which HTML page was shown, then leaves the first QC picture on screen; the DOM is
   dumped after the app ran (``--dump-dom`` with a virtual time budget);
3. screenshots that view and checks the picture's pixels inside its box.
Skips when Chromium is not installed (``apt-get install chromium``).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from report_helpers import example_report

pytestmark = pytest.mark.e2e

WINDOW = (1400, 1000)

PROBE = r"""
<script id="neurodeid-probe-script">
(function () {
  const out = {landing: null, clicks: [], shown: [], errors: [], final: null};
  window.addEventListener("error", (e) => out.errors.push(String(e.message)));
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const nameOf = (uri) => { for (const [p, r] of Object.entries(results)) if (r.data_uri === uri) return r.name; return null; };
  function link(text) {
    return [...document.querySelectorAll("#app a")].find((a) => a.textContent.trim() === text);
  }
  async function click(text) {
    const a = link(text);
    out.clicks.push({text: text, found: !!a});
    if (a) { a.click(); await sleep(300); }
    return !!a;
  }
  async function shown() {
    for (let i = 0; i < 60; i++) {
      // the content panel (the navbar's logo is a data URI too)
      const img = [...document.querySelectorAll('#app div.grow.justify-center img[src^="data:image"]')]
        .find((x) => x.src !== logo_uri);
      if (img && img.complete) {
        const r = img.getBoundingClientRect();
        return {kind: "img", name: nameOf(img.src), naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
                box: [r.left, r.top, r.width, r.height]};
      }
      const frame = document.querySelector('#app div.grow.justify-center iframe[src^="data:text/html"]');
      if (frame) return {kind: "html", name: nameOf(frame.getAttribute("src"))};
      await sleep(50);
    }
    return {kind: "none"};
  }
  async function viewRows(category, subcategory) {
    // the first button of each result row is its view button (the second: info)
    const selector = '#app div[role="group"] > a[type="button"]:first-child';
    const n = document.querySelectorAll(selector).length;
    for (let i = 0; i < n; i++) {
      app.setView({content: "text", contentText: "-"}); await sleep(100);  // clear the panel
      const b = document.querySelectorAll(selector)[i];
      if (!b || (b.getAttribute("href") || "#") !== "#") continue;  // a download, not a view
      b.click();
      await sleep(200);
      const s = await shown();
      s.category = category; s.subcategory = subcategory;
      out.shown.push(s);
    }
  }
  async function viewEveryResult(category, subcategory) {
    await viewRows(category, subcategory);
    // a label with two values (e.g. view: triplanar / 3D render) is a toggle: view both
    const radios = [...document.querySelectorAll('#app fieldset input[type="radio"]')];
    for (const r of radios.filter((x) => !x.checked)) {
      r.click(); await sleep(200);
      await viewRows(category, subcategory);
    }
  }
  async function run() {
    for (let i = 0; i < 100 && !document.querySelector("#app .prose"); i++) await sleep(50);
    const prose = document.querySelector("#app .prose");
    if (prose) {
      const r = prose.getBoundingClientRect();
      out.landing = {text: prose.innerText, box: [r.left, r.top, r.width, r.height], window: [innerWidth, innerHeight]};
    }
    for (const category of Object.keys(categories).sort((a, b) => a.localeCompare(b))) {
      app.setView({navbarMode: "menu"}); await sleep(200);
      if (!(await click(category))) continue;
      const subs = Object.keys(categories[category]);
      if (subs.length === 1) { await viewEveryResult(category, subs[0]); continue; }
      for (const sub of subs.sort((a, b) => a.localeCompare(b))) {
        app.setView({navbarMode: "category", category: category}); await sleep(200);
        if (await click(sub)) await viewEveryResult(category, sub);
      }
    }
    // leave the first QC picture on screen, as a reviewer sees it
    const first = Object.entries(results).find(([p, r]) => r.mime_type.startsWith("image/"));
    if (first) {
      app.setView({navbarMode: "resultinfo", resultPath: first[0], content: "img", contentPath: first[1].data_uri});
      await sleep(300);
      out.final = await shown();
    }
  }
  window.addEventListener("load", () => run().catch((e) => out.errors.push(String(e))).finally(() => {
    const pre = document.createElement("pre");
    pre.id = "neurodeid-probe";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }));
})();
</script>
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    pytest.skip("Chromium is not installed (apt-get install chromium)")


def run_chromium(url: str, profile, *args: str) -> subprocess.CompletedProcess:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--force-device-scale-factor=1",
           f"--window-size={WINDOW[0]},{WINDOW[1]}", "--virtual-time-budget=30000", *args, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(profile)})
    if proc.returncode != 0:
        raise AssertionError(f"chromium failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium()  # skip before the example run when there is no browser
    run = example_report(tmp_path_factory)
    work = tmp_path_factory.mktemp("browser")
    page = run["report"].read_text(encoding="utf-8")
    cut = page.rindex("</body>")
    probe_page = work / "probe.html"
    probe_page.write_text(page[:cut] + PROBE + page[cut:], encoding="utf-8")
    dom = run_chromium(probe_page.as_uri(), work / "profile1", "--dump-dom").stdout
    m = re.search(r'<pre id="neurodeid-probe">(.*?)</pre>', dom, re.S)
    assert m, "the probe wrote no result: the report's JavaScript did not run\n" + dom[-2000:]
    run_chromium(run["report"].as_uri(), work / "profile2", f"--screenshot={work / 'landing.png'}")
    run_chromium(probe_page.as_uri(), work / "profile3", f"--screenshot={work / 'qc.png'}")
    return {"probe": json.loads(html.unescape(m.group(1))), "dir": work, "run": run}


def test_no_javascript_error(browser):
    assert not browser["probe"]["errors"]


def test_summary_is_visible_on_the_landing_page(browser):
    landing = browser["probe"]["landing"]
    assert landing, "the landing page shows no workflow description"
    assert "May I press send?" in landing["text"]
    assert "NO: do not send this release" in landing["text"]  # the example runs on the demo key
    left, top, width, height = landing["box"]
    assert 0 <= top < browser["probe"]["landing"]["window"][1] / 2 and width > 200 and height > 100


def report_results(browser) -> dict:
    """{name: mime type} of every result embedded in the report."""
    page = browser["run"]["report"].read_text(encoding="utf-8")
    m = re.search(r"var results = (\{.*?\});\n", page, re.S)
    return {r["name"]: r["mime_type"] for r in json.loads(m.group(1)).values()}


def test_every_result_shows_and_every_picture_loads(browser):
    shown = browser["probe"]["shown"]
    assert all(c["found"] for c in browser["probe"]["clicks"]), browser["probe"]["clicks"]
    assert shown and all(s["kind"] != "none" for s in shown), shown
    expected = report_results(browser)
    viewable = {n for n, m in expected.items() if m.startswith("image/") or m == "text/html"}  # others download
    assert {s["name"] for s in shown} == viewable, "results the menus do not reach"
    assert {"summary.html", "withheld.html", "quarantine.html", "audit.html", "quasi.html"} <= set(expected)
    pictures = [s for s in shown if s["kind"] == "img"]
    assert len({s["name"] for s in pictures}) == sum(m.startswith("image/") for m in expected.values()) >= 1
    for s in pictures:
        assert s["naturalWidth"] > 0 and s["naturalHeight"] > 0, s


def test_subject_by_subject(browser):
    """Every subject has its page, and each QC picture sits under its subject (or, for
    dataset-wide plots, under "All subjects")."""
    shown = browser["probe"]["shown"]
    pages = {s["subcategory"] for s in shown if s["category"] == "1 Subjects"}
    subjects = {ln for ln in (browser["run"]["out"] / "release" / "participants.tsv").read_text().split()[1:]}
    assert pages == subjects
    for s in shown:
        if s["kind"] == "img" and s["subcategory"] != "All subjects":
            assert s["subcategory"].startswith("sub-") and s["name"].startswith(s["subcategory"] + "_"), s


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_landing_screenshot_is_drawn(browser):
    img = _pixels(browser["dir"] / "landing.png")
    assert img.shape[:2] == (WINDOW[1], WINDOW[0])
    left, top, width, height = (int(v) for v in browser["probe"]["landing"]["box"])
    text = img[max(top, 0):top + min(height, 300), left:left + width]
    dark = (text.sum(axis=2) < 300).mean()  # glyphs: dark pixels on a white page
    assert 0.005 < dark < 0.5, f"the summary text area is blank or solid ({dark:.4f} dark)"
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50


def test_qc_picture_screenshot_is_drawn(browser):
    final = browser["probe"]["final"]
    assert final and final["kind"] == "img" and final["naturalWidth"] > 0
    img = _pixels(browser["dir"] / "qc.png")
    left, top, width, height = (int(round(v)) for v in final["box"])
    box = img[max(top, 0):min(top + height, img.shape[0]), max(left, 0):min(left + width, img.shape[1])]
    assert box.size and box.shape[0] > 50 and box.shape[1] > 50
    assert box.std() > 10, "the QC picture's box is uniform: the picture was not drawn"


def test_quasi_identifier_page_renders(browser):
    """The k-anonymity page is reached from the menu and, opened in Chromium, draws its
    distribution of k and the subjects below k_min (the example's two subjects are unique)."""
    shown = browser["probe"]["shown"]
    assert any(s["name"] == "quasi.html" and s["kind"] == "html" for s in shown), shown
    page = browser["run"]["out"] / "private" / "report" / "quasi.html"
    dom = run_chromium(page.as_uri(), browser["dir"] / "profile4", "--dump-dom").stdout
    assert 'id="kanon-distribution"' in dom and 'id="kanon-below"' in dom
    subjects = (browser["run"]["out"] / "release" / "participants.tsv").read_text().split()[1:]
    assert subjects and all(s in dom for s in subjects)
    assert "WARN" in dom and "Safe Harbor" in dom
    shot = browser["dir"] / "quasi.png"
    run_chromium(page.as_uri(), browser["dir"] / "profile5", f"--screenshot={shot}")
    img = _pixels(shot)
    assert (img.sum(axis=2) < 300).mean() > 0.002, "the quasi-identifier page is blank"
