"""The tabular dataset gate (task 2a): real and fabricated data pass; each corruption fails, naming its
expectation."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from operators.gates import ValidationReport, validate_dataset
from operators.gates import tabular as tabular_gate
from tasks.runtime.sharding import shard_plan

pytestmark = pytest.mark.unit

WORLD_SIZES = (1, 2, 4)


def _plans(num_train: int, num_val: int) -> dict[int, dict[str, list[int]]]:
    return {w: shard_plan(num_train, num_val, w, seed=42) for w in WORLD_SIZES}


def _json_roundtrip(report: ValidationReport) -> dict:
    return json.loads(json.dumps(report.to_dict(), allow_nan=False))


def _with(arrays: dict[str, np.ndarray], **changes: np.ndarray) -> dict[str, np.ndarray]:
    return {**arrays, **changes}


@pytest.fixture(scope="module")
def tabular() -> dict[str, np.ndarray]:
    """Fabricated epsilon look-alike: float32 N x D features, float32 0/1 labels, about 50/50."""
    rng = np.random.default_rng(0)
    return {
        "train_features": rng.standard_normal((1200, 24), dtype=np.float32),
        "train_labels": rng.integers(0, 2, 1200).astype(np.float32),
        "val_features": rng.standard_normal((300, 24), dtype=np.float32),
        "val_labels": rng.integers(0, 2, 300).astype(np.float32),
    }


@pytest.fixture(scope="module")
def breast_cancer() -> dict[str, np.ndarray]:
    """scikit-learn's breast-cancer data (bundled, no download): standardized on train, 80/20 split."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    cut = int(0.8 * len(y))
    train, val = order[:cut], order[cut:]
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    x = ((x - mean) / std).astype(np.float32)
    y = y.astype(np.float32)
    return {"train_features": x[train], "train_labels": y[train], "val_features": x[val], "val_labels": y[val]}


def _check_tabular(name: str, arrays: dict[str, np.ndarray], plans: dict | None = None) -> ValidationReport:
    plans = plans or _plans(len(arrays["train_labels"]), len(arrays["val_labels"]))
    return validate_dataset(name, "tabular", arrays, num_classes=2, shard_plans=plans)


def test_consistent_fabricated_tabular_passes(tabular):
    report = _check_tabular("epsilon-like", tabular)
    assert report.success, report.failures
    evaluated = report.statistics["evaluated_expectations"]
    assert evaluated >= 20 and report.statistics["unsuccessful_expectations"] == 0
    assert report.summary() == f"dataset:epsilon-like: all {evaluated} expectations passed"
    assert set(_json_roundtrip(report)["results"]) == {"arrays", "samples", "class_balance", "shard_plans"}


def test_real_breast_cancer_passes(breast_cancer):
    assert breast_cancer["train_features"].shape == (455, 30)
    share = breast_cancer["train_labels"].mean()
    assert 0.55 < share < 0.70  # 357 benign of 569: the [0.2, 0.8] bound passes with room
    report = _check_tabular("breast-cancer", breast_cancer)
    assert report.success, report.failures


def test_memory_mapped_features_are_summarised_in_chunks(tmp_path, tabular, monkeypatch):
    """A memmap read many chunks at a time gives the same verdict, and a leak across a chunk edge is seen."""
    monkeypatch.setattr(tabular_gate, "_CHUNK_BYTES", 7 * 24 * 4)  # 7 rows a chunk
    train = np.lib.format.open_memmap(tmp_path / "train.npy", mode="w+", dtype=np.float32, shape=(1200, 24))
    train[:] = tabular["train_features"]
    train.flush()
    train = np.load(tmp_path / "train.npy", mmap_mode="r")
    arrays = _with(tabular, train_features=train)
    assert _check_tabular("memmap", arrays).success
    val = np.array(tabular["val_features"])
    val[:30] = train[690:720]  # 10% of validation, from rows across several chunk edges
    report = _check_tabular("memmap", _with(arrays, val_features=val))
    assert [f for f in report.failures if "duplicate_of" in f] == [
        "expect_column_values_to_be_null on samples.duplicate_of [split == 'validation']: 30 of 300 unexpected, "
        "e.g. validation[0]=train[690], validation[1]=train[691], validation[2]=train[692] (expected mostly 0.99)"
    ]


def _label_two(a):
    labels = np.array(a["train_labels"])
    labels[5] = 2
    return _with(a, train_labels=labels)


def _single_class(a):
    return _with(a, train_labels=np.zeros_like(a["train_labels"]))


def _nan_feature(a):
    features = np.array(a["train_features"])
    features[7, 3] = np.nan
    return _with(a, train_features=features)


def _inf_feature(a):
    features = np.array(a["val_features"])
    features[2, 0] = np.inf
    return _with(a, val_features=features)


def _different_width(a):
    return _with(a, val_features=np.asarray(a["val_features"])[:, :-1])


def _validation_copied_from_train(a):
    val = np.array(a["val_features"])
    copied = len(val) // 10
    val[:copied] = np.asarray(a["train_features"])[:copied]
    return _with(a, val_features=val)


def _imbalanced(a):
    labels = np.array(a["train_labels"])
    labels[: int(0.9 * len(labels))] = 1  # class 0 well under 20%
    return _with(a, train_labels=labels)


def _integer_features(a):
    return _with(a, train_features=np.asarray(a["train_features"]).astype(np.int32))


TABULAR_CORRUPTIONS: list[tuple[str, Callable, list[str]]] = [
    (
        "label 2",
        _label_two,
        ["expect_column_values_to_be_in_set on samples.label: 1 of 1500 unexpected, e.g. train[5]=2"],
    ),
    (
        "single class",
        _single_class,
        ["expect_column_distinct_values_to_contain_set on samples.label [split == 'train']: missing [1]",
         "expect_column_values_to_be_between on class_balance.share"],
    ),
    (
        "NaN feature",
        _nan_feature,
        ["expect_column_values_to_be_in_set on samples.finite: 1 of 1500 unexpected, e.g. train[7]=False"],
    ),
    (
        "inf feature",
        _inf_feature,
        ["expect_column_values_to_be_in_set on samples.finite: 1 of 1500 unexpected, e.g. validation[2]=False"],
    ),
    (
        "different D between splits",
        _different_width,
        ["expect_column_unique_value_count_to_be_between on arrays.num_features [kind == 'features']: observed 2"],
    ),
    (
        "10% validation rows copied from train",
        _validation_copied_from_train,
        ["expect_column_values_to_be_null on samples.duplicate_of [split == 'validation']: 30 of 300 unexpected"],
    ),
    ("class under 20%", _imbalanced, ["expect_column_values_to_be_between on class_balance.share"]),
    ("integer features", _integer_features, ["expect_column_values_to_be_in_set on arrays.dtype [kind == 'features']"]),
]


@pytest.mark.parametrize(
    "corrupt, expected", [(c, e) for _, c, e in TABULAR_CORRUPTIONS], ids=[n for n, _, _ in TABULAR_CORRUPTIONS]
)
def test_each_tabular_corruption_fails_naming_its_expectation(tabular, corrupt, expected):
    report = _check_tabular("epsilon-like", corrupt(tabular))
    assert not report.success
    for name in expected:
        assert any(line.startswith(name) for line in report.failures), (name, report.failures)
    assert report.statistics["unsuccessful_expectations"] == len(report.failures)
    _json_roundtrip(report)


def test_a_nan_feature_is_its_only_failure(tabular):
    assert len(_check_tabular("epsilon-like", _nan_feature(tabular)).failures) == 1


def test_unequal_train_shard_sizes_fail_on_tabular(tabular):
    plans = _plans(1200, 300)
    plans[2] = {"train": [600, 599], "validation": [150, 150]}
    report = _check_tabular("epsilon-like", tabular, plans)
    assert len(report.failures) == 1
    assert report.failures[0].startswith(
        "expect_column_values_to_be_in_set on shard_plans.distinct_sizes [split == 'train']: 1 of 3 unexpected, "
        "e.g. w2/train=2"
    )


def test_tabular_needs_two_classes(tabular):
    report = validate_dataset("epsilon-like", "tabular", tabular, num_classes=10, shard_plans=_plans(1200, 300))
    assert report.failures == [
        "expect_column_values_to_be_in_set on arrays.num_classes [kind == 'labels']: 2 of 2 unexpected, "
        "e.g. train_labels=10, val_labels=10 (expected set [2])"
    ]


def test_arrays_of_another_kind_fail_naming_the_missing_arrays():
    """Token streams given as tabular have no features or labels: the arrays part names all four."""
    rng = np.random.default_rng(1)
    tokens = {"train_tokens": rng.integers(0, 100, 6_000, dtype=np.int32),
              "val_tokens": rng.integers(0, 100, 600, dtype=np.int32)}
    report = validate_dataset("wikitext2-like", "tabular", tokens, num_classes=2, shard_plans=_plans(6_000, 600))
    assert not report.success
    for kind, missing in (("features", "train_features=missing, val_features=missing"),
                          ("labels", "train_labels=missing, val_labels=missing")):
        assert any(line.startswith(f"expect_column_values_to_be_in_set on arrays.dtype [kind == '{kind}']: 2 of 2 "
                                   f"unexpected, e.g. {missing}") for line in report.failures), report.failures
    _json_roundtrip(report)
