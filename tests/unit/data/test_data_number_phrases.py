"""The offline translation demo: num2words phrases in both languages, disjoint splits, the prepared layout."""

from __future__ import annotations

import importlib.metadata
import re
from typing import Any

import numpy as np
import pytest

from tasks.data import catalog
from tasks.data.number_phrases import cardinal, count, date, number_phrases, ordinal, two_counts, year
from tasks.data.subword import detokenize
from tasks.text_ids import SPECIAL_TOKENS

pytestmark = pytest.mark.unit

NAME = "number-phrases-en-de"


def _quiet(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    root = tmp_path_factory.mktemp("data")
    catalog.prepare(NAME, root, log=_quiet)
    return catalog.load(NAME, root), catalog.metadata(NAME, root)


def test_templates_render_real_english_and_german() -> None:
    assert cardinal(21) == ("twenty-one", "einundzwanzig")  # German puts the unit before the ten
    assert cardinal(105) == ("one hundred and five", "einhundertfünf")
    assert count(21, 8) == ("there are twenty-one mice", "es gibt einundzwanzig Mäuse")
    assert count(2, 2, 1) == ("there are two big houses", "es gibt zwei große Häuser")  # the strong plural ending
    assert two_counts(3, 0, 42, 1) == ("three cats and forty-two dogs", "drei Katzen und zweiundvierzig Hunde")
    assert date(3, 5) == ("on the third of May", "am dritten Mai")  # the dative ordinal
    assert date(21, 3, 1999) == ("on the twenty-first of March nineteen ninety-nine",
                                 "am einundzwanzigsten März neunzehnhundertneunundneunzig")
    assert [ordinal(3, noun) for noun in (1, 0, 2)] == [  # the article follows the noun's gender
        ("the third dog", "der dritte Hund"), ("the third cat", "die dritte Katze"),
        ("the third house", "das dritte Haus")]
    assert year(1907) == ("in nineteen oh-seven", "im Jahr neunzehnhundertsieben")


def test_phrases_are_distinct_seeded_and_validation_is_held_out() -> None:
    train, validation = number_phrases(4, train_pairs=300, val_pairs=30)
    assert (train, validation) == number_phrases(4, train_pairs=300, val_pairs=30)
    assert validation != number_phrases(5, train_pairs=300, val_pairs=30)[1]
    assert len(train) == 300 and len(validation) == 30
    sources = [english for english, _ in train + validation]
    assert len(set(sources)) == 330
    assert not {english for english, _ in validation} & {english for english, _ in train}


def test_demo_dataset_has_the_translation_layout(prepared: tuple[dict[str, np.ndarray], dict[str, Any]]) -> None:
    arrays, metadata = prepared
    vocabulary = metadata["vocabulary"]
    assert metadata["train_size"] == 4000 and metadata["val_size"] == 200
    assert vocabulary[:4] == list(SPECIAL_TOKENS) and len(vocabulary) % 8 == 0
    assert metadata["vocab_size"] == len(vocabulary)
    assert metadata["num2words_version"] == importlib.metadata.version("num2words")
    assert metadata["filtering"]["train_dropped_by_clean"] == 0 and metadata["filtering"]["val_dropped_too_long"] == 0
    lengths = {key: np.diff(arrays[f"{key}_offsets"]) for key in ("train_source", "train_target", "val_source")}
    assert all(values.max() <= 16 and values.min() >= 1 for values in lengths.values())  # short phrases
    assert 4 < lengths["train_source"].mean() < 8 and 4 < lengths["train_target"].mean() < 8
    offsets = arrays["val_target_offsets"]
    decoded = [detokenize(arrays["val_target"][a:b], vocabulary, "de") for a, b in zip(offsets[:-1], offsets[1:],
                                                                                          strict=True)]
    assert decoded == metadata["val_references"]


def test_demo_training_set_teaches_the_german_unit_before_ten_order() -> None:
    train, _ = number_phrases(0, train_pairs=4000, val_pairs=200)
    tens = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
    reordered = [de for en, de in train if re.match(rf"there are ({tens})-[a-z]+ ", en)]
    assert len(reordered) > 500 and all(re.match(r"es gibt \w+und\w+(zig|ßig) ", de) for de in reordered)
    templates = {"count": (r"^there are ", 1000), "two counts": (r"^[a-z-]+ [a-z]+ and [a-z-]+ [a-z]+$", 500),
                 "date": (r"^on the [a-z-]+ of [A-Z]", 700), "ordinal": (r"^the [a-z-]+ [a-z]+$", 200),
                 "year": (r"^in ", 100)}
    for template, (pattern, least) in templates.items():
        assert sum(bool(re.search(pattern, en)) for en, _ in train) > least, template


def test_most_demo_references_are_long_enough_for_bleu_4_grams(
    prepared: tuple[dict[str, np.ndarray], dict[str, Any]],
) -> None:
    references = prepared[1]["val_references"]
    assert np.mean([len(reference.split()) >= 4 for reference in references]) > 0.6
