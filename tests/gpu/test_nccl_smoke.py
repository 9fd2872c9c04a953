"""On a GPU machine: the smoke preset on nccl, with device-synchronized timing."""

import json

import pytest

from tests.conftest import run_mlbench

pytestmark = pytest.mark.gpu


def test_nccl_smoke_run_on_one_gpu(data_root, tmp_path):
    done = run_mlbench("train", "--task", "cifar10-resnet20", "--preset", "smoke", "--world-size", "1",
                       "--backend", "nccl", "--output", str(tmp_path / "run"), "--data-root", str(data_root))
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["device"] == "cuda" and result["provenance"]["cuda"]
    assert result["compute_s"] > 0


def test_bf16_channels_last_smoke_run(data_root, tmp_path):
    done = run_mlbench("train", "--task", "cifar10-resnet20", "--preset", "smoke", "--backend", "nccl",
                       "--precision", "bf16", "--channels-last", "--output", str(tmp_path / "run"),
                       "--data-root", str(data_root))
    assert done.returncode == 0, done.stderr


def test_task_0_sweep_on_nccl(tmp_path):
    done = run_mlbench("allreduce", "--preset", "smoke", "--world-size", "1", "--backend", "nccl",
                       "--output", str(tmp_path / "sweep"))
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "sweep" / "result.json").read_text())
    assert result["status"] == "completed" and result["device"] == "cuda" and result["provenance"]["nccl"]
    assert all(row["latency_median_s"] > 0 for row in result["measurements"])
