"""Task 0's all-reduce measurement against a bare torch.distributed loop, same sizes, same group.

Two local gloo ranks (CPU). For each size the two measurements alternate, `--rounds` times
(task first in even rounds, raw first in odd ones), and each side's figure is the median over the
rounds: on a shared 2-core machine one block of calls can land in a noisy second and the other
not. The raw loop is what anyone would write: `all_reduce` in a loop, timed as a whole. Last line:
`ratio=<task_busbw/raw_busbw>` at the largest size (goal >= 0.95).

    python bench/allreduce_vs_raw.py [--max-elements 10000000] [--count 12] [--repeats 20] [--rounds 5]

The default top size is 1e7 elements (40 MB fp32), not MLBench's 1e8: on this 2-core machine a
400 MB gloo all-reduce takes seconds per call.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tasks.communication import tensor_sizes  # noqa: E402
from tasks.runtime.allreduce import bus_bandwidth, measure_size  # noqa: E402
from tasks.runtime.local_job import free_port  # noqa: E402


def raw_busbw(elements: int, repeats: int, warmup: int, world_size: int) -> float:
    tensor = torch.rand(elements)
    for _ in range(warmup):
        dist.all_reduce(tensor)
    dist.barrier()
    start = time.perf_counter()
    for _ in range(repeats):
        dist.all_reduce(tensor)
    seconds = (time.perf_counter() - start) / repeats
    return bus_bandwidth(elements * 4 / seconds / 1e9, world_size)


def rank_main(rank: int, world_size: int, port: int, args: argparse.Namespace, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for elements in tensor_sizes(1, args.max_elements, args.count):
        task_busbw, task_latency, raw = [], [], []
        for round_index in range(args.rounds):
            for name in ("task", "raw") if round_index % 2 == 0 else ("raw", "task"):
                dist.barrier()
                if name == "task":
                    measured = measure_size(elements, "fp32", torch.device("cpu"), repeats=args.repeats,
                                            warmup=args.warmup, generator=generator)
                    task_busbw.append(measured.busbw_gbps)
                    task_latency.append(measured.latency_median_s)
                else:
                    raw.append(raw_busbw(elements, args.repeats, args.warmup, world_size))
        rows.append({"elements": elements, "task_busbw_gbps": statistics.median(task_busbw),
                     "task_latency_s": statistics.median(task_latency), "raw_busbw_gbps": statistics.median(raw),
                     "task_rounds": task_busbw, "raw_rounds": raw})
    if rank == 0:
        Path(out).write_text(json.dumps(rows))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-elements", type=int, default=10**7)
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="alternations per size; medians are compared")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "rows.json")
        mp.spawn(rank_main, args=(args.world_size, free_port(), args, out), nprocs=args.world_size, join=True)
        rows = json.loads(Path(out).read_text())
    print(f"gloo, {args.world_size} ranks, fp32, CPU, {args.repeats} timed calls per size and side, "
          f"median of {args.rounds} alternating rounds")
    print(f"{'elements':>10}  {'task busbw GB/s':>15}  {'raw busbw GB/s':>14}  {'task latency':>12}")
    for row in rows:
        print(f"{row['elements']:>10}  {row['task_busbw_gbps']:>15.4f}  {row['raw_busbw_gbps']:>14.4f}  "
              f"{row['task_latency_s'] * 1e3:>10.3f}ms")
    largest = rows[-1]
    print("largest size, per round: task " + ", ".join(f"{v:.3f}" for v in largest["task_rounds"])
          + " GB/s; raw " + ", ".join(f"{v:.3f}" for v in largest["raw_rounds"]) + " GB/s")
    print(f"ratio={largest['task_busbw_gbps'] / largest['raw_busbw_gbps']:.4f}")


if __name__ == "__main__":
    main()
