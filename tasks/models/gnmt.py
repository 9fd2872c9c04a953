"""GNMT v2 (Wu et al. 2016 as revised by MLPerf / NVIDIA, the model of MLBench task 4a).

Encoder: embedding, a bidirectional LSTM layer (hidden_size per direction), then num_layers - 1
unidirectional layers, the first of them reading the 2·hidden concatenation; layers from the third on
add their input (residual). Decoder: an "attention" LSTM layer reads the embedded previous token and
its output queries a normalized Bahdanau attention over the encoder outputs; every later layer reads
[previous layer's output, attention context] (residual from the third layer on), and a linear
classifier gives the logits. Dropout precedes every LSTM layer. The decoder starts from zero states
(GNMT v2 does not pass the encoder's final state on) and attends with the attention layer's output of
the same step (no input feeding), so teacher-forced training runs each layer over the whole sequence.

Initialisation as MLPerf's: uniform(-init_weight, init_weight) for every weight and bias (the
embedding's padding row too: it gets no gradient and never reaches a real position), except the LSTMs'
hidden-to-hidden bias (zero: it only duplicates the input bias), the attention's score bias (zero) and
its scale g (1/sqrt(hidden_size)).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tasks.text_ids import PAD

HIDDEN_SIZE = 1024
NUM_LAYERS = 4
DROPOUT = 0.2
INIT_WEIGHT = 0.1


class GNMTEncoded(NamedTuple):
    context: torch.Tensor  # [N, S, H] top encoder layer: the attention's values
    keys: torch.Tensor  # [N, S, H] the values projected by the attention's key layer, once per sentence
    padding: torch.Tensor  # [N, S] bool, True at source padding


class GNMTState(NamedTuple):
    h: torch.Tensor  # [num_layers, N, H] decoder hidden state, one row per decoder LSTM layer
    c: torch.Tensor  # [num_layers, N, H] decoder cell state


class NormalizedBahdanauAttention(nn.Module):
    """score(q, k) = g · v/‖v‖ · tanh(W_q q + W_k k + b): additive attention with a weight-normalized score vector."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.query = nn.Linear(hidden_size, hidden_size, bias=False)
        self.key = nn.Linear(hidden_size, hidden_size, bias=False)
        self.score_vector = nn.Parameter(torch.empty(hidden_size))
        self.score_scale = nn.Parameter(torch.empty(1))
        self.score_bias = nn.Parameter(torch.empty(hidden_size))

    def forward(self, queries: torch.Tensor, encoded: GNMTEncoded) -> tuple[torch.Tensor, torch.Tensor]:
        """queries [N, T, H] -> (context [N, T, H], probabilities [N, T, S]; exactly 0 on source padding)."""
        summed = self.query(queries).unsqueeze(2) + encoded.keys.unsqueeze(1) + self.score_bias  # [N, T, S, H]
        vector = self.score_scale * self.score_vector / self.score_vector.norm()
        scores = torch.tanh(summed).matmul(vector)  # [N, T, S]
        # the dtype's lowest finite value rather than -inf: exp underflows to exactly 0 all the same
        scores = scores.masked_fill(encoded.padding.unsqueeze(1), torch.finfo(scores.dtype).min)
        probabilities = F.softmax(scores, dim=-1)
        return torch.bmm(probabilities, encoded.context), probabilities


def _lstm(input_size: int, hidden_size: int, bidirectional: bool = False) -> nn.LSTM:
    return nn.LSTM(input_size, hidden_size, num_layers=1, batch_first=True, bidirectional=bidirectional)


class GNMT(nn.Module):
    """GNMT v2 translation model with the project's seq2seq interface (see the module docstring)."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int = HIDDEN_SIZE,
        num_layers: int = NUM_LAYERS,
        dropout: float = DROPOUT,
        share_embedding: bool = True,
        init_weight: float = INIT_WEIGHT,
    ) -> None:
        super().__init__()
        if min(vocab_size, hidden_size) < 1 or num_layers < 2:
            raise ValueError(
                "vocab_size and hidden_size must be >= 1 and num_layers >= 2 (the bidirectional layer and the one "
                f"reading it), got {vocab_size}, {hidden_size}, {num_layers}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not init_weight > 0.0:
            raise ValueError(f"init_weight must be > 0, got {init_weight}")
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.init_weight = init_weight
        self.dropout = nn.Dropout(dropout)

        self.embedding = nn.Embedding(vocab_size, hidden_size, padding_idx=PAD)
        self.decoder_embedding = (
            self.embedding if share_embedding else nn.Embedding(vocab_size, hidden_size, padding_idx=PAD)
        )
        self.encoder_layers = nn.ModuleList(
            [_lstm(hidden_size, hidden_size, bidirectional=True), _lstm(2 * hidden_size, hidden_size)]
            + [_lstm(hidden_size, hidden_size) for _ in range(num_layers - 2)]
        )
        self.attention_lstm = _lstm(hidden_size, hidden_size)
        self.attention = NormalizedBahdanauAttention(hidden_size)
        self.decoder_layers = nn.ModuleList(_lstm(2 * hidden_size, hidden_size) for _ in range(num_layers - 1))
        self.classifier = nn.Linear(hidden_size, vocab_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for name, parameter in self.named_parameters():
            nn.init.uniform_(parameter, -self.init_weight, self.init_weight)
            if ".bias_hh" in name:
                nn.init.zeros_(parameter)
        nn.init.zeros_(self.attention.score_bias)
        nn.init.constant_(self.attention.score_scale, 1.0 / math.sqrt(self.hidden_size))

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> GNMTEncoded:
        """src [N, S] (right-padded with PAD), src_lengths [N] -> the encoder outputs, their keys and padding mask."""
        x = self.dropout(self.embedding(src))
        # packed, so the backward direction starts at each sentence's last token, not in its padding
        packed = pack_padded_sequence(x, src_lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, _ = self.encoder_layers[0](packed)
        x, _ = pad_packed_sequence(output, batch_first=True, total_length=src.size(1))
        # forward-only layers: padding sits after every real position, so it cannot reach them
        for index in range(1, self.num_layers):
            y, _ = self.encoder_layers[index](self.dropout(x))
            x = y + x if index >= 2 else y
        positions = torch.arange(src.size(1), device=src.device)
        padding = positions.unsqueeze(0) >= src_lengths.to(src.device).unsqueeze(1)
        return GNMTEncoded(x, self.attention.key(x), padding)

    def init_state(self, encoded: GNMTEncoded) -> GNMTState:
        context = encoded.context
        zeros = context.new_zeros(self.num_layers, context.size(0), self.hidden_size)
        return GNMTState(zeros, zeros.clone())

    def _decode(
        self, encoded: GNMTEncoded, state: GNMTState, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, GNMTState, torch.Tensor]:
        """tokens [N, T] -> (logits [N, T, V], state after the last step, attention probabilities [N, T, S])."""
        h, c = state
        x = self.dropout(self.decoder_embedding(tokens))
        x, (h_first, c_first) = self.attention_lstm(x, (h[:1], c[:1]))
        context, probabilities = self.attention(x, encoded)
        hs, cs = [h_first], [c_first]
        for index, layer in enumerate(self.decoder_layers, start=1):
            inputs = self.dropout(torch.cat((x, context), dim=2))
            y, (h_layer, c_layer) = layer(inputs, (h[index : index + 1], c[index : index + 1]))
            x = y + x if index >= 2 else y
            hs.append(h_layer)
            cs.append(c_layer)
        return self.classifier(x), GNMTState(torch.cat(hs), torch.cat(cs)), probabilities

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: src [N, S], src_lengths [N], tgt_in [N, T] (BOS first) -> logits [N, T, V]."""
        encoded = self.encode(src, src_lengths)
        logits, _, _ = self._decode(encoded, self.init_state(encoded), tgt_in)
        return logits

    def decode_step(
        self, encoded: GNMTEncoded, state: GNMTState, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, GNMTState, torch.Tensor]:
        """tokens [N] (the previous outputs) -> (log-probabilities [N, V], new state, attention [N, S])."""
        logits, state, probabilities = self._decode(encoded, state, tokens.unsqueeze(1))
        return F.log_softmax(logits[:, 0].float(), dim=-1), state, probabilities[:, 0]

    def reorder(self, encoded: GNMTEncoded, state: GNMTState, index: torch.Tensor) -> tuple[GNMTEncoded, GNMTState]:
        """Rows index [N'] of the encoder outputs and of the decoder state (beam selection and expansion)."""
        return (
            GNMTEncoded(*(tensor.index_select(0, index) for tensor in encoded)),
            GNMTState(*(tensor.index_select(1, index) for tensor in state)),
        )


def parameter_count(
    vocab_size: int, hidden_size: int = HIDDEN_SIZE, num_layers: int = NUM_LAYERS, share_embedding: bool = True
) -> int:
    """Trainable parameters of GNMT with these sizes, computed without building it.

    An LSTM layer reading I features into H has 4H·(I + H) weights and two 4H biases. With V words,
    H = hidden_size and L = num_layers:
      embeddings                 V·H (twice when not shared)
      encoder bidirectional      2·(8H² + 8H)
      encoder 2nd layer (2H in)  12H² + 8H
      encoder layers 3..L        (L-2)·(8H² + 8H)
      decoder attention LSTM     8H² + 8H
      attention                  2H² (W_q, W_k) + 2H (v, b) + 1 (g)
      decoder layers 2..L        (L-1)·(12H² + 8H)
      classifier                 H·V + V
    For L = 4: 2·V·H + V + 90H² + 74H + 1 (shared embedding), 160,671,297 for H = 1024, V = 32,320.
    """
    h, v = hidden_size, vocab_size
    lstm_h, lstm_2h = 8 * h * h + 8 * h, 12 * h * h + 8 * h
    embeddings = v * h * (1 if share_embedding else 2)
    encoder = 2 * lstm_h + lstm_2h + (num_layers - 2) * lstm_h
    decoder = lstm_h + (2 * h * h + 2 * h + 1) + (num_layers - 1) * lstm_2h
    return embeddings + encoder + decoder + h * v + v
