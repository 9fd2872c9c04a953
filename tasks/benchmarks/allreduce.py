"""MLBench task 0: all-reduce latency and bandwidth over tensor sizes (a communication task)."""

from tasks.communication import DTYPES, CollectiveSpec, CommunicationTaskSpec, SweepSpec
from tasks.spec import Preset, presets

TASK = CommunicationTaskSpec(
    name="allreduce",
    version="1.1",  # 1.1: the MLBench-compatible pass (mlbench_measurements) beside our own figures
    mlbench_id="0a",
    description="Communication backend benchmark: all-reduce (sum) latency and bandwidth over tensor sizes",
    algorithms=(
        CollectiveSpec(
            name="allreduce", collective="all_reduce", op="sum", reference=True,
            description="torch.distributed.all_reduce(SUM) (MLBench 0a): our timing (warm-up, barrier and device "
                        "sync around each call, median) and MLBench's (mean, no warm-up, sync after the call)",
        ),
    ),
    # MLBench's sweep: 80 log-spaced sizes from 1 to 1e8 elements, 100 calls per size, fp32 and fp16.
    # Our pass rounds the sizes and drops duplicates, warms up and reports the median; the
    # MLBench-compatible pass uses MLBench's int()-truncated sizes and its mean of 100 calls.
    sweep=SweepSpec(min_elements=1, max_elements=10**8, size_count=80, dtypes=DTYPES, repeats=100, warmup=5,
                    mlbench_calls=100),
    presets=presets(
        Preset("full", "MLBench's sweep"),
        # The same density of sizes up to 40 MB (fp32), fewer calls: minutes instead of an hour on CPU.
        Preset("light", "sizes up to 1e7 elements, 30 calls each", {
            "max_elements": "10000000", "size_count": "70", "repeats": "30", "warmup": "3", "mlbench_calls": "30"}),
        # A few seconds with 2 gloo ranks on 2 CPU cores.
        Preset("demo", "sizes up to 1e6 elements, 20 calls each: seconds on CPU", {
            "max_elements": "1000000", "size_count": "20", "repeats": "20", "warmup": "2", "mlbench_calls": "20"}),
        # For tests: the whole path in well under a second of measuring.
        Preset("smoke", "four sizes up to 1000 elements, 3 calls each, for tests", {
            "max_elements": "1000", "size_count": "4", "repeats": "3", "warmup": "1", "mlbench_calls": "3"}),
    ),
    seed=0,
)
