"""The scikit-learn digits builder: CIFAR-shaped arrays, a stratified deterministic split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.data.digits import build_digits
from tasks.errors import DataError

pytestmark = pytest.mark.unit


def _quiet(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def digits() -> tuple[dict[str, np.ndarray], dict]:
    return build_digits(Path("unused"), log=_quiet)


def test_shapes_dtypes_and_ranges(digits: tuple[dict[str, np.ndarray], dict]) -> None:
    arrays, metadata = digits
    assert arrays["train_images"].shape == (1437, 3, 16, 16) and arrays["train_images"].dtype == np.uint8
    assert arrays["val_images"].shape == (360, 3, 16, 16)
    assert arrays["train_labels"].dtype == np.int64 and arrays["val_labels"].shape == (360,)
    assert arrays["train_images"].max() == 255 and arrays["train_images"].min() == 0
    for key in ("train_labels", "val_labels"):
        assert set(np.unique(arrays[key])) == set(range(10))
    assert (metadata["train_size"], metadata["val_size"]) == (1437, 360)
    assert metadata["source"] == "sklearn.datasets.load_digits" and len(metadata["raw_images_sha256"]) == 64


def test_images_are_grey_upsampled_blocks(digits: tuple[dict[str, np.ndarray], dict]) -> None:
    images = digits[0]["train_images"]
    assert (images[:, 0] == images[:, 1]).all() and (images[:, 0] == images[:, 2]).all()
    blocks = images[:, 0].reshape(-1, 8, 2, 8, 2)  # each source pixel became a 2x2 block
    assert (blocks == blocks[:, :, :1, :, :1]).all()


def test_split_is_stratified(digits: tuple[dict[str, np.ndarray], dict]) -> None:
    arrays = digits[0]
    val_counts = np.bincount(arrays["val_labels"], minlength=10)
    class_counts = val_counts + np.bincount(arrays["train_labels"], minlength=10)
    assert np.abs(val_counts - 0.2 * class_counts).max() <= 1


def test_split_is_deterministic_per_seed(digits: tuple[dict[str, np.ndarray], dict]) -> None:
    again, _ = build_digits(Path("unused"), log=_quiet)
    other, _ = build_digits(Path("unused"), seed=1, log=_quiet)
    for key, array in digits[0].items():
        np.testing.assert_array_equal(again[key], array)
    assert not np.array_equal(other["val_images"], digits[0]["val_images"])


def test_other_sizes_and_invalid_size() -> None:
    arrays, _ = build_digits(Path("unused"), image_size=8, log=_quiet)
    assert arrays["val_images"].shape == (360, 3, 8, 8)
    with pytest.raises(DataError, match="image_size must be a positive multiple of 8 .*got 12"):
        build_digits(Path("unused"), image_size=12, log=_quiet)
