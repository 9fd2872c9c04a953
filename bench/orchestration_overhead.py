"""What the Airflow pipeline adds around one training configuration.

The demo configuration (cifar10-resnet20, preset demo, 2 local ranks) runs directly with
`mlbench train` and through the whole `mlbench_benchmark` DAG (`airflow dags test`: request
validation, data step, GX gates, MLflow, report), alternating, after one warm-up of each (the
warm-up pays the one-time costs: dataset preparation, metadata DB, MLflow store). It also times
the parse of each DAG file. Last line: `ratio=<dag_wall/direct_wall>` (medians).

    python bench/orchestration_overhead.py [--rounds 3] [--max-epochs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from operators.embedded import airflow_env, prepare_airflow, run_dag  # noqa: E402

PARSE_PROBE = """
import runpy, sys, time
import airflow.sdk
start = time.perf_counter()
runpy.run_path(sys.argv[1])
print(time.perf_counter() - start)
"""


def direct_run(home: Path, index: int, overrides: list[str]) -> float:
    output = home / "direct" / f"run{index}"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tasks.cli", "train", "--task", "cifar10-resnet20", "--preset", "demo",
         "--world-size", "2", "--backend", "gloo", "--output", str(output), "--data-root", str(home / "data"),
         *overrides],
        cwd=REPO, capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"direct run failed: {done.stderr[-500:]}")
    return elapsed


def dag_run(env: dict[str, str], home: Path, index: int, conf: dict) -> float:
    outcome = run_dag("mlbench_benchmark", conf, env, log_path=home / "logs" / f"dag{index}.log")
    if outcome.returncode != 0:
        raise SystemExit(f"DAG run failed; see {outcome.log_path}")
    return outcome.seconds


def parse_times(repeats: int = 5) -> dict[str, float]:
    times = {}
    for path in sorted((REPO / "dags").glob("*.py")):
        samples = [float(subprocess.run([sys.executable, "-c", PARSE_PROBE, str(path)], cwd=REPO,
                                        capture_output=True, text=True, check=True).stdout.strip())
                   for _ in range(repeats)]
        times[path.name] = statistics.median(samples)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, help="override the demo's epoch cap (longer runs)")
    parser.add_argument("--target", type=float, help="override the demo's target (e.g. 1.0: run every epoch)")
    args = parser.parse_args()

    overrides, conf_overrides = [], {}
    if args.max_epochs:
        overrides += ["--set", f"max_epochs={args.max_epochs}"]
        conf_overrides["max_epochs"] = str(args.max_epochs)
    if args.target is not None:
        overrides += ["--set", f"target_value={args.target}"]
        conf_overrides["target_value"] = str(args.target)
    conf = {"tasks": ["cifar10-resnet20"], "preset": "demo", "world_sizes": [2], "overrides": conf_overrides}

    with tempfile.TemporaryDirectory(prefix="mlbench-orchestration-") as tmp:
        home = Path(tmp)
        env = airflow_env({"MLBENCH_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow"),
                           "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db"})
        prepare_airflow(env)
        print("warm-up (dataset, metadata DB, MLflow store) ...", flush=True)
        dag_run(env, home, 0, conf)
        direct_run(home, 0, overrides)
        direct, dag = [], []
        for index in range(1, args.rounds + 1):
            pair = [("direct", lambda index=index: direct_run(home, index, overrides)),
                    ("dag", lambda index=index: dag_run(env, home, index, conf))]
            for name, run in pair if index % 2 else reversed(pair):
                seconds = run()
                (direct if name == "direct" else dag).append(seconds)
                print(f"round {index}: {name:6s} {seconds:6.1f} s", flush=True)

    parses = parse_times()
    for name, seconds in parses.items():
        print(f"parse {name}: {seconds * 1000:.1f} ms (median of 5, after `import airflow.sdk`)")
    d, g = statistics.median(direct), statistics.median(dag)
    print(json.dumps({"direct_s": direct, "dag_s": dag}))
    print(f"direct median {d:.1f} s, DAG median {g:.1f} s, DAG adds {g - d:.1f} s")
    print(f"ratio={g / d:.3f}")


if __name__ == "__main__":
    main()
