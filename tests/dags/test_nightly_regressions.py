"""mlbench_nightly end to end through `airflow dags test`: each night is judged against the history
that MLflow holds, and a regression fails the DAG run naming the configuration and the metric.

Three real nights of a small sweep (cifar10-resnet20 smoke, a 1-epoch run whose target is reached)
around 20 seeded ones. Night 1 runs world sizes 1 and 2 and has no history to be judged on. Then 20
earlier nights are seeded in MLflow from night 1's runs: world size 1 as it ran (2 % noise), world
size 2 twice as fast as it ran. Night 2 runs world size 1 alone: unchanged, the DAG run succeeds.
Night 3 runs world size 2 alone: it and night 1 are twice as slow as the 20 nights before them, a
regression, and the DAG run fails.
"""

import json
import random

import pytest
import yaml

from operators.embedded import airflow_env, prepare_airflow, run_dag
from operators.regressions.compare import RegressionReport

pytestmark = [pytest.mark.dags, pytest.mark.slow]
DAY_MS = 86_400_000
SEEDED_NIGHTS = 20
TIME_METRICS = ("time_to_accuracy_s", "wall_time_to_accuracy_s")


def sweep(path, world_sizes):
    path.write_text(yaml.safe_dump({"version": 1, "request": {
        "tasks": ["cifar10-resnet20"], "preset": "smoke", "world_sizes": world_sizes, "target": 0.01,
        "overrides": {"max_epochs": "1"}, "on_regression": "fail"}}))
    return path


def nightly(home, env, name, world_sizes):
    env = {**env, "MLBENCH_NIGHTLY_SWEEP": str(sweep(home / f"{name}.yaml", world_sizes))}
    return run_dag("mlbench_nightly", {}, env, log_path=home / "logs" / f"{name}.log")


def seed_history(client, night_one, *, faster_world_size):
    """20 nights before night 1, copied from its configuration runs with 2 % noise; the time metrics
    of `faster_world_size` halved."""
    rng = random.Random(3)
    for child in night_one:
        tags = {k: v for k, v in child.data.tags.items() if not k.startswith("mlflow.") and k != "regression"}
        factor = 0.5 if tags["world_size"] == str(faster_world_size) else 1.0
        for night in range(1, SEEDED_NIGHTS + 1):
            run = client.create_run(child.info.experiment_id,
                                    start_time=child.info.start_time - (SEEDED_NIGHTS + 1 - night) * DAY_MS,
                                    tags={**tags, "dag_run_id": f"scheduled__seeded-{night}",
                                          "git_sha": f"seed{night:02d}"})
            for name, value in child.data.params.items():
                client.log_param(run.info.run_id, name, value)
            for name, value in child.data.metrics.items():
                scale = factor if name in TIME_METRICS else 1.0
                client.log_metric(run.info.run_id, name, value * scale * (1 + rng.gauss(0, 0.02)))
            client.set_terminated(run.info.run_id, status="FINISHED")


def test_a_night_twice_as_slow_as_its_history_fails_the_nightly_and_an_unchanged_one_passes(tmp_path):
    from mlflow import MlflowClient

    home = tmp_path
    env = airflow_env({"MLBENCH_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow"),
                       "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db", "MLBENCH_RETRY_DELAY_S": "1"})
    prepare_airflow(env)
    client = MlflowClient(f"sqlite:///{home}/mlflow.db")

    first = nightly(home, env, "night1", [1, 2])
    assert first.returncode == 0, first.log_path.read_text()[-3000:]
    judged = RegressionReport.read(first.run_dir)
    assert {v.status for v in judged.verdicts} == {"insufficient history"}, [v.line() for v in judged.verdicts]
    experiment = client.get_experiment_by_name("mlbench/cifar10-resnet20")
    night_one = client.search_runs([experiment.experiment_id], "tags.`mlbench.role` = 'configuration'")
    assert len(night_one) == 2 and all("time_to_accuracy_s" in r.data.metrics for r in night_one)
    seed_history(client, night_one, faster_world_size=2)

    unchanged = nightly(home, env, "night2", [1])
    assert unchanged.returncode == 0, unchanged.log_path.read_text()[-3000:]
    verdicts = {v.metric: v for v in RegressionReport.read(unchanged.run_dir).verdicts}
    assert verdicts["time_to_accuracy_s"].status == "ok" and verdicts["time_to_accuracy_s"].nights == SEEDED_NIGHTS + 2

    slower = nightly(home, env, "night3", [2])
    log = slower.log_path.read_text()
    assert slower.returncode != 0
    assert "regression(s) against the nightly history (on_regression: fail)" in log, log[-3000:]
    assert "cifar10-resnet20__allreduce__w2: time_to_accuracy_s: regression: mean +" in log
    found = RegressionReport.read(slower.run_dir)
    regressed = {v.metric for v in found.regressions}
    assert {"time_to_accuracy_s", "wall_time_to_accuracy_s"} <= regressed
    assert all(v.config_id == "cifar10-resnet20__allreduce__w2" and v.magnitude_pct > 50 for v in found.regressions)
    (run_id,) = found.regressions[0].run_ids
    child = client.get_run(run_id)
    assert child.data.tags["regression"] == "true" and "time_to_accuracy_s" in child.data.tags["regression_metrics"]
    assert "plots/trend.png" in {a.path for a in client.list_artifacts(run_id, "plots")}
    parent = client.get_run(child.data.tags["mlflow.parentRunId"])
    assert parent.data.metrics["regressions"] == len(found.regressions)
    summary = (slower.run_dir / "summary.txt").read_text()
    assert "Regressions:" in summary and "time_to_accuracy_s" in summary
    assert json.loads((slower.run_dir / "regressions.json").read_text())["verdicts"]

