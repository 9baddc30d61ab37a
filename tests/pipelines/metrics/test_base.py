import pickle

import pytest

from pipelines.metrics import (
    AnsweredQuestion,
    CaptionMetrics,
    CaptionSample,
    LabelledScores,
    MultiLabelClassification,
    MultiLabelScores,
    OrderedPrediction,
    SingleLabelClassification,
    TemporalOrderCheck,
    VqaAccuracy,
    evaluate,
    merge_disjoint,
)

# Every mergeable metric with a few samples: the contract tests below run on each.
METRICS = {
    "single_label": (
        SingleLabelClassification(class_names=("a", "b", "c"), top_k=(1, 2)),
        [
            LabelledScores(video_id="v1", label="a", scores=[0.7, 0.2, 0.1]),
            LabelledScores(video_id="v2", label="c", scores=[0.5, 0.1, 0.4]),
            LabelledScores(video_id="v3", label="b", scores=[0.1, 0.8, 0.1]),
        ],
    ),
    "multi_label": (
        MultiLabelClassification(class_names=("a", "b")),
        [
            MultiLabelScores(video_id="v1", labels=["a", "b"], scores=[0.7, 0.2]),
            MultiLabelScores(video_id="v2", labels=[], scores=[0.5, 0.6]),
        ],
    ),
    "captions": (
        CaptionMetrics(spice=False),
        [
            CaptionSample(video_id="v1", hypothesis="a red circle", references=["a red circle"]),
            CaptionSample(video_id="v2", hypothesis="a square", references=["a blue square"]),
        ],
    ),
    "vqa": (
        VqaAccuracy(),
        [
            AnsweredQuestion(question_type="colour", predicted_answer="red", answer="red"),
            AnsweredQuestion(question_type="count", predicted_answer="2", answer="3"),
        ],
    ),
    "temporal_order": (
        TemporalOrderCheck(reversal_pairs={"l": "r"}),
        [
            OrderedPrediction(
                video_id="v1", frame_order="original", label="l", predicted_label="l"
            ),
            OrderedPrediction(
                video_id="v1", frame_order="reversed", label="l", predicted_label="r"
            ),
        ],
    ),
}


@pytest.fixture
def no_java(monkeypatch, tmp_path):
    # Caption scoring then stays in Python: these tests are about the contract, not Java.
    monkeypatch.setenv("PATH", str(tmp_path))


@pytest.mark.parametrize("name", sorted(METRICS))
def test_metric_and_accumulators_survive_pickling(name, no_java):
    metric, samples = METRICS[name]
    accumulator = metric.add_all(metric.create(), samples)
    restored_metric = pickle.loads(pickle.dumps(metric))
    restored = pickle.loads(pickle.dumps(accumulator))
    assert restored_metric.compute(restored) == metric.compute(accumulator)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_add_and_merge_return_new_accumulators(name, no_java):
    metric, samples = METRICS[name]
    empty = metric.create()
    first = metric.add(empty, samples[0])
    both = metric.add(first, samples[1])
    merged = metric.merge([first, metric.add(metric.create(), samples[1])])
    assert metric.compute(empty) == metric.compute(metric.create())
    assert metric.compute(first) == evaluate(metric, samples[:1])
    assert metric.compute(both) == metric.compute(merged) == evaluate(metric, samples[:2])
    assert metric.compute(metric.merge([])) == metric.compute(empty)


def test_merge_disjoint():
    assert merge_disjoint([{"a": 1}, {}, {"b": 2}]) == {"a": 1, "b": 2}
    with pytest.raises(ValueError, match=r"^duplicate question \('v', 0\)$"):
        merge_disjoint([{("v", 0): 1}, {("v", 0): 1}], key_name="question")
