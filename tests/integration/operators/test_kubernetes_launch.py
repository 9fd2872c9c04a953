"""The launch step's kubernetes branch, with the cluster replaced at the launcher boundary;
and the `mlbench pools` / `mlbench render` commands."""

import json
from pathlib import Path

import pytest
import yaml

from operators import steps
from tasks.settings import Settings
from operators.launch import launch_configuration
from operators.planning import Configuration
from operators.kubernetes import api as k8s_api
from operators.kubernetes import indexed_job
from operators.kubernetes.indexed_job import KubernetesJobOutcome
from tasks.errors import ExitCode
from tests.conftest import run_mlbench

pytestmark = pytest.mark.integration


class FakeLauncher:
    """Stands in for KubernetesJobLauncher: records the manifests, plays the pods' part."""

    calls = []
    behaviour = None

    def __init__(self, core, batch, **settings):
        self.settings = settings

    def run(self, manifests, *, stop=None):
        FakeLauncher.calls.append((manifests, self.settings))
        return FakeLauncher.behaviour(manifests)


@pytest.fixture()
def configuration(tmp_path, monkeypatch):
    monkeypatch.setenv("MLBENCH_HOME", str(tmp_path))
    monkeypatch.setattr(indexed_job, "KubernetesJobLauncher", FakeLauncher)
    monkeypatch.setattr(k8s_api, "clients_from_hook", lambda conn_id: ("core", "batch"))
    FakeLauncher.calls = []
    request = steps.validate_request_step({"launcher": "kubernetes", "pool": "gke-t4", "backend": "nccl",
                                           "accelerator": "gpu", "preset": "smoke", "world_sizes": [2]}, "manual__k8s")
    return steps.plan_step(request, "manual__k8s")[0]


def pods_write_bundle(status="completed"):
    def behave(manifests):
        args = manifests[1]["spec"]["template"]["spec"]["containers"][0]["args"]
        relative = Path(args[args.index("--output") + 1]).relative_to("/results")
        output = Settings.from_env().runs_root / relative
        config = json.loads((output / "config.json").read_text())
        import dataclasses

        from tasks.runtime.results import TrainingResult, write_result
        from tasks.spec import RunConfig

        result = dataclasses.replace(TrainingResult.for_config(RunConfig.from_dict(config)), status=status,
                                     reason=None if status == "completed" else "rank 1 crashed")
        write_result(output, result)
        return KubernetesJobOutcome(0 if status == "completed" else ExitCode.RUN_FAILED, "job: done", [], {})
    return behave


def test_success_reads_the_bundle_the_pods_wrote_on_the_shared_volume(configuration):
    FakeLauncher.behaviour = pods_write_bundle()
    summary = launch_configuration(Configuration.from_dict(configuration), run_timeout_s=3600, rendezvous_timeout_s=600,
                                         dag_id="mlbench_nightly")
    assert summary.status == "completed"
    manifests, settings = FakeLauncher.calls[0]
    assert [m["kind"] for m in manifests] == ["Service", "Job"]
    assert manifests[1]["metadata"]["labels"]["mlbench.io/dag-id"] == "mlbench_nightly"
    assert settings["namespace"] == "mlbench" and settings["startup_timeout_s"] == 1200
    env = {e["name"]: e["value"] for e in manifests[1]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert float(env["MLBENCH_RENDEZVOUS_TIMEOUT_S"]) >= settings["startup_timeout_s"]
    assert (Path(configuration["output"]).stat().st_mode & 0o2775) == 0o2775


def test_pending_timeout_is_recorded_with_the_launchers_reason_and_retried(configuration):
    message = "job mlb-x-w2: 1 of 2 ranks not running after 1200s: rank 1 Pending (Unschedulable: 0/3 nodes)"
    FakeLauncher.behaviour = lambda manifests: KubernetesJobOutcome(124, message, [], {1: "Unschedulable"}, True)
    summary = launch_configuration(Configuration.from_dict(configuration), run_timeout_s=3600, rendezvous_timeout_s=600)
    assert summary.status == "failed" and summary.reason == message and summary.retryable
    result = json.loads((Path(configuration["output"]) / "result.json").read_text())
    assert result["status"] == "failed" and result["reason"] == message


def test_the_rank_that_failed_first_leads_the_bundles_reason(configuration):
    """Rank 0 wrote "rank 1 crashed"-style records after losing a peer; the launcher saw rank 1's
    pod end first (SIGKILL, exit code 137): its account comes first, rank 0's after it."""
    message = "job mlb-x-w2: rank 1 failed first (exit code 137, Error); rank 0 failed (exit code 4, Error)"

    def ranks_fail(manifests):
        pods_write_bundle("failed")(manifests)
        return KubernetesJobOutcome(ExitCode.RUN_FAILED, message, [0, 1], {}, exit_codes={1: 137, 0: 4})

    FakeLauncher.behaviour = ranks_fail
    summary = launch_configuration(Configuration.from_dict(configuration), run_timeout_s=3600, rendezvous_timeout_s=600)
    assert summary.retryable and summary.reason == f"{message} (then: rank 1 crashed)"
    assert json.loads((Path(configuration["output"]) / "result.json").read_text())["reason"] == summary.reason


def test_ranks_rejecting_their_input_are_not_retried(configuration):
    FakeLauncher.behaviour = lambda manifests: KubernetesJobOutcome(
        ExitCode.RUN_FAILED, "job: rank 0 failed (exit code 2, Error)", [0, 1], {}, False, exit_codes={0: 2, 1: 2})
    summary = launch_configuration(Configuration.from_dict(configuration), run_timeout_s=3600, rendezvous_timeout_s=600)
    assert summary.status == "failed" and not summary.retryable


def test_pools_lists_one_profile_per_line_name_first():
    done = run_mlbench("pools")
    assert done.returncode == 0
    names = [line.split()[0] for line in done.stdout.splitlines()]
    assert names == ["cpu", "gke-t4", "gke-h100", "eks-a10g", "aks-v100", "kueue-h100", "gke-a3-h100",
                     "gke-a3-ultra-h200", "eks-p5-h100", "aks-nd-h100"]


def test_render_prints_applicable_yaml_and_bad_pool_is_one_line():
    done = run_mlbench("render", "--task", "cifar10-resnet20", "--preset", "full", "--world-size", "4",
                       "--pool", "eks-a10g", "--image", "registry.example/train:1-cuda")
    assert done.returncode == 0, done.stderr
    service, job = yaml.safe_load_all(done.stdout)
    assert service["kind"] == "Service" and job["kind"] == "Job" and job["spec"]["completions"] == 4
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/train:1-cuda"
    bad = run_mlbench("render", "--task", "cifar10-resnet20", "--world-size", "2", "--pool", "tpu")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "unknown pool 'tpu'" in bad.stderr
