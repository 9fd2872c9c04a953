"""CIFAR-10 archive parsing and the look-alike writer: real on-disk format, validation, learnable signal."""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tasks.data.cifar10 import (
    ARCHIVE_DIR,
    CIFAR10_CLASSES,
    build_cifar10,
    build_synthetic_cifar10,
    read_cifar10_archive,
    write_cifar10_archive,
)
from tasks.data.download import file_digest
from tasks.errors import DataError

pytestmark = pytest.mark.unit

EXPECTED_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta", "readme.html"]


def _quiet(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz"
    write_cifar10_archive(path, train_per_batch=30, test_size=40, seed=3)
    return path


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _rewrite(source: Path, dest: Path, replace: dict[str, bytes | None]) -> Path:
    """Copy the archive, replacing (bytes) or dropping (None) the named files of cifar-10-batches-py/."""
    members = _members(source)
    for file_name, payload in replace.items():
        members.pop(f"{ARCHIVE_DIR}/{file_name}")
        if payload is not None:
            members[f"{ARCHIVE_DIR}/{file_name}"] = payload
    with tarfile.open(dest, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return dest


def test_writer_matches_the_official_on_disk_format(archive: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
        assert sorted(names) == sorted([ARCHIVE_DIR] + [f"{ARCHIVE_DIR}/{f}" for f in EXPECTED_FILES])
        batch = pickle.load(tar.extractfile(f"{ARCHIVE_DIR}/data_batch_2"), encoding="bytes")  # type: ignore[arg-type]
        meta = pickle.load(tar.extractfile(f"{ARCHIVE_DIR}/batches.meta"), encoding="bytes")  # type: ignore[arg-type]
        raw_batch = tar.extractfile(f"{ARCHIVE_DIR}/test_batch").read()  # type: ignore[union-attr]
    assert raw_batch[:2] == b"\x80\x02"  # pickle protocol 2, like the python-2 era originals
    assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert batch[b"batch_label"] == b"training batch 2 of 5"
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (30, 3072)
    assert isinstance(batch[b"labels"], list) and all(type(label) is int for label in batch[b"labels"])
    assert all(isinstance(name, bytes) for name in batch[b"filenames"]) and len(batch[b"filenames"]) == 30
    assert meta == {
        b"num_cases_per_batch": 30,
        b"label_names": [name.encode() for name in CIFAR10_CLASSES],
        b"num_vis": 3072,
    }


def test_archive_round_trips_with_channel_planes_in_order(archive: Path) -> None:
    arrays = read_cifar10_archive(archive)
    assert arrays["train_images"].shape == (150, 3, 32, 32) and arrays["train_images"].dtype == np.uint8
    assert arrays["val_images"].shape == (40, 3, 32, 32)
    assert arrays["train_labels"].dtype == np.int64 and arrays["val_labels"].shape == (40,)
    assert set(np.unique(arrays["train_labels"])) == set(range(10))
    first = pickle.loads(_members(archive)[f"{ARCHIVE_DIR}/data_batch_1"], encoding="bytes")
    row = first[b"data"][0]  # 1024 red, then 1024 green, then 1024 blue, each 32 rows of 32
    np.testing.assert_array_equal(arrays["train_images"][0, 1, 2, 5], row[1024 + 2 * 32 + 5])
    assert arrays["train_labels"][0] == first[b"labels"][0]


def test_writer_is_deterministic_per_seed(tmp_path: Path, archive: Path) -> None:
    again = write_cifar10_archive(tmp_path / "again.tar.gz", train_per_batch=30, test_size=40, seed=3)
    other = write_cifar10_archive(tmp_path / "other.tar.gz", train_per_batch=30, test_size=40, seed=4)
    assert again == file_digest(archive)
    assert other != again


def test_synthetic_images_need_the_whole_image_not_one_pixel(tmp_path: Path) -> None:
    path = tmp_path / "default.tar.gz"
    write_cifar10_archive(path)
    arrays = read_cifar10_archive(path)
    train = arrays["train_images"].reshape(500, -1).astype(np.float64)
    val = arrays["val_images"].reshape(200, -1).astype(np.float64)
    train_labels, val_labels = arrays["train_labels"], arrays["val_labels"]
    centroids = np.stack([train[train_labels == c].mean(axis=0) for c in range(10)])
    whole_image = (((val[:, None] - centroids[None]) ** 2).sum(-1).argmin(1) == val_labels).mean()
    per_pixel = (np.abs(val[:, None, :] - centroids[None]).argmin(1) == val_labels[:, None]).mean(axis=0)
    assert whole_image >= 0.6  # a trivial classifier on all pixels learns it
    assert per_pixel.max() <= 0.3  # but no single pixel gives the class away (chance is 0.1)


def _py2_style_batch(rows: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled the way python 2 + numpy 1.x wrote the official files: str opcodes, numpy.core."""

    def short_string(b: bytes) -> bytes:  # SHORT_BINSTRING
        return b"U" + bytes([len(b)]) + b

    def long_string(b: bytes) -> bytes:  # BINSTRING
        return b"T" + struct.pack("<i", len(b)) + b

    n, width = rows.shape
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + short_string(b"b") + b"\x87R"
        + b"(K\x01" + b"M" + struct.pack("<H", n) + b"M" + struct.pack("<H", width) + b"\x86"
        + b"cnumpy\ndtype\n" + short_string(b"u1") + b"K\x00K\x01\x87R(K\x03" + short_string(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89" + long_string(rows.tobytes()) + b"tb"
    )  # fmt: skip
    label_list = b"](" + b"".join(b"K" + bytes([label]) for label in labels) + b"e"
    return (
        b"\x80\x02}(" + short_string(b"batch_label") + short_string(b"training batch 1 of 5")
        + short_string(b"labels") + label_list + short_string(b"data") + array + b"u."
    )  # fmt: skip


def test_reads_python2_era_pickles_like_the_official_archive(tmp_path: Path, archive: Path) -> None:
    rows = np.arange(2 * 3072, dtype=np.uint64).reshape(2, 3072).astype(np.uint8)
    patched = _rewrite(archive, tmp_path / "py2.tar.gz", {"data_batch_1": _py2_style_batch(rows, [7, 2])})
    arrays = read_cifar10_archive(patched)
    assert arrays["train_images"].shape == (2 + 4 * 30, 3, 32, 32)
    np.testing.assert_array_equal(arrays["train_images"][:2].reshape(2, 3072), rows)
    assert list(arrays["train_labels"][:2]) == [7, 2]


def test_missing_member_is_named(tmp_path: Path, archive: Path) -> None:
    broken = _rewrite(archive, tmp_path / "broken.tar.gz", {"data_batch_3": None})
    with pytest.raises(DataError, match=rf"lacks member\(s\) {ARCHIVE_DIR}/data_batch_3;"):
        read_cifar10_archive(broken)


@pytest.mark.parametrize(
    ("batch", "problem"),
    [
        ({b"data": np.zeros((3, 3000), np.uint8), b"labels": [0, 1, 2]}, r"has data uint8\[3, 3000\]"),
        ({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]}, "has 2 labels for 3 images"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"has labels outside 0\.\.9"),
        ({b"labels": [0]}, "is not a dict with b'data' and b'labels'"),
    ],
)
def test_malformed_batch_is_named(tmp_path: Path, archive: Path, batch: dict, problem: str) -> None:
    broken = _rewrite(archive, tmp_path / "bad.tar.gz", {"test_batch": pickle.dumps(batch, protocol=2)})
    with pytest.raises(DataError, match=rf"member {ARCHIVE_DIR}/test_batch {problem}"):
        read_cifar10_archive(broken)


class _RunsCode:
    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


def test_pickles_that_reference_other_code_are_refused(tmp_path: Path, archive: Path) -> None:
    hostile = pickle.dumps({b"data": _RunsCode(), b"labels": []}, protocol=2)
    broken = _rewrite(archive, tmp_path / "hostile.tar.gz", {"data_batch_1": hostile})
    with pytest.raises(DataError, match=r"data_batch_1 is not a readable pickle \(it references __builtin__\.print"):
        read_cifar10_archive(broken)


def test_wrong_meta_is_refused(tmp_path: Path, archive: Path) -> None:
    meta = pickle.dumps({b"label_names": [b"cat", b"dog"]}, protocol=2)
    broken = _rewrite(archive, tmp_path / "meta.tar.gz", {"batches.meta": meta})
    with pytest.raises(DataError, match=r"batches\.meta lists label names"):
        read_cifar10_archive(broken)


def test_truncated_archive_is_a_data_error(tmp_path: Path, archive: Path) -> None:
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"cannot read archive .*truncated\.tar\.gz: unexpected end of data; delete it"):
        read_cifar10_archive(truncated)


def test_build_cifar10_checks_md5_and_names_the_file(tmp_path: Path, archive: Path) -> None:
    with pytest.raises(DataError, match=r"checksum mismatch for .*cifar-10-python\.tar\.gz.*expected md5 f{32}"):
        build_cifar10(tmp_path / "scratch", url=str(archive), md5="f" * 32, log=_quiet)
    arrays, metadata = build_cifar10(tmp_path / "scratch", url=archive.as_uri(), md5=file_digest(archive), log=_quiet)
    assert metadata["source"] == archive.as_uri() and metadata["synthetic"] is False
    assert (metadata["train_size"], metadata["val_size"]) == (150, 40)
    assert arrays["train_images"].shape == (150, 3, 32, 32)


def test_synthetic_builder_goes_through_download_and_reader(tmp_path: Path) -> None:
    messages: list[str] = []
    arrays, metadata = build_synthetic_cifar10(tmp_path, train_per_batch=20, test_size=30, seed=1, log=messages.append)
    assert metadata["synthetic"] is True and metadata["seed"] == 1
    assert (metadata["train_size"], metadata["val_size"]) == (100, 30)
    assert file_digest(tmp_path / "cifar-10-python.tar.gz") == metadata["md5"]
    assert any("md5 verified" in m for m in messages)
    assert arrays["val_images"].shape == (30, 3, 32, 32)
