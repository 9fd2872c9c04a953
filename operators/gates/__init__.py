"""Great Expectations gates: one on every prepared dataset before training, one on every results bundle after.

A gate turns what it checks into small pandas frames, its parts (one row per array, sample, class, shard
plan, epoch, rank or measurement; never raw pixels, features or tokens), validates each against a GX
suite, and gathers every part's expectations into one ValidationReport with one line per failure.
Imported by Airflow steps, so only the standard library is imported at module level (GX, pandas, numpy
and jsonschema where they are used); never airflow or torch.
"""

from __future__ import annotations

from typing import Any

from operators.gates import images, sentence_pairs, sweep_result, tabular, tokens, training_result, translation_result
from operators.gates.bundle import validate_bundle
from operators.gates.gx import run_gate
from operators.gates.report import ValidationFailed, ValidationReport
from tasks.runtime.results import SweepResult, TrainingResult

__all__ = [
    "ValidationFailed",
    "ValidationReport",
    "validate_dataset",
    "validate_sweep_result",
    "validate_training_result",
    "validate_translation_result",
]

_DATASET_GATES = {  # catalog kind -> parts
    "image": images.parts, "tabular": tabular.parts, "text": tokens.parts, "translation": sentence_pairs.parts}


def validate_dataset(
    name: str,
    kind: str,
    arrays: dict[str, Any],
    *,
    num_classes: int,
    shard_plans: dict[int, dict[str, list[int]]],
    vocabulary_size: int | None = None,
) -> ValidationReport:
    """A prepared dataset (``tasks.data.catalog.load``) of ``kind`` (``catalog.kind(name)``) and its shard plans.

    ``vocabulary_size`` (of text and sentence pairs) replaces ``num_classes`` when given.
    """
    if kind not in _DATASET_GATES:
        raise ValueError(f"unknown dataset kind {kind!r}; valid kinds: {', '.join(_DATASET_GATES)}")
    classes = vocabulary_size if vocabulary_size is not None else num_classes
    return run_gate(f"dataset:{name}", _DATASET_GATES[kind](arrays, int(classes), shard_plans))


def validate_training_result(
    document: Any, *, expected_world_size: int, suite_name: str | None = None
) -> ValidationReport:
    """A training run's result.json as read from disk: its JSON schema first, then its history, run and ranks."""
    return validate_bundle(document, TrainingResult, training_result.SCHEMA_FILE, training_result.parts,
                           expected_world_size=expected_world_size, suite_name=suite_name)


def validate_translation_result(
    document: Any, *, expected_world_size: int, suite_name: str | None = None
) -> ValidationReport:
    """A translation run's result.json (tasks 4a, 4b): the training checks, then its BLEU figures and the
    decoding's coverage of the validation set."""
    return validate_bundle(document, TrainingResult, training_result.SCHEMA_FILE, translation_result.parts,
                           expected_world_size=expected_world_size, suite_name=suite_name)


def validate_sweep_result(
    document: Any, *, expected_world_size: int, suite_name: str | None = None
) -> ValidationReport:
    """Task 0's result.json as read from disk (an all-reduce sweep): its JSON schema first, then its
    measurements, run and ranks."""
    return validate_bundle(document, SweepResult, sweep_result.SCHEMA_FILE, sweep_result.parts,
                           expected_world_size=expected_world_size, suite_name=suite_name)
