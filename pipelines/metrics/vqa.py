"""Video question answering: exact-match accuracy, overall and per question type.

Answers are normalised as the VQA benchmark does before comparing
(https://visualqa.org/evaluation.html); the accumulator is counts only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.metrics.base import fraction

_NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})
# Contractions written without their apostrophe. Only unambiguous ones: "its",
# "were", "well", "id", "hell" are ordinary words too.
_CONTRACTED = (
    "aren't can't couldn't didn't doesn't don't hadn't hasn't haven't isn't shouldn't wasn't "
    "weren't won't wouldn't i'm i've you're you've they're they've we're we've that's what's "
    "where's who's there's let's"
)
_CONTRACTIONS = {word.replace("'", ""): word for word in _CONTRACTED.split()}
# Periods go unless they are a decimal point; commas between digits stay.
_PERIOD = re.compile(r"(?<!\d)\.|\.(?!\d)")
_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d)")
# Every other punctuation mark but the apostrophe and the colon becomes a space.
_PUNCTUATION = re.compile(r"[!\"#$%&()*+,\-/;<=>?@\[\\\]^_`{|}~]")


def normalize_answer(answer: str) -> str:
    """`answer` in the VQA benchmark's canonical form, for exact matching.

    Lower-case; periods removed except decimal points; punctuation other than
    apostrophe, colon and digit-grouping commas replaced by a space; number
    words zero..ten (and "none") as digits; articles a/an/the removed; missing
    apostrophes of common contractions restored ("dont" -> "don't"); runs of
    white space collapsed.
    """
    text = _PERIOD.sub("", answer.lower())
    text = _DIGIT_COMMA.sub("\0", text)  # protect 1,000 from the comma rule
    text = _PUNCTUATION.sub(" ", text).replace("\0", ",")
    words = []
    for word in text.split():
        word = _NUMBER_WORDS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


@dataclass(frozen=True, kw_only=True)
class AnsweredQuestion:
    """One question: its type, the model's answer and the ground-truth answer."""

    question_type: str
    predicted_answer: str
    answer: str

    def __post_init__(self) -> None:
        for name in ("question_type", "predicted_answer", "answer"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string, got {getattr(self, name)!r}")


@dataclass(frozen=True, eq=False)
class VqaAccumulator:
    """question type -> (number answered correctly, number asked)."""

    counts: Mapping[str, tuple[int, int]] = field(default_factory=dict)


def _add_counts(counts: Iterable[Mapping[str, tuple[int, int]]]) -> dict[str, tuple[int, int]]:
    total: dict[str, tuple[int, int]] = {}
    for mapping in counts:
        for question_type, (correct, asked) in mapping.items():
            old_correct, old_asked = total.get(question_type, (0, 0))
            total[question_type] = (old_correct + correct, old_asked + asked)
    return total


@dataclass(frozen=True, kw_only=True)
class VqaAccuracy:
    """Exact-match accuracy after `normalize_answer`, overall and per question type."""

    def create(self) -> VqaAccumulator:
        return VqaAccumulator()

    def add(self, accumulator: VqaAccumulator, sample: AnsweredQuestion) -> VqaAccumulator:
        return self.add_all(accumulator, (sample,))

    def add_all(
        self, accumulator: VqaAccumulator, samples: Iterable[AnsweredQuestion]
    ) -> VqaAccumulator:
        new = (
            {s.question_type: (int(is_correct(s.predicted_answer, s.answer)), 1)} for s in samples
        )
        return VqaAccumulator(_add_counts([accumulator.counts, *new]))

    def merge(self, accumulators: Iterable[VqaAccumulator]) -> VqaAccumulator:
        return VqaAccumulator(_add_counts(acc.counts for acc in accumulators))

    def compute(self, accumulator: VqaAccumulator) -> dict[str, Any]:
        counts = accumulator.counts
        per_type = {
            question_type: {
                "accuracy": fraction(*counts[question_type]),
                "num_correct": counts[question_type][0],
                "num_questions": counts[question_type][1],
            }
            for question_type in sorted(counts)
        }
        num_correct = sum(correct for correct, _ in counts.values())
        num_questions = sum(asked for _, asked in counts.values())
        type_accuracies = [entry["accuracy"] for entry in per_type.values()]
        return {
            "accuracy": fraction(num_correct, num_questions),
            "num_correct": num_correct,
            "num_questions": num_questions,
            # Every type weighs the same, so a rare type is not drowned out.
            "mean_per_type_accuracy": (
                sum(type_accuracies) / len(type_accuracies) if type_accuracies else None
            ),
            "per_question_type": per_type,
        }


def is_correct(predicted_answer: str, answer: str) -> bool:
    """Exact match of the two answers after `normalize_answer`."""
    return normalize_answer(predicted_answer) == normalize_answer(answer)
