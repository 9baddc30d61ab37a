"""`vidpipe train --task caption` on a tiny feature store whose captions follow from its features."""

import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from hybrid_models import zoo
from hybrid_models.decoding import greedy_decode
from hybrid_models.vocabulary import Vocabulary
from pipelines.artifacts import read_model, read_training_log
from pipelines.metrics.captioning import caption_scores
from pipelines.training import caption
from pipelines.training.caption import (
    FeatureScaling,
    fold_scaling,
    parse_streams,
    resolve_streams,
    scst_batches,
)
from pipelines.training.data import load_training_data
from schemas import FeatureSetSpec, manifest_table, read_manifest, write_manifest
from workers import store

FEATURE_DIM = 3
VIDEOS_PER_KIND = {"train": 8, "val": 2, "test": 2}
COLOURS = ("red", "blue")
DIRECTIONS = ("left", "right")
# Two wordings per video, as the synthetic dataset words one scene several ways.
CAPTIONS = ("a {colour} shape moves {direction}", "the {colour} shape goes {direction}")
QUESTIONS = (
    ("what colour is the shape?", "{colour}", "colour"),
    ("which way does the shape move?", "{direction}", "direction"),
)
SMALL = '{"hidden_dim": 24, "embed_dim": 12, "attention_dim": 12}'


def _features(colour, direction, num_frames, rng):
    """rgb (T, D): dim 0 ramps with the direction (order only), dim 1 names the colour."""
    ramp = np.linspace(-1.0, 1.0, num_frames) * (1 if direction == "right" else -1)
    rgb = rng.normal(0.0, 0.05, (num_frames, FEATURE_DIM))
    rgb[:, 0] += ramp
    rgb[:, 1] += 3.0 if colour == "red" else -3.0  # unlike rgb's scale, as stored streams differ
    return rgb.astype(np.float32)


@pytest.fixture(scope="session")
def language_store(tmp_path_factory):
    """(feature set uri, manifest path): 48 videos of 3–6 frames (rgb, flow) with captions and
    questions whose answers the features hold (colour: a constant, direction: the order)."""
    root = tmp_path_factory.mktemp("language-store")
    spec = FeatureSetSpec(
        backbone="small_cnn", weights="none", weights_digest="init-seed:0", input_size=32,
        resize_size=32, mean=(0.5,) * 3, std=(0.25,) * 3, sampling="uniform:6",
        streams=("rgb", "flow"), flow="farneback", decoder="auto", rotation="apply",
        dtype="float32", precision="fp32", spatial_map=False,
    )  # fmt: skip
    uri = store.feature_set_uri(str(root), spec.feature_set_id)
    record = store.create_or_open_feature_set(
        uri, spec, feature_dim=FEATURE_DIM, spatial_shape=None
    )
    rng = np.random.default_rng(0)
    rows, videos = [], []
    for split, count in VIDEOS_PER_KIND.items():
        for colour in COLOURS:
            for direction in DIRECTIONS:
                for number in range(count):
                    video_id = f"{split}-{colour}-{direction}-{number}"
                    num_frames = int(rng.integers(3, 7))
                    rgb = _features(colour, direction, num_frames, rng)
                    flow = np.diff(rgb, axis=0, prepend=rgb[:1]) * 10
                    for stream, feature in (("rgb", rgb), ("flow", flow)):
                        videos.append(
                            store.VideoFeatures(
                                video_id=video_id, stream=stream, decoder="pyav",
                                frame_index=np.arange(num_frames, dtype=np.int32),
                                timestamp_s=np.arange(num_frames) / 12.0, feature=feature,
                                spatial_map=None,
                            )
                        )  # fmt: skip
                    words = {"colour": colour, "direction": direction}
                    rows.append(
                        {
                            "video_id": video_id,
                            "uri": f"{video_id}.mp4",
                            "split": split,
                            "label": f"move_{direction}",
                            "captions": [t.format(**words) for t in CAPTIONS],
                            "questions": [
                                {"question": q, "answer": a.format(**words), "question_type": t}
                                for q, a, t in QUESTIONS
                            ],
                        }
                    )
    table = store.features_table(
        videos,
        feature_dim=FEATURE_DIM,
        dtype="float32",
        spatial_shape=None,
        event_timestamp=record["created_at"],
    )
    store.commit_part(uri, table, [r["video_id"] for r in rows], lineage=record)
    manifest = root / "manifest.parquet"
    write_manifest(manifest_table(rows), str(manifest))
    return uri, str(manifest)


@pytest.fixture
def no_java(monkeypatch):
    """PATH without java: pycocoevalcap's Java parts (PTB tokenizer, METEOR's ~10 s JVM start)
    are then reported unavailable, the path a machine without Java takes."""
    kept = [
        folder
        for folder in os.environ["PATH"].split(os.pathsep)
        if folder and not os.path.exists(os.path.join(folder, "java"))
    ]
    monkeypatch.setenv("PATH", os.pathsep.join(kept))
    assert shutil.which("java") is None


def _config(features, manifest, out, **overrides):
    settings = dict(
        model="caption_attention",
        features=features,
        manifest=manifest,
        out=str(out),
        epochs=6,
        batch_size=16,
        learning_rate=2e-2,
        patience=None,
        progress=False,
        model_config=json.loads(SMALL),
        beam_size=2,
    )
    return caption.CaptionTrainConfig(**{**settings, **overrides})


def _raw_test_videos(features, manifest):
    videos = load_training_data(features, manifest, splits=("test",)).videos
    return [
        (v, torch.from_numpy(np.concatenate([v.features, v.flow], axis=1))[None])  # (1, T, D)
        for v in videos
    ]


def test_caption_command_writes_a_complete_model_folder(
    language_store, tmp_path, vidpipe, capsys, no_java
):
    features, manifest = language_store
    out = tmp_path / "models" / "captioner"
    code = vidpipe(
        "train", "--task", "caption", "--model", "caption_attention", "--features", features,
        "--manifest", manifest, "--out", str(out), "--epochs", "8", "--batch-size", "16",
        "--lr", "0.02", "--patience", "0", "--model-config", SMALL, "--scst-epochs", "2",
        "--scst-lr", "1e-3", "--scst-samples", "2", "--beam-size", "2", "--no-progress",
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
    assert loaded.task == "caption" and loaded.meta["model"] == "caption_attention"
    assert extra["inputs"] == "features+tokens" and extra["streams"] == ["rgb", "flow"]
    assert extra["feature_set_id"] == features.rsplit("/", 1)[-1]
    vocabulary = Vocabulary.from_json(extra["vocabulary"])
    assert set(vocabulary.tokens[4:]) == {
        "a", "the", "shape", "moves", "goes", "red", "blue", "left", "right"
    }  # fmt: skip
    assert extra["max_length"] == 8 and extra["beam_size"] == 2 and extra["length_penalty"] == 0
    assert extra["num_videos"] == {"train": 32, "val": 8, "test": 8}
    metrics = extra["test_metrics"]
    assert set(metrics) == {"num_videos", "greedy", "beam", "cross_entropy"}
    assert metrics["greedy"]["tokenizer"] == "simple" and metrics["beam"]["beam_size"] == 2
    assert metrics["greedy"]["METEOR"]["available"] is False
    # The model folder takes raw stored features (scaling folded in) and reproduces its score.
    captions = {}
    for video, frames in _raw_test_videos(features, manifest):
        mask = torch.ones(frames.shape[:2], dtype=torch.bool)
        tokens = greedy_decode(loaded.model, frames, mask, extra["max_length"]).tokens[0]
        captions[video.video_id] = vocabulary.decode(tokens.tolist())
    references = {v.video_id: list(v.captions) for v, _ in _raw_test_videos(features, manifest)}
    again = caption_scores(references, captions, spice=False)
    assert again["CIDEr-D"] == pytest.approx(metrics["greedy"]["CIDEr-D"])
    assert again["BLEU-4"] == pytest.approx(metrics["greedy"]["BLEU-4"])
    assert metrics["greedy"]["BLEU-1"] >= 0.9  # it learned colour and direction
    log = read_training_log(str(out))
    assert [(r["stage"], r["epoch"]) for r in log] == [
        *(("cross_entropy", e) for e in range(8)),
        ("scst", 0),
        ("scst", 1),
    ]
    assert {"train_token_cross_entropy", "train_attention_penalty", "val_cider_d"} <= set(log[0])
    assert {"train_reward_sample", "train_reward_greedy", "val_cider_d"} <= set(log[-1])
    assert set(extra["stages"]) == {
        "cross_entropy_best_epoch",
        "cross_entropy_best_val_cider_d",
        "scst_best_epoch",
        "scst_best_val_cider_d",
        "scst_kept",
    }
    resolved = json.loads((out / "train_config.json").read_text())
    assert resolved["scst_epochs"] == 2 and resolved["streams"] is None and resolved["curriculum"]
    printed = capsys.readouterr().out
    assert f"model caption_attention at {out}" in printed and "before SCST" in printed


def _timeless(log):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in log]


def test_resume_gives_the_weights_of_an_uninterrupted_run(language_store, tmp_path, no_java):
    features, manifest = language_store
    settings = dict(epochs=3, scst_epochs=2, scst_samples=2, scst_learning_rate=1e-3)
    whole = caption.train(_config(features, manifest, tmp_path / "whole", **settings))

    class Interrupt(Exception):
        pass

    def stop_in_scst(stage, state, record):
        if stage == "scst":
            raise Interrupt

    config = _config(features, manifest, tmp_path / "cut", **settings)
    with pytest.raises(Interrupt):
        caption.train(config, on_epoch_end=stop_in_scst)
    assert not (tmp_path / "cut" / "model.json").exists()
    resumed = caption.train(replace(config, resume=True))
    first, second = read_model(whole.model_uri).model, read_model(resumed.model_uri).model
    for (name, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert resumed.test_metrics == whole.test_metrics
    assert _timeless(read_training_log(resumed.model_uri)) == _timeless(
        read_training_log(whole.model_uri)
    )


def test_multitask_captioner_learns_the_action_too(language_store, tmp_path, no_java):
    features, manifest = language_store
    config = _config(
        features, manifest, tmp_path / "multi", model="caption_multitask", epochs=4,
        multitask_action_weight=0.7, streams=("rgb",),
    )  # fmt: skip
    summary = caption.train(config)
    loaded = read_model(summary.model_uri)
    assert loaded.config.action_weight == 0.7 and loaded.config.num_actions == 2
    assert loaded.extra["class_names"] == ["move_left", "move_right"]
    assert loaded.extra["streams"] == ["rgb"] and loaded.config.feature_dim == FEATURE_DIM
    log = read_training_log(summary.model_uri)
    assert {"train_action_cross_entropy", "train_caption_token_cross_entropy"} <= set(log[0])
    assert "cross_entropy" not in summary.test_metrics  # no SCST, no before/after


@pytest.mark.parametrize(
    "name",
    [
        *(n for n, e in zoo.MODELS.items() if e.task == "caption"),
        *(n for n, e in zoo.MODELS.items() if e.task == "vqa"),
    ],
)
def test_folded_scaling_takes_raw_features(name):
    """fold_scaling(model)(x) == model((x - mean) / std) for every caption and VQA model."""
    entry = zoo.MODELS[name]
    rng = torch.Generator().manual_seed(0)
    dim = 5
    fields = {"feature_dim": dim}
    if entry.task == "caption":
        fields |= {"vocab_size": 9, "hidden_dim": 8, "embed_dim": 4, "attention_dim": 4}
        if name == "caption_multitask":
            fields["num_actions"] = 3
    else:
        fields |= {"question_vocab_size": 9, "num_answers": 4, "hidden_dim": 8, "embed_dim": 4}
    model = zoo.build_model(name, seed=1, **fields).eval()
    raw = torch.randn(2, 7, dim, generator=rng) * 4 + 10  # (B, T, D), far from standardised
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    scaling = FeatureScaling(
        mean=torch.full((dim,), 10.0) + torch.arange(dim), std=torch.rand(dim, generator=rng) + 0.5
    )
    tokens = torch.tensor([[1, 5, 6, 2], [1, 7, 2, 0]])
    before = {key: value.clone() for key, value in model.state_dict().items()}
    folded = fold_scaling(model, scaling)
    with torch.no_grad():
        expected = model(scaling.apply(raw), mask, tokens)
        got = folded(raw, mask, tokens)
    if name == "caption_multitask":
        got, expected = got.caption, expected.caption
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-4, atol=1e-4)
    for key, value in model.state_dict().items():  # the original is left as it was
        assert torch.equal(value, before[key]), key


def test_feature_scaling_centres_each_dimension_and_scales_each_stream():
    videos = [
        torch.tensor([[1.0, 5.0, 0.0, 7.0], [3.0, 5.0, 2.0, 7.0]]),
        torch.tensor([[5.0, 5.0, 4.0, 7.0]]),
    ]
    # Streams of 2, 1 and 1 dimensions: population variances 8/3, 0 | 8/3 | 0.
    scaling = FeatureScaling.of(videos, widths=[2, 1, 1])
    torch.testing.assert_close(scaling.mean, torch.tensor([3.0, 5.0, 2.0, 7.0]))
    # One std per stream, the RMS of its dimensions' stds: sqrt((8/3 + 0) / 2); a constant
    # stream is left unscaled; a near-constant dimension is not blown up.
    expected = [(4 / 3) ** 0.5, (4 / 3) ** 0.5, (8 / 3) ** 0.5, 1.0]
    torch.testing.assert_close(scaling.std, torch.tensor(expected))
    whole = FeatureScaling.of(videos)  # one stream by default
    torch.testing.assert_close(whole.std, torch.full((4,), (16 / 3 / 4) ** 0.5))
    with pytest.raises(ValueError, match="^videos is empty$"):
        FeatureScaling.of([])
    with pytest.raises(ValueError, match=r"stream widths \[2, 1\] must be > 0 and add up to 4"):
        FeatureScaling.of(videos, widths=[2, 1])


def test_scst_batches_are_a_function_of_seed_and_epoch(language_store, no_java, tmp_path):
    features, manifest = language_store
    plan = caption.plan(_config(features, manifest, tmp_path / "unused"))
    videos = plan.train_videos
    first = scst_batches(videos, batch_size=8, seed=3, epoch=1)
    again = scst_batches(videos, batch_size=8, seed=3, epoch=1)
    other = scst_batches(videos, batch_size=8, seed=3, epoch=2)
    assert [b.seed for b in first] == [b.seed for b in again]
    assert all(
        torch.equal(a.batch.tokens, b.batch.tokens) for a, b in zip(first, again, strict=True)
    )
    assert [b.seed for b in first] != [b.seed for b in other]
    assert len({b.seed for b in first}) == len(first) == 4
    assert not (tmp_path / "unused").exists()  # planning writes nothing


def test_streams():
    assert parse_streams(None) is None and parse_streams("rgb, flow") == ("rgb", "flow")
    record = {"feature_set_id": "fs", "spec": {"streams": ["rgb", "flow"]}}
    assert resolve_streams(record, None) == ("rgb", "flow")
    assert resolve_streams(record, ("flow", "rgb")) == ("rgb", "flow")  # the set's order
    with pytest.raises(ValueError, match=r"^feature set fs has no flow stream \(it has rgb\)$"):
        resolve_streams({"feature_set_id": "fs", "spec": {"streams": ["rgb"]}}, ("flow",))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--model", "lstm"],
            "model 'lstm' is not a captioning model; expected one of caption_attention, "
            "caption_adaptive, caption_hierarchical, caption_no_attention, caption_multitask",
        ),
        (["--beam-size", "0"], "beam_size (0) must be > 0"),
        (
            ["--scst-baseline", "mean", "--scst-samples", "1"],
            "scst_baseline 'mean' needs scst_samples >= 2, got 1",
        ),
        (
            ["--temporal-jitter", "0.5"],
            "--temporal-jitter is for --task action, not --task caption",
        ),
        (
            ["--streams", "rgb,depth"],
            "streams ['rgb', 'depth'] must be distinct names among rgb, flow",
        ),
        (["--spatial"], "--spatial is for --task action, not --task caption"),
        (
            ["--stream", "flow"],
            "--stream is for --task action, not --task caption; caption and vqa read --streams",
        ),
        (["--model-config", "[1]"], "--model-config must be a JSON object, got '[1]'"),
        (["--model-config", '{"hidden_dim": 0}'], "hidden_dim (0) must be > 0"),
        (["--features", "MISSING"], "no feature set at MISSING (feature_set.json is missing)"),
    ],
)
def test_bad_flags_exit_2_with_one_line_and_write_nothing(
    language_store, tmp_path, vidpipe, capsys, extra, message
):
    features, manifest = language_store
    out = tmp_path / "models" / "never"
    missing = str(tmp_path / "missing")
    code = vidpipe(
        "train", "--task", "caption", "--model", "caption_attention", "--features", features,
        "--manifest", manifest, "--out", str(out), *(missing if a == "MISSING" else a for a in extra),
    )  # fmt: skip
    assert code == 2
    assert (
        capsys.readouterr().err == f"vidpipe train: error: {message.replace('MISSING', missing)}\n"
    )
    assert not out.exists()


def test_a_manifest_without_captions_is_refused(language_store, tmp_path):
    features, manifest = language_store
    rows = [{**row, "captions": None} for row in read_manifest(manifest).to_pylist()]
    bare = tmp_path / "bare.parquet"
    write_manifest(manifest_table(rows), str(bare))
    with pytest.raises(
        ValueError, match="^the train split has no videos with captions and features$"
    ):
        caption.plan(_config(features, str(bare), tmp_path / "out"))
