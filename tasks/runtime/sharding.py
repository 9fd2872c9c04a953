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


def column_plan(num_train_tokens: int, num_val_tokens: int, world_size: int, columns_per_rank: int,
                eval_columns: int) -> dict[str, list[int]]:
    """Tokens each rank predicts per epoch in a language model (tasks.runtime.loader.TokenSequences).

    Training: its block of columns_per_rank of the stream's columns_per_rank * world_size columns,
    every row but the first a target. Validation is not sharded: every rank predicts the whole
    stream, in eval_columns columns.
    """
    train_rows = num_train_tokens // (columns_per_rank * world_size)
    if train_rows < 2:
        raise ValueError(f"{num_train_tokens} training tokens cannot fill {columns_per_rank * world_size} columns "
                         "of at least 2 rows (input and target)")
    val_rows = num_val_tokens // eval_columns
    if val_rows < 2:
        raise ValueError(f"{num_val_tokens} validation tokens cannot fill {eval_columns} columns of at least 2 rows")
    return {
        "train": [(train_rows - 1) * columns_per_rank] * world_size,
        "validation": [(val_rows - 1) * eval_columns] * world_size,
    }
