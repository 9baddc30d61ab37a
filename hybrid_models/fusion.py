"""Two-stream (RGB + optical flow) action models: late fusion of class probabilities, and
attention fusion of the two feature vectors per frame (Simonyan & Zisserman 2014,
https://arxiv.org/abs/1406.2199; attention fusion as in the course notes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from hybrid_models.sequences import check_mask
from hybrid_models.temporal_classifier import (
    ClassifierOutput,
    TemporalClassifier,
    TemporalClassifierConfig,
)


def late_fusion(
    rgb_logits: torch.Tensor,
    flow_logits: torch.Tensor,
    log_alpha: torch.Tensor,
    log_one_minus_alpha: torch.Tensor,
    *,
    multi_label: bool,
) -> torch.Tensor:
    """Logits of P = α·P_rgb + (1−α)·P_flow, given log α and log(1−α) (log space for stability).

    Single-label: log P, so softmax gives P back and cross-entropy applies.
    Multi-label: logit(P) per class, for BCE-with-logits.
    """
    if not multi_label:
        return torch.logaddexp(
            log_alpha + torch.log_softmax(rgb_logits, dim=-1),
            log_one_minus_alpha + torch.log_softmax(flow_logits, dim=-1),
        )
    log_p = torch.logaddexp(
        log_alpha + F.logsigmoid(rgb_logits), log_one_minus_alpha + F.logsigmoid(flow_logits)
    )
    log_not_p = torch.logaddexp(
        log_alpha + F.logsigmoid(-rgb_logits), log_one_minus_alpha + F.logsigmoid(-flow_logits)
    )
    return log_p - log_not_p


@dataclass(frozen=True, kw_only=True)
class TwoStreamConfig:
    rgb: TemporalClassifierConfig
    flow: TemporalClassifierConfig
    alpha: float = 0.5  # weight of the RGB stream; the initial value when learned
    learn_alpha: bool = False

    def __post_init__(self) -> None:
        if self.rgb.num_classes != self.flow.num_classes:
            raise ValueError(
                f"rgb.num_classes ({self.rgb.num_classes}) must equal "
                f"flow.num_classes ({self.flow.num_classes})"
            )
        if self.rgb.multi_label != self.flow.multi_label:
            raise ValueError("rgb.multi_label and flow.multi_label must agree")
        if self.learn_alpha and not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha ({self.alpha}) must be in (0, 1) when learned")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha ({self.alpha}) must be in [0, 1]")

    @property
    def multi_label(self) -> bool:
        return self.rgb.multi_label


class TwoStreamClassifier(nn.Module):
    """forward(rgb (B, T, D_rgb), flow (B, T, D_flow), mask (B, T)) -> `ClassifierOutput`.

    Each stream is its own `TemporalClassifier`; their probabilities are mixed with weight α,
    fixed or learned as α = sigmoid(parameter). `attention` is None: the two streams attend
    to frames separately (see `branch_outputs`).
    """

    def __init__(self, config: TwoStreamConfig):
        super().__init__()
        self.config = config
        self.rgb = TemporalClassifier(config.rgb)
        self.flow = TemporalClassifier(config.flow)
        self.alpha_logit: nn.Parameter | None = None
        if config.learn_alpha:
            self.alpha_logit = nn.Parameter(
                torch.tensor(math.log(config.alpha / (1 - config.alpha)))
            )

    @property
    def alpha(self) -> torch.Tensor:
        """The RGB stream's weight α as a 0-d tensor."""
        if self.alpha_logit is not None:
            return torch.sigmoid(self.alpha_logit)
        return torch.tensor(self.config.alpha)

    def _log_alphas(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.alpha_logit is not None:
            return F.logsigmoid(self.alpha_logit), F.logsigmoid(-self.alpha_logit)
        # log(0) = -inf is exact here: logaddexp(-inf, x) = x, so α = 0 or 1 drops a stream.
        alpha = torch.tensor(self.config.alpha, dtype=torch.float64)
        return torch.log(alpha).float(), torch.log1p(-alpha).float()

    def branch_outputs(
        self, rgb: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor
    ) -> tuple[ClassifierOutput, ClassifierOutput]:
        """Each stream's own output, for reports that show the streams side by side."""
        return self.rgb(rgb, mask), self.flow(flow, mask)

    def forward(
        self, rgb: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor
    ) -> ClassifierOutput:
        rgb_out, flow_out = self.branch_outputs(rgb, flow, mask)
        log_alpha, log_one_minus_alpha = self._log_alphas()
        logits = late_fusion(
            rgb_out.logits,
            flow_out.logits,
            log_alpha.to(rgb_out.logits.device),
            log_one_minus_alpha.to(rgb_out.logits.device),
            multi_label=self.config.multi_label,
        )
        return ClassifierOutput(logits, None)


class AttentionFusion(nn.Module):
    """α = softmax(W_a [f₁; f₂]) over the two sources; fused = α₁·f₁ + α₂·f₂.

    (..., D) and (..., D) -> fused (..., D) and weights (..., 2); works per frame or per video.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(2 * dim, 2)  # W_a (with bias)

    def forward(
        self, first: torch.Tensor, second: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if first.shape != second.shape:
            raise ValueError(
                f"sources must have the same shape, got {tuple(first.shape)} and {tuple(second.shape)}"
            )
        weights = torch.softmax(self.score(torch.cat([first, second], dim=-1)), dim=-1)  # (..., 2)
        fused = weights[..., :1] * first + weights[..., 1:] * second  # (..., D)
        return fused, weights


@dataclass(frozen=True, kw_only=True)
class FusedTemporalConfig:
    rgb_dim: int
    flow_dim: int
    fusion_dim: int
    temporal: TemporalClassifierConfig  # its feature_dim must equal fusion_dim

    def __post_init__(self) -> None:
        for name in ("rgb_dim", "flow_dim", "fusion_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be > 0")
        if self.temporal.feature_dim != self.fusion_dim:
            raise ValueError(
                f"temporal.feature_dim ({self.temporal.feature_dim}) must equal "
                f"fusion_dim ({self.fusion_dim})"
            )

    @property
    def multi_label(self) -> bool:
        return self.temporal.multi_label


class FusedTemporalClassifier(nn.Module):
    """Early fusion: project rgb and flow frame features to one space, fuse them per frame by
    `AttentionFusion`, then one `TemporalClassifier`. Returns the per-frame fusion weights.
    """

    def __init__(self, config: FusedTemporalConfig):
        super().__init__()
        self.config = config
        self.rgb_projection = nn.Linear(config.rgb_dim, config.fusion_dim)
        self.flow_projection = nn.Linear(config.flow_dim, config.fusion_dim)
        self.fusion = AttentionFusion(config.fusion_dim)
        self.temporal = TemporalClassifier(config.temporal)

    def forward(
        self, rgb: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor
    ) -> ClassifierOutput:
        check_mask(rgb, mask)
        check_mask(flow, mask)
        fused, weights = self.fusion(
            self.rgb_projection(rgb), self.flow_projection(flow)
        )  # (B, T, F), (B, T, 2)
        output = self.temporal(fused, mask)
        weights = weights * mask.unsqueeze(-1).to(weights.dtype)
        return ClassifierOutput(output.logits, output.attention, weights)
