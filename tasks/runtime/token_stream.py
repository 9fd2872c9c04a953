"""A token stream as language models train on it (MLBench task 3a, AWD-LSTM), for every text dataset.

The stream is cut into `columns` contiguous chunks laid side by side (`bptt_batches`); rank r of
k keeps its block of columns (`worker_columns`); an epoch walks the rows in consecutive sequences
whose lengths are drawn around bptt from the shared seed (`sequence_lengths`). `column_plan` says
how many tokens each rank predicts per epoch, from the same arithmetic: the data gate checks it
before any training starts. numpy only: the Airflow side imports it.
"""

from __future__ import annotations

import numpy as np

from tasks.errors import DataError

# MLBench's per-epoch random sequence lengths (and Merity et al.'s AWD-LSTM training loop).
BPTT = 70
SHORT_SEQUENCE_PROBABILITY = 0.05
SEQUENCE_LENGTH_STD = 5.0
MIN_SEQUENCE_LENGTH = 5

def bptt_batches(tokens: np.ndarray, batch_size: int) -> np.ndarray:
    """The token stream as a [steps, batch_size] matrix whose column c is the c-th contiguous chunk.

    steps = len(tokens) // batch_size; the remainder is dropped. With MLBench's global batch of
    20·k columns, worker r trains on columns [20r, 20r + 20): see `worker_columns`.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be a 1-D stream, got shape {tokens.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    steps = len(tokens) // batch_size
    if steps < 2:
        raise DataError(
            f"{len(tokens)} tokens cannot fill {batch_size} columns of at least 2 steps (input and target); "
            "use a smaller batch size or a larger corpus"
        )
    return np.ascontiguousarray(tokens[: steps * batch_size].reshape(batch_size, steps).T)


def worker_columns(batches: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rank r's block of columns [r·b, (r+1)·b), b = columns / world_size (MLBench's partitioning)."""
    columns = batches.shape[1]
    if world_size < 1 or not 0 <= rank < world_size or columns % world_size:
        raise ValueError(f"cannot give rank {rank} of {world_size} an equal share of {columns} columns")
    per_worker = columns // world_size
    return np.ascontiguousarray(batches[:, rank * per_worker : (rank + 1) * per_worker])


def sequence_lengths(
    num_tokens: int,
    bptt: int = BPTT,
    seed: int | None = None,
    *,
    short_probability: float = SHORT_SEQUENCE_PROBABILITY,
    std: float = SEQUENCE_LENGTH_STD,
    min_length: int = MIN_SEQUENCE_LENGTH,
) -> np.ndarray:
    """Lengths of the consecutive input sequences that walk one epoch over num_tokens steps per column.

    seed None: every sequence is bptt long (evaluation). An int: MLBench's training lengths, a pure
    function of the seed: with probability short_probability the mean is bptt/2 instead of bptt,
    then the length is int(N(mean, std)), at least min_length. As in MLBench, sequences start while
    at least two steps remain, and the last one is cut so its targets stay inside the stream.
    """
    if bptt < 1 or min_length < 1:
        raise ValueError(f"bptt and min_length must be >= 1, got {bptt} and {min_length}")
    rng = np.random.default_rng(seed) if seed is not None else None
    lengths: list[int] = []
    position = 0
    while position < num_tokens - 2:
        length = bptt
        if rng is not None:
            mean = bptt if rng.random() >= short_probability else bptt / 2.0
            length = max(min_length, int(rng.normal(mean, std)))
        length = min(length, num_tokens - 1 - position)
        lengths.append(length)
        position += length
    return np.asarray(lengths, dtype=np.int64)


def column_plan(num_train_tokens: int, num_val_tokens: int, world_size: int, columns_per_rank: int,
                eval_columns: int) -> dict[str, list[int]]:
    """Tokens each rank predicts per epoch (tasks.runtime.loader.TokenSequences walks the same columns).

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
