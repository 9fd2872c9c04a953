"""Tasks 4a and 4b's demo presets through the mlbench_benchmark DAG at 1 and 2 ranks: the sentence-pair
data gate, training to the demo's BLEU target on real number phrases, the translation results gate,
MLflow. Minutes of CPU: `make test-slow`."""

import pytest

from operators.embedded import airflow_env, prepare_airflow, run_dag

pytestmark = [pytest.mark.dags, pytest.mark.slow]


@pytest.mark.parametrize("task", ["wmt16-gnmt", "wmt17-transformer"])
def test_translation_demo_reaches_its_bleu_target_through_the_dag(tmp_path, task):
    from mlflow import MlflowClient

    env = airflow_env({"MLBENCH_HOME": str(tmp_path), "AIRFLOW_HOME": str(tmp_path / "airflow"),
                       "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "MLBENCH_RETRY_DELAY_S": "1"})
    prepare_airflow(env)
    conf = {"tasks": [task], "preset": "demo", "world_sizes": [1, 2]}
    outcome = run_dag("mlbench_benchmark", conf, env, log_path=tmp_path / "logs" / f"{task}.log")
    assert outcome.returncode == 0, outcome.log_path.read_text()[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name(f"mlbench/{task}")
    children = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.params["world_size"] for r in children) == ["1", "2"]
    for child in children:
        assert child.data.tags["goal_reached"] == "true" and child.data.tags["validation_success"] == "true"
        bleu = client.get_metric_history(child.info.run_id, "validation_bleu")
        assert max(p.value for p in bleu) >= float(child.data.params["target_value"])
        assert client.get_metric_history(child.info.run_id, "validation_bleu_batch_average")
        evaluations = client.get_metric_history(child.info.run_id, "evaluation_bleu")  # every 30 % of an epoch too
        assert any(p.step % 100 for p in evaluations)
        assert max(p.value for p in evaluations) == max(p.value for p in bleu)  # the goal's evaluation is in both
    assert "time to BLEU" in (outcome.run_dir / "summary.txt").read_text()
