"""ConvLSTM with peephole connections over spatial feature maps (Shi et al. 2015,
https://arxiv.org/abs/1506.04214): a classifier of (B, T, C, H, W) map sequences and a
next-map predictor for spatiotemporal forecasting.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hybrid_models.sequences import check_mask
from hybrid_models.temporal_classifier import ClassifierOutput


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step, (B, C_in, H, W) input and (h, c) state -> new (h, c), each (B, C_h, H, W).

        i  = σ(W_xi∗x + W_hi∗h + W_ci∘c  + b_i)
        f  = σ(W_xf∗x + W_hf∗h + W_cf∘c  + b_f)
        c' = f∘c + i∘tanh(W_xc∗x + W_hc∗h + b_c)
        o  = σ(W_xo∗x + W_ho∗h + W_co∘c' + b_o)
        h' = o∘tanh(c')

    ∗ is convolution ("same" padding), ∘ the Hadamard product; the peepholes W_c· hold one
    weight per channel and position, so the cell is tied to one map size (H, W).
    """

    def __init__(
        self, input_channels: int, hidden_channels: int, kernel_size: int, height: int, width: int
    ):
        super().__init__()
        self.hidden_channels = hidden_channels
        # One convolution of [x; h] computes W_x·∗x + W_h·∗h + b· for the gates i, f, c, o.
        self.gates = nn.Conv2d(
            input_channels + hidden_channels,
            4 * hidden_channels,
            kernel_size,
            padding=kernel_size // 2,
        )
        self.peephole_i = nn.Parameter(torch.zeros(hidden_channels, height, width))  # W_ci
        self.peephole_f = nn.Parameter(torch.zeros(hidden_channels, height, width))  # W_cf
        self.peephole_o = nn.Parameter(torch.zeros(hidden_channels, height, width))  # W_co
        with torch.no_grad():
            # A forget bias of 1 keeps memory by default early in training (Jozefowicz et al. 2015).
            self.gates.bias[hidden_channels : 2 * hidden_channels].fill_(1.0)

    def initial_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (h, c) for a (B, C_in, H, W) input."""
        shape = (x.shape[0], self.hidden_channels, *x.shape[2:])
        return x.new_zeros(shape), x.new_zeros(shape)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        x_i, x_f, x_c, x_o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        i = torch.sigmoid(x_i + self.peephole_i * c)
        f = torch.sigmoid(x_f + self.peephole_f * c)
        c_next = f * c + i * torch.tanh(x_c)
        o = torch.sigmoid(x_o + self.peephole_o * c_next)
        return o * torch.tanh(c_next), c_next


def _check_maps(
    maps: torch.Tensor, mask: torch.Tensor, channels: int, height: int, width: int
) -> None:
    if maps.dim() != 5 or tuple(maps.shape[2:]) != (channels, height, width):
        raise ValueError(
            f"maps must be (B, T, {channels}, {height}, {width}), got {tuple(maps.shape)}"
        )
    check_mask(maps, mask)


@dataclass(frozen=True, kw_only=True)
class ConvLSTMConfig:
    input_channels: int
    height: int
    width: int
    hidden_channels: int = 16
    kernel_size: int = 3
    num_layers: int = 1

    def __post_init__(self) -> None:
        for name in ("input_channels", "height", "width", "hidden_channels", "num_layers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be > 0")
        if self.kernel_size <= 0 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size ({self.kernel_size}) must be odd and > 0")


class ConvLSTM(nn.Module):
    """Stacked ConvLSTM over (B, T, C, H, W) maps with a (B, T) mask -> (B, T, C_h, H, W) states.

    A padded step leaves the state unchanged, so after the loop each layer's state is the
    one at its video's last real frame.
    """

    def __init__(self, config: ConvLSTMConfig):
        super().__init__()
        self.config = config
        self.cells = nn.ModuleList(
            ConvLSTMCell(
                config.input_channels if layer == 0 else config.hidden_channels,
                config.hidden_channels,
                config.kernel_size,
                config.height,
                config.width,
            )
            for layer in range(config.num_layers)
        )

    def forward(self, maps: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the top layer's states (B, T, C_h, H, W) and its last real state (B, C_h, H, W)."""
        c = self.config
        _check_maps(maps, mask, c.input_channels, c.height, c.width)
        states = [cell.initial_state(maps[:, 0]) for cell in self.cells]
        outputs = []
        for t in range(maps.shape[1]):
            keep = mask[:, t].view(-1, 1, 1, 1)  # (B, 1, 1, 1)
            x = maps[:, t]  # (B, C, H, W)
            for layer, cell in enumerate(self.cells):
                h, c_state = cell(x, states[layer])
                h = torch.where(keep, h, states[layer][0])
                c_state = torch.where(keep, c_state, states[layer][1])
                states[layer] = (h, c_state)
                x = h
            outputs.append(x)
        return torch.stack(outputs, dim=1), states[-1][0]  # (B, T, C_h, H, W), (B, C_h, H, W)


@dataclass(frozen=True, kw_only=True)
class ConvLSTMClassifierConfig(ConvLSTMConfig):
    num_classes: int
    dropout: float = 0.0
    multi_label: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes <= 0:
            raise ValueError(f"num_classes ({self.num_classes}) must be > 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout ({self.dropout}) must be in [0, 1)")


class ConvLSTMClassifier(nn.Module):
    """(B, T, C, H, W) maps and (B, T) mask -> `ClassifierOutput`: the last real hidden map,
    averaged over positions, through a linear head (attention None).
    """

    def __init__(self, config: ConvLSTMClassifierConfig):
        super().__init__()
        self.config = config
        self.convlstm = ConvLSTM(config)
        self.head = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(config.hidden_channels, config.num_classes)
        )

    def forward(self, maps: torch.Tensor, mask: torch.Tensor) -> ClassifierOutput:
        _, last = self.convlstm(maps, mask)  # (B, C_h, H, W)
        return ClassifierOutput(self.head(last.mean(dim=(2, 3))), None)


class ConvLSTMPredictor(nn.Module):
    """(B, T, C, H, W) maps and mask -> (B, T, C, H, W) predictions; step t forecasts map t+1."""

    def __init__(self, config: ConvLSTMConfig):
        super().__init__()
        self.config = config
        self.convlstm = ConvLSTM(config)
        self.readout = nn.Conv2d(config.hidden_channels, config.input_channels, kernel_size=1)

    def forward(self, maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        states, _ = self.convlstm(maps, mask)  # (B, T, C_h, H, W)
        b, t = states.shape[:2]
        predictions = self.readout(states.flatten(0, 1))  # (B·T, C, H, W)
        return predictions.view(b, t, *predictions.shape[1:])  # (B, T, C, H, W)


def next_map_mse(predictions: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error of predictions[:, t] against maps[:, t+1], over steps where both are real."""
    pairs = (mask[:, :-1] & mask[:, 1:]).to(maps.dtype)  # (B, T-1)
    if not bool(pairs.any()):
        raise ValueError("no video in the batch has two real frames to predict between")
    errors = (predictions[:, :-1] - maps[:, 1:]).pow(2).mean(dim=(2, 3, 4))  # (B, T-1)
    return (errors * pairs).sum() / pairs.sum()
