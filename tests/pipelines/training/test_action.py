import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from pipelines.artifacts import read_model, read_training_log
from pipelines.training import action
from pipelines.training.data import load_training_data

from .conftest import CLASSES


def _config(features, manifest, out, **overrides):
    settings = dict(
        model="lstm",
        features=features,
        manifest=manifest,
        out=str(out),
        epochs=6,
        batch_size=8,
        learning_rate=1e-2,
        progress=False,
    )
    return action.ActionTrainConfig(**{**settings, **overrides})


def _test_accuracy(model_uri, features_uri, manifest):
    """Top-1 of the loaded model on the test split, computed from the stored (raw) features."""
    loaded = read_model(model_uri)
    names = loaded.extra["class_names"]
    videos = load_training_data(features_uri, manifest, splits=("test",)).videos
    hits = 0
    with torch.no_grad():
        for video in videos:
            streams = {"rgb": video.features, "flow": video.flow}
            inputs = [torch.from_numpy(np.array(streams[s]))[None] for s in loaded.extra["streams"]]
            mask = torch.ones(inputs[0].shape[:2], dtype=torch.bool)  # (1, T)
            hits += names[int(loaded.model(*inputs, mask).logits.argmax())] == video.label
    return hits / len(videos)


def test_train_command_writes_a_complete_model_folder(tiny_features, tmp_path, vidpipe, capsys):
    features, manifest = tiny_features
    out = tmp_path / "models" / "lstm-1"
    code = vidpipe(
        "train", "--task", "action", "--model", "lstm", "--features", features,
        "--manifest", manifest, "--out", str(out), "--epochs", "30", "--batch-size", "8",
        "--lr", "0.01", "--no-progress",
    )  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "model.json",
        "model.safetensors",
        "state",
        "train_config.json",
        "training_log.jsonl",
    ]
    loaded = read_model(str(out))
    extra = loaded.extra
    assert loaded.task == "action" and loaded.meta["model"] == "lstm"
    assert extra["class_names"] == list(CLASSES)
    assert extra["inputs"] == "features" and extra["streams"] == ["rgb"]
    assert extra["feature_set_id"] == features.rsplit("/", 1)[-1] and extra["spatial"] is False
    assert extra["num_videos"] == {"train": 24, "val": 9, "test": 9}
    # The folder reproduces its logged test accuracy, and it learned the order-only task.
    logged = extra["test_metrics"]["top_1"]
    assert _test_accuracy(str(out), features, manifest) == pytest.approx(logged)
    assert logged >= 0.75
    log = read_training_log(str(out))
    assert [r["epoch"] for r in log] == list(range(len(log))) and {r["stage"] for r in log} == {
        "train"
    }
    assert {"train_loss", "val_loss", "val_accuracy", "seconds"} <= set(log[0])
    resolved = json.loads((out / "train_config.json").read_text())
    assert resolved["epochs"] == 30 and resolved["learning_rate"] == 0.01 and resolved["seed"] == 0
    assert f"model lstm at {out}" in capsys.readouterr().out


def test_training_is_deterministic(tiny_features, tmp_path):
    features, manifest = tiny_features
    for name in ("a", "b"):
        action.train(_config(features, manifest, tmp_path / name, temporal_jitter=0.6))
    first = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert first == (tmp_path / "b" / "model.safetensors").read_bytes()


class Interrupt(Exception):
    pass


def test_resume_gives_the_weights_of_an_uninterrupted_run(tiny_features, tmp_path):
    features, manifest = tiny_features
    config = _config(features, manifest, tmp_path / "whole", model="gru", patience=None)
    action.train(config)

    def stop_after_epoch_2(stage, state, record):
        if record["epoch"] == 2:
            raise Interrupt

    stopped = replace(config, out=str(tmp_path / "stopped"))
    with pytest.raises(Interrupt):
        action.train(stopped, on_epoch_end=stop_after_epoch_2)
    assert not (tmp_path / "stopped" / "model.json").exists()
    assert (tmp_path / "stopped" / "state" / "train.safetensors").exists()
    with pytest.raises(ValueError, match="holds the state of an unfinished run; pass --resume"):
        action.plan(stopped)
    action.train(replace(stopped, resume=True))
    whole = (tmp_path / "whole" / "model.safetensors").read_bytes()
    assert (tmp_path / "stopped" / "model.safetensors").read_bytes() == whole
    strip = lambda log: [{k: v for k, v in r.items() if k != "seconds"} for r in log]  # noqa: E731
    assert strip(read_training_log(str(tmp_path / "stopped"))) == strip(
        read_training_log(str(tmp_path / "whole"))
    )


@pytest.mark.parametrize(
    ("model", "options", "inputs", "streams"),
    [
        ("two_stream", {}, "rgb+flow", ["rgb", "flow"]),
        ("two_stream_attention_fusion", {}, "rgb+flow", ["rgb", "flow"]),
        ("convlstm", {"model_config": {"hidden_channels": 4}}, "maps", ["rgb"]),
        ("mean_pool", {"spatial": True}, "features", ["rgb"]),
        ("lstm_attention", {"stream": "flow"}, "features", ["flow"]),
        ("segments", {}, "features", ["rgb"]),
    ],
)
def test_every_feature_input_kind_trains(tiny_features, tmp_path, model, options, inputs, streams):
    features, manifest = tiny_features
    config = _config(features, manifest, tmp_path / model, model=model, epochs=2, **options)
    summary = action.train(config)
    loaded = read_model(summary.model_uri)
    assert loaded.extra["inputs"] == inputs and loaded.extra["streams"] == streams
    assert loaded.extra["spatial"] is (model == "convlstm" or options.get("spatial", False))
    pairs = summary.test_metrics["class_pairs"]
    assert pairs == []  # the tiny classes are not the synthetic benchmark's reversed pairs
    assert 0.0 <= summary.test_metrics["top_1"] <= 1.0


def test_multi_label_training_scores_map(tiny_features, tmp_path):
    features, manifest = tiny_features
    summary = action.train(_config(features, manifest, tmp_path / "ml", multi_label=True))
    assert read_model(summary.model_uri).config.multi_label is True
    assert 0.0 <= summary.test_metrics["mAP"] <= 1.0


def _out_args(features, manifest, out):
    return ["--features", features, "--manifest", manifest, "--out", str(out)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "lstmm"], "model 'lstmm' is not an action model; expected one of lstm, "),
        (["--model", "lstm", "--epochs", "0"], "epochs (0) must be > 0"),
        (["--model", "lstm", "--model-config", "[1]"], "--model-config must be a JSON object"),
        (["--model", "lstm", "--model-config", '{"hidden_dim": 0}'], "hidden_dim (0) must be > 0"),
        (["--model", "lstm", "--stream", "depth"], "stream 'depth' must be one of rgb, flow"),
        (["--model", "lstm", "--device", "cuda"], "device 'cuda' was asked for but torch sees"),
        (["--model", "lstm", "--resume"], "has no training state to resume from"),
        (["--model", "r3d", "--sampling", "uniform:4"], "give either features or sampling"),
    ],
)
def test_bad_flags_are_one_line_errors_and_write_nothing(
    tiny_features, tmp_path, vidpipe, capsys, argv, message
):
    features, manifest = tiny_features
    out = tmp_path / "never"
    code = vidpipe("train", "--task", "action", *argv, *_out_args(features, manifest, out))
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not out.exists()


def test_a_missing_feature_set_is_a_usage_error(tiny_features, tmp_path, vidpipe, capsys):
    features, manifest = tiny_features
    missing = f"{tmp_path}/features/nothing"
    args = ["train", "--task", "action", "--model", "lstm"]
    assert vidpipe(*args, *_out_args(missing, manifest, tmp_path / "m")) == 2
    assert capsys.readouterr().err == (
        f"vidpipe train: error: no feature set at {missing} (feature_set.json is missing)\n"
    )
    assert not (tmp_path / "m").exists()


def test_a_finished_folder_is_not_overwritten(tiny_features, tmp_path):
    features, manifest = tiny_features
    config = _config(features, manifest, tmp_path / "done", epochs=1)
    action.train(config)
    with pytest.raises(ValueError, match="already holds a trained model; choose another --out"):
        action.plan(config)
    with pytest.raises(ValueError, match="holds a finished model: there is nothing to resume"):
        action.plan(replace(config, resume=True))


def test_resume_refuses_other_settings(tiny_features, tmp_path):
    features, manifest = tiny_features
    config = _config(features, manifest, tmp_path / "x", epochs=3)

    def stop(stage, state, record):
        raise Interrupt

    with pytest.raises(Interrupt):
        action.train(config, on_epoch_end=stop)
    changed = replace(config, resume=True, learning_rate=0.5, seed=3)
    with pytest.raises(ValueError, match="with other settings: learning_rate, seed changed"):
        action.plan(changed)


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match=r"temporal_jitter \(1.5\) must be in \(0, 1\]"):
        action.ActionTrainConfig(
            model="lstm", manifest="m", out="o", features="f", temporal_jitter=1.5
        )
    with pytest.raises(ValueError, match="amp needs a CUDA device, got device 'cpu'"):
        action.ActionTrainConfig(model="lstm", manifest="m", out="o", features="f", amp=True)
    with pytest.raises(ValueError, match="multistage trains a small_cnn under a temporal model"):
        action.ActionTrainConfig(model="r3d", manifest="m", out="o", multistage=True)


@pytest.mark.parametrize(
    ("model", "standardize", "model_config"),
    [
        ("two_stream", ("rgb", "flow"), {}),
        ("two_stream_attention_fusion", ("flow",), {}),
        ("bilstm", ("rgb",), {}),
        ("gru", ("rgb",), {"projection_dim": 8}),
        ("mean_pool", ("rgb",), {}),
        ("segments", ("rgb",), {}),
    ],
)
def test_standardized_training_is_folded_into_a_model_of_raw_features(
    tiny_features, tmp_path, model, standardize, model_config
):
    features, manifest = tiny_features
    config = _config(
        features, manifest, tmp_path / model, model=model, epochs=3,
        standardize=standardize, model_config=model_config,
    )  # fmt: skip
    summary = action.train(config)
    assert summary.meta["extra"]["standardized_streams"] == list(standardize)
    logged = summary.test_metrics["top_1"]
    assert _test_accuracy(summary.model_uri, features, manifest) == pytest.approx(logged)


def test_standardize_errors(tiny_features, tmp_path):
    features, manifest = tiny_features
    with pytest.raises(
        ValueError, match="standardize applies to feature-vector models, not 'convlstm'"
    ):
        _config(features, manifest, tmp_path / "a", model="convlstm", standardize=("rgb",))
    with pytest.raises(
        ValueError, match="standardize names flow, which model 'lstm' does not read"
    ):
        action.plan(_config(features, manifest, tmp_path / "b", standardize=("flow",)))
    unfoldable = _config(
        features, manifest, tmp_path / "c", model="mean_pool", standardize=("rgb",),
        model_config={"pooling": "attention"},
    )  # fmt: skip
    with pytest.raises(ValueError, match="cannot be folded into a TemporalClassifierConfig"):
        action.plan(unfoldable)
