"""Lineage: what produced a feature set or a model, and the ids derived from it.

A feature set's id is a hash of everything that changes its numbers, so
different settings never share a folder and equal settings always do.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import platform
from dataclasses import dataclass
from typing import Any

from schemas.ids import content_hash, slug

LINEAGE_KEY = b"vidpipe.lineage"
TRACKED_LIBRARIES = (
    "vidpipe",
    "torch",
    "torchvision",
    "decord",
    "av",
    "opencv-python-headless",
    "numpy",
    "pyarrow",
    "ray",
    "apache-beam",
)


@dataclass(frozen=True, kw_only=True)
class FeatureSetSpec:
    """Everything that changes the numbers of a feature set."""

    backbone: str
    weights: str  # "none", a torchvision weights name, or a file/URL (for people; not hashed)
    weights_digest: str  # sha256 of the loaded state dict, or "init-seed:<n>" for random weights
    input_size: int  # side of the square crop the backbone sees
    resize_size: int  # shorter side before the centre crop (== input_size: nothing is cut)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    sampling: str
    streams: tuple[str, ...]
    flow: str | None  # optical-flow method and parameters when "flow" is a stream
    decoder: str
    rotation: str
    dtype: str
    precision: str
    spatial_map: bool

    def __post_init__(self) -> None:
        if self.input_size <= 0:
            raise ValueError(f"input_size ({self.input_size}) must be > 0")
        if self.resize_size < self.input_size:
            raise ValueError(
                f"resize_size ({self.resize_size}) must be >= input_size ({self.input_size})"
            )
        if not self.streams:
            raise ValueError("streams must name at least one stream")
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean {self.mean} and std {self.std} must have the same length")
        if ("flow" in self.streams) != (self.flow is not None):
            raise ValueError("flow must describe the flow method exactly when 'flow' is a stream")

    def hashed_fields(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        del values["weights"]  # the digest says what the numbers depend on
        return values

    @property
    def feature_set_id(self) -> str:
        return f"{slug(self.backbone)}-{content_hash(self.hashed_fields(), 12)}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> FeatureSetSpec:
        fields = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in values.items() if k in fields}
        for key in ("mean", "std", "streams"):
            kept[key] = tuple(kept[key])
        return cls(**kept)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape vidpipe's outputs."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def lineage_record(kind: str, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A JSON-ready record of what made an artefact, with versions and creation time."""
    return {
        "kind": kind,
        "spec": spec,
        "libraries": library_versions(),
        "created_at": utc_now_iso(),
        **extra,
    }
