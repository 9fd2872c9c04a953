"""The results gate's check of the evaluations inside epochs (a config with `mid_epoch_eval_interval`,
e.g. tasks 4a and 4b at 30 %): each epoch evaluated after exactly the steps the rule plans
(tasks.runtime.evaluation_points), up to the step where the goal ended it, with finite figures."""

from __future__ import annotations

from typing import Any

from operators.gates.frames import number
from operators.gates.gx import Part
from tasks.runtime.evaluation_points import mid_epoch_steps
from tasks.runtime.results import EpochRecord, TrainingResult


def parts(result: TrainingResult, interval: float, metric_range: dict[str, float]) -> list[Part]:
    """The plan per epoch and the figures per evaluation; `metric_range` bounds the target metric
    (as the history's: e.g. min_value 0 and max_value 1 for an accuracy)."""
    steps_in_epoch = _steps_in_epoch(result)
    return [("mid-epoch plan", *_plan_part(result, interval, steps_in_epoch)),
            ("mid-epoch evaluations", *_evaluations_part(result, metric_range))]


def _steps_in_epoch(result: TrainingResult) -> int | None:
    """An epoch's step count, as the evaluations recorded it; without any, the ranks' steps over the
    epochs (every epoch then ran to its end: only an evaluation can end one early)."""
    recorded = {evaluation.steps_in_epoch
                for entry in result.history for evaluation in entry.mid_epoch_evaluations or []}
    if recorded:
        return max(recorded) if len(recorded) == 1 else None  # None: steps that vary fail the plan check
    if result.ranks and result.epochs_run:
        return result.ranks[0].steps // result.epochs_run
    return None


def _planned(entry: EpochRecord, interval: float, steps_in_epoch: int | None) -> str:
    if steps_in_epoch is None:
        return "unknown: evaluations disagree on the epoch's step count"
    steps = mid_epoch_steps(interval, steps_in_epoch)
    if entry.stopped_at_step is not None:
        steps = [step for step in steps if step <= entry.stopped_at_step]
    return ",".join(map(str, steps))


def _plan_part(result: TrainingResult, interval: float, steps_in_epoch: int | None) -> tuple[Any, list[Any]]:
    import great_expectations.expectations as gxe
    import pandas as pd

    rows = [{"epoch": entry.epoch, "planned_steps": _planned(entry, interval, steps_in_epoch),
             "evaluated_steps": ",".join(str(e.step) for e in entry.mid_epoch_evaluations or []),
             "recorded": entry.mid_epoch_evaluations is not None}
            for entry in result.history]
    frame = pd.DataFrame(rows, columns=["epoch", "planned_steps", "evaluated_steps", "recorded"])
    frame = frame.astype({"epoch": "int64", "planned_steps": object, "evaluated_steps": object, "recorded": "bool"})
    frame.index = pd.Index([f"epoch {e}" for e in frame["epoch"]], dtype=object)
    return frame, [
        gxe.ExpectColumnValuesToBeInSet(column="recorded", value_set=[True]),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="evaluated_steps", column_B="planned_steps"),
    ]


def _evaluations_part(result: TrainingResult, metric_range: dict[str, float]) -> tuple[Any, list[Any]]:
    import great_expectations.expectations as gxe
    import pandas as pd

    columns = ("validation_metric", "validation_loss", "cumulative_train_time_s")
    rows = [{"epoch": entry.epoch, "step": evaluation.step,
             **{column: number(getattr(evaluation, column)) for column in columns}}
            for entry in result.history for evaluation in entry.mid_epoch_evaluations or []]
    frame = pd.DataFrame(rows, columns=["epoch", "step", *columns])
    frame = frame.astype({"epoch": "int64", "step": "int64", **{c: "float64" for c in columns}})
    frame.index = pd.Index([f"epoch {e} step {s}" for e, s in zip(frame["epoch"], frame["step"], strict=True)],
                           dtype=object)
    expectations = [
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns),
        gxe.ExpectColumnValuesToBeBetween(column="validation_loss", min_value=0),
        gxe.ExpectColumnValuesToBeIncreasing(column="cumulative_train_time_s"),
    ]
    if metric_range:
        expectations.append(gxe.ExpectColumnValuesToBeBetween(column="validation_metric", **metric_range))
    return frame, expectations
