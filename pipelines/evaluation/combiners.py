"""Beam CombineFns over vidpipe's mergeable metrics, and what is computed once they have merged.

`MetricCombineFn` buffers inputs and adds them with `add_all` (a metric's `add` copies its
accumulator, so adding one by one would be quadratic); shards merge with `merge`. Its
`finish` turns the merged accumulator into the dict the report is assembled from: the
metric's own `compute`, plus what needs every sample at once (PR curves, bootstrap CIs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import numpy as np

from pipelines.metrics import (
    CaptionErrorConfig,
    CaptionMetrics,
    MergeableMetric,
    ScoresAccumulator,
    SingleLabelClassification,
    average_precision,
    bootstrap_ci,
    caption_error_report,
)
from pipelines.report.document import DEAD_LETTER_KEYS
from schemas import columns as c

BUFFER_SIZE = 1024
# The error-table columns a report's dead-letter examples show, in DEAD_LETTER_KEYS order.
_DEAD_LETTER_COLUMNS = (c.VIDEO_ID, c.STAGE, c.ERROR_TYPE, c.MESSAGE)


@dataclass
class Buffered:
    """A metric's accumulator and the inputs not yet added to it."""

    accumulator: Any
    pending: list = field(default_factory=list)


def compute(metric: MergeableMetric, accumulator: Any) -> dict[str, Any]:
    """The default finish: the metric's own compute."""
    return metric.compute(accumulator)


class MetricCombineFn(beam.CombineFn):
    """A MergeableMetric as a CombineFn; `finish(metric, accumulator)` makes its output."""

    def __init__(
        self,
        metric: MergeableMetric,
        finish: Callable[[Any, Any], dict[str, Any]] = compute,
        *,
        buffer_size: int = BUFFER_SIZE,
    ):
        if buffer_size <= 0:
            raise ValueError(f"buffer_size ({buffer_size}) must be > 0")
        self._metric = metric
        self._finish = finish
        self._buffer_size = buffer_size

    def _flushed(self, buffered: Buffered) -> Buffered:
        if not buffered.pending:
            return buffered
        return Buffered(self._metric.add_all(buffered.accumulator, buffered.pending))

    def create_accumulator(self) -> Buffered:
        return Buffered(self._metric.create())

    def add_input(self, buffered: Buffered, sample: Any) -> Buffered:
        buffered.pending.append(sample)  # Beam lets add_input change its accumulator
        if len(buffered.pending) >= self._buffer_size:
            return self._flushed(buffered)
        return buffered

    def merge_accumulators(self, accumulators: Iterable[Buffered]) -> Buffered:
        flushed = [self._flushed(buffered).accumulator for buffered in accumulators]
        return Buffered(self._metric.merge(flushed))

    def compact(self, buffered: Buffered) -> Buffered:
        return self._flushed(buffered)

    def extract_output(self, buffered: Buffered) -> dict[str, Any]:
        return self._finish(self._metric, self._flushed(buffered).accumulator)


# ---------------------------------------------------------------------------
# Pure helpers for the finishes


def pr_curve(
    is_positive: np.ndarray, scores: np.ndarray, *, max_points: int = 101
) -> dict[str, list[float]] | None:
    """Precision and recall at every distinct score threshold (highest first), from (P=1, R=0).

    As sklearn's precision_recall_curve, thinned to at most `max_points` points (the first and
    last kept). None when there is no positive.
    """
    positive = np.asarray(is_positive, dtype=bool)
    num_positive = int(positive.sum())
    if num_positive == 0:
        return None
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    sorted_scores = np.asarray(scores, dtype=np.float64)[order]
    true_positives = np.cumsum(positive[order])
    predicted = np.arange(1, len(order) + 1)
    run_ends = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    precision = np.r_[1.0, true_positives[run_ends] / predicted[run_ends]]
    recall = np.r_[0.0, true_positives[run_ends] / num_positive]
    if len(precision) > max_points:
        keep = np.unique(np.linspace(0, len(precision) - 1, max_points).round().astype(int))
        precision, recall = precision[keep], recall[keep]
    return {"precision": precision.tolist(), "recall": recall.tolist()}


@dataclass(frozen=True, kw_only=True)
class BootstrapConfig:
    """Percentile bootstrap of the headline numbers."""

    num_resamples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_resamples <= 0:
            raise ValueError(f"num_resamples ({self.num_resamples}) must be > 0")


def _stacked(accumulator: ScoresAccumulator, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,), scores (N, C)) of a single-label accumulator in video-id order."""
    video_ids = sorted(accumulator.samples)
    if not video_ids:
        return np.zeros(0, np.int64), np.zeros((0, num_classes))
    labels = np.array([accumulator.samples[v][0][0] for v in video_ids], dtype=np.int64)
    scores = np.stack([accumulator.samples[v][1] for v in video_ids])  # (N, C)
    return labels, scores


def _mean_class_accuracy(labels: np.ndarray, correct: np.ndarray) -> float:
    present = np.unique(labels)
    return float(np.mean([correct[labels == k].mean() for k in present]))


def _mean_ap(labels: np.ndarray, scores: np.ndarray) -> float:
    aps = [
        average_precision(labels == k, scores[:, k])
        for k in range(scores.shape[1])
        if (labels == k).any()
    ]
    return float(np.mean(aps))


def single_label_ci95(
    labels: np.ndarray, scores: np.ndarray, top_k: Sequence[int], config: BootstrapConfig
) -> dict[str, tuple[float, float]]:
    """Bootstrap CIs of top-k accuracy, mean class accuracy and mAP over the videos."""
    num_videos, num_classes = scores.shape
    if num_videos == 0:
        return {}
    rows = np.arange(num_videos)
    true_scores = scores[rows, labels][:, None]  # (N, 1)
    # Rank as SingleLabelClassification counts it: ties go to the lower class index.
    ranks = (scores > true_scores).sum(1) + (
        (scores == true_scores) & (np.arange(num_classes) < labels[:, None])
    ).sum(1)
    intervals = {}
    for k in top_k:
        correct = (ranks < min(k, num_classes)).astype(np.float64)
        intervals[f"top{k}"] = bootstrap_ci(
            correct, num_resamples=config.num_resamples, seed=config.seed
        )
    correct = (ranks == 0).astype(np.float64)
    indices = rows.astype(np.float64)
    intervals["mean_class_accuracy"] = bootstrap_ci(
        indices,
        lambda picked: _mean_class_accuracy(
            labels[picked.astype(int)], correct[picked.astype(int)]
        ),
        num_resamples=config.num_resamples,
        seed=config.seed,
    )
    intervals["mAP"] = bootstrap_ci(
        indices,
        lambda picked: _mean_ap(labels[picked.astype(int)], scores[picked.astype(int)]),
        num_resamples=config.num_resamples,
        seed=config.seed,
    )
    return intervals


@dataclass(frozen=True, kw_only=True)
class SingleLabelFinish:
    """compute() plus PR curves per class and bootstrap CIs of the headline numbers."""

    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    max_curve_points: int = 101

    def __call__(
        self, metric: SingleLabelClassification, accumulator: ScoresAccumulator
    ) -> dict[str, Any]:
        result = metric.compute(accumulator)
        labels, scores = _stacked(accumulator, len(metric.class_names))
        curves = {}
        for index, name in enumerate(metric.class_names):
            curve = pr_curve(labels == index, scores[:, index], max_points=self.max_curve_points)
            if curve is not None:
                curves[name] = curve
        return {
            **result,
            "pr_curves": curves,
            "ci95": single_label_ci95(labels, scores, metric.top_k, self.bootstrap),
        }


@dataclass(frozen=True, kw_only=True)
class CaptionFinish:
    """caption_scores, bootstrap CIs of the per-sample means, and the error analysis."""

    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    errors: CaptionErrorConfig = field(default_factory=CaptionErrorConfig)
    # Metrics whose corpus score is the mean of the per-sample scores, so a bootstrap of the
    # per-sample scores is a CI of the reported number (corpus BLEU and METEOR are not).
    mean_metrics: tuple[str, ...] = ("ROUGE-L", "CIDEr-D", "CIDEr")

    def __call__(self, metric: CaptionMetrics, accumulator: Any) -> dict[str, Any]:
        samples = accumulator.samples
        result = metric.compute(accumulator)
        if not samples:
            return {**result, "ci95": {}, "error_analysis": None}
        video_ids = sorted(samples)
        intervals = {}
        for name in self.mean_metrics:
            values = [result["per_sample"][v].get(name) for v in video_ids]
            if isinstance(result.get(name), float) and all(x is not None for x in values):
                intervals[name] = bootstrap_ci(
                    values, num_resamples=self.bootstrap.num_resamples, seed=self.bootstrap.seed
                )
        analysis = caption_error_report(
            {v: samples[v][1] for v in video_ids},
            {v: samples[v][0] for v in video_ids},
            self.errors,
        )
        return {**result, "ci95": intervals, "error_analysis": analysis}


class DeadLetterCombineFn(beam.CombineFn):
    """Counts dead-letter rows and keeps the first few, by (video id, message), as examples."""

    def __init__(self, num_examples: int = 5):
        if num_examples < 0:
            raise ValueError(f"num_examples ({num_examples}) must be >= 0")
        self._num_examples = num_examples

    def _key(self, row: dict[str, Any]) -> tuple:
        return tuple(row[column] for column in _DEAD_LETTER_COLUMNS)

    def create_accumulator(self) -> tuple[int, list]:
        return 0, []

    def add_input(self, accumulator: tuple[int, list], row: dict[str, Any]) -> tuple[int, list]:
        return self.merge_accumulators([accumulator, (1, [row])])

    def merge_accumulators(self, accumulators: Iterable[tuple[int, list]]) -> tuple[int, list]:
        total, examples = 0, []
        for count, rows in accumulators:
            total += count
            examples += rows
        examples = sorted(examples, key=self._key)[: self._num_examples]
        return total, examples

    def extract_output(self, accumulator: tuple[int, list]) -> dict[str, Any]:
        count, examples = accumulator
        return {
            "count": count,
            "examples": [
                {
                    key: row[column]
                    for key, column in zip(DEAD_LETTER_KEYS, _DEAD_LETTER_COLUMNS, strict=True)
                }
                for row in examples
            ],
        }
