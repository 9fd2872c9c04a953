"""The flat all-reduce gives the same averaged gradients as PyTorch DDP (2 gloo ranks)."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tasks.models import build_model
from tasks.runtime.aggregation import DDPAggregation, FlatAllReduceGradients
from tasks.runtime.local_job import free_port

pytestmark = pytest.mark.integration


def _gradients(rank: int, world_size: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    torch.manual_seed(1000 + rank)  # each rank sees different data
    images, labels = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    grads = {}
    for kind in ("local", "flat", "ddp"):
        torch.manual_seed(0)
        model = build_model("resnet20-cifar", 10)
        if kind == "local":
            aggregation = FlatAllReduceGradients(model, 1)  # world size 1: no exchange
        elif kind == "flat":
            aggregation = FlatAllReduceGradients(model, world_size)
        else:
            aggregation = DDPAggregation(model, world_size, torch.device("cpu"))
        net = aggregation.wrap()
        torch.nn.functional.cross_entropy(net(images), labels).backward()
        aggregation.after_backward()
        grads[kind] = [p.grad.clone() for p in model.parameters()]
    torch.save(grads, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_flat_allreduce_matches_ddp_and_is_identical_across_ranks(tmp_path):
    mp.spawn(_gradients, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for flat, ddp in zip(rank0["flat"], rank0["ddp"], strict=True):
        assert torch.allclose(flat, ddp, rtol=1e-5, atol=1e-6)
    for g0, g1 in zip(rank0["flat"], rank1["flat"], strict=True):
        assert torch.equal(g0, g1)  # every rank applies the same averaged update
    for flat, local0, local1 in zip(rank0["flat"], rank0["local"], rank1["local"], strict=True):
        assert torch.allclose(flat, (local0 + local1) / 2, rtol=1e-5, atol=1e-6)
    assert not all(torch.allclose(flat, local) for flat, local in zip(rank0["flat"], rank0["local"], strict=True))


def _average(rank: int, world_size: int, port: int, out_dir: str) -> None:
    from tasks.runtime.aggregation import ModelAveraging

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    torch.manual_seed(rank)  # different starting weights on purpose: averaged at construction
    model = torch.nn.Linear(5, 1)
    aggregation = ModelAveraging(model, world_size)
    start = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(float(rank + 1))  # a "local step" that differs per rank
    local = [p.detach().clone() for p in model.parameters()]
    aggregation.after_step()
    torch.save({"start": start, "local": local, "averaged": [p.detach().clone() for p in model.parameters()]},
               f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_model_averaging_averages_weights_after_each_local_step(tmp_path):
    mp.spawn(_average, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for s0, s1 in zip(rank0["start"], rank1["start"], strict=True):
        assert torch.equal(s0, s1)  # weights averaged once at the start
    for a0, a1, l0, l1 in zip(rank0["averaged"], rank1["averaged"], rank0["local"], rank1["local"], strict=True):
        assert torch.equal(a0, a1) and torch.allclose(a0, (l0 + l1) / 2)
