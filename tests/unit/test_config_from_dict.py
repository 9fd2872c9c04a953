"""A launcher's config.json (a resolved config's `to_dict()`) rebuilds exactly that config."""

import json

import pytest

from tasks.communication import CommunicationConfig
from tasks.errors import UserError
from tasks.registry import TASKS, config_from_dict, resolve
from tasks.spec import RunConfig

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("world_size", [1, 4])
def test_every_task_round_trips_through_json(task, world_size):
    config = resolve(task, "smoke", world_size=world_size, overrides={"seed": "7"})
    rebuilt = config_from_dict(json.loads(json.dumps(config.to_dict())))
    assert type(rebuilt) is type(config) and rebuilt == config
    assert rebuilt.config_hash() == config.config_hash()  # the checkpoints' guard still matches


def test_task_0_is_recognised_by_its_kind():
    data = resolve("allreduce", "demo", world_size=2).to_dict()
    assert data["kind"] == "communication" and isinstance(config_from_dict(data), CommunicationConfig)
    assert isinstance(config_from_dict(resolve("cifar10-resnet20", "demo").to_dict()), RunConfig)


def test_an_unknown_field_is_one_clear_error():
    data = resolve("cifar10-resnet20", "smoke").to_dict() | {"colour": "red"}
    with pytest.raises(UserError, match="unknown config field 'colour' in RunConfig"):
        config_from_dict(data)
