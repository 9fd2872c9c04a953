"""A secret in the environment (a tracking token, cloud keys, Airflow's JWT secret) never reaches
a log, a bundle, an MLflow param, tag or artifact, or a rendered manifest."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, run_pipeline_steps

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-5f2a9c7e41d0"
SECRET_VARIABLES = ("MLFLOW_TRACKING_TOKEN", "AWS_SECRET_ACCESS_KEY", "AIRFLOW__API_AUTH__JWT_SECRET",
                    "MLBENCH_TEST_API_TOKEN")


def _files_holding(root, needle: bytes) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")
                  if path.is_file() and needle in path.read_bytes())


def test_no_secret_from_the_environment_is_written_anywhere(tmp_path, data_root, monkeypatch):
    for name in SECRET_VARIABLES:
        monkeypatch.setenv(name, SECRET)
    home = tmp_path / "home"
    run_pipeline_steps({"tasks": ["cifar10-resnet20"], "preset": "smoke", "world_sizes": [1]}, "secret-run",
                       home=home, data_root=data_root, monkeypatch=monkeypatch)
    assert (home / "mlflow.db").exists() and list((home / "runs").rglob("rank0.log"))
    # run directory, bundles, rank logs, the MLflow store (params, tags) and its artifacts
    assert _files_holding(home, SECRET.encode()) == []
    (home / "control.txt").write_text(f"token={SECRET}")  # the scan does see a secret where there is one
    assert _files_holding(home, SECRET.encode()) == ["control.txt"]


def test_rendered_manifests_carry_no_secret_from_the_environment(monkeypatch):
    for name in SECRET_VARIABLES:
        monkeypatch.setenv(name, SECRET)
    for path in ("job", "pod"):
        rendered = subprocess.run(
            [sys.executable, "-m", "tasks.cli", "render", "--task", "cifar10-resnet20", "--world-size", "4",
             "--pool", "gke-h100", "--path", path], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert rendered.returncode == 0, rendered.stderr
        assert "kind:" in rendered.stdout and SECRET not in rendered.stdout + rendered.stderr
