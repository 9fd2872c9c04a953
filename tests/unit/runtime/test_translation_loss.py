import math

import pytest
import torch
import torch.nn.functional as F

from tasks.runtime.translation_loss import label_smoothed_loss

pytestmark = pytest.mark.unit

# Three tokens over a 4-word vocabulary; logits are logs of weights so the probabilities are plain fractions.
WEIGHTS = [[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 5.0]]
TARGETS = [2, 1, 3]


def hand_example() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(WEIGHTS).log(), torch.tensor(TARGETS)


def test_by_hand():
    logits, targets = hand_example()
    # Probabilities: [.1, .2, .3, .4], [.25] * 4, [1/8, 1/8, 1/8, 5/8]; targets pick .3, .25 and 5/8.
    nll = [-math.log(0.3), math.log(4), -math.log(5 / 8)]
    uniform = [
        -(math.log(0.1) + math.log(0.2) + math.log(0.3) + math.log(0.4)) / 4,
        math.log(4),
        -(3 * math.log(1 / 8) + math.log(5 / 8)) / 4,
    ]
    loss, nll_sum, tokens = label_smoothed_loss(logits, targets, smoothing=0.1)
    assert tokens == 3
    assert nll_sum.item() == pytest.approx(sum(nll), rel=1e-6)
    assert loss.item() == pytest.approx(sum(0.9 * n + 0.1 * u for n, u in zip(nll, uniform, strict=True)), rel=1e-6)


def test_no_smoothing_is_cross_entropy_ignoring_padding():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 9, generator=generator)
    targets = torch.tensor([3, 0, 5, 8, 0, 1, 2, 0, 4, 6, 7, 3])
    loss, nll_sum, tokens = label_smoothed_loss(logits, targets, smoothing=0.0)
    expected = F.cross_entropy(logits, targets, reduction="sum", ignore_index=0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert nll_sum.item() == pytest.approx(expected.item(), rel=1e-6)
    assert tokens == 9


def test_padding_targets_add_nothing():
    logits, targets = hand_example()
    padded_logits = torch.cat([logits, torch.tensor([[9.0, -3.0, 0.5, 2.0], [0.0, 7.0, 1.0, 1.0]])])
    padded_targets = torch.cat([targets, torch.tensor([0, 0])])
    plain = label_smoothed_loss(logits, targets, smoothing=0.1)
    padded = label_smoothed_loss(padded_logits, padded_targets, smoothing=0.1)
    assert padded[2] == 3
    assert padded[0].item() == pytest.approx(plain[0].item())
    assert padded[1].item() == pytest.approx(plain[1].item())
    # Another padding id: id 1 is now ignored, and id 0 is an ordinary word.
    loss, _, tokens = label_smoothed_loss(logits, targets, smoothing=0.1, padding_idx=1)
    assert tokens == 2
    assert loss.item() < plain[0].item()


def test_gradients_flow_to_non_padding_rows_only():
    logits, _ = hand_example()
    logits.requires_grad_(True)
    loss, _, _ = label_smoothed_loss(logits, torch.tensor([2, 0, 3]), smoothing=0.1)
    loss.backward()
    assert logits.grad is not None
    assert logits.grad[0].abs().sum() > 0 and logits.grad[2].abs().sum() > 0
    assert torch.equal(logits.grad[1], torch.zeros(4))
    assert logits.grad.sum(dim=1).abs().max() < 1e-6  # softmax gradients sum to zero per row


def test_half_precision_logits_are_scored_in_float32():
    logits, targets = hand_example()
    loss, nll_sum, _ = label_smoothed_loss(logits.to(torch.bfloat16), targets, smoothing=0.1)
    assert loss.dtype == torch.float32 and nll_sum.dtype == torch.float32
    assert loss.item() == pytest.approx(label_smoothed_loss(logits, targets, 0.1)[0].item(), rel=1e-2)


def test_all_padding_gives_zero():
    loss, nll_sum, tokens = label_smoothed_loss(torch.randn(3, 4), torch.zeros(3, dtype=torch.long), 0.1)
    assert (loss.item(), nll_sum.item(), tokens) == (0.0, 0.0, 0)


@pytest.mark.parametrize(
    ("logits", "targets", "smoothing", "message"),
    [
        (torch.zeros(2, 3, 4), torch.ones(2, dtype=torch.long), 0.1, r"logits \[N, V\] and targets \[N\]"),
        (torch.zeros(2, 4), torch.ones(3, dtype=torch.long), 0.1, r"got \(2, 4\) and \(3,\)"),
        (torch.zeros(2, 4), torch.ones(2, dtype=torch.long), 1.0, r"must be in \[0, 1\), got 1.0"),
        (torch.zeros(2, 4), torch.ones(2, dtype=torch.long), -0.1, r"must be in \[0, 1\), got -0.1"),
    ],
)
def test_errors(logits, targets, smoothing, message):
    with pytest.raises(ValueError, match=message):
        label_smoothed_loss(logits, targets, smoothing)
