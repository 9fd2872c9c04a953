"""The mlbench_benchmark DAG end to end through `airflow dags test`, asserting what MLflow holds."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from operators.embedded import airflow_env, prepare_airflow, run_dag

pytestmark = pytest.mark.dags
SMOKE = {"tasks": ["cifar10-resnet20"], "preset": "smoke", "world_sizes": [1, 2], "overrides": {"max_epochs": "1"}}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("mlbench-home")
    env = airflow_env({"MLBENCH_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow"),
                       "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db", "MLBENCH_RETRY_DELAY_S": "1"})
    prepare_airflow(env)
    return home, env


def client_for(home):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{home}/mlflow.db")


def runs_of(home, run_dir, task="cifar10-resnet20"):
    """(client, parent runs, child runs by config id) of the DAG run whose directory is `run_dir`."""
    from operators.planning import safe_name

    client = client_for(home)
    experiment = client.get_experiment_by_name(f"mlbench/{task}")
    mine = [r for r in client.search_runs([experiment.experiment_id], max_results=200)
            if safe_name(r.data.tags.get("dag_run_id", "")) == run_dir.name]
    parents = [r for r in mine if "mlflow.parentRunId" not in r.data.tags]
    children = {r.data.tags["config_id"]: r for r in mine if "mlflow.parentRunId" in r.data.tags}
    return client, parents, children


def test_smoke_run_lands_in_mlflow_as_parent_and_children(home):
    home, env = home
    outcome = run_dag("mlbench_benchmark", SMOKE, env, log_path=home / "logs" / "smoke.log")
    assert outcome.returncode == 0, outcome.log_path.read_text()[-3000:]
    client, parents, children = runs_of(home, outcome.run_dir)
    assert len(parents) == 1 and set(children) == {"cifar10-resnet20__allreduce__w1__r0",
                                                   "cifar10-resnet20__allreduce__w2__r0"}
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["dag_id"] == "mlbench_benchmark"
    parent_artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/scaling.png", "plots/time_split.png"} <= parent_artifacts
    for config_id, child in children.items():
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.params["optimizer.lr"] == "0.02" and child.data.params["max_epochs"] == "1"
        assert child.data.params["world_size"] == config_id.split("__")[2][1:]
        assert "time_to_accuracy_s" not in child.data.metrics  # the smoke target is not reached
        assert child.data.metrics["compute_s"] > 0 and child.data.metrics["train_time_s"] > 0
        history = client.get_metric_history(child.info.run_id, "train_loss")
        assert [m.step for m in history] == [1]
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"result.json", "mllog.log", "validation.json"} <= names
        assert child.data.tags["goal_reached"] == "false" and child.data.tags["status"] == "completed"


def test_task_0_smoke_sweep_lands_in_mlflow_with_its_curves(home):
    home, env = home
    conf = {"tasks": ["allreduce"], "preset": "smoke", "world_sizes": [1, 2]}
    outcome = run_dag("mlbench_benchmark", conf, env, log_path=home / "logs" / "allreduce.log")
    assert outcome.returncode == 0, outcome.log_path.read_text()[-3000:]
    assert not (outcome.run_dir / "data_validation" / "synthetic-cifar10.json").exists()
    client, parents, children = runs_of(home, outcome.run_dir, task="allreduce")
    assert len(parents) == 1 and set(children) == {"allreduce__allreduce__w1__r0", "allreduce__allreduce__w2__r0"}
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["mlbench_id"] == "0a"
    assert {"plots/allreduce.png"} <= {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    # one rank moves no data: bus bandwidth 0 (nccl-tests' 2(n-1)/n), two ranks a real figure
    assert parent.data.metrics["peak_busbw_gbps_fp32_w1"] == 0
    assert parent.data.metrics["peak_busbw_gbps_fp32_w2"] > 0
    sizes = [1, 10, 100, 1000]
    for child in children.values():
        assert child.info.status == "FINISHED" and child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["validation_success"] == "true" and child.data.params["sizes"] == str(sizes)
        if not torch.distributed.is_mpi_available():  # what the sweep could not measure, and why
            assert child.data.tags["backend_unavailable.mpi"] == "this torch build was not compiled with MPI"
        for dtype in ("fp32", "fp16"):
            curve = client.get_metric_history(child.info.run_id, f"busbw_gbps_{dtype}")
            moving = child.data.params["world_size"] != "1"
            assert sorted(p.step for p in curve) == sizes and all((p.value > 0) == moving for p in curve)
            assert len(client.get_metric_history(child.info.run_id, f"latency_median_ms_{dtype}")) == len(sizes)
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"result.json", "config.json", "validation.json"} <= names
    summary = (outcome.run_dir / "summary.txt").read_text()
    assert "allreduce allreduce w2  fp32" in summary and "peak busbw" in summary


def test_failed_configuration_is_recorded_failed_while_the_other_completes(home):
    """w2's directory holds a checkpoint marker whose files are gone (a half-deleted shared volume):
    its ranks start, cannot resume, and fail; w1 trains normally."""
    from tasks.registry import resolve
    from tasks.runtime.checkpoint import publish

    home, env = home

    def break_w2_when_planned(line):
        if "[pipeline] planned" not in line:
            return
        plans = sorted((home / "runs").glob("*/plan.json"), key=lambda p: p.stat().st_mtime)
        w2 = next(c for c in json.loads(plans[-1].read_text()) if c["world_size"] == 2)
        config = resolve(w2["task"], w2["preset"], world_size=2, backend=w2["backend"], device=w2["device"],
                         algorithm=w2["algorithm"], overrides=w2["overrides"])
        checkpoints = Path(w2["output"]) / "checkpoints"
        checkpoints.mkdir(parents=True)
        publish(checkpoints, 1, config.config_hash())

    outcome = run_dag("mlbench_benchmark", SMOKE, env, log_path=home / "logs" / "one-fails.log",
                      on_line=break_w2_when_planned)
    assert outcome.returncode != 0  # the final check fails the DAG run, after everything was recorded
    _, parents, children = runs_of(home, outcome.run_dir)
    w1, w2 = children["cifar10-resnet20__allreduce__w1__r0"], children["cifar10-resnet20__allreduce__w2__r0"]
    assert w1.info.status == "FINISHED"
    assert w2.info.status == "FAILED"
    assert w2.data.tags["failure_reason"].startswith("no complete checkpoint in")  # long: MLflow keeps both ends
    bundle = json.loads((outcome.run_dir / "cifar10-resnet20__allreduce__w2__r0" / "result.json").read_text())
    assert "(epoch 1: epoch-0001-rank0.pt is missing; epoch-0001-rank1.pt is missing)" in bundle["reason"]
    assert parents[0].info.status == "FAILED"
    assert "1 of 2 configuration(s) failed" in outcome.log_path.read_text()


def test_more_ranks_than_samples_is_stopped_at_the_data_gate(home):
    home, env = home
    conf = {**SMOKE, "overrides": {"max_epochs": "1", "data.max_train_samples": "1"}}
    outcome = run_dag("mlbench_benchmark", conf, env, log_path=home / "logs" / "too-few.log")
    assert outcome.returncode != 0
    assert "1 training samples cannot be split across 2 ranks" in outcome.log_path.read_text()
    assert not (outcome.run_dir / "plan.json").exists()


def test_corrupted_dataset_stops_at_the_gx_gate_before_training(home, tmp_path):
    from tasks.data import catalog, store

    home, env = home
    data_root = tmp_path / "data"
    version = catalog.DATASETS["synthetic-cifar10"].version

    def corrupt(scratch):
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(300, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=300).astype(np.int64)
        labels[:30] = 12  # labels outside the 10 classes
        return {"train_images": images[:200], "train_labels": labels[:200],
                "val_images": images[200:], "val_labels": labels[200:]}, {"source": "corrupted on purpose"}

    store.prepare_dataset(data_root, "synthetic-cifar10", version, corrupt)
    outcome = run_dag("mlbench_benchmark", SMOKE, {**env, "MLBENCH_DATA_ROOT": str(data_root)},
                      log_path=home / "logs" / "corrupt.log")
    assert outcome.returncode != 0
    log = outcome.log_path.read_text()
    assert "expect_column_values_to_be_between on samples.label" in log
    assert not (outcome.run_dir / "plan.json").exists()  # nothing was planned, nothing trained
    assert not any(outcome.run_dir.glob("cifar10-resnet20__*"))
    report = json.loads((outcome.run_dir / "data_validation" / "synthetic-cifar10.json").read_text())
    assert report["success"] is False
    _, parents, children = runs_of(home, outcome.run_dir)
    assert not children and len(parents) == 1, "this run must be recorded in MLflow, as a stopped parent"
    assert parents[0].info.status == "FAILED"
    assert "data validation failed" in parents[0].data.tags["failure_reason"]


def test_invalid_request_fails_at_validation(home):
    home, env = home
    outcome = run_dag("mlbench_benchmark", {**SMOKE, "world_sizes": [1, 1]}, env,
                      log_path=home / "logs" / "invalid.log")
    assert outcome.returncode != 0
    log = outcome.log_path.read_text()
    assert "invalid request field 'world_sizes': duplicate worker counts in [1, 1]" in log
    assert "[pipeline] launching" not in log and not (outcome.run_dir / "request.json").exists()
    # nothing ran, and still the attempt and its reason are in MLflow
    client, parents, children = runs_of(home, outcome.run_dir, task="invalid-requests")
    assert not children and len(parents) == 1
    run = parents[0]
    assert run.info.status == "FAILED" and run.data.tags["stopped"] == "invalid request"
    assert "invalid request field 'world_sizes'" in run.data.tags["failure_reason"]
    assert run.data.params["world_sizes"] == "[1, 1]"


def test_translation_smoke_runs_pass_both_gates_and_log_both_bleu_curves(home):
    """Tasks 4a and 4b on 2 ranks each: the sentence-pair data gate, training, the translation results gate
    (evaluations inside the epoch included); MLflow holds both BLEU curves, per epoch and per evaluation,
    and the sample translations."""
    home, env = home
    conf = {"tasks": ["wmt16-gnmt", "wmt17-transformer"], "preset": "smoke", "world_sizes": [2],
            "overrides": {"max_epochs": "1"}}
    outcome = run_dag("mlbench_benchmark", conf, env, log_path=home / "logs" / "translation.log")
    assert outcome.returncode == 0, outcome.log_path.read_text()[-3000:]
    for task, dataset in (("wmt16-gnmt", "synthetic-wmt16-en-de"), ("wmt17-transformer", "synthetic-wmt17-en-de")):
        report = json.loads((outcome.run_dir / "data_validation" / f"{dataset}.json").read_text())
        assert report["success"] is True
        client, parents, children = runs_of(home, outcome.run_dir, task=task)
        assert len(parents) == 1 and set(children) == {f"{task}__allreduce__w2__r0"}
        child = children[f"{task}__allreduce__w2__r0"]
        assert child.info.status == "FINISHED" and child.data.tags["validation_success"] == "true"
        for curve in ("validation_bleu", "validation_bleu_batch_average"):
            points = client.get_metric_history(child.info.run_id, curve)
            assert [p.step for p in points] == [1] and 0 <= points[0].value <= 100
        for curve in ("evaluation_bleu", "evaluation_bleu_batch_average"):  # every 30 % of the epoch, then its end
            steps = sorted(p.step for p in client.get_metric_history(child.info.run_id, curve))
            assert len(steps) >= 2 and 0 < steps[0] < 100 and steps[-1] == 100, (curve, steps)
        decoded = client.get_metric_history(child.info.run_id, "validation_decoded_sentences")
        assert decoded[0].value == client.get_metric_history(child.info.run_id,
                                                             "validation_reference_sentences")[0].value
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"result.json", "translations.txt", "validation.json"} <= names
    summary = (outcome.run_dir / "summary.txt").read_text()
    assert "time to BLEU" in summary and "wmt17-transformer allreduce w2" in summary
