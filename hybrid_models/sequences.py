"""Variable-length videos as padded batches with a mask, and masked reductions over time.

Every temporal model takes `features (B, T, D)` plus `mask (B, T)` (True for
real frames), so videos of different lengths share one batch.
"""

from __future__ import annotations

import torch


def pad_sequences(
    sequences: list[torch.Tensor], *, pad_value: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (T_i, ...) tensors into (B, T_max, ...) and a (B, T_max) bool mask."""
    if not sequences:
        raise ValueError("sequences is empty")
    lengths = [len(s) for s in sequences]
    if min(lengths) == 0:
        raise ValueError(f"sequence {lengths.index(0)} has no frames")
    tail = sequences[0].shape[1:]
    for index, sequence in enumerate(sequences):
        if sequence.shape[1:] != tail:
            raise ValueError(
                f"sequence {index} has shape {tuple(sequence.shape)}, expected (T, {', '.join(map(str, tail))})"
            )
    batch = sequences[0].new_full((len(sequences), max(lengths), *tail), pad_value)
    mask = torch.zeros(len(sequences), max(lengths), dtype=torch.bool, device=batch.device)
    for index, sequence in enumerate(sequences):
        batch[index, : len(sequence)] = sequence
        mask[index, : len(sequence)] = True
    return batch, mask


def lengths_of(mask: torch.Tensor) -> torch.Tensor:
    """Number of real steps per row of a (B, T) mask, as int64 on the mask's device."""
    return mask.sum(dim=1).long()


def check_mask(features: torch.Tensor, mask: torch.Tensor) -> None:
    """Raise ValueError unless `mask` is a left-aligned (B, T) mask matching `features` with ≥1 step per row."""
    if mask.shape != features.shape[:2]:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match features {tuple(features.shape[:2])}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool, got {mask.dtype}")
    lengths = lengths_of(mask)
    if bool((lengths == 0).any()):
        raise ValueError(f"video {int((lengths == 0).nonzero()[0])} in the batch has no frames")
    # Left alignment: every row is ones then zeros, so a row equals its own prefix mask.
    positions = torch.arange(mask.shape[1], device=mask.device)
    if not torch.equal(mask, positions.unsqueeze(0) < lengths.unsqueeze(1)):
        raise ValueError("mask must be left-aligned (real frames first, padding after)")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real time steps: (B, T, ...) -> (B, ...)."""
    weights = mask.to(x.dtype).view(*mask.shape, *([1] * (x.dim() - 2)))
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def masked_last(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last real step of each row: (B, T, D) -> (B, D)."""
    last = (lengths_of(mask) - 1).clamp(min=0)
    return x[torch.arange(x.shape[0], device=x.device), last]


def reverse_padded(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each row's real steps in reverse order, padding left in place: (B, T, ...) -> (B, T, ...)."""
    lengths = lengths_of(mask)
    positions = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # (1, T)
    source = torch.where(
        positions < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - positions, positions
    )
    index = source.view(*source.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)
