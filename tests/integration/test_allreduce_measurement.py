"""Task 0's measurement on two real gloo ranks: sums are right, figures are consistent."""

import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tasks.runtime.allreduce import measure_size
from tasks.runtime.launcher import free_port

pytestmark = pytest.mark.integration


def _measure(rank, world_size, port, out):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    ones = torch.ones(1000)
    dist.all_reduce(ones)
    rows = [measure_size(n, dtype, torch.device("cpu"), repeats=10, warmup=2, generator=torch.Generator().manual_seed(0))
            for n in (1, 10_000, 1_000_000) for dtype in ("fp32", "fp16")]
    if rank == 0:
        out_rows = [row.__dict__ for row in rows]
        with open(out, "w") as f:
            json.dump({"sum": ones[0].item(), "rows": out_rows}, f)
    dist.destroy_process_group()


def test_two_rank_measurement(tmp_path):
    out = tmp_path / "m.json"
    mp.spawn(_measure, args=(2, free_port(), str(out)), nprocs=2, join=True)
    data = json.loads(out.read_text())
    assert data["sum"] == 2.0
    for row in data["rows"]:
        assert row["latency_p10_s"] <= row["latency_median_s"] <= row["latency_p90_s"]
        assert row["bytes"] == row["elements"] * (4 if row["dtype"] == "fp32" else 2)
        assert row["busbw_gbps"] == pytest.approx(row["algbw_gbps"])  # 2 ranks: 2(n-1)/n = 1
    large = [r for r in data["rows"] if r["elements"] == 1_000_000 and r["dtype"] == "fp32"][0]
    small = [r for r in data["rows"] if r["elements"] == 1 and r["dtype"] == "fp32"][0]
    assert large["algbw_gbps"] > small["algbw_gbps"]  # bandwidth grows with size
