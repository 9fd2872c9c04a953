"""Beam search for the translation tasks (4a GNMT, 4b Transformer), batched over sentences.

B sentences x K beams are flattened into B*K decoder rows (row = sentence * K + beam). Every step
scores all K*V continuations of a sentence by their summed log-probability and keeps the K best;
the model's rows are then reordered by the chosen parents, and the rows of finished sentences are
dropped in the same reorder so later steps only compute what is still open.

Rules (as the MLPerf GNMT reference decoder):
- A hypothesis ends when it emits EOS. It keeps its beam slot: its only continuation is one more
  EOS at log-prob 0, so its score is frozen and it still competes (by raw score) with open beams.
- A sentence is done when all its K beams have ended, or when it has generated its maximum length
  (EOS counted); beams still open then are finalized as they are (no EOS).
- Among the K final beams the best by normalized score wins (Wu et al. 2016):
  score = sum log p / lp + cp, lp = ((c + |Y|) / (c + 1)) ** alpha,
  cp = beta * sum over non-padding source positions of log(min(accumulated attention, 1)).
  |Y| is the number of tokens the hypothesis generated, its EOS included (as MLBench's Transformer
  decoder; the GNMT reference also counts the BOS, which shifts lp by one token).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from tasks.errors import UserError
from tasks.text_ids import BOS, EOS, PAD


class BeamSettingsError(UserError, ValueError):
    """Unusable decoding settings: a UserError (the CLI prints one line) that is also a ValueError."""


class Decoder(Protocol):
    """What beam search needs from a translation model (see the models' docstrings)."""

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> Any: ...

    def init_state(self, encoded: Any) -> Any: ...

    def decode_step(
        self, encoded: Any, state: Any, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, Any, torch.Tensor | None]: ...

    def reorder(self, encoded: Any, state: Any, index: torch.Tensor) -> tuple[Any, Any]: ...


@dataclass(frozen=True)
class BeamSettings:
    """beam_size K; the maximum output length (EOS counted) is `max_length`, or the sentence's source
    length + `max_length_offset` (exactly one is set); length penalty alpha with constant c; coverage
    penalty beta (0 turns it off; above 0 the model must return attention)."""

    beam_size: int
    max_length: int | None = None
    max_length_offset: int | None = None
    length_penalty: float = 0.0
    length_penalty_constant: float = 5.0
    coverage_penalty: float = 0.0

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise BeamSettingsError(f"beam search: beam_size must be >= 1, got {self.beam_size}")
        if (self.max_length is None) == (self.max_length_offset is None):
            raise BeamSettingsError(
                "beam search: set exactly one of max_length (fixed) and max_length_offset (source length + offset), "
                f"got max_length={self.max_length}, max_length_offset={self.max_length_offset}"
            )
        for name in ("max_length", "max_length_offset"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BeamSettingsError(f"beam search: {name} must be >= 1, got {value}")
        for name in ("length_penalty", "length_penalty_constant", "coverage_penalty"):
            value = getattr(self, name)
            if not 0 <= value < math.inf:  # also rejects NaN
                raise BeamSettingsError(f"beam search: {name} must be a finite number >= 0, got {value}")


def _normalized(
    scores: torch.Tensor,
    lengths: torch.Tensor,
    coverage: torch.Tensor | None,
    row_src_lengths: torch.Tensor,
    settings: BeamSettings,
) -> torch.Tensor:
    """Each row's final score: log-prob / lp(|Y|) + cp."""
    c = settings.length_penalty_constant
    penalty = ((c + lengths.to(scores.dtype)) / (c + 1.0)) ** settings.length_penalty
    normalized = scores / penalty
    if coverage is not None:
        # Floor at the dtype's smallest normal number: a never-attended word costs a large finite
        # amount instead of -inf, so hypotheses that all miss a word still rank among themselves.
        logs = coverage.clamp(min=torch.finfo(coverage.dtype).tiny, max=1.0).log()
        positions = torch.arange(coverage.shape[1], device=coverage.device)
        logs = logs.masked_fill(positions[None, :] >= row_src_lengths[:, None], 0.0)  # padding: no penalty
        normalized = normalized + settings.coverage_penalty * logs.sum(dim=1).to(normalized.dtype)
    return normalized


class _LiveRows:
    """The decoder rows of the sentences still being decoded (K per sentence, row = sentence * K + beam):
    each row's summed log-probability, generated length, ended flag, tokens and attention coverage."""

    def __init__(self, src_lengths: torch.Tensor, settings: BeamSettings) -> None:
        batch, k, device = src_lengths.shape[0], settings.beam_size, src_lengths.device
        self.k, self.settings = k, settings
        # Per active sentence: its batch position, source length and maximum length.
        self.sentence_ids = torch.arange(batch, device=device)
        self.src_lengths = src_lengths
        if settings.max_length is not None:
            self.max_lengths = torch.full((batch,), settings.max_length, device=device, dtype=torch.long)
        else:
            assert settings.max_length_offset is not None  # __post_init__ guarantees one of the two
            self.max_lengths = src_lengths + settings.max_length_offset
        # Only beam 0 of each sentence starts live, so the first step's K picks are distinct tokens.
        scores = torch.zeros(batch, k, device=device)
        scores[:, 1:] = -math.inf
        self.scores = scores.view(-1)
        self.lengths = torch.zeros(batch * k, device=device, dtype=torch.long)
        self.finished = torch.zeros(batch * k, device=device, dtype=torch.bool)
        self.history = torch.empty(batch * k, 0, device=device, dtype=torch.long)
        self.coverage: torch.Tensor | None = None
        self.tokens = torch.full((batch * k,), BOS, device=device, dtype=torch.long)
        self.never_output = torch.tensor([PAD, BOS], device=device)

    def advance(self, log_probs: torch.Tensor, attention: torch.Tensor | None) -> torch.Tensor:
        """Keeps each sentence's K best continuations; returns the parent row of every new row."""
        k, vocab, finished = self.k, log_probs.shape[1], self.finished
        log_probs = log_probs.to(torch.promote_types(log_probs.dtype, torch.float32))
        # PAD and BOS are never outputs; an ended beam may only repeat EOS, at no cost.
        log_probs = log_probs.index_fill(1, self.never_output, -math.inf).masked_fill(finished[:, None], -math.inf)
        log_probs[:, EOS] = log_probs[:, EOS].masked_fill(finished, 0.0)
        active = self.sentence_ids.numel()
        candidates = (self.scores[:, None] + log_probs).view(active, k * vocab)
        top_scores, top_index = candidates.topk(k, dim=1)
        parents = (top_index // vocab + torch.arange(active, device=log_probs.device)[:, None] * k).view(-1)
        self.tokens = (top_index % vocab).view(-1)
        was_open = ~finished[parents]
        if self.settings.coverage_penalty > 0:
            if attention is None:
                raise BeamSettingsError(
                    "beam search: coverage_penalty > 0 needs a model that returns attention; set it to 0"
                )
            step_attention = attention[parents].to(top_scores.dtype) * was_open[:, None]  # ended beams stop accruing
            self.coverage = step_attention if self.coverage is None else self.coverage[parents] + step_attention
        self.scores = top_scores.view(-1)
        self.lengths = self.lengths[parents] + was_open.long()
        self.history = torch.cat([self.history[parents], self.tokens[:, None]], dim=1)
        self.finished = (self.tokens == EOS) | torch.isneginf(self.scores)  # a dead (-inf) beam can never win
        return parents

    def done(self, step: int) -> torch.Tensor:
        """Per active sentence: all K beams ended, or its maximum length reached."""
        return self.finished.view(-1, self.k).all(dim=1) | (step >= self.max_lengths)

    def finalize(self, done: torch.Tensor, results: list[list[int]]) -> None:
        """Writes the best hypothesis (by normalized score) of each done sentence into results."""
        k = self.k
        row_src_lengths = self.src_lengths.repeat_interleave(k)
        normalized = _normalized(self.scores, self.lengths, self.coverage, row_src_lengths, self.settings)
        best = normalized.view(-1, k).argmax(dim=1)
        done_sentences = done.nonzero().view(-1)
        best_rows = done_sentences * k + best[done_sentences]
        # One copy to the host per finished group, not one per sentence.
        for position, length, ids in zip(self.sentence_ids[done_sentences].tolist(), self.lengths[best_rows].tolist(),
                                         self.history[best_rows].tolist(), strict=True):
            ids = ids[:length]
            results[position] = ids[:-1] if ids and ids[-1] == EOS else ids

    def keep(self, keep: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
        """Drops the sentences not kept; returns the parents of the rows left."""
        rows = keep.repeat_interleave(self.k)
        self.sentence_ids, self.max_lengths = self.sentence_ids[keep], self.max_lengths[keep]
        self.src_lengths = self.src_lengths[keep]
        self.tokens, self.scores, self.lengths = self.tokens[rows], self.scores[rows], self.lengths[rows]
        self.finished, self.history = self.finished[rows], self.history[rows]
        self.coverage = None if self.coverage is None else self.coverage[rows]
        return parents[rows]


@torch.no_grad()
def beam_search(
    model: Decoder, src: torch.Tensor, src_lengths: torch.Tensor, settings: BeamSettings
) -> list[list[int]]:
    """The best hypothesis of each sentence (ids without BOS/EOS), in batch order.

    `src` [B, S] is PAD-padded, `src_lengths` [B]; everything runs on `src`'s device. The caller
    puts the model in eval mode.
    """
    batch, device = src.shape[0], src.device
    if batch == 0:
        return []
    src_lengths = src_lengths.to(device=device, dtype=torch.long)
    encoded = model.encode(src, src_lengths)
    state = model.init_state(encoded)
    encoded, state = model.reorder(encoded, state,
                                   torch.arange(batch, device=device).repeat_interleave(settings.beam_size))
    rows = _LiveRows(src_lengths, settings)
    results: list[list[int]] = [[] for _ in range(batch)]
    step = 0
    while True:
        step += 1
        log_probs, state, attention = model.decode_step(encoded, state, rows.tokens)
        parents = rows.advance(log_probs, attention)
        done = rows.done(step)
        if bool(done.any()):
            rows.finalize(done, results)
            if bool(done.all()):
                return results
            parents = rows.keep(~done, parents)
        encoded, state = model.reorder(encoded, state, parents)
