"""The optimizer a config names and fp16's loss scaler (capped, as MLPerf's GNMT caps it)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tasks.registry import resolve
from tasks.runtime.optimizers import build_loss_scaler, build_optimizer

pytestmark = pytest.mark.unit


def test_adam_takes_the_tasks_betas_and_epsilon():
    model = torch.nn.Linear(3, 2)
    optimizer = build_optimizer(resolve("wmt17-transformer", "full"), model.parameters())
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch.optim.Adam)
    assert group["betas"] == (0.9, 0.98) and group["eps"] == 1e-9 and group["lr"] == 1.976e-3


def test_sgd_tasks_keep_sgd():
    optimizer = build_optimizer(resolve("cifar10-resnet20", "full"), torch.nn.Linear(3, 2).parameters())
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["momentum"] == 0.9


def test_the_scaler_is_a_no_op_unless_fp16():
    config = resolve("wmt16-gnmt", "full")
    scaler = build_loss_scaler(config, torch.device("cpu"))
    loss = torch.tensor(3.0)
    assert scaler.scale(loss) is loss and not scaler.scaler.is_enabled()


def test_fp16_scaling_starts_at_the_tasks_scale_and_is_capped():
    config = resolve("wmt16-gnmt", "full")
    config = dataclasses.replace(config, runtime=dataclasses.replace(config.runtime, precision="fp16"))
    scaler = build_loss_scaler(config, torch.device("cpu"))
    assert scaler.scaler.get_scale() == 2**10
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(128 * 4):  # four growth windows of clean steps: 2^10 -> 2^14 uncapped
        scaler.scale(model(torch.ones(1, 2)).sum()).backward()
        scaler.unscale_(optimizer)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
    assert scaler.scaler.get_scale() == 2**13
