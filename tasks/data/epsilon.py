"""epsilon (PASCAL Large Scale Learning Challenge 2008) for MLBench task 2a, converted by streaming.

Source: the LIBSVM datasets page (binary section) publishes it as two bz2-compressed LIBSVM text
files, `epsilon_normalized.bz2` (train, 400,000 rows) and `epsilon_normalized.t.bz2` (test,
100,000 rows): 2000 dense features, labels -1/+1. MLBench converted it to LMDB with ~20 GB of RAM;
here both files are decompressed, parsed and written line by line into `.npy` files in the store's
staging folder (tasks.data.store.NpyWriter), so memory stays bounded whatever the number of rows:
about two parsed blocks (2 x 4096 rows x 2000 x 4 bytes = 64 MiB) on top of the interpreter.
Measured peak RSS: +44 MiB over the process's 34 MiB for 5,000 + 1,250 rows, +66 MiB for
20,000 + 5,000 rows (both through build_epsilon, bz2 included), and +63 MiB converting the real
train size, 400,000 x 2000 (2.98 GiB written). Output arrays: train_features / val_features
float32 [N, 2000], train_labels / val_labels float32 0/1 (-1 -> 0); val is the official test file.

Integrity, in layers:
  * archives: the LIBSVM page itself publishes no checksums. The sha256 values pinned below are the
    ones two open-source loaders verify downloads of these exact URLs against (sources beside the
    constants); they were not recomputed here. With a `data.md5` override ("<train md5>,<test md5>",
    see tasks.data.catalog) the md5s are verified instead, for a mirror that serves other bytes.
    Either way the md5 and sha256 of both archives are recorded in the manifest metadata, so a copy
    accepted once can be pinned from then on (trust on first use where no pin applies);
  * bz2 stream: every block's CRC and the stream CRC are checked while decompressing;
  * content: exactly 400,000 / 100,000 rows, indices in 1..2000 and ascending, finite values,
    labels -1/+1. Any of these failing deletes the downloaded copy and names the file and line.

Time: single-threaded bz2 decompression (~35 MB/s of text here) and parsing (~0.4 ms per 2000-feature
row) add up to roughly 2 ms per row, i.e. on the order of 15-20 minutes for the 500,000 rows, once
per data root. Disk: the two archives plus 4.0 GB of arrays (3.2 GB train, 0.8 GB validation).
"""

from __future__ import annotations

import bz2
import hashlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tasks.data.download import CHUNK_BYTES, Log, download, file_digest, log_to_stderr
from tasks.data.store import NpyWriter
from tasks.errors import DataError, UserError

EPSILON_BASE_URL = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/binary/"
TRAIN_ARCHIVE = "epsilon_normalized.bz2"
TEST_ARCHIVE = "epsilon_normalized.t.bz2"
EPSILON_TRAIN_URL = EPSILON_BASE_URL + TRAIN_ARCHIVE
EPSILON_TEST_URL = EPSILON_BASE_URL + TEST_ARCHIVE
# sha256 of the two archives at the URLs above. Not published by LIBSVM; the same two values are pinned
# by two independent open-source loaders that verify downloads of exactly these URLs:
#   - pyensemble/wildwood, wildwood/datasets/_epsilon.py (ARCHIVE_TRAIN / ARCHIVE_TEST, commit c2667e0f)
#   - IntelPython/scikit-learn_bench pull request #201 "use scikit-learn datasets downloader"
#     (sklbench/datasets/loaders.py, load_epsilon; seen in fork homksei/scikit-learn_bench, commit 6a4cfcdf)
EPSILON_TRAIN_SHA256 = "aff916d4f97f18d286558ca088d2a9f7e1fcee9376539a5aa6ef5b7ef9dfa978"
EPSILON_TEST_SHA256 = "cb299295ad11e200696eaa3050f5d8cf700eaa9c65e6aa859bda959f8669458b"
EPSILON_TRAIN_ROWS = 400_000
EPSILON_TEST_ROWS = 100_000
EPSILON_FEATURES = 2000

CHUNK_ROWS = 4096  # rows per parsed block: 32 MB of float32 at 2000 features
PROGRESS_STEPS = 10  # progress lines per converted file

# One LIBSVM line: a label, then `<index>:<value>` pairs separated by spaces or tabs. Possessive
# repetition: a 30 KB line is matched in one pass, with no backtracking on a bad one.
_LINE = re.compile(rb"[ \t]*([^\s:]+)((?:[ \t]+[0-9]+:[^\s:]+)*+)[ \t]*(?:\r?\n)?")
_PAIR = re.compile(r"[0-9]+:[^\s:]+")
_LABELS = {b"1": 1.0, b"+1": 1.0, b"-1": -1.0, b"0": 0.0}
_MD5 = re.compile(r"[0-9a-fA-F]{32}")


def _at(source: str, number: int) -> str:
    return f"{source} line {number:,}"


def _malformed(line: bytes, source: str, number: int) -> DataError:
    """Say precisely what is wrong with a line the fast pattern rejected."""
    text = line.decode("ascii", "replace").strip()
    where = _at(source, number)
    if not text:
        return DataError(f"{where} is empty; every line must be '<label> <index>:<value> ...'")
    tokens = text.split()
    if ":" in tokens[0]:
        return DataError(f"{where} starts with '{tokens[0][:40]}', not a label; expected '<label> <index>:<value> ...'")
    for position, token in enumerate(tokens[1:], start=2):
        if not _PAIR.fullmatch(token):
            return DataError(
                f"{where}: token {position} '{token[:40]}' is not <index>:<value> (index a positive integer)"
            )
    return DataError(f"{where}: tokens must be separated by spaces or tabs only")


def _label(token: bytes, source: str, number: int) -> float:
    value = _LABELS.get(token)
    if value is None:
        try:
            value = float(token)
        except ValueError:
            value = float("nan")
        if value not in (-1.0, 0.0, 1.0):
            text = token.decode("ascii", "replace")[:40]
            raise DataError(f"{_at(source, number)}: label '{text}' is not -1, +1, 0 or 1 (a binary dataset's label)")
    return value


def _bad_number(pairs: bytes, source: str, number: int) -> DataError:
    for position, token in enumerate(pairs.split(), start=2):
        value = token.partition(b":")[2]
        try:
            float(value)
        except ValueError:
            text = value.decode("ascii", "replace")[:40]
            return DataError(f"{_at(source, number)}: token {position} has value '{text}', not a number")
    return DataError(f"{_at(source, number)}: a value is not a number")


def _pairs(pairs: bytes, num_features: int, source: str, number: int) -> tuple[np.ndarray, np.ndarray]:
    """One line's `index:value` pairs as (0-based indices, values), checked: in range, ascending, finite."""
    try:
        numbers = np.array(pairs.replace(b":", b" ").split(), dtype=np.float64)
    except ValueError:
        raise _bad_number(pairs, source, number) from None
    indices, values = numbers[0::2], numbers[1::2]
    if indices[0] < 1 or indices[-1] > num_features:
        bad = indices[0] if indices[0] < 1 else indices[-1]
        raise DataError(f"{_at(source, number)}: index {bad:.0f} is outside 1..{num_features}")
    if len(indices) > 1 and not np.all(indices[1:] > indices[:-1]):
        at = int(np.flatnonzero(indices[1:] <= indices[:-1])[0])
        raise DataError(
            f"{_at(source, number)}: index {indices[at + 1]:.0f} after {indices[at]:.0f}; "
            "LIBSVM indices must ascend strictly"
        )
    if not np.all(np.isfinite(values)):
        at = int(np.flatnonzero(~np.isfinite(values))[0])
        raise DataError(f"{_at(source, number)}: feature {indices[at]:.0f} is {values[at]}, not a finite number")
    return indices.astype(np.intp) - 1, values


def parse_libsvm_stream(
    lines: Iterable[bytes | str], num_features: int, *, chunk_rows: int = CHUNK_ROWS, source: str = "input"
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Parse LIBSVM text lines into dense blocks: yields (labels float32 [n], features float32 [n, num_features]).

    Blocks hold chunk_rows rows (the last one fewer); each is a fresh array the caller may keep.
    Missing indices are 0 (sparse rows); indices are 1-based and must ascend strictly. Labels -1/+1
    (`+1` or `1`) or 0/1, one convention per stream, become 0/1. Anything else raises DataError naming
    `source` and the 1-based line number: a bad token, an index out of 1..num_features or out of
    order, a non-finite or non-numeric value, a bad label, an empty line.
    """
    if num_features < 1 or chunk_rows < 1:
        raise ValueError(f"num_features and chunk_rows must be >= 1, got {num_features} and {chunk_rows}")
    labels = np.empty(chunk_rows, dtype=np.float32)
    features = np.zeros((chunk_rows, num_features), dtype=np.float32)
    filled = 0
    negative: tuple[float, int] | None = None  # the first negative-class label seen (-1 or 0) and its line
    for number, line in enumerate(lines, start=1):
        if isinstance(line, str):
            line = line.encode("ascii", "replace")
        match = _LINE.fullmatch(line)
        if match is None:
            raise _malformed(line, source, number)
        label = _label(match[1], source, number)
        if label != 1.0:
            if negative is None:
                negative = (label, number)
            elif negative[0] != label:
                raise DataError(
                    f"{_at(source, number)}: label {label:g} after label {negative[0]:g} on line {negative[1]:,}; "
                    "a binary file uses either -1/+1 or 0/1"
                )
        labels[filled] = 1.0 if label == 1.0 else 0.0
        if match[2]:
            indices, values = _pairs(match[2], num_features, source, number)
            features[filled, indices] = values
        filled += 1
        if filled == chunk_rows:
            yield labels, features
            labels = np.empty(chunk_rows, dtype=np.float32)
            features = np.zeros((chunk_rows, num_features), dtype=np.float32)
            filled = 0
    if filled:
        yield labels[:filled], features[:filled]


def write_libsvm(path: Path, features: np.ndarray, labels: np.ndarray, *, compress: str | None = "bz2") -> str:
    """Write rows in epsilon's exact format; return the file's md5. For tests and the synthetic dataset.

    One line per row: the label as -1 or 1 (labels given as 0/1 or -1/+1), then `<index>:<value>`
    for every non-zero feature (1-based, ascending; zeros are left out, as LIBSVM does), values with
    9 significant digits so float32 features read back exactly. compress="bz2" writes a bz2 stream
    (byte-for-byte deterministic), None plain text.
    """
    features = np.asarray(features)
    labels = np.asarray(labels).reshape(-1)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"need features [n, d] and n labels, got {features.shape} and {labels.shape}")
    if labels.size and not np.isin(labels, (-1, 0, 1)).all():
        raise ValueError(f"labels must be -1/+1 or 0/1, got values {np.unique(labels)[:5].tolist()}")
    if compress not in ("bz2", None):
        raise ValueError(f"compress must be 'bz2' or None, got {compress!r}")
    path = Path(path)
    out = bz2.open(path, "wb", compresslevel=9) if compress == "bz2" else open(path, "wb")  # noqa: SIM115
    with out:
        for row, label in zip(features, labels, strict=True):
            nonzero = np.flatnonzero(row)
            pairs = np.empty(2 * nonzero.size, dtype=np.float64)
            pairs[0::2], pairs[1::2] = nonzero + 1, row[nonzero]
            text = ("1" if label > 0 else "-1") + (" %d:%.9g" * nonzero.size) % tuple(pairs.tolist())
            out.write(text.encode("ascii") + b"\n")
    return file_digest(path)


def _archive_lines(archive: Path) -> Iterator[bytes]:
    """The decompressed lines of a bz2 file; a failed CRC or a truncated stream becomes a DataError."""
    try:
        with bz2.open(archive, "rb") as stream:
            yield from stream
    except (OSError, EOFError) as exc:
        raise DataError(f"{archive} is not an intact bz2 file ({exc})") from exc


def convert_libsvm(
    lines: Iterable[bytes | str],
    staging: Path,
    prefix: str,
    *,
    rows: int,
    num_features: int,
    source: str,
    log: Log = log_to_stderr,
    chunk_rows: int = CHUNK_ROWS,
) -> dict[str, int]:
    """Stream LIBSVM lines into `staging/<prefix>_features.npy` and `<prefix>_labels.npy`; rows must be exact.

    Returns {"rows", "positives"}. Memory: one parsed block (chunk_rows x num_features float32) and
    one line at a time; nothing grows with the number of rows.
    """
    features_path = Path(staging) / f"{prefix}_features.npy"
    labels_path = Path(staging) / f"{prefix}_labels.npy"
    positives = 0
    step = max(1, rows // PROGRESS_STEPS)
    next_report = step
    with NpyWriter(features_path, (rows, num_features), np.float32) as features_out, NpyWriter(
        labels_path, (rows,), np.float32
    ) as labels_out:
        for labels, features in parse_libsvm_stream(lines, num_features, chunk_rows=chunk_rows, source=source):
            if labels_out.rows_written + len(labels) > rows:
                raise DataError(f"{source} has more than the expected {rows:,} rows; it is not the expected file")
            features_out.write(features)
            labels_out.write(labels)
            positives += int(np.count_nonzero(labels))
            if labels_out.rows_written >= next_report and labels_out.rows_written < rows:
                log(f"[data] {source}: {labels_out.rows_written:,} / {rows:,} rows converted")
                next_report = labels_out.rows_written + step
        if labels_out.rows_written != rows:
            raise DataError(
                f"{source} has {labels_out.rows_written:,} rows, expected {rows:,}; "
                "it is truncated or not the expected file"
            )
    log(f"[data] {source}: {rows:,} rows converted")
    return {"rows": rows, "positives": positives}


def _digests(path: Path) -> dict[str, str]:
    """md5 and sha256 of a file in one chunked pass."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            md5.update(chunk)
            sha256.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def _discard(archive: Path, url: str, log: Log) -> None:
    archive.unlink(missing_ok=True)
    log(f"[data] deleted {archive}; the next prepare fetches it again from {url}")


def epsilon_sources(url: str | None = None, md5: str | None = None) -> dict[str, str | None]:
    """build_epsilon's source keywords for a `data.url` / `data.md5` override (None: the official files).

    url is a base URL (or folder path) holding both files under their official names, e.g.
    `file:///mnt/mirror/epsilon/` or `https://mirror.example.org/libsvm/binary/`. md5 is
    "<train md5>,<test md5>"; when given, those md5s are verified instead of the pinned sha256s (a
    mirror that serves other bytes); without it the mirror must serve the official files.
    """
    base = EPSILON_BASE_URL if url is None else url.rstrip("/") + "/"
    sources: dict[str, str | None] = {
        "url_train": base + TRAIN_ARCHIVE,
        "url_test": base + TEST_ARCHIVE,
        "md5_train": None,
        "md5_test": None,
        "sha256_train": EPSILON_TRAIN_SHA256,
        "sha256_test": EPSILON_TEST_SHA256,
    }
    if md5 is not None:
        parts = [part.strip() for part in md5.split(",")]
        if len(parts) != 2 or not all(_MD5.fullmatch(part) for part in parts):
            raise UserError(
                f"data.md5 for epsilon must be '<train md5>,<test md5>' (two 32-digit hex digests, comma-separated), "
                f"got {md5!r}"
            )
        sources.update(md5_train=parts[0].lower(), md5_test=parts[1].lower(), sha256_train=None, sha256_test=None)
    return sources


class _Split(NamedTuple):
    name: str  # "train" or "val"
    url: str
    md5: str | None
    sha256: str | None
    rows: int
    archive: Path


def _fetch_verified(split: _Split, log: Log) -> dict[str, str]:
    """Download one archive, verify every checksum given; returns what the manifest records of it."""
    download(split.url, split.archive, md5=split.md5, log=log)
    digests = _digests(split.archive)
    if split.sha256 is not None and digests["sha256"] != split.sha256:
        _discard(split.archive, split.url, log)
        raise DataError(
            f"checksum mismatch for {split.archive} (from {split.url}): expected sha256 {split.sha256}, got "
            f"{digests['sha256']}; retry, or point data.url at a good mirror (with data.md5 "
            "'<train md5>,<test md5>' if it serves different files)"
        )
    verified = "sha256 (pinned)" if split.sha256 is not None else "md5" if split.md5 is not None else "none"
    if verified == "none":
        log(f"[data] {split.archive}: no checksum to verify; recorded md5 {digests['md5']} "
            "(pin both files with data.md5 '<train md5>,<test md5>')")
    return {"url": split.url, "verified": verified, **digests}


def _convert_split(split: _Split, staging: Path, num_features: int, chunk_rows: int, needed: int,
                   log: Log) -> dict[str, int]:
    """One archive into its arrays in staging; a bad archive is deleted so the next prepare refetches it."""
    log(f"[data] converting {split.archive} ({split.rows:,} rows x {num_features} features) into {staging}")
    try:
        return convert_libsvm(_archive_lines(split.archive), staging, split.name, rows=split.rows,
                              num_features=num_features, source=str(split.archive), log=log, chunk_rows=chunk_rows)
    except DataError as exc:  # the archive itself is bad (CRC, format, row count): never keep it
        _discard(split.archive, split.url, log)
        raise DataError(f"{exc}; deleted it, so the next prepare fetches it again from {split.url}") from exc
    except OSError as exc:
        raise DataError(
            f"cannot write the {split.name} arrays into {staging}: {exc.strerror or exc}; "
            f"free space on the data root (the arrays take {needed:,} bytes)"
        ) from exc


def build_epsilon(
    scratch: Path,
    staging: Path,
    *,
    url_train: str = EPSILON_TRAIN_URL,
    url_test: str = EPSILON_TEST_URL,
    md5_train: str | None = None,
    md5_test: str | None = None,
    sha256_train: str | None = EPSILON_TRAIN_SHA256,
    sha256_test: str | None = EPSILON_TEST_SHA256,
    train_rows: int = EPSILON_TRAIN_ROWS,
    test_rows: int = EPSILON_TEST_ROWS,
    num_features: int = EPSILON_FEATURES,
    chunk_rows: int = CHUNK_ROWS,
    log: Log = log_to_stderr,
) -> tuple[dict[str, Path], dict]:
    """Streaming store builder: fetch both archives into scratch, verify them, convert into staging.

    Every checksum given is verified (md5 while downloading, sha256 after); the archives' md5 and
    sha256 are recorded in the metadata either way. Row and feature counts must match exactly. An
    archive that fails any check is deleted from scratch, so a retry fetches it again. Peak memory
    is about two parsed blocks (2 x chunk_rows x num_features x 4 bytes) plus one line of text.
    """
    splits = (
        _Split("train", url_train, md5_train, sha256_train, train_rows, Path(scratch) / TRAIN_ARCHIVE),
        _Split("val", url_test, md5_test, sha256_test, test_rows, Path(scratch) / TEST_ARCHIVE),
    )
    # Both downloads first: a dead mirror for the second file fails before, not after, the long conversion.
    archives = {split.name: _fetch_verified(split, log) for split in splits}
    needed = 4 * (train_rows + test_rows) * (num_features + 1)  # float32 features and labels
    stats = {split.name: _convert_split(split, staging, num_features, chunk_rows, needed, log) for split in splits}
    files = {
        f"{split}_{kind}": Path(staging) / f"{split}_{kind}.npy"
        for split in ("train", "val")
        for kind in ("features", "labels")
    }
    metadata = {
        "source": {"train": url_train, "test": url_test},
        "archives": archives,
        "synthetic": False,
        "num_features": num_features,
        "labels": "float32 0/1 (LIBSVM -1 -> 0, +1 -> 1)",
        "train_size": stats["train"]["rows"],
        "val_size": stats["val"]["rows"],
        "train_positives": stats["train"]["positives"],
        "val_positives": stats["val"]["positives"],
    }
    return files, metadata


def synthetic_epsilon_arrays(
    rows: int, test_rows: int, features: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A learnable epsilon look-alike: (train_x, train_y, test_x, test_y), y in -1/+1.

    Rows are Gaussian with ~20% exact zeros (so files have sparse rows), scaled to unit L2 norm as in
    epsilon_normalized; labels are the sign of one fixed linear score plus noise (about 9% of labels
    flipped), balanced. Learnable but not trivially: with the defaults (1200 / 400 rows, 200 features,
    seed 0) scikit-learn's LogisticRegression (C=1) reaches 0.82 validation accuracy (chance: 0.5).
    """
    if rows < 1 or test_rows < 1 or features < 1:
        raise ValueError(f"rows, test_rows and features must be >= 1, got {rows}, {test_rows}, {features}")
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=features)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, features)) * (rng.random(size=(n, features)) >= 0.2)
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        score = x @ weights
        noisy = score + rng.normal(scale=0.3 * score.std(), size=n)
        return x.astype(np.float32), np.where(noisy > 0, 1, -1).astype(np.int8)

    train_x, train_y = split(rows)
    test_x, test_y = split(test_rows)
    return train_x, train_y, test_x, test_y


def build_synthetic_epsilon(
    scratch: Path,
    staging: Path,
    *,
    rows: int = 1200,
    test_rows: int = 400,
    features: int = 200,
    seed: int = 0,
    log: Log = log_to_stderr,
) -> tuple[dict[str, Path], dict]:
    """Streaming builder for the look-alike: write bz2 LIBSVM files, then convert them exactly as the real ones."""
    train_x, train_y, test_x, test_y = synthetic_epsilon_arrays(rows, test_rows, features, seed)
    generated_train = Path(scratch) / f"generated-{TRAIN_ARCHIVE}"
    generated_test = Path(scratch) / f"generated-{TEST_ARCHIVE}"
    md5_train = write_libsvm(generated_train, train_x, train_y)
    md5_test = write_libsvm(generated_test, test_x, test_y)
    log(f"[data] wrote synthetic epsilon-format files {generated_train} (md5 {md5_train}) and {generated_test}")
    files, metadata = build_epsilon(
        scratch,
        staging,
        url_train=str(generated_train),
        url_test=str(generated_test),
        md5_train=md5_train,
        md5_test=md5_test,
        sha256_train=None,
        sha256_test=None,
        train_rows=rows,
        test_rows=test_rows,
        num_features=features,
        log=log,
    )
    metadata.update(source="synthetic: tasks.data.epsilon.write_libsvm", synthetic=True, seed=seed)
    return files, metadata
