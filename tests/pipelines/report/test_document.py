"""The report contract: validate_report, and report.json/report.html written and read through fsspec."""

import json
import uuid

import fsspec
import numpy as np
import pytest

from pipelines.report import (
    read_report,
    render_html,
    report_to_json,
    unavailable,
    validate_report,
    write_report,
)
from tests.pipelines.report.conftest import make_frames


def test_the_sample_report_is_valid(report):
    assert validate_report(report) == []


def test_an_action_only_report_is_valid(report):
    for section in ("caption", "vqa", "training"):
        report[section] = None
    del report["ablations"]  # absent and null mean the same
    del report["action"]["temporal_order"], report["action"]["multi_label"]
    assert validate_report(report) == []


def test_validate_names_every_problem(report):
    action, caption = report["action"], report["caption"]
    del report["vidpipe_version"]
    report["acton"] = {}
    report["report_id"] = "../escape"
    report["created_at"] = "yesterday"
    report["counts"]["dead_letters"] = -1
    report["counts"]["videos_evaluated"]["audio"] = 3
    action["model_id"] = "lstm-missing"
    action["metrics"]["top1"] = 0
    action["metrics"]["mAP"] = None
    action["metrics"]["top5"] = 1.5
    action["ci95"]["top1"] = [0.9, 0.1]
    action["per_class_ap"]["jump"] = 0.5
    action["confusion_matrix"][0][0] = 4
    action["pr_curves"]["grow"]["recall"].pop()
    action["attention_examples"][0]["attention"].append(0.0)
    caption["metrics"]["CIDEr"] = float("nan")
    del caption["metrics"]["METEOR"]
    caption["ci95"]["SPICE"] = [0.1, 0.2]
    caption["samples"][0]["attention"].pop()
    del caption["samples"][0]["tokens"][0]
    del caption["samples"][0]["frame_indices"]
    report["vqa"]["samples"][0]["correct"] = "yes"
    report["training"]["lstm-att"][0]["val_top1"] = "high"
    report["ablations"]["rows"][0]["seed"] = 1

    assert validate_report(report) == [
        "report: missing key 'vidpipe_version'",
        "report: unknown key 'acton'",
        "report_id: id '../escape' contains a path separator",
        "created_at: 'yesterday' is not an ISO 8601 time",
        "counts.dead_letters: count (-1) must be >= 0",
        "counts.videos_evaluated: unknown task 'audio'; expected one of action, caption, vqa",
        "counts.dead_letter_examples: 1 examples of -1 dead letters",
        "action.metrics.top5: 1.5 must be between 0 and 1",
        "action.metrics.mAP: None is not a number; a metric that could not be computed must "
        'be {"available": false, "reason": ...}',
        "action.ci95.top1: low (0.9) is above high (0.1)",
        "action.per_class_ap: names classes that are not in class_names: ['jump']",
        "action.confusion_matrix: counts 17 videos but num_videos is 16",
        "action.pr_curves.grow: precision has 5 points and recall 4",
        "action.attention_examples[0].attention: has 5 weights for 4 frame_indices",
        "action.model_id: 'lstm-missing' is not in inputs.models",
        "caption.metrics.CIDEr: nan is not a number; a metric that could not be computed must "
        'be {"available": false, "reason": ...}',
        "caption.metrics: missing key 'METEOR'",
        "caption.ci95.SPICE: is a CI for a metric that is unavailable",
        "caption.samples[0]: has attention but no frame_indices",
        "vqa.samples[0].correct: expected true or false, got str 'yes'",
        "training.lstm-att[0].val_top1: expected a number, got str 'high'",
        "ablations.rows[0]: has key 'seed' that is not in columns",
    ]


def test_validate_checks_caption_attention_shape(report):
    sample = report["caption"]["samples"][0]
    sample["attention"].pop()
    sample["attention"][0] = [0.5, 0.5]
    assert validate_report(report) == [
        "caption.samples[0].attention: has 4 rows for 5 tokens",
        "caption.samples[0].attention[0]: has 2 weights for 4 frame_indices",
    ]


def test_validate_rejects_a_non_dict():
    assert validate_report([]) == ["report must be a dict, got list"]


def test_zero_is_a_number_and_unavailable_needs_a_reason(report):
    report["action"]["metrics"]["top1"] = 0
    report["caption"]["metrics"]["SPICE"] = {"available": False}
    assert validate_report(report) == [
        "caption.metrics.SPICE: {'available': False} is not a number; a metric that could not "
        'be computed must be {"available": false, "reason": ...}'
    ]
    assert unavailable("no java") == {"available": False, "reason": "no java"}


def test_write_report_to_a_local_folder_and_read_it_back(report, frames, tmp_path):
    json_path, html_path = write_report(report, str(tmp_path / "reports" / "r1"), frames=frames)

    assert json_path == str(tmp_path / "reports" / "r1" / "report.json")
    assert html_path == str(tmp_path / "reports" / "r1" / "report.html")
    assert sorted(p.name for p in (tmp_path / "reports" / "r1").iterdir()) == [
        "report.html",
        "report.json",
    ]
    assert json.loads((tmp_path / "reports" / "r1" / "report.json").read_text()) == report
    assert read_report(json_path) == report
    assert read_report(str(tmp_path / "reports" / "r1")) == report  # the folder works too
    page = (tmp_path / "reports" / "r1" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    assert 'alt="vid-000 frame 16, attention 0.600"' in page  # drawn with the frames given


@pytest.fixture
def memory_root():
    root = f"memory://reports-test-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_write_report_to_memory(report, memory_root):
    json_path, html_path = write_report(report, f"{memory_root}/r1")

    assert json_path == f"{memory_root}/r1/report.json"
    assert html_path == f"{memory_root}/r1/report.html"
    fs = fsspec.filesystem("memory")
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{memory_root}/r1", detail=False)) == [
        "report.html",
        "report.json",
    ]
    with fsspec.open(html_path, "rt") as file:
        assert file.read().startswith("<!DOCTYPE html>")
    assert read_report(f"{memory_root}/r1") == report
    with fsspec.open(json_path, "rt") as file:
        assert file.read() == report_to_json(report)


def test_an_invalid_report_writes_nothing(report, tmp_path):
    report["action"]["metrics"]["top1"] = float("nan")
    with pytest.raises(
        ValueError,
        match=r"^report is invalid: action\.metrics\.top1: nan is not a number; .* \(1 problems\)$",
    ):
        write_report(report, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_read_report_errors(report, tmp_path):
    with pytest.raises(FileNotFoundError):
        read_report(str(tmp_path / "nowhere.json"))
    with pytest.raises(FileNotFoundError):
        read_report(str(tmp_path))  # a folder without report.json
    (tmp_path / "garbage.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"garbage\.json is not JSON: Expecting property name"):
        read_report(str(tmp_path / "garbage.json"))
    (tmp_path / "nan.json").write_text('{"top1": NaN}')
    with pytest.raises(ValueError, match=r"nan\.json is not JSON: NaN is not allowed in a report$"):
        read_report(str(tmp_path / "nan.json"))
    broken = dict(report, counts=None)
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(
        ValueError,
        match=r"broken\.json is not a valid report: counts: expected an object, "
        r"got NoneType None \(1 problems\)$",
    ):
        read_report(str(tmp_path / "broken.json"))
    assert read_report(str(tmp_path / "broken.json"), validate=False) == broken


@pytest.mark.parametrize(
    ("video_frames", "message"),
    [
        (
            make_frames().astype(np.float32),
            "frames['vid-000'] has dtype float32, expected uint8",
        ),
        (
            make_frames()[..., 0],
            r"frames\['vid-000'\] has shape \(4, 32, 32\), expected \(T, H, W, 3\)",
        ),
        (
            make_frames(num_frames=3),
            "frames['vid-000'] holds 3 frames but its action attention example has attention over 4",
        ),
        ([[0]], "frames['vid-000'] must be a numpy array, got list"),
    ],
)
def test_render_html_checks_frames(report, video_frames, message):
    with pytest.raises(ValueError, match=f"^{message}$" if "\\" in message else None) as error:
        render_html(report, frames={"vid-000": video_frames})
    if "\\" not in message:
        assert str(error.value) == message
