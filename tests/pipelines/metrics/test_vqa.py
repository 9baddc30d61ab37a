import pytest

from pipelines.metrics import AnsweredQuestion, VqaAccuracy, evaluate, normalize_answer
from tests.pipelines.metrics.sharding import sharded_accumulator


@pytest.mark.parametrize(
    ("answer", "normalized"),
    [
        ("  The Red Ball. ", "red ball"),
        ("Two", "2"),
        ("none", "0"),
        ("an apple", "apple"),
        ("3.5", "3.5"),
        ("1,000", "1,000"),
        ("yes!", "yes"),
        ("t-shirt", "t shirt"),
        ("dont", "don't"),
        ("don't", "don't"),
        ("10:30", "10:30"),
        ("left, then right", "left then right"),
        ("(a) circle", "circle"),
    ],
)
def test_normalize_answer_follows_the_vqa_convention(answer, normalized):
    assert normalize_answer(answer) == normalized


QUESTIONS = [
    AnsweredQuestion(question_type="colour", predicted_answer="Red", answer="red"),
    AnsweredQuestion(question_type="colour", predicted_answer="blue", answer="green"),
    AnsweredQuestion(question_type="colour", predicted_answer="the red.", answer="red"),
    AnsweredQuestion(question_type="count", predicted_answer="two", answer="2"),
    AnsweredQuestion(question_type="count", predicted_answer="3", answer="4"),
    AnsweredQuestion(question_type="direction", predicted_answer="left", answer="right"),
]


def test_accuracy_overall_and_per_type_with_counts():
    assert evaluate(VqaAccuracy(), QUESTIONS) == {
        "accuracy": 3 / 6,
        "num_correct": 3,
        "num_questions": 6,
        "mean_per_type_accuracy": pytest.approx((2 / 3 + 1 / 2 + 0) / 3),
        "per_question_type": {
            "colour": {"accuracy": 2 / 3, "num_correct": 2, "num_questions": 3},
            "count": {"accuracy": 1 / 2, "num_correct": 1, "num_questions": 2},
            "direction": {"accuracy": 0.0, "num_correct": 0, "num_questions": 1},
        },
    }


@pytest.mark.parametrize("seed", range(3))
def test_any_sharding_gives_exactly_the_one_pass_result(seed):
    metric = VqaAccuracy()
    samples = QUESTIONS * 3
    assert metric.compute(sharded_accumulator(metric, samples, seed)) == evaluate(metric, samples)


def test_empty_and_purity():
    metric = VqaAccuracy()
    empty = metric.create()
    one = metric.add(empty, QUESTIONS[0])
    metric.merge([one, one])
    assert empty.counts == {} and one.counts == {"colour": (1, 1)}
    assert metric.compute(empty)["accuracy"] is None


def test_sample_errors():
    with pytest.raises(ValueError, match=r"^answer must be a string, got None$"):
        AnsweredQuestion(question_type="colour", predicted_answer="red", answer=None)
