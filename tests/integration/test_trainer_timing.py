"""Time to accuracy excludes loader waits and evaluation, includes the training metrics MLBench's step
computed; wall time includes everything."""

import time

import pytest
import torch.distributed as dist

from tasks.data import catalog
from tasks.registry import resolve
from tasks.runtime.distributed import RankEnv, init_process_group
from tasks.runtime.local_job import free_port
from tasks.runtime.loader import ImageBatches
from tasks.runtime.trainer import Trainer
from tasks.runtime.workload_runtime import ImageClassification

pytestmark = pytest.mark.integration
LOADER_WAIT_S = 0.03
EVAL_WAIT_S = 0.5
METRICS_WAIT_S = 0.02



def train_one_rank(config, data_root, output):
    """One in-process rank's run (a one-process gloo group); its result."""
    env = RankEnv(rank=0, world_size=1, local_rank=0, master_addr="127.0.0.1", master_port=free_port())
    init_process_group(env, "gloo")
    try:
        return Trainer(config, env, data_root, output, log=lambda _m: None).run()
    finally:
        dist.destroy_process_group()

def test_loader_waits_and_evaluation_are_outside_the_timed_steps(data_root, tmp_path, monkeypatch):
    catalog.prepare("digits", data_root)
    config = resolve("cifar10-resnet20", "demo", world_size=1, overrides={"max_epochs": "2", "target_value": "1.0"})
    original_epoch, original_eval = ImageBatches.epoch, Trainer._evaluate

    def slow_epoch(self, epoch):
        for batch in original_epoch(self, epoch):
            time.sleep(LOADER_WAIT_S)  # a slow input pipeline
            yield batch

    def slow_eval(self):
        time.sleep(EVAL_WAIT_S)
        return original_eval(self)

    monkeypatch.setattr(ImageBatches, "epoch", slow_epoch)
    monkeypatch.setattr(Trainer, "_evaluate", slow_eval)
    result = train_one_rank(config, data_root, tmp_path)

    train_batches = result.steps
    val_batches = 2 * -(-360 // 32)
    excluded = train_batches * LOADER_WAIT_S + val_batches * LOADER_WAIT_S + 2 * EVAL_WAIT_S
    assert result.wall_time_s - result.train_time_s >= 0.95 * excluded
    # and the steps themselves are fully accounted for by the phases
    assert sum(result.phases_s.values()) == pytest.approx(result.train_time_s, rel=1e-6)
    assert result.history[-1].cumulative_train_time_s == pytest.approx(result.train_time_s)


class Interrupted(Exception):
    pass


def test_a_resumed_runs_wall_clock_keeps_the_gap_and_counts_it_lost(data_root, tmp_path, monkeypatch):
    """MLPerf's clock is never paused: the time from the last checkpoint to the crash and the restart
    stay inside the wall time, and are recorded as lost."""
    gap_s = 1.5
    catalog.prepare("synthetic-epsilon", data_root)
    config = resolve("epsilon-logreg", "smoke", world_size=1, overrides={"target_value": "1.0"})
    original_save = Trainer._save_checkpoint

    def crash_before_saving_epoch_two(self):  # epoch 2's work is lost: the last checkpoint is epoch 1's
        if self.state.epochs_done == 2:
            raise Interrupted
        original_save(self)

    monkeypatch.setattr(Trainer, "_save_checkpoint", crash_before_saving_epoch_two)
    with pytest.raises(Interrupted):
        train_one_rank(config, data_root, tmp_path)
    time.sleep(gap_s)  # the restart
    monkeypatch.setattr(Trainer, "_save_checkpoint", original_save)
    result = train_one_rank(config, data_root, tmp_path)

    assert result.resumes == 1 and result.epochs_run == 3
    assert result.lost_time_s >= gap_s  # and epoch 2's first run, which no checkpoint kept
    # the epochs kept and the time lost are disjoint parts of the wall time
    assert result.wall_time_s >= result.lost_time_s + 0.99 * sum(e.epoch_time_s for e in result.history)


def test_the_training_metrics_mlbench_timed_are_inside_the_step(data_root, tmp_path, monkeypatch):
    catalog.prepare("digits", data_root)
    config = resolve("cifar10-resnet20", "demo", world_size=1, overrides={"max_epochs": "1", "target_value": "1.0"})
    original = ImageClassification.train_metric_sums

    def slow_metrics(self, outputs, labels):
        time.sleep(METRICS_WAIT_S)  # a costly per-batch metric
        return original(self, outputs, labels)

    monkeypatch.setattr(ImageClassification, "train_metric_sums", slow_metrics)
    result = train_one_rank(config, data_root, tmp_path)

    phases, waited = result.phases_s, result.steps * METRICS_WAIT_S
    assert phases["metrics"] >= waited
    assert result.train_time_s >= waited + result.compute_s + result.communication_s
    assert sum(phases.values()) == pytest.approx(result.train_time_s, rel=1e-6)
    train_metrics = result.history[0].train_metrics
    assert 0 <= train_metrics["top1"] <= train_metrics["top5"] <= 1
