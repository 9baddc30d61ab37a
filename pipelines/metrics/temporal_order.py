"""Does a classifier use frame order? Compare its predictions on original, reversed, shuffled frames.

A model that pools frames without order predicts the same class whatever the
order; one that uses order should turn a reversed move_left into move_right.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.metrics.base import check_sample_id, fraction, merge_disjoint
from schemas import FRAME_ORDERS


@dataclass(frozen=True, kw_only=True)
class OrderedPrediction:
    """One prediction row: a video, the frame order it was run on, truth and prediction."""

    video_id: str
    frame_order: str
    label: str
    predicted_label: str

    def __post_init__(self) -> None:
        check_sample_id(self.video_id)
        if self.frame_order not in FRAME_ORDERS:
            raise ValueError(f"frame_order {self.frame_order!r} must be one of {FRAME_ORDERS}")
        for name in ("label", "predicted_label"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string, got {getattr(self, name)!r}")


@dataclass(frozen=True, eq=False)
class TemporalOrderAccumulator:
    """(video id, frame order) -> (true label, predicted label)."""

    predictions: Mapping[tuple[str, str], tuple[str, str]] = field(default_factory=dict)


def _symmetric_pairs(reversal_pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict:
    items = reversal_pairs.items() if isinstance(reversal_pairs, Mapping) else reversal_pairs
    partner: dict[str, str] = {}
    for first, second in items:
        if first == second:
            raise ValueError(f"class {first!r} cannot be its own reversal pair")
        for a, b in ((first, second), (second, first)):
            if partner.get(a, b) != b:
                raise ValueError(f"class {a!r} is paired with both {partner[a]!r} and {b!r}")
            partner[a] = b
    return partner


@dataclass(frozen=True, kw_only=True)
class TemporalOrderCheck:
    """Accuracy per frame order, how often order changes the prediction, and flips.

    `reversal_pairs` maps a class to the class its reversed videos look like,
    e.g. {"move_left": "move_right", "grow": "shrink"}; one direction is enough.
    """

    reversal_pairs: Mapping[str, str] | Sequence[tuple[str, str]] = ()

    def __post_init__(self) -> None:
        partner = _symmetric_pairs(self.reversal_pairs)
        object.__setattr__(self, "reversal_pairs", tuple(sorted(partner.items())))

    def create(self) -> TemporalOrderAccumulator:
        return TemporalOrderAccumulator()

    def add(
        self, accumulator: TemporalOrderAccumulator, sample: OrderedPrediction
    ) -> TemporalOrderAccumulator:
        return self.add_all(accumulator, (sample,))

    def add_all(
        self, accumulator: TemporalOrderAccumulator, samples: Iterable[OrderedPrediction]
    ) -> TemporalOrderAccumulator:
        new = merge_disjoint(
            ({(s.video_id, s.frame_order): (s.label, s.predicted_label)} for s in samples),
            key_name="(video_id, frame_order)",
        )
        return TemporalOrderAccumulator(
            merge_disjoint([accumulator.predictions, new], key_name="(video_id, frame_order)")
        )

    def merge(self, accumulators: Iterable[TemporalOrderAccumulator]) -> TemporalOrderAccumulator:
        return TemporalOrderAccumulator(
            merge_disjoint(
                (acc.predictions for acc in accumulators), key_name="(video_id, frame_order)"
            )
        )

    def compute(self, accumulator: TemporalOrderAccumulator) -> dict[str, Any]:
        by_video: dict[str, dict[str, str]] = {}
        labels: dict[str, str] = {}
        for (video_id, order), (label, predicted) in sorted(accumulator.predictions.items()):
            if labels.setdefault(video_id, label) != label:
                raise ValueError(
                    f"video {video_id!r} has label {labels[video_id]!r} in one row "
                    f"and {label!r} in another"
                )
            by_video.setdefault(video_id, {})[order] = predicted

        accuracy = {}
        for order in FRAME_ORDERS:
            videos = [v for v in by_video if order in by_video[v]]
            correct = sum(by_video[v][order] == labels[v] for v in videos)
            accuracy[order] = {
                "accuracy": fraction(correct, len(videos)),
                "num_videos": len(videos),
            }

        def changed(order: str) -> dict[str, Any]:
            videos = [v for v, p in by_video.items() if "original" in p and order in p]
            num_changed = sum(by_video[v]["original"] != by_video[v][order] for v in videos)
            return {"fraction": fraction(num_changed, len(videos)), "num_videos": len(videos)}

        partner = dict(self.reversal_pairs)
        reversed_paired = [
            v for v, p in by_video.items() if "reversed" in p and labels[v] in partner
        ]
        flipped = sum(by_video[v]["reversed"] == partner[labels[v]] for v in reversed_paired)
        return {
            "num_videos": len(by_video),
            "accuracy": accuracy,
            "changed_under_reversal": changed("reversed"),
            "changed_under_shuffling": changed("shuffled"),
            # Of the reversed videos of a paired class, those predicted as the partner
            # class: near 1 for a model that reads order, near 0 for one that does not.
            "reversed_predicted_as_pair": {
                "fraction": fraction(flipped, len(reversed_paired)),
                "num_videos": len(reversed_paired),
            },
        }
