"""The generic training loop every task uses: epochs of batches, validation, early stopping,
and a resumable `TrainState` (resuming after epoch k gives exactly the uninterrupted weights).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from hybrid_models.checkpoints import tree_from_bytes, tree_to_bytes

logger = logging.getLogger(__name__)


class MovableBatch(Protocol):
    """A batch dataclass that moves its own tensors (e.g. `ActionBatch`, `CaptionBatch`)."""

    def to(self, device: torch.device | str) -> Any: ...


# A batch is a dict of tensors (other values pass through) or an object with `.to(device)`.
Batch = Mapping[str, Any] | MovableBatch
LossFn = Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, float]]]


def move_batch(batch: Batch, device: torch.device | str) -> Batch:
    """`batch` on `device`: dict values that are tensors are moved, objects move themselves."""
    if isinstance(batch, Mapping):
        return {
            key: value.to(device) if isinstance(value, torch.Tensor) else value
            for key, value in batch.items()
        }
    if callable(getattr(batch, "to", None)):
        return batch.to(device)
    raise TypeError(f"a batch must be a dict or have .to(device), got {type(batch).__name__}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = 5.0  # max global gradient norm; None: no clipping
    patience: int | None = None  # early stopping: epochs without improvement of `monitor`
    monitor: str = "val_loss"  # a key of the epoch record (val_fn's keys get a "val_" prefix)
    mode: Literal["min", "max"] = "min"
    seed: int = 0  # seeds the RNG that training draws from (dropout, random ops in the model)
    device: str = "cpu"
    amp: bool = False  # autocast + GradScaler; CUDA only
    progress: bool = True  # a tqdm bar over each epoch's batches

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ValueError(f"epochs ({self.epochs}) must be > 0")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate ({self.learning_rate}) must be > 0")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay ({self.weight_decay}) must be >= 0")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip ({self.grad_clip}) must be > 0 or None")
        if self.patience is not None and self.patience <= 0:
            raise ValueError(f"patience ({self.patience}) must be > 0 or None")
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode {self.mode!r} must be 'min' or 'max'")
        try:
            device = torch.device(self.device)
        except RuntimeError as error:
            raise ValueError(f"device {self.device!r} is not a torch device") from error
        if self.amp and device.type != "cuda":
            raise ValueError(f"amp needs a CUDA device, got device {self.device!r}")


@dataclass(frozen=True, kw_only=True, eq=False)  # eq=False: tensors have no single truth value
class TrainState:
    """Everything needed to continue training exactly where it stopped.

    `epoch` counts the epochs completed; `rng_state` is the state of the RNG that training
    draws from, as it was after that epoch.
    """

    epoch: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    scaler_state: dict[str, Any] | None
    rng_state: torch.Tensor
    cuda_rng_state: torch.Tensor | None
    best_metric: float | None
    best_epoch: int | None
    best_model_state: dict[str, torch.Tensor] | None
    epochs_without_improvement: int
    history: tuple[dict[str, float], ...] = field(default_factory=tuple)

    def to_bytes(self) -> bytes:
        """One safetensors blob (tensors) with JSON metadata (the rest); no pickle."""
        return tree_to_bytes({name: getattr(self, name) for name in self.__dataclass_fields__})

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainState:
        tree = tree_from_bytes(data)
        if not isinstance(tree, dict) or set(tree) != set(cls.__dataclass_fields__):
            raise ValueError("bytes do not hold a TrainState")
        return cls(**tree)


@dataclass(frozen=True, kw_only=True, eq=False)
class TrainResult:
    history: list[dict[str, float]]  # per epoch: epoch, train_loss, train_*, val_*, lr, seconds
    best_epoch: int | None  # index of the epoch with the best monitored value
    best_metric: float | None
    best_state_dict: dict[str, torch.Tensor] | None  # the model's weights after best_epoch
    state: TrainState  # after the last epoch run; the model itself holds these final weights
    stopped_early: bool


def fit(
    model: nn.Module,
    *,
    train_batches: Callable[[int], Iterable[Batch]],
    loss_fn: LossFn,
    val_fn: Callable[[nn.Module], dict[str, float]] | None,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer | None = None,
    start: TrainState | None = None,
    on_epoch_end: Callable[[TrainState, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train `model` in place for epochs `start.epoch` (0 without `start`) to `config.epochs`.

    `train_batches(epoch)` yields that epoch's batches (any order or curriculum the caller
    wants, drawn deterministically from `epoch`); the loop moves them to the device.
    `loss_fn(model, batch)` returns the loss and per-batch statistics (averaged into
    "train_<name>"). `val_fn(model)` runs after each epoch in eval mode under no_grad, and its
    metrics are recorded as "val_<name>"; `val_fn` moves its own data. The optimizer defaults to
    AdamW over the parameters that require grad. Random ops during training (dropout) draw from
    torch's global RNG, which the loop sets from `config.seed` (or `start`) and restores on
    return, so runs are reproducible and resumable without touching the caller's RNG.
    """
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {config.device!r} was asked for but CUDA is not available")
    if val_fn is None and config.monitor.startswith("val_"):
        raise ValueError(
            f"monitor {config.monitor!r} needs a val_fn; without one monitor 'train_loss'"
        )
    if start is not None and start.epoch > config.epochs:
        raise ValueError(f"start is after epoch {start.epoch}, beyond epochs ({config.epochs})")
    model.to(device)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("model has no parameter that requires grad")
    if optimizer is None:
        optimizer = torch.optim.AdamW(
            parameters, lr=config.learning_rate, weight_decay=config.weight_decay
        )
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp)
    progress = _Progress(config.mode)
    history: list[dict[str, float]] = []
    if start is None:
        rng_state = torch.Generator().manual_seed(config.seed).get_state()
        cuda_rng_state = None
    else:
        model.load_state_dict(start.model_state)
        optimizer.load_state_dict(start.optimizer_state)
        if start.scaler_state is not None:
            scaler.load_state_dict(start.scaler_state)
        rng_state, cuda_rng_state = start.rng_state, start.cuda_rng_state
        progress = _Progress.resume(config.mode, start)
        history = [dict(record) for record in start.history]
    first_epoch = 0 if start is None else start.epoch

    cuda_devices = [device] if device.type == "cuda" else []
    stopped_early = False
    state = start
    with torch.random.fork_rng(devices=cuda_devices):
        torch.set_rng_state(rng_state)
        if device.type == "cuda":
            if cuda_rng_state is not None:
                torch.cuda.set_rng_state(cuda_rng_state, device)
            else:
                torch.cuda.manual_seed(config.seed)
        for epoch in range(first_epoch, config.epochs):
            started = time.perf_counter()
            record = _train_epoch(
                model, train_batches, loss_fn, optimizer, scaler, parameters, epoch, config
            )
            if val_fn is not None:
                model.eval()
                with torch.no_grad():
                    metrics = val_fn(model)
                record.update({f"val_{name}": float(value) for name, value in metrics.items()})
            record["lr"] = float(optimizer.param_groups[0]["lr"])
            record["seconds"] = time.perf_counter() - started
            record = {"epoch": epoch, **record}
            if config.monitor not in record:
                raise ValueError(
                    f"monitor {config.monitor!r} is not among the epoch's values "
                    f"{', '.join(sorted(record))}"
                )
            if progress.update(epoch, record[config.monitor]):
                progress.best_model_state = _cloned(model.state_dict())
            history.append(record)
            logger.info("epoch %d: %s", epoch, record)
            stop = config.patience is not None and progress.stale >= config.patience
            last = stop or epoch == config.epochs - 1
            if on_epoch_end is not None or last:
                state = _snapshot(model, optimizer, scaler, device, epoch + 1, progress, history)
            if on_epoch_end is not None:
                on_epoch_end(state, dict(record))
            if stop:
                logger.info(
                    "early stop after epoch %d: %s has not improved for %d epochs (best %s at %d)",
                    epoch,
                    config.monitor,
                    progress.stale,
                    progress.best,
                    progress.best_epoch,
                )
                stopped_early = True
                break
    assert state is not None
    return TrainResult(
        history=history,
        best_epoch=progress.best_epoch,
        best_metric=progress.best,
        best_state_dict=progress.best_model_state,
        state=state,
        stopped_early=stopped_early,
    )


def _train_epoch(
    model: nn.Module,
    train_batches: Callable[[int], Iterable[Batch]],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    parameters: list[nn.Parameter],
    epoch: int,
    config: TrainConfig,
) -> dict[str, float]:
    device = torch.device(config.device)
    model.train()
    totals: dict[str, float] = {}
    num_batches = 0
    for batch in tqdm(
        train_batches(epoch), desc=f"epoch {epoch}", disable=not config.progress, leave=False
    ):
        batch = move_batch(batch, device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, enabled=config.amp):
            loss, stats = loss_fn(model, batch)
        if not torch.isfinite(loss.detach()):
            raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}, batch {num_batches}")
        scaler.scale(loss).backward()
        if config.grad_clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        for name, value in {"loss": float(loss.detach()), **stats}.items():
            totals[name] = totals.get(name, 0.0) + float(value)
        num_batches += 1
    if num_batches == 0:
        raise ValueError(f"train_batches({epoch}) yielded no batches")
    return {f"train_{name}": total / num_batches for name, total in totals.items()}


class _Progress:
    """Best monitored value so far and how many epochs have passed without improving on it."""

    def __init__(self, mode: str):
        self.mode = mode
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_model_state: dict[str, torch.Tensor] | None = None
        self.stale = 0

    @classmethod
    def resume(cls, mode: str, state: TrainState) -> _Progress:
        progress = cls(mode)
        progress.best, progress.best_epoch = state.best_metric, state.best_epoch
        progress.best_model_state = state.best_model_state
        progress.stale = state.epochs_without_improvement
        return progress

    def update(self, epoch: int, value: float) -> bool:
        """Record `value` for `epoch`; True when it is a new best (NaN never is)."""
        value = float(value)
        improved = not math.isnan(value) and (
            self.best is None or (value < self.best if self.mode == "min" else value > self.best)
        )
        if improved:
            self.best, self.best_epoch, self.stale = value, epoch, 0
        else:
            self.stale += 1
        return improved


def _cloned(state: Mapping[str, Any]) -> dict[str, Any]:
    # state_dict() returns live references; a snapshot must not change as training goes on.
    return copy.deepcopy(dict(state))


def _snapshot(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    epochs_done: int,
    progress: _Progress,
    history: list[dict[str, float]],
) -> TrainState:
    return TrainState(
        epoch=epochs_done,
        model_state=_cloned(model.state_dict()),
        optimizer_state=_cloned(optimizer.state_dict()),
        scaler_state=_cloned(scaler.state_dict()) if scaler.is_enabled() else None,
        rng_state=torch.get_rng_state(),
        cuda_rng_state=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        best_metric=progress.best,
        best_epoch=progress.best_epoch,
        best_model_state=progress.best_model_state,
        epochs_without_improvement=progress.stale,
        history=tuple(dict(record) for record in history),
    )
