"""`mlbench rerun`'s pure part: the logged config rebuilt with its hash, the mlbench_benchmark request
that reproduces it (no Airflow running), and the warning when today's code is not the recorded one."""

import dataclasses

import pytest

from operators.request import validate_request
from operators.rerun import (
    LoggedConfiguration,
    check_request,
    drift_warning,
    rebuild_config,
    reproducing_overrides,
    trigger_request,
)
from tasks.errors import UserError
from tasks.registry import kind_of, resolve

pytestmark = pytest.mark.unit

SHA = "8fc85e4d0c2b9a1e7f3a5b6c7d8e9f0a1b2c3d4e"


def logged(task="cifar10-resnet20", preset="smoke", *, world_size=2, backend="gloo", device=None, algorithm=None,
           overrides=None, launcher="local", accelerator=None, pool=None, git_sha=SHA, image=None):
    """A configuration run as MLflow holds it, its result.json as its kind first records it."""
    config = resolve(task, preset, world_size=world_size, backend=backend, device=device, algorithm=algorithm,
                     overrides=overrides)
    result = kind_of(task).result_type.for_config(config)
    return LoggedConfiguration(run_id="0" * 32, config_id=f"{task}__w{world_size}__r0", result=result,
                               config_hash=config.config_hash(), launcher=launcher, accelerator=accelerator,
                               pool=pool, git_sha=git_sha, image=image)


def resolve_request(request):
    """What a DAG run of the request resolves its one configuration to (as plan + launch do)."""
    from operators.request import config_overrides, device_for

    valid = validate_request(request)
    (task,) = valid.tasks
    return resolve(task, valid.preset, world_size=valid.world_sizes[0], backend=valid.backend[0],
                   device=device_for(valid), algorithm=valid.algorithm, overrides=config_overrides(valid, task))


CASES = {
    "preset as is": dict(),
    "a repeat's seed and hyperparameters": dict(overrides={"seed": "43", "max_epochs": "2", "optimizer.lr": "0.05",
                                                           "schedule.milestones": "[1,2]"}),
    "ddp, runtime options, model options": dict(algorithm="ddp", overrides={
        "runtime.deterministic": "true", "model.options": '{"width": 2}', "data.max_train_samples": "64"}),
    "task 2a, one worker": dict(task="epsilon-logreg", world_size=1, overrides={"loss.l2": "0.001"}),
    "task 3a": dict(task="wikitext2-lstm", overrides={"data.sequence_length": "12"}),
    "task 0 sweep": dict(task="allreduce", overrides={"dtypes": "fp16", "max_elements": "5000", "seed": "7"}),
    "kubernetes on a GPU pool": dict(backend="nccl", launcher="kubernetes", accelerator="gpu", pool="gke-t4"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_the_trigger_request_rebuilds_a_config_with_the_logged_hash(case):
    run = logged(**case)
    config = rebuild_config(run)
    assert config.config_hash() == run.config_hash
    request = trigger_request(run, config)
    assert request["repeats"] == 1 and request["world_sizes"] == [config.world_size]
    assert resolve_request(request).config_hash() == run.config_hash
    check_request(request, config)  # what `rerun --trigger` checks before it triggers


def test_the_request_carries_only_what_differs_from_the_preset_and_the_logged_launcher():
    run = logged(overrides={"seed": "43", "max_epochs": "2"}, launcher="kubernetes", accelerator="cpu", pool="cpu")
    request = trigger_request(run, rebuild_config(run))
    assert request == {
        "tasks": ["cifar10-resnet20"], "preset": "smoke", "world_sizes": [2], "backend": ["gloo"],
        "algorithm": "allreduce", "repeats": 1, "launcher": "kubernetes", "accelerator": "cpu", "pool": "cpu",
        "target": None, "overrides": {"cifar10-resnet20": {"max_epochs": "2", "seed": "43"}},
    }
    assert reproducing_overrides(rebuild_config(logged())) == {}


def test_a_config_that_no_longer_hashes_to_its_recorded_hash_is_refused():
    run = dataclasses.replace(logged(), config_hash="0123456789abcdef")
    with pytest.raises(UserError, match="not to its recorded config_hash 0123456789abcdef"):
        rebuild_config(run)
    stale = logged()
    stale = dataclasses.replace(stale, result=dataclasses.replace(stale.result,
                                                                  config={**stale.result.config, "gone": 1}))
    with pytest.raises(UserError, match=f"does not fit this version of the code.*git sha {SHA}"):
        rebuild_config(stale)


def test_a_request_that_cannot_reproduce_the_config_is_refused():
    run = logged(overrides={"max_epochs": "2"})
    config = rebuild_config(run)
    request = trigger_request(run, config)
    request["overrides"] = {}
    with pytest.raises(UserError, match="cannot be reproduced by a DAG run"):
        check_request(request, config)


def test_the_warning_names_what_differs_today_in_one_line():
    run = logged(image="registry/train:0.1.0-cpu")
    assert drift_warning(run, git_sha=SHA, image="registry/train:0.1.0-cpu") is None
    assert drift_warning(run, git_sha=SHA[:7], image="registry/train:0.1.0-cpu") is None  # a short sha is the same
    line = drift_warning(run, git_sha="1" * 40, image="registry/train:0.2.0-cpu")
    assert line is not None and "\n" not in line
    assert f"git sha {'1' * 40} (recorded: {SHA})" in line
    assert "image registry/train:0.2.0-cpu (recorded: registry/train:0.1.0-cpu)" in line
    unknown = drift_warning(logged(git_sha=None), git_sha=SHA, image=None)
    assert unknown is not None and "(recorded: unknown)" in unknown


def test_the_warning_names_a_task_version_that_moved_on():
    run = logged()
    old = dataclasses.replace(run, result=dataclasses.replace(run.result, task_version="1.0"))
    line = drift_warning(old, git_sha=SHA, image=None)
    assert line is not None and "task cifar10-resnet20 version 1.1 (recorded: 1.0)" in line
