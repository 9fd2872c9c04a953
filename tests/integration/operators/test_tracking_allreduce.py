"""Task 0 in MLflow (a temporary SQLite store): curves over tensor size, the comparison over world
sizes on the parent, a failed configuration as FAILED with its reason."""

import json

import pytest

from operators.report import ConfigurationOutcome
from operators.tracking import log_benchmark
from operators.gates.report import ValidationReport
from tasks.runtime.results import SweepResult
from tests.conftest import make_sweep_result

pytestmark = pytest.mark.integration

mlflow = pytest.importorskip("mlflow")

DAG_ID = "mlbench_benchmark"
DAG_RUN_ID = "manual__2026-11-28T16:00:00+00:00"
REQUEST = {"tasks": ["allreduce"], "world_sizes": [1, 2, 4], "repeats": 1, "preset": "smoke",
           "launcher": "local", "accelerator": "cpu", "overrides": {}}
VALID = ValidationReport("result:x", True, [], {"evaluated_expectations": 25})


def outcome(tmp_path, world_size, status="completed"):
    config_id = f"allreduce__allreduce__w{world_size}__r0"
    result = make_sweep_result(world_size, status=status, bandwidth_gbps=float(world_size))
    output = tmp_path / "runs" / config_id
    (output / "logs").mkdir(parents=True)
    (output / "result.json").write_text(json.dumps(result))
    (output / "logs" / "rank0.log").write_text("[allreduce] fp32 1 elements: median 0.1 ms\n")
    return ConfigurationOutcome(config_id=config_id, task="allreduce", world_size=world_size, repeat=0,
                                algorithm="allreduce", backend="gloo", launcher="local", output=str(output),
                                result=SweepResult.from_dict(result), validation=VALID)


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    base = tmp_path_factory.mktemp("tracking-allreduce")
    outcomes = [outcome(base, 1), outcome(base, 2), outcome(base, 4, status="failed")]
    uri = f"sqlite:///{base}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLBENCH_HOME", str(base / "home"))
        answer = log_benchmark(outcomes, dag_id=DAG_ID, dag_run_id=DAG_RUN_ID, request=REQUEST, tracking_uri=uri)
        again = log_benchmark(outcomes, dag_id=DAG_ID, dag_run_id=DAG_RUN_ID, request=REQUEST, tracking_uri=uri)
    return {"answer": answer, "again": again, "client": mlflow.MlflowClient(uri), "outcomes": outcomes}


def artifacts(client, run_id, path=None):
    paths = []
    for info in client.list_artifacts(run_id, path):
        paths += artifacts(client, run_id, info.path) if info.is_dir else [info.path]
    return set(paths)


def test_child_run_holds_curves_with_step_equal_to_elements(logged):
    client, answer = logged["client"], logged["answer"]
    w2 = logged["outcomes"][1].result.to_dict()  # as result.json has it
    child = client.get_run(answer["child_runs"]["allreduce__allreduce__w2__r0"])
    assert child.info.status == "FINISHED"
    assert child.data.tags["mlflow.parentRunId"] == answer["parent_runs"]["allreduce"]
    sizes = w2["config"]["sizes"]
    for dtype in ("fp32", "fp16"):
        expected = {m["elements"]: m for m in w2["measurements"] if m["dtype"] == dtype}
        latency = client.get_metric_history(child.info.run_id, f"latency_median_ms_{dtype}")
        assert sorted(p.step for p in latency) == sizes
        assert all(p.value == pytest.approx(expected[p.step]["latency_median_s"] * 1e3) for p in latency)
        busbw = client.get_metric_history(child.info.run_id, f"busbw_gbps_{dtype}")
        assert all(p.value == pytest.approx(expected[p.step]["busbw_gbps"]) for p in busbw)
        for key in (f"latency_p10_ms_{dtype}", f"latency_p90_ms_{dtype}", f"algbw_gbps_{dtype}"):
            assert len(client.get_metric_history(child.info.run_id, key)) == len(sizes)  # not doubled by the retry
    metrics = child.data.metrics
    assert metrics["peak_busbw_gbps_fp32"] == pytest.approx(max(m["busbw_gbps"] for m in w2["measurements"]
                                                                if m["dtype"] == "fp32"))
    assert metrics["small_message_latency_ms_fp32"] == pytest.approx(w2["measurements"][0]["latency_median_s"] * 1e3)
    params, tags = child.data.params, child.data.tags
    assert params["sizes"] == json.dumps(sizes) and params["dtypes"] == '["fp32", "fp16"]'
    assert params["repeats"] == str(w2["config"]["repeats"]) and params["world_size"] == "2"
    assert tags["config_hash"] == w2["config_hash"] and tags["mlbench_id"] == "0a" and tags["hardware"] == "AMD EPYC"
    assert "goal_reached" not in tags and tags["status"] == "completed"
    expected = {"result.json", "plots/allreduce.png", "validation.json", "logs/rank0.log"}
    assert expected <= artifacts(client, child.info.run_id)


def test_failed_configuration_is_failed_with_its_reason(logged):
    client, answer = logged["client"], logged["answer"]
    child = client.get_run(answer["child_runs"]["allreduce__allreduce__w4__r0"])
    assert child.info.status == "FAILED"
    assert child.data.tags["failure_reason"] == "rank 1 exited with code 1"
    assert "result.json" in artifacts(client, child.info.run_id)


def test_parent_compares_world_sizes(logged):
    client, answer = logged["client"], logged["answer"]
    parent = client.get_run(answer["parent_runs"]["allreduce"])
    assert parent.info.status == "FAILED"
    assert parent.data.tags["failed_configurations"] == "allreduce__allreduce__w4__r0"
    metrics = parent.data.metrics
    for k in (1, 2):
        measured = logged["outcomes"][k - 1].result.measurements
        assert metrics[f"peak_busbw_gbps_fp32_w{k}"] == pytest.approx(
            max(m.busbw_gbps for m in measured if m.dtype == "fp32"))
        assert f"small_message_latency_ms_fp16_w{k}" in metrics and f"large_message_latency_ms_fp16_w{k}" in metrics
        curve = client.get_metric_history(parent.info.run_id, f"busbw_gbps_fp32_w{k}")
        assert sorted(p.step for p in curve) == logged["outcomes"][0].result.config["sizes"]
    assert not any(key.endswith("_w4") for key in metrics)  # the failed sweep measured nothing
    assert metrics["configurations"] == 3 and metrics["failed_configurations"] == 1
    assert not any(key.startswith(("speedup", "hit_rate")) for key in metrics)
    paths = artifacts(client, parent.info.run_id)
    assert {"plots/allreduce.png", "comparison/comparison.csv", "comparison/comparison.txt",
            "comparison/configurations.csv", "request.json"} <= paths
    assert "plots/scaling.png" not in paths
    note = parent.data.tags["mlflow.note.content"]
    assert "peak_busbw_gbps" in note and "tta_s" not in note


def test_logging_again_updates_the_same_runs(logged):
    assert logged["again"] == logged["answer"]


def test_a_run_comparing_backends_names_them_on_the_parent(tmp_path, monkeypatch):
    outcomes = []
    for backend, bandwidth in (("gloo", 1.0), ("nccl", 40.0)):
        o = outcome(tmp_path / backend, 2)
        o.result = SweepResult.from_dict(make_sweep_result(2, bandwidth_gbps=bandwidth))
        o.backend, o.compares_backends = backend, True
        o.config_id = f"allreduce__allreduce__{backend}__w2__r0"
        outcomes.append(o)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLBENCH_HOME", str(tmp_path / "home"))
    answer = log_benchmark(outcomes, dag_id=DAG_ID, dag_run_id=DAG_RUN_ID,
                           request={**REQUEST, "backend": ["gloo", "nccl"], "world_sizes": [2]}, tracking_uri=uri)
    client = mlflow.MlflowClient(uri)
    metrics = client.get_run(answer["parent_runs"]["allreduce"]).data.metrics
    assert metrics["peak_busbw_gbps_fp32_nccl_w2"] > metrics["peak_busbw_gbps_fp32_gloo_w2"] > 0
    assert "peak_busbw_gbps_fp32_w2" not in metrics  # ambiguous once two backends ran
    curve = client.get_metric_history(answer["parent_runs"]["allreduce"], "busbw_gbps_fp32_nccl_w2")
    assert sorted(p.step for p in curve) == [1, 10, 100, 1000]
    assert set(answer["child_runs"]) == {c.config_id for c in outcomes}
