"""`number-phrases-en-de`: real English and German number phrases, a translation demo that ships offline.

Numbers are rendered by num2words in both languages (German puts the unit before the ten:
"twenty-one" → "einundzwanzig"); the nouns with their German genders and plurals, the adjective
endings and the months are written out below. Templates:

- counts: "there are twenty-one small mice" → "es gibt einundzwanzig kleine Mäuse";
- two counts: "three cats and forty-two dogs" → "drei Katzen und zweiundvierzig Hunde";
- dates, some with a year: "on the third of May nineteen ninety-nine" → "am dritten Mai
  neunzehnhundertneunundneunzig";
- ordinals, agreeing with the noun's gender: "the third dog" → "der dritte Hund", "the third cat" →
  "die dritte Katze";
- cardinals up to 999 ("one hundred and five" → "einhundertfünf") and years ("in nineteen oh-seven" →
  "im Jahr neunzehnhundertsieben").

Most phrases use numbers below 100, so each German number word recurs dozens of times and a small
model learns it quickly; hundreds and years are one of a kind and must be composed from subwords.
Most phrases have four words or more: corpus BLEU counts matching 4-grams, which a corpus of two- and
three-word phrases hardly has. Pairs are drawn in a seeded order without repeats and the validation
pairs never occur in training. They then go through the WMT pipeline unchanged (Moses tokenization,
cleaning, a shared BPE).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from tasks.data.download import Log, log_to_stderr
from tasks.data.wmt import SubwordSettings, encode_translation_corpus
from tasks.errors import DataError

DEMO_TRAIN_PAIRS = 4000
DEMO_VAL_PAIRS = 200
DEMO_SETTINGS = SubwordSettings(max_merges=400, target_vocabulary=None, train_max_subwords=32, val_max_subwords=32)

_MONTHS = (
    ("January", "Januar", 31), ("February", "Februar", 28), ("March", "März", 31), ("April", "April", 30),
    ("May", "Mai", 31), ("June", "Juni", 30), ("July", "Juli", 31), ("August", "August", 31),
    ("September", "September", 30), ("October", "Oktober", 31), ("November", "November", 30),
    ("December", "Dezember", 31),
)  # fmt: skip
# (English singular, English plural, German singular, German plural, German gender): num2words knows
# numbers, not nouns.
_NOUNS = (
    ("cat", "cats", "Katze", "Katzen", "f"), ("dog", "dogs", "Hund", "Hunde", "m"),
    ("house", "houses", "Haus", "Häuser", "n"), ("child", "children", "Kind", "Kinder", "n"),
    ("book", "books", "Buch", "Bücher", "n"), ("tree", "trees", "Baum", "Bäume", "m"),
    ("city", "cities", "Stadt", "Städte", "f"), ("apple", "apples", "Apfel", "Äpfel", "m"),
    ("mouse", "mice", "Maus", "Mäuse", "f"), ("day", "days", "Tag", "Tage", "m"),
    ("year", "years", "Jahr", "Jahre", "n"), ("bird", "birds", "Vogel", "Vögel", "m"),
)  # fmt: skip
_ARTICLES = {"m": "der", "f": "die", "n": "das"}  # nominative, definite
# Adjectives before a plural noun without an article take the strong ending "-e" in German.
_ADJECTIVES = (("small", "kleine"), ("big", "große"), ("old", "alte"), ("new", "neue"), ("red", "rote"),
               ("black", "schwarze"))

Pair = tuple[str, str]
_T = TypeVar("_T")


def _words(number: int, language: str, to: str = "cardinal") -> str:
    from num2words import num2words  # lazy: the catalog imports this module without the train extra

    return str(num2words(number, lang=language, to=to))


def _plural(number: int, noun: int, adjective: int | None) -> Pair:
    """"twenty-one small mice" → "einundzwanzig kleine Mäuse" (the adjective is optional)."""
    _, plural_en, _, plural_de, _ = _NOUNS[noun]
    if adjective is not None:
        plural_en, plural_de = f"{_ADJECTIVES[adjective][0]} {plural_en}", f"{_ADJECTIVES[adjective][1]} {plural_de}"
    return f"{_words(number, 'en')} {plural_en}", f"{_words(number, 'de')} {plural_de}"


def count(number: int, noun: int, adjective: int | None = None) -> Pair:
    english, german = _plural(number, noun, adjective)
    return f"there are {english}", f"es gibt {german}"


def two_counts(first: int, first_noun: int, second: int, second_noun: int) -> Pair:
    (first_en, first_de), (second_en, second_de) = _plural(first, first_noun, None), _plural(second, second_noun, None)
    return f"{first_en} and {second_en}", f"{first_de} und {second_de}"


def date(day: int, month: int, year: int | None = None) -> Pair:
    """"on the third of May" → "am dritten Mai" (the dative ordinal), optionally followed by a year."""
    month_en, month_de, _ = _MONTHS[month - 1]
    english = f"on the {_words(day, 'en', 'ordinal')} of {month_en}"
    german = f"am {_words(day, 'de', 'ordinal')}n {month_de}"
    if year is None:
        return english, german
    return f"{english} {_words(year, 'en', 'year')}", f"{german} {_words(year, 'de', 'year')}"


def ordinal(number: int, noun: int) -> Pair:
    singular_en, _, singular_de, _, gender = _NOUNS[noun]
    return (f"the {_words(number, 'en', 'ordinal')} {singular_en}",
            f"{_ARTICLES[gender]} {_words(number, 'de', 'ordinal')} {singular_de}")


def cardinal(number: int) -> Pair:
    return _words(number, "en"), _words(number, "de")


def year(number: int) -> Pair:
    return f"in {_words(number, 'en', 'year')}", f"im Jahr {_words(number, 'de', 'year')}"


# (template, weight): how often each is drawn.
_TEMPLATE_WEIGHTS = (("count", 0.35), ("two_counts", 0.2), ("date", 0.25), ("ordinal", 0.1), ("cardinal", 0.05),
                     ("year", 0.05))
Key = tuple[str, int, int, int, int]


def _pick(rng: np.random.Generator, weighted: Sequence[tuple[_T, float]]) -> _T:
    draw, total = rng.random(), 0.0
    for item, weight in weighted:
        total += weight
        if draw < total:
            return item
    return weighted[-1][0]


def _draw(rng: np.random.Generator) -> Key:
    """A phrase's identity: its template and numbers (distinct keys render distinct English phrases)."""
    template = _pick(rng, _TEMPLATE_WEIGHTS)
    nouns = len(_NOUNS)
    if template == "count":  # the last field: an adjective's index + 1, or 0 for none
        adjective = int(rng.integers(1, len(_ADJECTIVES) + 1)) if rng.random() < 0.5 else 0
        return template, int(rng.integers(2, 100)), int(rng.integers(nouns)), adjective, 0
    if template == "two_counts":
        return template, int(rng.integers(2, 100)), int(rng.integers(nouns)), int(rng.integers(2, 100)), \
            int(rng.integers(nouns))
    if template == "date":  # the last field: a year, or 0 for none
        month = int(rng.integers(1, 13))
        day = int(rng.integers(1, _MONTHS[month - 1][2] + 1))
        return template, day, month, int(rng.integers(1900, 2100)) if rng.random() < 0.5 else 0, 0
    if template == "ordinal":
        return template, int(rng.integers(1, 100)), int(rng.integers(nouns)), 0, 0
    if template == "cardinal":
        return template, int(rng.integers(100, 1000)), 0, 0, 0
    return template, int(rng.integers(1900, 2100)), 0, 0, 0


def _render(key: Key) -> Pair:
    template, a, b, c, d = key
    if template == "count":
        return count(a, b, c - 1 if c else None)
    if template == "two_counts":
        return two_counts(a, b, c, d)
    if template == "date":
        return date(a, b, c or None)
    if template == "ordinal":
        return ordinal(a, b)
    if template == "cardinal":
        return cardinal(a)
    return year(a)


def number_phrases(seed: int, *, train_pairs: int, val_pairs: int) -> tuple[list[Pair], list[Pair]]:
    """(train, validation) pairs: distinct phrases in a seeded order, validation a seeded sample of them."""
    rng = np.random.default_rng(seed)
    keys: dict[Key, None] = {}  # insertion-ordered set
    for _ in range(20 * (train_pairs + val_pairs)):
        if len(keys) == train_pairs + val_pairs:
            break
        keys.setdefault(_draw(rng))
    else:
        raise DataError(f"cannot draw {train_pairs + val_pairs} distinct number phrases; ask for fewer")
    pairs = [_render(key) for key in keys]
    held_out = set(rng.choice(len(pairs), size=val_pairs, replace=False).tolist())
    train = [pair for i, pair in enumerate(pairs) if i not in held_out]
    validation = [pair for i, pair in enumerate(pairs) if i in held_out]
    return train, validation


def build_number_phrases(
    scratch: Path,
    *,
    seed: int = 0,
    train_pairs: int = DEMO_TRAIN_PAIRS,
    val_pairs: int = DEMO_VAL_PAIRS,
    log: Log = log_to_stderr,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Builder for the offline demo: generate the phrases, then tokenize and BPE them as WMT is."""
    train, validation = number_phrases(seed, train_pairs=train_pairs, val_pairs=val_pairs)
    scratch = Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    arrays, metadata = encode_translation_corpus(
        train, validation, settings=DEMO_SETTINGS, work_file=scratch / "number-phrases.tok.tsv", log=log)
    version = importlib.metadata.version("num2words")
    log(f"[data] number phrases (num2words {version}): {metadata['train_size']} training and "
        f"{metadata['val_size']} validation pairs, vocabulary {metadata['vocab_size']}")
    return arrays, {**metadata, "source": f"num2words {version} (generated English/German number phrases)",
                    "num2words_version": version, "seed": seed, "synthetic": False}
