"""`vidpipe run` checks a whole job file before any stage runs: one line, exit 2, nothing written."""

from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.commands.run import DEMO_JOB
from pipelines.job_file import load_job, resolve_argv
from pipelines.job_state import DONE, StageRecord, is_up_to_date, stage_key

# A valid job; each bad case below replaces one line of it (or adds some).
GOOD = """\
[job]
root = "out"

[dataset]
num_videos = 24
size = 32

[extract.rgb]
backbone = "small_cnn"
input_size = 32
sampling = "uniform:4"

[train.action]
task = "action"
model = "lstm"
features = "rgb"
epochs = 2

[infer.action]
model = "action"

[evaluate]
bootstrap_resamples = 10
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "epochs = 2",
            "epoch = 2",
            "[train.action] unknown option 'epoch' (did you mean 'epochs'?); "
            "see `vidpipe train --help`",
        ),
        (
            "epochs = 2",
            'epochs = "ten"',
            "[train.action] argument --epochs: invalid int value: 'ten'",
        ),
        (
            'features = "rgb"',
            'features = "rbg"',
            "[train.action] features = 'rbg' names no [extract.rbg] table (there are: rgb)",
        ),
        (
            'model = "action"',
            'model = "actoin"',
            "[infer.action] model = 'actoin' names no [train.actoin] table (there are: action)",
        ),
        (
            'backbone = "small_cnn"',
            'backbone = "small_cnn"\nweights = "{models.nope}/small_cnn.safetensors"',
            "[extract.rgb] {models.nope} names no [train.nope] table",
        ),
        (
            'backbone = "small_cnn"',
            'backbone = "small_cnn"\nweights = "{model.action}/small_cnn.safetensors"',
            "[extract.rgb] unknown placeholder {model.action}; expected {root}, {manifest}, "
            "{models.NAME}, {features.NAME}, {predictions.NAME}",
        ),
        (
            'sampling = "uniform:4"',
            'sampling = "uniform:0"',
            "[extract.rgb] sampling 'uniform:0': K must be > 0",
        ),
        (
            "epochs = 2",
            'out = "elsewhere"',
            "[train.action] 'out' is set by the job itself; remove it",
        ),
        (
            "bootstrap_resamples = 10",
            "no_spice = 1",
            "[evaluate] no_spice is a switch: true or false, got 1",
        ),
        (
            "[train.action]",
            "[trian.action]",
            "unknown table [trian] (did you mean 'train'?); "
            "expected [job], [dataset], [extract], [train], [infer], [evaluate]",
        ),
        (
            'task = "action"\nmodel = "lstm"',
            'task = "caption"\nmodel = "caption_attention"\nbeam_size = 0',
            "[train.action] beam_size (0) must be > 0",
        ),
        ('root = "out"', "", "the job names no [job] root: set one or pass --root"),
        (
            "num_videos = 24",
            'manifest = "data/manifest.parquet"',
            "[dataset] with manifest = ... takes no synth options, got 'size'",
        ),
        ("[dataset]", "[dataset", "invalid TOML: "),
    ],
)
def test_bad_job_files_are_one_line_and_exit_2_with_nothing_written(
    tmp_path, capsys, old, new, message
):
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vidpipe run: error: {path}: {message}")
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_cycle_of_references_is_refused(tmp_path, capsys):
    text = GOOD.replace(
        'backbone = "small_cnn"',
        'backbone = "small_cnn"\nweights = "{models.action}/small_cnn.safetensors"',
    )
    assert main(["run", str(_write(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert err.endswith(
        "stages depend on each other in a cycle: [extract.rgb], [train.action], "
        "[infer.action], [evaluate]\n"
    )
    assert not (tmp_path / "out").exists()


def test_outputs_the_job_did_not_make_are_not_replaced(tmp_path, capsys):
    path = _write(tmp_path, GOOD)
    someone_elses = tmp_path / "out" / "models" / "action"
    someone_elses.mkdir(parents=True)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"vidpipe run: error: {someone_elses} exists but {tmp_path}/out/jobs/job/state.json has "
        "no record of [train.action] making it; remove it or choose another --root\n"
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["models"]


def test_keys_become_the_subcommands_flags(tmp_path):
    text = GOOD.replace(
        "epochs = 2",
        "epochs = 2\nlr = -0.5\nno_progress = true\nspatial = false\n"
        'model_config = { hidden_dim = 16, dropout = 0.1 }\nstandardize = ["rgb", "flow"]',
    ).replace("bootstrap_resamples = 10", 'bootstrap_resamples = 10\nbeam_options = ["--a=1"]')
    job = load_job(_write(tmp_path, text))
    stages = {s.id: s for s in job.stages}
    argv = resolve_argv(stages["train.action"].argv, job.paths())
    root = str(tmp_path / "out")
    assert argv == [
        "train",
        "--manifest", f"{root}/data/manifest.parquet",
        "--out", f"{root}/models/action",
        "--features", f"{root}/features/<rgb>",  # a stand-in until the feature set is planned
        "--task=action",
        "--model=lstm",
        "--epochs=2",
        "--lr=-0.5",  # `=` keeps a negative number a value
        "--no-progress",  # true: a bare flag; false (spatial) leaves it out
        '--model-config={"dropout": 0.1, "hidden_dim": 16}',
        "--standardize=rgb,flow",
    ]  # fmt: skip
    assert job.paths(feature_sets={"rgb": "small_cnn-abc"})["features.rgb"] == (
        f"{root}/features/small_cnn-abc"
    )
    assert stages["evaluate"].argv[-2:] == ("--", "--a=1")  # Beam options last, after `--`
    assert stages["train.action"].needs == ("dataset", "extract.rgb")


def test_a_boolean_with_a_negative_form_gets_it(tmp_path):
    text = GOOD.replace(
        'task = "action"\nmodel = "lstm"', 'task = "caption"\nmodel = "caption_attention"'
    )
    text = text.replace("epochs = 2", "epochs = 2\ncurriculum = false")
    job = load_job(_write(tmp_path, text))
    train = next(s for s in job.stages if s.id == "train.action")
    assert "--no-curriculum" in train.argv


def test_the_demo_job_is_valid_and_runs_stages_after_what_they_read(tmp_path):
    job = load_job(DEMO_JOB, root=str(tmp_path / "demo"))
    assert job.name == "demo"
    assert [s.id for s in job.stages] == [
        "dataset",
        "train.action",  # pretrains the backbone the extraction uses
        "extract.pretrained",
        "train.caption",
        "train.vqa",
        "infer.action",
        "infer.caption",
        "infer.vqa",
        "evaluate",
    ]
    extract = next(s for s in job.stages if s.kind == "extract")
    assert extract.needs == ("dataset", "train.action")
    assert f"--weights={tmp_path}/demo/models/action/small_cnn.safetensors" in resolve_argv(
        extract.argv, job.paths()
    )
    assert job.report_uri == f"{tmp_path}/demo/reports/demo"


def test_a_stage_is_up_to_date_only_with_the_same_key_and_intact_outputs():
    key = stage_key(["train", "--epochs=2"], {"dataset": "d1"})
    assert key != stage_key(["train", "--epochs=3"], {"dataset": "d1"})
    assert key != stage_key(["train", "--epochs=2"], {"dataset": "d2"})  # an input made again
    done = StageRecord(key=key, status=DONE, output="o", digest="x")
    assert is_up_to_date(done, key, "x")
    assert not is_up_to_date(done, key, "y")  # outputs changed since
    assert not is_up_to_date(done, key, None)  # completion marker gone
    assert not is_up_to_date(None, key, "x")
    assert not is_up_to_date(StageRecord(key=key, status="running", output="o"), key, None)
    with pytest.raises(ValueError, match=r"^status 'over' is not one of running, done, failed$"):
        StageRecord(key=key, status="over", output="o")
