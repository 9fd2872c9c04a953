"""What the nightly's history comparison costs at scale: CONFIGS configurations x NIGHTS nights of
nightly runs in an MLflow store on SQLite, then the `compare_history` work of the last night's DAG
run (`operators.regressions.nightly.compare_dag_run`: one history search per experiment, the
detector on every watched metric, tags on the runs, a trend plot per configuration logged to MLflow).

Seeding the store is not timed (it is reported; rows are inserted directly through MLflow's
database models, since 6,000 runs through the client would take most of an hour here). Each
configuration's time to accuracy is 100 s +-3 % noise; every tenth configuration is 15 % slower
for its last 3 nights, so the run finds regressions and draws change points. Timed: the whole
comparison with its plots, and the same without
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
    """The store's runs, inserted in one transaction through MLflow's own database models (6,000
    runs through the client take 10-20 minutes on this machine; the timed part below uses the client
    as the pipeline does). Returns the last night's DAG run id."""
    import uuid

    from mlflow import MlflowClient
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag

    client = MlflowClient(uri)
    experiment_id = client.create_experiment("mlbench/scale")
    store = client._tracking_client.store  # the SqlAlchemyStore of this SQLite URI
    rng = random.Random(0)
    with store.ManagedSessionMaker() as session:
        for night in range(nights):
            dag_run_id = f"scheduled__night-{night:03d}"
            start = START_MS + night * DAY_MS
            identity = {ROLE_TAG: PARENT_ROLE, "dag_id": HISTORY_DAG_ID, "dag_run_id": dag_run_id}
            parent = _insert_run(session, experiment_id, start, identity, {}, {}, SqlRun, SqlTag, SqlParam,
                                 SqlMetric, SqlLatestMetric, uuid.uuid4().hex)
            for config in range(configs):
                slow = 1.15 if config % 10 == 0 and night >= nights - 3 else 1.0
                tta = 100.0 * slow * (1 + rng.gauss(0, 0.03))
                tags = {**identity, ROLE_TAG: CHILD_ROLE, "mlflow.parentRunId": parent, "task": "scale",
                        "config_hash": f"{config:04d}", "config_id": f"scale__allreduce__w{config}__r0",
                        "world_size": str(config), "hardware": "bench", "goal_reached": "true",
                        "git_sha": f"{night:07x}"}
                metrics = {"time_to_accuracy_s": tta, "wall_time_to_accuracy_s": tta * 1.1,
                           "throughput_samples_per_s": 5000.0 / tta, "epochs_run": 10.0,
                           "compute_s": tta * 0.8, "communication_s": tta * 0.2}
                _insert_run(session, experiment_id, start + config, tags, {"accelerator": "cpu"}, metrics,
                            SqlRun, SqlTag, SqlParam, SqlMetric, SqlLatestMetric, uuid.uuid4().hex)
    return f"scheduled__night-{nights - 1:03d}"


def _insert_run(session, experiment_id, start, tags, params, metrics, SqlRun, SqlTag, SqlParam, SqlMetric,
                SqlLatestMetric, run_id):  # noqa: N803 (the models, passed in to keep mlflow's import lazy)
    session.add(SqlRun(run_uuid=run_id, name=tags.get("config_id", run_id), experiment_id=int(experiment_id),
                       status="FINISHED", start_time=start, end_time=start + 1000, lifecycle_stage="active",
                       source_type="LOCAL", source_name="", entry_point_name="", user_id="bench",
                       source_version="", artifact_uri=f"/tmp/artifacts/{run_id}"))
    session.add_all([SqlTag(key=k, value=v, run_uuid=run_id) for k, v in tags.items()])
    session.add_all([SqlParam(key=k, value=v, run_uuid=run_id) for k, v in params.items()])
    for model in (SqlMetric, SqlLatestMetric):
        session.add_all([model(key=k, value=v, timestamp=start, step=0, is_nan=False, run_uuid=run_id)
                         for k, v in metrics.items()])
    return run_id


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
