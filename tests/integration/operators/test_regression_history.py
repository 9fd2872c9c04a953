"""A series' history is read back from a real MLflow store: only its own runs, newest nights kept,
a night's repeats at the night's time."""

import mlflow
import pytest

from operators.regressions.history import history, series_of
from operators.tracking.store import CHILD_ROLE, ROLE_TAG

pytestmark = pytest.mark.integration
DAY_MS = 86_400_000


def log_night(client, experiment_id, night, *, config_hash="abc", hardware="EPYC", repeats=1, status="FINISHED",
              tta=10.0):
    for repeat in range(repeats):
        run = client.create_run(experiment_id, start_time=night * DAY_MS + repeat * 60_000, tags={
            ROLE_TAG: CHILD_ROLE, "task": "t", "config_hash": config_hash, "hardware": hardware,
            "dag_id": "mlbench_nightly", "dag_run_id": f"scheduled__{night}", "config_id": f"t__a__w1__r{repeat}",
            "goal_reached": "true", "git_sha": f"sha{night}"})
        client.log_param(run.info.run_id, "accelerator", "cpu")
        client.log_metric(run.info.run_id, "time_to_accuracy_s", tta + repeat)
        client.set_terminated(run.info.run_id, status=status)


def test_history_keeps_its_series_and_the_newest_nights(tmp_path):
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment_id = client.create_experiment("mlbench/t", artifact_location=str(tmp_path / "artifacts"))
    for night in range(1, 6):
        log_night(client, experiment_id, night, repeats=2 if night == 5 else 1)
    log_night(client, experiment_id, 3, config_hash="other")  # another config: another series
    log_night(client, experiment_id, 4, hardware="T4")  # other hardware: another series
    latest = client.search_runs([experiment_id], filter_string="tags.dag_run_id = 'scheduled__5'")[0]
    key = series_of(latest)
    assert (key.task, key.config_hash, key.accelerator, key.hardware) == ("t", "abc", "cpu", "EPYC")

    runs = history(client, experiment_id, key, nights=3)
    assert [r.dag_run_id for r in runs] == ["scheduled__3", "scheduled__4", "scheduled__5", "scheduled__5"]
    assert runs[-1].start_ms == runs[-2].start_ms == 5 * DAY_MS  # the night's repeats share its time
    assert all(r.succeeded and r.goal_reached for r in runs) and runs[0].git_sha == "sha3"
    assert sorted(r.metrics["time_to_accuracy_s"] for r in runs[-2:]) == [10.0, 11.0]


def seed_nights(client, experiment_id, ttas, *, noise=0.02):
    """One configuration run (and its parent) per night, time to accuracy from `ttas` with 2 % noise."""
    import random

    rng = random.Random(7)
    for night, tta in enumerate(ttas, start=1):
        dag_run_id = f"scheduled__{night}"
        parent = client.create_run(experiment_id, start_time=night * DAY_MS, tags={
            ROLE_TAG: "benchmark", "dag_run_id": dag_run_id})
        client.set_terminated(parent.info.run_id, status="FINISHED")
        log_night(client, experiment_id, night, tta=tta * (1 + rng.gauss(0, noise)))


def test_a_slower_night_is_a_regression_of_its_series_and_an_unchanged_one_is_not(tmp_path):
    from operators.regressions.nightly import compare_dag_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment("mlbench/t", artifact_location=str(tmp_path / "artifacts"))
    seed_nights(client, experiment_id, [10.0] * 24 + [13.0] * 3)  # 30 % slower for the last 3 nights

    report = compare_dag_run("scheduled__27", tracking_uri=uri)
    by_metric = {v.metric: v for v in report.verdicts}
    tta = by_metric["time_to_accuracy_s"]
    assert tta.status == "regression" and tta.magnitude_pct > 20, tta
    assert tta.commit_after in {"sha25", "sha26", "sha27"} and "time_to_accuracy_s" in tta.line()
    child = client.search_runs([experiment_id], filter_string="tags.dag_run_id = 'scheduled__27' and "
                                                             "tags.`mlbench.role` = 'configuration'")[0]
    assert child.data.tags["regression"] == "true" and "time_to_accuracy_s" in child.data.tags["regression_metrics"]
    assert "regression" in report.section() and "time_to_accuracy_s" in report.section()

    steady = compare_dag_run("scheduled__24", tracking_uri=uri)  # the last night before the change
    assert not steady.regressions, [v.line() for v in steady.regressions]


def test_a_changed_config_hash_starts_a_new_series_and_the_report_says_so(tmp_path):
    from operators.regressions.nightly import compare_dag_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment("mlbench/t", artifact_location=str(tmp_path / "artifacts"))
    for night in range(1, 21):
        log_night(client, experiment_id, night, config_hash="oldhash")
    for night in (21, 22):  # a hyperparameter changed: same configuration, new hash
        log_night(client, experiment_id, night, config_hash="newhash", tta=20.0)

    report = compare_dag_run("scheduled__22", tracking_uri=uri)
    assert {v.status for v in report.verdicts} == {"insufficient history"}  # twice as slow, but a new series
    assert report.notes == ["t__a__w1: config hash changed (oldhash -> newhash): a new series starts, "
                            "2 night(s) of history so far"]
    assert "note: t__a__w1: config hash changed" in report.section()
