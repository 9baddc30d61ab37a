"""`vidpipe run` on a tiny real job: every stage runs, a second run skips them all, a changed
option runs its stage and those downstream again, and a stage that refuses its input stops the job."""

import json
import re

from pipelines.cli import main

JOB = """\
[job]
root = "out"

[dataset]
num_videos = 24
size = 32
duration = 1.0
seed = 1

[extract.rgb]
backbone = "small_cnn"
input_size = 32
sampling = "uniform:4"
no_progress = true

[train.action]
task = "action"
model = "lstm"
features = "rgb"
epochs = 2
threads = 1
no_progress = true

[infer.action]
model = "action"

[evaluate]
bootstrap_resamples = 10
no_spice = true
"""


def _stage_lines(out: str) -> list[str]:
    """The runner's summary line of each stage, times replaced by 'T'."""
    lines = [line for line in out.splitlines() if re.match(r"\[\d/\d\] \S+  (ran|skipped)", line)]
    return [re.sub(r"ran in [\d.]+ s", "ran in T s", line) for line in lines]


def test_run_skips_what_is_up_to_date_and_reruns_downstream_of_a_change(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(JOB)
    root = tmp_path / "out"

    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert _stage_lines(out) == [
        "[1/5] dataset  ran in T s",
        "[2/5] extract.rgb  ran in T s",
        "[3/5] train.action  ran in T s",
        "[4/5] infer.action  ran in T s",
        "[5/5] evaluate  ran in T s",
    ]
    report_dir = root / "reports" / "tiny"
    assert out.splitlines()[-1] == f"report: {report_dir}/report.html (and report.json)"
    report = json.loads((report_dir / "report.json").read_text())
    assert report["action"]["model_id"] == "action"
    assert report["counts"]["videos_evaluated"] == {"action": 3}  # the test split
    (feature_set,) = (root / "features").iterdir()
    state = json.loads((root / "jobs" / "tiny" / "state.json").read_text())["stages"]
    assert {stage: record["status"] for stage, record in state.items()} == dict.fromkeys(
        ["dataset", "extract.rgb", "train.action", "infer.action", "evaluate"], "done"
    )
    assert state["extract.rgb"]["output"] == str(feature_set)
    markers = [root / "models/action/model.json", root / "predictions/action/predictions.json"]
    written = [m.stat().st_mtime_ns for m in markers]

    assert main(["run", str(path)]) == 0
    assert _stage_lines(capsys.readouterr().out) == [
        "[1/5] dataset  skipped (up to date)",
        "[2/5] extract.rgb  skipped (up to date)",
        "[3/5] train.action  skipped (up to date)",
        "[4/5] infer.action  skipped (up to date)",
        "[5/5] evaluate  skipped (up to date)",
    ]
    assert [m.stat().st_mtime_ns for m in markers] == written

    path.write_text(JOB.replace("epochs = 2", "epochs = 3"))
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert _stage_lines(out) == [
        "[1/5] dataset  skipped (up to date)",
        "[2/5] extract.rgb  skipped (up to date)",
        "[3/5] train.action  ran in T s",
        "[4/5] infer.action  ran in T s",
        "[5/5] evaluate  ran in T s",
    ]
    assert f"[3/5] train.action  removing its outdated outputs {root}/models/action" in out
    assert "--overwrite" in next(
        line for line in out.splitlines() if "infer.action  running" in line
    )
    train_config = json.loads((root / "models/action/train_config.json").read_text())
    assert train_config["epochs"] == 3


def test_a_stage_that_refuses_its_input_stops_the_job(tmp_path, capsys):
    # A feature model without features passes the parser but not `vidpipe train` itself.
    text = JOB.replace('features = "rgb"\n', "")
    text = text[: text.index("[extract.rgb]")] + text[text.index("[train.action]") :]
    text = text[: text.index("[infer.action]")]
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    assert main(["run", str(path)]) == 2
    captured = capsys.readouterr()
    assert _stage_lines(captured.out) == ["[1/2] dataset  ran in T s"]
    assert captured.err.splitlines()[-1] == (
        "vidpipe run: error: [2/2] train.action failed (exit 2); stopping"
    )
    state = json.loads((tmp_path / "out" / "jobs" / "tiny" / "state.json").read_text())
    assert state["stages"]["train.action"]["status"] == "failed"
    assert state["stages"]["train.action"]["exit_code"] == 2


def test_a_manifest_of_the_users_is_checked_and_a_new_one_reruns_the_stage(
    synth_small, tmp_path, capsys
):
    from schemas import read_manifest, write_manifest

    manifest = tmp_path / "mine.parquet"
    write_manifest(read_manifest(str(synth_small / "manifest.parquet")), str(manifest))
    path = tmp_path / "mine.toml"
    path.write_text('[job]\nroot = "out"\n\n[dataset]\nmanifest = "mine.parquet"\n')

    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"[1/1] dataset  running: vidpipe dataset validate {manifest}" in out
    assert _stage_lines(out) == ["[1/1] dataset  ran in T s"]
    assert main(["run", str(path)]) == 0
    assert _stage_lines(capsys.readouterr().out) == ["[1/1] dataset  skipped (up to date)"]

    write_manifest(read_manifest(str(manifest)).slice(0, 6), str(manifest))
    assert main(["run", str(path)]) == 0
    assert _stage_lines(capsys.readouterr().out) == ["[1/1] dataset  ran in T s"]
    assert manifest.exists()  # read, never replaced


def test_run_takes_a_job_file_or_the_demo(capsys):
    assert main(["run"]) == 2
    assert capsys.readouterr().err == (
        "vidpipe run: error: pass a job file or --demo, not both or neither\n"
    )
