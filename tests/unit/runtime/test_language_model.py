"""Task 3a's runtime pieces: token sequences, the NT-ASGD trigger, weight averaging, the LM workload."""

import math

import numpy as np
import pytest
import torch

from tasks.runtime.token_stream import bptt_batches, column_plan, worker_columns
from tasks.models.awd_lstm import AWDLSTM
from tasks.registry import resolve
from tasks.runtime.averaging import WeightAverage
from tasks.runtime.loader import TokenSequences
from tasks.runtime.schedules import NonMonotoneAveraging, build_schedule
from tasks.runtime.workload_runtime import build_workload

pytestmark = pytest.mark.unit
STREAM = np.arange(2_000, dtype=np.int32) % 97


def sequences(rank=0, world_size=2, train=True, seed=43, columns=5, length=7):
    return TokenSequences(STREAM, columns, length, train=train, seed=seed, rank=rank, world_size=world_size)


# ------------------------------------------------------------------------------- token sequences
def test_each_rank_walks_its_own_block_of_columns_with_targets_one_token_later():
    for rank in (0, 1):
        batches = list(sequences(rank).epoch(0))
        inputs = torch.cat([x for x, _ in batches])
        targets = torch.cat([y.view(-1, 5) for _, y in batches])
        mine = torch.from_numpy(worker_columns(bptt_batches(STREAM, 10), rank, 2).astype(np.int64))
        assert torch.equal(inputs, mine[:-1]) and torch.equal(targets, mine[1:])  # every row but the last
        assert sum(y.numel() for _, y in batches) == sequences(rank).num_samples == 199 * 5


def test_training_lengths_are_shared_by_all_ranks_and_drawn_anew_each_epoch():
    lengths = [[x.shape[0] for x, _ in sequences(rank).epoch(3)] for rank in (0, 1)]
    assert lengths[0] == lengths[1]
    assert lengths[0] != [x.shape[0] for x, _ in sequences(0).epoch(4)]
    assert lengths[0] == [x.shape[0] for x, _ in sequences(0).epoch(3)]  # a resumed epoch draws the same
    assert len(set(lengths[0])) > 1 and min(lengths[0]) >= 1


def test_evaluation_uses_fixed_lengths_over_the_whole_stream():
    evaluation = TokenSequences(STREAM, 10, 7, train=False, seed=0, rank=0, world_size=1)
    lengths = [x.shape[0] for x, _ in evaluation.epoch(0)]
    assert lengths[:-1] == [7] * (len(lengths) - 1) and sum(lengths) == 199
    assert evaluation.num_samples == 199 * 10


def test_column_plan_matches_what_the_sequences_predict():
    plan = column_plan(len(STREAM), 1_000, 2, 5, 10)
    assert plan["train"] == [sequences(r).num_samples for r in (0, 1)]
    assert plan["validation"] == [99 * 10] * 2  # not sharded: every rank evaluates the whole stream
    with pytest.raises(ValueError, match="cannot fill 40 columns"):
        column_plan(50, 1_000, 4, 10, 10)


# ------------------------------------------------------------------------------- NT-ASGD trigger
def test_averaging_starts_when_the_loss_is_worse_than_the_best_before_the_last_interval():
    schedule = NonMonotoneAveraging(scaled_lr=21.2, averaged_lr=15.0, interval=2)
    for epoch, loss in enumerate([5.0, 4.0, 4.5, 4.6]):  # 4.6 is only compared with [5.0, 4.0][:-2]: too few
        schedule.end_epoch(epoch, loss)
        assert not schedule.averaging and schedule.lr_for_step(epoch + 1, 0) == 21.2
    schedule.end_epoch(4, 4.2)  # worse than min(5.0, 4.0) of all epochs but the last two
    assert schedule.averaging and schedule.lr_for_step(5, 0) == 15.0  # the averaged phase's own rate
    state = schedule.state_dict()
    restored = NonMonotoneAveraging(21.2, 15.0, 2)
    restored.load_state_dict(state)
    assert restored.averaging and restored.val_losses == [5.0, 4.0, 4.5, 4.6, 4.2]
    assert restored.lr_for_step(6, 0) == 15.0


def test_averaging_does_not_start_while_the_loss_keeps_improving():
    schedule = NonMonotoneAveraging(scaled_lr=15.0, averaged_lr=15.0, interval=5)
    for epoch in range(30):
        schedule.end_epoch(epoch, 10.0 - 0.1 * epoch)
    assert not schedule.averaging


def switched(schedule, interval=5):
    """The schedule after improving epochs, then one worse than all before the last `interval`."""
    for epoch in range(interval + 1):
        schedule.end_epoch(epoch, 10.0 - epoch)
    schedule.end_epoch(interval + 1, 11.0)
    assert schedule.averaging
    return schedule


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_task_3a_is_sgd_at_15_sqrt_k_then_averaged_sgd_at_15_unscaled(world_size):
    """MLBench's main.py: SGD(lr=15·√k), then ASGD(lr=15, t0=0, lambd=0): the averaged phase is not scaled."""
    schedule = build_schedule(resolve("wikitext2-lstm", world_size=world_size))
    assert isinstance(schedule, NonMonotoneAveraging) and schedule.interval == 5
    assert schedule.lr_for_step(0, 0) == pytest.approx(15.0 * math.sqrt(world_size))
    assert switched(schedule).lr_for_step(7, 0) == pytest.approx(15.0)
    assert schedule.lr_for_step(100, 3) == pytest.approx(15.0)  # and stays there


def test_task_3a_averaged_rate_follows_an_overridden_base_rate():
    schedule = build_schedule(resolve("wikitext2-lstm", world_size=4, overrides={"optimizer.lr": "30"}))
    assert schedule.lr_for_step(0, 0) == pytest.approx(60.0)
    assert switched(schedule).lr_for_step(7, 0) == pytest.approx(30.0)


def test_task_3a_version_marks_the_unscaled_averaged_phase():
    assert resolve("wikitext2-lstm", world_size=2).task_version == "1.1"


# ------------------------------------------------------------------------------- weight average
def test_weight_average_is_the_mean_of_the_weights_after_each_step():
    model = torch.nn.Linear(2, 1, bias=False)
    average = WeightAverage(model)
    seen = []
    for value in (1.0, 2.0, 6.0):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update()
        seen.append(value)
    assert torch.allclose(average.average[0], torch.full((1, 2), sum(seen) / 3))
    with average.swapped_in():
        assert torch.allclose(model.weight, torch.full((1, 2), 3.0))
    assert torch.equal(model.weight, torch.full((1, 2), 6.0))  # training continues from its own weights
    again = WeightAverage(model)
    again.load_state_dict(average.state_dict())
    assert again.steps == 3 and torch.equal(again.average[0], average.average[0])


def test_tied_weights_are_averaged_once():
    model = AWDLSTM(vocab_size=11, embedding_size=4, hidden_size=6, num_layers=2)
    assert len(WeightAverage(model).parameters) == len(list(model.parameters()))
    assert model.decoder.weight is model.encoder.weight


# ------------------------------------------------------------------------------- the workload
def lm_workload(**overrides):
    return build_workload(resolve("wikitext2-lstm", "smoke", overrides={k: str(v) for k, v in overrides.items()}))


def test_step_rate_scales_with_sequence_length_over_bptt():
    workload = lm_workload()  # smoke: sequence_length 20
    assert workload.lr_factor(torch.zeros(10, 4, dtype=torch.long)) == pytest.approx(0.5)
    assert workload.lr_factor(torch.zeros(30, 4, dtype=torch.long)) == pytest.approx(1.5)


def test_loss_is_cross_entropy_plus_ar_and_tar_computed_by_hand():
    workload = lm_workload()
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    targets = torch.tensor([0, 2])
    raw = torch.tensor([[[1.0, 0.0]], [[3.0, 2.0]]])  # [seq 2, batch 1, features 2]
    dropped = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]]])
    cross_entropy = (-math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-1)))
                     - math.log(1 / (1 + math.e + 1))) / 2
    ar = 2.0 * (4.0 / 4)  # alpha * mean(dropped^2)
    tar = 1.0 * ((2.0**2 + 2.0**2) / 2)  # beta * mean((raw[1] - raw[0])^2)
    model = torch.nn.Linear(1, 1)
    loss = workload.loss((logits, raw, dropped), targets, model)
    assert loss.item() == pytest.approx(cross_entropy + ar + tar, rel=1e-6)
    # evaluation: the plain cross-entropy sum; perplexity is exp of the mean
    (loss_sum,) = workload.evaluation_sums((logits, raw, dropped), targets, model).tolist()
    assert loss_sum == pytest.approx(2 * cross_entropy, rel=1e-6)
    metrics = workload.derived_metrics({"loss": loss_sum / 2})
    assert metrics["perplexity"] == pytest.approx(math.exp(cross_entropy), rel=1e-6)


def test_hidden_state_carries_across_sequences_cut_from_the_graph_and_resets_per_pass():
    workload = lm_workload()
    model = AWDLSTM(vocab_size=13, embedding_size=4, hidden_size=6, num_layers=2).eval()
    tokens = torch.randint(0, 13, (8, 3), generator=torch.Generator().manual_seed(0))
    workload.start_pass()
    whole, _, _ = workload.forward(model, tokens)
    workload.start_pass()
    first, _, _ = workload.forward(model, tokens[:5])
    second, _, _ = workload.forward(model, tokens[5:])
    assert torch.allclose(torch.cat([first, second]), whole, atol=1e-6)  # the state carried over
    assert all(not h.requires_grad and not c.requires_grad for h, c in workload.hidden)
    workload.start_pass()
    assert workload.hidden is None


def test_vocabulary_comes_from_the_data_and_a_mismatch_is_refused():
    from tasks.errors import UserError

    assert lm_workload().model_options({}, {"vocab_size": 70})["vocab_size"] == 70
    full = build_workload(resolve("wikitext2-lstm"))
    assert full.model_options({}, {"vocab_size": 33_278})["embedding_size"] == 400
    with pytest.raises(UserError, match="vocabulary of 70 words but the model expects 33278"):
        full.model_options({}, {"vocab_size": 70})
