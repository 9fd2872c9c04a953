"""The translation-result gate (tasks 4a, 4b): the training checks, then both BLEU figures in [0, 100]
and every validation sentence decoded exactly once across the ranks."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from operators.gates import validate_translation_result
from tests.unit.operators.gates.test_training_result import _fabricated_result

pytestmark = pytest.mark.unit


def _translation_result() -> dict[str, Any]:
    """The training gate's consistent 3-epoch result, made a translation run's: BLEU and decoding figures."""
    result = _fabricated_result(2)
    bleu = [4.0, 18.0, 26.0]
    for entry, value in zip(result["history"], bleu, strict=True):
        entry.update(validation_metric=value, validation_top5=None, validation_metrics={
            "bleu_batch_average": value + 1.5, "decoded_sentences": 3003.0, "distinct_sentences": 3003.0,
            "reference_sentences": 3003.0})
    result.update(task="wmt16-gnmt", mlbench_id="4a", target={"metric": "bleu", "mode": "max", "value": 24.0},
                  final_validation_metric=26.0, best_validation_metric=26.0,
                  model={"name": "gnmt", "parameters": 160_671_297})
    return result


def _mutated(mutate: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    result = copy.deepcopy(_translation_result())
    mutate(result)
    return result


def test_a_consistent_translation_result_passes_with_its_evaluations_part():
    report = validate_translation_result(_translation_result(), expected_world_size=2)
    assert report.success, report.failures
    assert set(report.to_dict()["results"]) == {"history", "run", "ranks", "evaluations"}


CORRUPTIONS = [
    ("a sentence decoded twice", lambda r: r["history"][2]["validation_metrics"].update(decoded_sentences=3004.0),
     "expect_column_pair_values_to_be_equal on evaluations.decoded_sentences vs reference_sentences"),
    ("a sentence never decoded", lambda r: r["history"][1]["validation_metrics"].update(distinct_sentences=3002.0),
     "expect_column_pair_values_to_be_equal on evaluations.distinct_sentences vs reference_sentences"),
    ("BLEU above 100", lambda r: r["history"][0].update(validation_metric=104.0),
     "expect_column_values_to_be_between on evaluations.bleu"),
    ("no per-batch figure", lambda r: r["history"][0]["validation_metrics"].pop("bleu_batch_average"),
     "expect_column_values_to_not_be_null on evaluations.bleu_batch_average"),
]


@pytest.mark.parametrize("mutate, expected", [(m, e) for _, m, e in CORRUPTIONS], ids=[n for n, _, _ in CORRUPTIONS])
def test_each_translation_inconsistency_fails_naming_its_expectation(mutate, expected):
    report = validate_translation_result(_mutated(mutate), expected_world_size=2)
    assert not report.success
    assert any(expected in line for line in report.failures), (expected, report.failures)


STEPS_IN_EPOCH = 20  # the fabricated ranks' 60 steps over 3 epochs; 30 % of that: steps 6, 12 and 18


def _evaluating_inside_epochs(stop_at: int | None = None) -> dict[str, Any]:
    """The translation result of a config that evaluates every 30 % of an epoch (the 4a task's), with
    those evaluations recorded; `stop_at`: the goal ended the last epoch at that planned step."""
    from tasks.registry import resolve

    result = _translation_result()
    result["config"] = resolve("wmt16-gnmt", "smoke", world_size=2, overrides={"target_value": "24.0"}).to_dict()
    assert result["config"]["mid_epoch_eval_interval"] == 0.3
    for entry in result["history"]:
        start = entry["cumulative_train_time_s"] - entry["train_time_s"]
        steps = [step for step in (6, 12, 18) if entry["epoch"] < 3 or stop_at is None or step <= stop_at]
        entry["mid_epoch_evaluations"] = [
            {"step": step, "steps_in_epoch": STEPS_IN_EPOCH, "validation_metric": entry["validation_metric"] - 1.0,
             "validation_loss": entry["validation_loss"] + 0.1,
             "cumulative_train_time_s": start + entry["train_time_s"] * step / STEPS_IN_EPOCH,
             "validation_metrics": dict(entry["validation_metrics"])} for step in steps]
    if stop_at is not None:  # the last evaluation reached the goal: the epoch's figures are that one's
        last = result["history"][2]
        last["stopped_at_step"] = stop_at
        last["mid_epoch_evaluations"][-1]["validation_metric"] = last["validation_metric"]
        result["steps"] = 2 * STEPS_IN_EPOCH + stop_at
        for rank in result["ranks"]:
            rank["steps"] = result["steps"]
    return result


def test_evaluations_inside_epochs_pass_at_the_planned_steps_and_are_checked_per_evaluation():
    for result in (_evaluating_inside_epochs(), _evaluating_inside_epochs(stop_at=12)):
        report = validate_translation_result(result, expected_world_size=2)
        assert report.success, report.failures
        assert set(report.to_dict()["results"]) == {
            "history", "mid-epoch plan", "mid-epoch steps", "mid-epoch evaluations", "run", "ranks", "evaluations"}
    frame_rows = 3 * 3 + 3  # every evaluation inside the epochs, then each epoch's own
    stopped_rows = 4 + 4 + 2  # the third epoch: steps 6 and 12, the latter its own (counted once)
    from operators.gates.translation_result import _evaluations_part
    from tasks.runtime.results import TrainingResult

    assert len(_evaluations_part(TrainingResult.from_dict(_evaluating_inside_epochs()))[0]) == frame_rows
    stopped = _evaluations_part(TrainingResult.from_dict(_evaluating_inside_epochs(stop_at=12)))[0]
    assert len(stopped) == stopped_rows and list(stopped.index[-2:]) == ["epoch 3 step 6", "epoch 3 step 12"]


def _drop_step(result: dict[str, Any], epoch: int, step: int) -> None:
    entry = result["history"][epoch - 1]
    entry["mid_epoch_evaluations"] = [e for e in entry["mid_epoch_evaluations"] if e["step"] != step]


MID_EPOCH_CORRUPTIONS = [
    ("an evaluation missing", lambda r: _drop_step(r, 2, 12),
     "expect_column_pair_values_to_be_equal on mid-epoch plan.evaluated_steps vs planned_steps"),
    ("an evaluation at an unplanned step", lambda r: r["history"][0]["mid_epoch_evaluations"][0].update(step=5),
     "expect_column_pair_values_to_be_equal on mid-epoch plan.evaluated_steps vs planned_steps"),
    ("an epoch without its list", lambda r: r["history"][1].pop("mid_epoch_evaluations"),
     "expect_column_values_to_be_in_set on mid-epoch plan.recorded"),
    ("a loss lost inside an epoch", lambda r: r["history"][1]["mid_epoch_evaluations"][0].update(validation_loss=None),
     "expect_column_values_to_not_be_null on mid-epoch evaluations.validation_loss"),
    ("a sentence decoded twice inside an epoch",
     lambda r: r["history"][0]["mid_epoch_evaluations"][1]["validation_metrics"].update(decoded_sentences=3004.0),
     "expect_column_pair_values_to_be_equal on evaluations.decoded_sentences vs reference_sentences"),
]


@pytest.mark.parametrize("mutate, expected", [(m, e) for _, m, e in MID_EPOCH_CORRUPTIONS],
                         ids=[n for n, _, _ in MID_EPOCH_CORRUPTIONS])
def test_each_inconsistency_inside_epochs_fails_naming_its_expectation(mutate, expected):
    result = _evaluating_inside_epochs()
    mutate(result)
    report = validate_translation_result(result, expected_world_size=2)
    assert not report.success
    assert any(expected in line for line in report.failures), (expected, report.failures)


def _stop_second_epoch(result: dict[str, Any]) -> None:
    """Claims the goal ended the second epoch at step 12 (the run went on)."""
    entry = result["history"][1]
    entry["stopped_at_step"] = 12
    entry["mid_epoch_evaluations"] = entry["mid_epoch_evaluations"][:2]


STOP_CORRUPTIONS = [
    ("stopped at 12 but evaluated at 6 only", lambda r: r["history"][2]["mid_epoch_evaluations"].pop(),
     "expect_column_pair_values_to_be_equal on mid-epoch plan.evaluated_steps vs planned_steps"),
    ("a stop before the last epoch", _stop_second_epoch,
     "expect_column_values_to_be_in_set on mid-epoch plan.stop_consistent"),
    ("a stop at a figure short of the target",
     lambda r: r["history"][2]["mid_epoch_evaluations"][-1].update(validation_metric=20.0),
     "expect_column_values_to_be_in_set on mid-epoch plan.stop_consistent"),
    ("ranks that took more steps than the epochs add up to", lambda r: r["ranks"][1].update(steps=53),
     "expect_column_pair_values_to_be_equal on mid-epoch steps.steps vs epochs_steps"),
]


@pytest.mark.parametrize("mutate, expected", [(m, e) for _, m, e in STOP_CORRUPTIONS],
                         ids=[n for n, _, _ in STOP_CORRUPTIONS])
def test_an_epoch_the_goal_ended_must_end_the_run_at_its_last_planned_evaluation(mutate, expected):
    result = _evaluating_inside_epochs(stop_at=12)
    mutate(result)
    failures = validate_translation_result(result, expected_world_size=2).failures
    assert any(expected in line for line in failures), (expected, failures)


def test_a_failed_run_is_not_held_to_the_steps_its_epochs_add_up_to():
    result = _evaluating_inside_epochs()
    result.update(status="failed", reason="rank 1 exited with signal 9 (SIGKILL)")
    for rank in result["ranks"]:
        rank["steps"] = 67  # 7 steps into a fourth epoch that was never recorded
    report = validate_translation_result(result, expected_world_size=2)
    assert report.success, report.failures
