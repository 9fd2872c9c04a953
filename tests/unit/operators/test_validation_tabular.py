"""The dataset gate on tabular (task 2a) and token-stream (task 3a) layouts, and on unknown layouts."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from operators import validation
from operators.validation import ValidationFailed, ValidationReport, check_dataset, validate_dataset
from tasks.runtime.sharding import shard_plan
from tasks.runtime.token_stream import column_plan

pytestmark = pytest.mark.unit

WORLD_SIZES = (1, 2, 4)


def _plans(num_train: int, num_val: int) -> dict[int, dict[str, list[int]]]:
    return {w: shard_plan(num_train, num_val, w, seed=42) for w in WORLD_SIZES}


def _json_roundtrip(report: ValidationReport) -> dict:
    return json.loads(json.dumps(report.to_dict(), allow_nan=False))


def _with(arrays: dict[str, np.ndarray], **changes: np.ndarray) -> dict[str, np.ndarray]:
    return {**arrays, **changes}


# --- tabular ------------------------------------------------------------------------------------------


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
    return validate_dataset(name, arrays, num_classes=2, shard_plans=plans)


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
    assert check_dataset("breast-cancer", breast_cancer, num_classes=2, shard_plans=_plans(455, 114)).success


def test_memory_mapped_features_are_summarised_in_chunks(tmp_path, tabular, monkeypatch):
    """A memmap read many chunks at a time gives the same verdict, and a leak across a chunk edge is seen."""
    monkeypatch.setattr(validation, "_TABULAR_CHUNK_BYTES", 7 * 24 * 4)  # 7 rows a chunk
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
    report = validate_dataset("epsilon-like", tabular, num_classes=10, shard_plans=_plans(1200, 300))
    assert report.failures == [
        "expect_column_values_to_be_in_set on arrays.num_classes [kind == 'labels']: 2 of 2 unexpected, "
        "e.g. train_labels=10, val_labels=10 (expected set [2])"
    ]


# --- token streams ------------------------------------------------------------------------------------

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
    return validate_dataset("wikitext2-like", arrays, shard_plans=_column_plans(), **kwargs)


def test_consistent_token_streams_pass(tokens):
    report = _check_tokens(tokens)
    assert report.success, report.failures
    assert set(_json_roundtrip(report)["results"]) == {"arrays", "shard_plans"}
    without_test = {k: v for k, v in tokens.items() if k != "test_tokens"}
    assert _check_tokens(without_test).success
    # an explicit vocabulary_size wins over num_classes
    assert _check_tokens(tokens, num_classes=10, vocabulary_size=VOCABULARY).success
    assert check_dataset(
        "wikitext2-like", tokens, num_classes=0, shard_plans=_column_plans(), vocabulary_size=VOCABULARY
    ).success


def test_token_plans_must_give_equal_training_blocks_and_the_whole_validation_stream(tokens):
    plans = _column_plans()
    plans[2] = {"train": [29_980, 29_960], "validation": [3_000, 3_000]}  # uneven blocks, validation sharded
    report = validate_dataset("wikitext2-like", tokens, num_classes=VOCABULARY, shard_plans=plans)
    assert report.failures == [
        "expect_column_values_to_be_in_set on shard_plans.distinct_sizes [split == 'train']: 1 of 3 unexpected, "
        "e.g. w2/train=2 (expected set [1])",
        "expect_column_values_to_be_between on shard_plans.min_share [split == 'validation']: 1 of 3 unexpected, "
        "e.g. w2/validation=0.5 (expected 0.5..)",  # 0.5 itself fails: strictly more than half
    ]
    plans[2] = {"train": [40_000, 40_000], "validation": [7_000, 7_000]}  # more than the streams hold
    failures = validate_dataset("wikitext2-like", tokens, num_classes=VOCABULARY, shard_plans=plans).failures
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


# --- unknown layouts ----------------------------------------------------------------------------------

SUPPORTED = (
    "supported layouts: images (train_images, train_labels, val_images, val_labels); "
    "tabular (train_features, train_labels, val_features, val_labels); "
    "tokens (train_tokens, val_tokens, optional test_tokens)"
)


def test_an_unknown_layout_fails_with_one_clear_line():
    arrays = {"train_audio": np.zeros((4, 16000), np.float32), "train_labels": np.zeros(4, np.int64)}
    report = validate_dataset("speech", arrays, num_classes=2, shard_plans={1: {"train": [4], "validation": [0]}})
    assert not report.success
    assert report.failures == [
        f"layout: dataset arrays with keys ['train_audio', 'train_labels'] matches no supported layout; {SUPPORTED}"
    ]
    assert report.statistics["unsuccessful_expectations"] == 1
    assert report.summary().startswith("dataset:speech: 1 of 1 expectations failed: layout: ")
    _json_roundtrip(report)
    with pytest.raises(ValidationFailed):
        check_dataset("speech", arrays, num_classes=2, shard_plans={})


def test_keys_of_two_layouts_fail_as_mixed(tabular, tokens):
    report = validate_dataset("mixed", {**tabular, **tokens}, num_classes=2, shard_plans={})
    assert len(report.failures) == 1
    assert report.failures[0].startswith("layout: dataset arrays with keys ['test_tokens', 'train_features', ")
    assert "mixes the tabular and tokens layouts; supported layouts: " in report.failures[0]
