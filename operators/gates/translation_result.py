"""The results gate for a translation run's result.json (tasks 4a, 4b): every check of a training run
(operators.gates.training_result), then one row per evaluation, inside epochs too: the corpus BLEU (the
target metric) and MLBench's per-batch average both present and in [0, 100], and every validation
sentence decoded exactly once across the ranks."""

from __future__ import annotations

from typing import Any

from operators.gates import training_result
from operators.gates.frames import number
from operators.gates.gx import Part
from tasks.runtime.results import TrainingResult

_COLUMNS = ("bleu", "bleu_batch_average", "decoded_sentences", "distinct_sentences", "reference_sentences")


def parts(result: TrainingResult, expected_world_size: int) -> list[Part]:
    return [*training_result.parts(result, expected_world_size), ("evaluations", *_evaluations_part(result))]


def _evaluations_part(result: TrainingResult) -> tuple[Any, list[Any]]:
    import pandas as pd

    evaluations = [evaluation for entry in result.history for evaluation in entry.evaluations()]
    rows = [{"bleu": number(e.metric), **{name: number(e.metrics.get(name)) for name in _COLUMNS[1:]}}
            for e in evaluations]
    frame = pd.DataFrame(rows, columns=list(_COLUMNS)).astype({c: "float64" for c in _COLUMNS})
    frame.index = pd.Index([f"epoch {e.epoch}" + (f" step {e.step}" if e.step is not None else "")
                            for e in evaluations], dtype=object)
    return frame, _expectations()


def _expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in _COLUMNS),
        *(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=100)
          for c in ("bleu", "bleu_batch_average")),
        gxe.ExpectColumnValuesToBeBetween(column="reference_sentences", min_value=1),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="decoded_sentences", column_B="reference_sentences"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="distinct_sentences", column_B="reference_sentences"),
    ]
