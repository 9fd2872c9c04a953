"""Split a dataset across ranks with one seeded permutation that every rank computes alike.

MLBench shuffled on rank 0 and broadcast the permutation; computing it from the shared seed on
each rank gives the same plan without a collective. Training shards are equal in size (so every
rank runs the same number of steps and no collective waits on a missing peer): the remainder of
fewer than world_size samples is left out. Validation shards cover every sample (sizes differ by
at most one); global metrics are sums and counts, so uneven shards stay exact.
"""

from __future__ import annotations

import numpy as np


def shared_permutation(num_samples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(num_samples)


def train_shards(num_samples: int, world_size: int, seed: int) -> list[np.ndarray]:
    if num_samples < world_size:
        raise ValueError(f"{num_samples} training samples cannot be split across {world_size} ranks")
    per_rank = num_samples // world_size
    perm = shared_permutation(num_samples, seed)
    return [perm[r * per_rank : (r + 1) * per_rank] for r in range(world_size)]


def validation_shards(num_samples: int, world_size: int, seed: int) -> list[np.ndarray]:
    return list(np.array_split(shared_permutation(num_samples, seed), world_size))


def shard_plan(num_train: int, num_val: int, world_size: int, seed: int) -> dict[str, list[int]]:
    """Sizes of every rank's shards: what each rank will see, for validation before training."""
    return {
        "train": [len(s) for s in train_shards(num_train, world_size, seed)],
        "validation": [len(s) for s in validation_shards(num_val, world_size, seed)],
    }
