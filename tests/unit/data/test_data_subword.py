"""Moses wrappers, corpus filters, the BPE learner and applier, vocabulary, ids and detokenization."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import numpy as np
import pytest

from tasks.data.subword import (
    BpeModel,
    apply_bpe,
    build_vocabulary,
    clean_pairs,
    detokenize,
    encode,
    latin1_filter,
    learn_bpe,
    moses_detokenize,
    moses_tokenize,
    vocabulary_index,
)
from tasks.text_ids import SPECIAL_TOKENS, UNK

pytestmark = pytest.mark.unit

# Sennrich et al.'s example corpus: word -> count.
WORDS = {"low": 5, "lower": 2, "newest": 6, "widest": 3}
# Worked out by hand: most frequent pair first, ties to the smallest pair ("e","s" before "s","t</w>").
FIRST_SIX_MERGES = [("e", "s"), ("es", "t</w>"), ("l", "o"), ("e", "w"), ("ew", "est</w>"), ("n", "ewest</w>")]
SENTENCES = {
    "en": ["The cat's owner said: \"It costs $3.50 (about €3).\"", "Non-governmental groups met in New York."],
    "de": ["Er sagte: „Das ist 3,5 % mehr.“", "Die Nicht-Regierungs-Organisation (NRO) traf sich in Köln."],
}


def test_learner_finds_the_hand_computed_merges_and_stops_when_no_pair_repeats() -> None:
    assert learn_bpe(WORDS, max_merges=6) == FIRST_SIX_MERGES
    merges = learn_bpe(WORDS, max_merges=100)
    assert merges[:6] == FIRST_SIX_MERGES
    assert merges[6:] == [("lo", "w</w>"), ("d", "est</w>"), ("i", "dest</w>"), ("w", "idest</w>"),
                          ("e", "r</w>"), ("lo", "w"), ("low", "er</w>")]  # then every word is one symbol
    assert learn_bpe(WORDS, max_merges=100, min_frequency=4) == merges[:7]  # the last pair seen 4+ times: lo + w</w>


def _reference_learner(words: dict[str, int], max_merges: int) -> list[tuple[str, str]]:
    """The algorithm written plainly: recount every pair before each merge."""
    segmented = {word: [*word[:-1], word[-1] + "</w>"] for word in words}
    merges: list[tuple[str, str]] = []
    while len(merges) < max_merges:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, symbols in segmented.items():
            for pair in pairwise(symbols):
                pairs[pair] += words[word]
        if not pairs or max(pairs.values()) < 2:
            return merges
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        for word, symbols in segmented.items():
            merged, i = [], 0
            while i < len(symbols):
                if symbols[i : i + 2] == list(best):
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            segmented[word] = merged
    return merges


def test_incremental_learner_matches_recounting_from_scratch() -> None:
    rng = np.random.default_rng(7)
    # a small alphabet gives long repeats ("aaab", "abab") whose overlapping pairs are the tricky case
    words = {"".join(rng.choice(list("aab"), size=int(rng.integers(1, 9)))): int(rng.integers(1, 6)) for _ in range(80)}
    words.update({"aaaaaa": 3, "abababab": 2, "babab": 4})
    assert learn_bpe(words, max_merges=200) == _reference_learner(words, 200)


def test_learner_is_deterministic_whatever_the_order_of_the_counts() -> None:
    words = Counter("the cat sat on the mat with the other cat and a bat".split() * 3)
    reordered = dict(reversed(list(words.items())))
    assert learn_bpe(words, max_merges=20) == learn_bpe(reordered, max_merges=20)


def test_learner_stops_when_the_vocabulary_reaches_the_target() -> None:
    # 11 distinct symbols (l, o, w</w>, w, e, r</w>, n, s, t</w>, i, d) plus the 4 specials: already there
    assert learn_bpe(WORDS, max_merges=100, target_vocabulary=len(SPECIAL_TOKENS) + 11) == []
    text = ("the quick brown fox jumps over the lazy dog while the cat watches the birds sing in the trees and "
            "the children play football in the park near the river bank every sunday morning before breakfast")
    words = Counter({word: 2 + i % 3 for i, word in enumerate(text.split())})
    unlimited = learn_bpe(words, max_merges=1000)

    def vocabulary_after(merges: int) -> int:  # specials plus the subwords of the words, as applied
        model = BpeModel(unlimited[:merges])
        return len(SPECIAL_TOKENS) + len({piece for word in words for piece in model.segment(word)})

    merges = learn_bpe(words, max_merges=1000, target_vocabulary=50)
    assert merges == unlimited[: len(merges)]
    assert vocabulary_after(len(merges)) == 50
    assert all(vocabulary_after(k) < 50 for k in range(len(merges)))
    assert max(vocabulary_after(k) for k in range(len(unlimited))) > 50  # the target is not merely the peak


def test_applier_uses_merges_by_rank_and_marks_continuations() -> None:
    full = BpeModel(learn_bpe(WORDS, max_merges=100))
    assert full.segment("lowest") == ("low@@", "est")
    assert full.segment("newest") == ("newest",)
    partial = BpeModel(FIRST_SIX_MERGES)
    assert partial.segment("lowest") == ("lo@@", "w@@", "est")
    assert partial.segment("x") == ("x",)
    assert apply_bpe(["lowest", "newest", "!"], partial) == ["lo@@", "w@@", "est", "newest", "!"]


@pytest.mark.parametrize("language", ["en", "de"])
def test_bpe_ids_detokenize_to_the_moses_detokenized_text(language: str) -> None:
    tokenized = [moses_tokenize(sentence, language) for sentence in SENTENCES[language]]
    words = Counter(token for tokens in tokenized for token in tokens)
    model = BpeModel(learn_bpe(words, max_merges=15, min_frequency=1))
    counts = Counter(piece for tokens in tokenized for piece in apply_bpe(tokens, model))
    vocabulary = build_vocabulary(counts)
    index = vocabulary_index(vocabulary)
    for tokens in tokenized:
        pieces = apply_bpe(tokens, model)
        ids = encode(pieces, index)
        assert UNK not in ids
        assert detokenize(ids, vocabulary, language) == moses_detokenize(tokens, language)
    # the raw text comes back up to Moses' own normalisation of spaces
    assert detokenize(encode(apply_bpe(tokenized[1], model), index), vocabulary, language) == SENTENCES[language][1]


def test_tokenizer_keeps_text_unescaped_and_hyphenated_words_whole() -> None:
    assert moses_tokenize("AT&T's <b> twenty-one", "en") == ["AT", "&", "T", "'s", "<", "b", ">", "twenty-one"]
    assert moses_detokenize(["Tom", "&", "Jerry", "&amp;"], "en") == "Tom & Jerry &amp;"


def test_clean_pairs_keeps_1_to_80_tokens_a_side_and_ratio_at_most_9() -> None:
    def pair(source: int, target: int) -> tuple[list[str], list[str]]:
        return ["a"] * source, ["b"] * target

    pairs = [pair(0, 1), pair(1, 0), pair(1, 1), pair(80, 80), pair(81, 80), pair(80, 81),
             pair(1, 9), pair(9, 1), pair(1, 10), pair(10, 1), pair(5, 45), pair(5, 46)]
    kept = [(len(source), len(target)) for source, target in clean_pairs(pairs)]
    assert kept == [(1, 1), (80, 80), (1, 9), (9, 1), (5, 45)]
    assert [(len(s), len(t)) for s, t in clean_pairs(pairs, max_tokens=9)] == [(1, 1), (1, 9), (9, 1)]
    assert [(len(s), len(t)) for s, t in clean_pairs(pairs, max_ratio=1.0)] == [(1, 1), (80, 80)]


def test_latin1_filter_drops_pairs_with_other_scripts_or_symbols() -> None:
    pairs = [
        (["Grüße", "aus", "Köln", "«ça»"], ["Grüße"]),
        (["★★★", "Hommage"], ["Hommage"]),
        (["hello"], ["Привет"]),
        (["price", "€5"], ["Preis"]),  # the euro sign is not latin-1 either
    ]
    assert list(latin1_filter(pairs)) == [pairs[0]]


def test_vocabulary_specials_first_then_frequency_then_alphabet_padded_to_8() -> None:
    vocabulary = build_vocabulary({"b": 3, "a": 3, "c@@": 5, "<unk>": 9, "d": 1})
    assert vocabulary[:4] == list(SPECIAL_TOKENS)
    assert vocabulary[4:8] == ["c@@", "a", "b", "d"]  # a literal "<unk>" is the special, not a second entry
    assert vocabulary[8:] == [] and len(vocabulary) % 8 == 0
    longer = build_vocabulary({f"w{i}": 1 for i in range(5)})
    assert len(longer) == 16 and longer[9:] == [f"<fill-{i}>" for i in range(7)]


def test_encode_maps_unknown_subwords_to_unk_and_detokenize_drops_specials_and_fill() -> None:
    vocabulary = build_vocabulary({"Haus@@": 2, "tür": 2, "auf": 1, ".": 1, "!": 1})
    index = vocabulary_index(vocabulary)
    assert encode(["Haus@@", "tür", "zu"], index) == [index["Haus@@"], index["tür"], UNK]
    fill = vocabulary.index("<fill-0>")
    ids = [2, index["Haus@@"], index["tür"], 0, UNK, fill, index["auf"], index["."], 3]
    assert detokenize(ids, vocabulary, "de") == "Haustür auf."
    assert detokenize([index["auf"], index["Haus@@"]], vocabulary, "de") == "auf Haus"  # cut mid-word
