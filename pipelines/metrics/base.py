"""The contract every metric here follows: create, add, merge, compute.

It is the shape of a Beam `CombineFn`, so sharded predictions can be scored
shard by shard and merged in any order with the same result as one pass.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

AccumulatorT = TypeVar("AccumulatorT")
SampleT = TypeVar("SampleT", contravariant=True)
KeyT = TypeVar("KeyT", bound=Hashable)
ValueT = TypeVar("ValueT")


class MergeableMetric(Protocol[AccumulatorT, SampleT]):
    """A metric as pure functions over a small picklable accumulator.

    `add`, `add_all` and `merge` return new accumulators and never change
    their arguments; `compute` turns an accumulator into a JSON-ready dict.
    A Beam `CombineFn` maps onto it one to one: create_accumulator -> create,
    add_input -> add, add_inputs -> add_all, merge_accumulators -> merge,
    extract_output -> compute.
    """

    def create(self) -> AccumulatorT: ...

    def add(self, accumulator: AccumulatorT, sample: SampleT) -> AccumulatorT: ...

    def add_all(self, accumulator: AccumulatorT, samples: Iterable[SampleT]) -> AccumulatorT: ...

    def merge(self, accumulators: Iterable[AccumulatorT]) -> AccumulatorT: ...

    def compute(self, accumulator: AccumulatorT) -> dict[str, Any]: ...


def evaluate(metric: MergeableMetric[AccumulatorT, SampleT], samples: Iterable[SampleT]) -> dict:
    """`metric` computed over `samples` in one pass (no sharding)."""
    return metric.compute(metric.add_all(metric.create(), samples))


def merge_disjoint(
    mappings: Iterable[Mapping[KeyT, ValueT]], key_name: str = "video_id"
) -> dict[KeyT, ValueT]:
    """The union of `mappings` as a new dict; a key in two of them is a ValueError.

    Per-sample accumulators are keyed by sample id, and a sample counted on two
    shards would silently weigh twice, so overlap is an error, not a merge.
    """
    merged: dict[KeyT, ValueT] = {}
    for mapping in mappings:
        # Set operations and update() run in C: adding one sample to an accumulator
        # of n costs a copy of n pointers, not n Python-level steps.
        overlap = merged.keys() & mapping.keys()
        if overlap:
            raise ValueError(f"duplicate {key_name} {min(overlap, key=repr)!r}")
        merged.update(mapping)
    return merged


def check_sample_id(value: object, name: str = "video_id") -> str:
    """`value` when it is a non-empty string; ValueError naming it otherwise."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def fraction(numerator: int, denominator: int) -> float | None:
    """numerator / denominator, or None (JSON null) when there is nothing to divide."""
    return numerator / denominator if denominator else None
