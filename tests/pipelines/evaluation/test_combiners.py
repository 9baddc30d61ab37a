import json
import logging

import numpy as np
import pytest
from sklearn.metrics import precision_recall_curve

from pipelines.evaluation.combiners import (
    BootstrapConfig,
    DeadLetterCombineFn,
    MetricCombineFn,
    SingleLabelFinish,
    pr_curve,
)
from pipelines.evaluation.report import (
    action_section,
    assemble_report,
    caption_section,
    read_ablations,
    training_section,
    vqa_section,
)
from pipelines.metrics import (
    CaptionMetrics,
    LabelledScores,
    SingleLabelClassification,
    VqaAccuracy,
    evaluate,
)
from pipelines.report import unavailable

CLASSES = ("move_left", "move_right", "grow", "shrink")


def samples(num_videos, seed=0):
    rng = np.random.default_rng(seed)
    return [
        LabelledScores(
            video_id=f"v{i:03d}",
            label=CLASSES[int(rng.integers(4))],
            scores=rng.dirichlet(np.ones(4)),
        )
        for i in range(num_videos)
    ]


def test_sharded_combine_equals_one_pass():
    metric = SingleLabelClassification(class_names=CLASSES, class_pairs=[("grow", "shrink")])
    combine = MetricCombineFn(metric, buffer_size=4)
    data = samples(30)
    shards = []
    for start, stop in ((0, 13), (13, 14), (14, 30)):
        accumulator = combine.create_accumulator()
        for sample in data[start:stop]:
            accumulator = combine.add_input(accumulator, sample)
        shards.append(accumulator)
    merged = combine.merge_accumulators([shards[2], combine.compact(shards[0]), shards[1]])
    assert combine.extract_output(merged) == evaluate(metric, data)
    with pytest.raises(ValueError, match=r"^buffer_size \(0\) must be > 0$"):
        MetricCombineFn(metric, buffer_size=0)


def test_pr_curve_is_sklearns_from_the_highest_threshold():
    rng = np.random.default_rng(1)
    truth = rng.random(50) < 0.3
    scores = np.round(rng.random(50), 1)  # ties share a threshold
    precision, recall, _ = precision_recall_curve(truth, scores)
    curve = pr_curve(truth, scores)
    np.testing.assert_allclose(curve["precision"], precision[::-1], atol=1e-12)
    np.testing.assert_allclose(curve["recall"], recall[::-1], atol=1e-12)
    thin = pr_curve(truth, np.arange(50.0), max_points=5)
    assert len(thin["precision"]) == len(thin["recall"]) == 5 and thin["recall"][-1] == 1.0
    assert pr_curve(np.zeros(3, bool), np.ones(3)) is None


def test_single_label_finish_adds_curves_and_deterministic_intervals():
    metric = SingleLabelClassification(class_names=CLASSES)
    finish = SingleLabelFinish(bootstrap=BootstrapConfig(num_resamples=50, seed=3))
    data = samples(40, seed=2)
    accumulator = metric.add_all(metric.create(), data)
    first, again = finish(metric, accumulator), finish(metric, accumulator)
    assert set(first["pr_curves"]) == {sample.label for sample in data}
    assert first["ci95"] == again["ci95"]
    low, high = first["ci95"]["mAP"]
    assert low <= first["mAP"] <= high
    low, high = first["ci95"]["top1"]
    assert low <= first["accuracy"]["top_1"] <= high
    with pytest.raises(ValueError, match=r"^num_resamples \(0\) must be > 0$"):
        BootstrapConfig(num_resamples=0)


def test_dead_letters_are_counted_and_the_first_kept_whatever_the_merge_order():
    combine = DeadLetterCombineFn(num_examples=2)

    def row(video_id):
        return {
            "video_id": video_id,
            "stage": "infer",
            "error_type": "ValueError",
            "message": "m",
            "uri": None,
        }

    left = combine.add_input(combine.add_input(combine.create_accumulator(), row("c")), row("a"))
    right = combine.add_input(combine.create_accumulator(), row("b"))
    for order in ([left, right], [right, left]):
        result = combine.extract_output(combine.merge_accumulators(order))
        assert result["count"] == 3
        assert [e["video_id"] for e in result["examples"]] == ["a", "b"]
        assert set(result["examples"][0]) == {"video_id", "stage", "error_type", "message"}


def test_a_report_with_nothing_evaluated_is_valid_and_says_why():
    """Every prediction became a dead letter: metrics are unavailable, never 0."""
    empty_action = SingleLabelFinish()(
        SingleLabelClassification(class_names=CLASSES),
        SingleLabelClassification(class_names=CLASSES).create(),
    )
    action = action_section(model_id="m", class_names=CLASSES, single=empty_action)
    assert action["metrics"]["top1"] == unavailable(
        "no video of the manifest had both a label among the model's classes and a prediction"
    )
    assert action["confusion_matrix"] == [[0] * 4] * 4 and action["ci95"] == {}
    caption = caption_section(
        model_id="c",
        result=CaptionMetrics(spice=False).compute(CaptionMetrics().create()),
        details=[],
    )
    assert caption["metrics"]["CIDEr-D"]["available"] is False
    vqa = vqa_section(
        model_id="q", result=VqaAccuracy().compute(VqaAccuracy().create()), correct=[], details=[],
        num_resamples=10, seed=0,
    )  # fmt: skip
    report = assemble_report(
        report_id="r", created_at="2025-01-01T00:00:00+00:00", vidpipe_version="0",
        inputs={"manifest": "m.parquet", "predictions": {"action": "p"}, "feature_set": None,
                "models": {"m": {"config": {}, "lineage": {}}, "c": {"config": {}, "lineage": {}},
                           "q": {"config": {}, "lineage": {}}}},
        counts={"videos_in_manifest": 2, "videos_evaluated": {"action": 0}, "dead_letters": 2,
                "dead_letter_examples": [], "missing_predictions": {"action": 2}},
        timings_s={"evaluate": 1.0},
        sections={"action": action, "caption": caption, "vqa": vqa, "training": None},
    )  # fmt: skip
    assert "training" not in report and report["vqa"]["metrics"]["accuracy"]["available"] is False
    with pytest.raises(
        ValueError, match=r"^report is invalid: counts.dead_letters: count \(-1\) must be >= 0"
    ):
        assemble_report(
            report_id="r", created_at="2025-01-01T00:00:00+00:00", vidpipe_version="0",
            inputs=report["inputs"], counts={**report["counts"], "dead_letters": -1},
            timings_s={}, sections={},
        )  # fmt: skip


def test_training_curves_keep_numbers_and_null_out_the_rest():
    logs = {
        "m": [
            {"epoch": 0, "train_loss": 2.0, "val_top1": 0.5, "note": "warm-up", "done": True},
            {"epoch": 1, "train_loss": float("inf"), "val_top1": float("nan")},
            {"train_loss": 1.0},  # no epoch: not a curve point
        ],
        "empty": [],
    }
    assert training_section(logs) == {
        "m": [
            {"epoch": 0, "train_loss": 2.0, "val_top1": 0.5},
            {"epoch": 1, "train_loss": None, "val_top1": None},
        ]
    }
    assert training_section({"empty": []}) is None


def test_ablations_are_read_when_they_have_the_report_shape(tmp_path, caplog):
    assert read_ablations(str(tmp_path)) is None
    table = {"columns": ["model", "top1"], "rows": [{"model": "gru", "top1": 0.5}]}
    (tmp_path / "ablations.json").write_text(json.dumps(table))
    assert read_ablations(str(tmp_path)) == table
    (tmp_path / "ablations.json").write_text(json.dumps({"rows": [{"model": "gru"}]}))
    with caplog.at_level(logging.WARNING):
        assert read_ablations(str(tmp_path)) is None
    assert "ablations.json" in caplog.text
