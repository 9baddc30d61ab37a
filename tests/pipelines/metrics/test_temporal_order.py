import pytest

from pipelines.metrics import OrderedPrediction, TemporalOrderCheck, evaluate
from tests.pipelines.metrics.sharding import sharded_accumulator

PAIRS = {"move_left": "move_right", "grow": "shrink"}


def rows(video_id, label, original, reversed_, shuffled):
    predictions = {"original": original, "reversed": reversed_, "shuffled": shuffled}
    return [
        OrderedPrediction(video_id=video_id, frame_order=order, label=label, predicted_label=p)
        for order, p in predictions.items()
        if p is not None
    ]


# An order-aware model on v1, v2, v3; an order-blind answer on v4; v5 has no pair.
SAMPLES = [
    *rows("v1", "move_left", "move_left", "move_right", "move_left"),
    *rows("v2", "move_right", "move_right", "move_left", "grow"),
    *rows("v3", "grow", "grow", "shrink", None),
    *rows("v4", "shrink", "shrink", "shrink", "shrink"),
    *rows("v5", "still", "grow", "still", "still"),
]


def test_hand_made_predictions():
    result = evaluate(TemporalOrderCheck(reversal_pairs=PAIRS), SAMPLES)
    assert result == {
        "num_videos": 5,
        "accuracy": {
            "original": {"accuracy": 4 / 5, "num_videos": 5},
            "reversed": {"accuracy": 2 / 5, "num_videos": 5},  # v4 and v5
            "shuffled": {"accuracy": 3 / 4, "num_videos": 4},  # v1, v4, v5
        },
        "changed_under_reversal": {"fraction": 4 / 5, "num_videos": 5},  # all but v4
        "changed_under_shuffling": {"fraction": 2 / 4, "num_videos": 4},  # v2, v5
        "reversed_predicted_as_pair": {"fraction": 3 / 4, "num_videos": 4},  # v1-v3 of v1-v4
    }


def test_one_direction_of_a_pair_is_enough():
    one_way = TemporalOrderCheck(reversal_pairs={"move_left": "move_right", "shrink": "grow"})
    both_ways = TemporalOrderCheck(
        reversal_pairs=[
            ("move_right", "move_left"),
            ("move_left", "move_right"),
            ("grow", "shrink"),
        ]
    )
    assert one_way.reversal_pairs == both_ways.reversal_pairs
    assert evaluate(one_way, SAMPLES) == evaluate(both_ways, SAMPLES)


@pytest.mark.parametrize("seed", range(3))
def test_any_sharding_gives_exactly_the_one_pass_result(seed):
    metric = TemporalOrderCheck(reversal_pairs=PAIRS)
    assert metric.compute(sharded_accumulator(metric, SAMPLES, seed)) == evaluate(metric, SAMPLES)


def test_empty_gives_nulls():
    result = evaluate(TemporalOrderCheck(), [])
    assert result["changed_under_reversal"] == {"fraction": None, "num_videos": 0}
    assert result["accuracy"]["original"] == {"accuracy": None, "num_videos": 0}


def test_errors():
    with pytest.raises(ValueError, match=r"^class 'a' is paired with both 'b' and 'c'$"):
        TemporalOrderCheck(reversal_pairs=[("a", "b"), ("a", "c")])
    with pytest.raises(ValueError, match=r"^class 'a' cannot be its own reversal pair$"):
        TemporalOrderCheck(reversal_pairs={"a": "a"})
    with pytest.raises(ValueError, match=r"^frame_order 'backwards' must be one of \("):
        OrderedPrediction(video_id="v", frame_order="backwards", label="a", predicted_label="a")
    metric = TemporalOrderCheck()
    first = metric.add(metric.create(), SAMPLES[0])
    with pytest.raises(ValueError, match=r"^duplicate \(video_id, frame_order\) \('v1', 'orig"):
        metric.merge([first, first])
    clash = OrderedPrediction(
        video_id="v1", frame_order="reversed", label="grow", predicted_label="grow"
    )
    with pytest.raises(
        ValueError, match=r"^video 'v1' has label 'move_left' in one row and 'grow'"
    ):
        metric.compute(metric.add(first, clash))
