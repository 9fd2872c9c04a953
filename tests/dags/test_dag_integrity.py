"""Every DAG file imports cleanly, parses fast, loads nothing heavy, and follows house rules."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.dags
DAG_FILES = sorted((REPO / "dags").glob("*.py"))
HEAVY = ("torch", "mlflow", "great_expectations", "pandas", "numpy", "sklearn")

PROBE = """
import json, runpy, sys, time
import airflow.sdk  # the runtime a DAG processor already has loaded
# The provider's KubernetesPodOperator (and the kubernetes client under it) is what the pipeline
# launches single-node pods with: Airflow's own cost, the same for every DAG that uses it. The
# budget below is for what the DAG files themselves add.
import airflow.providers.cncf.kubernetes.operators.pod
before = set(sys.modules)
start = time.perf_counter()
runpy.run_path(sys.argv[1])
elapsed = time.perf_counter() - start
added = sorted({name.split('.')[0] for name in set(sys.modules) - before})
print(json.dumps({"seconds": elapsed, "added": added}))
"""


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_dag_files_exist():
    assert {p.name for p in DAG_FILES} >= {"mlbench_benchmark.py", "mlbench_nightly.py"}


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) >= {"mlbench_benchmark", "mlbench_nightly"}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parse_is_fast_and_imports_nothing_heavy(path):
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, cwd=REPO,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["seconds"] < 0.5, f"{path.name} took {probe['seconds']:.2f}s to parse"
    assert not set(probe["added"]) & set(HEAVY), probe["added"]


def test_house_rules(dagbag):
    for dag_id in ("mlbench_benchmark", "mlbench_nightly"):
        dag = dagbag.dags[dag_id]
        assert dag.tags and "mlbench" in dag.tags
        assert dag.catchup is False
        for task in dag.tasks:
            assert task.owner == "mlbench", task.task_id
        assert dag.default_args["retries"] >= 1
        launch = dag.get_task("launch")
        from operators.pipeline import LAUNCH_POOL

        assert launch.retries >= 1 and launch.pool == LAUNCH_POOL
    assert dagbag.dags["mlbench_nightly"].schedule == "0 2 * * *"


def test_steps_after_launch_run_whatever_happened_upstream(dagbag):
    dag = dagbag.dags["mlbench_benchmark"]
    for task_id in ("validate_results", "track", "compare_history", "report", "cleanup", "check"):
        assert dag.get_task(task_id).trigger_rule == "all_done", task_id
    order = [t.task_id for t in dag.topological_sort()]
    assert order.index("validate_data") < order.index("plan") < order.index("launch") < order.index("track")
    assert order.index("track") < order.index("compare_history") < order.index("report") < order.index("check")


def test_single_node_kubernetes_configurations_launch_through_a_kubernetes_pod_operator(dagbag):
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    for dag_id in ("mlbench_benchmark", "mlbench_nightly"):
        dag = dagbag.dags[dag_id]
        launch_pod = dag.get_task("launch_pod")
        assert issubclass(launch_pod.operator_class, KubernetesPodOperator)
        assert launch_pod.pool == dag.get_task("launch").pool and launch_pod.retries >= 1
        order = [t.task_id for t in dag.topological_sort()]
        assert order.index("plan") < order.index("pod_configurations") < order.index("launch_pod")
        assert order.index("launch_pod") < order.index("validate_results")


def test_which_launch_task_a_configuration_takes(tmp_path):
    from operators.launch import runs_as_one_pod
    from operators.planning import plan_configurations
    from operators.request import validate_request

    def planned(**fields):
        request = validate_request({"tasks": ["cifar10-resnet20"], "preset": "full", **fields})
        return {c.world_size: runs_as_one_pod(c)
                for c in plan_configurations(request, run_id="r", runs_root=tmp_path, data_root=tmp_path)}

    assert planned(world_sizes=[1, 2]) == {1: False, 2: False}  # local ranks: `launch`
    on_h100 = {"launcher": "kubernetes", "pool": "eks-p5-h100", "backend": "nccl", "accelerator": "gpu"}
    assert planned(world_sizes=[1, 8, 16], **on_h100) == {1: True, 8: True, 16: False}


def test_nightly_sweep_file_is_a_valid_request():
    from operators.request import validate_request
    from operators.steps import load_sweep

    request = validate_request(load_sweep(str(Path(REPO / "dags" / "sweeps" / "nightly.yaml"))))
    assert request.tasks == ("cifar10-resnet20", "epsilon-logreg", "wikitext2-lstm", "allreduce")
    assert request.launcher == "local"
    assert request.preset == "demo"  # task 0's demo sweep keeps the nightly run short
    assert request.on_regression == "fail"  # the nightly turns a regression into a failed run


def test_the_manual_form_warns_on_a_regression_by_default(dagbag):
    assert dagbag.dags["mlbench_benchmark"].params["on_regression"] == "warn"
