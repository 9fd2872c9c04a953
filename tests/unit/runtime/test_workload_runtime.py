import pytest
import torch

from tasks.registry import resolve
from tasks.runtime.workload_runtime import build_workload, regularization

pytestmark = pytest.mark.unit


def test_binary_loss_is_bce_plus_half_l2_over_all_parameters():
    config = resolve("epsilon-logreg", "smoke")
    workload = build_workload(config)
    model = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))
    features = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0]])
    labels = torch.tensor([1.0, 0.0])
    logits = features @ model.weight.T  # [[1.0], [-1.0]]
    by_hand = (torch.log1p(torch.exp(torch.tensor(-1.0))) + torch.log1p(torch.exp(torch.tensor(-1.0)))) / 2
    expected = by_hand + 2.5e-6 / 2 * (1 + 4 + 0.25)
    assert workload.loss(logits, labels, model).item() == pytest.approx(expected.item(), rel=1e-6)
    assert regularization(model, config.loss).item() == pytest.approx(2.5e-6 / 2 * 5.25)


def test_binary_evaluation_counts_the_half_threshold_and_regularized_loss():
    workload = build_workload(resolve("epsilon-logreg", "smoke"))
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(2.0)
    logits = torch.tensor([[3.0], [-0.5], [0.0]])
    labels = torch.tensor([1.0, 1.0, 0.0])
    loss_sum, correct = workload.evaluation_sums(logits, labels, model).tolist()
    assert correct == 1  # 3.0 -> 1 right; -0.5 -> 0 wrong; 0.0 -> probability 0.5 -> 1 wrong
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits.squeeze(1), labels, reduction="sum")
    assert loss_sum == pytest.approx(bce.item() + 3 * 2.5e-6 / 2 * 4.0, rel=1e-6)


def test_image_evaluation_sums_top1_top5():
    workload = build_workload(resolve("cifar10-resnet20", "smoke"))
    logits = torch.zeros(2, 10)
    logits[0, 0] = 5.0  # predicts class 0: right
    logits[1, 1], logits[1, 2] = 5.0, 4.0  # predicts class 1, class 2 second: top-5 but not top-1
    _, top1, top5 = workload.evaluation_sums(logits, torch.tensor([0, 2]), torch.nn.Linear(1, 1)).tolist()
    assert (top1, top5) == (1, 2)
