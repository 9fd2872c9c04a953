"""How ranks combine their work each step: MLBench's flat all-reduce, PyTorch DDP, or model
averaging.

Each exposes `after_backward()` and `after_step()`: the communication before and after the
optimizer step, which the step timer charges to the communication phase.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class FlatAllReduceGradients:
    """All gradients packed into one flat buffer, one all-reduce (sum), divided by world size.

    This is MLBench's reference aggregation (`CentralizedSGD`, by_layer=False). The buffer is
    allocated once; at world size 1 there is nothing to exchange and the step is skipped.
    With `average=False` the sum is kept: MLBench's translation tasks summed the gradients, their
    losses being normalized beforehand (by each worker's sentences, or by all workers' tokens).
    """

    def __init__(self, model: nn.Module, world_size: int, *, average: bool = True) -> None:
        self.model = model
        self.world_size = world_size
        self.average = average
        self.params = [p for p in model.parameters() if p.requires_grad]
        numel = sum(p.numel() for p in self.params)
        first = self.params[0]
        self.buffer = torch.zeros(numel, dtype=first.dtype, device=first.device)
        if world_size > 1:
            # Same start everywhere even if a seed were misconfigured.
            for tensor in list(model.parameters()) + list(model.buffers()):
                dist.broadcast(tensor.data, src=0)

    def wrap(self) -> nn.Module:
        return self.model

    def after_step(self) -> None:
        pass

    def after_backward(self) -> None:
        if self.world_size == 1:
            return
        offset = 0
        for p in self.params:
            n = p.numel()
            if p.grad is None:
                self.buffer[offset : offset + n].zero_()
            else:
                self.buffer[offset : offset + n].copy_(p.grad.reshape(-1))
            offset += n
        dist.all_reduce(self.buffer, op=dist.ReduceOp.SUM)
        if self.average:
            self.buffer.div_(self.world_size)
        offset = 0
        for p in self.params:
            n = p.numel()
            if p.grad is None:
                p.grad = torch.empty_like(p)
            p.grad.copy_(self.buffer[offset : offset + n].view_as(p))
            offset += n


class DDPAggregation:
    """PyTorch DistributedDataParallel: communication overlaps backward, so its own phase is ~0."""

    def __init__(self, model: nn.Module, world_size: int, device: torch.device) -> None:
        self.world_size = world_size
        device_ids = [device.index] if device.type == "cuda" else None
        self.ddp = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def wrap(self) -> nn.Module:
        return self.ddp

    def after_backward(self) -> None:
        pass

    def after_step(self) -> None:
        pass


class ModelAveraging:
    """MLBench's task-2a algorithm: each rank takes a local SGD step, then the weights (not the
    gradients) are all-reduced and averaged. Weights are also averaged once at the start."""

    def __init__(self, model: nn.Module, world_size: int) -> None:
        self.model = model
        self.world_size = world_size
        self.params = [p for p in model.parameters()]
        self.after_step()

    def wrap(self) -> nn.Module:
        return self.model

    def after_backward(self) -> None:
        pass

    def after_step(self) -> None:
        if self.world_size == 1:
            return
        with torch.no_grad():
            flat = torch.cat([p.reshape(-1) for p in self.params])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            flat.div_(self.world_size)
            offset = 0
            for p in self.params:
                p.copy_(flat[offset : offset + p.numel()].view_as(p))
                offset += p.numel()


def build_aggregation(kind: str, model: nn.Module, world_size: int, device: torch.device):
    if kind == "flat-allreduce-gradients":
        return FlatAllReduceGradients(model, world_size)
    if kind == "flat-allreduce-gradients-sum":
        return FlatAllReduceGradients(model, world_size, average=False)
    if kind == "ddp":
        return DDPAggregation(model, world_size, device)
    if kind == "model-averaging":
        return ModelAveraging(model, world_size)
    raise ValueError(f"unknown aggregation {kind!r}")
