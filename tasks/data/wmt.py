"""English→German translation data for MLBench tasks 4a (WMT16, GNMT) and 4b (WMT17, Transformer).

One pipeline turns raw sentence pairs into the prepared `translation` layout of tasks.data.catalog
(subword id arrays with offsets, the vocabulary and the raw validation text), as MLPerf GNMT's
download_dataset.sh did (tasks.data.subword):

1. training pairs: Moses-tokenize, clean (1..80 tokens a side, ratio <= 9), drop non-latin-1 pairs;
2. learn a shared BPE on the joint English+German word counts of what is left;
3. apply it; keep the training pairs short enough for the task, and the validation pairs too (MLBench
   drops longer ones, counted here in the metadata); validation pairs are neither cleaned nor filtered
   otherwise, as in MLPerf.

Task 4a: WMT16 (Europarl v7, CommonCrawl, News Commentary v11), newstest2014 as validation, 32,000
merges; MLBench trains on pairs of at most 75 ids and validates on at most 150, BOS and EOS included.
Task 4b: WMT17 (News Commentary v12, CommonCrawl, Europarl v7), newstest2014 (from WMT14's full test
release). MLBench used MLPerf's fixed subtoken vocabulary of 33,708 entries (padded to 33,712), which
cannot be downloaded here; a shared BPE vocabulary learned to that size stands in for it. Pairs longer
than 80 ids with EOS are dropped. MLBench's development set newstest2013 has no place in the layout and
is not downloaded.

The real builders download about 1.7 GB from statmt.org and tokenize ~4.5M pairs (hours on two cores);
they could not be run where this was written (no network). The look-alike datasets write small
archives in exactly the WMT layouts and run the same code offline.
"""

from __future__ import annotations

import importlib.metadata
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tasks.data.download import Log, log_to_stderr
from tasks.data.subword import (
    AGGRESSIVE_DASH_SPLITS,
    SEPARATOR,
    BpeModel,
    TokenPair,
    apply_bpe,
    build_vocabulary,
    clean_pairs,
    encode,
    latin1_filter,
    learn_bpe,
    moses_tokenize,
    vocabulary_index,
)
from tasks.data.wmt_sources import (
    WMT16_NEWSTEST2014,
    WMT16_TRAINING,
    WMT17_NEWSTEST2014,
    WMT17_TRAINING,
    Archive,
    ParallelText,
    ValidationSet,
    fetch,
    read_parallel_text,
    read_test_set,
    write_test_archive,
    write_training_archive,
)
from tasks.errors import UserError

SOURCE_LANGUAGE = "en"
TARGET_LANGUAGE = "de"
LOG_EVERY_PAIRS = 200_000


@dataclass(frozen=True)
class SubwordSettings:
    """How a corpus becomes subwords: BPE's size and the longest pairs kept (in subwords, no BOS/EOS)."""

    max_merges: int
    target_vocabulary: int | None  # stop learning once the vocabulary (specials included) is this large
    train_max_subwords: int
    val_max_subwords: int


@dataclass(frozen=True)
class WmtCorpus:
    training: tuple[ParallelText, ...]
    validation: ValidationSet
    settings: SubwordSettings


CORPORA = {
    # MLBench task 4a: max lengths 75 (training) and 150 (validation) count BOS and EOS.
    "wmt16": WmtCorpus(WMT16_TRAINING, WMT16_NEWSTEST2014, SubwordSettings(32_000, None, 75 - 2, 150 - 2)),
    # MLBench task 4b: 80 positions, EOS included; learning stops at MLPerf's vocabulary size.
    "wmt17": WmtCorpus(WMT17_TRAINING, WMT17_NEWSTEST2014, SubwordSettings(100_000, 33_708, 80 - 1, 80 - 1)),
}
# The look-alikes keep the real length limits but learn a vocabulary small enough for their ~130 word
# types to stay partly split into subwords (about 250 merges would join every word seen twice).
SYNTHETIC_SETTINGS = {
    "wmt16": replace(CORPORA["wmt16"].settings, max_merges=120),
    "wmt17": replace(CORPORA["wmt17"].settings, target_vocabulary=128),
}
SYNTHETIC_TRAIN_PAIRS = 600
SYNTHETIC_VAL_PAIRS = 60


# --------------------------------------------------------------------------------------- pipeline


class _Ragged:
    """Sentences of ids appended one by one into a flat int32 array and int64 offsets (n + 1 entries)."""

    def __init__(self) -> None:
        self.ids = array("i")
        self.offsets = array("q", [0])

    def append(self, ids: Sequence[int]) -> None:
        self.ids.extend(ids)
        self.offsets.append(len(self.ids))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.frombuffer(self.ids, dtype=np.int32), np.frombuffer(self.offsets, dtype=np.int64)


def _fits(source: Sequence[str], target: Sequence[str], limit: int) -> bool:
    return 1 <= len(source) <= limit and 1 <= len(target) <= limit


def _counted(items: Iterable[TokenPair], counts: Counter[str], key: str) -> Iterator[TokenPair]:
    for item in items:
        counts[key] += 1
        yield item


@dataclass
class _Subwords:
    """The shared BPE learned from the training words: its merges, the model applying them, the
    vocabulary and its index."""

    merges: list[tuple[str, str]]
    model: BpeModel
    vocabulary: list[str]
    index: dict[str, int]

    def ids(self, tokens: Sequence[str]) -> tuple[list[str], list[int]]:
        pieces = apply_bpe(tokens, self.model)
        return pieces, encode(pieces, self.index)


def _tokenize_training(train_pairs: Iterable[tuple[str, str]], work_file: Path, counts: Counter[str], log: Log,
                       log_every: int) -> Counter[str]:
    """First pass: Moses-tokenize, clean and filter the training pairs into work_file; their word counts."""
    words: Counter[str] = Counter()

    def tokenized() -> Iterator[TokenPair]:
        for source, target in train_pairs:
            counts["read"] += 1
            if counts["read"] % log_every == 0:
                log(f"[data] tokenized {counts['read']} training pairs, {counts['kept']} kept so far")
            yield moses_tokenize(source, SOURCE_LANGUAGE), moses_tokenize(target, TARGET_LANGUAGE)

    with open(work_file, "w", encoding="utf-8") as out:
        for source_tokens, target_tokens in latin1_filter(_counted(clean_pairs(tokenized()), counts, "clean")):
            counts["kept"] += 1
            words.update(source_tokens)
            words.update(target_tokens)
            out.write(f"{' '.join(source_tokens)}\t{' '.join(target_tokens)}\n")
    return words


def _learn_subwords(words: Counter[str], settings: SubwordSettings, log: Log) -> _Subwords:
    merges = learn_bpe(words, max_merges=settings.max_merges, target_vocabulary=settings.target_vocabulary, log=log)
    model = BpeModel(merges)
    subword_counts: Counter[str] = Counter()
    for word, count in words.items():
        for piece in model.segment(word):
            subword_counts[piece] += count
    vocabulary = build_vocabulary(subword_counts)
    log(f"[data] {len(merges)} BPE merges, vocabulary of {len(vocabulary)} entries")
    return _Subwords(merges, model, vocabulary, vocabulary_index(vocabulary))


def _encode_training(work_file: Path, subwords: _Subwords, limit: int, kept: int, log: Log,
                     log_every: int) -> tuple[_Ragged, _Ragged]:
    """Second pass: the tokenized pairs of work_file as subword ids, those within `limit` subwords a side."""
    train_source, train_target = _Ragged(), _Ragged()
    with open(work_file, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            source_text, target_text = line.rstrip("\n").split("\t")
            (source, source_ids), (target, target_ids) = (subwords.ids(source_text.split(" ")),
                                                          subwords.ids(target_text.split(" ")))
            if _fits(source, target, limit):
                train_source.append(source_ids)
                train_target.append(target_ids)
            if number % log_every == 0:
                log(f"[data] encoded {number} of {kept} training pairs")
    return train_source, train_target


def _encode_validation(val_pairs: Sequence[tuple[str, str]], subwords: _Subwords,
                       limit: int) -> tuple[_Ragged, _Ragged, list[str], list[str]]:
    """The validation pairs within `limit` subwords a side: their ids, raw references and raw sources."""
    val_source, val_target = _Ragged(), _Ragged()
    references, sources = [], []
    for source_raw, target_raw in val_pairs:
        source, source_ids = subwords.ids(moses_tokenize(source_raw, SOURCE_LANGUAGE))
        target, target_ids = subwords.ids(moses_tokenize(target_raw, TARGET_LANGUAGE))
        if _fits(source, target, limit):
            val_source.append(source_ids)
            val_target.append(target_ids)
            references.append(target_raw)
            sources.append(source_raw)
    return val_source, val_target, references, sources


def encode_translation_corpus(
    train_pairs: Iterable[tuple[str, str]],
    val_pairs: Sequence[tuple[str, str]],
    *,
    settings: SubwordSettings,
    work_file: Path,
    log: Log = log_to_stderr,
    log_every: int = LOG_EVERY_PAIRS,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Raw (English, German) pairs → the prepared arrays and metadata (see the module docstring).

    The cleaned, tokenized training text waits in work_file between the two passes (memory stays
    bounded by the word counts and the id arrays); it is removed afterwards.
    """
    counts: Counter[str] = Counter()
    try:
        words = _tokenize_training(train_pairs, work_file, counts, log, log_every)
        log(f"[data] {counts['read']} training pairs read, {counts['kept']} after cleaning; "
            f"learning BPE on {len(words)} word types")
        subwords = _learn_subwords(words, settings, log)
        train_source, train_target = _encode_training(work_file, subwords, settings.train_max_subwords,
                                                      counts["kept"], log, log_every)
    finally:
        work_file.unlink(missing_ok=True)
    val_source, val_target, references, sources = _encode_validation(val_pairs, subwords, settings.val_max_subwords)

    arrays: dict[str, np.ndarray] = {}
    for name, ragged in (("train_source", train_source), ("train_target", train_target),
                         ("val_source", val_source), ("val_target", val_target)):
        arrays[name], arrays[f"{name}_offsets"] = ragged.arrays()
    train_size, val_size = len(train_source.offsets) - 1, len(references)
    log(f"[data] {train_size} training pairs, {val_size} of {len(val_pairs)} validation pairs "
        f"within {settings.train_max_subwords} / {settings.val_max_subwords} subwords")
    metadata = {
        "subword": "bpe",
        "separator": SEPARATOR,
        "source_language": SOURCE_LANGUAGE,
        "target_language": TARGET_LANGUAGE,
        "vocabulary": subwords.vocabulary,
        "vocab_size": len(subwords.vocabulary),
        "bpe_merges": [f"{left} {right}" for left, right in subwords.merges],
        "val_references": references,
        "val_sources_raw": sources,
        "train_size": train_size,
        "val_size": val_size,
        "filtering": {
            "train_pairs_read": counts["read"],
            "train_dropped_by_clean": counts["read"] - counts["clean"],
            "train_dropped_not_latin1": counts["clean"] - counts["kept"],
            "train_dropped_too_long": counts["kept"] - train_size,
            "val_pairs_read": len(val_pairs),
            "val_dropped_too_long": len(val_pairs) - val_size,
        },
        "settings": asdict(settings),
        "moses": {"aggressive_dash_splits": AGGRESSIVE_DASH_SPLITS, "escape": False},
        "sacremoses_version": importlib.metadata.version("sacremoses"),
    }
    return arrays, metadata


# --------------------------------------------------------------------------------------- builders


def _corpus(name: str) -> WmtCorpus:
    if name not in CORPORA:
        raise UserError(f"unknown WMT corpus '{name}'; valid: {', '.join(sorted(CORPORA))}")
    return CORPORA[name]


def _build(corpus: WmtCorpus, scratch: Path, log: Log, log_every: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Fetch every archive of corpus (verified), then read and encode it."""
    scratch = Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    archives: dict[Archive, Path] = {}
    for archive in (*(text.archive for text in corpus.training), corpus.validation.archive):
        if archive not in archives:
            archives[archive] = fetch(archive, scratch, log)

    def training() -> Iterator[tuple[str, str]]:
        for text in corpus.training:
            log(f"[data] reading {text.source_member} / {text.target_member} from {archives[text.archive].name}")
            yield from read_parallel_text(text, archives[text.archive])

    validation = read_test_set(corpus.validation, archives[corpus.validation.archive])
    arrays, metadata = encode_translation_corpus(
        training(), validation, settings=corpus.settings, work_file=scratch / "train.tok.clean.en-de.tsv",
        log=log, log_every=log_every)
    metadata["sources"] = [
        {"url": archive.url, "file": path.name, "bytes": path.stat().st_size,
         **({"sha256": archive.sha256} if archive.sha256 else {"md5": archive.md5})}
        for archive, path in archives.items()
    ]
    metadata["training_members"] = [[text.source_member, text.target_member] for text in corpus.training]
    metadata["validation_members"] = [corpus.validation.source_member, corpus.validation.target_member]
    return arrays, metadata


def build_wmt(
    scratch: Path, *, corpus: str, log: Log = log_to_stderr, log_every: int = LOG_EVERY_PAIRS
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Builder for the real WMT16 ("wmt16", task 4a) or WMT17 ("wmt17", task 4b) English→German data.

    Every archive is checksum-verified and reused from scratch when already there.
    """
    arrays, metadata = _build(_corpus(corpus), scratch, log, log_every)
    return arrays, {**metadata, "corpus": corpus, "synthetic": False}


# ------------------------------------------------------------------------------------ look-alike

# A small lexicon with German genders, so articles and adjectives inflect by case, and verbs with
# German participles: the look-alike's German moves the verb (second position after a fronted
# adverb, participle last, verb last after "dass"), so a model must learn some reordering.
_NOUNS = (
    ("cat", "Katze", "f"), ("dog", "Hund", "m"), ("house", "Haus", "n"), ("teacher", "Lehrer", "m"),
    ("child", "Kind", "n"), ("car", "Auto", "n"), ("tree", "Baum", "m"), ("city", "Stadt", "f"),
    ("book", "Buch", "n"), ("woman", "Frau", "f"), ("man", "Mann", "m"), ("letter", "Brief", "m"),
    ("garden", "Garten", "m"), ("school", "Schule", "f"), ("river", "Fluss", "m"),
)  # fmt: skip
_ADJECTIVES = (("small", "klein"), ("old", "alt"), ("big", "groß"), ("new", "neu"), ("red", "rot"))
# (present, past, participle) in English; (present, participle) in German
_VERBS = (
    (("sees", "saw", "seen"), ("sieht", "gesehen")), (("finds", "found", "found"), ("findet", "gefunden")),
    (("likes", "liked", "liked"), ("mag", "gemocht")), (("buys", "bought", "bought"), ("kauft", "gekauft")),
    (("reads", "read", "read"), ("liest", "gelesen")), (("visits", "visited", "visited"), ("besucht", "besucht")),
)  # fmt: skip
_PRESENT_ADVERBS = (("Today", "Heute"), ("Now", "Jetzt"), ("Often", "Oft"))
_ARTICLES = {("the", "nom"): {"m": "der", "f": "die", "n": "das"}, ("the", "acc"): {"m": "den", "f": "die", "n": "das"},
             ("a", "nom"): {"m": "ein", "f": "eine", "n": "ein"}, ("a", "acc"): {"m": "einen", "f": "eine", "n": "ein"}}
_ADJECTIVE_ENDINGS = {("the", "nom"): {"m": "e", "f": "e", "n": "e"}, ("the", "acc"): {"m": "en", "f": "e", "n": "e"},
                      ("a", "nom"): {"m": "er", "f": "e", "n": "es"}, ("a", "acc"): {"m": "en", "f": "e", "n": "es"}}
# Lines real corpora carry and the cleaning steps must drop: no words, more than 80 tokens, a length ratio
# above 9, another script; and one of 80 tokens that passes cleaning but is too long for either task.
_JUNK = (
    ("", ""),
    (" ".join(["word"] * 85), " ".join(["Wort"] * 85)),
    ("Yes.", "Ja, " * 10 + "ja."),
    ("★★★ Tribute to the king of pop ★★★", "★★★ Hommage an den König des Pop ★★★"),
    (" ".join(["house"] * 80), " ".join(["Haus"] * 80)),
)


def _noun_phrase(rng: np.random.Generator, case: str) -> tuple[str, str]:
    english, german, gender = _NOUNS[int(rng.integers(len(_NOUNS)))]
    determiner = "the" if rng.random() < 0.6 else "a"
    article = _ARTICLES[(determiner, case)][gender]
    if rng.random() < 0.4:
        adjective_en, adjective_de = _ADJECTIVES[int(rng.integers(len(_ADJECTIVES)))]
        return (f"{determiner} {adjective_en} {english}",
                f"{article} {adjective_de}{_ADJECTIVE_ENDINGS[(determiner, case)][gender]} {german}")
    return f"{determiner} {english}", f"{article} {german}"


def _capitalized(text: str) -> str:
    return text[0].upper() + text[1:]


def generated_pair(rng: np.random.Generator) -> tuple[str, str]:
    """One English sentence and its German translation, raw (untokenized) as in the WMT files."""
    subject_en, subject_de = _noun_phrase(rng, "nom")
    object_en, object_de = _noun_phrase(rng, "acc")
    (present, past, participle), (verb_de, participle_de) = _VERBS[int(rng.integers(len(_VERBS)))]
    shape = int(rng.integers(5))
    if shape == 0:  # plain present: same order
        return (_capitalized(f"{subject_en} {present} {object_en}."),
                _capitalized(f"{subject_de} {verb_de} {object_de}."))
    if shape == 1:  # perfect: German participle goes last
        return (_capitalized(f"{subject_en} has {participle} {object_en}."),
                _capitalized(f"{subject_de} hat {object_de} {participle_de}."))
    if shape == 2:  # fronted adverb: German verb second, before the subject
        adverb_en, adverb_de = _PRESENT_ADVERBS[int(rng.integers(len(_PRESENT_ADVERBS)))]
        return f"{adverb_en}, {subject_en} {present} {object_en}.", f"{adverb_de} {verb_de} {subject_de} {object_de}."
    if shape == 3:  # "yesterday" with the English past: German perfect, verb second and participle last
        return (f"Yesterday, {subject_en} {past} {object_en}.",
                f"Gestern hat {subject_de} {object_de} {participle_de}.")
    # subordinate clause: German verb last
    return f"I think that {subject_en} {present} {object_en}.", f"Ich denke, dass {subject_de} {object_de} {verb_de}."


def generated_corpus(
    seed: int, *, train_pairs: int, val_pairs: int
) -> tuple[list[list[tuple[str, str]]], list[tuple[str, str]]]:
    """Training pairs in three parts (one per WMT archive, the junk lines in the CommonCrawl part) and
    validation pairs that never occur in training; deterministic per seed."""
    rng = np.random.default_rng(seed)
    train = [generated_pair(rng) for _ in range(train_pairs)]
    seen = set(train)
    validation: list[tuple[str, str]] = []
    while len(validation) < val_pairs:
        pair = generated_pair(rng)
        if pair not in seen:
            seen.add(pair)
            validation.append(pair)
    parts = [list(part) for part in np.array_split(np.arange(train_pairs), 3)]
    split = [[train[i] for i in part] for part in parts]
    split[1][len(split[1]) // 2 : len(split[1]) // 2] = list(_JUNK)
    return split, validation


def build_synthetic_wmt(
    scratch: Path,
    *,
    corpus: str,
    seed: int = 0,
    train_pairs: int = SYNTHETIC_TRAIN_PAIRS,
    val_pairs: int = SYNTHETIC_VAL_PAIRS,
    log: Log = log_to_stderr,
    log_every: int = LOG_EVERY_PAIRS,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Builder for a WMT look-alike: generated pairs written as the corpus's archives, then built like the real one."""
    real = _corpus(corpus)
    generated = Path(scratch) / "generated"
    generated.mkdir(parents=True, exist_ok=True)
    training, validation = generated_corpus(seed, train_pairs=train_pairs, val_pairs=val_pairs)
    local = WmtCorpus(
        tuple(replace(text, archive=write_training_archive(generated, text, part))
              for text, part in zip(real.training, training, strict=True)),
        replace(real.validation, archive=write_test_archive(generated, real.validation, validation),
                segments=val_pairs),
        SYNTHETIC_SETTINGS[corpus],
    )
    log(f"[data] wrote {corpus}-format look-alike archives to {generated}")
    arrays, metadata = _build(local, scratch, log, log_every)
    return arrays, {**metadata, "corpus": corpus, "synthetic": True, "seed": seed}
