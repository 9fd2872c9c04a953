"""Sentence pairs in batches for the translation tasks (4a, 4b): the steps of an epoch, each rank's
share of a step, the passes a share is split into, and the validation shards.

Every rank computes the same plan of the whole epoch from (seed, epoch) and takes its own share,
so all ranks run the same number of steps and a resumed run sees the batches an uninterrupted one
would. A step holds `global_batch` sentences (4a) or up to `global_batch` target tokens (4b) across
all workers; a worker processes at most `max_per_pass` sentences or tokens at once and accumulates
the gradients of the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from tasks.runtime.loader import derived_seed
from tasks.text_ids import BOS, EOS, PAD


@dataclass
class Pass:
    """One forward pass: padded sources (ending in EOS), their lengths, the decoder's inputs (BOS +
    target) and the sentences' ids in their split."""

    source: torch.Tensor  # [B, S] int64
    source_lengths: torch.Tensor  # [B]
    target_in: torch.Tensor  # [B, T]
    indices: torch.Tensor  # [B]

    def to(self, device: torch.device, non_blocking: bool = False) -> Pass:
        return Pass(*(t.to(device, non_blocking=non_blocking) for t in
                      (self.source, self.source_lengths, self.target_in, self.indices)))


@dataclass
class Step:
    """A worker's share of one optimizer step: its passes and what their losses are divided by (its
    sentences in the step, or the target tokens of the whole step on all workers)."""

    passes: list[Pass]
    normalizer: float

    def to(self, device: torch.device, non_blocking: bool = False) -> Step:
        return Step([p.to(device, non_blocking) for p in self.passes], self.normalizer)


class SentencePairs:
    """A split's flat token arrays and offsets (the prepared dataset's layout), sentence by sentence."""

    def __init__(self, source: np.ndarray, source_offsets: np.ndarray, target: np.ndarray,
                 target_offsets: np.ndarray) -> None:
        self.source, self.source_offsets = source, np.asarray(source_offsets, dtype=np.int64)
        self.target, self.target_offsets = target, np.asarray(target_offsets, dtype=np.int64)
        self.source_lengths = np.diff(self.source_offsets) + 1  # + EOS
        self.target_lengths = np.diff(self.target_offsets) + 1  # + BOS on the input side, + EOS on the output

    def __len__(self) -> int:
        return len(self.source_lengths)

    def tokens(self, index: np.ndarray) -> np.ndarray:
        """What a sentence costs in a token-counted batch: the longer of its two sides."""
        costs: np.ndarray = np.maximum(self.source_lengths[index], self.target_lengths[index])
        return costs

    def batch(self, index: np.ndarray) -> tuple[Pass, torch.Tensor]:
        """The sentences `index` as one padded pass and its target outputs (target + EOS)."""
        index = np.asarray(index, dtype=np.int64)
        rows = np.arange(len(index))
        source = np.full((len(index), int(self.source_lengths[index].max())), PAD, dtype=np.int64)
        target_in = np.full((len(index), int(self.target_lengths[index].max())), PAD, dtype=np.int64)
        target_out = np.full_like(target_in, PAD)
        row, column, tokens, lengths = _ragged(self.source, self.source_offsets, index)
        source[row, column], source[rows, lengths] = tokens, EOS
        row, column, tokens, lengths = _ragged(self.target, self.target_offsets, index)
        target_in[:, 0], target_in[row, column + 1] = BOS, tokens
        target_out[row, column], target_out[rows, lengths] = tokens, EOS
        return (Pass(torch.from_numpy(source), torch.from_numpy(self.source_lengths[index].astype(np.int64)),
                     torch.from_numpy(target_in), torch.from_numpy(index)), torch.from_numpy(target_out))


def _ragged(flat: np.ndarray, offsets: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, ...]:
    """The sentences `index` of a flat token array as (row, column, token) triples, and their lengths:
    one gather for the whole batch instead of a copy per sentence."""
    starts, lengths = offsets[index], offsets[index + 1] - offsets[index]
    row = np.repeat(np.arange(len(index)), lengths)
    column = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return row, column, flat[np.repeat(starts, lengths) + column], lengths


def _chunks(index: np.ndarray, costs: np.ndarray, budget: int) -> list[np.ndarray]:
    """Consecutive pieces of `index` whose summed cost stays within budget (a piece has at least one)."""
    pieces, start, total = [], 0, 0
    for position, cost in enumerate(costs):
        if position > start and total + cost > budget:
            pieces.append(index[start:position])
            start, total = position, 0
        total += cost
    pieces.append(index[start:])
    return pieces


class TranslationSteps:
    """One rank's training steps: `epoch(e)` yields (Step, its target outputs, flattened)."""

    def __init__(self, pairs: SentencePairs, *, batching: str, global_batch: int, max_per_pass: int,
                 loss_normalization: str, seed: int, rank: int, world_size: int) -> None:
        if len(pairs) < world_size:
            raise ValueError(f"{len(pairs)} training sentence pairs cannot be split across {world_size} ranks")
        self.pairs, self.batching, self.global_batch = pairs, batching, global_batch
        self.max_per_pass, self.loss_normalization = max_per_pass, loss_normalization
        self.seed, self.rank, self.world_size = seed, rank, world_size
        # Token batches are fixed groups of similar lengths (little padding) whose order is shuffled
        # every epoch; sentence batches are drawn afresh from a permutation every epoch.
        self.token_groups = self._token_groups() if batching == "tokens" else None

    def _token_groups(self) -> list[np.ndarray]:
        by_length = np.lexsort((self.pairs.source_lengths, self.pairs.target_lengths))
        groups = _chunks(by_length, self.pairs.tokens(by_length), self.global_batch)
        merged: list[np.ndarray] = []
        for group in groups:  # every step needs a sentence for every rank
            if merged and len(merged[-1]) < self.world_size:
                merged[-1] = np.concatenate([merged[-1], group])
            else:
                merged.append(group)
        if len(merged) > 1 and len(merged[-1]) < self.world_size:
            last = merged.pop()
            merged[-1] = np.concatenate([merged[-1], last])
        return merged

    def __len__(self) -> int:
        if self.token_groups is not None:
            return len(self.token_groups)
        return max(1, len(self.pairs) // self.global_batch)

    @property
    def num_samples(self) -> int:
        """Sentence pairs this rank trains on per epoch."""
        return self.samples_per_rank()[self.rank]

    def samples_per_rank(self) -> list[int]:
        """Sentence pairs every rank trains on per epoch, from one plan (it is the same on every rank)."""
        counts = np.zeros(self.world_size, dtype=np.int64)
        for step in self._plan(0):
            counts += [len(part) for part in np.array_split(step, self.world_size)]
        return [int(count) for count in counts]

    def _plan(self, epoch: int) -> list[np.ndarray]:
        """The epoch's steps, each the sentences of all workers, the same on every rank."""
        generator = np.random.default_rng(derived_seed(self.seed, epoch))
        if self.token_groups is not None:
            return [self.token_groups[i] for i in generator.permutation(len(self.token_groups))]
        order = generator.permutation(len(self.pairs))
        size = min(self.global_batch, len(order))
        return [order[k * size:(k + 1) * size] for k in range(len(self))]

    def _share(self, step: np.ndarray) -> np.ndarray:
        return np.array_split(step, self.world_size)[self.rank]

    def epoch(self, epoch: int) -> Iterator[tuple[Step, torch.Tensor]]:
        pairs = self.pairs
        for step in self._plan(epoch):
            share = self._share(step)
            share = share[np.argsort(pairs.target_lengths[share], kind="stable")]  # similar lengths per pass
            costs = pairs.tokens(share) if self.batching == "tokens" else np.ones(len(share), dtype=np.int64)
            passes, outputs = [], []
            for piece in _chunks(share, costs, self.max_per_pass):
                batch, target_out = pairs.batch(piece)
                passes.append(batch)
                outputs.append(target_out.reshape(-1))
            normalizer = (float(pairs.target_lengths[step].sum()) if self.loss_normalization == "tokens"
                          else float(len(share)))
            yield Step(passes, normalizer), torch.cat(outputs)


def validation_shard(num_sentences: int, rank: int, world_size: int) -> np.ndarray:
    """The validation sentences a rank decodes: contiguous shards, every sentence exactly once."""
    return np.array_split(np.arange(num_sentences), world_size)[rank]


class ValidationBatches:
    """One rank's validation shard in batches of similar source length (for decoding)."""

    def __init__(self, pairs: SentencePairs, batch_sentences: int, rank: int, world_size: int) -> None:
        self.pairs = pairs
        shard = validation_shard(len(pairs), rank, world_size)
        self.shard = shard[np.argsort(pairs.source_lengths[shard], kind="stable")]
        self.batch_sentences = batch_sentences

    def __len__(self) -> int:
        return -(-len(self.shard) // self.batch_sentences)

    @property
    def num_samples(self) -> int:
        return len(self.shard)

    def epoch(self, epoch: int) -> Iterator[tuple[Pass, torch.Tensor]]:
        for start in range(0, len(self.shard), self.batch_sentences):
            yield self.pairs.batch(self.shard[start:start + self.batch_sentences])
