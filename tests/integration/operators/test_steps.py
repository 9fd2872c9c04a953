"""The pipeline's steps chained by hand, without Airflow: what each DAG task would do."""

import json
from pathlib import Path

import pytest

from operators import steps
from operators.run_directory import RunDirectory
from operators.launch import launch_configuration
from operators.planning import Configuration
from operators.regressions.compare import MetricVerdict, RegressionReport

pytestmark = pytest.mark.integration


@pytest.fixture()
def home(tmp_path, monkeypatch, data_root):
    monkeypatch.setenv("MLBENCH_HOME", str(tmp_path))
    monkeypatch.setenv("MLBENCH_DATA_ROOT", str(data_root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    return tmp_path


def test_steps_run_a_request_end_to_end_without_airflow(home, capsys):
    run_id = "manual__2026-11-28T12:00:00+00:00"
    request = steps.validate_request_step(
        {"preset": "smoke", "world_sizes": [1, 2], "overrides": {"max_epochs": "1"}}, run_id)
    steps.prepare_data_step(request, run_id)
    verdicts = steps.validate_data_step(request, run_id)
    assert [v["success"] for v in verdicts] == [True]
    plan = steps.plan_step(request, run_id)
    summaries = [launch_configuration(Configuration.from_dict(c), run_timeout_s=300, rendezvous_timeout_s=60)
                 for c in plan]
    assert [s.status for s in summaries] == ["completed", "completed"]
    assert all(not s.retryable for s in summaries)
    assert all(v["success"] for v in steps.validate_results_step(run_id))
    ids = steps.track_step(run_id, dag_id="mlbench_benchmark")
    assert set(ids["child_runs"]) == {c["config_id"] for c in plan}
    counts = steps.compare_history_step(run_id)  # no nightly history yet: every metric is short of nights
    assert counts["verdicts"] > 0 and counts["regressions"] == 0
    found = RegressionReport.read(steps.run_dir(run_id))
    assert {v.status for v in found.verdicts} <= {"insufficient history", "regression"}
    assert {v.config_id for v in found.verdicts} == {c["config_id"].removesuffix("__r0") for c in plan}
    table = steps.report_step(run_id)
    assert "cifar10-resnet20 allreduce w2" in table and "Regressions: 0 in 2 configuration(s)" in table
    assert steps.cleanup_step(run_id, dag_id="mlbench_benchmark") == 0  # local launcher: nothing on a cluster
    steps.check_step(run_id)
    assert "MLFLOW_TRACKING_URI=sqlite:///" in capsys.readouterr().out
    run_dir = steps.run_dir(run_id)
    assert json.loads((run_dir / "request.json").read_text())["world_sizes"] == [1, 2]
    assert (run_dir / "summary.txt").read_text().strip() == table.strip()


def launch_one_smoke_configuration(run_id):
    """validate → prepare → plan → launch of one 1-epoch, 1-rank smoke configuration."""
    request = steps.validate_request_step({"preset": "smoke", "world_sizes": [1], "overrides": {"max_epochs": "1"}},
                                          run_id)
    steps.prepare_data_step(request, run_id)
    configuration = steps.plan_step(request, run_id)[0]
    launch_configuration(Configuration.from_dict(configuration), run_timeout_s=300, rendezvous_timeout_s=60)
    return configuration


def test_a_relaunch_in_the_same_directory_resumes_instead_of_starting_over(home):
    """What an Airflow retry does: the same configuration, the same bundle directory."""
    configuration = launch_one_smoke_configuration("manual__retry")
    again = launch_configuration(Configuration.from_dict(configuration), run_timeout_s=300, rendezvous_timeout_s=60)
    assert again.status == "completed"
    result = json.loads((Path(configuration["output"]) / "result.json").read_text())
    assert result["resumes"] == 1 and result["epochs_run"] == 1


def test_check_fails_the_run_when_a_recording_step_did_not_finish(home):
    run_id = "manual__track-crashed"
    launch_one_smoke_configuration(run_id)
    steps.validate_results_step(run_id)
    steps.compare_history_step(run_id)
    steps.report_step(run_id)
    steps.cleanup_step(run_id, dag_id="mlbench_benchmark")  # but `track` crashed: no marker
    with pytest.raises(RuntimeError, match=r"step\(s\) track did not finish"):
        steps.check_step(run_id)


def test_a_run_cleared_and_run_again_does_not_read_the_previous_attempt(home):
    run_id = "manual__cleared"
    request = steps.validate_request_step({"preset": "smoke", "world_sizes": [1]}, run_id)
    steps.plan_step(request, run_id)
    with pytest.raises(Exception, match="duplicate worker counts"):
        steps.validate_request_step({"preset": "smoke", "world_sizes": [1, 1]}, run_id)
    assert steps.load_plan(run_id) is None and steps.load_request(run_id) is None
    with pytest.raises(RuntimeError, match="stopped before any configuration was planned"):
        steps.check_step(run_id)


def test_check_fails_on_a_regression_only_when_the_request_says_fail(home, capsys):
    run_id = "manual__regressed"
    launch_one_smoke_configuration(run_id)
    steps.validate_results_step(run_id)
    steps.track_step(run_id, dag_id="mlbench_benchmark")
    steps.compare_history_step(run_id)
    steps.report_step(run_id)
    steps.cleanup_step(run_id, dag_id="mlbench_benchmark")
    steps.check_step(run_id)  # no history: nothing to judge
    directory = RunDirectory.of(run_id)
    RegressionReport([MetricVerdict(
        config_id="cifar10-resnet20__allreduce__w1", run_ids=("r1",), series="s", metric="time_to_accuracy_s",
        direction="lower", status="regression", magnitude_pct=31.0, p_value=0.004, commit_before="aaa",
        commit_after="bbb", summary="regression: mean +31.0 % since 2026-11-29 (commit aaa -> bbb), p=0.004",
    )]).write(directory.path)
    steps.check_step(run_id)  # the request's default: warn
    assert "warning: 1 regression(s)" in capsys.readouterr().out
    directory.write_request({**directory.read_request(), "on_regression": "fail"})
    with pytest.raises(RuntimeError, match=r"(?s)1 regression\(s\).*on_regression: fail.*"
                                           r"cifar10-resnet20__allreduce__w1: time_to_accuracy_s: regression: "
                                           r"mean \+31.0 %.*aaa -> bbb"):
        steps.check_step(run_id)


def test_check_fails_the_run_when_nothing_was_planned(home):
    with pytest.raises(RuntimeError, match="stopped before any configuration was planned"):
        steps.check_step("manual__never-planned")


def test_task_0_runs_through_every_step_with_local_ranks(home):
    run_id = "manual__allreduce"
    request = steps.validate_request_step({"tasks": ["allreduce"], "preset": "smoke", "world_sizes": [2]}, run_id)
    assert steps.prepare_data_step(request, run_id) == [] and steps.validate_data_step(request, run_id) == []
    (configuration,) = steps.plan_step(request, run_id)
    summary = launch_configuration(Configuration.from_dict(configuration), run_timeout_s=120, rendezvous_timeout_s=60)
    assert summary.status == "completed" and summary.goal_reached is None
    output = Path(configuration["output"])
    config = json.loads((output / "config.json").read_text())
    result = json.loads((output / "result.json").read_text())
    assert result["config"] == config and result["kind"] == "communication"
    assert sorted(p.name for p in (output / "logs").iterdir()) == ["rank0.log", "rank1.log"]
    (verdict,) = steps.validate_results_step(run_id)
    assert verdict["success"], verdict["summary"]
    steps.track_step(run_id, dag_id="mlbench_benchmark")
    steps.compare_history_step(run_id)
    table = steps.report_step(run_id)
    assert "allreduce allreduce w2  fp32" in table and "time to accuracy" not in table
    steps.cleanup_step(run_id, dag_id="mlbench_benchmark")
    steps.check_step(run_id)


def test_task_0_failure_is_recorded_as_a_failed_bundle(home):
    """A sweep stopped by the run timeout before any rank wrote a result still leaves task 0's own
    failed record, which the later steps validate, track and report; `check` then fails the run."""
    run_id = "manual__allreduce-fails"
    request = steps.validate_request_step({"tasks": ["allreduce"], "preset": "smoke", "world_sizes": [2]}, run_id)
    (configuration,) = steps.plan_step(request, run_id)
    summary = launch_configuration(Configuration.from_dict(configuration), run_timeout_s=0.5, rendezvous_timeout_s=60)
    assert summary.status == "failed" and "timed out" in summary.reason and summary.retryable
    result = json.loads((Path(configuration["output"]) / "result.json").read_text())
    assert result["kind"] == "communication" and result["measurements"] == []
    (verdict,) = steps.validate_results_step(run_id)
    assert verdict["success"]  # a failed record is consistent; the failure itself is the status
    steps.track_step(run_id, dag_id="mlbench_benchmark")
    steps.compare_history_step(run_id)
    assert "0/1 ok" in steps.report_step(run_id)
    steps.cleanup_step(run_id, dag_id="mlbench_benchmark")
    with pytest.raises(RuntimeError, match="1 of 1 configuration"):
        steps.check_step(run_id)


def test_a_broken_sweep_file_is_recorded_in_mlflow_with_its_reason(home):
    import mlflow

    from operators.request import InvalidRequest

    sweep = home / "nightly.yaml"
    sweep.write_text("version: 2\nrequest: {}\n")
    run_id = "scheduled__2026-11-29T02:00:00+00:00"
    with pytest.raises(InvalidRequest, match="must hold `version: 1`"):
        steps.validate_request_step(None, run_id, sweep_file=str(sweep))
    record = json.loads((steps.run_dir(run_id) / RunDirectory.INVALID_REQUEST).read_text())
    assert record["params"] == {"sweep_file": str(sweep)}
    ids = steps.track_step(run_id, dag_id="mlbench_nightly")
    client = mlflow.MlflowClient(f"sqlite:///{home}/mlflow.db")
    run = client.get_run(ids["parent_runs"]["invalid-requests"])
    assert run.info.status == "FAILED" and "must hold `version: 1`" in run.data.tags["failure_reason"]
    assert run.data.tags["dag_id"] == "mlbench_nightly" and run.data.params["sweep_file"] == str(sweep)
    # a valid request on the same run id (the DAG run cleared and fixed) forgets the invalid one
    steps.validate_request_step({"preset": "smoke", "world_sizes": [1]}, run_id)
    assert not (steps.run_dir(run_id) / RunDirectory.INVALID_REQUEST).exists()
