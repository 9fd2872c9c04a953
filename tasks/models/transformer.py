"""Transformer "big" with pre-norm layers (Vaswani et al. 2017; the model of MLBench task 4b).

Token embeddings scaled by sqrt(d_model) plus fixed sinusoidal positions; one embedding matrix for
the source, the target and the output projection (a shared subword vocabulary). Every sublayer
(self-attention, encoder-decoder attention, feed-forward) is x + dropout(sublayer(LayerNorm(x))), and
each stack ends in its own LayerNorm: pre-norm trains stably without the post-norm warm-up tricks.
Three dropouts as fairseq's: `dropout` on embeddings and sublayer outputs, `attention_dropout` on
attention probabilities, `relu_dropout` inside the feed-forward. Linear layers are Xavier-uniform
with zero biases, the embedding normal(0, d_model^-1/2) (so scaled embeddings start near unit size).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from tasks.text_ids import PAD

D_MODEL = 1024
FFN_SIZE = 4096
HEADS = 16
LAYERS = 6
DROPOUT = 0.1
MAX_POSITIONS = 1024


class TransformerEncoded(NamedTuple):
    memory: torch.Tensor  # [N, S, d_model] the encoder's output (after its final LayerNorm)
    padding: torch.Tensor  # [N, S] bool, True at source padding


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention over `heads` heads; mask [N, 1, T|1, S] is True where attending is allowed."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.query, self.key, self.value, self.out = (nn.Linear(d_model, d_model) for _ in range(4))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        n, length, d_model = x.shape
        return x.view(n, length, self.heads, d_model // self.heads).transpose(1, 2)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(queries)), self._split(self.key(keys)), self._split(self.value(keys))
        dropout = self.dropout if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        out: torch.Tensor = self.out(x.transpose(1, 2).flatten(2))
        return out


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, ffn_size: int, relu_dropout: float) -> None:
        super().__init__(
            nn.Linear(d_model, ffn_size), nn.ReLU(), nn.Dropout(relu_dropout), nn.Linear(ffn_size, d_model)
        )


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, ffn_size: int, heads: int, dropouts: tuple[float, float, float]) -> None:
        super().__init__()
        dropout, attention_dropout, relu_dropout = dropouts
        self.attention_norm, self.ffn_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = MultiHeadAttention(d_model, heads, attention_dropout)
        self.ffn = FeedForward(d_model, ffn_size, relu_dropout)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        normed = self.attention_norm(x)
        x = x + F.dropout(self.attention(normed, normed, mask), self.dropout, self.training)
        return x + F.dropout(self.ffn(self.ffn_norm(x)), self.dropout, self.training)


class DecoderLayer(nn.Module):
    """Self-attention (causal), encoder-decoder attention and feed-forward, each pre-normed and residual."""

    def __init__(self, d_model: int, ffn_size: int, heads: int, dropouts: tuple[float, float, float]) -> None:
        super().__init__()
        dropout, attention_dropout, relu_dropout = dropouts
        self.attention_norm, self.cross_attention_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.attention = MultiHeadAttention(d_model, heads, attention_dropout)
        self.cross_attention = MultiHeadAttention(d_model, heads, attention_dropout)
        self.ffn = FeedForward(d_model, ffn_size, relu_dropout)
        self.dropout = dropout

    def forward(
        self, x: torch.Tensor, self_mask: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor
    ) -> torch.Tensor:
        normed = self.attention_norm(x)
        x = x + F.dropout(self.attention(normed, normed, self_mask), self.dropout, self.training)
        cross = self.cross_attention(self.cross_attention_norm(x), memory, memory_mask)
        x = x + F.dropout(cross, self.dropout, self.training)
        return x + F.dropout(self.ffn(self.ffn_norm(x)), self.dropout, self.training)


def sinusoids(length: int, d_model: int) -> torch.Tensor:
    """[length, d_model]: sin(pos / 10000^(2i/d)) in the first half of the features, cos in the second."""
    frequencies = torch.exp(torch.arange(0, d_model // 2, dtype=torch.float32) * (-2.0 * math.log(10000.0) / d_model))
    angles = torch.arange(length, dtype=torch.float32).unsqueeze(1) * frequencies
    return torch.cat((torch.sin(angles), torch.cos(angles)), dim=1)


class Transformer(nn.Module):
    """Pre-norm Transformer translation model with the project's seq2seq interface (see the module docstring)."""

    positions: torch.Tensor  # [max_positions, d_model] sinusoids, a buffer (not trained, not saved)

    def __init__(
        self,
        vocab_size: int,
        d_model: int = D_MODEL,
        ffn_size: int = FFN_SIZE,
        heads: int = HEADS,
        encoder_layers: int = LAYERS,
        decoder_layers: int = LAYERS,
        dropout: float = DROPOUT,
        attention_dropout: float = DROPOUT,
        relu_dropout: float = DROPOUT,
        max_positions: int = MAX_POSITIONS,
    ) -> None:
        super().__init__()
        sizes = (vocab_size, d_model, ffn_size, heads, encoder_layers, decoder_layers, max_positions)
        if min(sizes) < 1:
            raise ValueError(
                "vocab_size, d_model, ffn_size, heads, encoder_layers, decoder_layers and max_positions must be "
                f">= 1, got {', '.join(map(str, sizes))}"
            )
        if d_model % heads or d_model % 2:  # whole heads; sin/cos pairs for the positions
            raise ValueError(f"d_model must be even and a multiple of heads, got d_model {d_model} and heads {heads}")
        for name, p in (("dropout", dropout), ("attention_dropout", attention_dropout), ("relu_dropout", relu_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
        self.vocab_size, self.d_model, self.max_positions = vocab_size, d_model, max_positions
        dropouts = (dropout, attention_dropout, relu_dropout)
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.register_buffer("positions", sinusoids(max_positions, d_model), persistent=False)
        self.dropout = dropout
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(d_model, ffn_size, heads, dropouts) for _ in range(encoder_layers)
        )
        self.encoder_norm = nn.LayerNorm(d_model)
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(d_model, ffn_size, heads, dropouts) for _ in range(decoder_layers)
        )
        self.decoder_norm = nn.LayerNorm(d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.embedding.weight, 0.0, self.d_model**-0.5)
        with torch.no_grad():
            self.embedding.weight[PAD].zero_()

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.size(1)
        if length > self.max_positions:
            raise ValueError(f"sequence of {length} tokens is longer than max_positions ({self.max_positions})")
        embedded = self.embedding(tokens) * math.sqrt(self.d_model) + self.positions[:length]
        return F.dropout(embedded, self.dropout, self.training)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> TransformerEncoded:
        """src [N, S] (right-padded with PAD), src_lengths [N] -> the encoder output and the padding mask."""
        positions = torch.arange(src.size(1), device=src.device)
        padding = positions.unsqueeze(0) >= src_lengths.to(src.device).unsqueeze(1)
        mask = ~padding[:, None, None, :]  # every query may attend to every real source token
        x = self._embed(src)
        for layer in self.encoder_layers:
            x = layer(x, mask)
        return TransformerEncoded(self.encoder_norm(x), padding)

    def _decode(self, encoded: TransformerEncoded, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [N, T] (BOS first) -> logits [N, T, V]; position t sees tokens 0..t only."""
        length = tokens.size(1)
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
        self_mask = causal & (tokens != PAD)[:, None, None, :]  # position 0 (BOS) keeps every row attendable
        memory_mask = ~encoded.padding[:, None, None, :]
        x = self._embed(tokens)
        for layer in self.decoder_layers:
            x = layer(x, self_mask, encoded.memory, memory_mask)
        return F.linear(self.decoder_norm(x), self.embedding.weight)  # output projection tied to the embedding

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: src [N, S], src_lengths [N], tgt_in [N, T] (BOS first) -> logits [N, T, V]."""
        return self._decode(self.encode(src, src_lengths), tgt_in)

    def init_state(self, encoded: TransformerEncoded) -> torch.Tensor:
        """The decoder state is the target prefix so far, [N, t]; empty at the start."""
        return torch.empty(encoded.memory.size(0), 0, dtype=torch.long, device=encoded.memory.device)

    def decode_step(
        self, encoded: TransformerEncoded, state: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, None]:
        """tokens [N] -> (log-probabilities [N, V], the longer prefix, no attention to report).

        Recomputes the decoder over the whole prefix: quadratic in the output length but stateless
        apart from the tokens, so reordering beams is a row selection.
        """
        prefix = torch.cat((state, tokens.unsqueeze(1)), dim=1)
        logits = self._decode(encoded, prefix)[:, -1]
        return F.log_softmax(logits.float(), dim=-1), prefix, None

    def reorder(
        self, encoded: TransformerEncoded, state: torch.Tensor, index: torch.Tensor
    ) -> tuple[TransformerEncoded, torch.Tensor]:
        """Rows index [N'] of the encoder output, its padding mask and the prefixes (beam selection and expansion)."""
        return TransformerEncoded(*(tensor.index_select(0, index) for tensor in encoded)), state.index_select(0, index)


def parameter_count(
    vocab_size: int,
    d_model: int = D_MODEL,
    ffn_size: int = FFN_SIZE,
    encoder_layers: int = LAYERS,
    decoder_layers: int = LAYERS,
) -> int:
    """Trainable parameters of Transformer with these sizes, computed without building it.

    With V words, d = d_model, f = ffn_size: the shared embedding V·d (also the output projection);
    an attention block 4d² + 4d (query, key, value, output projections with biases); a feed-forward
    2df + f + d; a LayerNorm 2d. Encoder layer: attention + feed-forward + 2 LayerNorms = 4d² + 2df
    + 9d + f; decoder layer: one more attention and LayerNorm = 8d² + 2df + 15d + f; plus the two
    final LayerNorms 4d. Big (d = 1024, f = 4096, 6 + 6 layers), V = 33,712: 210,882,560.
    """
    d, f = d_model, ffn_size
    encoder_layer = 4 * d * d + 2 * d * f + 9 * d + f
    decoder_layer = 8 * d * d + 2 * d * f + 15 * d + f
    return vocab_size * d + encoder_layers * encoder_layer + decoder_layers * decoder_layer + 4 * d
