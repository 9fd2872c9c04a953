"""breast-cancer: the small, real, offline tabular dataset beside epsilon (task 2a) for demos and CI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.data import catalog
from tasks.data.breast_cancer import build_breast_cancer
from tasks.data.store import read_manifest

pytestmark = pytest.mark.unit


def _quiet(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def built() -> tuple[dict[str, np.ndarray], dict]:
    return build_breast_cancer(Path("unused"), seed=0, log=_quiet)


def test_shapes_dtypes_and_keys_match_epsilon(built) -> None:  # noqa: ANN001
    arrays, metadata = built
    assert {k: (v.shape, v.dtype) for k, v in arrays.items()} == {
        "train_features": ((455, 30), np.float32),
        "train_labels": ((455,), np.float32),
        "val_features": ((114, 30), np.float32),
        "val_labels": ((114,), np.float32),
    }
    assert (metadata["train_size"], metadata["val_size"], metadata["num_features"]) == (455, 114, 30)
    for split in ("train", "val"):
        assert set(np.unique(arrays[f"{split}_labels"])) == {0.0, 1.0}
        assert np.isfinite(arrays[f"{split}_features"]).all()


def test_split_is_stratified_disjoint_and_deterministic(built) -> None:  # noqa: ANN001
    from sklearn.datasets import load_breast_cancer

    arrays, metadata = built
    raw, target = load_breast_cancer(return_X_y=True)
    assert target.sum() == 357 and len(target) == 569
    # Every sample lands in exactly one split: undo the standardization and match rows.
    mean, std = np.array(metadata["feature_mean"]), np.array(metadata["feature_std"])
    restored = {s: arrays[f"{s}_features"].astype(np.float64) * std + mean for s in ("train", "val")}
    rows = np.concatenate([restored["train"], restored["val"]])
    order = np.lexsort(rows.T[::-1])
    np.testing.assert_allclose(rows[order], raw[np.lexsort(raw.T[::-1])], rtol=1e-5, atol=1e-6)
    # Both splits keep the 357/212 class balance, to within one sample.
    assert abs(arrays["val_labels"].sum() - 114 * 357 / 569) <= 1
    assert arrays["train_labels"].sum() + arrays["val_labels"].sum() == 357
    again, _ = build_breast_cancer(Path("unused"), seed=0, log=_quiet)
    for key in arrays:
        np.testing.assert_array_equal(again[key], arrays[key])
    other, _ = build_breast_cancer(Path("unused"), seed=1, log=_quiet)
    assert not np.array_equal(other["val_features"], arrays["val_features"])


def test_standardized_with_train_statistics_only(built) -> None:  # noqa: ANN001
    arrays, metadata = built
    train = arrays["train_features"].astype(np.float64)
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1.0, atol=1e-5)
    assert np.abs(arrays["val_features"].mean(axis=0)).max() > 0.01  # val is not re-centred on itself
    assert len(metadata["feature_mean"]) == len(metadata["feature_std"]) == 30
    assert min(metadata["feature_std"]) > 0


def test_logistic_regression_reaches_the_documented_accuracy(built) -> None:  # noqa: ANN001
    from sklearn.linear_model import LogisticRegression

    arrays, _ = built
    model = LogisticRegression(max_iter=1000).fit(arrays["train_features"], arrays["train_labels"])
    assert model.score(arrays["val_features"], arrays["val_labels"]) >= 0.95


def test_breast_cancer_through_the_catalog(tmp_path: Path) -> None:
    assert catalog.describe("breast-cancer") == {
        "name": "breast-cancer",
        "version": "v1",
        "kind": "tabular",
        "num_classes": 2,
        "source": "sklearn.datasets.load_breast_cancer",
        "train_size": 455,
        "val_size": 114,
        "num_features": 30,
    }
    catalog.prepare("breast-cancer", tmp_path, log=_quiet)
    arrays = catalog.load("breast-cancer", tmp_path)
    assert isinstance(arrays["train_features"], np.memmap)
    facts = catalog.describe("breast-cancer")
    assert arrays["train_features"].shape == (facts["train_size"], facts["num_features"])
    assert arrays["val_labels"].shape == (facts["val_size"],)
    assert read_manifest(tmp_path, "breast-cancer", "v1")["metadata"]["seed"] == 0
