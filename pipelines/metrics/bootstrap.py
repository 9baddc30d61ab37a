"""Percentile bootstrap confidence intervals over per-sample scores, single and paired.

Paired resampling (the same videos for both models) is how two models scored
on one test set are compared (Koehn 2004, https://aclanthology.org/W04-3250).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Statistic = Callable[[np.ndarray], float]


def _values(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    array = np.array(values, dtype=np.float64)  # a copy: never a view of the caller's data
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite; it holds NaN or infinity")
    return array


def _check(num_resamples: int, confidence: float) -> None:
    if not isinstance(num_resamples, int) or num_resamples <= 0:
        raise ValueError(f"num_resamples ({num_resamples}) must be an integer > 0")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence ({confidence}) must be between 0 and 1")


def _percentile_interval(statistics: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(statistics, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_ci(
    per_sample_values: Sequence[float] | np.ndarray,
    statistic: Statistic = np.mean,
    *,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int,
) -> tuple[float, float]:
    """(low, high) percentile interval of `statistic` over resamples with replacement.

    Each resample draws len(values) indices from `np.random.default_rng(seed)`,
    so equal seeds give equal intervals and the global RNG is never touched.
    """
    values = _values(per_sample_values, "per_sample_values")
    _check(num_resamples, confidence)
    rng = np.random.default_rng(seed)
    num_samples = len(values)
    statistics = np.empty(num_resamples)
    for index in range(num_resamples):
        statistics[index] = statistic(values[rng.integers(0, num_samples, num_samples)])
    return _percentile_interval(statistics, confidence)


def paired_bootstrap_ci(
    values_a: Sequence[float] | np.ndarray,
    values_b: Sequence[float] | np.ndarray,
    statistic: Statistic = np.mean,
    *,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int,
) -> tuple[float, float]:
    """(low, high) interval of statistic(a) - statistic(b), both on the same resampled videos.

    values_a[i] and values_b[i] must be the two models' scores on the same
    sample i. An interval above 0 says model a is better at this confidence.
    """
    a = _values(values_a, "values_a")
    b = _values(values_b, "values_b")
    if len(a) != len(b):
        raise ValueError(
            f"values_a has {len(a)} samples and values_b {len(b)}: paired values must match"
        )
    _check(num_resamples, confidence)
    rng = np.random.default_rng(seed)
    num_samples = len(a)
    differences = np.empty(num_resamples)
    for index in range(num_resamples):
        resample = rng.integers(0, num_samples, num_samples)
        differences[index] = statistic(a[resample]) - statistic(b[resample])
    return _percentile_interval(differences, confidence)
