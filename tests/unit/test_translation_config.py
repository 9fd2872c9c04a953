"""Tasks 4a and 4b as declared: MLBench's reference values, the derived batch, the added fields that
leave every other task's config hash alone, and one-line errors for bad translation settings."""

from __future__ import annotations

import pytest

from tasks.errors import UserError
from tasks.registry import TASKS, config_from_dict, resolve

pytestmark = pytest.mark.unit


def test_task_4a_follows_mlbench_reference_code():
    config = resolve("wmt16-gnmt", "full", world_size=4)
    t = config.translation
    assert config.mlbench_id == "4a" and config.workload == "translation" and config.model.name == "gnmt"
    assert config.model.options["hidden_size"] == 1024 and config.model.options["num_layers"] == 4
    assert config.optimizer.name == "adam" and config.optimizer.betas == (0.9, 0.999) and config.optimizer.eps == 1e-8
    assert config.scaled_lr == 2e-3 and config.optimizer.grad_clip_norm == 5.0
    assert config.aggregation == "flat-allreduce-gradients-sum"
    s = config.schedule
    assert (s.kind, s.warmup_steps, s.warmup_start_factor, s.decay_start_fraction, s.decay_interval_fraction,
            s.factor, s.max_decays) == ("exponential-warmup-step-decay", 200, 0.01, 0.4, 0.05, 0.5, 4)
    assert config.loss.label_smoothing == 0.1
    assert (t.batching, t.global_batch, t.max_per_pass, t.loss_normalization) == ("sentences", 2048, 128, "sentences")
    assert config.global_batch_size == 2048 and config.batch_size == 512  # a worker's share of the step
    assert (t.beam_size, t.max_decode_length, t.length_penalty, t.length_penalty_constant, t.coverage_penalty) == (
        5, 149, 0.6, 5.0, 0.1)  # MLBench's 150 with the BOS
    assert (t.loss_scale_start, t.loss_scale_window, t.loss_scale_max) == (2**10, 128, 2**13)
    assert config.max_epochs == 8 and config.target_metric == "bleu" and config.target_value == 24.0
    assert t.bleu == "sacrebleu-intl-lowercase"
    assert resolve("wmt16-gnmt", "light").target_value == 20.0


def test_task_4b_follows_mlbench_reference_code():
    config = resolve("wmt17-transformer", "full", world_size=16)
    t = config.translation
    assert config.mlbench_id == "4b" and config.model.name == "transformer"
    assert config.model.options["d_model"] == 1024 and config.model.options["heads"] == 16
    assert config.optimizer.betas == (0.9, 0.98) and config.optimizer.eps == 1e-9 and config.scaled_lr == 1.976e-3
    assert config.optimizer.grad_clip_norm == 0.0
    assert config.schedule.kind == "inverse-sqrt" and config.schedule.warmup_steps == 1000
    assert (t.batching, t.global_batch, t.max_per_pass, t.loss_normalization) == ("tokens", 2**17, 8192, "tokens")
    assert (t.beam_size, t.max_decode_length, t.max_decode_length_offset) == (4, None, 51)  # + 50, and the EOS
    assert (t.loss_scale_start, t.loss_scale_window) == (2**7, 2000) and t.bleu == "mlperf-bleu-tokenize"
    assert config.max_epochs == 10 and config.target_value == 25.0
    assert resolve("wmt17-transformer", "light").target_value == 20.0


@pytest.mark.parametrize("task", ["wmt16-gnmt", "wmt17-transformer"])
def test_translation_configs_round_trip(task):
    for preset in TASKS[task].presets:
        config = resolve(task, preset, world_size=2)
        again = config_from_dict(config.to_dict())
        assert again == config and again.config_hash() == config.config_hash()


def test_the_added_fields_stay_out_of_other_tasks_configs():
    """Adam's betas, the step schedules' fields, label smoothing and the translation block are left out of
    a config that does not use them: every earlier configuration keeps its hash."""
    plain = resolve("cifar10-resnet20", "full", world_size=2).to_dict()
    assert "translation" not in plain and "betas" not in plain["optimizer"] and "eps" not in plain["optimizer"]
    assert "warmup_steps" not in plain["schedule"] and "label_smoothing" not in plain["loss"]
    assert "translation" in resolve("wmt16-gnmt", "full").to_dict()


@pytest.mark.parametrize("overrides,message", [
    ({"translation.bleu": "chrf"}, "bad value 'chrf' for 'translation.bleu'; valid: sacrebleu-intl-lowercase"),
    ({"translation.beam_size": "0"}, "translation.beam_size must be a whole number >= 1"),
    ({"translation.max_decode_length_offset": "50"}, "set exactly one of translation.max_decode_length"),
    ({"translation.global_batch": "1"}, "must be at least the world size (2)"),
    ({"optimizer.betas": "[0.9]"}, "optimizer adam needs optimizer.betas (a JSON pair"),
    ({"schedule.warmup_steps": "null"}, "bad value 'null' for 'schedule.warmup_steps'"),
    ({"loss.label_smoothing": "1.5"}, "loss.label_smoothing must be in [0, 1)"),
    ({"batch_size": "64"}, "set by translation.global_batch"),
])
def test_bad_translation_settings_name_the_problem(overrides, message):
    with pytest.raises(UserError) as error:
        resolve("wmt16-gnmt", "full", world_size=2, overrides=overrides)
    assert message in str(error.value) and "\n" not in str(error.value)
