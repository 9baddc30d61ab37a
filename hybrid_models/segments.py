"""Temporal segment network over frame features (Wang et al. 2016, https://arxiv.org/abs/1608.00859).

Each video's real frames are cut into S equal segments; one shared segment model scores each
segment; late fusion averages the segments' class PROBABILITIES (the "average" consensus).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from hybrid_models.sequences import check_mask, lengths_of
from hybrid_models.temporal_classifier import ClassifierOutput


@dataclass(frozen=True, kw_only=True)
class TemporalSegmentConfig:
    feature_dim: int
    num_classes: int
    num_segments: int = 3
    hidden_dim: int = 128
    dropout: float = 0.0
    multi_label: bool = False

    def __post_init__(self) -> None:
        if self.feature_dim <= 0:
            raise ValueError(f"feature_dim ({self.feature_dim}) must be > 0")
        if self.num_classes <= 0:
            raise ValueError(f"num_classes ({self.num_classes}) must be > 0")
        if self.num_segments <= 0:
            raise ValueError(f"num_segments ({self.num_segments}) must be > 0")
        if self.hidden_dim <= 0:
            raise ValueError(f"hidden_dim ({self.hidden_dim}) must be > 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout ({self.dropout}) must be in [0, 1)")


def segment_weights(mask: torch.Tensor, num_segments: int) -> torch.Tensor:
    """(B, T) mask -> (B, S, T) averaging weights: row s spreads 1 over segment s of the video.

    Segment s of a video with L real frames is frames [⌊sL/S⌋, ⌊(s+1)L/S⌋); when L < S a
    segment would be empty, so it takes frame ⌊sL/S⌋ (frames repeat, as TSN samples them).
    """
    lengths = lengths_of(mask).unsqueeze(1)  # (B, 1)
    segments = torch.arange(num_segments, device=mask.device).unsqueeze(0)  # (1, S)
    starts = segments * lengths // num_segments  # (B, S)
    ends = torch.maximum((segments + 1) * lengths // num_segments, starts + 1)  # (B, S)
    positions = torch.arange(mask.shape[1], device=mask.device).view(1, 1, -1)  # (1, 1, T)
    inside = (positions >= starts.unsqueeze(-1)) & (positions < ends.unsqueeze(-1))  # (B, S, T)
    return inside.float() / (ends - starts).unsqueeze(-1).float()


def average_probabilities(segment_logits: torch.Tensor, *, multi_label: bool) -> torch.Tensor:
    """(B, S, C) per-segment logits -> (B, C) logits of the mean of the segment probabilities.

    Single-label: log(mean_s softmax) (softmax of it gives the mean back, and CE applies).
    Multi-label: logit(mean_s sigmoid), for BCE-with-logits. Computed in log space for stability.
    """
    log_count = math.log(segment_logits.shape[1])
    if not multi_label:
        return torch.logsumexp(torch.log_softmax(segment_logits, dim=-1), dim=1) - log_count
    log_p = torch.logsumexp(nn.functional.logsigmoid(segment_logits), dim=1) - log_count
    log_not_p = torch.logsumexp(nn.functional.logsigmoid(-segment_logits), dim=1) - log_count
    return log_p - log_not_p


class TemporalSegmentClassifier(nn.Module):
    """TSN: (B, T, D) features and (B, T) mask -> `ClassifierOutput` (attention None).

    The shared segment model is segment mean -> MLP (one hidden layer): averaging features
    within a segment stands in for TSN's one snippet per segment and keeps the model cheap.
    Average consensus is symmetric in the segments, so, like mean pooling, TSN sees appearance
    spread over the whole video but not the order of events.
    """

    def __init__(self, config: TemporalSegmentConfig):
        super().__init__()
        self.config = config
        self.segment_model = nn.Sequential(
            nn.Linear(config.feature_dim, config.hidden_dim),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_dim, config.num_classes),
        )

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> ClassifierOutput:
        check_mask(features, mask)
        weights = segment_weights(mask, self.config.num_segments).to(features.dtype)
        segment_means = torch.einsum("bst,btd->bsd", weights, features)  # (B, S, D)
        segment_logits = self.segment_model(segment_means)  # (B, S, C)
        logits = average_probabilities(segment_logits, multi_label=self.config.multi_label)
        return ClassifierOutput(logits, None)
