"""`vidpipe evaluate` end to end on Beam: action predictions from `vidpipe infer` (with dead
letters), caption and VQA predictions written by hand, one report checked against direct
computation: scikit-learn for AP and confusion, pycocoevalcap called directly for captions."""

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
from sklearn.metrics import average_precision_score, confusion_matrix

from pipelines.inference import read_parts
from pipelines.report import read_report, validate_report
from tests.pipelines.inference.stage2_data import (
    CLASSES,
    GOOD_VIDEOS,
    make_action_model,
    make_caption_model,
    make_feature_set,
    make_manifest,
    make_videos,
    make_vqa_model,
    vidpipe,
    write_predictions,
)

REFERENCES = {
    "v00": ["a red circle moves left", "the red circle slides to the left"],
    "v01": ["a blue square moves right", "a blue box goes right"],
    "v02": ["a green triangle grows", "the green triangle gets bigger"],
    "v03": ["a yellow circle shrinks", "a small yellow circle shrinks"],
    "v05": ["a red square moves right"],  # no caption predicted: missing
}
HYPOTHESES = {
    "v00": "a red circle moves left",
    "v01": "a red square moves right",  # wrong colour
    "v02": "a green triangle triangle grows",  # repetition
    "v03": "a yellow square shrinks",  # a square that is not there
    "v04": "a white circle",  # v04 has no references: not scored
}
QUESTIONS = {
    "v00": [
        {"question": "what colour is the shape?", "answer": "red", "question_type": "colour"},
        {"question": "which way does it move?", "answer": "left", "question_type": "direction"},
    ],
    "v01": [
        {"question": "what colour is the shape?", "answer": "blue", "question_type": "colour"},
        {"question": "which way does it move?", "answer": "right", "question_type": "direction"},
    ],
    "v02": [
        {"question": "what colour is the shape?", "answer": "green", "question_type": "colour"}
    ],
}
ANSWERS = {("v00", 0): "red", ("v00", 1): "right", ("v01", 0): "Blue."}  # v01's 2nd unanswered
MULTI_LABELS = {"v00": ["move_left", "grow"], "v01": ["move_right"], "v02": [], "v03": ["shrink"]}


def caption_rows():
    rows = []
    for video_id, hypothesis in HYPOTHESES.items():
        tokens = hypothesis.split()
        num_frames = GOOD_VIDEOS[video_id][1]
        attention = np.full((len(tokens), num_frames), 1.0 / num_frames, np.float32)
        attention[:, 0] += 0.5
        rows.append({
            "video_id": video_id, "num_frames": num_frames, "caption": hypothesis, "tokens": tokens,
            "frame_indices": list(range(0, 2 * num_frames, 2)), "attention": attention.tolist(),
        })  # fmt: skip
    return rows


def answer_rows():
    rows = []
    for (video_id, index), answer in ANSWERS.items():
        num_frames = GOOD_VIDEOS[video_id][1]
        question = QUESTIONS[video_id][index]
        rows.append({
            "video_id": video_id, "num_frames": num_frames, "question_index": index,
            "question": question["question"], "question_type": question["question_type"],
            "answer": answer, "score": 0.75, "frame_indices": list(range(0, 2 * num_frames, 2)),
            "attention": [1.0 / num_frames] * num_frames,
        })  # fmt: skip
    return rows


def direct_caption_scores():
    """pycocoevalcap itself on the same references and hypotheses (PTB-tokenized, as we do)."""
    scored = sorted(REFERENCES.keys() & HYPOTHESES.keys())
    tokenized = PTBTokenizer().tokenize({
        **{("ref", v): [{"caption": ref} for ref in REFERENCES[v]] for v in scored},
        **{("hyp", v): [{"caption": HYPOTHESES[v]}] for v in scored},
    })  # fmt: skip
    gts = {v: tokenized[("ref", v)] for v in scored}
    res = {v: tokenized[("hyp", v)] for v in scored}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return {
        **{f"BLEU-{n + 1}": value for n, value in enumerate(bleu)},
        "METEOR": Meteor().compute_score(gts, res)[0],
        "ROUGE-L": Rouge().compute_score(gts, res)[0],
        "CIDEr-D": Cider().compute_score(gts, res)[0],
    }


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    features = make_feature_set(root)
    model = make_action_model(root)
    action = root / "predictions" / "action"
    argv = ["infer", "--features", features, "--model", model, "--out", str(action)]
    assert vidpipe([*argv, "--frame-orders", "original,reversed,shuffled"]) == 1
    make_caption_model(root, "cap-att")
    make_vqa_model(root, "vqa-att")
    caption = write_predictions(
        root / "predictions" / "caption", "caption", caption_rows(), model_id="cap-att"
    )
    vqa = write_predictions(root / "predictions" / "vqa", "vqa", answer_rows(), model_id="vqa-att")
    (root / "models" / "ablations.json").write_text(
        json.dumps({"columns": ["model", "top1"], "rows": [{"model": "lstm", "top1": 0.5}]})
    )
    names = make_videos(root / "data" / "videos", ["v00", "v01", "v02"])  # the ones drawn
    manifest = make_manifest(
        root / "data" / "manifest.parquet",
        video_names={video_id: f"videos/{name}" for video_id, name in names.items()},
        labels=MULTI_LABELS,
        captions=REFERENCES,
        questions=QUESTIONS,
    )
    out = root / "reports" / "eval-1"
    # METEOR's JVM takes seconds to start: the direct computation runs beside the pipeline.
    with ThreadPoolExecutor(1) as pool:
        direct = pool.submit(direct_caption_scores)
        code = vidpipe([
            "evaluate", "--predictions", f"{action},{caption},{vqa}", "--manifest", manifest,
            "--out", str(out), "--objects", "synthetic", "--bootstrap-resamples", "200",
        ])  # fmt: skip
        expected = direct.result()
    assert code == 0
    return {
        "report": read_report(str(out)), "out": out, "action": action,
        "direct_caption_scores": expected,
    }  # fmt: skip


def test_the_report_is_valid_and_counts_every_video(evaluated):
    report = evaluated["report"]
    assert validate_report(report) == []
    assert report["report_id"] == "eval-1"
    assert (evaluated["out"] / "report.html").stat().st_size > 0
    counts = report["counts"]
    # 14 test videos: ten good, the empty, the NaN and the lost one, and one never extracted.
    assert counts["videos_in_manifest"] == 14
    assert counts["videos_evaluated"] == {"action": 10, "caption": 4, "vqa": 2}
    assert counts["missing_predictions"] == {"action": 4, "caption": 1, "vqa": 1}
    # Both unreadable files, the video without frames and the NaN video in three orders.
    assert counts["dead_letters"] == 6
    assert [e["video_id"] for e in counts["dead_letter_examples"]][2:] == [
        "v-empty",
        "v-nan",
        "v-nan",
    ]
    assert report["inputs"]["feature_set"]["feature_set_id"] == "small_cnn-e5afcf94f41a"
    assert set(report["inputs"]["models"]) == {"lstm-att", "cap-att", "vqa-att"}
    assert report["training"]["lstm-att"] == [
        {"epoch": 0, "train_loss": 1.4, "val_top1": 0.25},
        {"epoch": 1, "train_loss": None, "val_top1": 0.5},
    ]
    assert report["ablations"] == {
        "columns": ["model", "top1"],
        "rows": [{"model": "lstm", "top1": 0.5}],
    }


def test_action_metrics_match_scikit_learn(evaluated):
    action = evaluated["report"]["action"]
    rows = read_parts(str(evaluated["action"])).to_pylist()
    by_order = {(r["video_id"], r["frame_order"]): r for r in rows}
    video_ids = sorted(GOOD_VIDEOS)
    labels = np.array([CLASSES.index(GOOD_VIDEOS[v][0]) for v in video_ids])
    scores = np.array([by_order[(v, "original")]["scores"] for v in video_ids], np.float64)
    predicted = scores.argmax(axis=1)
    assert action["num_videos"] == 10
    assert action["metrics"]["top1"] == pytest.approx(np.mean(predicted == labels), abs=1e-12)
    assert action["metrics"]["top5"] == 1.0  # four classes
    for index, name in enumerate(CLASSES):
        expected = average_precision_score(labels == index, scores[:, index])
        assert action["per_class_ap"][name] == pytest.approx(expected, abs=1e-6)
    expected_map = np.mean([average_precision_score(labels == k, scores[:, k]) for k in range(4)])
    assert action["metrics"]["mAP"] == pytest.approx(expected_map, abs=1e-6)
    assert (
        action["confusion_matrix"] == confusion_matrix(labels, predicted, labels=range(4)).tolist()
    )
    recalls = [np.mean(predicted[labels == k] == k) for k in range(4)]
    assert action["metrics"]["mean_class_accuracy"] == pytest.approx(np.mean(recalls), abs=1e-12)
    for name in ("top1", "mAP", "mean_class_accuracy"):
        low, high = action["ci95"][name]
        assert 0.0 <= low <= high <= 1.0
    # Two-way accuracy on a time-reversed pair: does the true class outscore its partner?
    for pair in action["pairs"]:
        first, second = (CLASSES.index(name) for name in pair["pair"].split("/"))
        rows_in = [i for i in range(10) if labels[i] in (first, second)]
        own = [scores[i, labels[i]] for i in rows_in]
        other = [scores[i, first if labels[i] == second else second] for i in rows_in]
        assert pair["num_videos"] == len(rows_in)
        assert pair["accuracy"] == pytest.approx(np.mean(np.greater(own, other)), abs=1e-12)
    order = action["temporal_order"]
    for frame_order in ("original", "reversed", "shuffled"):
        hits = [
            by_order[(v, frame_order)]["predicted_label"] == GOOD_VIDEOS[v][0] for v in video_ids
        ]
        assert order["accuracy"][frame_order] == pytest.approx(np.mean(hits), abs=1e-12)
    changed = [
        by_order[(v, "reversed")]["predicted_label"] != by_order[(v, "original")]["predicted_label"]
        for v in video_ids
    ]
    assert order["changed_under_reversal"] == pytest.approx(np.mean(changed), abs=1e-12)
    multi = action["multi_label"]
    positives = {v: MULTI_LABELS[v] for v in video_ids if v in MULTI_LABELS}
    ids = sorted(positives)
    multi_scores = np.array([by_order[(v, "original")]["scores"] for v in ids], np.float64)
    expected = {}
    for index, name in enumerate(CLASSES):
        truth = np.array([name in positives[v] for v in ids])
        if truth.any():
            expected[name] = average_precision_score(truth, multi_scores[:, index])
    assert multi["per_class_ap"] == pytest.approx(expected, abs=1e-6)
    assert multi["mAP"] == pytest.approx(np.mean(list(expected.values())), abs=1e-6)
    assert multi["excluded_classes"] == [name for name in CLASSES if name not in expected]
    for curve in action["pr_curves"].values():
        assert (
            curve["precision"][0] == 1.0
            and curve["recall"][0] == 0.0
            and curve["recall"][-1] == 1.0
        )


def test_caption_metrics_match_pycocoevalcap_called_directly(evaluated):
    caption, expected = evaluated["report"]["caption"], evaluated["direct_caption_scores"]
    assert caption["num_videos"] == 4
    for name, value in expected.items():
        assert caption["metrics"][name] == pytest.approx(value, abs=1e-6), name
    assert caption["metrics"]["SPICE"]["available"] is False
    assert [s["video_id"] for s in caption["samples"]] == ["v00", "v01", "v02", "v03"]
    assert caption["samples"][0]["attention"][0][0] == pytest.approx(0.5 + 1 / 3, abs=1e-6)
    analysis = caption["error_analysis"]
    assert analysis["hallucinated_objects"]["count"] == 1
    assert analysis["hallucinated_objects"]["examples"][0]["video_id"] == "v03"
    assert analysis["wrong_attributes"]["examples"][0]["wrong_attributes"] == [
        {"object": "square", "attribute": "red"}
    ]
    assert analysis["repetition"]["examples"][0]["video_id"] == "v02"
    html = (evaluated["out"] / "report.html").read_text()
    assert 'alt="v00 frame 0, attention' in html  # the frames themselves were decoded


def test_vqa_accuracy_matches_direct_counting(evaluated):
    vqa = evaluated["report"]["vqa"]
    assert vqa["num_questions"] == 3
    assert vqa["metrics"]["accuracy"] == pytest.approx(2 / 3)
    assert vqa["per_type"] == {
        "colour": {"accuracy": 1.0, "count": 2},
        "direction": {"accuracy": 0.0, "count": 1},
    }
    assert [(s["video_id"], s["prediction"], s["correct"]) for s in vqa["samples"]] == [
        ("v00", "red", True),
        ("v00", "right", False),
        ("v01", "Blue.", True),
    ]


def test_bad_arguments_are_one_line_usage_errors(evaluated, tmp_path, capsys):
    manifest = str(evaluated["out"].parent.parent / "data" / "manifest.parquet")
    action = str(evaluated["action"])

    def error_of(*argv):
        argv = [
            "evaluate",
            "--predictions",
            action,
            "--manifest",
            manifest,
            "--out",
            str(tmp_path / "r"),
            *argv,
        ]
        assert vidpipe(argv) == 2
        return capsys.readouterr().err

    assert error_of("--predictions", str(tmp_path)) == (
        f"vidpipe evaluate: error: no predictions at {tmp_path} (predictions.json is missing)\n"
    )
    assert error_of("--predictions", f"{action},{action}") == (
        f"vidpipe evaluate: error: {action} and {action} both hold action predictions; "
        "evaluate one model per task\n"
    )
    assert error_of("--splits", "val") == (
        f"vidpipe evaluate: error: manifest {manifest} has no videos in splits val (it has test, train)\n"
    )
    assert error_of("--splits", "dev") == (
        "vidpipe evaluate: error: splits ['dev'] must be some of train, val, test\n"
    )
    assert error_of("--out", str(tmp_path / ".hidden")) == (
        "vidpipe evaluate: error: the report folder's name must be a report id: "
        "id '.hidden' starts with '.' (a hidden file name)\n"
    )
    assert error_of("--objects", ",") == "vidpipe evaluate: error: --objects ',' names no word\n"


def test_action_attention_is_shown_over_the_frames(evaluated):
    examples = evaluated["report"]["action"]["attention_examples"]
    assert examples, "an attention-pooling model's weights reach the report"
    predictions = {
        row["video_id"]: row
        for row in read_parts(str(evaluated["action"])).to_pylist()
        if row["frame_order"] == "original"
    }
    for example in examples:
        row = predictions[example["video_id"]]
        assert example["frame_indices"] == row["frame_indices"]
        assert example["attention"] == pytest.approx(row["attention"])
        assert sum(example["attention"]) == pytest.approx(1.0, abs=1e-5)
    html = (evaluated["out"] / "report.html").read_text()
    assert examples[0]["video_id"] in html
