"""Action recognition pieces for the generic training loop: batches, losses (single-label CE with
optional label smoothing, multi-label BCE), validation, and multi-stage CNN→RNN training.

Every action model is called as `model(*batch.inputs, batch.mask)`, so one loss serves feature,
two-stream, spatial-map, 3D-clip and raw-frame models alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from hybrid_models.cnn_rnn import CNNRNNClassifier
from hybrid_models.sequences import pad_sequences
from hybrid_models.temporal_classifier import ClassifierOutput
from hybrid_models.training.loop import TrainConfig, TrainResult, TrainState, fit

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ActionBatch:
    """inputs: what the model takes before the mask, e.g. (features,), (rgb, flow), (clips,);
    mask: (B, T) bool; labels: (B,) int64 class indices, or (B, C) multi-hot floats.
    """

    inputs: tuple[torch.Tensor, ...]
    mask: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("inputs is empty")
        size = self.mask.shape[0]
        for index, tensor in enumerate(self.inputs):
            if tensor.shape[0] != size:
                raise ValueError(f"inputs[{index}] holds {tensor.shape[0]} videos, the mask {size}")
        if self.labels.shape[0] != size or self.labels.dim() not in (1, 2):
            raise ValueError(
                f"labels must be ({size},) or ({size}, C), got {tuple(self.labels.shape)}"
            )

    def to(self, device: torch.device | str) -> ActionBatch:
        return ActionBatch(
            inputs=tuple(tensor.to(device) for tensor in self.inputs),
            mask=self.mask.to(device),
            labels=self.labels.to(device),
        )


def collate_videos(
    videos: Sequence[Sequence[torch.Tensor]], labels: torch.Tensor, *, time_dim: int = 0
) -> ActionBatch:
    """Pad videos of different lengths into one `ActionBatch`.

    Each video is a sequence of its input streams (one for most models, (rgb, flow) for
    two-stream ones), all with the same number of frames along `time_dim`: 0 for (T, D),
    (T, C, H, W) or (T, 3, H, W); 1 for 3D-CNN clips (3, T, H, W).
    """
    if not videos:
        raise ValueError("videos is empty")
    num_streams = len(videos[0])
    if num_streams == 0 or any(len(video) != num_streams for video in videos):
        raise ValueError(f"every video must have the same number of streams ({num_streams})")
    inputs = []
    mask = None
    for stream in range(num_streams):
        frames = [video[stream].movedim(time_dim, 0) for video in videos]  # each (T_i, ...)
        padded, stream_mask = pad_sequences(frames)  # (B, T, ...), (B, T)
        if mask is not None and not torch.equal(mask, stream_mask):
            raise ValueError(f"stream {stream} has other lengths than stream 0")
        mask = stream_mask
        inputs.append(padded.movedim(1, time_dim + 1))
    assert mask is not None
    return ActionBatch(inputs=tuple(inputs), mask=mask, labels=labels)


def predict(model: nn.Module, batch: ActionBatch) -> ClassifierOutput:
    """The model's output on `batch` (in whatever mode the model is)."""
    return model(*batch.inputs, batch.mask)


def classification_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    multi_label: bool,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy on (B,) class indices, or BCE-with-logits on (B, C) multi-hot labels.

    Label smoothing ε: CE targets become (1−ε)·one-hot + ε/C; BCE targets (1−ε)·y + ε/2.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing ({label_smoothing}) must be in [0, 1)")
    if multi_label:
        if labels.shape != logits.shape:
            raise ValueError(
                f"multi-label labels must be {tuple(logits.shape)}, got {tuple(labels.shape)}"
            )
        targets = labels.to(logits.dtype) * (1 - label_smoothing) + label_smoothing / 2
        return F.binary_cross_entropy_with_logits(logits, targets)
    if labels.dim() != 1 or labels.dtype != torch.long:
        raise ValueError(
            f"single-label labels must be (B,) int64, got {tuple(labels.shape)} {labels.dtype}"
        )
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def _correct(logits: torch.Tensor, labels: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """Per decision: top-1 hits (B,) for single-label, per-class 0.5-threshold hits (B, C)."""
    if multi_label:
        return ((logits > 0) == (labels > 0.5)).float()
    return (logits.argmax(dim=-1) == labels).float()


def action_loss_fn(
    model: nn.Module, batch: ActionBatch, *, multi_label: bool, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss and accuracy of one batch, for `fit` (bind the keywords with functools.partial).

    The statistic is "accuracy" (top-1) for single-label models and "label_accuracy" (share
    of per-class decisions right at probability 0.5) for multi-label ones.
    """
    logits = predict(model, batch).logits
    loss = classification_loss(
        logits, batch.labels, multi_label=multi_label, label_smoothing=label_smoothing
    )
    name = "label_accuracy" if multi_label else "accuracy"
    return loss, {name: float(_correct(logits.detach(), batch.labels, multi_label).mean())}


def action_val_fn(
    model: nn.Module,
    *,
    batches: Iterable[ActionBatch],
    multi_label: bool,
    label_smoothing: float = 0.0,
) -> dict[str, float]:
    """Loss and accuracy over all `batches`, weighted by videos; the model is put in eval mode
    and given back in its mode. Batches go to the device of the model's first parameter.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss_sum = correct = decisions = 0.0
    num_videos = 0
    try:
        with torch.no_grad():
            for batch in batches:
                batch = batch.to(device)
                logits = predict(model, batch).logits
                size = batch.mask.shape[0]
                loss = classification_loss(
                    logits, batch.labels, multi_label=multi_label, label_smoothing=label_smoothing
                )
                loss_sum += float(loss) * size
                hits = _correct(logits, batch.labels, multi_label)
                correct += float(hits.sum())
                decisions += hits.numel()
                num_videos += size
    finally:
        model.train(was_training)
    if num_videos == 0:
        raise ValueError("batches is empty")
    name = "label_accuracy" if multi_label else "accuracy"
    return {"loss": loss_sum / num_videos, name: correct / decisions}


@dataclass(frozen=True, kw_only=True)
class MultiStageResult:
    frozen: TrainResult  # stage 1: temporal model on a frozen frame encoder
    finetune: TrainResult  # stage 2: everything, at the lower learning rate


def train_multistage(
    model: CNNRNNClassifier,
    *,
    train_batches: Callable[[int], Iterable[ActionBatch]],
    loss_fn: Callable[[nn.Module, ActionBatch], tuple[torch.Tensor, dict[str, float]]],
    val_fn: Callable[[nn.Module], dict[str, float]] | None,
    frozen_config: TrainConfig,
    finetune_config: TrainConfig,
    on_epoch_end: Callable[[str, TrainState, dict[str, float]], None] | None = None,
) -> MultiStageResult:
    """Freeze the frame encoder and train the temporal model; then unfreeze and fine-tune the
    whole model at `finetune_config`'s (lower) learning rate. Two successive `fit` calls.

    Stage 2 starts from stage 1's best weights (by its monitor). `on_epoch_end` also gets the
    stage name, "frozen" or "finetune". The model ends unfrozen, with stage 2's final weights.
    """
    if not finetune_config.learning_rate < frozen_config.learning_rate:
        raise ValueError(
            f"finetune learning_rate ({finetune_config.learning_rate}) must be lower than "
            f"the frozen stage's ({frozen_config.learning_rate})"
        )

    def stage_callback(stage: str) -> Callable[[TrainState, dict[str, float]], None] | None:
        if on_epoch_end is None:
            return None
        return lambda state, record: on_epoch_end(stage, state, record)

    model.freeze_frame_encoder()
    try:
        frozen = fit(
            model,
            train_batches=train_batches,
            loss_fn=loss_fn,
            val_fn=val_fn,
            config=frozen_config,
            on_epoch_end=stage_callback("frozen"),
        )
    finally:
        model.unfreeze_frame_encoder()
    if frozen.best_state_dict is not None:
        model.load_state_dict(frozen.best_state_dict)
    logger.info("multi-stage: frozen stage done (best epoch %s), fine-tuning", frozen.best_epoch)
    finetune = fit(
        model,
        train_batches=train_batches,
        loss_fn=loss_fn,
        val_fn=val_fn,
        config=finetune_config,
        on_epoch_end=stage_callback("finetune"),
    )
    return MultiStageResult(frozen=frozen, finetune=finetune)
