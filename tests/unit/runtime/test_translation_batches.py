"""The translation tasks' batching: every rank's share of a step, passes, normalizers, validation shards."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.runtime.translation_batches import SentencePairs, TranslationSteps, ValidationBatches, validation_shard
from tasks.text_ids import BOS, EOS, PAD


def make_pairs(count: int, seed: int = 0) -> SentencePairs:
    rng = np.random.default_rng(seed)
    source_lengths = rng.integers(1, 9, count)
    target_lengths = rng.integers(1, 12, count)
    source = rng.integers(4, 50, source_lengths.sum()).astype(np.int32)
    target = rng.integers(4, 50, target_lengths.sum()).astype(np.int32)
    return SentencePairs(source, np.concatenate([[0], np.cumsum(source_lengths)]),
                         target, np.concatenate([[0], np.cumsum(target_lengths)]))


def steps(pairs: SentencePairs, world_size: int, **options) -> list[TranslationSteps]:
    settings = {"batching": "sentences", "global_batch": 16, "max_per_pass": 3, "loss_normalization": "sentences",
                "seed": 7, **options}
    return [TranslationSteps(pairs, rank=rank, world_size=world_size, **settings) for rank in range(world_size)]


def sentences_of(step) -> list[int]:
    return [i for p in step.passes for i in p.indices.tolist()]


def test_a_pass_pads_and_frames_each_sentence():
    pairs = make_pairs(5)
    batch, target_out = pairs.batch(np.array([3, 1]))
    for row, i in enumerate((3, 1)):
        src = pairs.source[pairs.source_offsets[i]:pairs.source_offsets[i + 1]]
        tgt = pairs.target[pairs.target_offsets[i]:pairs.target_offsets[i + 1]]
        assert batch.source[row, :len(src)].tolist() == src.tolist() and batch.source[row, len(src)] == EOS
        assert (batch.source[row, len(src) + 1:] == PAD).all() and batch.source_lengths[row] == len(src) + 1
        assert batch.target_in[row, 0] == BOS and batch.target_in[row, 1:len(tgt) + 1].tolist() == tgt.tolist()
        assert target_out[row, :len(tgt)].tolist() == tgt.tolist() and target_out[row, len(tgt)] == EOS
    assert batch.indices.tolist() == [3, 1]


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_sentence_steps_split_every_step_across_ranks(world_size):
    pairs = make_pairs(70)
    ranks = steps(pairs, world_size)
    assert len({len(r) for r in ranks}) == 1 and len(ranks[0]) == 70 // 16
    per_rank = [list(r.epoch(2)) for r in ranks]
    seen: list[int] = []
    for step_index in range(len(ranks[0])):
        shares = [sentences_of(per_rank[rank][step_index][0]) for rank in range(world_size)]
        assert sum(len(s) for s in shares) == 16  # the global batch, split
        assert max(len(s) for s in shares) - min(len(s) for s in shares) <= 1
        for rank, share in enumerate(shares):
            step = per_rank[rank][step_index][0]
            assert step.normalizer == len(share)  # 4a: a worker's own sentences
            assert all(len(p.indices) <= 3 for p in step.passes)
        seen += [i for share in shares for i in share]
    assert len(seen) == len(set(seen))  # no sentence twice in an epoch


def test_epochs_are_reproducible_and_differ():
    first, again = steps(make_pairs(64), 2), steps(make_pairs(64), 2)
    one = [sentences_of(s) for s, _ in first[0].epoch(1)]
    assert one == [sentences_of(s) for s, _ in again[0].epoch(1)]
    assert one != [sentences_of(s) for s, _ in first[0].epoch(2)]


def test_target_outputs_are_the_passes_in_order():
    rank = steps(make_pairs(40), 1)[0]
    step, outputs = next(rank.epoch(0))
    assert outputs.numel() == sum(p.target_in.numel() for p in step.passes)
    counted = sum(int((o != PAD).sum()) for o in outputs.split([p.target_in.numel() for p in step.passes]))
    assert counted == int((outputs != PAD).sum())


def test_token_steps_keep_their_budget_and_normalize_by_all_tokens():
    pairs = make_pairs(120)
    ranks = steps(pairs, 2, batching="tokens", global_batch=60, max_per_pass=20, loss_normalization="tokens")
    assert len(ranks[0]) == len(ranks[1])
    for (step0, _), (step1, _) in zip(ranks[0].epoch(0), ranks[1].epoch(0), strict=True):
        members = np.array(sentences_of(step0) + sentences_of(step1))
        assert len(members) >= 2  # a sentence for every rank
        assert step0.normalizer == step1.normalizer == pairs.target_lengths[members].sum()
        for p in step0.passes + step1.passes:
            costs = pairs.tokens(p.indices.numpy())
            assert costs.sum() <= 20 or len(costs) == 1
    everyone = [i for r in ranks for s, _ in r.epoch(0) for i in sentences_of(s)]
    assert sorted(everyone) == list(range(120))  # token groups cover the corpus once per epoch


@pytest.mark.parametrize("options", [{}, {"batching": "tokens", "global_batch": 60, "max_per_pass": 20}])
def test_one_plan_counts_what_every_rank_trains_on(options):
    ranks = steps(make_pairs(90), 3, **options)
    trained = [sum(len(sentences_of(s)) for s, _ in rank.epoch(0)) for rank in ranks]
    assert ranks[0].samples_per_rank() == trained == [rank.num_samples for rank in ranks]


def test_too_few_sentences_for_the_ranks_is_refused():
    with pytest.raises(ValueError, match="cannot be split across 4 ranks"):
        steps(make_pairs(3), 4)


@pytest.mark.parametrize("count,world_size", [(10, 3), (3003, 8), (2, 2)])
def test_validation_shards_decode_every_sentence_once(count, world_size):
    shards = np.concatenate([validation_shard(count, rank, world_size) for rank in range(world_size)])
    assert sorted(shards.tolist()) == list(range(count))
    pairs = make_pairs(count)
    decoded = [i for rank in range(world_size)
               for batch, _ in ValidationBatches(pairs, 4, rank, world_size).epoch(0) for i in batch.indices.tolist()]
    assert sorted(decoded) == list(range(count))
