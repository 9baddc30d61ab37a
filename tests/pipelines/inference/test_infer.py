"""`vidpipe infer` end to end on Beam: a real feature store with broken parts, real model folders."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from hybrid_models.decoding import greedy_decode
from hybrid_models.sequences import pad_sequences
from hybrid_models.vocabulary import AnswerVocabulary, Vocabulary, pad_token_ids
from hybrid_models.zoo import build_model
from pipelines.artifacts import model_uri, read_model, write_model
from pipelines.inference import InferConfig, frame_permutation, read_parts, run_infer
from pipelines.inference.rows import class_names_of
from tests.pipelines.inference.stage2_data import (
    CLASSES,
    EMPTY_VIDEO,
    GARBAGE_PART,
    GOOD_VIDEOS,
    LOST_VIDEO,
    NAN_VIDEO,
    QUESTIONS,
    make_action_model,
    make_caption_model,
    make_feature_set,
    make_manifest,
    make_vqa_model,
    video_features,
    vidpipe,
)

ORDERS = ("original", "reversed", "shuffled")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("stage2")


@pytest.fixture(scope="module")
def features(root):
    return make_feature_set(root)


@pytest.fixture(scope="module")
def action_run(root, features):
    model = make_action_model(root)
    out = root / "predictions" / "action"
    argv = ["infer", "--features", features, "--model", model, "--out", str(out)]
    code = vidpipe([*argv, "--frame-orders", "shuffled,original,reversed", "--batch-size", "3"])
    return {"model": model, "out": out, "code": code}


def rows_by_key(out, *keys):
    table = read_parts(str(out))
    return {tuple(row[k] for k in keys): row for row in table.to_pylist()}


def padded(videos):
    return pad_sequences([torch.from_numpy(features) for features in videos])


def good_features(order):
    """The good videos' rgb features in `order`, as the generator made them (frames sorted)."""
    videos = {}
    for video_id, (_, num_frames) in GOOD_VIDEOS.items():
        features = video_features(video_id, num_frames, "rgb", seed=0).feature
        videos[video_id] = features[frame_permutation(video_id, num_frames, order)]
    return videos


def test_action_predictions_equal_the_model_run_directly(action_run):
    assert action_run["code"] == 1  # some videos became dead letters
    rows = rows_by_key(action_run["out"], "video_id", "frame_order")
    assert sorted(rows) == sorted((v, o) for v in GOOD_VIDEOS for o in ORDERS)
    model = read_model(action_run["model"]).model
    for order in ORDERS:
        videos = good_features(order)
        features, mask = padded(list(videos.values()))  # all ten videos in one padded batch
        with torch.no_grad():
            expected = model(features, mask).logits.softmax(dim=-1).numpy()
        for row_index, video_id in enumerate(videos):
            row = rows[(video_id, order)]
            np.testing.assert_allclose(row["scores"], expected[row_index], atol=1e-6, rtol=0)
            assert row["model_id"] == "lstm-att"
            assert row["num_frames"] == GOOD_VIDEOS[video_id][1]
            ranked = np.argsort(-expected[row_index], kind="stable")
            assert row["predicted_label"] == CLASSES[ranked[0]]
            assert row["top_k_labels"] == [CLASSES[i] for i in ranked[:4]]  # top 5 of 4 classes
            np.testing.assert_allclose(
                row["top_k_scores"], expected[row_index][ranked[:4]], atol=1e-6
            )
    (part,) = (action_run["out"]).glob("part-*.parquet")
    assert class_names_of(pq.read_schema(part)) == CLASSES


def test_every_failure_is_a_dead_letter_and_counted(action_run, features):
    errors = read_parts(str(action_run["out"]), errors=True).to_pylist()
    assert {row["stage"] for row in errors} == {"infer"}
    found = sorted((row["video_id"], row["error_type"], row["message"]) for row in errors)
    lost_part = next(
        row["video_id"]
        for row in errors
        if row["video_id"] not in (GARBAGE_PART, EMPTY_VIDEO, NAN_VIDEO)
    )
    not_parquet = "Parquet magic bytes not found in footer. Either the file is corrupted or this is not a parquet file."
    assert found == sorted(
        [
            (GARBAGE_PART, "ArrowInvalid", f"feature file {features}/{GARBAGE_PART} cannot be read, so its videos have no predictions: {not_parquet}"),
            (lost_part, "ArrowInvalid", f"feature file {features}/{lost_part} cannot be read, so its videos have no predictions: {not_parquet}"),
            (EMPTY_VIDEO, "ValueError", "video 'v-empty' has no frames in the feature set"),
            *[
                (NAN_VIDEO, "ValueError", f"inference on {order} frames failed: video 'v-nan': the model's scores are not finite (are its features?)")
                for order in ORDERS
            ],
        ]
    )  # fmt: skip
    assert LOST_VIDEO not in {row["video_id"] for row in errors}  # its file is unreadable
    summary = json.loads((action_run["out"] / "predictions.json").read_text())
    assert summary["num_predictions"] == 30 and summary["num_videos"] == 10
    assert summary["num_predictions_by_frame_order"] == {order: 10 for order in ORDERS}
    assert summary["num_dead_letters"] == 6
    assert summary["num_dead_letters_by_type"] == {"ArrowInvalid": 2, "ValueError": 4}
    assert summary["frame_orders"] == list(ORDERS) and summary["class_names"] == CLASSES
    assert summary["runner"] == "FnApiRunner" and summary["num_feature_parts"] == 4


def test_multi_processing_gives_the_same_rows(action_run, features, tmp_path, monkeypatch):
    """Beam worker processes unpickle every step: the same rows must come out."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the workers are new processes
    out = tmp_path / "multi"
    config = InferConfig(
        features=features,
        model=action_run["model"],
        out=str(out),
        frame_orders=ORDERS,
        batch_size=3,
    )
    summary = run_infer(
        config, ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    )
    assert summary["runner"] == "FnApiRunner" and summary["num_predictions"] == 30
    expected = rows_by_key(action_run["out"], "video_id", "frame_order")
    found = rows_by_key(out, "video_id", "frame_order")
    assert sorted(found) == sorted(expected)
    for key, row in found.items():
        # Batches may be made up differently; each video's numbers must not change.
        for name in ("scores", "top_k_scores"):
            np.testing.assert_allclose(row.pop(name), expected[key].pop(name), atol=1e-6, rtol=0)
        assert row == expected[key]
    errors = [
        read_parts(str(folder), errors=True).drop(["event_timestamp"]).to_pylist()
        for folder in (out, action_run["out"])
    ]
    assert sorted(errors[0], key=str) == sorted(errors[1], key=str)


def test_caption_and_vqa_rows_equal_direct_decoding(root, features, tmp_path):
    caption_model, vqa_model = make_caption_model(root), make_vqa_model(root)
    manifest = make_manifest(
        tmp_path / "manifest.parquet", questions={"v01": QUESTIONS, "v04": QUESTIONS[:1]}
    )
    base = ["--features", features, "--batch-size", "4"]
    assert (
        vidpipe(
            [
                "infer",
                *base,
                "--model",
                caption_model,
                "--out",
                str(tmp_path / "cap"),
                "--max-length",
                "5",
            ]
        )
        == 1
    )
    assert (
        vidpipe(
            [
                "infer",
                *base,
                "--model",
                vqa_model,
                "--out",
                str(tmp_path / "vqa"),
                "--manifest",
                manifest,
            ]
        )
        == 1
    )

    videos = good_features("original")
    features_batch, mask = padded(list(videos.values()))
    loaded = read_model(caption_model)
    vocabulary = Vocabulary.from_json(loaded.extra["vocabulary"])
    decoded = greedy_decode(loaded.model, features_batch, mask, 5)
    captions = rows_by_key(tmp_path / "cap", "video_id")
    assert sorted(v for (v,) in captions) == sorted(videos)
    for index, video_id in enumerate(videos):
        row = captions[(video_id,)]
        words = vocabulary.decode_words(decoded.tokens[index].tolist())
        assert row["tokens"] == words and row["caption"] == " ".join(words)
        assert row["frame_indices"] == list(range(0, 2 * GOOD_VIDEOS[video_id][1], 2))
        np.testing.assert_allclose(
            row["attention"],
            decoded.attention[index, : len(words), : len(row["frame_indices"])],
            atol=1e-6,
        )

    loaded = read_model(vqa_model)
    questions = Vocabulary.from_json(loaded.extra["question_vocabulary"])
    answers = AnswerVocabulary.from_json(loaded.extra["answers"])
    asked = [("v01", 0), ("v01", 1), ("v04", 0)]
    batch, batch_mask = padded([videos[v] for v, _ in asked])
    tokens = pad_token_ids(
        [questions.encode(QUESTIONS[i]["question"], bos_eos=False) for _, i in asked]
    )
    with torch.no_grad():
        output = loaded.model(batch, batch_mask, tokens)
    probabilities = output.logits.softmax(dim=-1)
    rows = rows_by_key(tmp_path / "vqa", "video_id", "question_index")
    assert sorted(rows) == sorted(asked)
    for index, key in enumerate(asked):
        row = rows[key]
        assert row["answer"] == answers.decode(int(probabilities[index].argmax()))
        assert row["score"] == pytest.approx(float(probabilities[index].max()), abs=1e-6)
        assert row["question"] == QUESTIONS[key[1]]["question"]
        assert row["question_type"] == QUESTIONS[key[1]]["question_type"]
        np.testing.assert_allclose(
            row["attention"], output.attention[index, : len(row["frame_indices"])], atol=1e-6
        )


def test_bad_arguments_are_one_line_usage_errors(root, features, action_run, capsys, tmp_path):
    model = action_run["model"]
    wide = make_action_model(root, "wide", feature_dim=5)

    def error_of(*argv):
        out = str(tmp_path / "out")
        assert (
            vidpipe(["infer", "--features", features, "--model", model, "--out", out, *argv]) == 2
        )
        return capsys.readouterr().err

    assert error_of("--frame-orders", "original,sideways") == (
        "vidpipe infer: error: frame orders ['sideways'] are not among original, reversed, shuffled\n"
    )
    assert error_of("--frame-orders", "reversed") == (
        "vidpipe infer: error: frame orders ['reversed'] must include 'original'\n"
    )
    assert error_of("--model", wide) == (
        "vidpipe infer: error: model 'wide' reads 5-dimensional rgb features, "
        "feature set small_cnn-e5afcf94f41a stores 4 per stream\n"
    )
    assert error_of("--model", str(root / "models" / "nothing")) == (
        f"vidpipe infer: error: no trained model at {root}/models/nothing (model.json is missing)\n"
    )
    assert error_of("--out", str(action_run["out"])) == (
        f"vidpipe infer: error: {action_run['out']} already holds predictions; "
        "pass --overwrite to replace them\n"
    )
    nameless = build_model("gru", feature_dim=4, num_classes=4, hidden_dim=4)
    write_model(model_uri(str(root), "nameless"), nameless, nameless.config, name="gru", extra={})
    assert error_of("--model", model_uri(str(root), "nameless")) == (
        "vidpipe infer: error: model 'nameless' lacks class_names in model.json's extra, "
        "which its action predictions are decoded with\n"
    )
    assert error_of("--model", make_vqa_model(root, "vqa-no-manifest")) == (
        "vidpipe infer: error: model 'vqa-no-manifest' answers questions: pass --manifest\n"
    )
    assert error_of("--out", "memory://predictions/x").startswith(
        "vidpipe infer: error: memory://predictions/x: Beam has no filesystem for this location"
    )


def test_a_captioner_of_two_streams_reads_rgb_and_flow_side_by_side(tmp_path):
    root = tmp_path / "two-streams"
    features = make_feature_set(root, streams=("rgb", "flow"))
    model = make_caption_model(root, "cap-rgb-flow", streams=("rgb", "flow"))
    out = tmp_path / "cap"
    argv = ["infer", "--features", features, "--model", model, "--out", str(out)]
    assert vidpipe([*argv, "--max-length", "5"]) == 1  # the broken inputs are dead letters

    videos = {
        video_id: np.concatenate(
            [video_features(video_id, num_frames, s, seed=0).feature for s in ("rgb", "flow")],
            axis=-1,
        )  # (T, 2·D)
        for video_id, (_, num_frames) in GOOD_VIDEOS.items()
    }
    batch, mask = padded(list(videos.values()))
    loaded = read_model(model)
    decoded = greedy_decode(loaded.model, batch, mask, 5)
    words_of = Vocabulary.from_json(loaded.extra["vocabulary"]).decode_words
    captions = rows_by_key(out, "video_id")
    assert sorted(v for (v,) in captions) == sorted(videos)
    for index, video_id in enumerate(videos):
        assert captions[(video_id,)]["tokens"] == words_of(decoded.tokens[index].tolist())
