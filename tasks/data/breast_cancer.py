"""The Wisconsin diagnostic breast-cancer data that ships inside scikit-learn: real, tabular, offline.

A small stand-in for epsilon (MLBench task 2a, logistic regression) in demos and CI: 569 samples,
30 real-valued features, two classes, no download. Same keys and dtypes as epsilon
(train_features / val_features float32 [N, 30], train_labels / val_labels float32 0/1), so the
same model and loader run on both. Label 1 is benign (357 samples), 0 malignant (212), as in
scikit-learn. A deterministic stratified 80/20 split gives 455 train / 114 validation samples;
features are standardized with the train split's mean and standard deviation only (recorded in
the metadata), so nothing about the validation split leaks into training.

How learnable: scikit-learn's LogisticRegression (default L2, C=1, lbfgs) fitted on this train split
reaches 0.982 validation accuracy (112 of 114) with seed 0; a plain linear model reaching ~0.95+ is
the expected range.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tasks.data.digits import stratified_split
from tasks.data.download import Log, log_to_stderr
from tasks.errors import DataError

VAL_FRACTION = 0.2
LABEL_NAMES = {0: "malignant", 1: "benign"}


def build_breast_cancer(
    scratch: Path, *, seed: int = 0, log: Log = log_to_stderr
) -> tuple[dict[str, np.ndarray], dict]:
    """Store builder: load, split 80/20 (stratified, seeded), standardize on train statistics.

    scratch is unused (nothing is downloaded); it is accepted so this is a store builder like the rest.
    """
    try:
        import sklearn
        from sklearn.datasets import load_breast_cancer
    except ImportError as exc:
        raise DataError(
            "the breast-cancer dataset needs scikit-learn, which is not installed; "
            "install it with `pip install 'mlbench-airflow[train]'`"
        ) from exc

    raw, target = load_breast_cancer(return_X_y=True)
    raw = np.ascontiguousarray(raw, dtype=np.float64)
    labels = target.astype(np.int64)
    log(f"[data] loaded {len(labels)} breast-cancer samples from scikit-learn {sklearn.__version__}")

    train, val = stratified_split(labels, VAL_FRACTION, seed)
    mean = raw[train].mean(axis=0)
    std = raw[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant feature stays 0 instead of dividing by zero
    standardized = ((raw - mean) / std).astype(np.float32)

    arrays = {
        "train_features": standardized[train],
        "train_labels": labels[train].astype(np.float32),
        "val_features": standardized[val],
        "val_labels": labels[val].astype(np.float32),
    }
    metadata = {
        "source": "sklearn.datasets.load_breast_cancer",
        "sklearn_version": sklearn.__version__,
        "raw_features_sha256": hashlib.sha256(raw.tobytes()).hexdigest(),
        "seed": seed,
        "val_fraction": VAL_FRACTION,
        "train_size": len(train),
        "val_size": len(val),
        "num_features": raw.shape[1],
        "label_names": {str(k): v for k, v in LABEL_NAMES.items()},
        "standardization": "train split: (x - mean) / std, std with ddof=0",
        "feature_mean": mean.tolist(),
        "feature_std": std.tolist(),
    }
    return arrays, metadata
