"""WikiText-2 (word level, v1) from its public zip, plus a generated look-alike and an offline real-text corpus.

Tokenisation is the standard word-level one (PyTorch's word_language_model, MLBench's
`Wikitext2Dataset`): every line of a split, empty lines included, becomes `line.split()` followed by
`<eos>`; ids are given in order of first appearance in the training split. WikiText already maps
rare words to `<unk>`, so a validation or test word outside the training vocabulary means the
archive is not WikiText-2 and is refused.

The look-alike archive is written in exactly the official layout and read back by the same code,
so tests and the smoke preset exercise the real parsing path. The `demo` corpus is real English
text that ships with every CPython (the language reference bundled as `pydoc_data.topics`), so it
needs no network.
"""

from __future__ import annotations

import hashlib
import io
import re
import sys
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from tasks.data.download import Log, download, file_digest, log_to_stderr
from tasks.errors import ChecksumMismatch, DataError

# The original host (Salesforce/MetaMind S3, the one MLBench used) has refused downloads since 2024.
# The dataset's author (Stephen Merity) serves the archive from his own domain. Every download must have
# the original archive's md5 (below) unless data.md5 pins another (a re-packed mirror), and every build
# must reproduce the published figures below. That this host's bytes are the original's could not be
# checked here (no network): if they are not, the first download says so. Users report that this host answers 403 to
# Python-urllib's default User-Agent, so the downloader must send its own.
WIKITEXT2_URL = "https://wikitext.smerity.com/wikitext-2-v1.zip"
WIKITEXT2_ORIGINAL_URL = "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip"
# md5 of the original S3 archive as published by torchtext (torchtext/datasets/wikitext2.py), which
# verified every download against it for years.
WIKITEXT2_ORIGINAL_MD5 = "542ccefacc6c27f945fb54453812b3cd"
ARCHIVE_NAME = "wikitext-2-v1.zip"
ARCHIVE_DIR = "wikitext-2"
SPLIT_FILES = {"train": "wiki.train.tokens", "valid": "wiki.valid.tokens", "test": "wiki.test.tokens"}
ARRAY_KEYS = {"train": "train_tokens", "valid": "val_tokens", "test": "test_tokens"}
EOS = "<eos>"
UNK = "<unk>"
# Merity et al. 2016 (Pointer Sentinel Mixture Models), table 1: tokens per split and vocabulary,
# counted exactly as tokenised here (one <eos> per line).
WIKITEXT2_FIGURES = {"train": 2_088_628, "valid": 217_646, "test": 245_569, "vocab": 33_278}
TOKEN_DTYPE = np.int32

# Demo corpus: the Python language reference that ships inside CPython's standard library.
DEMO_SOURCE = "pydoc_data.topics"
DEMO_VAL_FRACTION = 0.1
DEMO_TEST_FRACTION = 0.1
DEMO_MIN_COUNT = 3  # as WikiText: words seen fewer than 3 times in train become <unk>
_DEMO_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")

# A tiny English-like grammar for the look-alike: number agreement between subject and verb (across
# an optional adjective) and a topic per paragraph, so a small LSTM has something to learn.
_SINGULAR_DETERMINERS = ("the", "a", "every", "one")
_PLURAL_DETERMINERS = ("the", "some", "many", "two")
_NOUNS = (
    ("cat", "cats"), ("dog", "dogs"), ("bird", "birds"), ("child", "children"), ("teacher", "teachers"),
    ("farmer", "farmers"), ("river", "rivers"), ("train", "trains"), ("city", "cities"), ("tree", "trees"),
)  # fmt: skip
_INTRANSITIVE = (("sleeps", "sleep"), ("runs", "run"), ("sings", "sing"), ("waits", "wait"), ("grows", "grow"))
_TRANSITIVE = (("sees", "see"), ("likes", "like"), ("follows", "follow"), ("finds", "find"), ("helps", "help"))
_ADJECTIVES = ("small", "old", "quiet", "bright", "green", "tall")
_ADVERBS = ("slowly", "today", "again", "here")
_CONNECTIVES = ("and", "but", "while")
_TOPICS = ("Animals", "The Village", "Rivers", "Trains", "Trees")
_UNK_RATE = 0.02  # WikiText's text carries literal <unk> tokens; so does the look-alike
SYNTHETIC_TRAIN_LINES = 600
SYNTHETIC_VALID_LINES = 60
SYNTHETIC_TEST_LINES = 60


# ----------------------------------------------------------------------------------------- archive


def _member_path(split: str) -> str:
    return f"{ARCHIVE_DIR}/{SPLIT_FILES[split]}"


def _split_lines(archive_zip: zipfile.ZipFile, archive: Path, split: str) -> Iterable[str]:
    """The lines of one split, decoded as UTF-8 with universal newlines (as `open(path)` reads them)."""
    name = _member_path(split)
    try:
        raw = archive_zip.read(name)
    except KeyError:
        raise DataError(
            f"{archive} lacks member {name}; this is not the WikiText-2 archive — delete it and download "
            "again, or point data.url at a good mirror"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{archive} member {name} is not UTF-8 text ({exc}); delete it and download again") from exc
    return io.StringIO(text, newline=None)


def read_wikitext_archive(archive: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Parse the archive in place (nothing is extracted) into token ids per split and the vocabulary.

    Returns ({"train"|"valid"|"test": int32 ids}, vocabulary), vocabulary[i] being the word of id i.
    """
    archive = Path(archive)
    word_ids: dict[str, int] = {}
    vocabulary: list[str] = []
    tokens: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(archive) as archive_zip:
            for split in ("train", "valid", "test"):
                ids: list[int] = []
                for line_number, line in enumerate(_split_lines(archive_zip, archive, split), start=1):
                    for word in (*line.split(), EOS):
                        word_id = word_ids.get(word)
                        if word_id is None:
                            if split != "train":
                                raise DataError(
                                    f"{archive} member {_member_path(split)} line {line_number} has the word "
                                    f"{word!r}, which the training split never uses; WikiText maps rare words "
                                    "to <unk>, so this is not the WikiText-2 archive — delete it and download "
                                    "again, or point data.url at a good mirror"
                                )
                            word_id = word_ids[word] = len(vocabulary)
                            vocabulary.append(word)
                        ids.append(word_id)
                tokens[split] = np.asarray(ids, dtype=TOKEN_DTYPE)
    except DataError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError) as exc:
        raise DataError(f"cannot read archive {archive}: {exc}; delete it and download again") from exc
    return tokens, vocabulary


def write_wikitext_archive(
    path: Path, *, train_lines: Sequence[str], valid_lines: Sequence[str], test_lines: Sequence[str]
) -> str:
    """Write a zip in WikiText-2's exact layout (`wikitext-2/wiki.{train,valid,test}.tokens`); return its md5.

    Every given line is written followed by a newline. Byte-for-byte deterministic for given lines
    (fixed timestamps), so its md5 is a stable identity like the real archive's.
    """
    contents = {"train": train_lines, "valid": valid_lines, "test": test_lines}
    for split, lines in contents.items():
        for line in lines:
            if "\n" in line or "\r" in line:
                raise ValueError(f"{split} line {line!r} contains a line break; pass one line per item")
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive_zip:
        folder = zipfile.ZipInfo(f"{ARCHIVE_DIR}/", date_time=(1980, 1, 1, 0, 0, 0))
        folder.external_attr = (0o40755 << 16) | 0x10
        archive_zip.writestr(folder, b"")
        for split in ("train", "valid", "test"):
            info = zipfile.ZipInfo(_member_path(split), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            archive_zip.writestr(info, "".join(f"{line}\n" for line in contents[split]).encode("utf-8"))
    return file_digest(path)


# ------------------------------------------------------------------------------------ look-alike


def _noun_phrase(rng: np.random.Generator, plural: bool, topic_nouns: Sequence[tuple[str, str]]) -> list[str]:
    determiner = str(rng.choice(_PLURAL_DETERMINERS if plural else _SINGULAR_DETERMINERS))
    words = [determiner]
    if rng.random() < 0.4:
        words.append(str(rng.choice(_ADJECTIVES)))
    if rng.random() < _UNK_RATE:
        words.append(UNK)
    else:
        words.append(topic_nouns[int(rng.integers(len(topic_nouns)))][int(plural)])
    return words


def _clause(rng: np.random.Generator, topic_nouns: Sequence[tuple[str, str]]) -> list[str]:
    plural = bool(rng.random() < 0.5)
    words = _noun_phrase(rng, plural, topic_nouns)
    if rng.random() < 0.5:
        words.append(_TRANSITIVE[int(rng.integers(len(_TRANSITIVE)))][int(plural)])
        words += _noun_phrase(rng, bool(rng.random() < 0.5), topic_nouns)
    else:
        words.append(_INTRANSITIVE[int(rng.integers(len(_INTRANSITIVE)))][int(plural)])
    if rng.random() < 0.3:
        words.append(str(rng.choice(_ADVERBS)))
    return words


def _paragraph(rng: np.random.Generator, topic_nouns: Sequence[tuple[str, str]]) -> str:
    words: list[str] = []
    for _ in range(int(rng.integers(1, 5))):
        words += _clause(rng, topic_nouns)
        if rng.random() < 0.3:
            words.append(str(rng.choice(_CONNECTIVES)))
            words += _clause(rng, topic_nouns)
        words.append(".")
    return " " + " ".join(words) + " "  # WikiText lines start and end with a space


def _generated_lines(rng: np.random.Generator, count: int) -> list[str]:
    """WikiText-shaped lines: ` = Heading = ` titles, empty lines, paragraphs on a few topic nouns."""
    lines: list[str] = []
    topic_nouns: Sequence[tuple[str, str]] = _NOUNS
    while len(lines) < count:
        kind = rng.random()
        if kind < 0.1:
            topic = int(rng.integers(len(_TOPICS)))
            topic_nouns = [_NOUNS[(2 * topic + offset) % len(_NOUNS)] for offset in range(4)]
            lines.append(f" = {_TOPICS[topic]} = ")
        elif kind < 0.3:
            lines.append("")
        else:
            lines.append(_paragraph(rng, topic_nouns))
    return lines


def generated_corpus(
    seed: int,
    *,
    train_lines: int = SYNTHETIC_TRAIN_LINES,
    valid_lines: int = SYNTHETIC_VALID_LINES,
    test_lines: int = SYNTHETIC_TEST_LINES,
) -> dict[str, list[str]]:
    """A small, learnable WikiText-shaped text: {"train"|"valid"|"test": lines}, deterministic per seed.

    Every word of valid/test also occurs in train (as in WikiText); should a tiny train split miss
    one, a last train line listing the missing words is added, so train may be one line longer.
    """
    if min(train_lines, valid_lines, test_lines) < 1:
        raise ValueError(f"each split needs at least one line, got {train_lines}, {valid_lines}, {test_lines}")
    rng = np.random.default_rng(seed)
    corpus = {
        "train": _generated_lines(rng, train_lines),
        "valid": _generated_lines(rng, valid_lines),
        "test": _generated_lines(rng, test_lines),
    }
    train_words = {word for line in corpus["train"] for word in line.split()}
    held_out_words = {word for split in ("valid", "test") for line in corpus[split] for word in line.split()}
    missing = sorted(held_out_words - train_words)
    if missing:
        corpus["train"].append(" " + " ".join(missing) + " ")
    return corpus


# -------------------------------------------------------------------------------------- builders


def _split_arrays(tokens: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {ARRAY_KEYS[split]: tokens[split] for split in ("train", "valid", "test")}


def _sizes(tokens: dict[str, np.ndarray], vocabulary: list[str]) -> dict[str, int]:
    return {
        "train_size": int(tokens["train"].size),
        "val_size": int(tokens["valid"].size),
        "test_size": int(tokens["test"].size),
        "vocab_size": len(vocabulary),
    }


def check_wikitext2_figures(tokens: dict[str, np.ndarray], vocabulary: list[str], source: str) -> None:
    """DataError unless the parsed archive has WikiText-2 v1's published token counts and vocabulary size."""
    found = {**{split: int(ids.size) for split, ids in tokens.items()}, "vocab": len(vocabulary)}
    if found != WIKITEXT2_FIGURES:
        raise DataError(
            f"{source} does not hold WikiText-2 v1: it has {found}, the published figures are "
            f"{WIKITEXT2_FIGURES}; point data.url at a mirror serving the original wikitext-2-v1.zip"
        )


def build_wikitext2(
    scratch: Path, *, url: str = WIKITEXT2_URL, md5: str | None = None, log: Log = log_to_stderr
) -> tuple[dict[str, np.ndarray], dict]:
    """Builder for the real dataset: fetch (reused if already in scratch), parse, check the published figures.

    The archive must have md5 `md5`, by default the original archive's (WIKITEXT2_ORIGINAL_MD5, which
    torchtext verified for years); a mirror that re-packed it is pinned by passing its own md5. Either
    way its md5 and sha256 are recorded, and its token counts and vocabulary size must match
    WikiText-2 v1's exactly.
    """
    try:
        archive = download(url, Path(scratch) / ARCHIVE_NAME, md5=md5 or WIKITEXT2_ORIGINAL_MD5, log=log)
    except ChecksumMismatch as exc:
        if md5 is not None:
            raise
        raise ChecksumMismatch(
            f"{exc}. {WIKITEXT2_ORIGINAL_MD5} is the original WikiText-2 archive's md5; if this host serves a "
            "re-packed copy, check it and pin its md5 with --set data.md5=... (its token counts and "
            "vocabulary are verified either way)"
        ) from None
    try:
        tokens, vocabulary = read_wikitext_archive(archive)
        check_wikitext2_figures(tokens, vocabulary, f"{archive} (from {url})")
    except DataError:
        # The downloader would reuse this file on the next attempt, whatever data.url says.
        archive.unlink(missing_ok=True)
        log(f"[data] removed {archive}, which is not WikiText-2 v1")
        raise
    archive_md5 = file_digest(archive)
    metadata = {
        "source": url,
        "md5": archive_md5,
        "sha256": file_digest(archive, "sha256"),
        "md5_expected": md5 or WIKITEXT2_ORIGINAL_MD5,
        # Byte-identical to the archive MLBench and torchtext downloaded, or only equal in content
        # (the published figures above), e.g. re-zipped by a mirror.
        "identical_to_original_archive": archive_md5 == WIKITEXT2_ORIGINAL_MD5,
        "synthetic": False,
        "vocabulary": vocabulary,
        **_sizes(tokens, vocabulary),
    }
    identity = ("byte-identical to the original S3 archive (torchtext's md5)"
                if metadata["identical_to_original_archive"]
                else "a re-packed copy pinned by data.md5, with WikiText-2 v1's published token counts")
    log(f"[data] WikiText-2 archive md5 {archive_md5} sha256 {metadata['sha256']}: {identity}")
    return _split_arrays(tokens), metadata


def build_synthetic_wikitext2(
    scratch: Path,
    *,
    seed: int = 0,
    train_lines: int = SYNTHETIC_TRAIN_LINES,
    valid_lines: int = SYNTHETIC_VALID_LINES,
    test_lines: int = SYNTHETIC_TEST_LINES,
    log: Log = log_to_stderr,
) -> tuple[dict[str, np.ndarray], dict]:
    """Builder for the look-alike: write it, then fetch and parse it exactly as the real archive is."""
    generated = Path(scratch) / f"generated-{ARCHIVE_NAME}"
    generated.parent.mkdir(parents=True, exist_ok=True)
    corpus = generated_corpus(seed, train_lines=train_lines, valid_lines=valid_lines, test_lines=test_lines)
    md5 = write_wikitext_archive(
        generated, train_lines=corpus["train"], valid_lines=corpus["valid"], test_lines=corpus["test"]
    )
    log(f"[data] wrote synthetic WikiText-2-format archive {generated} (md5 {md5})")
    archive = download(str(generated), Path(scratch) / ARCHIVE_NAME, md5=md5, log=log)
    tokens, vocabulary = read_wikitext_archive(archive)
    metadata = {
        "source": "synthetic: tasks.data.wikitext2.write_wikitext_archive(generated_corpus)",
        "md5": md5,
        "synthetic": True,
        "seed": seed,
        "vocabulary": vocabulary,
        **_sizes(tokens, vocabulary),
    }
    return _split_arrays(tokens), metadata


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks of text, each joined into one line (a WikiText line is a paragraph)."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in text.split("\n"):
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def _demo_documents() -> tuple[dict[str, list[list[str]]], str]:
    """Each reference topic as paragraphs of lowercased words, and the sha256 of the raw topic texts."""
    try:
        from pydoc_data.topics import topics
    except ImportError as exc:
        raise DataError(
            f"the demo text corpus needs the standard library module {DEMO_SOURCE}, which this Python "
            f"({sys.version.split()[0]}) lacks; use a full CPython install, or the 'synthetic' dataset"
        ) from exc
    documents = {}
    digest = hashlib.sha256()
    for name in sorted(topics):
        digest.update(f"{name}\0{topics[name]}\0".encode("utf-8"))
        paragraphs = [_DEMO_WORD.findall(paragraph.lower()) for paragraph in _paragraphs(topics[name])]
        documents[name] = [words for words in paragraphs if words]
    return documents, digest.hexdigest()


def _document_split(
    sizes: dict[str, int], seed: int, val_fraction: float, test_fraction: float
) -> dict[str, list[str]]:
    """Whole documents to valid, then test, in a seeded order until each holds its share of tokens."""
    total = sum(sizes.values())
    names = sorted(sizes)
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    split: dict[str, list[str]] = {"valid": [], "test": [], "train": []}
    targets = {"valid": val_fraction * total, "test": test_fraction * total}
    filled = {"valid": 0, "test": 0}
    for name in order:
        target = next((s for s in ("valid", "test") if filled[s] < targets[s]), "train")
        split[target].append(name)
        if target != "train":
            filled[target] += sizes[name]
    return {key: sorted(names) for key, names in split.items()}


def build_demo_text(
    scratch: Path,
    *,
    seed: int = 0,
    val_fraction: float = DEMO_VAL_FRACTION,
    test_fraction: float = DEMO_TEST_FRACTION,
    min_count: int = DEMO_MIN_COUNT,
    log: Log = log_to_stderr,
) -> tuple[dict[str, np.ndarray], dict]:
    """Builder for the offline `demo` corpus: the Python language reference bundled with CPython.

    Lowercased words (letters, inner apostrophes), one `<eos>` per paragraph; whole reference topics
    go to valid and test (about val_fraction and test_fraction of the tokens each, chosen in a
    seeded order), the rest to train. The vocabulary is train's words seen at least min_count
    times, in order of first appearance, plus `<unk>` for everything else. scratch is unused
    (nothing is downloaded); it is accepted so this is a store builder like the rest.
    """
    if not (0 < val_fraction and 0 < test_fraction and val_fraction + test_fraction < 1):
        raise DataError(
            f"demo val/test fractions must be positive and sum below 1, got {val_fraction}, {test_fraction}"
        )
    documents, source_sha256 = _demo_documents()
    sizes = {name: sum(len(words) + 1 for words in paragraphs) for name, paragraphs in documents.items()}
    split_documents = _document_split(sizes, seed, val_fraction, test_fraction)

    def stream(split: str) -> list[str]:
        return [word for name in split_documents[split] for words in documents[name] for word in (*words, EOS)]

    streams = {split: stream(split) for split in ("train", "valid", "test")}
    counts = Counter(streams["train"])
    word_ids = {UNK: 0}
    for word in streams["train"]:
        if counts[word] >= min_count and word not in word_ids:
            word_ids[word] = len(word_ids)
    vocabulary = list(word_ids)
    tokens = {
        split: np.asarray([word_ids.get(word, 0) for word in words], dtype=TOKEN_DTYPE)
        for split, words in streams.items()
    }
    log(
        f"[data] demo text: {sum(sizes.values())} tokens from {len(documents)} topics of {DEMO_SOURCE} "
        f"(Python {sys.version.split()[0]}), vocabulary {len(vocabulary)}"
    )
    metadata = {
        "source": f"{DEMO_SOURCE} (the Python language reference bundled with CPython)",
        "python_version": sys.version.split()[0],
        "source_sha256": source_sha256,
        "synthetic": False,
        "seed": seed,
        "min_count": min_count,
        "documents": split_documents,
        "unk_rate": {split: float(np.mean(ids == 0)) if ids.size else 0.0 for split, ids in tokens.items()},
        "vocabulary": vocabulary,
        **_sizes(tokens, vocabulary),
    }
    return _split_arrays(tokens), metadata
