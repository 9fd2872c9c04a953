"""What the nightly's history comparison costs at scale: CONFIGS configurations x NIGHTS nights of
nightly runs in an MLflow store on SQLite, then the `compare_history` work of the last night's DAG
run (`operators.regressions.nightly.compare_dag_run`: one history search per configuration, the
detector on every watched metric, tags on the runs, a trend plot per configuration logged to MLflow).

Seeding the store is not timed (it is reported). Each configuration's time to accuracy is 100 s
+-3 % noise; every tenth configuration is 15 % slower for its last 3 nights, so the run finds
regressions and draws change points. Timed: the whole comparison with its plots, and the same without
plots (`plots_dir=None`), alternating, ROUNDS times each; medians. Goal: under 30 s with plots.

    python bench/history_scale.py [--configs 100] [--nights 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from operators.regressions.nightly import compare_dag_run  # noqa: E402
from operators.regressions.settings import HISTORY_DAG_ID  # noqa: E402
from operators.tracking.store import CHILD_ROLE, PARENT_ROLE, ROLE_TAG  # noqa: E402

DAY_MS = 86_400_000
START_MS = 1_767_225_600_000  # 2026-01-01 UTC


def seed(uri: str, configs: int, nights: int) -> str:
    """The store's runs; returns the last night's DAG run id."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(uri)
    experiment_id = client.create_experiment("mlbench/scale")
    rng = random.Random(0)
    for night in range(nights):
        dag_run_id = f"scheduled__night-{night:03d}"
        start = START_MS + night * DAY_MS
        identity = {ROLE_TAG: PARENT_ROLE, "dag_id": HISTORY_DAG_ID, "dag_run_id": dag_run_id}
        parent = client.create_run(experiment_id, start_time=start, tags=identity)
        client.set_terminated(parent.info.run_id, "FINISHED", end_time=start + 1000)
        for config in range(configs):
            slow = 1.15 if config % 10 == 0 and night >= nights - 3 else 1.0
            tta = 100.0 * slow * (1 + rng.gauss(0, 0.03))
            tags = {**identity, ROLE_TAG: CHILD_ROLE, "mlflow.parentRunId": parent.info.run_id, "task": "scale",
                    "config_hash": f"{config:04d}", "config_id": f"scale__allreduce__w{config}__r0",
                    "world_size": str(config), "hardware": "bench", "goal_reached": "true",
                    "git_sha": f"{night:07x}"}
            run = client.create_run(experiment_id, start_time=start + config, tags=tags)
            metrics = {"time_to_accuracy_s": tta, "wall_time_to_accuracy_s": tta * 1.1,
                       "throughput_samples_per_s": 5000.0 / tta, "epochs_run": 10.0,
                       "compute_s": tta * 0.8, "communication_s": tta * 0.2}
            client.log_batch(run.info.run_id, params=[Param("accelerator", "cpu")],
                             metrics=[Metric(k, v, start, 0) for k, v in metrics.items()])
            client.set_terminated(run.info.run_id, "FINISHED", end_time=start + 1000)
        if night % 10 == 9:
            print(f"  seeded {night + 1}/{nights} nights", flush=True)
    return f"scheduled__night-{nights - 1:03d}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=100)
    parser.add_argument("--nights", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="mlbench-history-scale-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        started = time.perf_counter()
        last_night = seed(uri, args.configs, args.nights)
        print(f"seeded {args.configs} configurations x {args.nights} nights in {time.perf_counter() - started:.0f} s")
        compare_dag_run(last_night, tracking_uri=uri)  # warm-up: imports, the store's first queries
        timings: dict[str, list[float]] = {"with plots": [], "without plots": []}
        for index in range(args.rounds):
            for name in (("with plots", "without plots") if index % 2 == 0 else ("without plots", "with plots")):
                plots_dir = Path(tmp) / f"trends-{index}" if name == "with plots" else None
                started = time.perf_counter()
                report = compare_dag_run(last_night, tracking_uri=uri, plots_dir=plots_dir)
                timings[name].append(time.perf_counter() - started)
                print(f"round {index + 1}: {name:13s} {timings[name][-1]:6.1f} s, {len(report.verdicts)} verdicts, "
                      f"{len(report.regressions)} regressions", flush=True)
    for name, seconds in timings.items():
        print(f"{name}: median {statistics.median(seconds):.1f} s ({', '.join(f'{s:.1f}' for s in seconds)})")
    print(f"seconds={statistics.median(timings['with plots']):.1f}")


if __name__ == "__main__":
    main()
