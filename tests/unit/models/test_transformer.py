"""Pre-norm Transformer: shapes, padding invariance, causality, step-wise decoding, tying, size."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tasks.errors import UserError
from tasks.models import build_model
from tasks.models.transformer import Transformer, parameter_count, sinusoids
from tasks.text_ids import BOS, PAD

pytestmark = pytest.mark.unit

VOCAB = 40
WMT17_VOCAB = 33_712  # MLPerf Transformer's shared English-German vocabulary (padded to a multiple of 8)


def _tiny(**kwargs) -> Transformer:
    torch.manual_seed(0)
    return Transformer(VOCAB, d_model=16, ffn_size=32, heads=4, encoder_layers=2, decoder_layers=2, **kwargs)


def _sentence(length: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(4, VOCAB, (length,), generator=generator)


def _batch(sources: list[torch.Tensor], targets: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Right-padded src [N, S], src_lengths [N], tgt_in [N, T] (BOS first)."""
    src = torch.nn.utils.rnn.pad_sequence(sources, batch_first=True, padding_value=PAD)
    tgt_in = torch.nn.utils.rnn.pad_sequence(
        [torch.cat((torch.tensor([BOS]), t)) for t in targets], batch_first=True, padding_value=PAD
    )
    return src, torch.tensor([len(s) for s in sources]), tgt_in


def test_forward_shapes() -> None:
    model = _tiny()
    src, lengths, tgt_in = _batch([_sentence(5, 1), _sentence(7, 2), _sentence(3, 3)], [_sentence(4, 4)] * 3)
    assert model(src, lengths, tgt_in).shape == (3, 5, VOCAB)
    encoded = model.encode(src, lengths)
    assert encoded.memory.shape == (3, 7, 16)
    assert encoded.padding.tolist()[2] == [False] * 3 + [True] * 4


def test_padding_does_not_change_a_sentences_outputs() -> None:
    model = _tiny().eval()
    short_src, short_tgt = _sentence(4, 1), _sentence(3, 2)
    alone = model(*_batch([short_src], [short_tgt]))
    batched = model(*_batch([_sentence(9, 3), short_src], [_sentence(7, 4), short_tgt]))
    assert batched.shape == (2, 8, VOCAB)
    torch.testing.assert_close(batched[1, :4], alone[0], atol=1e-5, rtol=0)


def test_decoder_is_causal() -> None:
    model = _tiny().eval()
    src, lengths, tgt_in = _batch([_sentence(5, 1)], [_sentence(5, 2)])
    changed = tgt_in.clone()
    changed[0, 3:] = (changed[0, 3:] + 1 - 4) % (VOCAB - 4) + 4  # other real words from position 3 on
    first, second = model(src, lengths, tgt_in), model(src, lengths, changed)
    torch.testing.assert_close(first[:, :3], second[:, :3], atol=1e-6, rtol=0)
    assert not torch.allclose(first[:, 3:], second[:, 3:])


def test_decode_step_reproduces_teacher_forcing() -> None:
    model = _tiny().eval()
    src, lengths, tgt_in = _batch([_sentence(6, 1), _sentence(3, 2)], [_sentence(5, 3), _sentence(5, 4)])
    expected = F.log_softmax(model(src, lengths, tgt_in), dim=-1)
    encoded = model.encode(src, lengths)
    state = model.init_state(encoded)
    assert state.shape == (2, 0)
    for step in range(tgt_in.size(1)):
        log_probs, state, attention = model.decode_step(encoded, state, tgt_in[:, step])
        assert attention is None and log_probs.shape == (2, VOCAB)
        assert torch.equal(state, tgt_in[:, : step + 1])
        torch.testing.assert_close(log_probs, expected[:, step], atol=1e-5, rtol=0)


def test_reorder_selects_rows() -> None:
    model = _tiny().eval()
    src, lengths, tgt_in = _batch([_sentence(5, 1), _sentence(3, 2)], [_sentence(2, 3), _sentence(2, 4)])
    encoded = model.encode(src, lengths)
    _, state, _ = model.decode_step(encoded, model.init_state(encoded), tgt_in[:, 0])
    index = torch.tensor([1, 1, 0])
    picked_encoded, picked_state = model.reorder(encoded, state, index)
    for original, picked in zip(encoded, picked_encoded, strict=True):
        assert torch.equal(picked, original[index])
    assert torch.equal(picked_state, state[index])
    log_probs, _, _ = model.decode_step(encoded, state, tgt_in[:, 1])
    picked_log_probs, _, _ = model.decode_step(picked_encoded, picked_state, tgt_in[index, 1])
    torch.testing.assert_close(picked_log_probs, log_probs[index])


def test_one_embedding_for_source_target_and_output_projection() -> None:
    model = _tiny().eval()
    vocabulary_sized = [name for name, p in model.named_parameters() if VOCAB in p.shape]
    assert vocabulary_sized == ["embedding.weight"]
    # word 7 is in neither sentence, so its embedding row can only get a gradient through the output projection
    src, lengths, tgt_in = _batch([torch.tensor([4, 5, 6])], [torch.tensor([8, 9])])
    model(src, lengths, tgt_in)[..., 7].sum().backward()
    gradient = model.embedding.weight.grad
    assert gradient is not None and gradient[7].abs().sum() > 0
    assert torch.all(gradient[[PAD, 10, 11]] == 0)  # words seen nowhere get nothing
    # and the same rows feed the encoder and the decoder: words 4 (source only) and 8 (target only)
    model.zero_grad()
    model(src, lengths, tgt_in)[..., 12].sum().backward()
    assert model.embedding.weight.grad[4].abs().sum() > 0 and model.embedding.weight.grad[8].abs().sum() > 0


def test_embeddings_are_scaled_and_positions_are_sinusoids() -> None:
    table = sinusoids(50, 8)
    assert table.shape == (50, 8)
    torch.testing.assert_close(table[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    position, i = 7, 1  # pair i: frequency 10000^(-2i/d)
    assert table[position, i].item() == pytest.approx(math.sin(position / 10000 ** (2 * i / 8)))
    assert table[position, 4 + i].item() == pytest.approx(math.cos(position / 10000 ** (2 * i / 8)))
    model = _tiny().eval()
    tokens = torch.tensor([[5, 6, 7]])
    expected = model.embedding(tokens) * 4.0 + model.positions[:3]  # sqrt(16) = 4
    torch.testing.assert_close(model._embed(tokens), expected)
    assert model.embedding.weight[PAD].abs().sum() == 0
    assert "positions" not in model.state_dict()  # computed, never trained or saved


def test_pre_norm_layers_and_final_norms() -> None:
    model = _tiny()
    encoder_layer, decoder_layer = model.encoder_layers[0], model.decoder_layers[0]
    assert {n for n, m in encoder_layer.named_children() if isinstance(m, torch.nn.LayerNorm)} == {
        "attention_norm", "ffn_norm",
    }  # fmt: skip
    assert {n for n, m in decoder_layer.named_children() if isinstance(m, torch.nn.LayerNorm)} == {
        "attention_norm", "cross_attention_norm", "ffn_norm",
    }  # fmt: skip
    # pre-norm: a sublayer contributing nothing leaves the residual stream exactly as it came in
    for linear in (encoder_layer.attention.out, encoder_layer.ffn[3]):
        torch.nn.init.zeros_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
    x = torch.randn(2, 5, 16)
    assert torch.equal(encoder_layer.eval()(x, torch.ones(2, 1, 1, 5, dtype=torch.bool)), x)


def test_sequences_longer_than_max_positions_are_rejected() -> None:
    model = _tiny(max_positions=6)
    with pytest.raises(ValueError, match="longer than max_positions"):
        model(*_batch([_sentence(7, 1)], [_sentence(2, 2)]))


def test_train_mode_is_stochastic_and_eval_mode_deterministic() -> None:
    model = _tiny()
    batch = _batch([_sentence(5, 1), _sentence(3, 2)], [_sentence(4, 3), _sentence(2, 4)])
    assert not torch.equal(model(*batch), model(*batch))
    model.eval()
    assert torch.equal(model(*batch), model(*batch))


def test_full_size_model_has_transformer_bigs_210m_parameters() -> None:
    with torch.device("meta"):
        model = Transformer(WMT17_VOCAB)
    # V·d + 6·(4d² + 2df + 9d + f) + 6·(8d² + 2df + 15d + f) + 4d for d = 1024, f = 4096
    assert sum(p.numel() for p in model.parameters()) == parameter_count(WMT17_VOCAB) == 210_882_560
    assert model.encoder_layers[0].attention.heads == 16 and model.decoder_layers[5].ffn[0].out_features == 4096
    assert sum(p.numel() for p in _tiny().parameters()) == parameter_count(VOCAB, 16, 32, 2, 2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"heads": 3}, "d_model must be even and a multiple of heads, got d_model 16 and heads 3"),
        ({"d_model": 15, "heads": 3}, "must be even"),
        ({"decoder_layers": 0}, "must be >= 1"),
        ({"attention_dropout": -0.1}, "attention_dropout must be in"),
        ({"layers": 6}, "unexpected keyword argument 'layers'"),
    ],
)
def test_bad_options_are_user_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=f"^bad model.options for transformer: .*{message}"):
        build_model("transformer", None, {"vocab_size": VOCAB, "d_model": 16, "heads": 2, **options})


def test_build_model_passes_options() -> None:
    options = {"vocab_size": VOCAB, "d_model": 8, "ffn_size": 16, "heads": 2, "encoder_layers": 1, "decoder_layers": 3}
    model = build_model("transformer", None, options)
    assert isinstance(model, Transformer) and (len(model.encoder_layers), len(model.decoder_layers)) == (1, 3)
