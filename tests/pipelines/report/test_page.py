"""report.html: every section, escaped user text, no external requests, frames under their weights."""

import base64
import io
import re
from html import escape
from html.parser import HTMLParser

import numpy as np
import pytest
from matplotlib.image import imread

from pipelines.report import CONTENT_SECURITY_POLICY, plots, render_html
from tests.pipelines.report.conftest import SCRIPT_CAPTION, make_frames, make_report

SECTION_IDS = [
    "summary",
    "counts",
    "action",
    "attention",
    "caption",
    "vqa",
    "training",
    "ablations",
    "inputs",
]


class Elements(HTMLParser):
    """Every start tag with its attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def elements(page: str) -> list[tuple[str, dict[str, str]]]:
    parser = Elements()
    parser.feed(page)
    return parser.tags


def decode_png(uri: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    return imread(io.BytesIO(base64.b64decode(uri[len(prefix) :])), format="png")


@pytest.fixture(scope="module")
def full_frames():
    return {"vid-000": make_frames(seed=0), "vid-001": make_frames(seed=1)}


@pytest.fixture(scope="module")
def page(full_frames):
    return render_html(make_report(), frames=full_frames)


def test_every_section_is_there_in_order(page):
    ids = [attrs["id"] for tag, attrs in elements(page) if "id" in attrs]
    assert ids == SECTION_IDS
    for title in (
        "Counts",
        "Action recognition",
        "Attention over frames",
        "Captioning",
        "Video question answering",
        "Training curves",
        "Ablations",
        "Inputs and lineage",
    ):
        assert f"<h2>{title}</h2>" in page
    assert "Not in this report" not in page
    for heading in ("Time-reversed class pairs", "Temporal-order check", "Error analysis"):
        assert f"<h3>{heading}</h3>" in page


def test_user_text_is_escaped(page):
    assert escape(SCRIPT_CAPTION) in page
    assert "<script" not in page.lower()
    assert "moov atom not found &lt;b&gt;" in page
    assert [
        tag for tag, _ in elements(page) if tag in ("script", "iframe", "object", "embed")
    ] == []


def test_the_page_makes_no_requests(page):
    tags = elements(page)
    meta = [a for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert meta == [{"http-equiv": "Content-Security-Policy", "content": CONTENT_SECURITY_POLICY}]
    sources = [attrs["src"] for tag, attrs in tags if "src" in attrs]
    links = [attrs["href"] for tag, attrs in tags if "href" in attrs]
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    assert links and all(href.startswith("#") for href in links)
    assert [tag for tag, _ in tags if tag == "link"] == []
    assert "url(" not in page and "@import" not in page


def test_every_image_is_a_png(page):
    images = [attrs for tag, attrs in elements(page) if tag == "img"]
    plots_alt = [a["alt"] for a in images if a.get("class") == "plot"]
    assert plots_alt == [
        "confusion matrix",
        "per-class average precision",
        "precision-recall curves",
        "multi-label average precision per class",
        "word-by-frame attention for vid-000",
        "accuracy per question type",
        "training curves of lstm-att",
        "training curves of cap-lstm",
    ]
    # 4 frames each of vid-000 and vid-001 (action), and of vid-000 again (VQA).
    assert len(images) - len(plots_alt) == 12
    for attrs in images:
        assert decode_png(attrs["src"]).ndim == 3


def test_frames_are_embedded_exactly_and_weighted(page, full_frames):
    frame_images = [
        attrs
        for tag, attrs in elements(page)
        if tag == "img" and attrs["alt"].startswith("vid-000")
    ]
    assert [a["alt"] for a in frame_images[:4]] == [
        "vid-000 frame 0, attention 0.100",
        "vid-000 frame 8, attention 0.200",
        "vid-000 frame 16, attention 0.600",
        "vid-000 frame 23, attention 0.100",
    ]
    # Relative to the largest weight (0.6): opacity 0.3 + 0.7 * w / 0.6, border 1 + 5 * w / 0.6.
    assert [a["style"] for a in frame_images[:4]] == [
        "opacity:0.42;border-width:2px",
        "opacity:0.53;border-width:3px",
        "opacity:1.00;border-width:6px",
        "opacity:0.42;border-width:2px",
    ]
    for position, attrs in enumerate(frame_images[:4]):
        pixels = np.round(decode_png(attrs["src"]) * 255).astype(np.uint8)  # PNG is lossless
        np.testing.assert_array_equal(pixels, full_frames["vid-000"][position])
    bars = re.findall(r'<div class="bar"><span style="width:(\d+)%"></span></div>', page)
    assert bars[:4] == ["17", "33", "100", "17"]


def test_a_video_without_frames_gets_its_weights_and_a_note(page):
    assert page.count("Frames unavailable for this video: only the weights are drawn.") == 1
    placeholders = re.findall(r'<div class="placeholder" style="([^"]+)">#(\d+)</div>', page)
    assert placeholders == [
        ("opacity:1.00;border-width:6px", "1"),
        ("opacity:0.40;border-width:2px", "9"),
        ("opacity:0.40;border-width:2px", "17"),
        ("opacity:0.40;border-width:2px", "24"),
    ]


def test_unavailable_metrics_say_why_and_are_never_zero(page):
    row = re.search(r"<tr><td>SPICE</td>(.*?)</tr>", page).group(1)
    assert (
        row
        == '<td class="unavailable">unavailable: java was not found on PATH</td><td class="num"></td>'
    )
    assert re.search(r"<tr><td>BLEU-4</td>(.*?)</tr>", page).group(1) == (
        '<td class="num">0.310</td><td class="num">[0.200, 0.400]</td>'
    )


def test_headline_metrics_show_their_confidence_intervals(page):
    assert (
        '<div class="card"><div class="name">top1</div><div class="value">0.812</div>'
        '<div class="ci">95% CI [0.625, 1.000]</div></div>'
    ) in page
    assert '<div class="name">top5</div><div class="value">1.000</div></div>' in page


def test_an_action_only_report_renders(report):
    for section in ("caption", "vqa", "training", "ablations"):
        report[section] = None
    report["inputs"]["feature_set"] = None
    report["action"]["attention_examples"] = []
    page = render_html(report)
    ids = [attrs["id"] for tag, attrs in elements(page) if "id" in attrs]
    assert ids == ["summary", "counts", "action", "attention", "inputs"]
    assert (
        '<p class="absent">Not in this report: Captioning, Video question answering, '
        "Training curves, Ablations.</p>"
    ) in page
    assert "The model has no attention over frames to show." in page
    assert "None: the models read raw frames." in page


def test_plots_never_parse_user_text_as_math():
    # "$\nope$" is an error for mathtext; class names and words are plain text here.
    names = [r"$\nope$", "costs $5"]
    assert plots.confusion_matrix_png([[1, 0], [0, 1]], names).startswith(b"\x89PNG")
    png = plots.word_attention_png([[0.5, 0.5]], [r"$\nope$"], [0, 1])
    assert png.startswith(b"\x89PNG")
