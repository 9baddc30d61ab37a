"""Soft attention over time steps, as in the course notes and Bahdanau et al. (2015).

Pooling: e_t = wᵀ tanh(W h_t + b), α = softmax(e), c = Σ α_t h_t.
Query-conditioned (decoders, question-guided): e_t = wᵀ tanh(W h_t + U q + b).
"""

from __future__ import annotations

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax of `scores` over `dim` with masked-out positions at exactly 0."""
    filled = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(filled, dim=dim)
    return weights * mask.to(weights.dtype)


class AttentionPooling(nn.Module):
    """Attention pooling of (B, T, D) steps into one (B, D) vector, with its weights (B, T)."""

    def __init__(self, input_dim: int, attention_dim: int):
        super().__init__()
        self.project = nn.Linear(input_dim, attention_dim)  # W, b
        self.score = nn.Linear(attention_dim, 1, bias=False)  # w

    def forward(self, steps: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        energies = self.score(torch.tanh(self.project(steps))).squeeze(-1)  # (B, T)
        weights = masked_softmax(energies, mask)
        context = torch.einsum("bt,btd->bd", weights, steps)
        return context, weights


class AdditiveAttention(nn.Module):
    """Query-conditioned attention: each query (B, Q) weighs the steps (B, T, D)."""

    def __init__(self, key_dim: int, query_dim: int, attention_dim: int):
        super().__init__()
        self.key = nn.Linear(key_dim, attention_dim)  # W, b
        self.query = nn.Linear(query_dim, attention_dim, bias=False)  # U
        self.score = nn.Linear(attention_dim, 1, bias=False)  # w

    def project_keys(self, steps: torch.Tensor) -> torch.Tensor:
        """W h_t + b for all steps; decoders compute it once per video and reuse it every word."""
        return self.key(steps)

    def forward(
        self,
        steps: torch.Tensor,
        mask: torch.Tensor,
        query: torch.Tensor,
        projected_keys: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys = self.key(steps) if projected_keys is None else projected_keys  # (B, T, A)
        energies = self.score(torch.tanh(keys + self.query(query).unsqueeze(1))).squeeze(
            -1
        )  # (B, T)
        weights = masked_softmax(energies, mask)
        context = torch.einsum("bt,btd->bd", weights, steps)
        return context, weights
