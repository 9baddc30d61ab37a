"""Action classifier over per-frame CNN features: projection → LSTM/GRU (or none) → pooling → head.

Defines `ClassifierOutput`, the return value every action model of vidpipe shares, and the
single- vs multi-label semantics of logits (softmax/CE vs sigmoid/BCE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import nn

from hybrid_models.attention import AttentionPooling
from hybrid_models.encoders import RecurrentConfig, RecurrentEncoder
from hybrid_models.sequences import check_mask, masked_last, masked_mean

Encoder = Literal["lstm", "gru", "none"]
Pooling = Literal["last", "mean", "attention"]
ENCODERS = ("lstm", "gru", "none")
POOLINGS = ("last", "mean", "attention")


class ClassifierOutput(NamedTuple):
    """What every action model returns.

    logits: (B, C). Single-label: softmax(logits) are the class probabilities (models that
    average probabilities return the log of the average, so cross-entropy still applies).
    Multi-label: sigmoid(logits) are the per-class probabilities.
    attention: (B, T) weights over frames (sum to 1 over real frames, 0 on padding), or None.
    fusion_weights: (B, T, 2) per-frame weights of the two streams (0 on padding), or None.
    """

    logits: torch.Tensor
    attention: torch.Tensor | None = None
    fusion_weights: torch.Tensor | None = None


def probabilities(logits: torch.Tensor, *, multi_label: bool) -> torch.Tensor:
    """Class probabilities from a `ClassifierOutput.logits`: sigmoid (multi-label) or softmax."""
    return torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)


@dataclass(frozen=True, kw_only=True)
class TemporalClassifierConfig:
    feature_dim: int
    num_classes: int
    projection_dim: int | None = None  # Linear+ReLU+dropout first; worth it when D is large
    encoder: Encoder = "lstm"  # "none": no RNN, the order-blind pooling-of-frames ablation
    hidden_dim: int = 128
    bidirectional: bool = False
    num_layers: int = 1
    pooling: Pooling = "attention"
    attention_dim: int = 64
    dropout: float = 0.0
    multi_label: bool = False

    def __post_init__(self) -> None:
        if self.feature_dim <= 0:
            raise ValueError(f"feature_dim ({self.feature_dim}) must be > 0")
        if self.num_classes <= 0:
            raise ValueError(f"num_classes ({self.num_classes}) must be > 0")
        if self.projection_dim is not None and self.projection_dim <= 0:
            raise ValueError(f"projection_dim ({self.projection_dim}) must be > 0 or None")
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder {self.encoder!r} must be one of {', '.join(ENCODERS)}")
        if self.hidden_dim <= 0:
            raise ValueError(f"hidden_dim ({self.hidden_dim}) must be > 0")
        if self.num_layers <= 0:
            raise ValueError(f"num_layers ({self.num_layers}) must be > 0")
        if self.encoder == "none" and (self.bidirectional or self.num_layers != 1):
            raise ValueError("encoder 'none' takes neither bidirectional nor num_layers != 1")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling {self.pooling!r} must be one of {', '.join(POOLINGS)}")
        if self.attention_dim <= 0:
            raise ValueError(f"attention_dim ({self.attention_dim}) must be > 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout ({self.dropout}) must be in [0, 1)")

    @property
    def step_dim(self) -> int:
        """Size of the per-frame vectors that pooling sees."""
        if self.encoder != "none":
            return self.hidden_dim * (2 if self.bidirectional else 1)
        return self.projection_dim if self.projection_dim is not None else self.feature_dim


class TemporalClassifier(nn.Module):
    """(B, T, D) frame features and (B, T) mask -> `ClassifierOutput` with (B, C) logits."""

    def __init__(self, config: TemporalClassifierConfig):
        super().__init__()
        self.config = config
        input_dim = config.feature_dim
        self.projection: nn.Module = nn.Identity()
        if config.projection_dim is not None:
            self.projection = nn.Sequential(
                nn.Linear(config.feature_dim, config.projection_dim),
                nn.ReLU(),
                nn.Dropout(config.dropout),
            )
            input_dim = config.projection_dim
        self.encoder: RecurrentEncoder | None = None
        if config.encoder != "none":
            self.encoder = RecurrentEncoder(
                RecurrentConfig(
                    input_dim=input_dim,
                    hidden_dim=config.hidden_dim,
                    cell=config.encoder,
                    bidirectional=config.bidirectional,
                    num_layers=config.num_layers,
                    dropout=config.dropout,
                )
            )
        self.attention: AttentionPooling | None = None
        if config.pooling == "attention":
            self.attention = AttentionPooling(config.step_dim, config.attention_dim)
        self.head = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(config.step_dim, config.num_classes)
        )

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> ClassifierOutput:
        check_mask(features, mask)
        steps = self.projection(features)  # (B, T, P)
        final = None
        if self.encoder is not None:
            steps, final = self.encoder(steps, mask)  # (B, T, H·dirs), (B, H·dirs)
        weights = None
        if self.config.pooling == "attention":
            assert self.attention is not None
            pooled, weights = self.attention(steps, mask)
        elif self.config.pooling == "mean":
            pooled = masked_mean(steps, mask)
        else:
            # With an RNN, "last" is its final state: for a bidirectional one that joins the
            # backward direction's state at frame 0, which the last step's output lacks.
            pooled = final if final is not None else masked_last(steps, mask)
        return ClassifierOutput(self.head(pooled), weights)
