"""The optimizer a run's config names (SGD, or Adam for the translation tasks), and the loss scaler
of fp16 training (dynamic loss scaling; a no-op at fp32 and bf16)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from tasks.spec import RunConfig

# torch's GradScaler defaults, for an fp16 run whose task declares no loss-scaling settings
DEFAULT_LOSS_SCALE_START = 2.0**16
DEFAULT_LOSS_SCALE_WINDOW = 2000


def build_optimizer(config: RunConfig, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    opt = config.optimizer
    if opt.name == "adam":
        assert opt.betas is not None and opt.eps is not None  # checked when the config was resolved
        return torch.optim.Adam(parameters, lr=config.scaled_lr, betas=(opt.betas[0], opt.betas[1]), eps=opt.eps,
                                weight_decay=opt.weight_decay)
    return torch.optim.SGD(parameters, lr=config.scaled_lr, momentum=opt.momentum, weight_decay=opt.weight_decay,
                           nesterov=opt.nesterov)


class LossScaler:
    """torch's GradScaler (dynamic loss scaling: the scale halves on an overflow, which skips the step,
    and doubles after `window` clean steps), capped at `max_scale` as MLPerf's GNMT caps it."""

    def __init__(self, device: torch.device, *, enabled: bool, start: float, window: int,
                 max_scale: float | None) -> None:
        self.scaler = torch.amp.GradScaler(device.type, init_scale=start, growth_interval=window, enabled=enabled)
        self.max_scale = max_scale

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return self.scaler.scale(loss)

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        self.scaler.step(optimizer)

    def update(self) -> None:
        self.scaler.update()
        if self.max_scale is not None and self.scaler.is_enabled() and self.scaler.get_scale() > self.max_scale:
            self.scaler.update(new_scale=self.max_scale)

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.scaler.load_state_dict(state)


def build_loss_scaler(config: RunConfig, device: torch.device) -> LossScaler:
    t = config.translation
    return LossScaler(
        device, enabled=config.runtime.precision == "fp16",
        start=t.loss_scale_start if t else DEFAULT_LOSS_SCALE_START,
        window=t.loss_scale_window if t else DEFAULT_LOSS_SCALE_WINDOW,
        max_scale=t.loss_scale_max if t else None)
