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


# ------------------------------------------------------------------------------- training-batch metrics
# What MLBench's step computed after the optimizer step and before its batch_end (compute_train_batch_metrics).
def test_image_training_metrics_are_top1_and_top5_correct_counts():
    workload = build_workload(resolve("cifar10-resnet20", "smoke"))
    logits = torch.zeros(3, 10)
    logits[0, 0] = 5.0  # right
    logits[1, 1], logits[1, 2] = 5.0, 4.0  # top-5 only
    logits[2] = torch.arange(10.0)  # top 5 are classes 9..5: label 3 is in neither
    assert workload.train_metrics == ("top1", "top5")
    top1, top5 = workload.train_metric_sums(logits, torch.tensor([0, 2, 3])).tolist()
    assert (top1, top5) == (1, 2)


def test_binary_training_metrics_are_accuracy_f1_and_soft_dice_weighted_by_rows():
    workload = build_workload(resolve("epsilon-logreg", "smoke"))
    logits = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert workload.train_metrics == ("accuracy", "f1", "dice")
    correct, f1_sum, dice_sum = workload.train_metric_sums(logits, labels).tolist()
    assert correct == 2  # rows 0 and 3
    # predicted positive: rows 0 and 2; one true positive: precision 1/2, recall 1/2, F1 1/2
    assert f1_sum == pytest.approx(4 * 0.5, rel=1e-6)
    p = torch.sigmoid(logits.squeeze(1))
    dice = (2 * (p * labels).sum() + 1e-4) / (p.sum() + labels.sum() + 1e-4)
    assert dice_sum == pytest.approx(4 * dice.item(), rel=1e-6)


def test_language_model_training_metric_is_the_batch_perplexity_over_the_vocabulary_times_tokens():
    workload = build_workload(resolve("wikitext2-lstm", "smoke"))
    logits = torch.randn(6, 11, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 3, 10, 4, 4, 7])
    assert workload.train_metrics == ("perplexity",)
    (total,) = workload.train_metric_sums((logits, None, None), targets).tolist()
    expected = torch.nn.functional.cross_entropy(logits, targets).exp().item() * 6
    assert total == pytest.approx(expected, rel=1e-6)
