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
