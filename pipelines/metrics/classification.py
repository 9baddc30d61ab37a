"""Action-classification metrics: top-k, mean class accuracy, confusion, AP and mAP.

Single-label and multi-label, each as a mergeable accumulator of per-video
score vectors (average precision needs every score, so nothing smaller works).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.metrics.base import check_sample_id, fraction, merge_disjoint

# ---------------------------------------------------------------------------
# Pure array functions


def average_precision(is_positive: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the precision-recall step curve, as sklearn's average_precision_score.

    AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds, highest
    first; tied scores share one threshold. None when there is no positive.
    """
    positive = np.asarray(is_positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    if positive.shape != scores.shape or positive.ndim != 1:
        raise ValueError(
            f"is_positive {positive.shape} and scores {scores.shape} must be equal 1-D shapes"
        )
    num_positive = int(positive.sum())
    if num_positive == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    true_positives = np.cumsum(positive[order])
    predicted = np.arange(1, len(scores) + 1)
    # A threshold admits all samples tied at its score at once: keep the last of each run.
    run_ends = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    true_positives, predicted = true_positives[run_ends], predicted[run_ends]
    precision = true_positives / predicted
    recall = true_positives / num_positive
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def rank_of_true_class(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(N,) 0-based rank of each sample's true class in its score vector.

    Ties are broken towards the lower class index, as np.argmax does, so rank 0
    means the top-1 prediction is right.
    """
    num_samples, num_classes = scores.shape
    true_scores = scores[np.arange(num_samples), labels][:, None]  # (N, 1)
    higher = (scores > true_scores).sum(axis=1)
    tied_before = ((scores == true_scores) & (np.arange(num_classes) < labels[:, None])).sum(1)
    return higher + tied_before


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts; row = true class, column = predicted class."""
    flat = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)  # (C, C)


def class_pair_accuracy(
    labels: np.ndarray, scores: np.ndarray, first: int, second: int
) -> dict[str, Any]:
    """Accuracy on the videos whose true class is `first` or `second`.

    `top_1_accuracy` is ordinary top-1 over all classes, restricted to those
    videos; `two_way_accuracy` asks only whether the true class outscores its
    partner, the forced choice where an order-blind model is at chance (0.5).
    A tie counts one half, the expected value of breaking it at random.
    """
    in_pair = (labels == first) | (labels == second)
    pair_labels, pair_scores = labels[in_pair], scores[in_pair]  # (n,), (n, C)
    num_videos = len(pair_labels)
    if num_videos == 0:
        return {"num_videos": 0, "top_1_accuracy": None, "two_way_accuracy": None}
    partner = np.where(pair_labels == first, second, first)
    rows = np.arange(num_videos)
    own, other = pair_scores[rows, pair_labels], pair_scores[rows, partner]
    two_way = (own > other).sum() + 0.5 * (own == other).sum()
    top_1 = (pair_scores.argmax(axis=1) == pair_labels).sum()
    return {
        "num_videos": num_videos,
        "top_1_accuracy": float(top_1 / num_videos),
        "two_way_accuracy": float(two_way / num_videos),
    }


# ---------------------------------------------------------------------------
# Samples and accumulators


def _score_vector(scores: Sequence[float] | np.ndarray, num_classes: int) -> np.ndarray:
    vector = np.array(scores, dtype=np.float64)  # a copy: the caller's array stays theirs
    if vector.ndim != 1 or len(vector) != num_classes:
        raise ValueError(
            f"scores has shape {vector.shape}, expected ({num_classes},) (one per class)"
        )
    if not np.isfinite(vector).all():
        raise ValueError(f"scores must be finite, got {vector.tolist()}")
    vector.flags.writeable = False
    return vector


@dataclass(frozen=True, kw_only=True)
class LabelledScores:
    """One video: its true class name and the model's score for every class."""

    video_id: str
    label: str
    scores: Sequence[float] | np.ndarray

    def __post_init__(self) -> None:
        check_sample_id(self.video_id)
        if not isinstance(self.label, str):
            raise ValueError(f"label must be a string, got {self.label!r}")


@dataclass(frozen=True, kw_only=True)
class MultiLabelScores:
    """One video: its set of true class names (maybe empty) and a score per class."""

    video_id: str
    labels: Iterable[str]
    scores: Sequence[float] | np.ndarray

    def __post_init__(self) -> None:
        check_sample_id(self.video_id)
        if isinstance(self.labels, str):
            raise ValueError(
                f"labels must be a collection of class names, not one string {self.labels!r}"
            )
        labels = frozenset(self.labels)
        if not all(isinstance(label, str) for label in labels):
            raise ValueError(f"labels must be strings, got {sorted(map(repr, labels))}")
        object.__setattr__(self, "labels", labels)


@dataclass(frozen=True, eq=False)
class ScoresAccumulator:
    """video id -> (true class indices, read-only (C,) float64 scores)."""

    samples: Mapping[str, tuple[tuple[int, ...], np.ndarray]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)


def _check_class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(class_names)
    if len(names) < 2:
        raise ValueError(f"class_names must hold at least 2 classes, got {len(names)}")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"class names must be non-empty strings, got {name!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"class_names repeats {duplicates}")
    return names


def _stacked(
    accumulator: ScoresAccumulator, num_classes: int
) -> tuple[list[str], list[tuple[int, ...]], np.ndarray]:
    # Sorting by id makes the result independent of how the samples were sharded.
    video_ids = sorted(accumulator.samples)
    labels = [accumulator.samples[video_id][0] for video_id in video_ids]
    if not video_ids:
        return video_ids, labels, np.zeros((0, num_classes))
    scores = np.stack([accumulator.samples[video_id][1] for video_id in video_ids])  # (N, C)
    return video_ids, labels, scores


def _per_class_ap(positives: np.ndarray, scores: np.ndarray, class_names: Sequence[str]) -> dict:
    """positives and scores are (N, C); classes without a positive are listed, not scored."""
    per_class, without_positives = {}, []
    for index, name in enumerate(class_names):
        ap = average_precision(positives[:, index], scores[:, index])
        if ap is None:
            without_positives.append(name)
        else:
            per_class[name] = ap
    mean_ap = float(np.mean(list(per_class.values()))) if per_class else None
    return {
        "mAP": mean_ap,
        "per_class_ap": per_class,
        "classes_without_positives": without_positives,
    }


# ---------------------------------------------------------------------------
# Metrics


@dataclass(frozen=True, kw_only=True)
class SingleLabelClassification:
    """Top-k, mean class accuracy, confusion matrix, one-vs-rest AP/mAP, class pairs.

    `top_k` values above the number of classes are capped at it. `class_pairs`
    are pairs such as ("move_left", "move_right") whose videos are the same
    frames in opposite order; each gets `class_pair_accuracy`.
    """

    class_names: Sequence[str]
    top_k: Sequence[int] = (1, 5)
    class_pairs: Sequence[tuple[str, str]] = ()

    def __post_init__(self) -> None:
        names = _check_class_names(self.class_names)
        top_k = tuple(self.top_k)
        if not top_k:
            raise ValueError("top_k must hold at least one k")
        for k in top_k:
            if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
                raise ValueError(f"top_k values must be integers > 0, got {k!r}")
        if len(set(top_k)) != len(top_k):
            raise ValueError(f"top_k repeats a value: {list(top_k)}")
        pairs = tuple(tuple(pair) for pair in self.class_pairs)
        for pair in pairs:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(f"class pair {pair!r} must be two different class names")
            for name in pair:
                if name not in names:
                    raise ValueError(f"class pair {pair!r} names {name!r}, not a class")
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "top_k", top_k)
        object.__setattr__(self, "class_pairs", pairs)

    def create(self) -> ScoresAccumulator:
        return ScoresAccumulator()

    def add(self, accumulator: ScoresAccumulator, sample: LabelledScores) -> ScoresAccumulator:
        return self.add_all(accumulator, (sample,))

    def add_all(
        self, accumulator: ScoresAccumulator, samples: Iterable[LabelledScores]
    ) -> ScoresAccumulator:
        index = {name: i for i, name in enumerate(self.class_names)}
        new = {}
        for sample in samples:
            if sample.label not in index:
                raise ValueError(
                    f"label {sample.label!r} of video {sample.video_id!r} is not one of "
                    f"the {len(index)} classes"
                )
            if sample.video_id in new:
                raise ValueError(f"duplicate video_id {sample.video_id!r}")
            vector = _score_vector(sample.scores, len(index))
            new[sample.video_id] = ((index[sample.label],), vector)
        return ScoresAccumulator(merge_disjoint([accumulator.samples, new]))

    def merge(self, accumulators: Iterable[ScoresAccumulator]) -> ScoresAccumulator:
        return ScoresAccumulator(merge_disjoint(acc.samples for acc in accumulators))

    def compute(self, accumulator: ScoresAccumulator) -> dict[str, Any]:
        num_classes = len(self.class_names)
        _, label_tuples, scores = _stacked(accumulator, num_classes)
        labels = np.array([label for (label,) in label_tuples], dtype=np.int64)  # (N,)
        num_samples = len(labels)
        ranks = rank_of_true_class(labels, scores)
        predicted = scores.argmax(axis=1)  # (N,) ties go to the lower index
        matrix = confusion_matrix(labels, predicted, num_classes)

        accuracy, k_used = {}, {}
        for k in self.top_k:
            capped = min(k, num_classes)
            accuracy[f"top_{k}"] = fraction(int((ranks < capped).sum()), num_samples)
            k_used[f"top_{k}"] = capped

        support = matrix.sum(axis=1)
        per_class = {
            name: fraction(int(matrix[i, i]), int(support[i]))
            for i, name in enumerate(self.class_names)
        }
        seen = [value for value in per_class.values() if value is not None]
        positives = labels[:, None] == np.arange(num_classes)  # (N, C) one-hot
        index = {name: i for i, name in enumerate(self.class_names)}
        return {
            "num_samples": num_samples,
            "accuracy": accuracy,
            "top_k_used": k_used,
            "mean_class_accuracy": float(np.mean(seen)) if seen else None,
            "per_class_accuracy": per_class,
            "classes_without_samples": [n for n, v in per_class.items() if v is None],
            "confusion_matrix": {
                "classes": list(self.class_names),
                "rows": "true class",
                "columns": "predicted class",
                "counts": matrix.tolist(),
            },
            **_per_class_ap(positives, scores, self.class_names),
            "class_pairs": [
                {
                    "classes": list(pair),
                    **class_pair_accuracy(labels, scores, *map(index.get, pair)),
                }
                for pair in self.class_pairs
            ],
        }


@dataclass(frozen=True, kw_only=True)
class MultiLabelClassification:
    """Per-class AP and mAP from score vectors and label sets.

    Classes with no positive video have no AP; they are left out of mAP and
    listed under `classes_without_positives`.
    """

    class_names: Sequence[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", _check_class_names(self.class_names))

    def create(self) -> ScoresAccumulator:
        return ScoresAccumulator()

    def add(self, accumulator: ScoresAccumulator, sample: MultiLabelScores) -> ScoresAccumulator:
        return self.add_all(accumulator, (sample,))

    def add_all(
        self, accumulator: ScoresAccumulator, samples: Iterable[MultiLabelScores]
    ) -> ScoresAccumulator:
        index = {name: i for i, name in enumerate(self.class_names)}
        new = {}
        for sample in samples:
            unknown = sorted(set(sample.labels) - index.keys())
            if unknown:
                raise ValueError(
                    f"labels {unknown} of video {sample.video_id!r} are not among "
                    f"the {len(index)} classes"
                )
            if sample.video_id in new:
                raise ValueError(f"duplicate video_id {sample.video_id!r}")
            label_indices = tuple(sorted(index[label] for label in sample.labels))
            new[sample.video_id] = (label_indices, _score_vector(sample.scores, len(index)))
        return ScoresAccumulator(merge_disjoint([accumulator.samples, new]))

    def merge(self, accumulators: Iterable[ScoresAccumulator]) -> ScoresAccumulator:
        return ScoresAccumulator(merge_disjoint(acc.samples for acc in accumulators))

    def compute(self, accumulator: ScoresAccumulator) -> dict[str, Any]:
        num_classes = len(self.class_names)
        _, label_tuples, scores = _stacked(accumulator, num_classes)
        positives = np.zeros((len(label_tuples), num_classes), dtype=bool)  # (N, C)
        for row, label_indices in enumerate(label_tuples):
            positives[row, list(label_indices)] = True
        return {
            "num_samples": len(label_tuples),
            "num_positive_labels": int(positives.sum()),
            **_per_class_ap(positives, scores, self.class_names),
        }
