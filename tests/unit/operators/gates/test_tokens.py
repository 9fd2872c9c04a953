"""The token-stream dataset gate (task 3a): consistent streams pass; each corruption fails, naming its
expectation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from operators.gates import ValidationReport, validate_dataset
from tasks.runtime.token_stream import column_plan

pytestmark = pytest.mark.unit

WORLD_SIZES = (1, 2, 4)


def _json_roundtrip(report: ValidationReport) -> dict:
    return json.loads(json.dumps(report.to_dict(), allow_nan=False))


def _with(arrays: dict[str, np.ndarray], **changes: np.ndarray) -> dict[str, np.ndarray]:
    return {**arrays, **changes}


VOCABULARY = 1000


@pytest.fixture(scope="module")
def tokens() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "train_tokens": rng.integers(0, VOCABULARY, 60_000, dtype=np.int32),
        "val_tokens": rng.integers(0, VOCABULARY, 6_000, dtype=np.int32),
        "test_tokens": rng.integers(0, VOCABULARY, 7_000, dtype=np.int32),
    }


def _column_plans() -> dict[int, dict[str, list[int]]]:
    """The language-model runtime's plan: 20 training columns per rank, validation whole on every rank."""
    return {w: column_plan(60_000, 6_000, w, 20, 10) for w in WORLD_SIZES}


def _check_tokens(arrays, **kwargs) -> ValidationReport:
    kwargs.setdefault("num_classes", VOCABULARY)
    return validate_dataset("wikitext2-like", "text", arrays, shard_plans=_column_plans(), **kwargs)


def test_consistent_token_streams_pass(tokens):
    report = _check_tokens(tokens)
    assert report.success, report.failures
    assert set(_json_roundtrip(report)["results"]) == {"arrays", "shard_plans"}
    without_test = {k: v for k, v in tokens.items() if k != "test_tokens"}
    assert _check_tokens(without_test).success
    # an explicit vocabulary_size wins over num_classes
    assert _check_tokens(tokens, num_classes=10, vocabulary_size=VOCABULARY).success
    assert validate_dataset(
        "wikitext2-like", "text", tokens, num_classes=0, shard_plans=_column_plans(), vocabulary_size=VOCABULARY
    ).success


def test_token_plans_must_give_equal_training_blocks_and_the_whole_validation_stream(tokens):
    plans = _column_plans()
    plans[2] = {"train": [29_980, 29_960], "validation": [3_000, 3_000]}  # uneven blocks, validation sharded
    report = validate_dataset("wikitext2-like", "text", tokens, num_classes=VOCABULARY, shard_plans=plans)
    assert report.failures == [
        "expect_column_values_to_be_in_set on shard_plans.distinct_sizes [split == 'train']: 1 of 3 unexpected, "
        "e.g. w2/train=2 (expected set [1])",
        "expect_column_values_to_be_between on shard_plans.min_share [split == 'validation']: 1 of 3 unexpected, "
        "e.g. w2/validation=0.5 (expected 0.5..)",  # 0.5 itself fails: strictly more than half
    ]
    plans[2] = {"train": [40_000, 40_000], "validation": [7_000, 7_000]}  # more than the streams hold
    failures = validate_dataset("wikitext2-like", "text", tokens, num_classes=VOCABULARY, shard_plans=plans).failures
    assert failures == [
        "expect_column_pair_values_a_to_be_greater_than_b on shard_plans.split_size vs total [split == 'train']: "
        "1 of 3 unexpected, e.g. w2/train=(60000, 80000)",
        "expect_column_pair_values_a_to_be_greater_than_b on shard_plans.split_size vs max_size "
        "[split == 'validation']: 1 of 3 unexpected, e.g. w2/validation=(6000, 7000)",
    ]


def test_a_token_id_at_the_vocabulary_size_fails(tokens):
    train = np.array(tokens["train_tokens"])
    train[123] = VOCABULARY
    report = _check_tokens(_with(tokens, train_tokens=train))
    assert report.failures == [
        "expect_column_values_to_be_between on arrays.max_token: 1 of 3 unexpected, e.g. train_tokens=1000 "
        "(expected 0..999)"
    ]
    negative = np.array(tokens["val_tokens"])
    negative[0] = -1
    assert _check_tokens(_with(tokens, val_tokens=negative)).failures[0].startswith(
        "expect_column_values_to_be_between on arrays.min_token: 1 of 3 unexpected, e.g. val_tokens=-1"
    )


def test_float_tokens_fail(tokens):
    report = _check_tokens(_with(tokens, val_tokens=tokens["val_tokens"].astype(np.float32)))
    assert report.failures == [
        "expect_column_values_to_be_in_set on arrays.dtype: 1 of 3 unexpected, e.g. val_tokens=float32 "
        "(expected set [int8, int16, int32, int64, uint8, uint16, uint32, uint64])"
    ]


def test_validation_copied_from_train_fails(tokens):
    val = np.array(tokens["val_tokens"])
    val[:] = tokens["train_tokens"][: len(val)]
    report = _check_tokens(_with(tokens, val_tokens=val))
    assert report.failures == [
        "expect_column_values_to_be_null on arrays.copy_of: 1 of 3 unexpected, e.g. val_tokens=train_tokens[:6000]"
    ]


def test_bad_token_shapes_fail(tokens):
    report = _check_tokens(_with(tokens, train_tokens=tokens["train_tokens"].reshape(600, 100)))
    assert report.failures[0] == (
        "expect_column_values_to_be_in_set on arrays.ndim: 1 of 3 unexpected, e.g. train_tokens=2 (expected set [1])"
    )  # and the plan, made for a 60,000-token stream, no longer fits its 600 rows
    empty = _check_tokens(_with(tokens, test_tokens=np.zeros(0, dtype=np.int32)))
    assert empty.failures == [
        "expect_column_values_to_be_between on arrays.count: 1 of 3 unexpected, e.g. test_tokens=0 (expected 1..)"
    ]


def test_arrays_of_another_kind_fail_naming_the_missing_streams():
    """Tabular arrays given as text have no train_tokens/val_tokens: the arrays part names both."""
    rng = np.random.default_rng(2)
    tabular = {"train_features": rng.standard_normal((120, 4), dtype=np.float32), "train_labels": np.zeros(120),
               "val_features": rng.standard_normal((30, 4), dtype=np.float32), "val_labels": np.zeros(30)}
    report = validate_dataset("epsilon-like", "text", tabular, num_classes=VOCABULARY, shard_plans=_column_plans())
    assert not report.success
    assert report.failures[:2] == [
        "expect_column_values_to_be_in_set on arrays.dtype: 2 of 2 unexpected, e.g. train_tokens=missing, "
        "val_tokens=missing (expected set [int8, int16, int32, int64, uint8, uint16, uint32, uint64])",
        "expect_column_values_to_not_be_null on arrays.count: 2 of 2 unexpected, e.g. train_tokens=None, "
        "val_tokens=None",
    ]
    _json_roundtrip(report)
