"""report.html in headless Chromium: a screenshot to look at, every image decoded, nothing requested.

The report itself has no script and its Content-Security-Policy forbids any.
To look inside the browser, the test renders a copy whose policy also admits
one script by nonce; that script counts images that did not decode
(`complete && naturalWidth > 0`), records every CSP violation (any attempt
to reach outside the page) and JS error, and writes them onto <html> as data
attributes after the load event; `--dump-dom` prints them, and
`--virtual-time-budget` makes Chromium wait until the page is idle first.
Console messages (stderr with `--enable-logging=stderr`) must be empty too.
A control page with a broken and an external image proves the check sees both.
"""

import base64
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from matplotlib.image import imread

from pipelines.report import CONTENT_SECURITY_POLICY, plots, write_report

CHROMIUM = "/usr/bin/chromium"
REPO_ROOT = Path(__file__).resolve().parents[3]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
NONCE = "vidpipe-test-check"
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
CHECK_SCRIPT = f"""<script nonce="{NONCE}">
const seen = {{violations: [], errors: []}};
document.addEventListener("securitypolicyviolation", e => seen.violations.push(e.blockedURI));
window.addEventListener("error", e => seen.errors.push(String(e.message || e.target.tagName)), true);
window.addEventListener("load", () => {{
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const root = document.documentElement.dataset;
  root.numImages = images.length;
  root.broken = JSON.stringify(broken);
  root.violations = JSON.stringify(seen.violations);
  root.errors = JSON.stringify(seen.errors);
  root.checked = "yes";
}});
</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: install Debian's chromium package"
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,  # a guard against a hung browser, not a speed requirement
        check=True,
    )


class RootAttributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attributes: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "html" and self.attributes is None:
            self.attributes = dict(attrs)


def browser_check(page_path: Path, tmp_path: Path) -> dict:
    """What the in-page check script saw, and the console messages, for the page at `page_path`."""
    page = page_path.read_text()
    assert page.count(CSP_META) == 1
    policy = f"{CONTENT_SECURITY_POLICY}; script-src 'nonce-{NONCE}'"
    checked = page.replace(
        CSP_META, f'<meta http-equiv="Content-Security-Policy" content="{policy}">{CHECK_SCRIPT}'
    )
    checked_path = page_path.with_name(f"checked-{page_path.name}")
    checked_path.write_text(checked)
    result = chromium(
        tmp_path,
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
        "--dump-dom",
        checked_path.as_uri(),
    )
    parser = RootAttributes()
    parser.feed(result.stdout)
    root = parser.attributes or {}
    return {
        "checked": root.get("data-checked"),
        "num_images": int(root.get("data-num-images", -1)),
        "broken": json.loads(root.get("data-broken", "null")),
        "violations": json.loads(root.get("data-violations", "null")),
        "errors": json.loads(root.get("data-errors", "null")),
        "console": [line for line in result.stderr.splitlines() if ":CONSOLE" in line],
    }


def test_report_in_headless_chromium(report, frames, tmp_path):
    _, html_path = write_report(report, str(tmp_path / "report"), frames=frames)
    page_path = Path(html_path)
    num_images = page_path.read_text().count("<img ")

    seen = browser_check(page_path, tmp_path)
    assert seen == {
        "checked": "yes",
        "num_images": num_images,
        "broken": [],
        "violations": [],
        "errors": [],
        "console": [],
    }
    assert num_images == 20

    screenshot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1280,4000", page_path.as_uri())
    output = os.environ.get("VIDPIPE_TEST_OUTPUT")
    if output:  # e.g. VIDPIPE_TEST_OUTPUT=test-output: a folder, relative to the repo root
        folder = REPO_ROOT / output
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, folder / "report.png")
        shutil.copyfile(page_path, folder / "report.html")
    pixels = np.round(imread(screenshot)[..., :3] * 255).astype(int)  # (4000, 1280, 3)
    assert pixels.shape == (4000, 1280, 3)
    # The page is painted (not blank) and the confusion matrix's darkest cell
    # (grow: 4 of 4, Blues at 1.0 = #08306b) was decoded and drawn.
    assert (pixels < 100).all(axis=-1).sum() > 1000
    darkest_blue = np.array([8, 48, 107])
    assert (np.abs(pixels - darkest_blue).max(axis=-1) <= 6).sum() > 500


def test_the_browser_check_sees_broken_and_external_images(tmp_path):
    good = base64.b64encode(plots.image_png(np.zeros((2, 2, 3), dtype=np.uint8))).decode()
    page = tmp_path / "control.html"
    page.write_text(
        f'<!DOCTYPE html><html><head><meta charset="utf-8">{CSP_META}</head><body>'
        f'<img alt="good" src="data:image/png;base64,{good}">'
        '<img alt="broken" src="data:image/png;base64,AAAA">'
        '<img alt="external" src="http://example.invalid/x.png">'
        "</body></html>"
    )
    seen = browser_check(page, tmp_path)
    assert seen["checked"] == "yes"
    assert seen["num_images"] == 3
    assert seen["broken"] == ["broken", "external"]
    assert seen["violations"] == ["http://example.invalid/x.png"]
    assert seen["errors"] == ["IMG", "IMG"]  # the load errors of both
    assert len(seen["console"]) == 1
    assert re.search(
        r"Loading the image 'http://example\.invalid/x\.png' violates", seen["console"][0]
    )
