"""MLBench task 0: how fast a communication backend all-reduces tensors of every size.

Per size: a fresh random tensor, warm-up calls, then timed all-reduce (sum) calls with the device
synchronized around each; reported as latency (median and spread), algorithm bandwidth and bus
bandwidth with the nccl-tests formula (busbw = algbw x 2(n-1)/n). Runs inside an initialized
process group; every rank measures, rank 0's figures are reported.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def tensor_sizes(min_elements: int = 1, max_elements: int = 10**8, count: int = 80) -> list[int]:
    """MLBench's sizes: `count` log-spaced element counts from min to max, duplicates removed."""
    if not 1 <= min_elements <= max_elements or count < 1:
        raise ValueError(f"need 1 <= min_elements <= max_elements and count >= 1, got {min_elements}, "
                         f"{max_elements}, {count}")
    sizes = np.logspace(np.log10(min_elements), np.log10(max_elements), count).astype(np.int64)
    return sorted({int(s) for s in sizes})


def backend_availability() -> dict[str, str | None]:
    """Each backend -> None when usable here, else why not (said plainly, never silently skipped)."""
    reasons: dict[str, str | None] = {}
    reasons["gloo"] = None if dist.is_gloo_available() else "this torch build has no gloo"
    if not dist.is_nccl_available():
        reasons["nccl"] = "this torch build has no NCCL (a CPU-only build)"
    elif not torch.cuda.is_available():
        reasons["nccl"] = "NCCL needs CUDA GPUs and none is visible"
    else:
        reasons["nccl"] = None
    reasons["mpi"] = None if dist.is_mpi_available() else "this torch build was not compiled with MPI"
    return reasons


def bus_bandwidth(algorithm_bandwidth: float, world_size: int) -> float:
    """nccl-tests' bus bandwidth for all-reduce: what each link carries, comparable across sizes of n."""
    return algorithm_bandwidth * 2 * (world_size - 1) / world_size if world_size > 1 else algorithm_bandwidth


@dataclass(frozen=True)
class SizeMeasurement:
    elements: int
    dtype: str
    bytes: int
    latency_median_s: float
    latency_p10_s: float
    latency_p90_s: float
    algbw_gbps: float  # GB/s (1e9 bytes), at the median latency
    busbw_gbps: float


def time_allreduce(source: torch.Tensor, repeats: int, sync: Callable[[], None] | None) -> list[float]:
    """Seconds per call, the device synchronized before and after each one.

    Each call reduces fresh values (copied from `source` outside the timed window), as MLBench did:
    repeatedly summing the same buffer would overflow fp16 to inf within a few calls. A barrier
    after the copy starts every rank's timer together, so no rank times a peer's copy.
    """
    tensor = torch.empty_like(source)
    timings = []
    for _ in range(repeats):
        tensor.copy_(source)
        if sync:
            sync()
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        if sync:
            sync()
        timings.append(time.perf_counter() - start)
    return timings


def measure_size(elements: int, dtype: str, device: torch.device, *, repeats: int, warmup: int,
                 generator: torch.Generator) -> SizeMeasurement:
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    tensor = torch.rand(elements, generator=generator, dtype=torch.float32).to(device=device, dtype=DTYPES[dtype])
    time_allreduce(tensor, warmup, sync)
    timings = sorted(time_allreduce(tensor, repeats, sync))
    median = statistics.median(timings)
    size_bytes = elements * tensor.element_size()
    algbw = size_bytes / median / 1e9
    return SizeMeasurement(
        elements=elements, dtype=dtype, bytes=size_bytes, latency_median_s=median,
        latency_p10_s=timings[int(0.1 * (len(timings) - 1))], latency_p90_s=timings[int(0.9 * (len(timings) - 1))],
        algbw_gbps=algbw, busbw_gbps=bus_bandwidth(algbw, dist.get_world_size()),
    )


def run_benchmark(*, backend: str, device: str, dtypes: list[str], sizes: list[int], repeats: int, warmup: int,
                  seed: int = 0, log: Callable[[str], None] = print) -> list[SizeMeasurement]:
    """Every size and dtype on this rank (inside an initialized process group); rank 0 logs progress."""
    if device == "cpu" and backend == "nccl":
        raise ValueError("nccl all-reduces CUDA tensors only; use --device cuda")
    torch_device = torch.device(f"cuda:{torch.cuda.current_device()}" if device == "cuda" else "cpu")
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for dtype in dtypes:
        for index, elements in enumerate(sizes):
            rows.append(measure_size(elements, dtype, torch_device, repeats=repeats, warmup=warmup,
                                     generator=generator))
            if index % 10 == 0 or index == len(sizes) - 1:
                row = rows[-1]
                log(f"[allreduce] {dtype} {elements:>11,} elements: median {row.latency_median_s * 1e3:9.3f} ms, "
                    f"busbw {row.busbw_gbps:8.3f} GB/s ({index + 1}/{len(sizes)})")
    return rows


def plot_rows(rows: list[dict], path, title: str):
    """Latency and bus bandwidth over tensor size, one line per dtype."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2))
    latency_axis, bandwidth_axis = figure.subplots(1, 2)
    for dtype in sorted({r["dtype"] for r in rows}):
        mine = [r for r in rows if r["dtype"] == dtype]
        sizes = [r["bytes"] for r in mine]
        latency_axis.plot(sizes, [r["latency_median_s"] * 1e3 for r in mine], marker=".", label=dtype)
        latency_axis.fill_between(sizes, [r["latency_p10_s"] * 1e3 for r in mine],
                                  [r["latency_p90_s"] * 1e3 for r in mine], alpha=0.2)
        bandwidth_axis.plot(sizes, [r["busbw_gbps"] for r in mine], marker=".", label=dtype)
    for axis, label in ((latency_axis, "latency, ms (median, p10-p90)"), (bandwidth_axis, "bus bandwidth, GB/s")):
        axis.set_xscale("log")
        axis.set_xlabel("tensor size, bytes")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    latency_axis.set_yscale("log")
    bandwidth_axis.set_yscale("log")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path
