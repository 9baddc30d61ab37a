"""Frame sampling specs (`uniform:K`, `segments:S,L`, `fps:R`, `stride:N`, `all`) and the indices they pick.

Pure: indices are computed from the timestamps of the frames that really
decode, so a spec means the same frames whichever decoder runs afterwards.
Segments follow temporal segment networks (Wang et al., https://arxiv.org/abs/1608.00859).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Literal, Union

import numpy as np

if TYPE_CHECKING:
    import torch

SamplingMode = Literal["uniform", "segments", "fps", "stride", "all"]
Rng = Union[np.random.Generator, "torch.Generator"]

# mode -> how it is written; the error messages quote these.
FORMS = {
    "uniform": "uniform:K",
    "segments": "segments:S,L",
    "fps": "fps:R",
    "stride": "stride:N",
    "all": "all",
}
# A frame within this many seconds before an `fps:R` target counts as at the target:
# timestamps are pts * time_base in binary floating point.
TIMESTAMP_TOLERANCE_S = 1e-6


@dataclass(frozen=True, kw_only=True)
class SamplingSpec:
    """Which frames of a video to use; `str(spec)` is the canonical text that `parse_sampling` reads."""

    mode: SamplingMode
    num_frames: int | None = None  # uniform: K
    num_segments: int | None = None  # segments: S
    segment_length: int | None = None  # segments: L
    fps: float | None = None  # fps: R
    stride: int | None = None  # stride: N

    def __post_init__(self) -> None:
        if self.mode not in FORMS:
            raise ValueError(f"mode {self.mode!r} is not one of {', '.join(FORMS)}")
        needed = {
            "uniform": ("num_frames",),
            "segments": ("num_segments", "segment_length"),
            "fps": ("fps",),
            "stride": ("stride",),
            "all": (),
        }[self.mode]
        for name in ("num_frames", "num_segments", "segment_length", "fps", "stride"):
            value = getattr(self, name)
            if name not in needed:
                if value is not None:
                    raise ValueError(f"{name} ({value}) is not used by mode {self.mode!r}")
                continue
            if value is None:
                raise ValueError(f"mode {self.mode!r} needs {name}")
            if name == "fps":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"fps ({value!r}) must be a number")
                if not math.isfinite(value) or value <= 0:
                    raise ValueError(f"fps ({value}) must be a finite number > 0")
            else:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{name} ({value!r}) must be an integer")
                if value <= 0:
                    raise ValueError(f"{name} ({value}) must be > 0")

    def __str__(self) -> str:
        if self.mode == "uniform":
            return f"uniform:{self.num_frames}"
        if self.mode == "segments":
            return f"segments:{self.num_segments},{self.segment_length}"
        if self.mode == "fps":
            assert self.fps is not None
            rate = float(self.fps)
            return f"fps:{int(rate)}" if rate.is_integer() else f"fps:{rate!r}"
        if self.mode == "stride":
            return f"stride:{self.stride}"
        return "all"


def parse_sampling(text: str) -> SamplingSpec:
    """The spec written as `text`; ValueError naming the text and the allowed forms otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"sampling must be a string, got {type(text).__name__}")
    mode, _, arguments = text.strip().partition(":")
    if mode not in FORMS:
        allowed = ", ".join(FORMS.values())
        raise ValueError(f"sampling {text!r}: unknown mode {mode!r}; expected one of {allowed}")
    parts = [part.strip() for part in arguments.split(",")] if arguments else []
    letters = FORMS[mode].partition(":")[2].split(",") if ":" in FORMS[mode] else []
    if len(parts) != len(letters) or (mode == "all" and ":" in text):
        raise ValueError(f"sampling {text!r}: expected {FORMS[mode]}")
    if mode == "fps":
        rate = _parse_number(text, "R", parts[0])
        return SamplingSpec(mode="fps", fps=rate)
    values = [_parse_count(text, letter, part) for letter, part in zip(letters, parts, strict=True)]
    if mode == "uniform":
        return SamplingSpec(mode="uniform", num_frames=values[0])
    if mode == "segments":
        return SamplingSpec(mode="segments", num_segments=values[0], segment_length=values[1])
    if mode == "stride":
        return SamplingSpec(mode="stride", stride=values[0])
    return SamplingSpec(mode="all")


def sample_indices(
    spec: SamplingSpec | str,
    timestamps_s: Sequence[float] | np.ndarray,
    *,
    rng: Rng | None = None,
) -> list[int]:
    """Sorted, distinct indices of the frames `spec` picks from a video whose frames are at `timestamps_s`.

    `timestamps_s` has one entry per frame that really decodes, in presentation
    order. A video with fewer frames than the spec asks for gives what exists
    (`uniform:16` on 10 frames gives all 10, no index twice): padding is the
    caller's decision. `rng` (numpy or torch Generator) is used only by
    `segments`, for TSN's random offset within each segment; without it the
    snippet sits at the segment's centre. The global RNGs are never touched.
    """
    if isinstance(spec, str):
        spec = parse_sampling(spec)
    times = np.asarray(timestamps_s, dtype=np.float64)
    if times.ndim != 1:
        raise ValueError(f"timestamps_s must be one-dimensional, got shape {times.shape}")
    if times.size and (not np.isfinite(times).all() or (np.diff(times) < 0).any()):
        raise ValueError("timestamps_s must be finite and sorted in presentation order")
    if rng is not None:
        _check_rng(rng)
    num_frames = int(times.size)
    if num_frames == 0:
        return []
    if spec.mode == "uniform":
        return _uniform(num_frames, spec.num_frames)
    if spec.mode == "segments":
        return _segments(num_frames, spec.num_segments, spec.segment_length, rng)
    if spec.mode == "fps":
        return _by_time(times, spec.fps)
    if spec.mode == "stride":
        return list(range(0, num_frames, spec.stride))
    return list(range(num_frames))


def _uniform(num_frames: int, k: int) -> list[int]:
    # Centre of bin j of K equal bins over [0, n): floor((j + 1/2) n / K), in integers.
    return sorted({(2 * j + 1) * num_frames // (2 * k) for j in range(k)})


def _segments(num_frames: int, num_segments: int, length: int, rng: Rng | None) -> list[int]:
    bounds = [j * num_frames // num_segments for j in range(num_segments + 1)]
    picked: set[int] = set()
    for start, end in pairwise(bounds):
        size = end - start
        if size == 0:  # more segments than frames: empty segments pick nothing
            continue
        slack = max(size - length, 0)
        offset = slack // 2 if rng is None else _random_below(slack + 1, rng)
        # A segment shorter than L lends frames from the next one, as TSN does for short videos.
        first = max(0, min(start + offset, num_frames - length))
        picked.update(range(first, min(first + length, num_frames)))
    return sorted(picked)


def _by_time(times: np.ndarray, rate: float) -> list[int]:
    origin = float(times[0])
    span = float(times[-1]) - origin
    num_targets = math.floor(span * rate + TIMESTAMP_TOLERANCE_S) + 1
    picked: set[int] = set()
    sorted_times = times.tolist()
    for j in range(num_targets):
        # j / R rather than a running sum, so error does not accumulate over long videos.
        target = origin + j / rate - TIMESTAMP_TOLERANCE_S
        index = bisect.bisect_left(sorted_times, target)
        if index < len(sorted_times):
            picked.add(index)
    return sorted(picked)


def _random_below(bound: int, rng: Rng) -> int:
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, bound))
    import torch  # only here: decoding processes sample with numpy and need not load torch

    return int(torch.randint(0, bound, (1,), generator=rng).item())


def _check_rng(rng: object) -> None:
    if isinstance(rng, np.random.Generator):
        return
    module = type(rng).__module__.split(".")[0]
    if module == "torch":
        import torch

        if isinstance(rng, torch.Generator):
            return
    raise TypeError(f"rng must be a numpy or torch Generator, got {type(rng).__name__}")


def _parse_count(text: str, letter: str, part: str) -> int:
    digits = part[1:] if part.startswith("-") else part
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(f"sampling {text!r}: {letter} must be an integer, got {part!r}")
    value = int(part)
    if value <= 0:
        raise ValueError(f"sampling {text!r}: {letter} must be > 0")
    return value


def _parse_number(text: str, letter: str, part: str) -> float:
    try:
        value = float(part)
    except ValueError:
        raise ValueError(f"sampling {text!r}: {letter} must be a number, got {part!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"sampling {text!r}: {letter} must be a finite number > 0")
    return value
