"""Beam search against small hand-made models that implement the decoder interface
(encode / init_state / decode_step / reorder), so the winners and scores are known by hand."""

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from tasks.errors import UserError
from tasks.runtime.beam_search import BeamSettings, beam_search
from tasks.text_ids import BOS, EOS, PAD, UNK

pytestmark = pytest.mark.unit

V = 8
A, B, C, D = 4, 5, 6, 7
OUTPUTS = (UNK, EOS, A, B, C, D)  # every id but PAD and BOS, which beam search never emits

Prefix = tuple[int, ...]


def dist(probs: dict[int, float]) -> list[float]:
    """A distribution over the vocabulary: the given probabilities, the rest spread evenly over the
    other output tokens (PAD and BOS get 0)."""
    rest = [t for t in OUTPUTS if t not in probs]
    share = (1.0 - sum(probs.values())) / len(rest) if rest else 0.0
    return [probs.get(t, share if t in rest else 0.0) for t in range(V)]


class TableModel:
    """Next-token probabilities (and optionally attention) as a function of the generated prefix;
    the source only sets the attention's width. State: each row's inputs so far (BOS first)."""

    def __init__(
        self,
        probs: Callable[[Prefix], list[float]],
        attention: Callable[[Prefix], list[float]] | None = None,
    ) -> None:
        self.probs, self.attention = probs, attention
        self.steps = 0  # decode_step calls

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> torch.Tensor:
        return src

    def init_state(self, encoded: torch.Tensor) -> list[Prefix]:
        return [() for _ in range(encoded.shape[0])]

    def decode_step(
        self, encoded: torch.Tensor, state: list[Prefix], tokens: torch.Tensor
    ) -> tuple[torch.Tensor, list[Prefix], torch.Tensor | None]:
        self.steps += 1
        state = [inputs + (token,) for inputs, token in zip(state, tokens.tolist(), strict=True)]
        log_probs = torch.tensor([self.probs(inputs[1:]) for inputs in state], dtype=torch.float64).log()
        if self.attention is None:
            return log_probs, state, None
        width = encoded.shape[1]
        rows = [(self.attention(inputs[1:]) + [0.0] * width)[:width] for inputs in state]
        return log_probs, state, torch.tensor(rows, dtype=torch.float64)

    def reorder(
        self, encoded: torch.Tensor, state: list[Prefix], index: torch.Tensor
    ) -> tuple[torch.Tensor, list[Prefix]]:
        return encoded[index], [state[i] for i in index.tolist()]


def table(entries: dict[Prefix, dict[int, float]], default: dict[int, float]) -> Callable[[Prefix], list[float]]:
    return lambda prefix: dist(entries.get(prefix, default))


def gnmt_score(log_prob: float, length: int, alpha: float, c: float = 5.0) -> float:
    """Written out independently of the module: log p / ((c + |Y|) / (c + 1)) ** alpha, |Y| with EOS."""
    return log_prob / math.pow((c + length) / (c + 1), alpha)


def sequence_log_prob(probs: Callable[[Prefix], list[float]], tokens: Prefix) -> float:
    return sum(math.log(probs(tokens[:i])[token]) for i, token in enumerate(tokens))


def one_source(length: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((1, length), A), torch.tensor([length])


# (a) Step 1 favours A (0.5 > 0.4) but A's continuations are poor; B then EOS is the best sequence.
TRAP = table({(): {A: 0.5, B: 0.4}, (A,): {EOS: 0.3}, (B,): {EOS: 0.9}}, default={EOS: 0.5})


def brute_force_best(probs: Callable[[Prefix], list[float]], max_length: int, alpha: float) -> float:
    """The best normalized score over every sequence: ended by EOS, or cut at max_length."""
    best = -math.inf
    stack: list[Prefix] = [()]
    while stack:
        prefix = stack.pop()
        for token in OUTPUTS:
            tokens = prefix + (token,)
            if token == EOS or len(tokens) == max_length:
                best = max(best, gnmt_score(sequence_log_prob(probs, tokens), len(tokens), alpha))
            else:
                stack.append(tokens)
    return best


def hypothesis_score(probs: Callable[[Prefix], list[float]], ids: list[int], max_length: int, alpha: float) -> float:
    tokens = tuple(ids) if len(ids) == max_length else tuple(ids) + (EOS,)  # shorter ones ended with EOS
    return gnmt_score(sequence_log_prob(probs, tokens), len(tokens), alpha)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_finds_the_best_sequence_that_greedy_misses(alpha: float) -> None:
    src, lengths = one_source()
    settings = BeamSettings(2, max_length=4, length_penalty=alpha)
    best = brute_force_best(TRAP, 4, alpha)

    [found] = beam_search(TableModel(TRAP), src, lengths, settings)
    assert found == [B]
    assert hypothesis_score(TRAP, found, 4, alpha) == pytest.approx(best, abs=1e-12)

    [greedy] = beam_search(TableModel(TRAP), src, lengths, BeamSettings(1, max_length=4, length_penalty=alpha))
    assert greedy == [A]
    assert hypothesis_score(TRAP, greedy, 4, alpha) < best - 0.5


# (b) Short [A] (p = 0.45 * 0.8 = 0.36, log -1.0217, |Y| = 2) against long [B, C, D]
# (p = 0.45 * 0.9^3 = 0.32805, log -1.1145, |Y| = 4). Raw log-prob: short wins. With alpha 0.6, c 5:
# short -1.0217 / (7/6)^0.6 = -1.0217 / 1.0969 = -0.9314, long -1.1145 / (9/6)^0.6 = -1.1145 / 1.2754 = -0.8738:
# long wins. Beam 2 keeps both until they end (checked by hand: they are the top two at every step).
SHORT_OR_LONG = table(
    {(): {A: 0.45, B: 0.45}, (A,): {EOS: 0.8}, (B,): {C: 0.9}, (B, C): {D: 0.9}, (B, C, D): {EOS: 0.9}},
    default={EOS: 0.5},
)


@pytest.mark.parametrize(("alpha", "winner"), [(0.0, [A]), (0.6, [B, C, D])])
def test_length_penalty_decides_between_short_and_long(alpha: float, winner: list[int]) -> None:
    short, long = sequence_log_prob(SHORT_OR_LONG, (A, EOS)), sequence_log_prob(SHORT_OR_LONG, (B, C, D, EOS))
    assert (gnmt_score(long, 4, alpha) > gnmt_score(short, 2, alpha)) == (winner == [B, C, D])  # the hand sums
    src, lengths = one_source()
    settings = BeamSettings(2, max_length=10, length_penalty=alpha, length_penalty_constant=5.0)
    assert beam_search(TableModel(SHORT_OR_LONG), src, lengths, settings) == [winner]


# |Y| counts the EOS (as MLBench's Transformer decoder): short [A] has |Y| = 2, long [B, C, D] |Y| = 4.
# Short: log(0.45 * 0.8) = -1.0217 / (7/6)^0.6 = -0.9314; long: log(0.45 * 0.8745^3) = -1.2008 / (9/6)^0.6 = -0.9416:
# short wins. Without the EOS (|Y| = 1 and 3) long would win: -1.0217 / 1 < -1.2008 / (8/6)^0.6 = -1.0104.
CLOSE_CALL = table(
    {(): {A: 0.45, B: 0.45}, (A,): {EOS: 0.8}, (B,): {C: 0.8745}, (B, C): {D: 0.8745}, (B, C, D): {EOS: 0.8745}},
    default={EOS: 0.5},
)


def test_length_penalty_counts_the_eos() -> None:
    src, lengths = one_source()
    settings = BeamSettings(2, max_length=10, length_penalty=0.6)
    assert beam_search(TableModel(CLOSE_CALL), src, lengths, settings) == [[A]]


# (c) Source of 2 words (+1 padding column). [A] is likelier (0.5 * 0.6 = 0.30 against
# 0.45 * 0.95 * 0.6 * 0.9 = 0.23 for [B, C, D]) but attends only word 0 (attention [1, 0] at both of its steps);
# [B, C, D] attends [1, 0], [0, .5], [0, .5], [0, 0]: both words fully covered. The two beams swap places at
# steps 2 and 3, so coverage must follow its beam. After [A] ends, the model keeps returning attention [0, 1]
# for its row: if an ended beam kept accruing coverage, [A] would be covered too and win again.
COVERAGE_PROBS = table(
    {(): {A: 0.5, B: 0.45}, (A,): {EOS: 0.6}, (B,): {C: 0.95}, (B, C): {D: 0.6}, (B, C, D): {EOS: 0.9}},
    default={EOS: 0.5},
)
COVERAGE_ATTENTION: dict[Prefix, list[float]] = {
    (): [1.0, 0.0],
    (A,): [1.0, 0.0],
    (B,): [0.0, 0.5],
    (B, C): [0.0, 0.5],
    (B, C, D): [0.0, 0.0],
}


@pytest.mark.parametrize(("beta", "winner"), [(0.0, [A]), (0.1, [B, C, D])])
def test_coverage_penalty_punishes_an_unattended_source_word(beta: float, winner: list[int]) -> None:
    model = TableModel(COVERAGE_PROBS, lambda prefix: COVERAGE_ATTENTION.get(prefix, [0.0, 1.0]))
    src, lengths = torch.tensor([[A, B, PAD]]), torch.tensor([2])
    settings = BeamSettings(2, max_length=10, length_penalty=0.6, coverage_penalty=beta)
    assert beam_search(model, src, lengths, settings) == [winner]


def test_coverage_penalty_ignores_padding_positions() -> None:
    # Both cover the 2 words; only [B] also attends the padding column. Padding must not count, so the
    # likelier [A] wins (counting it would penalize [A]'s never-attended padding).
    probs = table({(): {A: 0.6, B: 0.35}, (A,): {EOS: 0.9}, (B,): {EOS: 0.9}}, default={EOS: 0.5})
    attention = {(): [0.5, 0.5, 0.0], (A,): [0.5, 0.5, 0.0], (B,): [0.5, 0.5, 1.0]}
    model = TableModel(probs, lambda prefix: attention.get(prefix, [0.0, 0.0, 0.0]))
    src, lengths = torch.tensor([[A, B, PAD]]), torch.tensor([2])
    assert beam_search(model, src, lengths, BeamSettings(2, max_length=10, coverage_penalty=0.1)) == [[A]]


class ToyAttentionModel(nn.Module):
    """A tiny random GRU decoder with attention over the (masked) source whose EOS grows likelier once
    the output is as long as the source, float64 so batched and single-sentence runs agree."""

    def __init__(self, vocab: int = 16, hidden: int = 8, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.src_embed, self.tgt_embed = nn.Embedding(vocab, hidden), nn.Embedding(vocab, hidden)
        self.cell = nn.GRUCell(hidden, hidden)
        self.out = nn.Linear(2 * hidden, vocab)
        self.double()

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = torch.arange(src.shape[1], device=src.device)[None, :] < src_lengths[:, None]
        return torch.tanh(self.src_embed(src)), mask

    def init_state(self, encoded: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        memory, mask = encoded
        hidden = (memory * mask[:, :, None]).sum(dim=1) / mask.sum(dim=1, keepdim=True)
        return hidden, torch.zeros(mask.shape[0], dtype=torch.float64, device=mask.device)

    def decode_step(
        self, encoded: tuple[torch.Tensor, torch.Tensor], state: tuple[torch.Tensor, torch.Tensor], tokens: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        memory, mask = encoded
        hidden, steps = state
        hidden, steps = self.cell(self.tgt_embed(tokens), hidden), steps + 1
        weights = torch.einsum("nsh,nh->ns", memory, hidden).masked_fill(~mask, -math.inf).softmax(dim=1)
        context = torch.einsum("ns,nsh->nh", weights, memory)
        logits = self.out(torch.cat([hidden, context], dim=1))
        logits[:, EOS] += 0.5 * (steps - mask.sum(dim=1))  # ends near the source's length
        return logits.log_softmax(dim=1), (hidden, steps), weights

    def reorder(
        self, encoded: tuple[torch.Tensor, torch.Tensor], state: tuple[torch.Tensor, torch.Tensor], index: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        (memory, mask), (hidden, steps) = encoded, state
        return (memory[index], mask[index]), (hidden[index], steps[index])


def padded_batch(lengths: list[int], vocab: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    src = torch.full((len(lengths), max(lengths)), PAD)
    for row, length in enumerate(lengths):
        src[row, :length] = torch.randint(4, vocab, (length,), generator=generator)
    return src, torch.tensor(lengths)


GNMT_LIKE = BeamSettings(3, max_length=10, length_penalty=0.6, coverage_penalty=0.1)
TRANSFORMER_LIKE = BeamSettings(4, max_length_offset=3, length_penalty=0.6)
STRONG_COVERAGE = BeamSettings(3, max_length=10, coverage_penalty=1.0)  # padding mistakes would show


@pytest.mark.parametrize(
    "settings", [GNMT_LIKE, TRANSFORMER_LIKE, STRONG_COVERAGE], ids=["gnmt", "transformer", "strong-coverage"]
)
def test_a_batch_decodes_as_its_sentences_one_by_one(settings: BeamSettings) -> None:
    model = ToyAttentionModel().eval()
    src, lengths = padded_batch([4, 1, 7, 2, 9, 3, 6, 8, 5])
    batched = beam_search(model, src, lengths, settings)
    alone = [beam_search(model, src[i : i + 1, :n], lengths[i : i + 1], settings)[0] for i, n in enumerate(lengths)]
    assert batched == alone
    assert len({len(ids) for ids in batched}) > 1  # sentences really end at different steps


def test_max_length_cuts_hypotheses_that_never_end() -> None:
    never_ends = table({}, default={EOS: 0.0})
    src, lengths = padded_batch([2, 5])
    fixed, offset = BeamSettings(3, max_length=4), BeamSettings(3, max_length_offset=3)
    assert [len(ids) for ids in beam_search(TableModel(never_ends), src, lengths, fixed)] == [4, 4]
    assert [len(ids) for ids in beam_search(TableModel(never_ends), src, lengths, offset)] == [5, 8]


def test_hypotheses_end_at_eos_or_are_cut_as_they_are() -> None:
    ends_after_two = table({(): {A: 0.9}, (A,): {B: 0.9}}, default={EOS: 0.99})  # best: A, B, EOS
    src, lengths = one_source()
    for max_length, expected in [(10, [A, B]), (3, [A, B]), (2, [A, B]), (1, [A])]:
        settings = BeamSettings(2, max_length=max_length)
        assert beam_search(TableModel(ends_after_two), src, lengths, settings) == [expected]
    ends_at_once = table({}, default={EOS: 0.99})
    assert beam_search(TableModel(ends_at_once), src, lengths, BeamSettings(2, max_length=5)) == [[]]


def test_search_stops_once_every_beam_has_ended() -> None:
    # Only A can start and only EOS follow it: beams 2 and 3 stay dead (-inf) and must not hold the search open.
    only_a = table({(): {A: 1.0}, (A,): {EOS: 1.0}}, default={EOS: 1.0})
    model = TableModel(only_a)
    src, lengths = one_source()
    assert beam_search(model, src, lengths, BeamSettings(3, max_length=50)) == [[A]]
    assert model.steps == 2


def test_an_ended_hypothesis_is_frozen() -> None:
    # [A] ends at step 2 (0.5 * 0.6 = 0.30). The model would continue it with D (0.99): were that allowed, the
    # spurious [A, EOS, D] (0.297) would push the open [B, C, D] (0.288 at step 3) out of a beam of 2.
    # Kept, [B, C, D] ends at 0.2592 and wins with alpha 0.6: log(0.2592) / (9/6)^0.6 = -1.0587 against
    # log(0.30) / (7/6)^0.6 = -1.0976.
    probs = table(
        {(): {A: 0.5, B: 0.45}, (A,): {EOS: 0.6}, (A, EOS): {D: 0.99}, (B,): {C: 0.8}, (B, C): {D: 0.8}},
        default={EOS: 0.9},
    )
    src, lengths = one_source()
    settings = BeamSettings(2, max_length=10, length_penalty=0.6)
    assert beam_search(TableModel(probs), src, lengths, settings) == [[B, C, D]]


def test_pad_and_bos_are_never_output() -> None:
    prefers_specials = table({(): {PAD: 0.5, BOS: 0.3, A: 0.1}}, default={EOS: 0.9})
    src, lengths = one_source()
    assert beam_search(TableModel(prefers_specials), src, lengths, BeamSettings(2, max_length=5)) == [[A]]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"beam_size": 0, "max_length": 5},
        {"beam_size": 2},
        {"beam_size": 2, "max_length": 5, "max_length_offset": 5},
        {"beam_size": 2, "max_length": 0},
        {"beam_size": 2, "max_length_offset": 0},
        {"beam_size": 2, "max_length": 5, "length_penalty": -0.6},
        {"beam_size": 2, "max_length": 5, "length_penalty_constant": -1.0},
        {"beam_size": 2, "max_length": 5, "coverage_penalty": float("nan")},
        {"beam_size": 2, "max_length": 5, "coverage_penalty": float("inf")},
    ],
)
def test_bad_settings_raise_one_line(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="beam search: ") as raised:
        BeamSettings(**kwargs)
    assert isinstance(raised.value, UserError) and "\n" not in str(raised.value)


def test_coverage_penalty_needs_attention() -> None:
    src, lengths = one_source()
    with pytest.raises(ValueError, match="coverage_penalty > 0 needs a model that returns attention"):
        beam_search(TableModel(TRAP), src, lengths, BeamSettings(2, max_length=4, coverage_penalty=0.1))


@pytest.mark.gpu
def test_runs_on_the_device_of_its_tensors() -> None:
    model = ToyAttentionModel().eval()
    src, lengths = padded_batch([5, 2, 7, 3])
    on_cpu = beam_search(model, src, lengths, GNMT_LIKE)
    assert beam_search(model.cuda(), src.cuda(), lengths.cuda(), GNMT_LIKE) == on_cpu
