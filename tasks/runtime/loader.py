"""Batches of one rank's shard, deterministic per (seed, rank, epoch): images augmented on the
fly, tabular rows as they are.

The whole shard lives in host memory (a memory-mapped array from the prepared store), so no
worker processes are needed: augmentation is a few vectorized tensor ops per batch. Every
random choice is drawn from a generator seeded by (seed, rank, epoch), so a run resumed at
epoch e sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from tasks.spec import Augmentation


def derived_seed(*parts: int) -> int:
    """A 64-bit seed that is a pure function of its parts (e.g. seed, rank, epoch): resumable draws."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0])


def epoch_generator(seed: int, rank: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(seed, rank, epoch))


class ShardBatches:
    """One rank's shard in batches: shuffled per epoch when training, in order otherwise."""

    def __init__(self, inputs: np.ndarray, labels: np.ndarray, indices: np.ndarray, batch_size: int, *,
                 train: bool, seed: int, rank: int) -> None:
        self.inputs = inputs
        self.labels = labels
        self.indices = np.asarray(indices)
        self.batch_size = batch_size
        self.train = train
        self.seed = seed
        self.rank = rank

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)  # last partial batch kept (drop_last=False)

    @property
    def num_samples(self) -> int:
        return len(self.indices)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = epoch_generator(self.seed, self.rank, epoch)
        order = self.indices
        if self.train:
            order = order[torch.randperm(len(order), generator=generator).numpy()]
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            inputs = torch.from_numpy(np.ascontiguousarray(self.inputs[batch]))
            labels = torch.from_numpy(np.ascontiguousarray(self.labels[batch]))
            yield self.transform(inputs, generator), labels

    def transform(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return inputs


class TabularBatches(ShardBatches):
    """Rows of float features (no augmentation); labels as floats for binary losses."""

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for inputs, labels in super().epoch(epoch):
            yield inputs.float(), labels.float()


class ImageBatches(ShardBatches):
    """uint8 images scaled to [0, 1], augmented when training (crop, flip), then normalized."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray, batch_size: int,
                 augmentation: Augmentation, *, train: bool, seed: int, rank: int) -> None:
        super().__init__(images, labels, indices, batch_size, train=train, seed=seed, rank=rank)
        self.augmentation = augmentation
        self.mean = torch.tensor(augmentation.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(augmentation.std, dtype=torch.float32).view(1, -1, 1, 1)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in super().epoch(epoch):
            yield images, labels.long()

    def transform(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        images = inputs.float().div_(255.0)
        if self.train:
            images = self._augment(images, generator)
        return (images - self.mean) / self.std

    def _augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, height, width = images.shape
        pad = self.augmentation.random_crop_padding
        if pad:
            padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
            offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
            rows = offsets[:, 0:1] + torch.arange(height)  # (n, H)
            cols = offsets[:, 1:2] + torch.arange(width)  # (n, W)
            batch_index = torch.arange(n)[:, None, None]
            # Gather each image's crop window: (n, H, W, C) -> (n, C, H, W)
            images = padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]]
            images = images.permute(0, 3, 1, 2).contiguous()
        if self.augmentation.horizontal_flip:
            flip = torch.rand(n, generator=generator) < 0.5
            images[flip] = images[flip].flip(-1)
        return images


class TokenSequences:
    """One rank's columns of a token stream, walked top to bottom in consecutive sequences.

    The stream is cut into `columns_per_rank * world_size` contiguous columns and rank r keeps its
    block of `columns_per_rank` (MLBench's partitioning; tasks.runtime.token_stream). Each step's input is
    rows [p, p + L) and its targets the same columns one token later. Training draws the lengths L
    around `sequence_length` from (seed, epoch) alone, so every rank draws the same ones (MLBench
    drew them on rank 0 and broadcast them); evaluation uses `sequence_length` throughout.
    Every rank of an unsharded evaluation passes rank 0 of world size 1: the whole stream.
    """

    def __init__(self, tokens: np.ndarray, columns_per_rank: int, sequence_length: int, *, train: bool,
                 seed: int, rank: int, world_size: int) -> None:
        from tasks.runtime.token_stream import bptt_batches, worker_columns

        matrix = bptt_batches(np.asarray(tokens), columns_per_rank * world_size)
        self.columns = torch.from_numpy(worker_columns(matrix, rank, world_size).astype(np.int64))
        self.sequence_length = sequence_length
        self.train = train
        self.seed = seed

    @property
    def num_samples(self) -> int:
        """Tokens this rank predicts per epoch (every row but the first is a target)."""
        return (self.columns.shape[0] - 1) * self.columns.shape[1]

    def lengths(self, epoch: int) -> np.ndarray:
        from tasks.runtime.token_stream import sequence_lengths

        seed = None
        if self.train:
            seed = derived_seed(self.seed, epoch)
        return sequence_lengths(self.columns.shape[0], self.sequence_length, seed)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs [L, columns], targets [L * columns]) per step, in stream order."""
        position = 0
        for length in self.lengths(epoch).tolist():
            inputs = self.columns[position : position + length]
            targets = self.columns[position + 1 : position + 1 + length].reshape(-1)
            position += length
            yield inputs, targets
