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
