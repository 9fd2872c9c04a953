"""The report of a translation task (4a, 4b): a training task's report (operators.report.training)
whose quality is BLEU. Its table says "time to BLEU"; its curves draw the corpus BLEU (the target)
with MLBench's per-batch average beside it; its runs-table view adds the per-batch figure. The
runs log both BLEU curves per evaluation (`validation_bleu`, `validation_bleu_batch_average`), and
the sample translations of the last evaluation (translations.txt) with the bundle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from operators.report.outcome import ConfigurationOutcome
from operators.report.training import (
    child_metrics,
    comparison_rows,
    configuration_row,
    format_table,
    parent_metrics,
    parent_plots,
)
from tasks.plots import plot_curves
from tasks.runtime.results import TrainingResult

__all__ = ["rows", "table", "parent_metrics", "parent_plots", "child_metrics", "child_plots", "configuration_row",
           "table_columns"]

BLEU_COMPANIONS = ("bleu_batch_average",)  # drawn beside the corpus BLEU


def table(rows: list[dict]) -> str:
    return format_table(rows, quality="BLEU")


def table_columns(outcomes: list[ConfigurationOutcome]) -> tuple[list[str], list[str]]:
    """(params, metrics) of a configuration's run that the saved runs-table view shows as columns."""
    return ["world_size", "algorithm"], ["time_to_accuracy_s", "best_validation_metric",
                                         "validation_bleu_batch_average", "throughput_samples_per_s"]


def child_plots(result: TrainingResult | None) -> dict[str, Callable[[Path], Path]]:
    """File name under `plots/` -> what draws it there: the curves with both BLEU figures."""
    if result is None or not result.history:
        return {}
    return {"curves.png": lambda path: plot_curves(result, path, companions=BLEU_COMPANIONS)}


rows = comparison_rows
