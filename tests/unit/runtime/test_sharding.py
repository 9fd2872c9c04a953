import numpy as np
import pytest

from tasks.runtime.sharding import shard_plan, train_shards, validation_shards

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("num_samples, world_size", [(50_000, 1), (50_000, 2), (50_000, 8), (50_000, 3), (1437, 16)])
def test_train_shards_disjoint_equal_and_complete_up_to_remainder(num_samples, world_size):
    shards = train_shards(num_samples, world_size, seed=42)
    assert len({len(s) for s in shards}) == 1  # equal: every rank runs the same number of steps
    union = np.concatenate(shards)
    assert len(np.unique(union)) == len(union)  # disjoint
    assert num_samples - len(union) == num_samples % world_size < world_size  # complete but the remainder


@pytest.mark.parametrize("num_samples, world_size", [(10_000, 2), (10_000, 3), (360, 16)])
def test_validation_shards_cover_every_sample_once(num_samples, world_size):
    shards = validation_shards(num_samples, world_size, seed=42)
    union = np.concatenate(shards)
    assert sorted(union.tolist()) == list(range(num_samples))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_every_rank_computes_the_same_plan_from_the_seed():
    assert all(np.array_equal(a, b) for a, b in zip(train_shards(1000, 4, 7), train_shards(1000, 4, 7), strict=True))
    assert not np.array_equal(train_shards(1000, 4, 7)[0], train_shards(1000, 4, 8)[0])
    assert shard_plan(50_000, 10_000, 8, 42) == {"train": [6250] * 8, "validation": [1250] * 8}


def test_more_ranks_than_samples_is_an_error():
    with pytest.raises(ValueError, match="cannot be split"):
        train_shards(3, 4, seed=0)
