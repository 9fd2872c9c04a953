"""The image dataset gate: real digits pass, each corruption fails naming its expectation."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from operators.gates import ValidationFailed, ValidationReport, validate_dataset
from tasks.data import catalog
from tasks.runtime.sharding import shard_plan

pytestmark = pytest.mark.unit

NUM_CLASSES = 10
WORLD_SIZES = (1, 2, 4, 8)


def _quiet(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> dict[str, np.ndarray]:
    """The real digits, prepared and loaded (memory-mapped) exactly as the pipeline does."""
    root = tmp_path_factory.mktemp("validation-data")
    catalog.prepare("digits", root, log=_quiet)
    return catalog.load("digits", root)


def _plans(arrays: dict[str, np.ndarray]) -> dict[int, dict[str, list[int]]]:
    num_train, num_val = len(arrays["train_labels"]), len(arrays["val_labels"])
    return {w: shard_plan(num_train, num_val, w, seed=42) for w in WORLD_SIZES}


def _check(arrays: dict[str, np.ndarray], plans: dict | None = None) -> ValidationReport:
    return validate_dataset("digits", "image", arrays, num_classes=NUM_CLASSES, shard_plans=plans or _plans(arrays))


def _json_roundtrip(report: ValidationReport) -> dict:
    return json.loads(json.dumps(report.to_dict(), allow_nan=False))


# --- dataset gate -------------------------------------------------------------------------------------


def test_real_digits_and_real_shard_plans_pass(digits):
    assert isinstance(digits["train_images"], np.memmap)
    report = _check(digits)
    assert report.success, report.failures
    assert report.failures == []
    evaluated = report.statistics["evaluated_expectations"]
    assert evaluated >= 20 and report.statistics["unsuccessful_expectations"] == 0
    assert report.summary() == f"dataset:digits: all {evaluated} expectations passed"
    as_dict = _json_roundtrip(report)
    assert as_dict["success"] is True
    assert set(as_dict["results"]) == {"arrays", "samples", "class_balance", "shard_plans"}


def _with(arrays: dict[str, np.ndarray], **changes: np.ndarray) -> dict[str, np.ndarray]:
    return {**arrays, **changes}


def _label_out_of_range(a):
    labels = np.array(a["train_labels"])
    labels[5] = NUM_CLASSES
    return _with(a, train_labels=labels)


def _missing_class(a):
    labels = np.array(a["train_labels"])
    labels[labels == 3] = 4
    return _with(a, train_labels=labels)


def _heavy_imbalance(a):
    labels = np.asarray(a["train_labels"])
    keep = np.concatenate([np.flatnonzero(labels != 0), np.flatnonzero(labels == 0)[:3]])  # class 0 nearly gone
    return _with(a, train_images=np.asarray(a["train_images"])[keep], train_labels=labels[keep])


def _validation_copied_from_train(a):
    val = np.array(a["val_images"])
    copied = len(val) // 10  # 10% of validation
    val[:copied] = np.asarray(a["train_images"])[:copied]
    return _with(a, val_images=val)


def _nan_float_images(a):
    images = np.asarray(a["train_images"]).astype(np.float32)
    images[7, 0, 0, 0] = np.nan
    return _with(a, train_images=images)


def _float_labels(a):
    return _with(a, val_labels=np.asarray(a["val_labels"]).astype(np.float32))


CORRUPTIONS: list[tuple[str, Callable, list[str]]] = [
    ("label out of range", _label_out_of_range, ["expect_column_values_to_be_between on samples.label"]),
    (
        "missing class",
        _missing_class,
        ["expect_column_distinct_values_to_contain_set on samples.label", "on class_balance.share"],
    ),
    ("heavy imbalance", _heavy_imbalance, ["expect_column_values_to_be_between on class_balance.share"]),
    (
        "validation copied from train",
        _validation_copied_from_train,
        ["expect_column_values_to_be_null on samples.duplicate_of"],
    ),
    (
        "NaN float images",
        _nan_float_images,
        ["expect_column_values_to_be_in_set on arrays.dtype [kind == 'images']",
         "expect_column_values_to_not_be_null on samples.pixel_min"],
    ),
    ("float labels", _float_labels, ["expect_column_values_to_be_in_set on arrays.dtype [kind == 'labels']"]),
]


@pytest.mark.parametrize("corrupt, expected", [(c, e) for _, c, e in CORRUPTIONS], ids=[n for n, _, _ in CORRUPTIONS])
def test_each_dataset_corruption_fails_naming_its_expectation(digits, corrupt, expected):
    report = _check(corrupt(digits))
    assert not report.success
    for name in expected:
        assert any(name in line for line in report.failures), (name, report.failures)
    assert report.statistics["unsuccessful_expectations"] == len(report.failures)
    _json_roundtrip(report)


def test_heavy_imbalance_is_only_a_balance_failure(digits):
    report = _check(_heavy_imbalance(digits))
    assert len(report.failures) == 1 and "class 0=" in report.failures[0]


def test_a_few_validation_twins_stay_under_the_leak_threshold(digits):
    val = np.array(digits["val_images"])
    val[:3] = np.asarray(digits["train_images"])[:3]  # 3 of 360 (< 1%)
    assert _check(_with(digits, val_images=val)).success


def test_unequal_train_shard_sizes_fail(digits):
    plans = _plans(digits)
    plans[2] = {"train": [719, 718], "validation": [180, 180]}
    report = _check(digits, plans)
    assert not report.success
    assert len(report.failures) == 1
    assert report.failures[0].startswith(
        "expect_column_values_to_be_in_set on shard_plans.distinct_sizes [split == 'train']"
    )
    assert "w2/train" in report.failures[0]


def test_a_failed_report_raised_carries_its_summary(digits):
    report = _check(_label_out_of_range(digits))
    assert not report.success
    failed = ValidationFailed(report)
    assert failed.report is report and str(failed) == report.summary()
    assert str(failed).startswith("dataset:digits: 1 of ")
    assert "expect_column_values_to_be_between on samples.label" in str(failed)


def test_arrays_of_another_kind_fail_naming_the_missing_images():
    """Arrays without train_images/val_images (here: audio) fail the image arrays part, which names them."""
    arrays = {"train_audio": np.zeros((4, 16000), np.float32), "train_labels": np.arange(4, dtype=np.int64) % 2}
    report = validate_dataset("speech", "image", arrays, num_classes=2,
                              shard_plans={1: {"train": [4], "validation": [0]}})
    assert not report.success
    assert report.summary().startswith("dataset:speech: ")
    assert report.failures[0] == (
        "expect_column_values_to_be_in_set on arrays.dtype [kind == 'images']: 2 of 2 unexpected, "
        "e.g. train_images=missing, val_images=missing (expected set [uint8])"
    )
    assert any(line.startswith("expect_column_values_to_be_in_set on arrays.dtype [kind == 'labels']: 1 of 2 "
                               "unexpected, e.g. val_labels=missing") for line in report.failures), report.failures
    assert report.statistics["unsuccessful_expectations"] == len(report.failures)
    _json_roundtrip(report)
