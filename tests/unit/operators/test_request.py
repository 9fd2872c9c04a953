import pytest

from operators.planning import plan_configurations, safe_name
from operators.request import InvalidRequest, validate_request
from operators.steps import validate_request_step

pytestmark = pytest.mark.unit


def test_defaults_give_a_small_sensible_run():
    request = validate_request({})
    assert request.tasks == ("cifar10-resnet20",) and request.preset == "demo"
    assert request.world_sizes == (1, 2) and request.repeats == 1 and request.launcher == "local"


def test_form_values_are_normalised():
    request = validate_request({"tasks": "cifar10-resnet20", "world_sizes": [4, 1], "algorithm": "",
                                "target": "0.5", "overrides": {"max_epochs": 3}})
    assert request.world_sizes == (4, 1) and request.algorithm is None
    assert request.target == 0.5 and request.overrides == {"max_epochs": "3"}


def test_regression_policy_defaults_to_warn_and_takes_the_history_fields():
    policy = validate_request({}).regression_policy
    assert (policy.on_regression, policy.nights, policy.detector.p_value) == ("warn", 60, 0.02)
    request = validate_request({"on_regression": "fail", "history": {"nights": "30", "min_magnitude_pct": 8}})
    assert request.history == {"nights": 30, "min_magnitude_pct": 8.0}  # only what was set, typed
    policy = request.regression_policy
    assert (policy.on_regression, policy.nights, policy.detector.min_magnitude_pct) == ("fail", 30, 8.0)
    assert validate_request(request.to_dict()) == request  # the stored request reads back the same


@pytest.mark.parametrize(
    "params, field, hint",
    [
        ({"tasks": ["imagenet"]}, "tasks", "valid tasks: cifar10-resnet20"),
        ({"tasks": []}, "tasks", "non-empty list"),
        ({"preset": "huge"}, "preset", "valid presets"),
        ({"world_sizes": [0]}, "world_sizes", "from 1 to"),
        ({"world_sizes": ["two"]}, "world_sizes", "not a whole number"),
        ({"world_sizes": [2, 2]}, "world_sizes", "duplicate"),
        ({"backend": "mpi"}, "backend", "valid: gloo, nccl"),
        ({"backend": "nccl"}, "backend", "needs accelerator 'gpu'"),
        ({"algorithm": "powersgd"}, "algorithm", "valid: allreduce, ddp"),
        ({"repeats": 0}, "repeats", "from 1 to 100"),
        ({"launcher": "slurm"}, "launcher", "valid: local, kubernetes"),
        ({"launcher": "kubernetes"}, "pool", "none given; the kubernetes launcher needs one of: cpu, gke-t4"),
        ({"launcher": "kubernetes", "pool": "tpu"}, "pool", "unknown pool 'tpu'"),
        ({"launcher": "kubernetes", "pool": "gke-t4"}, "pool", "has gpu nodes but the request's accelerator is cpu"),
        ({"pool": "cpu"}, "pool", "only applies to launcher 'kubernetes'"),
        ({"target": "high"}, "target", "must be a number"),
        ({"target": float("nan")}, "target", "finite"),
        ({"target": True}, "target", "must be a number"),
        ({"tasks": [["cifar10-resnet20"]]}, "tasks", "unknown task"),
        ({"launcher": "kubernetes", "pool": ["cpu"]}, "pool", "one pool profile"),
        ({"overrides": {"optimizer.lrr": "1"}}, "overrides", "unknown config field 'optimizer.lrr'"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"on_regression": "page"}, "on_regression", "valid: fail, warn"),
        ({"history": "60"}, "history", "must be a mapping with any of nights, p_value, min_magnitude_pct"),
        ({"history": {"days": 30}}, "history", "unknown field 'days'; valid: nights"),
        ({"history": {"nights": 1}}, "history", "from 2 to 10000"),
        ({"history": {"nights": "many"}}, "history", "nights must be a number"),
        ({"history": {"p_value": 0.001}}, "history", "p_value must be in [1/(permutations + 1), 1)"),
        ({"history": {"min_magnitude_pct": -1}}, "history", "min_magnitude_pct must be >= 0"),
    ],
)
def test_invalid_requests_name_the_field(params, field, hint):
    with pytest.raises(InvalidRequest) as info:
        validate_request(params)
    message = str(info.value)
    assert message.startswith(f"invalid request field '{field}'") and hint in message


def test_kubernetes_request_with_a_matching_pool():
    request = validate_request({"launcher": "kubernetes", "pool": "gke-t4", "backend": "nccl", "accelerator": "gpu",
                                "world_sizes": [1, 2, 4, 16]})
    assert request.pool == "gke-t4" and request.world_sizes == (1, 2, 4, 16)


def test_local_ranks_may_not_exceed_the_cores(tmp_path, monkeypatch):
    monkeypatch.setenv("MLBENCH_HOME", str(tmp_path))
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    with pytest.raises(InvalidRequest, match="4 local ranks exceed the 2 CPU cores"):
        validate_request_step({"world_sizes": [1, 4]}, "run")
    assert validate_request_step({"world_sizes": [1, 2]}, "run")["world_sizes"] == [1, 2]


def test_plan_is_task_by_world_size_by_repeat_with_distinct_seeds_and_stable_paths(tmp_path):
    request = validate_request({"world_sizes": [1, 2], "repeats": 2, "target": 0.5})
    plan = plan_configurations(request, run_id="manual__2026-11-28T15:00:00+00:00", runs_root=tmp_path,
                               data_root=tmp_path / "data")
    assert [c.config_id for c in plan] == [
        "cifar10-resnet20__allreduce__w1__r0", "cifar10-resnet20__allreduce__w1__r1",
        "cifar10-resnet20__allreduce__w2__r0", "cifar10-resnet20__allreduce__w2__r1",
    ]
    assert "seed" not in plan[0].overrides and plan[1].overrides["seed"] == "43"
    assert plan[0].overrides["target_value"] == "0.5"
    assert plan[0].output == str(tmp_path / "manual__2026-11-28T15_00_00_00_00" / plan[0].config_id)
    again = plan_configurations(request, run_id="manual__2026-11-28T15:00:00+00:00", runs_root=tmp_path,
                                data_root=tmp_path / "data")
    assert again == plan  # a retried task finds the same directories


def test_repeat_seeds_start_from_a_seed_override(tmp_path):
    request = validate_request({"world_sizes": [1], "repeats": 3, "overrides": {"seed": "43"}})
    plan = plan_configurations(request, run_id="r", runs_root=tmp_path, data_root=tmp_path)
    assert [c.overrides["seed"] for c in plan] == ["43", "44", "45"]


def test_safe_name():
    assert safe_name("scheduled__2026-11-28T02:00:00+00:00") == "scheduled__2026-11-28T02_00_00_00_00"


def test_task_0_is_requested_and_planned_like_a_training_task(tmp_path):
    request = validate_request({"tasks": ["cifar10-resnet20", "allreduce"], "world_sizes": [1, 2], "repeats": 2,
                                "target": 0.5, "algorithm": "allreduce"})
    plan = plan_configurations(request, run_id="r", runs_root=tmp_path, data_root=tmp_path / "data")
    sweeps = [c for c in plan if c.task == "allreduce"]
    assert [c.config_id for c in sweeps] == [
        "allreduce__allreduce__w1__r0", "allreduce__allreduce__w1__r1",
        "allreduce__allreduce__w2__r0", "allreduce__allreduce__w2__r1",
    ]
    # the target is a training task's; repeats of a sweep differ by seed, as training repeats do
    assert "target_value" not in sweeps[0].overrides and sweeps[1].overrides == {"seed": "1"}
    assert all(c.overrides["target_value"] == "0.5" for c in plan if c.task == "cifar10-resnet20")


def test_several_backends_run_every_configuration_on_each(tmp_path):
    request = validate_request({"tasks": ["allreduce"], "backend": ["gloo", "nccl"], "accelerator": "gpu",
                                "world_sizes": [2]})
    assert request.backend == ("gloo", "nccl") and request.to_dict()["backend"] == ["gloo", "nccl"]
    plan = plan_configurations(request, run_id="r", runs_root=tmp_path, data_root=tmp_path / "data")
    assert [(c.config_id, c.backend, c.device) for c in plan] == [
        ("allreduce__allreduce__gloo__w2__r0", "gloo", "cuda"),  # gloo on GPU tensors, as MLBench compared
        ("allreduce__allreduce__nccl__w2__r0", "nccl", "cuda"),
    ]
    assert validate_request({"backend": "gloo"}).backend == ("gloo",)  # one backend: ids unchanged
    with pytest.raises(InvalidRequest, match="'backend': nccl needs accelerator 'gpu'"):
        validate_request({"backend": ["gloo", "nccl"]})
    with pytest.raises(InvalidRequest, match="duplicate backends"):
        validate_request({"backend": ["gloo", "gloo"]})


def test_overrides_can_be_given_per_task_in_a_mixed_request(tmp_path):
    request = validate_request({"tasks": ["cifar10-resnet20", "allreduce", "wikitext2-lstm"], "world_sizes": [1],
                                "overrides": {"seed": "7", "cifar10-resnet20": {"max_epochs": 2},
                                              "wikitext2-lstm": {"max_epochs": "3", "seed": "9"}}})
    plan = {c.task: c.overrides for c in
            plan_configurations(request, run_id="r", runs_root=tmp_path, data_root=tmp_path / "data")}
    assert plan == {"cifar10-resnet20": {"seed": "7", "max_epochs": "2"}, "allreduce": {"seed": "7"},
                    "wikitext2-lstm": {"seed": "9", "max_epochs": "3"}}  # a task's own value wins
    with pytest.raises(InvalidRequest, match="'epsilon-logreg' holds per-task fields but is not a task of this "
                                             "request; valid: cifar10-resnet20"):
        validate_request({"overrides": {"epsilon-logreg": {"max_epochs": "2"}}})


@pytest.mark.parametrize("params, field, hint", [
    ({"tasks": ["allreduce"], "algorithm": "ddp"}, "algorithm", "unknown algorithm 'ddp' for task allreduce"),
    ({"tasks": ["allreduce"], "overrides": {"max_epochs": "1"}}, "overrides",
     "unknown config field 'max_epochs' for task allreduce; valid: dtypes"),
    ({"tasks": ["allreduce"], "overrides": {"repeats": "0"}}, "overrides", "bad value 0 for 'repeats'"),
])
def test_invalid_task_0_requests_name_the_field(params, field, hint):
    with pytest.raises(InvalidRequest) as info:
        validate_request(params)
    assert str(info.value).startswith(f"invalid request field '{field}'") and hint in str(info.value)


def test_task_0_needs_no_dataset(tmp_path, monkeypatch):
    from operators.steps import datasets_of, prepare_data_step, validate_data_step

    monkeypatch.setenv("MLBENCH_HOME", str(tmp_path))
    assert datasets_of(validate_request({"tasks": ["allreduce"]})) == {}
    request = validate_request_step({"tasks": ["allreduce"], "preset": "smoke"}, "run")
    assert prepare_data_step(request, "run") == [] and validate_data_step(request, "run") == []
    assert not (tmp_path / "data").exists()
