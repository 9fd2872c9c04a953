"""MLBench task 0: how fast a communication backend all-reduces tensors of every size.

Per size: a fresh random tensor, warm-up calls, then timed all-reduce (sum) calls with the device
synchronized around each; reported as latency (median and spread), algorithm bandwidth and bus
bandwidth with the nccl-tests formula (busbw = algbw x 2(n-1)/n); then one untimed all-reduce
of ones per size checks the sums. Runs inside an initialized process group (`mlbench worker` with
task 0's config.json); every rank measures, rank 0's figures are reported.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist

from tasks.communication import CommunicationConfig, bus_factor
from tasks.errors import ExitCode
from tasks.runtime.distributed import RankEnv
from tasks.runtime.results import Measurement, MlbenchMeasurement, SweepRankReport, SweepResult

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


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
    """nccl-tests' bus bandwidth for all-reduce: comparable across world sizes; 0 for one rank."""
    return algorithm_bandwidth * bus_factor(world_size)


def time_allreduce(source: torch.Tensor, repeats: int, sync: Callable[[], None] | None, *,
                   fenced: bool = True) -> list[float]:
    """Seconds per call, the device synchronized after each one.

    Each call reduces fresh values (copied from `source` outside the timed window), as MLBench did:
    repeatedly summing the same buffer would overflow fp16 to inf within a few calls. `fenced`
    (ours) also synchronizes the device and holds a barrier before each call, so every rank's timer
    starts together and no rank times its own copy or a peer's; MLBench's own timing (`fenced=False`)
    did neither, and a rank's timer may include waiting for a slower peer.
    """
    tensor = torch.empty_like(source)
    timings = []
    for _ in range(repeats):
        tensor.copy_(source)
        if fenced:
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
                 generator: torch.Generator) -> Measurement:
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    tensor = torch.rand(elements, generator=generator, dtype=torch.float32).to(device=device, dtype=DTYPES[dtype])
    time_allreduce(tensor, warmup, sync)
    timings = time_allreduce(tensor, repeats, sync)
    median = statistics.median(timings)
    # p10 and p90 interpolated like the median, so p10 <= median <= p90 holds for any count
    p10, p90 = (statistics.quantiles(timings, n=10, method="inclusive")[i] for i in (0, 8)) \
        if len(timings) > 1 else (median, median)
    size_bytes = elements * tensor.element_size()
    algbw = size_bytes / median / 1e9
    return Measurement(
        elements=elements, dtype=dtype, bytes=size_bytes, latency_median_s=median,
        latency_p10_s=p10, latency_p90_s=p90,
        algbw_gbps=algbw, busbw_gbps=bus_bandwidth(algbw, dist.get_world_size()),
    )


def run_mlbench_pass(*, device: str, dtypes: list[str], sizes: list[int], calls: int, seed: int = 0,
                     log: Callable[[str], None] = print,
                     rows: list[MlbenchMeasurement] | None = None) -> list[MlbenchMeasurement]:
    """MLBench's own figures: every one of its sizes (duplicates included, in its order) per dtype,
    the mean of `calls` calls without warm-up, timed as MLBench did (`time_allreduce(fenced=False)`).
    Rows are appended to `rows` when given."""
    torch_device = torch.device(f"cuda:{torch.cuda.current_device()}" if device == "cuda" else "cpu")
    sync = torch.cuda.synchronize if torch_device.type == "cuda" else None
    generator = torch.Generator().manual_seed(seed + 1)  # not the values of our own pass
    rows = [] if rows is None else rows
    for dtype in dtypes:
        for elements in sizes:
            source = torch.rand(elements, generator=generator, dtype=torch.float32).to(torch_device, DTYPES[dtype])
            mean = statistics.fmean(time_allreduce(source, calls, sync, fenced=False))
            rows.append(MlbenchMeasurement(elements=elements, dtype=dtype, calls=calls, mean_latency_s=mean))
        log(f"[allreduce] MLBench-compatible pass, {dtype}: {len(sizes)} sizes, mean of {calls} calls each")
    return rows


def count_wrong_sums(elements: int, dtype: str, device: torch.device, sync: Callable[[], None] | None) -> int:
    """Elements of an all-reduce of ones that do not equal the world size (exact in fp16 up to 2048
    ranks): a backend that is fast but wrong must not pass."""
    ones = torch.ones(elements, dtype=DTYPES[dtype], device=device)
    dist.all_reduce(ones, op=dist.ReduceOp.SUM)
    if sync:
        sync()
    return int((ones != dist.get_world_size()).sum().item())


def run_benchmark(*, device: str, dtypes: list[str], sizes: list[int], repeats: int, warmup: int,
                  seed: int = 0, log: Callable[[str], None] = print,
                  rows: list[Measurement] | None = None) -> tuple[list[Measurement], int]:
    """Every size and dtype on this rank (inside an initialized process group); rank 0 logs progress.

    Returns the measurements and how many elements of the checking all-reduces were wrong. Rows are
    appended to `rows` when given, so a caller keeps what was measured before a failure.
    """
    torch_device = torch.device(f"cuda:{torch.cuda.current_device()}" if device == "cuda" else "cpu")
    sync = torch.cuda.synchronize if torch_device.type == "cuda" else None
    generator = torch.Generator().manual_seed(seed)
    rows = [] if rows is None else rows
    wrong = 0
    for dtype in dtypes:
        for index, elements in enumerate(sizes):
            rows.append(measure_size(elements, dtype, torch_device, repeats=repeats, warmup=warmup,
                                     generator=generator))
            wrong += count_wrong_sums(elements, dtype, torch_device, sync)
            if index % 10 == 0 or index == len(sizes) - 1:
                row = rows[-1]
                log(f"[allreduce] {dtype} {elements:>11,} elements: median {row.latency_median_s * 1e3:9.3f} ms, "
                    f"busbw {row.busbw_gbps:8.3f} GB/s ({index + 1}/{len(sizes)})")
    return rows, wrong


class SweepRunner:
    """Task 0 as one rank's runner (tasks.kinds.RankRunner)."""

    def __init__(self, config: CommunicationConfig, env: RankEnv, output: Path) -> None:
        self.config, self.env, self.output = config, env, output

    def run_rank(self) -> int:
        return run_sweep(self.config, self.env, self.output)

    def failure_record(self, reason: str) -> SweepResult:
        return SweepResult.failed(self.config, reason)


def run_sweep(config: CommunicationConfig, env: RankEnv, output: Path) -> int:
    """Task 0 as one rank of an initialized process group; returns the exit code.

    Every rank measures and checks its sums; rank 0 gathers every rank's summary and writes
    result.json with its own figures (MLBench reported rank 0's too). A sweep that breaks part-way
    (a peer lost, out of device memory at the largest sizes) is recorded as failed with the sizes
    rank 0 had measured by then.
    """
    import traceback

    from tasks.runtime import provenance
    from tasks.runtime.results import utc_now, write_result

    started_at, start = utc_now(), time.perf_counter()
    # which backends this machine could have measured, and why not: recorded with every sweep
    host = dataclasses.replace(
        provenance.collect(config.device, env.local_rank),
        backends_unavailable={name: why for name, why in backend_availability().items() if why})
    rows: list[Measurement] = []
    mlbench_rows: list[MlbenchMeasurement] = []
    log: Callable[[str], None] = print if env.rank == 0 else (lambda _message: None)

    def record(status: str, reason: str | None, ranks: list[SweepRankReport]) -> None:
        write_result(output, dataclasses.replace(
            SweepResult.for_config(config), status=status, reason=reason, provenance=host, measurements=rows,
            mlbench_measurements=mlbench_rows, ranks=ranks, wall_time_s=time.perf_counter() - start,
            started_at=started_at, finished_at=utc_now()))

    try:
        _, wrong = run_benchmark(device=config.device, dtypes=list(config.dtypes), sizes=list(config.sizes),
                                 repeats=config.repeats, warmup=config.warmup, seed=config.seed, log=log, rows=rows)
        if config.mlbench_calls:
            run_mlbench_pass(device=config.device, dtypes=list(config.dtypes), sizes=list(config.mlbench_sizes),
                             calls=config.mlbench_calls, seed=config.seed, log=log, rows=mlbench_rows)
    except Exception as exc:  # no collective is safe any more: each rank reports alone
        traceback.print_exc()
        if env.rank == 0:
            total = len(config.sizes) * len(config.dtypes)
            record("failed", f"rank 0 stopped after {len(rows)} of {total} measurements: "
                             f"{type(exc).__name__}: {exc}", [])
        return ExitCode.RUN_FAILED
    mine = SweepRankReport(rank=env.rank, hostname=host.hostname, device_name=host.device_name,
                           measurements=len(rows), wrong_elements=wrong)
    ranks: list[Any] = [None] * env.world_size
    dist.all_gather_object(ranks, mine)
    wrong_ranks = [f"rank {r.rank}: {r.wrong_elements} elements" for r in ranks if r.wrong_elements]
    if env.rank == 0:
        record("failed" if wrong_ranks else "completed",
               f"all-reduce returned wrong sums ({'; '.join(wrong_ranks)})" if wrong_ranks else None, ranks)
    return ExitCode.RUN_FAILED if wrong_ranks else ExitCode.OK
