"""AWD-LSTM: shapes, tied weights, weight drop, locked/embedding dropout, size, and that it learns."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from tasks.models.awd_lstm import (
    AWDLSTM,
    activation_regularization,
    detach_hidden,
    embedding_dropout,
    locked_dropout,
    parameter_count,
)

pytestmark = pytest.mark.unit

WIKITEXT2_VOCAB = 33_278


def _tiny(**kwargs) -> AWDLSTM:
    return AWDLSTM(30, embedding_size=8, hidden_size=12, num_layers=3, **kwargs)


def test_forward_shapes_and_hidden_state() -> None:
    torch.manual_seed(0)
    model = _tiny()
    tokens = torch.randint(0, 30, (7, 4))
    hidden = model.init_hidden(4)
    assert [tuple(h.shape) for h, _ in hidden] == [(1, 4, 12), (1, 4, 12), (1, 4, 8)]
    logits, new_hidden, raw, dropped = model(tokens, hidden)
    assert logits.shape == (7 * 4, 30)
    assert raw.shape == dropped.shape == (7, 4, 8)
    assert [tuple(c.shape) for _, c in new_hidden] == [(1, 4, 12), (1, 4, 12), (1, 4, 8)]
    assert all(not h.requires_grad for h, c in detach_hidden(new_hidden) for h in (h, c))
    with pytest.raises(ValueError, match=r"\[seq, batch\]"):
        model(tokens.flatten(), hidden)
    with pytest.raises(ValueError, match="one \\(h, c\\) per layer"):
        model(tokens, hidden[:2])


def test_tied_weights_share_storage_and_count_once() -> None:
    model = _tiny()
    assert model.decoder.weight is model.encoder.weight
    assert model.decoder.weight.data_ptr() == model.encoder.weight.data_ptr()
    names = [name for name, _ in model.named_parameters()]
    assert "encoder.weight" in names and "decoder.weight" not in names  # one parameter, listed once
    assert sum(p.numel() for p in model.parameters()) == parameter_count(30, 8, 12, 3)
    untied = AWDLSTM(30, embedding_size=8, hidden_size=12, num_layers=3, tie_weights=False)
    assert untied.decoder.weight.shape == (30, 12)
    assert sum(p.numel() for p in untied.parameters()) == parameter_count(30, 8, 12, 3, tie_weights=False)


def test_weight_drop_acts_on_hidden_weights_in_train_mode_only() -> None:
    torch.manual_seed(0)
    layer = AWDLSTM(30, embedding_size=16, hidden_size=64, num_layers=2).layers[0]
    raw = layer.weight_hh_raw
    dropped = layer.hidden_weight()
    assert not torch.equal(dropped, raw)
    zeros = (dropped == 0).float().mean().item()
    assert 0.45 < zeros < 0.55  # p = 0.5, elementwise (DropConnect)
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], raw[kept] * 2)  # survivors scaled by 1/(1-p)
    assert not torch.equal(layer.hidden_weight(), dropped)  # a fresh mask each forward pass
    layer.eval()
    assert layer.hidden_weight() is raw
    # the raw matrix is the parameter (the dropped one is never registered), and it gets gradients
    assert "weight_hh_raw" in dict(layer.named_parameters()) and len(list(layer.parameters())) == 4
    layer.train()
    output, _ = layer(torch.randn(5, 3, 16), (torch.zeros(1, 3, 64), torch.zeros(1, 3, 64)))
    output.sum().backward()
    assert raw.grad is not None and raw.grad.abs().sum() > 0


def test_train_mode_is_stochastic_and_eval_mode_deterministic() -> None:
    torch.manual_seed(0)
    model = _tiny()
    tokens = torch.randint(0, 30, (6, 3))
    first = model(tokens, model.init_hidden(3))[0]
    assert not torch.equal(first, model(tokens, model.init_hidden(3))[0])
    model.eval()
    logits, _, raw, dropped = model(tokens, model.init_hidden(3))
    assert torch.equal(logits, model(tokens, model.init_hidden(3))[0])
    assert torch.equal(raw, dropped)  # no output dropout in eval


def test_locked_and_embedding_dropout_masks() -> None:
    torch.manual_seed(0)
    x = torch.ones(9, 4, 50)
    out = locked_dropout(x, 0.5, training=True)
    assert torch.equal(out, out[:1].expand_as(out))  # the same mask at every time step
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert locked_dropout(x, 0.5, training=False) is x

    weight = torch.ones(40, 6)
    tokens = torch.arange(40).repeat(5, 1)  # every word at 5 positions
    embedded = embedding_dropout(weight, tokens, 0.5, training=True)
    per_word = embedded[..., 0]
    assert torch.equal(per_word, per_word[:1].expand_as(per_word))  # a word is dropped everywhere or nowhere
    assert torch.equal(embedded, embedded[..., :1].expand_as(embedded))  # whole vectors
    assert set(per_word.unique().tolist()) == {0.0, 2.0}


def test_activation_regularization() -> None:
    raw = torch.zeros(4, 2, 3)
    raw[1:] = 1.0  # one step change between t=0 and t=1
    dropped = torch.full((4, 2, 3), 2.0)
    penalty = activation_regularization(raw, dropped, alpha=2.0, beta=1.0)
    assert penalty.item() == pytest.approx(2.0 * 4.0 + 1.0 * (1 / 3))


def test_full_size_model_matches_mlbench_configuration() -> None:
    model = AWDLSTM(WIKITEXT2_VOCAB)
    assert [(layer.input_size, layer.hidden_size, layer.weight_drop) for layer in model.layers] == [
        (400, 1150, 0.5), (1150, 1150, 0.5), (1150, 400, 0.5),
    ]  # fmt: skip
    assert (model.dropout, model.dropouth, model.dropouti, model.dropoute) == (0.4, 0.2, 0.65, 0.1)
    # Merity et al. 2017 report 33M parameters on WikiText-2 (24M on the 10k-word Penn Treebank)
    assert sum(p.numel() for p in model.parameters()) == parameter_count(WIKITEXT2_VOCAB) == 33_556_078
    assert parameter_count(10_000) == 24_221_600


def test_forward_and_backward_raise_no_warnings() -> None:
    model = _tiny()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logits, _, raw, dropped = model(torch.randint(0, 30, (5, 2)), model.init_hidden(2))
        (logits.sum() + activation_regularization(raw, dropped)).backward()


def test_tiny_model_overfits_a_tiny_sequence() -> None:
    torch.manual_seed(1)
    model = AWDLSTM(30, 32, 64, 2, dropout=0.1, dropouth=0.1, dropouti=0.1, dropoute=0.1, weight_drop=0.2)
    sequence = torch.randint(0, 30, (25, 2))
    inputs, targets = sequence[:-1], sequence[1:].reshape(-1)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            return F.cross_entropy(model(inputs, model.init_hidden(2))[0], targets).item()

    before = eval_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(50):
        model.train()
        logits, _, raw, dropped = model(inputs, model.init_hidden(2))
        loss = F.cross_entropy(logits, targets) + activation_regularization(raw, dropped)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert eval_loss() < 0.5 * before


@pytest.mark.gpu
def test_cuda_weight_drop_uses_cudnn_without_weight_format_warning() -> None:
    """On CUDA the dropped weights reach cuDNN as one contiguous buffer: no compaction warning, same results."""
    torch.manual_seed(0)
    model = _tiny().double().eval()
    tokens = torch.randint(0, 30, (6, 3))
    expected = model(tokens, model.init_hidden(3))[0]
    model = model.cuda()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for train in (False, True):
            model.train(train)
            logits, _, raw, dropped = model(tokens.cuda(), model.init_hidden(3))
            if train:  # cuDNN (like nn.LSTM) backpropagates only through train-mode forwards
                (logits.sum() + activation_regularization(raw, dropped)).backward()
                assert model.layers[1].weight_hh_raw.grad.abs().sum() > 0
            else:
                torch.testing.assert_close(logits.cpu(), expected)
