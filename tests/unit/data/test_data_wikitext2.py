"""WikiText-2: archive layout and word-level tokenisation, the look-alike, the demo corpus, BPTT batching."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

import tasks.data.wikitext2 as wikitext2
from tasks.data.download import file_digest
from tasks.data.wikitext2 import (
    ARCHIVE_DIR,
    EOS,
    UNK,
    build_demo_text,
    build_synthetic_wikitext2,
    build_wikitext2,
    generated_corpus,
    read_wikitext_archive,
    write_wikitext_archive,
)
from tasks.runtime.token_stream import bptt_batches, sequence_lengths, worker_columns
from tasks.errors import DataError

pytestmark = pytest.mark.unit

TRAIN = ["", " = Cats = ", "", " the cat sat on the mat . ", " a <unk> sat . "]
VALID = [" the mat sat . ", ""]
TEST = [" = Cats = ", " a cat . "]


def _quiet(message: str) -> None:
    pass


def _words(lines: list[str]) -> list[str]:
    return [word for line in lines for word in (*line.split(), EOS)]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wikitext") / "wikitext-2-v1.zip"
    write_wikitext_archive(path, train_lines=TRAIN, valid_lines=VALID, test_lines=TEST)
    return path


def test_writer_produces_the_official_layout_deterministically(archive: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(archive) as archive_zip:
        names = archive_zip.namelist()
        train_text = archive_zip.read(f"{ARCHIVE_DIR}/wiki.train.tokens").decode("utf-8")
    assert names == [f"{ARCHIVE_DIR}/", *(f"{ARCHIVE_DIR}/wiki.{s}.tokens" for s in ("train", "valid", "test"))]
    assert train_text == "".join(line + "\n" for line in TRAIN)
    again = tmp_path / "again.zip"
    assert write_wikitext_archive(again, train_lines=TRAIN, valid_lines=VALID, test_lines=TEST) == file_digest(archive)
    with pytest.raises(ValueError, match="line break"):
        write_wikitext_archive(tmp_path / "bad.zip", train_lines=["a\nb"], valid_lines=[], test_lines=[])


def test_round_trip_counts_eos_and_vocabulary(archive: Path) -> None:
    tokens, vocabulary = read_wikitext_archive(archive)
    assert set(tokens) == {"train", "valid", "test"}
    for split, lines in (("train", TRAIN), ("valid", VALID), ("test", TEST)):
        assert tokens[split].dtype == np.int32
        assert [vocabulary[i] for i in tokens[split]] == _words(lines)  # every line, empty ones too, ends in <eos>
        eos_positions = np.flatnonzero(tokens[split] == vocabulary.index(EOS))
        assert eos_positions.tolist() == (np.cumsum([len(line.split()) + 1 for line in lines]) - 1).tolist()
    assert [tokens[split].size for split in ("train", "valid", "test")] == [19, 6, 8]
    # ids in order of first appearance in train; WikiText's literal <unk> is an ordinary word
    assert vocabulary == [EOS, "=", "Cats", "the", "cat", "sat", "on", "mat", ".", "a", UNK]


def test_unknown_validation_word_and_broken_archives_are_refused(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.zip"
    write_wikitext_archive(unknown, train_lines=TRAIN, valid_lines=[" the dog sat . "], test_lines=TEST)
    with pytest.raises(DataError, match=r"wiki.valid.tokens line 1 has the word 'dog'.*not the WikiText-2"):
        read_wikitext_archive(unknown)

    missing = tmp_path / "missing.zip"
    with zipfile.ZipFile(missing, "w") as archive_zip:
        archive_zip.writestr(f"{ARCHIVE_DIR}/wiki.train.tokens", "a b\n")
    with pytest.raises(DataError, match="lacks member wikitext-2/wiki.valid.tokens"):
        read_wikitext_archive(missing)

    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"<html>403 Forbidden</html>")
    with pytest.raises(DataError, match="cannot read archive"):
        read_wikitext_archive(not_zip)


def test_real_builder_checks_published_figures_and_records_checksums(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # by default the archive must be the original one (torchtext's md5), and the error says how to pin a mirror
    with pytest.raises(DataError, match=r"checksum mismatch.*542ccefacc6c27f945fb54453812b3cd is the original "
                                        r"WikiText-2 archive's md5.*--set data.md5="):
        build_wikitext2(tmp_path / "a", url=str(archive), log=_quiet)
    # a pinned mirror must still hold WikiText-2 v1's published figures
    with pytest.raises(DataError, match="does not hold WikiText-2 v1"):
        build_wikitext2(tmp_path / "a", url=str(archive), md5=file_digest(archive), log=_quiet)
    assert not (tmp_path / "a" / "wikitext-2-v1.zip").exists()  # not reused by the next attempt
    with pytest.raises(DataError, match="checksum mismatch"):
        build_wikitext2(tmp_path / "b", url=str(archive), md5="0" * 32, log=_quiet)

    monkeypatch.setattr(wikitext2, "WIKITEXT2_FIGURES", {"train": 19, "valid": 6, "test": 8, "vocab": 11})
    arrays, metadata = build_wikitext2(tmp_path / "c", url=str(archive), md5=file_digest(archive), log=_quiet)
    assert set(arrays) == {"train_tokens", "val_tokens", "test_tokens"}
    assert (metadata["md5"], metadata["sha256"]) == (file_digest(archive), file_digest(archive, "sha256"))
    assert metadata["md5_expected"] == file_digest(archive) and not metadata["synthetic"]
    assert metadata["vocabulary"][0] == EOS
    sizes = [metadata[key] for key in ("train_size", "val_size", "test_size", "vocab_size")]
    assert sizes == [19, 6, 8, 11]
    assert metadata["identical_to_original_archive"] is False  # not the S3 archive's bytes, and said so
    monkeypatch.setattr(wikitext2, "WIKITEXT2_ORIGINAL_MD5", file_digest(archive))
    lines: list[str] = []
    _, metadata = build_wikitext2(tmp_path / "d", url=str(archive), log=lines.append)
    assert metadata["identical_to_original_archive"] is True and metadata["md5_expected"] == file_digest(archive)
    assert "byte-identical to the original S3 archive" in lines[-1]


def test_generated_corpus_is_deterministic_and_closed_under_train_vocabulary() -> None:
    corpus = generated_corpus(5, train_lines=50, valid_lines=10, test_lines=10)
    assert corpus == generated_corpus(5, train_lines=50, valid_lines=10, test_lines=10)
    assert corpus != generated_corpus(6, train_lines=50, valid_lines=10, test_lines=10)
    train_words = {word for line in corpus["train"] for word in line.split()}
    for split in ("valid", "test"):
        assert {word for line in corpus[split] for word in line.split()} <= train_words
    assert len(corpus["valid"]) == 10 and 50 <= len(corpus["train"]) <= 51
    assert any(line.startswith(" = ") for line in corpus["train"]) and "" in corpus["train"]
    # a tiny train split still covers valid/test, by one added line
    tiny = generated_corpus(0, train_lines=1, valid_lines=20, test_lines=20)
    assert {w for s in ("valid", "test") for line in tiny[s] for w in line.split()} <= {
        w for line in tiny["train"] for w in line.split()
    }


def test_synthetic_builder_parses_its_archive_like_the_real_one(tmp_path: Path) -> None:
    arrays, metadata = build_synthetic_wikitext2(tmp_path, seed=3, log=_quiet)
    again, _ = build_synthetic_wikitext2(tmp_path / "other", seed=3, log=_quiet)
    assert set(arrays) == {"train_tokens", "val_tokens", "test_tokens"}
    for key, array in arrays.items():
        assert array.dtype == np.int32 and array.ndim == 1
        assert 0 <= array.min() and array.max() < metadata["vocab_size"] == len(metadata["vocabulary"])
        np.testing.assert_array_equal(again[key], array)
    assert metadata["synthetic"] and metadata["train_size"] > 5000 and metadata["val_size"] > 500
    assert (tmp_path / "wikitext-2-v1.zip").exists() and metadata["md5"] == file_digest(tmp_path / "wikitext-2-v1.zip")


def test_demo_corpus_is_real_offline_text_with_a_train_vocabulary() -> None:
    arrays, metadata = build_demo_text(Path("unused"), log=_quiet)
    vocabulary = metadata["vocabulary"]
    assert metadata["vocab_size"] == len(vocabulary) > 500 and vocabulary[0] == UNK and EOS in vocabulary
    assert {"the", "statement", "expression"} <= set(vocabulary)
    assert metadata["train_size"] > 40_000 and metadata["val_size"] > 3_000 and metadata["test_size"] > 3_000
    documents = metadata["documents"]
    assert not set(documents["train"]) & (set(documents["valid"]) | set(documents["test"]))
    for key in ("train_tokens", "val_tokens", "test_tokens"):
        assert arrays[key].dtype == np.int32 and arrays[key].max() < len(vocabulary)
    assert 0 < metadata["unk_rate"]["train"] < metadata["unk_rate"]["valid"] < 0.2
    again, again_metadata = build_demo_text(Path("unused"), log=_quiet)
    np.testing.assert_array_equal(again["val_tokens"], arrays["val_tokens"])
    assert again_metadata["source_sha256"] == metadata["source_sha256"]
    _, other = build_demo_text(Path("unused"), seed=1, log=_quiet)
    assert other["documents"]["valid"] != documents["valid"]  # the split is chosen by the seed


@pytest.mark.parametrize("world_size", [1, 2])
def test_bptt_batches_give_each_worker_its_20_contiguous_columns(world_size: int) -> None:
    per_worker, steps = 20, 7
    stream = np.arange(per_worker * world_size * steps + 3, dtype=np.int32)  # 3 leftover tokens are dropped
    batches = bptt_batches(stream, per_worker * world_size)
    assert batches.shape == (steps, per_worker * world_size) and batches.dtype == np.int32
    for column in range(per_worker * world_size):
        np.testing.assert_array_equal(batches[:, column], stream[column * steps : (column + 1) * steps])
    for rank in range(world_size):
        mine = worker_columns(batches, rank, world_size)
        assert mine.shape == (steps, per_worker)
        np.testing.assert_array_equal(mine, batches[:, rank * per_worker : (rank + 1) * per_worker])
        assert mine[0, 0] == rank * per_worker * steps  # worker r starts at the (20r)-th chunk of the stream
    with pytest.raises(ValueError, match="equal share"):
        worker_columns(batches, 0, 3)
    with pytest.raises(DataError, match="cannot fill"):
        bptt_batches(np.arange(5), 4)


def test_sequence_lengths_follow_mlbench_and_are_pure_in_the_seed() -> None:
    steps = 200_000
    lengths = sequence_lengths(steps, 70, seed=43)
    np.testing.assert_array_equal(lengths, sequence_lengths(steps, 70, seed=43))
    assert not np.array_equal(lengths[:50], sequence_lengths(steps, 70, seed=44)[:50])
    assert lengths.sum() in (steps - 1, steps - 2)  # covers the stream; targets stay inside it
    body = lengths[:-1]  # only the last one is cut to fit
    assert body.min() >= 5
    assert abs(body.mean() - 70) < 3  # 0.95·70 + 0.05·35 = 68.25, minus int() truncation
    short = np.mean(body < 52)  # N(35, 5) draws; N(70, 5) draws land here with probability ~1e-4
    assert 0.03 < short < 0.07
    assert set(sequence_lengths(1000, 70)[:-1].tolist()) == {70}  # no seed: fixed lengths, for evaluation
    assert sequence_lengths(2, 70, seed=0).size == 0
