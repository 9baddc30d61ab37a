"""Test helper: score samples split into random shards, merged in random orders."""

import numpy as np


def sharded_accumulator(metric, samples, seed):
    """Shuffle `samples`, cut them into shards (some empty), fill each shard with
    add or add_all, then merge the shards as a random tree: what Beam may do."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(samples))
    shuffled = [samples[i] for i in order]
    num_shards = int(rng.integers(1, 6))
    cuts = np.sort(rng.integers(0, len(shuffled) + 1, num_shards - 1))
    shards = np.split(np.arange(len(shuffled)), cuts)
    accumulators = []
    for shard_index, shard in enumerate(shards):
        accumulator = metric.create()
        if shard_index % 2:
            accumulator = metric.add_all(accumulator, [shuffled[i] for i in shard])
        else:
            for i in shard:
                accumulator = metric.add(accumulator, shuffled[i])
        accumulators.append(accumulator)
    while len(accumulators) > 1:
        size = int(rng.integers(2, len(accumulators) + 1))
        picked = rng.choice(len(accumulators), size=size, replace=False)
        merged = metric.merge(accumulators[i] for i in picked)
        accumulators = [a for i, a in enumerate(accumulators) if i not in picked] + [merged]
    return accumulators[0]
