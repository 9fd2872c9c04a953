"""The dataset catalog: the names, versions and entry points the runtime relies on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tasks.data import catalog
from tasks.data.cifar10 import write_cifar10_archive
from tasks.data.download import file_digest
from tasks.errors import DataError, UserError

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]


def _quiet(message: str) -> None:
    pass


def test_catalog_names_and_versions() -> None:
    assert {name: catalog.DATASETS[name].version for name in catalog.names("image")} == {
        "cifar10": "v1",
        "synthetic-cifar10": "v1",
        "digits": "v1-16px",
    }


@pytest.mark.parametrize("call", [catalog.describe, lambda name: catalog.prepare(name, Path("/nonexistent"))])
def test_unknown_name_lists_valid_names(call) -> None:  # noqa: ANN001
    with pytest.raises(UserError, match="unknown dataset 'imagenet'; valid names: cifar10, digits, synthetic-cifar10"):
        call("imagenet")


def test_describe_without_preparing() -> None:
    assert catalog.describe("digits") == {
        "name": "digits",
        "version": "v1-16px",
        "kind": "image",
        "source": "sklearn.datasets.load_digits",
        "train_size": 1437,
        "val_size": 360,
        "num_classes": 10,
        "image_shape": [3, 16, 16],
    }
    assert catalog.describe("cifar10")["train_size"] == 50_000
    assert catalog.describe("synthetic-cifar10")["image_shape"] == [3, 32, 32]


def test_prepare_then_load_matches_describe(tmp_path: Path) -> None:
    for name in ("digits", "synthetic-cifar10"):
        directory = catalog.prepare(name, tmp_path, log=_quiet)
        assert directory == tmp_path / name / catalog.describe(name)["version"]
        arrays = catalog.load(name, tmp_path)
        facts = catalog.describe(name)
        assert arrays["train_images"].shape == (facts["train_size"], *facts["image_shape"])
        assert arrays["val_labels"].shape == (facts["val_size"],)


def test_cifar10_mirror_override(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    mirror.parent.mkdir()
    md5 = write_cifar10_archive(mirror, train_per_batch=10, test_size=20)
    catalog.prepare("cifar10", tmp_path / "data", url=mirror.as_uri(), md5=md5, log=_quiet)
    assert catalog.load("cifar10", tmp_path / "data")["train_labels"].shape == (50,)


def test_overrides_are_refused_for_other_datasets(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="apply only to dataset 'cifar10', not 'digits'"):
        catalog.prepare("digits", tmp_path, url="https://example.org/digits.tgz")


def test_load_unprepared_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset 'cifar10' \\(version v1\\) is not prepared"):
        catalog.load("cifar10", tmp_path)


def test_data_package_imports_stay_light() -> None:
    """Airflow pods and the CLI import this; torch, sklearn and airflow must not come with it."""
    probe = (
        "import sys, tasks.data.catalog; "
        "print(sorted(m for m in ('torch', 'sklearn', 'airflow') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip() == "[]"


def test_text_datasets_prepare_with_their_vocabulary(tmp_path: Path) -> None:
    assert {name: catalog.kind(name) for name in catalog.names("text")} == {
        "wikitext2": "text", "synthetic-wikitext2": "text", "python-reference-text": "text",
    }
    assert catalog.describe("wikitext2")["vocab_size"] == 33_278
    for name in ("synthetic-wikitext2", "python-reference-text"):
        catalog.prepare(name, tmp_path, log=_quiet)
        arrays = catalog.load(name, tmp_path)
        vocabulary = catalog.vocabulary_size(name, tmp_path)
        assert len(catalog.metadata(name, tmp_path)["vocabulary"]) == vocabulary
        assert arrays["train_tokens"].ndim == 1 and arrays["train_tokens"].dtype == np.int32
        assert 0 <= arrays["train_tokens"].min() and arrays["train_tokens"].max() < vocabulary
    with pytest.raises(UserError, match="only text and translation datasets have a vocabulary"):
        catalog.vocabulary_size("digits", tmp_path)


def test_wikitext2_mirror_override_is_checked_against_the_published_figures(tmp_path: Path) -> None:
    from tasks.data.wikitext2 import write_wikitext_archive

    mirror = tmp_path / "mirror.zip"
    write_wikitext_archive(mirror, train_lines=[" a b "], valid_lines=[" a "], test_lines=[" b "])
    with pytest.raises(DataError, match="checksum mismatch"):  # not the original archive, and not pinned
        catalog.prepare("wikitext2", tmp_path / "data", url=str(mirror), log=_quiet)
    with pytest.raises(DataError, match="does not hold WikiText-2 v1"):
        catalog.prepare("wikitext2", tmp_path / "data", url=str(mirror), md5=file_digest(mirror), log=_quiet)
    with pytest.raises(UserError, match="apply only to dataset 'wikitext2', not 'python-reference-text'"):
        catalog.prepare("python-reference-text", tmp_path, url="https://example.org/text.zip")
