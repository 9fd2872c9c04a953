"""Task 0's typed spec: presets, resolution per world size and backend, overrides, errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tasks.benchmarks.allreduce import TASK as ALLREDUCE
from tasks.communication import CommunicationConfig, tensor_sizes
from tasks.errors import UserError
from tasks.registry import TASKS, get_task, kind_of, resolve, task_summary
from tests.conftest import REPO

pytestmark = pytest.mark.unit


def test_full_preset_is_mlbenchs_sweep():
    config = resolve("allreduce", "full", world_size=4)
    assert isinstance(config, CommunicationConfig) and config.mlbench_id == "0a"
    assert (config.collective, config.op, config.algorithm) == ("all_reduce", "sum", "allreduce")
    assert config.dtypes == ("fp32", "fp16") and config.repeats == 100 and config.warmup >= 1
    assert (config.min_elements, config.max_elements, config.size_count) == (1, 10**8, 80)
    assert config.sizes == tuple(tensor_sizes(1, 10**8, 80)) and config.sizes[-1] == 10**8
    assert config.world_size == 4 and config.backend == "gloo" and config.device == "cpu"


def test_the_mlbench_compatible_pass_uses_mlbenchs_own_sizes_and_call_count():
    config = resolve("allreduce", "full", world_size=2)
    mlbench = [int(x) for x in np.logspace(0, 8, 80)]  # MLBench's list: int() truncation, duplicates kept
    assert config.mlbench_sizes == tuple(mlbench) and len(config.mlbench_sizes) == 80
    assert config.mlbench_sizes[:3] == (1, 1, 1) and config.mlbench_calls == 100
    assert set(config.sizes) != set(config.mlbench_sizes)  # ours round: the two lists differ
    assert resolve("allreduce", "full", world_size=2, overrides={"mlbench_calls": "0"}).mlbench_calls == 0


def test_presets_shrink_the_sweep_in_order():
    configs = {preset: resolve("allreduce", preset, world_size=2) for preset in ALLREDUCE.presets}
    assert list(configs) == ["full", "light", "demo", "smoke"]
    work = {p: len(c.sizes) * c.repeats * c.max_elements for p, c in configs.items()}
    assert work["full"] > work["light"] > work["demo"] > work["smoke"]
    demo = configs["demo"]
    assert demo.max_elements == 10**6 and 15 <= len(demo.sizes) <= 20 and demo.repeats < 100
    assert configs["smoke"].max_elements <= 1000 and configs["smoke"].repeats <= 5


def test_resolution_follows_world_size_backend_and_device():
    config = resolve("allreduce", "demo", world_size=8, backend="nccl")
    assert config.device == "cuda" and config.backend == "nccl" and config.world_size == 8
    assert config.config_hash() != resolve("allreduce", "demo", world_size=4, backend="nccl").config_hash()


def test_config_round_trips_and_hash_is_stable():
    config = resolve("allreduce", "smoke", world_size=2)
    again = CommunicationConfig.from_dict(config.to_dict())
    assert again == config and again.config_hash() == config.config_hash()
    assert len(config.config_hash()) == 16


def test_overrides_are_typed_and_rederive_the_sizes():
    config = resolve("allreduce", "demo", world_size=2,
                     overrides={"dtypes": "fp16", "max_elements": "1000", "size_count": "4", "repeats": "7"})
    assert config.dtypes == ("fp16",) and config.sizes == (1, 10, 100, 1000) and config.repeats == 7
    assert resolve("allreduce", "smoke", overrides={"dtypes": '["fp32", "fp16"]'}).dtypes == ("fp32", "fp16")
    assert resolve("allreduce", "smoke", overrides={"seed": "5"}).seed == 5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"preset": "huge"}, "unknown preset 'huge' for task allreduce; valid presets: full, light, demo, smoke"),
        ({"backend": "mpi"}, "unknown backend 'mpi'; valid backends: gloo, nccl"),
        ({"backend": "nccl", "device": "cpu"}, "backend 'nccl' needs device 'cuda'"),
        ({"algorithm": "ddp"}, "unknown algorithm 'ddp' for task allreduce; valid: allreduce"),
        ({"overrides": {"max_epochs": "1"}}, "unknown config field 'max_epochs' for task allreduce; valid: dtypes,"),
        ({"overrides": {"sizes": "[1, 2]"}}, "'sizes' cannot be set; it comes from min_elements, max_elements"),
        ({"overrides": {"repeats": "many"}}, "bad value 'many' for 'repeats': expected a whole number like 3"),
        ({"overrides": {"dtypes": "fp64"}}, "bad value 'fp64' for 'dtypes'; valid: one or more of fp32, fp16"),
        ({"overrides": {"dtypes": "fp32,fp32"}}, "bad value 'fp32,fp32' for 'dtypes'"),
        ({"overrides": {"min_elements": "0"}}, "need 1 <= min_elements <= max_elements, got 0 and 1000"),
        ({"overrides": {"warmup": "-1"}}, "bad value -1 for 'warmup'; valid: a whole number >= 0"),
    ],
)
def test_bad_requests_name_the_field_and_the_valid_values(kwargs, message):
    args = {"preset": "smoke", **kwargs}
    with pytest.raises(UserError) as info:
        resolve("allreduce", args.pop("preset"), **args)
    assert message in str(info.value)


def test_registered_beside_the_training_tasks():
    assert list(TASKS)[-1] == "allreduce" and get_task("allreduce") is ALLREDUCE
    assert kind_of("allreduce").name == "communication" and kind_of("cifar10-resnet20").name == "training"
    assert not kind_of("allreduce").needs_data and not kind_of("allreduce").has_target
    with pytest.raises(UserError, match="unknown task 'no-such-task'"):
        kind_of("no-such-task")
    summary = task_summary(ALLREDUCE)
    assert summary["dataset"] == "random tensors" and summary["target_full"] == "n/a"


def test_resolution_imports_neither_torch_nor_airflow():
    probe = ("import sys; from tasks.registry import resolve; resolve('allreduce', 'full', world_size=2); "
             "print(sorted(m for m in ('torch', 'airflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_lists_and_shows_the_task():
    from tests.conftest import run_mlbench

    listing = run_mlbench("tasks")
    assert listing.returncode == 0
    row = next(line for line in listing.stdout.splitlines() if line.startswith("allreduce"))
    assert "0a" in row and "random tensors" in row and "n/a" in row

    shown = run_mlbench("tasks", "show", "allreduce", "--preset", "demo", "--world-size", "2")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["resolved"]["world_size"] == 2 and data["resolved"]["max_elements"] == 10**6
    assert data["config_hash"] == resolve("allreduce", "demo", world_size=2).config_hash()
    prepared = run_mlbench("prepare", "--task", "allreduce")
    assert prepared.returncode == 0 and "needs no dataset" in prepared.stdout
