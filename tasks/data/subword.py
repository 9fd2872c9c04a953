"""Moses tokenization, corpus cleaning and a shared byte-pair-encoding (BPE) vocabulary for tasks 4a and 4b.

The steps follow MLPerf GNMT's data preparation (mlcommons/training `rnn_translator/download_dataset.sh`,
which MLBench's task 4a copied): Moses `tokenizer.perl`, `clean-corpus-n.perl ... 1 80`, its
`filter_dataset.py` (latin-1), then subword-nmt's `learn_bpe.py` on the joint German+English text and
`apply_bpe.py`, whose "@@" marks a subword that continues into the next one. The BPE learner here is our
own implementation of the same algorithm (Sennrich et al. 2016). Ids are then given by a vocabulary of
the four special tokens (tasks.text_ids) followed by the training corpus's subwords, most frequent first.

Tokenization does not escape XML characters and detokenization does not unescape them: the subwords
are never written to a Moses-escaped file, so the text keeps its own "&" and "<" both ways.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from itertools import pairwise
from typing import Any

from tasks.text_ids import SPECIAL_TOKENS, UNK, VOCABULARY_MULTIPLE

SEPARATOR = "@@"  # subword-nmt's continuation marker: "Reg@@ ierung" is one word
END_OF_WORD = "</w>"  # the learner's end-of-word mark on a word's last symbol (subword-nmt format 0.2)
FILL_PREFIX = "<fill-"  # vocabulary padding entries "<fill-0>", "<fill-1>", ...
# clean-corpus-n.perl's defaults as MLPerf ran it: 1..80 tokens per side, length ratio at most 9.
CLEAN_MIN_TOKENS = 1
CLEAN_MAX_TOKENS = 80
CLEAN_MAX_RATIO = 9.0
# MLPerf's script runs tokenizer.perl without -a, so hyphenated words stay whole ("twenty-one").
AGGRESSIVE_DASH_SPLITS = False
BPE_MIN_FREQUENCY = 2  # learn_bpe.py's default: a pair seen once is never merged

Pair = tuple[str, str]
TokenPair = tuple[Sequence[str], Sequence[str]]


# ------------------------------------------------------------------------------------------ Moses


@lru_cache(maxsize=8)
def _moses_tokenizer(language: str) -> Any:
    from sacremoses import MosesTokenizer  # lazy: the catalog imports this module without the train extra

    return MosesTokenizer(lang=language)


@lru_cache(maxsize=8)
def _moses_detokenizer(language: str) -> Any:
    from sacremoses import MosesDetokenizer

    return MosesDetokenizer(lang=language)


def moses_tokenize(text: str, language: str) -> list[str]:
    """Moses tokens of one sentence (sacremoses, as tokenizer.perl -l language, without escaping)."""
    tokens: list[str] = _moses_tokenizer(language).tokenize(
        text, aggressive_dash_splits=AGGRESSIVE_DASH_SPLITS, escape=False
    )
    return tokens


def moses_detokenize(tokens: Sequence[str], language: str) -> str:
    """The sentence Moses' detokenizer makes of tokens (no unescaping: tokenization did not escape)."""
    text: str = _moses_detokenizer(language).detokenize(list(tokens), unescape=False)
    return text


def clean_pairs(
    pairs: Iterable[TokenPair],
    *,
    min_tokens: int = CLEAN_MIN_TOKENS,
    max_tokens: int = CLEAN_MAX_TOKENS,
    max_ratio: float = CLEAN_MAX_RATIO,
) -> Iterator[TokenPair]:
    """clean-corpus-n.perl: keep tokenized pairs with min..max tokens per side and a length ratio <= max_ratio.

    The Perl script also deletes "|" (Moses' factor separator) before counting; tokenizer.perl's
    default escaping had already turned every "|" into "&#124;" in MLPerf's pipeline, so no pair lost
    one there, and none does here.
    """
    for source, target in pairs:
        lengths = len(source), len(target)
        if min(lengths) < min_tokens or max(lengths) > max_tokens:
            continue
        if max(lengths) > max_ratio * min(lengths):
            continue
        yield source, target


def is_latin1(tokens: Iterable[str]) -> bool:
    """Whether every token encodes as latin-1 (MLPerf's filter_dataset.py test)."""
    try:
        for token in tokens:
            token.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def latin1_filter(pairs: Iterable[TokenPair]) -> Iterator[TokenPair]:
    """MLPerf GNMT's filter_dataset.py: drop pairs with text that latin-1 cannot encode (other scripts, symbols)."""
    for source, target in pairs:
        if is_latin1(source) and is_latin1(target):
            yield source, target


# ------------------------------------------------------------------------------------ BPE learning


def _word_symbols(word: str) -> list[str]:
    """A word as the learner sees it: its characters, the last one carrying the end-of-word mark."""
    return [*word[:-1], word[-1] + END_OF_WORD]


def _merge_symbols(symbols: list[str], left: str, right: str) -> tuple[list[str], list[int]]:
    """Join every non-overlapping adjacent (left, right), scanning left to right.

    Returns the new symbols and the positions of the joined ones among them.
    """
    merged: list[str] = []
    joined: list[int] = []
    start = 0
    while True:
        try:
            found = symbols.index(left, start)
        except ValueError:
            merged.extend(symbols[start:])
            return merged, joined
        if found + 1 < len(symbols) and symbols[found + 1] == right:
            merged.extend(symbols[start:found])
            joined.append(len(merged))
            merged.append(left + right)
            start = found + 2
        else:
            merged.extend(symbols[start : found + 1])
            start = found + 1


class _PairStatistics:
    """Word segmentations with pair counts kept up to date merge by merge (only words holding the pair change).

    A heap of (-count, pair) entries, refreshed whenever a count changes, gives the most frequent pair;
    entries whose count is out of date are skipped when popped. Ties go to the smallest pair, so the
    merges are a pure function of the word counts.
    """

    def __init__(self, word_counts: Mapping[str, int]) -> None:
        ordered = sorted(word for word, count in word_counts.items() if word and count > 0)
        self.words = [_word_symbols(word) for word in ordered]
        self.counts = [int(word_counts[word]) for word in ordered]
        self.pairs: dict[Pair, int] = defaultdict(int)
        self.where: dict[Pair, set[int]] = defaultdict(set)  # may list words that no longer hold the pair
        self.symbols: dict[str, int] = defaultdict(int)  # corpus frequency of each symbol in use
        for index, (symbols, count) in enumerate(zip(self.words, self.counts, strict=True)):
            for symbol in symbols:
                self.symbols[symbol] += count
            for pair in pairwise(symbols):
                self.pairs[pair] += count
                self.where[pair].add(index)
        self.heap = [(-count, pair) for pair, count in self.pairs.items()]
        heapq.heapify(self.heap)

    def most_frequent(self) -> tuple[Pair, int] | None:
        while self.heap:
            negative, pair = self.heap[0]
            if self.pairs.get(pair, 0) == -negative:
                return pair, -negative
            heapq.heappop(self.heap)
        return None

    def merge(self, pair: Pair) -> None:
        left, right = pair
        changed: set[Pair] = set()
        replaced = 0  # corpus occurrences of the pair that became one symbol
        for index in sorted(self.where.pop(pair, ())):
            old = self.words[index]
            new, joined = _merge_symbols(old, left, right)
            if not joined:
                continue
            count = self.counts[index]
            replaced += len(joined) * count
            # Only pairs touching a merge change: before, the pairs at and beside each merged position
            # (old position of the k-th joined symbol: its new position + k); after, those beside each new symbol.
            before = {p for k, j in enumerate(joined) for p in (j + k - 1, j + k, j + k + 1) if 0 <= p < len(old) - 1}
            after = {p for j in joined for p in (j - 1, j) if 0 <= p < len(new) - 1}
            for position in before:
                old_pair = (old[position], old[position + 1])
                self.pairs[old_pair] -= count
                changed.add(old_pair)
            for position in after:
                new_pair = (new[position], new[position + 1])
                self.pairs[new_pair] += count
                changed.add(new_pair)
                self.where[new_pair].add(index)
            self.words[index] = new
        for symbol, difference in ((left, -replaced), (right, -replaced), (left + right, replaced)):
            self.symbols[symbol] += difference
            if self.symbols[symbol] == 0:
                del self.symbols[symbol]
        for changed_pair in changed:
            count = self.pairs[changed_pair]
            if count > 0:
                heapq.heappush(self.heap, (-count, changed_pair))
            else:
                del self.pairs[changed_pair]


def learn_bpe(
    word_counts: Mapping[str, int],
    *,
    max_merges: int,
    target_vocabulary: int | None = None,
    min_frequency: int = BPE_MIN_FREQUENCY,
    log: Callable[[str], None] | None = None,
    log_every: int = 1000,
) -> list[Pair]:
    """Learn BPE merges from joint word counts (subword-nmt's learn_bpe.py algorithm).

    Stops after max_merges merges, when no pair occurs min_frequency times, or (with target_vocabulary)
    as soon as the special tokens plus the subwords in use on the training words reach target_vocabulary.
    """
    statistics = _PairStatistics(word_counts)
    merges: list[Pair] = []
    while len(merges) < max_merges:
        if target_vocabulary is not None and len(SPECIAL_TOKENS) + len(statistics.symbols) >= target_vocabulary:
            break
        best = statistics.most_frequent()
        if best is None or best[1] < min_frequency:
            break
        statistics.merge(best[0])
        merges.append(best[0])
        if log is not None and len(merges) % log_every == 0:
            log(f"[data] BPE: {len(merges)} merges, {len(statistics.symbols)} subwords in use, "
                f"last {best[0][0]} + {best[0][1]} ({best[1]} times)")
    return merges


# ------------------------------------------------------------------------------------ BPE applying


class BpeModel:
    """Applies learned merges to words as subword-nmt's apply_bpe.py does, with a per-word cache."""

    def __init__(self, merges: Sequence[Pair]) -> None:
        self.merges = list(merges)
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self._cache: dict[str, tuple[str, ...]] = {}

    def segment(self, word: str) -> tuple[str, ...]:
        """A word's subwords, "@@" ending every one but the last: merges applied lowest rank first."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        symbols = _word_symbols(word)
        while len(symbols) > 1:
            ranked = [(self.ranks[pair], pair) for pair in pairwise(symbols) if pair in self.ranks]
            if not ranked:
                break
            _, (left, right) = min(ranked)
            symbols, _ = _merge_symbols(symbols, left, right)
        pieces = (*(symbol + SEPARATOR for symbol in symbols[:-1]), symbols[-1][: -len(END_OF_WORD)])
        self._cache[word] = pieces
        return pieces


def apply_bpe(tokens: Iterable[str], model: BpeModel) -> list[str]:
    """The subwords of a tokenized sentence."""
    return [piece for token in tokens for piece in model.segment(token)]


# ------------------------------------------------------------------------------------- vocabulary


def build_vocabulary(subword_counts: Mapping[str, int]) -> list[str]:
    """SPECIAL_TOKENS, then subwords by frequency (ties alphabetically), padded with "<fill-N>" to a multiple of 8."""
    subwords = sorted((s for s in subword_counts if s not in SPECIAL_TOKENS), key=lambda s: (-subword_counts[s], s))
    vocabulary = [*SPECIAL_TOKENS, *subwords]
    fill = -len(vocabulary) % VOCABULARY_MULTIPLE
    return vocabulary + [f"{FILL_PREFIX}{i}>" for i in range(fill)]


def vocabulary_index(vocabulary: Sequence[str]) -> dict[str, int]:
    return {token: index for index, token in enumerate(vocabulary)}


def encode(tokens: Iterable[str], index: Mapping[str, int]) -> list[int]:
    """Ids of subwords; a subword the vocabulary lacks becomes UNK."""
    return [index.get(token, UNK) for token in tokens]


def detokenize(ids: Iterable[int], vocabulary: Sequence[str], language: str) -> str:
    """Text of subword ids: specials and fill entries dropped, "@@ " joins removed, then Moses-detokenized."""
    subwords = []
    for raw_id in ids:
        token = vocabulary[int(raw_id)]
        if int(raw_id) >= len(SPECIAL_TOKENS) and not token.startswith(FILL_PREFIX):
            subwords.append(token)
    text = " ".join(subwords).replace(SEPARATOR + " ", "")
    if text.endswith(SEPARATOR):  # a sentence cut after a continuing subword
        text = text[: -len(SEPARATOR)]
    return moses_detokenize(text.split(), language)
