import math

import pytest
import sacrebleu

from tasks.runtime.bleu import BLEU_SCHEMES, batch_average_bleu, corpus_bleu, mlperf_bleu_tokenize

pytestmark = pytest.mark.unit

SACRE = "sacrebleu-intl-lowercase"
MLPERF = "mlperf-bleu-tokenize"

# Hand-written German pairs: identical, partly overlapping, case and punctuation differences, umlauts.
HYPOTHESES = [
    "Der Hund läuft über die Straße.",
    "Wir müssen heute Abend früh nach Hause gehen!",
    "Die Regierung hat am Montag neue Gesetze beschlossen.",
    "ÖFFNUNGSZEITEN: täglich von 9 bis 18 Uhr.",
    "Er sagte, dass es 1.000,50 Euro kostet.",
    "Das ist ein schöner Tag.",
]
REFERENCES = [
    "Der Hund läuft über die Straße.",
    "Heute Abend müssen wir früh nach Hause gehen.",
    "Am Montag hat die Regierung neue Gesetze verabschiedet.",
    "Öffnungszeiten: Täglich von 9 bis 18 Uhr.",
    "Er sagte, es koste 1.000,50 Euro.",
    "Was für ein schöner Tag!",
]


def test_sacrebleu_scheme_is_sacrebleu_intl_lowercased():
    expected = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES], tokenize="intl", lowercase=True).score
    assert corpus_bleu(HYPOTHESES, REFERENCES, SACRE) == pytest.approx(expected, abs=1e-9)
    # The sample is one where case matters, so a scheme that forgot to lowercase would fail above.
    cased = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES], tokenize="intl").score
    assert abs(expected - cased) > 1.0


@pytest.mark.parametrize("scheme", BLEU_SCHEMES)
def test_perfect_match_scores_100(scheme):
    assert corpus_bleu(REFERENCES, REFERENCES, scheme) == pytest.approx(100.0)
    assert corpus_bleu([text.title() for text in REFERENCES], REFERENCES, scheme) == pytest.approx(100.0)


def test_no_overlap_scores_zero_in_sacrebleu():
    assert corpus_bleu(["eins zwei drei vier"], ["fünf sechs sieben acht"], SACRE) == 0.0


def test_no_overlap_in_mlperf_scheme_gets_its_exp_smoothing():
    # MLPerf's compute_bleu gives an order with candidates but no match the precision 1 / (2^k * candidates).
    # Candidates of orders 1..4: 4, 3, 2, 1.
    precisions = [1 / (2 * 4), 1 / (4 * 3), 1 / (8 * 2), 1 / (16 * 1)]
    expected = 100 * math.exp(sum(math.log(p) for p in precisions) / 4)
    assert corpus_bleu(["eins zwei drei vier"], ["fünf sechs sieben acht"], MLPERF) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hallo, Welt!", ["Hallo", ",", "Welt", "!"]),
        ("Es kostet 1,000.5 Euro.", ["Es", "kostet", "1,000.5", "Euro", "."]),  # between digits: kept
        ("Im Jahr 1990.", ["Im", "Jahr", "1990."]),  # mteval's quirk: a number's final dot stays on it
        ("3,5 oder ,5 oder 5,", ["3,5", "oder", ",", "5", "oder", "5,"]),  # "5," ends the text: no non-digit beside it
        ("E-Mail an a@b.de (heute)", ["E", "-", "Mail", "an", "a", "@", "b", ".", "de", "(", "heute", ")"]),
        ("5€ + 3$ = 8", ["5", "€", "+", "3", "$", "=", "8"]),  # symbols (category S): always split
        ("„Ja“ – nein…", ["„", "Ja", "“", "–", "nein", "…"]),  # unicode punctuation
        ("Wer?! Um 12:30", ["Wer", "?", "!", "Um", "12:30"]),
        ("x!'1", ["x", "!", "'1"]),  # the reference's non-overlapping scans leave "'" on the digit
        ("a\\b", ["a\\b"]),  # the reference's unescaped character class drops the backslash
        ("Größe", ["Größe"]),
    ],
)
def test_mlperf_tokenizer_splits_punctuation_like_the_reference(text, tokens):
    assert mlperf_bleu_tokenize(text) == tokens


def test_mlperf_scheme_by_hand():
    hypotheses = ["Die Katze sitzt auf der Matte", "Ja ja ja."]
    references = ["die Katze sitzt auf der grünen Matte.", "Ja, sicher."]
    # Tokens: 6 + 4 = 10 against 8 + 4 = 12. Sentence 1 matches 6/6, 4/5, 3/4, 2/3 (not "der matte");
    # sentence 2 ("ja ja ja ." vs "ja , sicher .") matches 2/4 unigrams ("ja" clipped to 1) and nothing longer.
    precisions = [8 / 10, 4 / 8, 3 / 6, 2 / 4]
    brevity = math.exp(1 - 12 / 10)
    expected = 100 * brevity * math.exp(sum(math.log(p) for p in precisions) / 4)
    assert corpus_bleu(hypotheses, references, MLPERF) == pytest.approx(expected)


def test_mlperf_scheme_is_plain_bleu_when_every_order_matches():
    # With a match at every order the reference's smoothing never applies: plain BLEU of its tokens.
    tokenized = [" ".join(mlperf_bleu_tokenize(text.lower())) for text in HYPOTHESES]
    expected = sacrebleu.corpus_bleu(
        tokenized,
        [[" ".join(mlperf_bleu_tokenize(text.lower())) for text in REFERENCES]],
        tokenize="none",
        smooth_method="none",
        force=True,
    ).score
    assert corpus_bleu(HYPOTHESES, REFERENCES, MLPERF) == pytest.approx(expected)


def test_mlperf_scheme_skips_orders_without_candidates():
    # One word: only unigrams exist; the reference leaves orders 2..4 out, so only the brevity penalty is left.
    assert corpus_bleu(["ja"], ["ja bitte"], MLPERF) == pytest.approx(100 * math.exp(1 - 2 / 1))
    assert corpus_bleu([""], ["ja bitte"], MLPERF) == 0.0


def test_batch_average_overstates_corpus_bleu():
    perfect = "Der Hund läuft über die Straße."
    wrong = "Gestern regnete es den ganzen langen Nachmittag ohne Pause"
    hypotheses = [perfect, perfect, wrong, wrong]
    references = [perfect, perfect, "Die Sonne schien.", "Wir blieben zu Hause."]
    for scheme in BLEU_SCHEMES:
        corpus = corpus_bleu(hypotheses, references, scheme)
        average = batch_average_bleu(hypotheses, references, scheme, batch_size=2)
        assert average > corpus + 5  # 50 or more against 42
    assert batch_average_bleu(hypotheses, references, SACRE, batch_size=2) == pytest.approx(50.0)  # (100 + 0) / 2


def test_batch_average_counts_a_short_last_batch_as_one_batch():
    perfect = "Der Hund läuft über die Straße."
    hypotheses = [perfect, perfect, "eins zwei drei vier", "eins zwei drei vier", perfect]
    references = [perfect, perfect, "fünf sechs sieben acht", "fünf sechs sieben acht", perfect]
    # Batches score 100, 0 and 100 (the single last sentence): their mean, not a size-weighted 60.
    assert batch_average_bleu(hypotheses, references, SACRE, batch_size=2) == pytest.approx(200 / 3)


@pytest.mark.parametrize("scheme", BLEU_SCHEMES)
@pytest.mark.parametrize("batch_size", [6, 64])
def test_batch_average_is_corpus_bleu_for_one_batch(scheme, batch_size):
    expected = corpus_bleu(HYPOTHESES, REFERENCES, scheme)
    assert batch_average_bleu(HYPOTHESES, REFERENCES, scheme, batch_size=batch_size) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("hypotheses", "references", "scheme", "message"),
    [
        (["a"], ["a"], "bleu", "unknown BLEU scheme 'bleu'; valid: sacrebleu-intl-lowercase, mlperf-bleu-tokenize"),
        (["a", "b"], ["a"], SACRE, "got 2 hypotheses and 1 references"),
        ([], [], MLPERF, "at least one hypothesis/reference pair"),
    ],
)
def test_errors(hypotheses, references, scheme, message):
    with pytest.raises(ValueError, match=message):
        corpus_bleu(hypotheses, references, scheme)
    with pytest.raises(ValueError, match=message):
        batch_average_bleu(hypotheses, references, scheme)


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="positive number of sentences, got 0"):
        batch_average_bleu(["a"], ["a"], SACRE, batch_size=0)
