"""What every `vidpipe train` task shares: seeds, devices, the model folder written as training goes
(train_config.json first, training_log.jsonl and state/ each epoch, model.json last), resume.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import torch
from torch import nn

from hybrid_models.backbones import resolve_device
from hybrid_models.training.loop import TrainConfig, TrainResult, TrainState, fit
from pipelines.artifacts import META_FILE, TRAIN_CONFIG_FILE, TRAINING_LOG_FILE, write_model

logger = logging.getLogger(__name__)

STATE_DIR = "state"
# Called after each epoch once its state is saved: (stage, state, the epoch's log record).
EpochHook = Callable[[str, TrainState, dict[str, float]], None]
_TMP_SUFFIX = ".tmp-writing"


def shared_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The `vidpipe train` flags every task's config takes, under the configs' field names."""
    return {
        "model": args.model,
        "features": args.features,
        "manifest": args.manifest,
        "out": args.out,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "patience": args.patience or None,  # 0: never stop early
        "device": args.device,
        "amp": args.device.startswith("cuda") and not args.no_amp,
        "resume": args.resume,
        "progress": not args.no_progress,
    }


def generator(seed: int, *stream: int) -> torch.Generator:
    """A CPU generator seeded from `seed` and a stream path (e.g. the epoch), independent of
    the global RNG: batches of epoch k are the same whether or not the run was resumed.
    """
    # SeedSequence-style mixing keeps (seed, 1) and (seed + 1, 0) apart.
    mixed = seed
    for part in stream:
        mixed = (mixed * 1_000_003 + part + 0x9E3779B9) % (2**63 - 1)
    return torch.Generator().manual_seed(mixed)


def check_device(device: str) -> torch.device:
    """`device` as a torch.device; ValueError when it is not on this machine (no CPU fallback)."""
    return resolve_device(device)


def jsonable(value: Any) -> Any:
    """A dataclass (nested ones too), tuple or mapping as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class ModelFolder:
    """The folder a training run writes (ROOT/models/<id>/), through fsspec."""

    uri: str

    def _path(self, name: str) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, path = fsspec.core.url_to_fs(self.uri)
        return fs, f"{path.rstrip('/')}/{name}"

    def exists(self, name: str) -> bool:
        fs, path = self._path(name)
        return fs.exists(path)

    @property
    def is_complete(self) -> bool:
        return self.exists(META_FILE)

    def has_state(self) -> bool:
        fs, path = self._path(STATE_DIR)
        return fs.exists(path) and bool(fs.ls(path, detail=False))

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write `name` atomically: a temporary name, then a rename (a kill leaves the old file)."""
        fs, path = self._path(name)
        parent = path.rsplit("/", 1)[0]
        fs.makedirs(parent, exist_ok=True)
        temporary = f"{path}.{uuid.uuid4().hex}{_TMP_SUFFIX}"
        with fs.open(temporary, "wb") as f:
            f.write(data)
        fs.mv(temporary, path)

    def read_bytes(self, name: str) -> bytes:
        fs, path = self._path(name)
        with fs.open(path, "rb") as f:
            return f.read()

    def write_json(self, name: str, value: Any) -> None:
        self.write_bytes(name, json.dumps(value, indent=2, sort_keys=True).encode())

    def read_json(self, name: str) -> Any:
        return json.loads(self.read_bytes(name))

    def state_name(self, stage: str) -> str:
        return f"{STATE_DIR}/{stage}.safetensors"

    def save_state(self, stage: str, state: TrainState) -> None:
        self.write_bytes(self.state_name(stage), state.to_bytes())

    def load_state(self, stage: str) -> TrainState | None:
        """The state saved after the last finished epoch of `stage`, or None."""
        if not self.exists(self.state_name(stage)):
            return None
        return TrainState.from_bytes(self.read_bytes(self.state_name(stage)))

    def write_log(self, records: Iterable[Mapping[str, Any]]) -> None:
        """The whole training log so far (rewritten each epoch: a resumed run never repeats lines)."""
        text = "".join(json.dumps(dict(r), allow_nan=True) + "\n" for r in records)
        self.write_bytes(TRAINING_LOG_FILE, text.encode())


def check_out(folder: ModelFolder, train_config: Mapping[str, Any], *, resume: bool) -> None:
    """ValueError unless `folder` can take a new run (no model, no state) or, with `resume`,
    holds the state of an unfinished run with the same settings (ignoring `resume`, `epochs`,
    `progress` and `device`). Reads only.
    """
    if resume:
        if folder.is_complete:
            raise ValueError(f"{folder.uri} holds a finished model: there is nothing to resume")
        if not folder.has_state() or not folder.exists(TRAIN_CONFIG_FILE):
            raise ValueError(f"{folder.uri} has no training state to resume from")
        before = folder.read_json(TRAIN_CONFIG_FILE)
        now = jsonable(train_config)
        ignored = {"resume", "epochs", "progress", "device"}
        changed = sorted(
            key
            for key in set(before) | set(now)
            if key not in ignored and before.get(key) != now.get(key)
        )
        if changed:
            raise ValueError(
                f"cannot resume {folder.uri} with other settings: {', '.join(changed)} changed"
            )
    elif folder.is_complete:
        raise ValueError(f"{folder.uri} already holds a trained model; choose another --out")
    elif folder.has_state():
        raise ValueError(
            f"{folder.uri} holds the state of an unfinished run; pass --resume or choose "
            "another --out"
        )


def start_run(folder: ModelFolder, train_config: Mapping[str, Any], *, resume: bool) -> None:
    """`check_out`, then record the resolved `train_config` (train_config.json) in `folder`."""
    check_out(folder, train_config, resume=resume)
    folder.write_json(TRAIN_CONFIG_FILE, jsonable(train_config))


class EpochRecorder:
    """`on_epoch_end` for `fit`: saves the state of `stage`, rewrites the JSONL log, logs a line.

    Records of earlier stages (multi-stage runs) are kept in front; each record gets "stage".
    """

    def __init__(self, folder: ModelFolder, *, earlier: Iterable[Mapping[str, Any]] = ()):
        self.folder = folder
        self.records: list[dict[str, Any]] = [dict(r) for r in earlier]

    def callback(self, stage: str) -> Callable[[TrainState, dict[str, float]], None]:
        def on_epoch_end(state: TrainState, record: dict[str, float]) -> None:
            self.folder.save_state(stage, state)
            self.records = [r for r in self.records if r.get("stage") != stage]
            self.records += [{"stage": stage, **r} for r in state.history]
            self.folder.write_log(self.records)
            shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}
            logger.info("%s epoch %s: %s", stage, record.get("epoch"), shown)

        return on_epoch_end

    def add_result(self, stage: str, result: TrainResult) -> None:
        """Records of a stage that finished without calling back (e.g. already done on resume)."""
        self.records = [r for r in self.records if r.get("stage") != stage]
        self.records += [{"stage": stage, **r} for r in result.history]
        self.folder.write_log(self.records)


def stage_finished(state: TrainState | None, *, epochs: int, patience: int | None) -> bool:
    """Whether a stage whose last saved state is `state` has nothing left to run."""
    if state is None:
        return False
    return state.epoch >= epochs or (
        patience is not None and state.epochs_without_improvement >= patience
    )


def result_from_state(state: TrainState) -> TrainResult:
    """The `TrainResult` of a stage that finished in an earlier (resumed) run."""
    return TrainResult(
        history=[dict(r) for r in state.history],
        best_epoch=state.best_epoch,
        best_metric=state.best_metric,
        best_state_dict=state.best_model_state,
        state=state,
        stopped_early=False,
    )


def finish_run(
    folder: ModelFolder,
    model: torch.nn.Module,
    config: Any,
    *,
    name: str,
    extra: Mapping[str, Any],
    records: Iterable[Mapping[str, Any]],
    train_config: Mapping[str, Any],
) -> dict[str, Any]:
    """Write the model (model.json last, which marks the folder complete); returns model.json."""
    meta = write_model(
        folder.uri,
        model.cpu(),
        config,
        name=name,
        extra=extra,
        training_log=records,
        train_config=jsonable(train_config),
    )
    logger.info("wrote model %s to %s", name, folder.uri)
    return meta


class Stopwatch:
    """Seconds since construction (wall clock), for the training summaries."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


# ------------------------------------------------------------------ input standardization


@dataclass(frozen=True, eq=False)
class Standardization:
    """Per-dimension mean and std of an input stream over the training frames."""

    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)

    @classmethod
    def of(cls, frames: torch.Tensor, *, floor_fraction: float = 0.1) -> Standardization:
        """Statistics of (N, D) `frames`; each std is at least `floor_fraction` of their median,
        so a dimension that barely varies (a dead ReLU) is not blown up into noise.
        """
        frames = frames.double()
        std = frames.std(dim=0)
        floor = floor_fraction * std.median() + 1e-12
        return cls(mean=frames.mean(dim=0).float(), std=torch.clamp(std, min=floor).float())

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std  # (..., D)


def fold_into_linear(weight: torch.Tensor, bias: torch.Tensor, norm: Standardization):
    """(W', b') with W'x + b' = W·((x − μ)/σ) + b: standardization folded into an affine map."""
    scaled = weight / norm.std.to(weight.dtype)  # (out, D)
    return scaled, bias - scaled @ norm.mean.to(weight.dtype)


def fit_stage(
    stage: str,
    model: nn.Module,
    *,
    folder: ModelFolder,
    resume: bool,
    recorder: EpochRecorder,
    train_config: TrainConfig,
    train_batches: Callable[[int], Iterator[Any] | list[Any]],
    loss_fn: Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, float]]],
    val_fn: Callable[[nn.Module], dict[str, float]],
    on_epoch_end: EpochHook | None,
) -> TrainResult:
    """One `fit`, continued from the stage's saved state on resume; the model ends with the
    stage's best weights (by `train_config.monitor`).
    """
    state = folder.load_state(stage) if resume else None
    if stage_finished(state, epochs=train_config.epochs, patience=train_config.patience):
        assert state is not None
        logger.info("stage %s finished before the resume; skipping it", stage)
        result = result_from_state(state)
        recorder.add_result(stage, result)
    else:
        record_epoch = recorder.callback(stage)

        def callback(state: TrainState, record: dict[str, float]) -> None:
            record_epoch(state, record)
            if on_epoch_end is not None:
                on_epoch_end(stage, state, record)

        result = fit(
            model,
            train_batches=train_batches,
            loss_fn=loss_fn,
            val_fn=val_fn,
            config=train_config,
            start=state,
            on_epoch_end=callback,
        )
    model.load_state_dict(result.best_state_dict or result.state.model_state)
    return result
