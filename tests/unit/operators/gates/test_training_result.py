"""The training-result gate: consistent results pass, each inconsistency fails naming its expectation."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from operators.gates import ValidationFailed, ValidationReport, validate_training_result

pytestmark = pytest.mark.unit


def _json_roundtrip(report: ValidationReport) -> dict:
    return json.loads(json.dumps(report.to_dict(), allow_nan=False))



def _fabricated_result(world_size: int = 2, *, goal_reached: bool = True) -> dict[str, Any]:
    """A consistent result.json of a 3-epoch run, shaped like the trainer's (see result.schema.json)."""
    metrics = [0.4, 0.8, 0.96]
    epoch_time = 0.5
    history = [
        {
            "epoch": e,
            "lr": 0.04,
            "train_loss": 2.0 / e,
            "validation_metric": metrics[e - 1],
            "validation_loss": 1.5 / e,
            "validation_top5": 0.99,
            "epoch_time_s": epoch_time + 0.05,
            "train_time_s": epoch_time,
            "cumulative_train_time_s": epoch_time * e,
        }
        for e in (1, 2, 3)
    ]
    train_time = epoch_time * 3
    phases = {"data": 0.01, "forward": 0.5, "loss": 0.01, "backward": 0.6, "communication": 0.3, "optimizer": 0.08}
    ranks = [
        {
            "rank": r,
            "hostname": "node",
            "device_name": "cpu",
            "train_time_s": train_time,
            "compute_s": 1.2,
            "communication_s": 0.3,
            "steps": 60,
            "phases_s": phases,
        }
        for r in range(world_size)
    ]
    target = 0.95 if goal_reached else 0.99
    return {
        "schema_version": "1.0",
        "status": "completed",
        "reason": None,
        "task": "cifar10-resnet20",
        "task_version": "1.0",
        "mlbench_id": "1a",
        "preset": "demo",
        "algorithm": "allreduce",
        "reference_implementation": True,
        "world_size": world_size,
        "backend": "gloo",
        "device": "cpu",
        "seed": 42,
        "target": {"metric": "top1", "mode": "max", "value": target},
        "goal_reached": goal_reached,
        "time_to_accuracy_s": train_time if goal_reached else None,
        "wall_time_to_accuracy_s": train_time + 0.3 if goal_reached else None,
        "train_time_s": train_time,
        "wall_time_s": train_time + 0.4,
        "compute_s": 1.2,
        "communication_s": 0.3,  # compute + communication == train time: the boundary passes
        "phases_s": phases,
        "epochs_run": 3,
        "steps": 60,
        "final_validation_metric": metrics[-1],
        "best_validation_metric": metrics[-1],
        "throughput_samples_per_s": 1000.0,
        "history": history,
        "config": {"eval_every_epochs": 1, "max_epochs": 3 if not goal_reached else 10, "target_value": target},
        "config_hash": "0123456789abcdef",
        "model": {"name": "resnet20-cifar", "parameters": 272474},
        "provenance": {"hostname": "node", "torch": "2.13.0+cpu", "device_name": "cpu"},
        "ranks": ranks,
        "resumes": 0,
        "lost_time_s": 0.0,
        "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:00:02+00:00",
    }


def test_consistent_results_pass():
    for result in (_fabricated_result(2), _fabricated_result(2, goal_reached=False), _fabricated_result(1)):
        report = validate_training_result(result, expected_world_size=result["world_size"])
        assert report.success, report.failures
    assert report.suite == "result:cifar10-resnet20__allreduce__w1"
    assert report.summary().endswith(f"all {report.statistics['evaluated_expectations']} expectations passed")
    named = validate_training_result(_fabricated_result(2), expected_world_size=2, suite_name="result:run__w2__r0")
    assert named.success and named.suite == "result:run__w2__r0"
    assert set(_json_roundtrip(named)["results"]) == {"history", "run", "ranks"}


def test_min_mode_goal_is_the_mirror_image():
    result = _fabricated_result(2)
    losses = [3.0, 2.0, 1.0]
    for row, loss in zip(result["history"], losses, strict=True):
        row["validation_metric"] = loss
    result["target"] = {"metric": "perplexity", "mode": "min", "value": 1.5}
    assert validate_training_result(result, expected_world_size=2).success
    result["target"]["value"] = 0.5  # claims reached, but the best (lowest) is 1.0
    failures = validate_training_result(result, expected_world_size=2).failures
    assert len(failures) == 1
    assert "on run.target_value vs history_best_metric [goal_reached == True]" in failures[0]


def test_a_diverged_run_is_validated_honestly():
    clean = _fabricated_result(2, goal_reached=False)
    clean.update(status="failed", reason="diverged: training loss is nan at epoch 1", history=[], epochs_run=0)
    assert validate_training_result(clean, expected_world_size=2).success  # nothing inconsistent in what it recorded
    nan_loss = _fabricated_result(2, goal_reached=False)
    nan_loss.update(status="failed", reason="diverged")
    nan_loss["history"][2]["train_loss"] = None  # the trainer records a non-finite loss as null
    report = validate_training_result(nan_loss, expected_world_size=2)
    assert report.failures == [
        "expect_column_values_to_not_be_null on history.train_loss: 1 of 3 unexpected, e.g. epoch 3=NaN"
    ]


def _mutated(mutate: Callable[[dict], None]) -> dict[str, Any]:
    result = copy.deepcopy(_fabricated_result(2))
    mutate(result)
    return result


RESULT_CORRUPTIONS: list[tuple[str, Callable[[dict], None], str]] = [
    (
        "goal reached below target",
        lambda r: r["target"].update(value=0.99),
        "expect_column_pair_values_a_to_be_greater_than_b on run.history_best_metric vs target_value "
        "[goal_reached == True]",
    ),
    (
        "compute plus communication above train time",
        lambda r: r.update(communication_s=0.31),
        "expect_column_pair_values_a_to_be_greater_than_b on run.train_time_s_with_tolerance "
        "vs compute_plus_communication_s",
    ),
    ("missing rank", lambda r: r["ranks"].pop(), "expect_table_row_count_to_equal on table ranks: observed 1"),
    (
        "unequal steps",
        lambda r: r["ranks"][1].update(steps=59),
        "expect_column_unique_value_count_to_be_between on ranks.steps",
    ),
    ("epoch gap", lambda r: r["history"].pop(1), "expect_table_row_count_to_equal on table history"),
    ("negative loss", lambda r: r["history"][0].update(validation_loss=-1.0), "on history.validation_loss"),
    (
        "accuracy above 1",
        lambda r: r["history"][1].update(validation_metric=1.2),
        "expect_column_values_to_be_between on history.validation_metric",
    ),
]


@pytest.mark.parametrize(
    "mutate, expected", [(m, e) for _, m, e in RESULT_CORRUPTIONS], ids=[n for n, _, _ in RESULT_CORRUPTIONS]
)
def test_each_result_inconsistency_fails_naming_its_expectation(mutate, expected):
    report = validate_training_result(_mutated(mutate), expected_world_size=2)
    assert not report.success
    assert any(expected in line for line in report.failures), (expected, report.failures)
    _json_roundtrip(report)


def test_a_missing_rank_names_the_rank():
    report = validate_training_result(_mutated(lambda r: r["ranks"].pop()), expected_world_size=2)
    assert any("expect_column_distinct_values_to_equal_set on ranks.rank: missing [1]" in f for f in report.failures)


def test_a_schema_violation_fails_before_any_expectation():
    report = validate_training_result(_mutated(lambda r: r.pop("goal_reached")), expected_world_size=2)
    assert not report.success
    assert report.failures == ["schema: (root): 'goal_reached' is a required property"]
    assert report.summary() == (
        "result:cifar10-resnet20__allreduce__w2: 1 of 1 expectations failed: "
        "schema: (root): 'goal_reached' is a required property"
    )
    bad_epoch = validate_training_result(_mutated(lambda r: r["history"][0].update(epoch=0)), expected_world_size=2)
    assert bad_epoch.failures[0].startswith("schema: history/0/epoch:")


def test_a_failed_report_raised_carries_its_summary_across_processes():
    report = validate_training_result(_mutated(lambda r: r["ranks"].pop()), expected_world_size=2,
                                      suite_name="result:r0")
    assert not report.success
    failed = ValidationFailed(report)
    assert failed.report is report and str(failed) == report.summary()
    assert str(failed).startswith("result:r0: 2 of ")
    assert "expect_table_row_count_to_equal on table ranks" in str(failed)
    unpickled = pickle.loads(pickle.dumps(failed))
    assert str(unpickled) == str(failed) and unpickled.report == report
