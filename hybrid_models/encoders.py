"""Recurrent encoders over frame features (LSTM or GRU, uni- or bidirectional).

Padding is packed away so a short video's final state is its own, not the
state after a run of zero frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from hybrid_models.sequences import check_mask, lengths_of

Cell = Literal["lstm", "gru"]


@dataclass(frozen=True, kw_only=True)
class RecurrentConfig:
    input_dim: int
    hidden_dim: int = 128
    cell: Cell = "lstm"
    bidirectional: bool = False
    num_layers: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.input_dim <= 0:
            raise ValueError(f"input_dim ({self.input_dim}) must be > 0")
        if self.hidden_dim <= 0:
            raise ValueError(f"hidden_dim ({self.hidden_dim}) must be > 0")
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"cell {self.cell!r} must be 'lstm' or 'gru'")
        if self.num_layers <= 0:
            raise ValueError(f"num_layers ({self.num_layers}) must be > 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout ({self.dropout}) must be in [0, 1)")

    @property
    def output_dim(self) -> int:
        return self.hidden_dim * (2 if self.bidirectional else 1)


class RecurrentEncoder(nn.Module):
    """(B, T, D) features and (B, T) mask -> (B, T, H·dirs) states and the (B, H·dirs) final state.

    The final state concatenates the forward direction's last real step and,
    when bidirectional, the backward direction's state at the first step.
    """

    def __init__(self, config: RecurrentConfig):
        super().__init__()
        self.config = config
        rnn = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = rnn(
            config.input_dim,
            config.hidden_dim,
            num_layers=config.num_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_mask(features, mask)
        lengths = lengths_of(mask).cpu()
        packed = pack_padded_sequence(features, lengths, batch_first=True, enforce_sorted=False)
        packed_out, hidden = self.rnn(packed)
        states, _ = pad_packed_sequence(
            packed_out, batch_first=True, total_length=features.shape[1]
        )
        if self.config.cell == "lstm":
            hidden = hidden[0]
        # hidden: (layers · dirs, B, H); keep the top layer's directions.
        top = hidden.view(self.config.num_layers, -1, hidden.shape[1], hidden.shape[2])[
            -1
        ]  # (dirs, B, H)
        final = top.transpose(0, 1).reshape(hidden.shape[1], -1)  # (B, H · dirs)
        return states, final
