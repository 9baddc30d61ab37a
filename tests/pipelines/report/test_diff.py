"""`vidpipe report diff` and `report render`: what changed between two reports, through the CLI."""

import json

from pipelines import cli
from pipelines.commands import report as report_command
from pipelines.report import diff_reports, format_diff, report_to_json
from tests.pipelines.report.conftest import feature_set_lineage, make_report

NUM_METRICS = 37  # action 4 + 4 + 4 + 2 pairs + 6 order + 4 multi-label, caption 9, vqa 1 + 3


def test_report_is_a_command():
    assert report_command in cli.COMMAND_MODULES


def save(report: dict, folder) -> str:
    """report.json alone: `report diff` reads nothing else, and rendering costs seconds."""
    folder.mkdir()
    (folder / "report.json").write_text(report_to_json(report))
    return str(folder / "report.json")


def old_and_new() -> tuple[dict, dict]:
    old, new = make_report(), make_report()
    old["caption"]["metrics"]["SPICE"] = 0.18  # new: unavailable (java was not found on PATH)
    new["report_id"] = "eval-2025-01-03-c3d4"
    new["created_at"] = "2025-01-03T03:04:05+00:00"
    new["action"]["metrics"]["top1"] = 0.5
    new["inputs"]["feature_set"] = feature_set_lineage("resnet34")
    new["inputs"]["models"]["lstm-att"]["config"]["hidden_dim"] = 256
    new["counts"]["dead_letters"] = 3
    return old, new


def test_format_diff_lines():
    old, new = old_and_new()
    old_id = old["inputs"]["feature_set"]["feature_set_id"]
    new_id = new["inputs"]["feature_set"]["feature_set_id"]
    assert old_id.startswith("resnet18-") and new_id.startswith("resnet34-")

    lines = format_diff(diff_reports(old, new, old_path="a/report.json", new_path="b"))

    assert lines == [
        "old: eval-2025-01-02-a1b2 (2025-01-02T03:04:05+00:00) a/report.json",
        "new: eval-2025-01-03-c3d4 (2025-01-03T03:04:05+00:00) b",
        'lineage inputs.feature_set.spec.backbone: "resnet18" -> "resnet34"',
        f'lineage inputs.feature_set.feature_set_id: "{old_id}" -> "{new_id}"',
        "lineage inputs.models.lstm-att.config.hidden_dim: 128 -> 256",
        "count   counts.dead_letters: 2 -> 3 (+1)",
        "metric  action.metrics.top1: 0.8125 -> 0.5 (-0.3125, outside old 95% CI [0.625, 1])",
        "metric  caption.metrics.SPICE: 0.18 -> unavailable (java was not found on PATH)",
        "summary: metrics changed 1 (outside old CI 1), became unavailable 1, became available 0, "
        f"appeared 0, disappeared 0, unchanged {NUM_METRICS - 2}; counts changed 1; "
        "lineage differences 3",
    ]


def test_a_change_within_the_old_ci_says_so():
    old, new = make_report(), make_report()
    new["action"]["metrics"]["mAP"] = 0.9
    new["caption"]["metrics"]["CIDEr"] = 1.0  # no CI was reported for it
    lines = format_diff(diff_reports(old, new))
    assert lines[2:4] == [
        "metric  action.metrics.mAP: 0.875 -> 0.9 (+0.025, within old 95% CI [0.7, 0.98])",
        "metric  caption.metrics.CIDEr: 1.12 -> 1 (-0.12)",
    ]


def test_identical_reports_differ_in_nothing():
    report = make_report()
    assert format_diff(diff_reports(report, make_report())) == [
        "old: eval-2025-01-02-a1b2 (2025-01-02T03:04:05+00:00)",
        "new: eval-2025-01-02-a1b2 (2025-01-02T03:04:05+00:00)",
        "summary: metrics changed 0 (outside old CI 0), became unavailable 0, became available 0, "
        f"appeared 0, disappeared 0, unchanged {NUM_METRICS}; counts changed 0; "
        "lineage differences 0",
    ]


def test_sections_that_come_and_go_and_metrics_that_become_available():
    old, new = make_report(), make_report()
    new["vqa"] = None
    del new["inputs"]["predictions"]["vqa"]
    new["caption"]["metrics"]["SPICE"] = 0.2
    new["action"]["per_class_ap"]["grow"] = {"available": False, "reason": "no positive video"}
    diff = diff_reports(old, new)
    changed = [(m["name"], m["status"]) for m in diff["metrics"] if m["status"] != "unchanged"]
    assert changed == [
        ("action.per_class_ap.grow", "became_unavailable"),
        ("caption.metrics.SPICE", "became_available"),
        ("vqa.metrics.accuracy", "disappeared"),
        ("vqa.per_type.colour.accuracy", "disappeared"),
        ("vqa.per_type.count.accuracy", "disappeared"),
        ("vqa.per_type.direction.accuracy", "disappeared"),
    ]
    lines = format_diff(diff)
    assert "metric  caption.metrics.SPICE: unavailable (java was not found on PATH) -> 0.2" in lines
    assert "metric  vqa.metrics.accuracy: disappeared, was 0.6667" in lines
    assert "count   vqa.num_questions: disappeared, was 3" in lines
    assert (
        'lineage inputs.predictions.vqa: removed, was "memory://root/predictions/vqa/vqa-bilinear"'
        in lines
    )
    assert format_diff(diff_reports(new, old))[2:4] == [
        'lineage inputs.predictions.vqa: added "memory://root/predictions/vqa/vqa-bilinear"',
        "count   vqa.num_questions: appeared, 3",
    ]


def test_cli_diff_prints_lines_and_json(tmp_path, capsys):
    old, new = old_and_new()
    save(old, tmp_path / "a")
    new_json = save(new, tmp_path / "b")

    assert cli.main(["report", "diff", str(tmp_path / "a"), new_json]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0] == f"old: eval-2025-01-02-a1b2 (2025-01-02T03:04:05+00:00) {tmp_path}/a/report.json"
    )
    assert out[1] == f"new: eval-2025-01-03-c3d4 (2025-01-03T03:04:05+00:00) {new_json}"
    assert out[2:] == format_diff(diff_reports(old, new))[2:]

    assert cli.main(["report", "diff", str(tmp_path / "a"), str(tmp_path / "b"), "--json"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert diff["new"] == {
        "report_id": "eval-2025-01-03-c3d4",
        "created_at": "2025-01-03T03:04:05+00:00",
        "path": f"{tmp_path}/b/report.json",
    }
    top1 = next(m for m in diff["metrics"] if m["name"] == "action.metrics.top1")
    assert top1 == {
        "name": "action.metrics.top1",
        "path": ["action", "metrics", "top1"],
        "old": 0.8125,
        "new": 0.5,
        "old_ci95": [0.625, 1.0],
        "status": "changed",
        "delta": -0.3125,
        "outside_old_ci95": True,
    }
    spice = next(m for m in diff["metrics"] if m["name"] == "caption.metrics.SPICE")
    assert spice["status"] == "became_unavailable"
    assert spice["new"] == {"available": False, "reason": "java was not found on PATH"}
    assert len(diff["metrics"]) == NUM_METRICS
    assert diff["summary"]["lineage_differences"] == 3


def test_cli_diff_fails_in_one_line_on_a_missing_or_invalid_report(report, tmp_path, capsys):
    good = save(report, tmp_path / "good")
    missing = tmp_path / "nowhere"
    assert cli.main(["report", "diff", str(missing), good]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"vidpipe report: error: no report at {missing}\n"

    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["report", "diff", good, str(empty)]) == 2
    assert capsys.readouterr().err == f"vidpipe report: error: no report at {empty}/report.json\n"

    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({**report, "counts": None}))
    assert cli.main(["report", "diff", good, str(invalid)]) == 2
    assert capsys.readouterr().err == (
        f"vidpipe report: error: {invalid} is not a valid report: counts: expected an object, "
        "got NoneType None (1 problems)\n"
    )

    not_json = tmp_path / "not.json"
    not_json.write_text("<html>")
    assert cli.main(["report", "diff", str(not_json), good]) == 2
    assert capsys.readouterr().err == (
        f"vidpipe report: error: {not_json} is not JSON: Expecting value: line 1 column 1 (char 0)\n"
    )


def test_cli_render_rewrites_the_page_from_report_json(report, tmp_path, capsys):
    json_path = save(report, tmp_path / "a")
    out = tmp_path / "rendered"
    assert cli.main(["report", "render", json_path, "--out", str(out)]) == 0
    assert capsys.readouterr().out == (
        f"wrote {out}/report.html and {out}/report.json "
        "(frames are not decoded: attention shows weights only)\n"
    )
    page = (out / "report.html").read_text()
    # Three action attention examples and one VQA sample: weights alone, each with the note.
    assert page.count("Frames unavailable for this video: only the weights are drawn.") == 4
    assert json.loads((out / "report.json").read_text()) == report
