"""Corpus BLEU of detokenized translations, scored the way each reference implementation scores it.

Two schemes, because tasks 4a and 4b follow different MLPerf references and their numbers differ by
tenths of a point on the same output:

- "sacrebleu-intl-lowercase" (4a, MLPerf GNMT): sacrebleu corpus BLEU with the international
  tokenizer, lowercased, sacrebleu's default "exp" smoothing.
- "mlperf-bleu-tokenize" (4b, MLPerf transformer, translation/tensorflow/transformer/compute_bleu.py
  with utils/metrics.py): lowercase, split punctuation and symbols with its `bleu_tokenize` rule, then
  tensor2tensor's corpus BLEU (its own zero-match smoothing, see `_mlperf_bleu`).

`batch_average_bleu` is MLBench's validation figure: BLEU per batch, averaged over batches. It is not a
corpus BLEU (short batches with lucky n-grams weigh as much as long ones) and is kept only to compare
with MLBench's published curves.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from functools import lru_cache

import sacrebleu

from tasks.spec import BLEU_SCHEMES

MAX_ORDER = 4  # n-grams of 1..4 words, in both schemes


def corpus_bleu(hypotheses: list[str], references: list[str], scheme: str) -> float:
    """BLEU (0..100) of `hypotheses` against one reference each, both detokenized text."""
    _check(hypotheses, references, scheme)
    if scheme == "sacrebleu-intl-lowercase":
        return float(sacrebleu.corpus_bleu(hypotheses, [references], tokenize="intl", lowercase=True).score)
    return _mlperf_bleu(
        [mlperf_bleu_tokenize(text.lower()) for text in hypotheses],
        [mlperf_bleu_tokenize(text.lower()) for text in references],
    )


def batch_average_bleu(hypotheses: list[str], references: list[str], scheme: str, batch_size: int = 64) -> float:
    """The mean of `corpus_bleu` over consecutive batches of `batch_size` sentences (the last may be shorter)."""
    _check(hypotheses, references, scheme)
    if batch_size < 1:
        raise ValueError(f"BLEU batch size must be a positive number of sentences, got {batch_size}")
    scores = [
        corpus_bleu(hypotheses[start : start + batch_size], references[start : start + batch_size], scheme)
        for start in range(0, len(hypotheses), batch_size)
    ]
    return sum(scores) / len(scores)


def mlperf_bleu_tokenize(text: str) -> list[str]:
    """MLPerf transformer's `bleu_tokenize` (after mteval-v14): every symbol becomes a token of its own, and so
    does punctuation next to a non-digit, which keeps "1,000.5" whole (and, as in mteval, "1990." at the very
    end of a sentence).

    The reference does this with two left-to-right regex substitutions whose matches cannot overlap, and
    that decides runs of punctuation, so we replay both scans: pass 1 splits a punctuation character after a
    non-digit unless that non-digit is punctuation pass 1 just split; pass 2 splits one before a non-digit
    unless pass 2 just consumed it as the non-digit after its left neighbour. So "!'1" yields "!", "'1"."""
    length = len(text)
    punctuation = [_is_punctuation(char) for char in text]
    after_nondigit = [False] * length  # pass 1: "(non-digit)(punctuation)" -> both padded
    for index in range(1, length):
        after_nondigit[index] = punctuation[index] and not text[index - 1].isdecimal() and not after_nondigit[index - 1]
    before_nondigit = [False] * length  # pass 2: "(punctuation)(non-digit)" on pass 1's output
    for index in range(length - 1):
        # Pass 1 padded the gap to the left neighbour with a space when either side was split there.
        adjacent_on_left = index > 0 and not after_nondigit[index - 1] and not after_nondigit[index]
        consumed = adjacent_on_left and before_nondigit[index - 1]
        before_nondigit[index] = punctuation[index] and not text[index + 1].isdecimal() and not consumed
    pieces = [
        f" {char} " if after_nondigit[index] or before_nondigit[index] or _is_symbol(char) else char
        for index, char in enumerate(text)
    ]
    return "".join(pieces).split()


@lru_cache(maxsize=4096)
def _is_punctuation(char: str) -> bool:
    # The reference builds its punctuation class from all \p{P} characters without escaping them, so the
    # backslash only escapes the following "]" and is itself never split off; we keep that quirk.
    return char != "\\" and unicodedata.category(char).startswith("P")


@lru_cache(maxsize=4096)
def _is_symbol(char: str) -> bool:
    return unicodedata.category(char).startswith("S")


def _mlperf_bleu(hypotheses: list[list[str]], references: list[list[str]]) -> float:
    """tensor2tensor's `compute_bleu` as MLPerf's transformer uses it, times 100.

    Matches are clipped by the reference counts. An order with candidates but no match gets precision
    1 / (2^k * candidates), k counting such orders so far (the mteval "exp" rule); an order with no
    candidates at all is left out of the log sum but still counted in the divisor of 4. So, unlike
    sacrebleu, a corpus with no match at all scores above zero."""
    matches = [0] * MAX_ORDER
    candidates = [0] * MAX_ORDER
    hypothesis_length = sum(len(tokens) for tokens in hypotheses)
    reference_length = sum(len(tokens) for tokens in references)
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        hypothesis_counts = _ngram_counts(hypothesis)
        reference_counts = _ngram_counts(reference)
        for ngram, count in hypothesis_counts.items():
            candidates[len(ngram) - 1] += count
            matches[len(ngram) - 1] += min(count, reference_counts[ngram])
    if hypothesis_length == 0:
        return 0.0  # the reference divides by zero here; an empty output has no n-gram to credit
    log_sum = 0.0
    halvings = 1.0
    for matched, total in zip(matches, candidates, strict=True):
        if total == 0:
            continue
        if matched == 0:
            halvings *= 2
            log_sum += math.log(1.0 / (halvings * total))
        else:
            log_sum += math.log(matched / total)
    ratio = hypothesis_length / reference_length if reference_length else math.inf
    brevity_penalty = math.exp(1 - 1 / ratio) if ratio < 1.0 else 1.0
    return 100.0 * math.exp(log_sum / MAX_ORDER) * brevity_penalty


def _ngram_counts(tokens: list[str]) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for order in range(1, MAX_ORDER + 1):
        for start in range(len(tokens) - order + 1):
            counts[tuple(tokens[start : start + order])] += 1
    return counts


def _check(hypotheses: list[str], references: list[str], scheme: str) -> None:
    if scheme not in BLEU_SCHEMES:
        raise ValueError(f"unknown BLEU scheme {scheme!r}; valid: {', '.join(BLEU_SCHEMES)}")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"BLEU needs one reference per hypothesis, got {len(hypotheses)} hypotheses and "
            f"{len(references)} references"
        )
    if not hypotheses:
        raise ValueError("BLEU needs at least one hypothesis/reference pair, got none")
