"""AWD-LSTM (Merity, Keskar & Socher 2017, "Regularizing and Optimizing LSTM Language Models").

A word-level language model: embedding, a stack of single-layer LSTMs, and a decoder whose weight
is the embedding matrix (tied). Regularisation, all active only in train mode:

- embedding dropout (dropoute): whole word vectors are dropped, the same words for every position
  of the batch, survivors scaled by 1/(1-p);
- variational ("locked") dropout: one mask per sequence, shared over all time steps, on the
  embedded input (dropouti), between LSTM layers (dropouth) and on the last layer's output (dropout);
- weight drop (DropConnect) on each layer's hidden-to-hidden matrix, one mask per forward pass.

Defaults are MLBench task 3a's configuration (embedding 400, hidden 1150, 3 layers, dropouts
0.4/0.2/0.65/0.1, weight drop 0.5, tied weights). The last LSTM layer has the embedding's width so
the decoder can share the embedding matrix. With WikiText-2's 33,278 words this is 33,556,078
parameters, the paper's "33M" for WikiText-2 (its "24M" is the Penn Treebank model, 10,000 words).

Weight drop is done without swapping tensors inside `nn.LSTM`: each layer owns its parameters (the
raw hidden-to-hidden matrix is the parameter; the dropped one is computed in every forward) and
calls the fused LSTM kernel with them. On CUDA the four tensors are handed over as views of one
contiguous buffer laid out as cuDNN expects, so cuDNN uses it directly (no warning about weights
that are "not part of single contiguous chunk of memory", no extra compaction).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

Hidden = list[tuple[torch.Tensor, torch.Tensor]]

EMBEDDING_SIZE = 400
HIDDEN_SIZE = 1150
NUM_LAYERS = 3
DROPOUT = 0.4
DROPOUT_HIDDEN = 0.2
DROPOUT_INPUT = 0.65
DROPOUT_EMBEDDING = 0.1
WEIGHT_DROP = 0.5
EMBEDDING_INIT_RANGE = 0.1
AR_ALPHA = 2.0
TAR_BETA = 1.0


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Variational dropout on [seq, batch, features]: one mask per (sequence, feature), shared over time."""
    if not training or p == 0.0:
        return x
    mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1.0 - p).div_(1.0 - p)
    return x * mask


def embedding_dropout(weight: torch.Tensor, tokens: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Look tokens up in weight, dropping whole words (rows) with probability p, survivors scaled by 1/(1-p).

    Equivalent to masking the rows of the embedding matrix, but only the looked-up rows are touched.
    """
    embedded = F.embedding(tokens, weight)
    if not training or p == 0.0:
        return embedded
    keep = weight.new_empty(weight.size(0)).bernoulli_(1.0 - p).div_(1.0 - p)
    return embedded * keep[tokens].unsqueeze(-1)


class WeightDropLSTM(nn.Module):
    """One LSTM layer (PyTorch's gate layout and initialisation) with DropConnect on its recurrent matrix.

    Parameters: weight_ih [4H, I], weight_hh_raw [4H, H], bias_ih [4H], bias_hh [4H]. In train mode
    each forward uses dropout(weight_hh_raw, weight_drop); in eval mode weight_hh_raw itself.
    """

    def __init__(self, input_size: int, hidden_size: int, weight_drop: float = WEIGHT_DROP) -> None:
        super().__init__()
        if not 0.0 <= weight_drop < 1.0:
            raise ValueError(f"weight_drop must be in [0, 1), got {weight_drop}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.weight_drop = weight_drop
        gates = 4 * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size))
        self.weight_hh_raw = nn.Parameter(torch.empty(gates, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(gates))
        self.bias_hh = nn.Parameter(torch.empty(gates))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def hidden_weight(self) -> torch.Tensor:
        """The recurrent matrix this forward pass uses: weight-dropped in train mode, the raw one in eval."""
        if self.training and self.weight_drop > 0.0:
            return F.dropout(self.weight_hh_raw, p=self.weight_drop, training=True)
        return self.weight_hh_raw

    def _kernel_weights(self, on_cuda: bool) -> list[torch.Tensor]:
        weights = [self.weight_ih, self.hidden_weight(), self.bias_ih, self.bias_hh]
        if not on_cuda:
            return weights
        # cuDNN's single-layer LSTM buffer is exactly [W_ih, W_hh, b_ih, b_hh] back to back; handing it
        # views of one such buffer lets it skip its own (warned-about) copy. Gradients flow through cat.
        flat = torch.cat([w.reshape(-1) for w in weights])
        views, offset = [], 0
        for w in weights:
            views.append(flat[offset : offset + w.numel()].view(w.shape))
            offset += w.numel()
        return views

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x [seq, batch, input_size], state (h, c) each [1, batch, hidden_size] -> (output, (h, c))."""
        output, h, c = torch.lstm(
            x,
            (state[0].contiguous(), state[1].contiguous()),
            self._kernel_weights(x.is_cuda),
            True,  # has_biases
            1,  # num_layers
            0.0,  # dropout between stacked layers (none: one layer per module)
            self.training,
            False,  # bidirectional
            False,  # batch_first
        )
        return output, (h, c)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, weight_drop={self.weight_drop}"


class AWDLSTM(nn.Module):
    """AWD-LSTM language model; forward(tokens [seq, batch], hidden) -> (logits, hidden, raw, dropped).

    logits: [seq·batch, vocab]; hidden: the new per-layer (h, c); raw and dropped: the last LSTM
    layer's output [seq, batch, features] before and after its output dropout, for activation
    regularisation (AR on dropped) and temporal activation regularisation (TAR on raw).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int = EMBEDDING_SIZE,
        hidden_size: int = HIDDEN_SIZE,
        num_layers: int = NUM_LAYERS,
        dropout: float = DROPOUT,
        dropouth: float = DROPOUT_HIDDEN,
        dropouti: float = DROPOUT_INPUT,
        dropoute: float = DROPOUT_EMBEDDING,
        weight_drop: float = WEIGHT_DROP,
        tie_weights: bool = True,
    ) -> None:
        super().__init__()
        if min(vocab_size, embedding_size, hidden_size, num_layers) < 1:
            raise ValueError(
                "vocab_size, embedding_size, hidden_size and num_layers must be >= 1, got "
                f"{vocab_size}, {embedding_size}, {hidden_size}, {num_layers}"
            )
        for name, p in (("dropout", dropout), ("dropouth", dropouth), ("dropouti", dropouti), ("dropoute", dropoute)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.num_layers = num_layers
        self.dropout, self.dropouth, self.dropouti, self.dropoute = dropout, dropouth, dropouti, dropoute
        self.tie_weights = tie_weights

        self.encoder = nn.Embedding(vocab_size, embedding_size)
        self.layer_sizes = layer_sizes(embedding_size, hidden_size, num_layers, tie_weights)
        self.layers = nn.ModuleList(WeightDropLSTM(i, o, weight_drop) for i, o in self.layer_sizes)
        self.decoder = nn.Linear(self.layer_sizes[-1][1], vocab_size)
        nn.init.uniform_(self.encoder.weight, -EMBEDDING_INIT_RANGE, EMBEDDING_INIT_RANGE)
        nn.init.zeros_(self.decoder.bias)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        else:
            nn.init.uniform_(self.decoder.weight, -EMBEDDING_INIT_RANGE, EMBEDDING_INIT_RANGE)

    def init_hidden(self, batch_size: int) -> Hidden:
        """Zero (h, c) per layer, each [1, batch_size, layer width], on the model's device and dtype."""
        weight = self.encoder.weight
        return [
            (weight.new_zeros(1, batch_size, width), weight.new_zeros(1, batch_size, width))
            for _, width in self.layer_sizes
        ]

    def forward(
        self, tokens: torch.Tensor, hidden: Hidden
    ) -> tuple[torch.Tensor, Hidden, torch.Tensor, torch.Tensor]:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [seq, batch], got shape {list(tokens.shape)}")
        if len(hidden) != self.num_layers:
            raise ValueError(f"hidden must hold one (h, c) per layer ({self.num_layers}), got {len(hidden)}")
        x = embedding_dropout(self.encoder.weight, tokens, self.dropoute, self.training)
        x = locked_dropout(x, self.dropouti, self.training)
        new_hidden: Hidden = []
        raw = x
        for index, layer in enumerate(self.layers):
            raw, state = layer(x, hidden[index])
            new_hidden.append(state)
            if index < self.num_layers - 1:
                x = locked_dropout(raw, self.dropouth, self.training)
        dropped = locked_dropout(raw, self.dropout, self.training)
        logits = self.decoder(dropped.reshape(-1, dropped.size(2)))
        return logits, new_hidden, raw, dropped


def layer_sizes(
    embedding_size: int, hidden_size: int, num_layers: int, tie_weights: bool = True
) -> list[tuple[int, int]]:
    """(input, hidden) width of each LSTM layer; with tied weights the last layer is embedding_size wide."""
    sizes = []
    for index in range(num_layers):
        width = embedding_size if index == num_layers - 1 and tie_weights else hidden_size
        sizes.append((embedding_size if index == 0 else hidden_size, width))
    return sizes


def parameter_count(
    vocab_size: int,
    embedding_size: int = EMBEDDING_SIZE,
    hidden_size: int = HIDDEN_SIZE,
    num_layers: int = NUM_LAYERS,
    tie_weights: bool = True,
) -> int:
    """Trainable parameters of AWDLSTM with these sizes, computed without building it (tied weights count once)."""
    total = vocab_size * embedding_size + vocab_size  # embedding (shared by the decoder when tied) + decoder bias
    for inputs, width in layer_sizes(embedding_size, hidden_size, num_layers, tie_weights):
        total += 4 * width * (inputs + width) + 2 * 4 * width
    if not tie_weights:
        total += vocab_size * hidden_size
    return total


def detach_hidden(hidden: Hidden) -> Hidden:
    """The same state cut from the graph: truncated backpropagation through time between sequences."""
    return [(h.detach(), c.detach()) for h, c in hidden]


def activation_regularization(
    raw: torch.Tensor, dropped: torch.Tensor, alpha: float = AR_ALPHA, beta: float = TAR_BETA
) -> torch.Tensor:
    """AR + TAR: alpha·mean(dropped²) + beta·mean((raw[t+1] − raw[t])²), on the last layer's outputs."""
    penalty = alpha * dropped.pow(2).mean() if alpha else dropped.new_zeros(())
    if beta and raw.size(0) > 1:
        penalty = penalty + beta * (raw[1:] - raw[:-1]).pow(2).mean()
    return penalty
