"""epsilon (MLBench task 2a): LIBSVM writer and parser, the streaming builder, checksums, the catalog entries."""

from __future__ import annotations

import bz2
from pathlib import Path

import numpy as np
import pytest

from tasks.data import catalog
from tasks.data.download import file_digest
from tasks.data.epsilon import (
    EPSILON_TRAIN_SHA256,
    TEST_ARCHIVE,
    TRAIN_ARCHIVE,
    build_epsilon,
    parse_libsvm_stream,
    write_libsvm,
)
from tasks.data.store import load_dataset, prepare_dataset, read_manifest
from tasks.errors import DataError, UserError

pytestmark = pytest.mark.unit


def _quiet(message: str) -> None:
    pass


def _sparse_rows(n: int = 10, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32) * (rng.random((n, d)) > 0.4)
    x[3] = 0.0  # an all-zero row is written as a bare label
    x[4, -1] = 1e-30  # tiny and
    x[5, 0] = -3.4e38  # huge float32 values survive the text round trip
    return x, np.where(rng.random(n) > 0.5, 1, -1)


def _parse_all(lines, num_features: int, **kwargs) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    blocks = list(parse_libsvm_stream(lines, num_features, **kwargs))
    return np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])


@pytest.mark.parametrize("compress", ["bz2", None])
def test_libsvm_round_trip_with_sparse_rows(tmp_path: Path, compress: str | None) -> None:
    x, y = _sparse_rows()
    path = tmp_path / "rows.svm"
    md5 = write_libsvm(path, x, y, compress=compress)
    assert md5 == file_digest(path)
    raw = bz2.decompress(path.read_bytes()) if compress else path.read_bytes()
    lines = raw.splitlines(keepends=True)
    assert lines[3] == (b"1\n" if y[3] > 0 else b"-1\n")
    assert lines[0].split()[0] in (b"1", b"-1") and b" 0:" not in lines[0]
    assert len(lines[1].split()) == 1 + np.count_nonzero(x[1])  # zeros are left out

    blocks = list(parse_libsvm_stream(iter(lines), x.shape[1], chunk_rows=3))
    assert [len(labels) for labels, _ in blocks] == [3, 3, 3, 1]
    labels, features = np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])
    assert labels.dtype == features.dtype == np.float32
    np.testing.assert_array_equal(features, x)  # exact: float32 values are written with 9 digits
    np.testing.assert_array_equal(labels, (y > 0).astype(np.float32))
    assert write_libsvm(tmp_path / "again.svm", x, (y > 0).astype(int), compress=compress) == md5  # 0/1 in, same file


def test_parser_accepts_label_spellings_whitespace_and_str_lines() -> None:
    labels, features = _parse_all([b"+1 1:0.5\t3:2\r\n", b"-1\n", b"  1   2:-1e-3  \n", "-1.0 3:4"], 3)
    np.testing.assert_array_equal(labels, [1, 0, 1, 0])
    np.testing.assert_array_equal(features, np.array([[0.5, 0, 2], [0, 0, 0], [0, -1e-3, 0], [0, 0, 4]], np.float32))
    labels, _ = _parse_all([b"0 1:1\n", b"1 2:1\n"], 2)
    np.testing.assert_array_equal(labels, [0, 1])


@pytest.mark.parametrize(
    "bad, message",
    [
        (b"1 1:0.5 abc\n", r"input line 2: token 3 'abc' is not <index>:<value>"),
        (b"1 1:2:3\n", r"input line 2: token 2 '1:2:3' is not <index>:<value>"),
        (b"1 -1:0.5\n", r"input line 2: token 2 '-1:0.5' is not <index>:<value>"),
        (b"1 5:0.5\n", r"input line 2: index 5 is outside 1\.\.4"),
        (b"1 0:0.5\n", r"input line 2: index 0 is outside 1\.\.4"),
        (b"1 2:0.1 1:0.2\n", r"input line 2: index 1 after 2; LIBSVM indices must ascend strictly"),
        (b"1 2:0.1 2:0.2\n", r"input line 2: index 2 after 2"),
        (b"2 1:0.5\n", r"input line 2: label '2' is not -1, \+1, 0 or 1"),
        (b"yes 1:0.5\n", r"input line 2: label 'yes' is not"),
        (b"0 1:0.5\n", r"input line 2: label 0 after label -1 on line 1; a binary file uses either -1/\+1 or 0/1"),
        (b"1 1:abc\n", r"input line 2: token 2 has value 'abc', not a number"),
        (b"1 1:0.5 3:nan\n", r"input line 2: feature 3 is nan, not a finite number"),
        (b"1 4:1e999\n", r"input line 2: feature 4 is inf"),
        (b"\n", r"input line 2 is empty"),
        (b"1:0.5 2:0.5\n", r"input line 2 starts with '1:0.5', not a label"),
    ],
)
def test_malformed_lines_name_the_line(bad: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message):
        _parse_all([b"-1 1:0.25 4:1\n", bad, b"1 1:1\n"], 4)


def test_errors_name_the_source_and_late_line_numbers() -> None:
    lines = [b"1 1:1\n"] * 9999 + [b"1 1:x\n"]
    with pytest.raises(DataError, match=r"^train\.bz2 line 10,000: token 2 has value 'x'"):
        _parse_all(lines, 1, source="train.bz2", chunk_rows=64)


def _write_pair(folder: Path, train_rows: int = 30, test_rows: int = 10, d: int = 6) -> dict:
    """Small epsilon-format train/test archives under their official names; returns what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    x, y = _sparse_rows(train_rows + test_rows, d, seed=3)
    md5_train = write_libsvm(folder / TRAIN_ARCHIVE, x[:train_rows], y[:train_rows])
    md5_test = write_libsvm(folder / TEST_ARCHIVE, x[train_rows:], y[train_rows:])
    return {"x": x, "y": y, "md5_train": md5_train, "md5_test": md5_test, "train_rows": train_rows, "d": d}


def _small_build(mirror: Path, written: dict, **overrides):  # noqa: ANN003, ANN202
    kwargs = dict(
        url_train=(mirror / TRAIN_ARCHIVE).as_uri(),
        url_test=str(mirror / TEST_ARCHIVE),
        md5_train=written["md5_train"],
        md5_test=written["md5_test"],
        sha256_train=None,
        sha256_test=None,
        train_rows=written["train_rows"],
        test_rows=len(written["y"]) - written["train_rows"],
        num_features=written["d"],
        log=_quiet,
    )
    kwargs.update(overrides)
    return lambda scratch, staging: build_epsilon(scratch, staging, **kwargs)


def test_build_epsilon_converts_both_files_and_records_digests(tmp_path: Path) -> None:
    written = _write_pair(tmp_path / "mirror")
    sha256_train = file_digest(tmp_path / "mirror" / TRAIN_ARCHIVE, "sha256")
    build = _small_build(tmp_path / "mirror", written, sha256_train=sha256_train)
    directory = prepare_dataset(tmp_path / "data", "eps", "v1", build, log=_quiet, streaming=True)
    arrays = load_dataset(tmp_path / "data", "eps", "v1")
    n = written["train_rows"]
    np.testing.assert_array_equal(arrays["train_features"], written["x"][:n])
    np.testing.assert_array_equal(arrays["val_features"], written["x"][n:])
    np.testing.assert_array_equal(arrays["val_labels"], (written["y"][n:] > 0).astype(np.float32))
    assert arrays["train_labels"].dtype == np.float32 and isinstance(arrays["train_labels"], np.memmap)
    metadata = read_manifest(tmp_path / "data", "eps", "v1")["metadata"]
    assert metadata["archives"]["train"]["sha256"] == sha256_train
    assert metadata["archives"]["train"]["verified"] == "sha256 (pinned)"
    assert metadata["archives"]["val"] == {
        "url": str(tmp_path / "mirror" / TEST_ARCHIVE),
        "verified": "md5",
        "md5": written["md5_test"],
        "sha256": file_digest(tmp_path / "mirror" / TEST_ARCHIVE, "sha256"),
    }
    assert (metadata["train_size"], metadata["val_size"], metadata["num_features"]) == (30, 10, 6)
    assert metadata["train_positives"] == int((written["y"][:n] > 0).sum())
    assert sorted(p.name for p in directory.iterdir()) == [
        "manifest.json", "train_features.npy", "train_labels.npy", "val_features.npy", "val_labels.npy",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "damage, message",
    [
        ("rows", r"epsilon_normalized\.t\.bz2 has 10 rows, expected 11; it is truncated or not the expected file"),
        ("extra", r"epsilon_normalized\.t\.bz2 has more than the expected 9 rows"),
        ("crc", r"epsilon_normalized\.t\.bz2 is not an intact bz2 file \(Invalid data stream\)"),
        ("truncated", r"epsilon_normalized\.t\.bz2 is not an intact bz2 file \(Compressed file ended"),
    ],
)
def test_bad_archive_is_refused_and_deleted(tmp_path: Path, damage: str, message: str) -> None:
    written = _write_pair(tmp_path / "mirror")
    test_archive = tmp_path / "mirror" / TEST_ARCHIVE
    overrides: dict = {"md5_test": None}
    if damage == "rows":
        overrides["test_rows"] = 11
    elif damage == "extra":
        overrides["test_rows"] = 9
    else:
        data = bytearray(test_archive.read_bytes())
        if damage == "crc":
            data[len(data) // 2] ^= 0x01
        else:
            del data[-40:]
        test_archive.write_bytes(bytes(data))
    messages: list[str] = []
    build = _small_build(tmp_path / "mirror", written, log=messages.append, **overrides)
    with pytest.raises(DataError, match=message):
        prepare_dataset(tmp_path / "data", "eps", "v1", build, log=_quiet, streaming=True)
    scratch = tmp_path / "data" / "eps" / ".downloads"
    assert not (scratch / TEST_ARCHIVE).exists() and (scratch / TRAIN_ARCHIVE).exists()
    deleted = f"[data] deleted {scratch / TEST_ARCHIVE}; the next prepare fetches it again"
    assert any(m.startswith(deleted) for m in messages)
    assert not (tmp_path / "data" / "eps" / "v1").exists()


def test_synthetic_epsilon_through_the_catalog(tmp_path: Path) -> None:
    facts = catalog.describe("synthetic-epsilon")
    assert facts == {
        "name": "synthetic-epsilon",
        "version": "v1",
        "kind": "tabular",
        "num_classes": 2,
        "source": "synthetic epsilon-format LIBSVM files (tasks.data.epsilon.write_libsvm)",
        "train_size": 1200,
        "val_size": 400,
        "num_features": 200,
    }
    directory = catalog.prepare("synthetic-epsilon", tmp_path, log=_quiet)
    assert directory == tmp_path / "synthetic-epsilon" / "v1"
    arrays = catalog.load("synthetic-epsilon", tmp_path)
    assert {k: (v.shape, v.dtype) for k, v in arrays.items()} == {
        "train_features": ((1200, 200), np.float32),
        "train_labels": ((1200,), np.float32),
        "val_features": ((400, 200), np.float32),
        "val_labels": ((400,), np.float32),
    }
    assert all(isinstance(v, np.memmap) for v in arrays.values())
    assert set(np.unique(arrays["train_labels"])) == {0.0, 1.0}
    assert 0.4 < arrays["train_labels"].mean() < 0.6
    norms = np.linalg.norm(arrays["train_features"], axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)  # unit rows, like epsilon_normalized
    assert (arrays["train_features"] == 0).mean() > 0.1  # sparse rows went through the parser
    # Learnable: a least-squares linear separator already beats chance clearly on validation.
    x, y = np.asarray(arrays["train_features"], np.float64), arrays["train_labels"] * 2.0 - 1.0
    w = np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)[0]
    val = np.c_[np.asarray(arrays["val_features"], np.float64), np.ones(400)] @ w
    assert ((val > 0) == (arrays["val_labels"] > 0)).mean() > 0.7
    assert catalog.prepare("synthetic-epsilon", tmp_path, log=_quiet) == directory  # reused


def test_epsilon_catalog_entry_and_describe() -> None:
    assert {name: catalog.DATASETS[name].version for name in catalog.names("tabular")} == {
        "epsilon": "v1",
        "synthetic-epsilon": "v1",
        "breast-cancer": "v1",
    }
    assert catalog.describe("epsilon") == {
        "name": "epsilon",
        "version": "v1",
        "kind": "tabular",
        "num_classes": 2,
        "source": "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/binary/",
        "train_size": 400_000,
        "val_size": 100_000,
        "num_features": 2000,
    }
    tabular = r"breast-cancer, epsilon, synthetic-epsilon \(tabular\)"
    with pytest.raises(UserError, match=rf"valid names: cifar10, digits, synthetic-cifar10 \(image\), {tabular}"):
        catalog.describe("rcv1")


def test_epsilon_mirror_without_md5_must_match_the_pinned_sha256(tmp_path: Path) -> None:
    _write_pair(tmp_path / "mirror")
    with pytest.raises(
        DataError,
        match=rf"checksum mismatch for .*{TRAIN_ARCHIVE} \(from file://.*mirror/{TRAIN_ARCHIVE}\): "
        rf"expected sha256 {EPSILON_TRAIN_SHA256}, got [0-9a-f]{{64}}; retry, or point data.url at a good mirror",
    ):
        catalog.prepare("epsilon", tmp_path / "data", url=(tmp_path / "mirror").as_uri() + "/", log=_quiet)
    assert not (tmp_path / "data" / "epsilon" / ".downloads" / TRAIN_ARCHIVE).exists()  # not kept
    assert not (tmp_path / "data" / "epsilon" / "v1").exists()


def test_epsilon_mirror_with_md5_pair(tmp_path: Path) -> None:
    written = _write_pair(tmp_path / "mirror")
    good = f"{written['md5_train']},{written['md5_test'].upper()}"
    # The md5s are verified instead of the pins; the tiny mirror then fails the exact row count.
    with pytest.raises(DataError, match=rf"{TRAIN_ARCHIVE} has 30 rows, expected 400,000"):
        catalog.prepare("epsilon", tmp_path / "data", url=str(tmp_path / "mirror"), md5=good, log=_quiet)
    wrong = f"{written['md5_train']},{'0' * 32}"
    with pytest.raises(DataError, match=rf"checksum mismatch for .*{TEST_ARCHIVE} .*expected md5 0{{32}}, got"):
        catalog.prepare("epsilon", tmp_path / "data2", url=str(tmp_path / "mirror"), md5=wrong, log=_quiet)
    with pytest.raises(UserError, match=r"data\.md5 for epsilon must be '<train md5>,<test md5>'"):
        catalog.prepare("epsilon", tmp_path / "data3", md5=written["md5_train"], log=_quiet)


@pytest.mark.parametrize("name", ["synthetic-epsilon", "breast-cancer"])
def test_overrides_refused_for_other_tabular_datasets(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError, match=f"apply only to dataset 'epsilon', not '{name}'; remove them"):
        catalog.prepare(name, tmp_path, url="https://example.org/eps/")
