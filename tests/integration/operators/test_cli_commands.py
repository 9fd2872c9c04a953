"""`mlbench pools`, `render`, `detect`, `compare` and `rerun` come from operators/ through the
`mlbench.commands` entry points: they work through the installed `mlbench` script, and an `mlbench`
without operators/ (the training image) simply lacks them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, run_mlbench

pytestmark = pytest.mark.integration

POOLS = ["cpu", "gke-t4", "gke-h100", "eks-a10g", "aks-v100", "kueue-h100", "gke-a3-h100", "gke-a3-ultra-h200",
         "eks-p5-h100", "aks-nd-h100"]
# tasks.cli's main as the training image runs it: `import operators` fails there.
WITHOUT_OPERATORS = ("import sys; sys.modules['operators'] = None; from tasks.cli import main; "
                     "sys.exit(main(sys.argv[1:]))")


def installed_mlbench(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "mlbench"
    assert script.exists(), f"{script} missing: install the project (`pip install -e '.[all]'`)"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=300, cwd=REPO)


def without_operators(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_OPERATORS, *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO)


def test_installed_mlbench_lists_the_pools():
    done = installed_mlbench("pools")
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == POOLS
    assert done.stdout.splitlines()[0].startswith("cpu  CPU, 3 CPU, 12Gi, gloo, no price; world sizes any: ")
    assert "eks-p5-h100  8 GPU/node, 8/pod, " in done.stdout
    assert "world sizes 1 to 8 (one node), or a multiple of 8 across nodes" in done.stdout
    assert done.stdout == run_mlbench("pools").stdout


def test_installed_mlbench_renders_the_manifests_of_a_dag_run():
    args = ("render", "--task", "cifar10-resnet20", "--world-size", "2", "--pool", "gke-t4",
            "--image", "registry.example/train:1-cuda", "--set", "max_epochs=3", "--namespace", "bench")
    done = installed_mlbench(*args)
    assert done.returncode == 0, done.stderr
    service, job = yaml.safe_load_all(done.stdout)
    assert service["kind"] == "Service" and job["kind"] == "Job" and job["spec"]["completions"] == 2
    assert service["metadata"]["namespace"] == job["metadata"]["namespace"] == "bench"
    container = job["spec"]["template"]["spec"]["containers"][0]
    output = "/results/manual__render/cifar10-resnet20__allreduce__w2__r0"
    assert container["image"] == "registry.example/train:1-cuda" and container["command"] == ["mlbench"]
    assert container["args"] == ["worker", "--config", f"{output}/config.json", "--output", output,
                                 "--data-root", "/datasets"]
    assert done.stdout == run_mlbench(*args).stdout


def test_render_prints_the_single_node_pod_as_the_kubernetes_pod_operator_builds_it():
    import kubernetes_validate

    done = installed_mlbench("render", "--task", "cifar10-resnet20", "--world-size", "4", "--pool", "gke-a3-h100",
                             "--image", "registry.example/train:1-cuda")
    assert done.returncode == 0, done.stderr
    (pod,) = yaml.safe_load_all(done.stdout)
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
    assert pod["kind"] == "Pod" and pod["metadata"]["name"].startswith("mlb-")  # with the operator's suffix
    assert "airflow_version" in pod["metadata"]["labels"]  # the provider's own label
    container = pod["spec"]["containers"][0]
    assert container["name"] == "worker" and container["args"][0] == "node"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    job = installed_mlbench("render", "--task", "cifar10-resnet20", "--world-size", "4", "--pool", "gke-a3-h100",
                            "--path", "job")
    service, indexed_job = yaml.safe_load_all(job.stdout)
    assert indexed_job["spec"]["completions"] == 1  # one pod of all 4 ranks


def test_installed_mlbench_render_errors_stay_one_line():
    done = installed_mlbench("render", "--task", "cifar10-resnet20", "--pool", "tpu")
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "unknown pool 'tpu'" in done.stderr
    missing = installed_mlbench("render", "--task", "cifar10-resnet20")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "mlbench render: error: the following arguments are required: --pool"


def test_installed_mlbench_detects_a_step_in_a_csv_series(tmp_path):
    series = tmp_path / "nightly.csv"
    rows = [f"{night},{100 + night % 3},c{night}" for night in range(30)]
    rows += [f"{night},{112 + night % 3},c{night}" for night in range(30, 34)]
    series.write_text("time,value,commit\n" + "\n".join(rows) + "\n")
    done = installed_mlbench("detect", "--series", str(series))
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout)["verdict"]
    assert (verdict["status"], verdict["first_seen"], verdict["commit_before"]) == ("regression", 30, "c29")
    assert done.stderr == "regression: mean +11.6 % (lower is better) since 30 (commit c29 -> c30), p=0.002\n"


def test_installed_mlbench_detect_errors_stay_one_line(tmp_path):
    done = installed_mlbench("detect", "--series", str(tmp_path / "missing.csv"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"error: --series {tmp_path / 'missing.csv'}: no such file; give a CSV file with the "
                           "columns time,value[,commit]\n")


def test_help_lists_the_plugin_commands_after_the_built_in_ones():
    done = installed_mlbench("--help")
    assert done.returncode == 0
    assert "{tasks,prepare,train,worker,node,allreduce,compare,detect,pools,render,rerun,track}" in done.stdout


def test_without_operators_mlbench_has_no_kubernetes_commands_and_says_nothing_about_it():
    listed = without_operators("tasks")
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    assert "cifar10-resnet20" in listed.stdout
    usage = without_operators("--help")
    assert usage.returncode == 0 and "{tasks,prepare,train,worker,node,allreduce}" in usage.stdout
    for command in ("pools", "render", "compare", "rerun", "track"):
        done = without_operators(command)
        assert done.returncode == 2 and f"invalid choice: '{command}'" in done.stderr


def test_an_entry_point_whose_function_is_gone_is_skipped_with_one_warning_line():
    # an install older than the code: the entry point names a function that no longer exists
    stale = ("import sys, importlib.metadata as m; from tasks import cli; "
             "cli.entry_points = lambda group: [m.EntryPoint('gone', 'operators.cli:add_gone_command', group)]; "
             "sys.exit(cli.main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", stale, "tasks"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and "cifar10-resnet20" in done.stdout
    assert done.stderr == ("warning: `mlbench gone` is unavailable: operators.cli:add_gone_command does not exist; "
                           "the installed entry points are older than the code (reinstall: make venv)\n")


def test_track_without_a_run_directory_is_one_clear_error(tmp_path):
    done = run_mlbench("track", "--run-id", "manual__nothing-here", env={**os.environ, "MLBENCH_HOME": str(tmp_path)})
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert "no run directory for DAG run 'manual__nothing-here'" in done.stderr
