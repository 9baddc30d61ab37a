import json
import re

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    top_k_accuracy_score,
)
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from pipelines.metrics import (
    LabelledScores,
    MultiLabelClassification,
    MultiLabelScores,
    SingleLabelClassification,
    average_precision,
    evaluate,
)
from tests.pipelines.metrics.sharding import sharded_accumulator

CLASSES = ("move_left", "move_right", "grow", "shrink", "still")


def random_single_label(seed, num_samples=60, ties=True):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), num_samples)
    # Few distinct values make many ties, which is where AP implementations differ.
    scores = (
        rng.integers(0, 4, (num_samples, len(CLASSES))) / 4
        if ties
        else rng.random((num_samples, len(CLASSES)))
    )
    samples = [
        LabelledScores(video_id=f"v{i:03d}", label=CLASSES[label], scores=scores[i])
        for i, label in enumerate(labels)
    ]
    return samples, labels, scores


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    is_positive = rng.random(40) < 0.3
    is_positive[0] = True
    scores = rng.integers(0, 6, 40) / 5
    expected = average_precision_score(is_positive, scores)
    assert average_precision(is_positive, scores) == pytest.approx(expected, abs=1e-6)


def test_average_precision_pinned_and_without_positives():
    # Ranked: P(0.9) N(0.8) P(0.7): AP = 1/2 * 1 + 1/2 * 2/3.
    assert average_precision([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx(5 / 6)
    # All tied: one threshold, precision 2/3 at recall 1.
    assert average_precision([1, 0, 1], [0.5, 0.5, 0.5]) == pytest.approx(2 / 3)
    assert average_precision([0, 0], [0.1, 0.2]) is None


@pytest.mark.parametrize("seed", range(3))
def test_single_label_matches_sklearn(seed):
    samples, labels, scores = random_single_label(seed)
    metric = SingleLabelClassification(class_names=CLASSES, top_k=(1, 3))
    result = evaluate(metric, samples)

    for index, name in enumerate(CLASSES):
        expected = average_precision_score(labels == index, scores[:, index])
        assert result["per_class_ap"][name] == pytest.approx(expected, abs=1e-6)
    assert result["mAP"] == pytest.approx(np.mean(list(result["per_class_ap"].values())))
    predicted = scores.argmax(axis=1)
    assert (
        result["confusion_matrix"]["counts"]
        == sk_confusion_matrix(labels, predicted, labels=range(len(CLASSES))).tolist()
    )
    assert result["accuracy"]["top_1"] == pytest.approx(np.mean(predicted == labels))
    assert result["mean_class_accuracy"] == pytest.approx(
        balanced_accuracy_score(labels, predicted)
    )
    assert result["num_samples"] == len(samples)
    json.dumps(result, allow_nan=False)


def test_top_k_matches_sklearn_without_ties_and_k_is_capped():
    samples, labels, scores = random_single_label(7, ties=False)
    metric = SingleLabelClassification(class_names=CLASSES, top_k=(2, 3, 10))
    result = evaluate(metric, samples)
    for k in (2, 3):
        expected = top_k_accuracy_score(labels, scores, k=k, labels=range(len(CLASSES)))
        assert result["accuracy"][f"top_{k}"] == pytest.approx(expected)
    assert result["accuracy"]["top_10"] == 1.0
    assert result["top_k_used"] == {"top_2": 2, "top_3": 3, "top_10": 5}


def test_ties_go_to_the_lower_class_index():
    metric = SingleLabelClassification(class_names=("a", "b", "c"), top_k=(1, 2))
    samples = [
        LabelledScores(video_id="x", label="b", scores=[0.4, 0.4, 0.2]),  # argmax says a
        LabelledScores(video_id="y", label="a", scores=[0.3, 0.3, 0.3]),
    ]
    result = evaluate(metric, samples)
    assert result["accuracy"] == {"top_1": 0.5, "top_2": 1.0}
    assert result["confusion_matrix"]["counts"] == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert result["per_class_accuracy"] == {"a": 1.0, "b": 0.0, "c": None}
    assert result["classes_without_samples"] == ["c"]
    assert result["mean_class_accuracy"] == 0.5
    assert result["classes_without_positives"] == ["c"]
    assert list(result["per_class_ap"]) == ["a", "b"]


def test_class_pair_accuracy_restricts_to_the_pair():
    metric = SingleLabelClassification(
        class_names=("left", "right", "grow"), class_pairs=[("left", "right")]
    )
    samples = [
        LabelledScores(video_id="1", label="left", scores=[0.6, 0.3, 0.1]),  # right
        LabelledScores(video_id="2", label="right", scores=[0.5, 0.4, 0.1]),  # wrong both ways
        LabelledScores(video_id="3", label="right", scores=[0.1, 0.1, 0.8]),  # tie in pair: 1/2
        LabelledScores(video_id="4", label="grow", scores=[0.9, 0.0, 0.1]),  # not in the pair
    ]
    (pair,) = evaluate(metric, samples)["class_pairs"]
    assert pair == {
        "classes": ["left", "right"],
        "num_videos": 3,
        "top_1_accuracy": pytest.approx(1 / 3),
        "two_way_accuracy": pytest.approx(1.5 / 3),
    }


def test_multi_label_ap_matches_sklearn_and_lists_classes_without_positives():
    rng = np.random.default_rng(3)
    num_samples = 40
    truth = rng.random((num_samples, len(CLASSES))) < 0.35
    truth[:, 4] = False  # "still" never happens
    scores = rng.integers(0, 5, (num_samples, len(CLASSES))) / 4
    samples = [
        MultiLabelScores(
            video_id=f"v{i}",
            labels=[CLASSES[c] for c in np.flatnonzero(truth[i])],
            scores=scores[i],
        )
        for i in range(num_samples)
    ]
    result = evaluate(MultiLabelClassification(class_names=CLASSES), samples)
    expected = average_precision_score(truth[:, :4], scores[:, :4], average=None)
    assert [result["per_class_ap"][name] for name in CLASSES[:4]] == pytest.approx(
        expected, abs=1e-6
    )
    assert result["classes_without_positives"] == ["still"]
    assert result["mAP"] == pytest.approx(np.mean(expected), abs=1e-6)
    assert result["num_positive_labels"] == int(truth.sum())


@pytest.mark.parametrize("seed", range(4))
def test_any_sharding_gives_exactly_the_one_pass_result(seed):
    samples, _, _ = random_single_label(seed)
    single = SingleLabelClassification(class_names=CLASSES, class_pairs=[("grow", "shrink")])
    assert single.compute(sharded_accumulator(single, samples, seed)) == evaluate(single, samples)
    multi = MultiLabelClassification(class_names=CLASSES)
    multi_samples = [
        MultiLabelScores(video_id=s.video_id, labels=[s.label, "still"], scores=s.scores)
        for s in samples
    ]
    assert multi.compute(sharded_accumulator(multi, multi_samples, seed)) == evaluate(
        multi, multi_samples
    )


def test_add_and_merge_leave_their_arguments_alone():
    metric = SingleLabelClassification(class_names=("a", "b"))
    scores = np.array([0.2, 0.8])
    empty = metric.create()
    one = metric.add(empty, LabelledScores(video_id="x", label="b", scores=scores))
    scores[:] = [1.0, 0.0]  # the caller reuses its buffer
    two = metric.add(one, LabelledScores(video_id="y", label="a", scores=[0.9, 0.1]))
    merged = metric.merge([one, metric.create()])
    assert (len(empty), len(one), len(two), len(merged)) == (0, 1, 2, 1)
    assert metric.compute(one)["accuracy"]["top_1"] == 1.0


def test_empty_accumulator_gives_nulls_not_nan():
    result = evaluate(SingleLabelClassification(class_names=("a", "b")), [])
    assert result["accuracy"] == {"top_1": None, "top_5": None}
    assert result["mAP"] is None and result["mean_class_accuracy"] is None
    json.dumps(result, allow_nan=False)


def test_duplicates_are_errors_on_add_and_on_merge():
    metric = SingleLabelClassification(class_names=("a", "b"))
    sample = LabelledScores(video_id="v1", label="a", scores=[1.0, 0.0])
    one = metric.add(metric.create(), sample)
    with pytest.raises(ValueError, match=r"^duplicate video_id 'v1'$"):
        metric.add(one, sample)
    with pytest.raises(ValueError, match=r"^duplicate video_id 'v1'$"):
        metric.merge([one, one])
    with pytest.raises(ValueError, match=r"^duplicate video_id 'v1'$"):
        metric.add_all(metric.create(), [sample, sample])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"class_names": ("a",)}, "class_names must hold at least 2 classes, got 1"),
        ({"class_names": ("a", "a", "b")}, "class_names repeats ['a']"),
        ({"class_names": ("a", "")}, "class names must be non-empty strings, got ''"),
        ({"class_names": ("a", "b"), "top_k": (0,)}, "top_k values must be integers > 0, got 0"),
        ({"class_names": ("a", "b"), "top_k": ()}, "top_k must hold at least one k"),
        ({"class_names": ("a", "b"), "top_k": (1, 1)}, "top_k repeats a value: [1, 1]"),
        (
            {"class_names": ("a", "b"), "class_pairs": [("a", "c")]},
            "class pair ('a', 'c') names 'c', not a class",
        ),
        (
            {"class_names": ("a", "b"), "class_pairs": [("a", "a")]},
            "class pair ('a', 'a') must be two different class names",
        ),
    ],
)
def test_config_errors_name_the_bad_value(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SingleLabelClassification(**kwargs)


def test_sample_errors_name_the_bad_value():
    metric = SingleLabelClassification(class_names=("a", "b"))
    empty = metric.create()
    with pytest.raises(ValueError, match=r"^label 'c' of video 'v' is not one of the 2 classes$"):
        metric.add(empty, LabelledScores(video_id="v", label="c", scores=[0, 1]))
    with pytest.raises(ValueError, match=r"^scores has shape \(3,\), expected \(2,\) \(one per"):
        metric.add(empty, LabelledScores(video_id="v", label="a", scores=[0, 1, 2]))
    with pytest.raises(ValueError, match=r"^scores must be finite, got \[nan, 1.0\]$"):
        metric.add(empty, LabelledScores(video_id="v", label="a", scores=[np.nan, 1]))
    with pytest.raises(ValueError, match=r"^video_id must be a non-empty string, got ''$"):
        LabelledScores(video_id="", label="a", scores=[0, 1])
    multi = MultiLabelClassification(class_names=("a", "b"))
    with pytest.raises(ValueError, match=r"^labels \['x'\] of video 'v' are not among the 2"):
        multi.add(multi.create(), MultiLabelScores(video_id="v", labels=["a", "x"], scores=[0, 1]))
    with pytest.raises(ValueError, match=r"^labels must be a collection of class names, not one"):
        MultiLabelScores(video_id="v", labels="a", scores=[0, 1])
