import pytest

from tasks.errors import UserError
from tasks.registry import TASKS, resolve
from tasks.spec import RunConfig

pytestmark = pytest.mark.unit


def test_task_1a_follows_mlbench_reference_code():
    config = resolve("cifar10-resnet20", "full", world_size=4)
    assert config.mlbench_id == "1a"
    assert config.algorithm == "allreduce" and config.aggregation == "flat-allreduce-gradients"
    assert config.optimizer.lr == 0.02 and config.scaled_lr == pytest.approx(0.08)
    assert config.optimizer.momentum == 0.9 and config.optimizer.weight_decay == 1e-4
    assert config.optimizer.nesterov is False
    assert config.warmup_epochs == 2
    assert (config.schedule.factor, config.schedule.patience, config.schedule.threshold, config.schedule.min_lr) == (
        0.5, 1, 0.01, 0.02)
    assert config.batch_size == 128 and config.global_batch_size == 512
    assert config.max_epochs == 164 and config.target_value == 0.80
    assert config.data.augmentation.random_crop_padding == 4 and config.data.augmentation.horizontal_flip


def test_light_preset_and_ddp_variant():
    assert resolve("cifar10-resnet20", "light").target_value == 0.70
    ddp = resolve("cifar10-resnet20", "full", world_size=8, algorithm="ddp")
    assert ddp.aggregation == "ddp" and ddp.scaled_lr == 0.1  # no lr scaling in the DDP variant
    assert ddp.schedule.kind == "multistep" and ddp.schedule.milestones == (82, 109)


def test_task_3a_follows_mlbench_reference_code():
    config = resolve("wikitext2-lstm", "full", world_size=4)
    assert config.mlbench_id == "3a" and config.workload == "language-model" and config.seed == 43
    assert config.aggregation == "flat-allreduce-gradients" and config.scaled_lr == pytest.approx(30.0)
    assert config.optimizer.weight_decay == 1.2e-6 and config.optimizer.grad_clip_norm == 0.25
    assert config.optimizer.momentum == 0.0
    assert config.schedule.kind == "nt-asgd" and config.schedule.nonmonotone_interval == 5
    assert config.batch_size == 20 and config.global_batch_size == 80 and config.eval_batch_size == 10
    assert config.data.dataset == "wikitext2" and config.data.sequence_length == 70
    assert (config.loss.activation_alpha, config.loss.temporal_activation_beta) == (2.0, 1.0)
    options = config.model.options
    assert (options["embedding_size"], options["hidden_size"], options["num_layers"]) == (400, 1150, 3)
    assert (options["dropout"], options["dropouth"], options["dropouti"], options["dropoute"],
            options["weight_drop"]) == (0.4, 0.2, 0.65, 0.1, 0.5)
    assert options["tie_weights"] and options["vocab_size"] == 33_278
    assert config.target_metric == "perplexity" and config.target_mode == "min" and config.target_value == 70
    assert config.max_epochs == 750 and resolve("wikitext2-lstm", "light").target_value == 90
    assert config.num_classes is None  # the vocabulary comes from the data
    assert config.reached(69.9) and not config.reached(70.1)
    demo = resolve("wikitext2-lstm", "demo")
    assert demo.data.dataset == "python-reference-text" and "vocab_size" not in demo.model.options


def test_every_task_resolves_every_preset():
    for spec in TASKS.values():
        for preset in spec.presets:
            for algorithm in spec.algorithms:
                resolve(spec.name, preset, world_size=2, algorithm=algorithm.name)


def test_overrides_are_typed_and_rederive_dependent_values():
    config = resolve("cifar10-resnet20", "smoke", world_size=2,
                     overrides={"optimizer.lr": "0.05", "max_epochs": "7", "runtime.deterministic": "true"})
    assert config.scaled_lr == pytest.approx(0.1) and config.max_epochs == 7 and config.runtime.deterministic


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task": "imagenet"}, "unknown task 'imagenet'; valid tasks: cifar10-resnet20"),
        ({"preset": "huge"}, "unknown preset 'huge'"),
        ({"world_size": 0}, "world size must be a whole number >= 1"),
        ({"backend": "mpi"}, "unknown backend 'mpi'; valid backends: gloo, nccl"),
        ({"algorithm": "powersgd"}, "valid: allreduce, ddp"),
        ({"overrides": {"optimizer.lrr": "1"}}, "unknown config field 'optimizer.lrr'"),
        ({"overrides": {"max_epochs": "many"}}, "bad value 'many' for 'max_epochs'"),
        ({"overrides": {"scaled_lr": "1"}}, "comes from optimizer.lr"),
        ({"overrides": {"max_epochs": "0"}}, "max_epochs must be >= 1"),
        ({"task": "wikitext2-lstm", "overrides": {"data.sequence_length": "1"}},
         "data.sequence_length must be a whole number >= 2 for a language model"),
        ({"task": "wikitext2-lstm", "overrides": {"data.max_train_samples": "100"}},
         "apply to image and tabular tasks only"),
        ({"task": "wikitext2-lstm", "overrides": {"data.dataset": "digits"}},
         "dataset 'digits' is image data; this task needs text data: python-reference-text, synthetic-wikitext2"),
        ({"task": "wikitext2-lstm", "overrides": {"optimizer.grad_clip_norm": "-1"}}, "grad_clip_norm must be >= 0"),
        ({"task": "wikitext2-lstm", "overrides": {"target_metric": "top1"}},
         "bad value 'top1' for 'target_metric'; valid: perplexity, loss"),
        ({"overrides": {"loss.activation_alpha": "2"}}, "apply to language models only"),
        ({"overrides": {"mid_epoch_eval_interval": "1.5"}},
         "mid_epoch_eval_interval must be a fraction of an epoch from 0.001 to below 1"),
        ({"overrides": {"mid_epoch_eval_interval": "often"}}, "mid_epoch_eval_interval must be a fraction"),
        ({"task": "wmt16-gnmt", "overrides": {"mid_epoch_eval_interval": "0"}}, "from 0.001 to below 1"),
        ({"task": "wmt16-gnmt", "overrides": {"mid_epoch_eval_interval": "1e-9"}}, "from 0.001 to below 1"),
        ({"task": "wikitext2-lstm", "overrides": {"mid_epoch_eval_interval": "0.3"}},
         "a language model draws its sequence lengths, so it evaluates after epochs only"),
    ],
)
def test_bad_requests_name_the_problem(kwargs, message):
    args = {"task": "cifar10-resnet20", "preset": "full", **kwargs}
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        resolve(args.pop("task"), args.pop("preset"), **args)


def test_config_round_trips_and_hash_is_stable():
    config = resolve("cifar10-resnet20", "demo", world_size=2)
    again = RunConfig.from_dict(config.to_dict())
    assert again == config and again.config_hash() == config.config_hash()
    assert resolve("cifar10-resnet20", "demo", world_size=4).config_hash() != config.config_hash()
