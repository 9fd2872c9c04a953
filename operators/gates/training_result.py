"""The results gate for a training run's result.json (tasks 1a, 2a, 3a), run after training.

It guards the figures a benchmark reports: an epoch history with finite, non-negative losses and a
metric in its range; goal_reached that agrees with the history and the target; times that add up
(compute + communication within train time, train time within wall time); and every planned rank
reported once, all with the same step count. A failed (e.g. diverged) run is judged the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from operators.gates import mid_epoch
from operators.gates.bundle import rank_expectations
from operators.gates.frames import number
from operators.gates.gx import Part, where
from tasks.runtime.history import EpochRecord
from tasks.runtime.results import TrainingRankReport, TrainingResult

if TYPE_CHECKING:
    from tasks.spec import RunConfig

SCHEMA_FILE = "result.schema.json"
TIME_TOLERANCE_S = 1e-6  # compute_s + communication_s may exceed train_time_s by float rounding only
ACCURACY_METRICS = frozenset({"top1", "top5", "accuracy"})  # target metrics that are fractions in [0, 1]
# Frame column -> its value in an epoch of the history.
_HISTORY_COLUMNS: dict[str, Callable[[EpochRecord], float | None]] = {
    "lr": lambda e: e.lr,
    "train_loss": lambda e: e.train_loss,
    "validation_metric": lambda e: e.validation_metric,
    "validation_loss": lambda e: e.validation_loss,
    "epoch_time_s": lambda e: e.epoch_time_s,
    "train_time_s": lambda e: e.train_time_s,
    "cumulative_train_time_s": lambda e: e.cumulative_train_time_s,
}


def parts(result: TrainingResult, expected_world_size: int) -> list[Part]:
    config = _config_of(result)
    return [
        ("history", *_history_part(result, config)),
        *(mid_epoch.parts(result, config, _metric_range(result.target.metric))
          if config is not None and config.mid_epoch_eval_interval is not None else []),
        ("run", *_run_part(result, expected_world_size)),
        ("ranks", *_ranks_part(result, expected_world_size)),
    ]


def _config_of(result: TrainingResult) -> RunConfig | None:
    """The run's resolved config; None for a config of another version (its checks fall back to defaults)."""
    from tasks.errors import UserError
    from tasks.spec import RunConfig

    try:
        return RunConfig.from_dict(result.config)
    except (UserError, TypeError, ValueError):
        return None


def _time_budget(entry: TrainingResult | TrainingRankReport) -> dict[str, float | None]:
    """Train time (plus the rounding tolerance) and compute + communication, to compare as a column pair."""
    train_time = number(entry.train_time_s)
    compute, communication = number(entry.compute_s), number(entry.communication_s)
    return {
        "train_time_s_with_tolerance": None if train_time is None else train_time + TIME_TOLERANCE_S,
        "compute_plus_communication_s": None if None in (compute, communication) else compute + communication,
    }


def _within_train_time() -> Any:
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A="train_time_s_with_tolerance", column_B="compute_plus_communication_s", or_equal=True
    )


def _evaluated(config: RunConfig | None) -> Callable[[EpochRecord], bool]:
    """Which epochs the config evaluates after: every `eval_every_epochs`-th, the last one, and one that
    a mid-epoch evaluation ended (without this version's config, every epoch counts as evaluated)."""
    every, max_epochs = (max(config.eval_every_epochs, 1), config.max_epochs) if config is not None else (1, None)

    def evaluated(entry: EpochRecord) -> bool:
        return entry.epoch % every == 0 or entry.epoch == max_epochs or entry.stopped_at_step is not None

    return evaluated


def _history_part(result: TrainingResult, config: RunConfig | None) -> tuple[Any, list[Any]]:
    import pandas as pd

    evaluated = _evaluated(config)
    rows = [{"epoch": entry.epoch, "evaluated": evaluated(entry),
             **{column: number(value_of(entry)) for column, value_of in _HISTORY_COLUMNS.items()}}
            for entry in result.history]
    frame = pd.DataFrame(rows, columns=["epoch", "evaluated", *_HISTORY_COLUMNS])
    frame = frame.astype({"epoch": "int64", "evaluated": "bool", **{c: "float64" for c in _HISTORY_COLUMNS}})
    frame.index = pd.Index([f"epoch {e}" for e in frame["epoch"]], dtype=object)
    return frame, _history_expectations(result.epochs_run, result.target.metric)


def _history_expectations(epochs_run: int, metric: str) -> list[Any]:
    import great_expectations.expectations as gxe

    evaluated = where("evaluated", True)
    expectations = [
        gxe.ExpectTableRowCountToEqual(value=epochs_run),
        gxe.ExpectColumnValuesToBeIncreasing(column="epoch", strictly=True),
        gxe.ExpectColumnValuesToBeBetween(column="epoch", min_value=1, max_value=max(epochs_run, 1)),
        gxe.ExpectColumnValuesToNotBeNull(column="train_loss"),
        gxe.ExpectColumnValuesToBeBetween(column="train_loss", min_value=0),
        gxe.ExpectColumnValuesToNotBeNull(column="validation_loss", **evaluated),
        gxe.ExpectColumnValuesToBeBetween(column="validation_loss", min_value=0),
        gxe.ExpectColumnValuesToNotBeNull(column="validation_metric", **evaluated),
    ]
    metric_range = _metric_range(metric)
    if metric_range:
        expectations.append(gxe.ExpectColumnValuesToBeBetween(column="validation_metric", **metric_range))
    expectations.append(gxe.ExpectColumnValuesToBeIncreasing(column="cumulative_train_time_s"))
    return expectations


def _metric_range(metric: str) -> dict[str, float]:
    """The bounds of a target metric's values, as ExpectColumnValuesToBeBetween's arguments."""
    if metric in ACCURACY_METRICS:
        return {"min_value": 0, "max_value": 1}
    if metric == "perplexity":  # exp of a cross-entropy, which is >= 0
        return {"min_value": 1}
    return {}


def _run_part(result: TrainingResult, expected_world_size: int) -> tuple[Any, list[Any]]:
    import pandas as pd

    mode = result.target.mode
    evaluations = [entry.validation_metric for entry in result.history] + [
        evaluation.validation_metric for entry in result.history for evaluation in entry.mid_epoch_evaluations or []]
    metrics = [m for m in map(number, evaluations) if m is not None]
    best = (max(metrics) if mode == "max" else min(metrics)) if metrics else None
    frame = pd.DataFrame(
        {
            "goal_reached": result.goal_reached,
            "history_best_metric": best,
            "target_value": number(result.target.value),
            "time_to_accuracy_s": number(result.time_to_accuracy_s),
            "wall_time_to_accuracy_s": number(result.wall_time_to_accuracy_s),
            "train_time_s": number(result.train_time_s),
            **_time_budget(result),
            "wall_time_s": number(result.wall_time_s),
            "world_size": result.world_size,
            "expected_world_size": expected_world_size,
        },
        index=pd.Index(["run"], dtype=object),
    )
    exact = ("goal_reached", "world_size", "expected_world_size")
    frame = frame.astype({c: "float64" for c in frame.columns if c not in exact})
    return frame, _run_expectations(mode)


def _run_expectations(mode: str) -> list[Any]:
    import great_expectations.expectations as gxe

    reached, missed = where("goal_reached", True), where("goal_reached", False)
    # mode "max": reached <=> best >= target; mode "min": reached <=> best <= target.
    better, worse = "history_best_metric", "target_value"
    if mode == "min":
        better, worse = worse, better
    return [
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=better, column_B=worse, or_equal=True, **reached),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=worse, column_B=better, or_equal=False, ignore_row_if="either_value_is_missing", **missed
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="time_to_accuracy_s", **reached),
        gxe.ExpectColumnValuesToBeNull(column="time_to_accuracy_s", **missed),
        _within_train_time(),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="wall_time_to_accuracy_s", column_B="time_to_accuracy_s", or_equal=True,
            ignore_row_if="either_value_is_missing",
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="wall_time_s", column_B="train_time_s", or_equal=True),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="world_size", column_B="expected_world_size"),
    ]


def _ranks_part(result: TrainingResult, expected_world_size: int) -> tuple[Any, list[Any]]:
    import great_expectations.expectations as gxe
    import pandas as pd

    rows = [{"rank": entry.rank, "steps": entry.steps, **_time_budget(entry)} for entry in result.ranks]
    columns = ["rank", "steps", "train_time_s_with_tolerance", "compute_plus_communication_s"]
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.astype({"train_time_s_with_tolerance": "float64", "compute_plus_communication_s": "float64"})
    frame.index = pd.Index([f"rank {r}" for r in frame["rank"]], dtype=object)
    return frame, [
        *rank_expectations(expected_world_size),
        gxe.ExpectColumnValuesToNotBeNull(column="steps"),
        gxe.ExpectColumnUniqueValueCountToBeBetween(column="steps", min_value=1, max_value=1),
        _within_train_time(),
    ]
