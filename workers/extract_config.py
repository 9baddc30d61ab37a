"""The settings of one stage-1 run, validated before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from schemas import SPLITS, STREAMS

DECODERS = ("auto", "decord", "pyav")
ROTATIONS = ("apply", "ignore")
DTYPES = ("float32", "float16")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True, kw_only=True)
class ExtractConfig:
    manifest: str
    root: str
    sampling: str = "uniform:8"
    backbone: str = "resnet18"
    weights: str = "none"
    seed: int = 0  # initialises random weights (weights="none")
    input_size: int | None = None  # None: the weights' own crop size, else 224
    streams: tuple[str, ...] = ("rgb",)
    decoder: Literal["auto", "decord", "pyav"] = "auto"
    rotation: Literal["apply", "ignore"] = "apply"
    dtype: Literal["float32", "float16"] = "float32"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    spatial_map: bool = False
    batch_size: int = 8  # videos per model call
    concurrency: int = 1  # model actors
    num_decoders: int | None = None  # decode actors; None: every CPU on CPU, else those left
    num_gpus_per_worker: float | None = None  # None: one GPU per model actor when there is one
    decode_timeout_s: float = 120.0
    ray_address: str | None = None
    splits: tuple[str, ...] | None = None
    limit: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.streams or any(s not in STREAMS for s in self.streams):
            raise ValueError(
                f"streams {','.join(self.streams)!r} must be a non-empty subset of {','.join(STREAMS)}"
            )
        if len(set(self.streams)) != len(self.streams):
            raise ValueError(f"streams {','.join(self.streams)!r} repeats a stream")
        for name, value, allowed in (
            ("decoder", self.decoder, DECODERS),
            ("rotation", self.rotation, ROTATIONS),
            ("dtype", self.dtype, DTYPES),
            ("precision", self.precision, PRECISIONS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} {value!r} is not one of {', '.join(allowed)}")
        if self.input_size is not None and self.input_size < 16:
            raise ValueError(f"input_size ({self.input_size}) must be >= 16")
        for name in ("batch_size", "concurrency"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be > 0")
        if self.num_decoders is not None and self.num_decoders <= 0:
            raise ValueError(f"num_decoders ({self.num_decoders}) must be > 0")
        if self.num_gpus_per_worker is not None and self.num_gpus_per_worker < 0:
            raise ValueError(f"num_gpus_per_worker ({self.num_gpus_per_worker}) must be >= 0")
        if self.decode_timeout_s <= 0:
            raise ValueError(f"decode_timeout_s ({self.decode_timeout_s}) must be > 0")
        if self.splits is not None and any(s not in SPLITS for s in self.splits):
            raise ValueError(
                f"splits {','.join(self.splits)!r} must be a subset of {','.join(SPLITS)}"
            )
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"limit ({self.limit}) must be > 0")
