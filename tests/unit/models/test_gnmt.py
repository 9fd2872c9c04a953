"""GNMT v2: shapes, padding invariance, step-wise decoding, attention, reordering, initialisation, size."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from tasks.errors import UserError
from tasks.models import build_model
from tasks.models.gnmt import GNMT, parameter_count
from tasks.text_ids import BOS, PAD

pytestmark = pytest.mark.unit

VOCAB = 40
WMT16_VOCAB = 32_320  # MLPerf GNMT's shared BPE vocabulary (padded to a multiple of 8)


def _tiny(**kwargs) -> GNMT:
    torch.manual_seed(0)
    return GNMT(VOCAB, hidden_size=16, num_layers=4, **kwargs)


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


def test_forward_shapes_and_layer_structure() -> None:
    model = _tiny()
    src, lengths, tgt_in = _batch([_sentence(5, 1), _sentence(7, 2), _sentence(3, 3)], [_sentence(4, 4)] * 3)
    assert model(src, lengths, tgt_in).shape == (3, 5, VOCAB)
    encoded = model.encode(src, lengths)
    assert encoded.context.shape == encoded.keys.shape == (3, 7, 16)
    assert encoded.padding.tolist()[2] == [False] * 3 + [True] * 4
    encoder = [(layer.input_size, layer.hidden_size, layer.bidirectional) for layer in model.encoder_layers]
    assert encoder == [(16, 16, True), (32, 16, False), (16, 16, False), (16, 16, False)]
    assert [(layer.input_size, layer.hidden_size) for layer in model.decoder_layers] == [(32, 16)] * 3
    assert model.attention_lstm.input_size == 16
    assert model.decoder_embedding is model.embedding and model.embedding.padding_idx == PAD
    assert model.classifier.weight.shape == (VOCAB, 16) and model.classifier.weight is not model.embedding.weight


def test_residual_connections_from_the_third_layer_and_context_fed_to_every_later_decoder_layer() -> None:
    model = _tiny().eval()
    outputs: dict[str, torch.Tensor] = {}
    inputs: dict[str, torch.Tensor] = {}

    def record(name: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: tuple, output: object) -> None:
            inputs[name] = args[0]
            outputs[name] = output[0] if isinstance(output, tuple) else output

        return hook

    for name, module in model.named_modules():
        if name.startswith(("encoder_layers.", "decoder_layers.")) or name in {"attention", "classifier"}:
            module.register_forward_hook(record(name))
    src, lengths, tgt_in = _batch([_sentence(5, 1), _sentence(3, 2)], [_sentence(4, 3), _sentence(2, 4)])
    context = model.encode(src, lengths).context
    model(src, lengths, tgt_in)
    # layer 2 (the one reading both directions) has no residual; layers 3 and 4 add their input
    expected_context = outputs["encoder_layers.1"] + outputs["encoder_layers.2"] + outputs["encoder_layers.3"]
    torch.testing.assert_close(context, expected_context)
    expected_top = outputs["decoder_layers.0"] + outputs["decoder_layers.1"] + outputs["decoder_layers.2"]
    torch.testing.assert_close(inputs["classifier"], expected_top)
    for index in range(3):
        torch.testing.assert_close(inputs[f"decoder_layers.{index}"][..., 16:], outputs["attention"])


def test_padding_does_not_change_a_sentences_outputs() -> None:
    model = _tiny().eval()
    short_src, short_tgt = _sentence(4, 1), _sentence(3, 2)
    alone = model(*_batch([short_src], [short_tgt]))
    # the short sentence second: the batch is not sorted by length, and it is padded in src and tgt_in
    batched = model(*_batch([_sentence(9, 3), short_src], [_sentence(7, 4), short_tgt]))
    assert batched.shape == (2, 8, VOCAB)
    torch.testing.assert_close(batched[1, :4], alone[0], atol=1e-5, rtol=0)


def test_decode_step_reproduces_teacher_forcing() -> None:
    model = _tiny().eval()
    src, lengths, tgt_in = _batch([_sentence(6, 1), _sentence(3, 2)], [_sentence(5, 3), _sentence(5, 4)])
    expected = F.log_softmax(model(src, lengths, tgt_in), dim=-1)
    encoded = model.encode(src, lengths)
    state = model.init_state(encoded)
    assert state.h.shape == state.c.shape == (4, 2, 16)
    for step in range(tgt_in.size(1)):
        log_probs, state, attention = model.decode_step(encoded, state, tgt_in[:, step])
        assert log_probs.shape == (2, VOCAB) and attention.shape == (2, 6)
        torch.testing.assert_close(log_probs, expected[:, step], atol=1e-5, rtol=0)


def test_attention_sums_to_one_over_real_source_and_is_zero_on_padding() -> None:
    model = _tiny().eval()
    src, lengths, tgt_in = _batch([_sentence(6, 1), _sentence(2, 2), _sentence(4, 3)], [_sentence(2, 4)] * 3)
    encoded = model.encode(src, lengths)
    state = model.init_state(encoded)
    for step in range(tgt_in.size(1)):
        _, state, attention = model.decode_step(encoded, state, tgt_in[:, step])
        torch.testing.assert_close(attention.sum(dim=1), torch.ones(3))
        assert torch.all(attention[encoded.padding] == 0)
        assert torch.all(attention[~encoded.padding] > 0)


def test_reorder_selects_rows_of_encoder_outputs_and_state() -> None:
    model = _tiny().eval()
    src, lengths, tgt_in = _batch([_sentence(5, 1), _sentence(3, 2)], [_sentence(2, 3), _sentence(2, 4)])
    encoded = model.encode(src, lengths)
    _, state, _ = model.decode_step(encoded, model.init_state(encoded), tgt_in[:, 0])
    index = torch.tensor([1, 1, 0])
    picked_encoded, picked_state = model.reorder(encoded, state, index)
    for original, picked in zip(encoded, picked_encoded, strict=True):
        assert torch.equal(picked, original[index])
    for original, picked in zip(state, picked_state, strict=True):
        assert torch.equal(picked, original[:, index])
    log_probs, _, attention = model.decode_step(encoded, state, tgt_in[:, 1])
    picked_log_probs, _, picked_attention = model.decode_step(picked_encoded, picked_state, tgt_in[index, 1])
    torch.testing.assert_close(picked_log_probs, log_probs[index])
    torch.testing.assert_close(picked_attention, attention[index])


def test_initialisation_is_uniform_in_init_weight_except_mlperfs_exceptions() -> None:
    model = GNMT(VOCAB, hidden_size=64, num_layers=3, init_weight=0.05)
    exceptions = {"attention.score_scale", "attention.score_bias"}
    for name, parameter in model.named_parameters():
        if name in exceptions or ".bias_hh" in name:
            continue
        assert parameter.abs().max() <= 0.05, name
        if parameter.numel() >= 256:  # a uniform draw this large spans nearly the whole range
            assert parameter.abs().max() > 0.045 and abs(parameter.mean().item()) < 0.005, name
    hidden_biases = [p for name, p in model.named_parameters() if ".bias_hh" in name]
    assert len(hidden_biases) == 1 + 1 + 2 + 1 + 2  # both directions of layer 1, layers 2-3, the decoder's three
    assert all(torch.all(bias == 0) for bias in hidden_biases)
    assert torch.all(model.attention.score_bias == 0)
    assert model.attention.score_scale.item() == pytest.approx(1 / math.sqrt(64))


def test_train_mode_is_stochastic_and_gradients_reach_every_parameter() -> None:
    model = _tiny()
    src, lengths, tgt_in = _batch([_sentence(5, 1), _sentence(3, 2)], [_sentence(4, 3), _sentence(2, 4)])
    logits = model(src, lengths, tgt_in)
    assert not torch.equal(logits, model(src, lengths, tgt_in))  # dropout 0.2
    logits.sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    model.eval()
    assert torch.equal(model(src, lengths, tgt_in), model(src, lengths, tgt_in))


def test_full_size_model_has_mlperfs_160m_parameters() -> None:
    with torch.device("meta"):
        model = GNMT(WMT16_VOCAB)
        unshared = GNMT(WMT16_VOCAB, share_embedding=False)
    # 2·V·H + V + 90·H² + 74·H + 1 for H = 1024, 4 layers (formula in gnmt.parameter_count)
    assert sum(p.numel() for p in model.parameters()) == parameter_count(WMT16_VOCAB) == 160_671_297
    assert sum(p.numel() for p in unshared.parameters()) == 160_671_297 + WMT16_VOCAB * 1024
    assert parameter_count(WMT16_VOCAB, share_embedding=False) == 160_671_297 + WMT16_VOCAB * 1024
    with torch.device("meta"):
        smaller = GNMT(100, hidden_size=24, num_layers=2)
    assert sum(p.numel() for p in smaller.parameters()) == parameter_count(100, 24, 2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_layers": 1}, "num_layers >= 2"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"init_weight": 0}, "init_weight must be > 0"),
        ({"hidden": 512}, "unexpected keyword argument 'hidden'"),
    ],
)
def test_bad_options_are_user_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=f"^bad model.options for gnmt: .*{message}"):
        build_model("gnmt", None, {"vocab_size": VOCAB, **options})


def test_build_model_passes_options() -> None:
    model = build_model("gnmt", None, {"vocab_size": VOCAB, "hidden_size": 8, "num_layers": 3, "dropout": 0.1})
    assert isinstance(model, GNMT) and (model.hidden_size, model.num_layers) == (8, 3)
    assert model.dropout.p == 0.1
