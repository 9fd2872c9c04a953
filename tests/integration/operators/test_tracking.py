"""log_benchmark against a real (temporary) SQLite MLflow store, with fabricated bundles."""

import json
import os

import jsonschema
import pytest

from operators.report import ConfigurationOutcome
from operators.tracking import log_benchmark, log_stopped_run, tracking_uri
from operators.gates.report import ValidationReport
from tasks.runtime.results import TrainingResult, load_schema

pytestmark = pytest.mark.integration

mlflow = pytest.importorskip("mlflow")

TASK = "cifar10-resnet20"
DAG_ID = "mlbench_benchmark"
DAG_RUN_ID = "manual__2026-11-28T15:00:00+00:00"
REQUEST = {"tasks": [TASK], "world_sizes": [1, 2], "repeats": 1, "preset": "demo",
           "overrides": {"optimizer.lr": 0.05}, "launcher": "local",
           "accelerator": "cpu", "target": None}
EPOCHS = 3


def make_result(world_size, tta, *, status="completed", algorithm="allreduce", task=TASK,
                compute=None, communication=None):
    """A schema-valid result.json for one configuration: reaches the goal iff `tta` is given."""
    failed = status == "failed"
    reached = not failed and tta is not None
    compute = compute if compute is not None else (tta or 10.0) * 0.8
    communication = communication if communication is not None else (0.0 if world_size == 1 else (tta or 10.0) * 0.15)
    train_time = compute + communication + 0.05
    history = [] if failed else [
        {"epoch": e, "lr": 0.02 * world_size, "train_loss": 2.0 / e, "validation_metric": 0.32 * e,
         "validation_loss": 2.5 / e, "validation_top5": min(1.0, 0.5 + 0.2 * e),
         "epoch_time_s": train_time / EPOCHS + 0.1,
         "train_time_s": train_time / EPOCHS, "cumulative_train_time_s": train_time * e / EPOCHS}
        for e in range(1, EPOCHS + 1)
    ]
    phases = {"data": 0.05, "forward": compute * 0.4, "loss": compute * 0.05, "backward": compute * 0.45,
              "communication": communication, "optimizer": compute * 0.1}
    return {
        "schema_version": "1.0", "status": status,
        "reason": "diverged: training loss is nan at epoch 1" if failed else None,
        "task": task, "task_version": "1.0", "mlbench_id": "1a", "preset": "demo",
        "algorithm": algorithm, "reference_implementation": algorithm == "allreduce",
        "world_size": world_size, "backend": "gloo", "device": "cpu", "seed": 42,
        "target": {"metric": "top1", "mode": "max", "value": 0.95},
        "goal_reached": reached,
        "time_to_accuracy_s": tta if reached else None,
        "wall_time_to_accuracy_s": tta + 0.5 if reached else None,
        "train_time_s": train_time, "wall_time_s": train_time + 0.6,
        "compute_s": compute, "communication_s": communication, "phases_s": phases,
        "epochs_run": len(history), "steps": 23 * len(history),
        "final_validation_metric": None if failed else 0.96 if reached else 0.8,
        "best_validation_metric": None if failed else 0.96 if reached else 0.8,
        "throughput_samples_per_s": 0.0 if failed else 1000.0 * world_size,
        "history": history,
        "config": {"task": task, "world_size": world_size, "backend": "gloo", "algorithm": algorithm,
                   "optimizer": {"name": "sgd", "lr": 0.02, "momentum": 0.9},
                   "data": {"augmentation": {"mean": [0.3, 0.3, 0.3]}}, "model": {"options": {}},
                   "max_epochs": 15},
        "config_hash": "0123456789abcdef",
        "model": {"name": "resnet20-cifar", "parameters": 272474},
        "provenance": {"hostname": "vm", "torch": "2.13.0+cpu", "cuda": None, "nccl": None,
                       "device_name": "AMD EPYC", "git_sha": "8fc85e4", "image": None},
        "ranks": [{"rank": r, "hostname": "vm", "device_name": "AMD EPYC", "train_time_s": train_time,
                   "compute_s": compute, "communication_s": communication, "steps": 23 * len(history)}
                  for r in range(world_size)],
        "resumes": 0, "lost_time_s": 0.0,
        "started_at": "2026-11-28T15:26:35+00:00", "finished_at": "2026-11-28T15:26:45+00:00",
    }


def write_bundle(root, config_id, result):
    out = root / config_id
    (out / "logs").mkdir(parents=True)
    if result is not None:
        jsonschema.validate(result, load_schema())
        (out / "result.json").write_text(json.dumps(result))
    (out / "mllog.log").write_text(':::MLLOG {"namespace": "", "time_ms": 1795879595610, "event_type": '
                                   '"INTERVAL_START", "key": "init_start", "value": null, "metadata": {}}\n')
    (out / "logs" / "rank0.log").write_text("epoch 1 done\n")
    return str(out)


VALID = ValidationReport("result_bundle", True, [], {"evaluated_expectations": 3})


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """One log_benchmark call over 6 configurations of 2 tasks; MLBENCH_HOME points into tmp."""
    base = tmp_path_factory.mktemp("tracking")
    runs = base / "runs"
    specs = [  # config_id, task, world size, repeat, result, failure_reason
        ("w1-r0", TASK, 1, 0, make_result(1, 10.0), None),
        ("w2-r0", TASK, 2, 0, make_result(2, 6.0), None),
        ("w2-r1", TASK, 2, 1, make_result(2, None, status="failed"), None),
        ("w2-r2", TASK, 2, 2, None, "launch failed: rendezvous timeout"),
        ("w4-r0", TASK, 4, 0, make_result(4, 4.0), None),
        ("other-w1", "other-task", 1, 0, make_result(1, 3.0, task="other-task"), None),
    ]
    outcomes = [
        ConfigurationOutcome(config_id=cid, task=task, world_size=ws, repeat=rep, algorithm="allreduce",
                             backend="gloo", launcher="local", output=write_bundle(runs, cid, res),
                             result=None if res is None else TrainingResult.from_dict(res),
                             validation=VALID if res is not None else None, failure_reason=reason)
        for cid, task, ws, rep, res, reason in specs
    ]
    uri = f"sqlite:///{base}/mlflow.db"
    home = base / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLBENCH_HOME", str(home))
        answer = log_benchmark(outcomes, dag_id=DAG_ID, dag_run_id=DAG_RUN_ID, request=REQUEST, tracking_uri=uri)
    return {"answer": answer, "client": mlflow.MlflowClient(uri), "uri": uri, "home": home,
            "outcomes": outcomes}


def artifact_paths(client, run_id, path=None):
    paths = []
    for info in client.list_artifacts(run_id, path):
        paths += artifact_paths(client, run_id, info.path) if info.is_dir else [info.path]
    return paths


def test_experiment_per_task_with_artifacts_under_mlbench_home(logged):
    client, answer = logged["client"], logged["answer"]
    assert set(answer["experiments"]) == {TASK, "other-task"}
    experiment = client.get_experiment_by_name(f"mlbench/{TASK}")
    assert experiment is not None and experiment.experiment_id == answer["experiments"][TASK]
    assert experiment.artifact_location == (logged["home"] / "artifacts" / TASK).as_uri()
    assert client.get_experiment_by_name("mlbench/other-task").experiment_id == answer["experiments"]["other-task"]
    # MLflow 3 opens it in the training-runs view (runs table, compare), not the GenAI one
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_parent_runs_are_named_for_what_ran(logged):
    parent = logged["client"].get_run(logged["answer"]["parent_runs"][TASK])
    assert parent.info.run_name == f"{TASK} demo w1,2 manual 2026-11-28 15:00"
    assert parent.data.tags["mlflow.note.content"].startswith(f"Benchmark `{TASK}`")  # the comparison table


def test_parent_run_carries_the_comparison(logged):
    client, answer = logged["client"], logged["answer"]
    parent = client.get_run(answer["parent_runs"][TASK])
    tags = parent.data.tags
    assert tags["dag_id"] == DAG_ID and tags["dag_run_id"] == DAG_RUN_ID
    assert tags["mlbench.role"] == "benchmark"
    assert parent.info.status == "FAILED"  # two configurations failed
    assert set(tags["failed_configurations"].split(",")) == {"w2-r1", "w2-r2"}

    metrics = parent.data.metrics
    # w2: two of its three runs missed the target, so MLPerf's rules give the set no score (no speedup)
    assert "speedup_w2" not in metrics and "efficiency_w2" not in metrics and "tta_s_w2" not in metrics
    assert metrics["speedup_w4"] == pytest.approx(10.0 / 4.0)
    assert metrics["efficiency_w4"] == pytest.approx(10.0 / 4.0 / 4)
    assert metrics["compute_speedup_w2"] == pytest.approx((10.0 * 0.8) / (6.0 * 0.8))
    assert metrics["speedup_allreduce_w4"] == metrics["speedup_w4"]
    assert metrics["hit_rate_w2"] == pytest.approx(1 / 3)
    assert metrics["configurations"] == 5 and metrics["failed_configurations"] == 2

    assert parent.data.params["overrides.optimizer.lr"] == "0.05"
    assert parent.data.params["world_sizes"] == "[1, 2]"

    paths = set(artifact_paths(client, parent.info.run_id))
    assert {"comparison/comparison.csv", "comparison/comparison.md", "comparison/configurations.csv",
            "plots/scaling.png", "plots/time_split.png", "request.json"} <= paths
    table = client.download_artifacts(parent.info.run_id, "comparison/comparison.csv",
                                       str(logged["home"] / "download"))
    assert open(table).read().count("\n") == 4  # header + w1, w2, w4

    other = client.get_run(answer["parent_runs"]["other-task"])
    assert other.info.status == "FINISHED" and other.data.metrics["speedup_w1"] == 1.0


def test_child_runs_hold_config_history_and_summary(logged):
    client, answer = logged["client"], logged["answer"]
    parent_id = answer["parent_runs"][TASK]
    child = client.get_run(answer["child_runs"]["w2-r0"])
    assert child.info.status == "FINISHED"
    assert child.info.run_name == "w2-r0"
    tags = child.data.tags
    assert tags["mlflow.parentRunId"] == parent_id
    assert tags["config_id"] == "w2-r0" and tags["dag_run_id"] == DAG_RUN_ID
    assert tags["hardware"] == "AMD EPYC" and tags["torch"] == "2.13.0+cpu" and tags["git_sha"] == "8fc85e4"
    assert tags["status"] == "completed" and tags["goal_reached"] == "true"
    assert tags["config_hash"] == "0123456789abcdef" and tags["mlbench_id"] == "1a"
    assert "failure_reason" not in tags and "cuda" not in tags  # None values are skipped

    params = child.data.params
    assert params["optimizer.lr"] == "0.02"
    assert params["data.augmentation.mean"] == "[0.3, 0.3, 0.3]"
    assert params["model.options"] == "{}"
    assert params["world_size"] == "2" and params["backend"] == "gloo"
    assert params["launcher"] == "local" and params["accelerator"] == "cpu"

    history = client.get_metric_history(child.info.run_id, "train_loss")
    assert sorted((m.step, m.value) for m in history) == [(e, pytest.approx(2.0 / e)) for e in range(1, EPOCHS + 1)]
    assert [m.step for m in client.get_metric_history(child.info.run_id, "validation_metric")] == [1, 2, 3]
    by_name = client.get_metric_history(child.info.run_id, "validation_top1")  # the metric under its own name
    assert sorted((m.step, m.value) for m in by_name) == [(e, pytest.approx(0.32 * e)) for e in range(1, EPOCHS + 1)]
    metrics = child.data.metrics
    assert metrics["time_to_accuracy_s"] == 6.0
    assert metrics["compute_s"] == pytest.approx(4.8)
    assert metrics["epochs_run"] == EPOCHS
    assert metrics["phase_forward_s"] == pytest.approx(4.8 * 0.4)
    assert metrics["lr"] == pytest.approx(0.04)

    paths = set(artifact_paths(client, child.info.run_id))
    assert {"result.json", "mllog.log", "validation.json", "plots/curves.png", "logs/rank0.log"} <= paths


def test_failed_and_missing_configurations_are_failed_child_runs(logged):
    client, answer = logged["client"], logged["answer"]
    parent_id = answer["parent_runs"][TASK]
    diverged = client.get_run(answer["child_runs"]["w2-r1"])
    assert diverged.info.status == "FAILED"
    assert diverged.data.tags["failure_reason"].startswith("diverged")
    assert diverged.data.tags["mlflow.parentRunId"] == parent_id
    assert diverged.data.params["optimizer.lr"] == "0.02"

    missing = client.get_run(answer["child_runs"]["w2-r2"])
    assert missing.info.status == "FAILED"
    assert missing.data.tags["failure_reason"] == "launch failed: rendezvous timeout"
    assert missing.data.tags["status"] == "missing"
    assert missing.data.tags["mlflow.parentRunId"] == parent_id
    assert missing.data.params["world_size"] == "2" and missing.data.params["repeat"] == "2"
    assert "mllog.log" in set(artifact_paths(client, missing.info.run_id))

    runs = client.search_runs([answer["experiments"][TASK]])
    assert len(runs) == 1 + 5  # nothing that ran is missing


def test_logging_again_reuses_the_same_runs(logged):
    client, first = logged["client"], logged["answer"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLBENCH_HOME", str(logged["home"]))
        second = log_benchmark(logged["outcomes"], dag_id=DAG_ID, dag_run_id=DAG_RUN_ID, request=REQUEST,
                               tracking_uri=logged["uri"])
    assert second == first
    assert len(client.search_runs([first["experiments"][TASK]])) == 6
    assert len(client.search_runs([first["experiments"]["other-task"]])) == 2
    child = first["child_runs"]["w2-r0"]
    assert len(client.get_metric_history(child, "train_loss")) == EPOCHS
    assert len(client.get_metric_history(child, "time_to_accuracy_s")) == 1
    assert len(client.get_metric_history(first["parent_runs"][TASK], "speedup_w4")) == 1
    assert client.get_run(child).info.status == "FINISHED"
    assert client.get_run(first["child_runs"]["w2-r2"]).info.status == "FAILED"


def test_default_tracking_uri_is_a_sqlite_store_under_mlbench_home(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLBENCH_HOME", str(tmp_path / "home"))
    assert tracking_uri() == f"sqlite:///{tmp_path}/home/mlflow.db"
    assert (tmp_path / "home").is_dir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert tracking_uri() == "http://mlflow:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("MLBENCH_HOME")
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == f"sqlite:///{os.path.realpath(tmp_path)}/.mlbench/mlflow.db"


def test_duplicate_configuration_ids_are_refused(tmp_path):
    outcome = ConfigurationOutcome("same", TASK, 1, 0, "allreduce", "gloo", "local", str(tmp_path), None,
                                   failure_reason="x")
    with pytest.raises(ValueError, match="duplicate"):
        log_benchmark([outcome, outcome], dag_id=DAG_ID, dag_run_id="r", request={},
                      tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")


def test_a_run_stopped_before_planning_is_a_failed_parent_run(tmp_path):
    report = tmp_path / "cifar10.json"
    report.write_text(json.dumps({"suite": "data", "success": False, "failures": ["labels out of range"]}))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    kwargs = dict(dag_id=DAG_ID, dag_run_id="stopped-run", reason="data validation failed: labels out of range",
                  artifacts=[report], tracking_uri=uri, artifact_root=str(tmp_path / "artifacts"))
    first = log_stopped_run(REQUEST, **kwargs)
    assert log_stopped_run(REQUEST, **kwargs) == first
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([first["experiments"][TASK]])
    assert run.info.run_id == first["parent_runs"][TASK] and run.info.status == "FAILED"
    assert run.data.tags["failure_reason"].startswith("data validation failed")
    assert run.data.tags["dag_run_id"] == "stopped-run" and run.data.params["preset"] == "demo"
    assert {"validation/cifar10.json", "request.json"} <= set(artifact_paths(client, run.info.run_id))
    assert first["child_runs"] == {}



def test_experiment_links_open_the_training_runs_view():
    from operators.tracking import experiment_url

    assert experiment_url("http://mlflow:5000/", "7") == "http://mlflow:5000/#/experiments/7?workflowType=machine_learning"
    assert experiment_url("sqlite:///x/mlflow.db", "7").startswith("http://127.0.0.1:5000/#/experiments/7?")
    assert experiment_url("http://mlflow:5000", "7", "ab12") == (
        "http://mlflow:5000/#/experiments/7/runs?viewStateShareKey=ab12&workflowType=machine_learning")


def test_each_experiment_has_a_saved_runs_table_view_with_the_comparison_columns(logged):
    from operators.tracking.views import VIEW_NAME, read_view_state

    client, answer = logged["client"], logged["answer"]
    assert answer["views"][TASK] == "mlbench-comparison"
    envelope = client.get_experiment(answer["experiments"][TASK]).tags["mlflow.sharedViewState.mlbench-comparison"]
    assert json.loads(envelope)["name"] == VIEW_NAME and json.loads(envelope)["state"].startswith("deflate;")
    columns = read_view_state(envelope)["selectedColumns"]
    assert "params.`world_size`" in columns and "metrics.`time_to_accuracy_s`" in columns
    child = client.get_run(answer["child_runs"]["w1-r0"])  # every column is something the runs hold
    for column in columns:
        kind, name = column.split(".", 1)
        held = {"params": child.data.params, "metrics": child.data.metrics}.get(kind)
        assert held is None or name.strip("`") in held, column
