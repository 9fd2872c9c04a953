"""The sentence-pair dataset gate (tasks 4a, 4b): consistent arrays pass; each defect fails naming its expectation."""

from __future__ import annotations

import numpy as np
import pytest

from operators.gates import validate_dataset

pytestmark = pytest.mark.unit
VOCABULARY = 50


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, count in (("train", 12), ("val", 5)):
        for side in ("source", "target"):
            lengths = rng.integers(1, 6, count)
            arrays[f"{prefix}_{side}"] = rng.integers(4, VOCABULARY, lengths.sum()).astype(np.int32)
            arrays[f"{prefix}_{side}_offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return arrays


PLANS = {1: {"train": [12], "validation": [5]}, 2: {"train": [6, 6], "validation": [3, 2]}}


def _report(arrays, plans=PLANS):
    return validate_dataset("pairs", "translation", arrays, num_classes=0, shard_plans=plans,
                            vocabulary_size=VOCABULARY)


def test_consistent_sentence_pairs_pass():
    report = _report(_arrays())
    assert report.success, report.failures


def _cut_short(arrays):
    arrays["train_target_offsets"] = arrays["train_target_offsets"][:-1]


DEFECTS = [
    ("an id outside the vocabulary", lambda a: a["val_target"].__setitem__(0, VOCABULARY),
     "expect_column_values_to_be_between on arrays.max_token"),
    ("offsets that stop short of the tokens", lambda a: a["train_source_offsets"].__setitem__(-1, 1),
     "expect_column_pair_values_to_be_equal on arrays.last_offset vs tokens"),
    ("sources and targets differ in count", _cut_short,
     "expect_column_pair_values_to_be_equal on arrays.sentences vs pair_sentences"),
    ("an empty sentence", lambda a: a["val_source_offsets"].__setitem__(1, 0),
     "expect_column_values_to_be_between on arrays.min_length"),
]


@pytest.mark.parametrize("defect, expected", [(d, e) for _, d, e in DEFECTS], ids=[n for n, _, _ in DEFECTS])
def test_each_defect_fails_naming_its_expectation(defect, expected):
    arrays = _arrays()
    defect(arrays)
    report = _report(arrays)
    assert not report.success and any(expected in line for line in report.failures), report.failures


def test_a_validation_sentence_decoded_by_no_rank_fails():
    report = _report(_arrays(), {2: {"train": [6, 6], "validation": [2, 2]}})
    assert any("shard_plans.total vs split_size" in line for line in report.failures), report.failures
