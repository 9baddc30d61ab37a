"""`vidpipe train --task vqa` on the tiny feature store of test_caption (colour and direction
questions whose answers the features hold)."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from hybrid_models.vocabulary import AnswerVocabulary, Vocabulary, pad_token_ids
from pipelines.artifacts import read_model, read_training_log
from pipelines.training import vqa
from pipelines.training.data import load_training_data
from schemas import manifest_table, read_manifest, write_manifest

from .test_caption import language_store  # noqa: F401  (the session fixture, shared)

SMALL = '{"hidden_dim": 16, "embed_dim": 8, "attention_dim": 8, "fusion_dim": 16}'


def _config(features, manifest, out, **overrides):
    settings = dict(
        model="vqa_attention",
        features=features,
        manifest=manifest,
        out=str(out),
        epochs=5,
        batch_size=16,
        learning_rate=2e-2,
        patience=None,
        progress=False,
        model_config=json.loads(SMALL),
    )
    return vqa.VQATrainConfig(**{**settings, **overrides})


def _answers_of_loaded_model(model_uri, features, manifest):
    """(question type, predicted, true answer) of every test question, from raw stored features."""
    loaded = read_model(model_uri)
    questions = Vocabulary.from_json(loaded.extra["question_vocabulary"])
    answers = AnswerVocabulary.from_json(loaded.extra["answers"])
    rows = []
    with torch.no_grad():
        for video in load_training_data(features, manifest, splits=("test",)).videos:
            frames = torch.from_numpy(np.concatenate([video.features, video.flow], axis=1))
            for q in video.questions:
                tokens = pad_token_ids([questions.encode(q["question"], bos_eos=False)])
                mask = torch.ones(1, len(frames), dtype=torch.bool)
                logits = loaded.model(frames[None], mask, tokens).logits  # (1, A)
                rows.append((q["question_type"], answers.decode(int(logits.argmax())), q["answer"]))
    return rows


def test_vqa_command_writes_a_complete_model_folder(
    language_store,  # noqa: F811
    tmp_path,
    vidpipe,
    capsys,
):
    features, manifest = language_store
    out = tmp_path / "models" / "vqa"
    code = vidpipe(
        "train", "--task", "vqa", "--model", "vqa_attention", "--features", features,
        "--manifest", manifest, "--out", str(out), "--epochs", "6", "--batch-size", "16",
        "--lr", "0.02", "--patience", "0", "--model-config", SMALL, "--no-progress",
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
    assert loaded.task == "vqa" and loaded.meta["model"] == "vqa_attention"
    assert extra["inputs"] == "features+question" and extra["streams"] == ["rgb", "flow"]
    assert AnswerVocabulary.from_json(extra["answers"]).answers == (
        "<unk>",
        "blue",
        "left",
        "red",
        "right",
    )
    assert extra["question_types"] == ["colour", "direction"]
    assert extra["num_questions"] == {"train": 64, "val": 16, "test": 16}
    metrics = extra["test_metrics"]
    # The folder reproduces its logged accuracy per type from raw features, and it learned both.
    answered = _answers_of_loaded_model(str(out), features, manifest)
    for question_type in ("colour", "direction"):
        hits = [p == a for t, p, a in answered if t == question_type]
        entry = metrics["per_question_type"][question_type]
        assert entry["num_correct"] == sum(hits) and entry["num_questions"] == len(hits) == 8
    assert metrics["accuracy"] == sum(p == a for _, p, a in answered) / 16
    assert metrics["accuracy"] >= 0.9
    log = read_training_log(str(out))
    assert [(r["stage"], r["epoch"]) for r in log] == [("train", e) for e in range(6)]
    assert {"val_accuracy", "val_accuracy_colour", "val_accuracy_direction"} <= set(log[0])
    printed = capsys.readouterr().out
    assert f"model vqa_attention at {out}" in printed and "  direction: " in printed


def test_resume_gives_the_weights_of_an_uninterrupted_run(language_store, tmp_path):  # noqa: F811
    features, manifest = language_store
    whole = vqa.train(_config(features, manifest, tmp_path / "whole"))

    class Interrupt(Exception):
        pass

    def stop_after_two(stage, state, record):
        if record["epoch"] == 1:
            raise Interrupt

    config = _config(features, manifest, tmp_path / "cut")
    with pytest.raises(Interrupt):
        vqa.train(config, on_epoch_end=stop_after_two)
    resumed = vqa.train(replace(config, resume=True))
    first, second = read_model(whole.model_uri).model, read_model(resumed.model_uri).model
    for (name, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert resumed.test_metrics == whole.test_metrics


def test_no_attention_baseline_reads_one_stream(language_store, tmp_path):  # noqa: F811
    features, manifest = language_store
    summary = vqa.train(
        _config(features, manifest, tmp_path / "mean", model="vqa_no_attention", streams=("rgb",))
    )
    loaded = read_model(summary.model_uri)
    assert loaded.config.video_encoder == "none" and loaded.config.feature_dim == 3
    assert loaded.extra["streams"] == ["rgb"]
    # The mean of the frames holds the colour but not the order: colour is learned.
    assert summary.test_metrics["per_question_type"]["colour"]["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--model", "caption_attention"],
            "model 'caption_attention' is not a VQA model; expected one of vqa_attention, "
            "vqa_no_attention, vqa_coattention, vqa_mfb",
        ),
        (["--epochs", "0"], "epochs (0) must be > 0"),
        (["--multi-label"], "--multi-label is for --task action, not --task vqa"),
        (["--temporal-jitter", "1.5"], "temporal_jitter (1.5) must be in [0, 1]"),
        (
            ["--model", "vqa_no_attention", "--model-config", '{"video_encoder": "lstm"}'],
            "attention 'none' averages the raw frame features and needs video_encoder 'none', "
            "got 'lstm'",
        ),
    ],
)
def test_bad_flags_exit_2_with_one_line_and_write_nothing(
    language_store,  # noqa: F811
    tmp_path,
    vidpipe,
    capsys,
    extra,
    message,
):
    features, manifest = language_store
    out = tmp_path / "models" / "never"
    code = vidpipe(
        "train", "--task", "vqa", "--model", "vqa_attention", "--features", features,
        "--manifest", manifest, "--out", str(out), *extra,
    )  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err == f"vidpipe train: error: {message}\n"
    assert not out.exists()


def test_a_manifest_without_questions_is_refused(language_store, tmp_path):  # noqa: F811
    features, manifest = language_store
    rows = [{**row, "questions": None} for row in read_manifest(manifest).to_pylist()]
    bare = tmp_path / "bare.parquet"
    write_manifest(manifest_table(rows), str(bare))
    with pytest.raises(
        ValueError, match="^the train split has no videos with questions and features$"
    ):
        vqa.plan(_config(features, str(bare), tmp_path / "out"))
