"""Evaluation inside epochs (`mid_epoch_eval_interval`, tasks 4a and 4b at 30 %) through the CLI on
2 gloo ranks: every rank evaluates at the planned steps, the results gate checks them, and a goal
reached inside an epoch ends the run there with its time to accuracy taken at that evaluation."""

import json

import jsonschema
import pytest

from operators.gates import validate_training_result
from tasks.runtime.evaluation_points import mid_epoch_steps
from tasks.runtime.results import load_schema
from tests.conftest import run_mlbench
from tests.integration.test_train_cli import mllog_events

pytestmark = pytest.mark.integration


def train(data_root, output, *overrides):
    """The 1a smoke preset (fast) on 2 ranks, evaluating at every half epoch."""
    sets = [arg for override in ("mid_epoch_eval_interval=0.5", *overrides) for arg in ("--set", override)]
    done = run_mlbench("train", "--task", "cifar10-resnet20", "--preset", "smoke", "--world-size", "2",
                       "--output", str(output), "--data-root", str(data_root), *sets)
    assert done.returncode == 0, done.stderr
    result = json.loads((output / "result.json").read_text())
    jsonschema.validate(result, load_schema())
    return result, done.stdout


def test_every_epoch_evaluates_at_its_planned_steps_and_passes_the_results_gate(data_root, tmp_path):
    result, stdout = train(data_root, tmp_path / "run", "max_epochs=2")
    steps_in_epoch = result["steps"] // 2
    planned = mid_epoch_steps(0.5, steps_in_epoch)
    assert planned  # the smoke epoch has steps enough to evaluate inside it
    for entry in result["history"]:
        inside = entry["mid_epoch_evaluations"]
        assert [e["step"] for e in inside] == planned and "stopped_at_step" not in entry
        assert all(e["steps_in_epoch"] == steps_in_epoch and 0 <= e["validation_metric"] <= 1 for e in inside)
        assert inside[-1]["cumulative_train_time_s"] < entry["cumulative_train_time_s"]
    evaluations = [e for e in mllog_events(tmp_path / "run" / "mllog.log") if e["key"] == "eval_accuracy"]
    assert len(evaluations) == 2 * (len(planned) + 1)
    assert [e["metadata"].get("epoch_step") for e in evaluations[:len(planned) + 1]] == [*planned, None]
    assert f"epoch 1/2 step {planned[0]}/{steps_in_epoch} top1" in stdout
    report = validate_training_result(result, expected_world_size=2)
    assert report.success, report.failures
    assert {"mid-epoch plan", "mid-epoch evaluations"} <= set(report.to_dict()["results"])


def test_a_goal_reached_inside_an_epoch_ends_the_run_at_that_evaluation(data_root, tmp_path):
    result, stdout = train(data_root, tmp_path / "goal", "target_value=0.0")  # any accuracy reaches it
    (epoch,) = result["history"]
    first = epoch["mid_epoch_evaluations"][0]
    assert result["goal_reached"] and result["epochs_run"] == 1
    assert epoch["stopped_at_step"] == first["step"] == result["steps"] == result["ranks"][1]["steps"]
    assert epoch["validation_metric"] == first["validation_metric"] == result["final_validation_metric"]
    assert result["time_to_accuracy_s"] == first["cumulative_train_time_s"] == result["train_time_s"]
    trained = result["throughput_samples_per_s"] * result["train_time_s"]  # the part of an epoch that ran
    assert trained == pytest.approx(2 * 32 * first["step"], rel=0.1)  # 2 ranks' batches of 32 up to the stop
    assert "goal reached" in stdout
    report = validate_training_result(result, expected_world_size=2)
    assert report.success, report.failures


def test_an_epoch_that_diverges_after_an_evaluation_inside_it_leaves_no_trace_of_it(data_root, tmp_path, monkeypatch):
    """The diverged epoch is not recorded, so the best metric its first evaluation set is forgotten too:
    the result names no figure its history does not hold."""
    from tasks.data import catalog
    from tasks.registry import resolve
    from tasks.runtime.trainer import Trainer
    from tests.integration.test_trainer_timing import train_one_rank

    catalog.prepare("digits", data_root)
    config = resolve("cifar10-resnet20", "demo", world_size=1,
                     overrides={"max_epochs": "2", "target_value": "1.0", "mid_epoch_eval_interval": "0.3"})
    original, seen = Trainer._evaluate, []

    def second_evaluation_diverges(self):
        metrics = original(self)
        seen.append(metrics)
        return {**metrics, "loss": float("nan")} if len(seen) == 2 else metrics

    monkeypatch.setattr(Trainer, "_evaluate", second_evaluation_diverges)
    result = train_one_rank(config, data_root, tmp_path)
    assert result.status == "failed" and result.reason.startswith("diverged: validation loss is nan at epoch 1 step ")
    assert len(seen) == 2 and 0 < seen[0]["top1"] < 1  # the first evaluation inside the epoch had a figure
    assert result.history == [] and result.best_validation_metric is None and not result.goal_reached
