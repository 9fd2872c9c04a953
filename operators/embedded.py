"""The embedded default: the real DAGs on a project-local Airflow (SQLite), no servers.

`python -m operators.embedded demo` is what `make demo` runs: it migrates the metadata DB if
needed, creates the local launcher's pool, runs `mlbench_benchmark` end to end with
`airflow dags test`, shows the pipeline's progress (the full Airflow log goes to a file), and
ends with the comparison table and the MLflow tracking URI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tasks.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DEMO_CONF = {"tasks": ["cifar10-resnet20"], "preset": "demo", "world_sizes": [1, 2], "repeats": 1}
PROGRESS = re.compile(r"\[(pipeline|mlbench|data)\]")
RUN_DIR = re.compile(r"\[pipeline\] run directory: (\S+)")


def airflow_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of the embedded Airflow: project-local home, this repo's DAGs, no examples."""
    home = Settings.from_env().home
    env = {
        **os.environ,
        "MLBENCH_HOME": str(home),
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(home / "airflow")),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GX_ANALYTICS_ENABLED": "False",
        **(extra or {}),
    }
    return env


def _airflow(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    return subprocess.run([airflow, *args], env=env, capture_output=True, text=True, timeout=timeout)


def prepare_airflow(env: dict[str, str]) -> None:
    """Migrate the metadata DB (idempotent) and create the local launcher's pool."""
    from operators.pipeline import LOCAL_POOL

    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    for args in (("db", "migrate"),
                 ("pools", "set", LOCAL_POOL, "1", "local launcher: one configuration at a time")):
        done = _airflow(*args, env=env)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise SystemExit(f"error: `airflow {' '.join(args)}` failed: {' '.join(tail)}")


@dataclass
class DagRunOutcome:
    returncode: int
    run_dir: Path | None
    seconds: float
    log_path: Path


def run_dag(dag_id: str, conf: dict, env: dict[str, str], *, log_path: Path,
            on_line: Callable[[str], None] | None = None) -> DagRunOutcome:
    """`airflow dags test` one DAG run; every line goes to `log_path`, progress lines to `on_line`."""
    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run_dir = None
    with open(log_path, "w") as log_file:
        process = subprocess.Popen([airflow, "dags", "test", dag_id, "-c", json.dumps(conf)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in process.stdout:
            log_file.write(line)
            if match := RUN_DIR.search(line):
                run_dir = Path(match.group(1))
            if on_line and PROGRESS.search(line):
                on_line(line.rstrip())
        returncode = process.wait()
    return DagRunOutcome(returncode, run_dir, time.perf_counter() - started, log_path)


def show_progress(line: str) -> None:
    match = PROGRESS.search(line)
    print("  " + line[match.start():], flush=True)


def demo(conf: dict) -> int:
    env = airflow_env()
    print(f"[demo] Airflow home {env['AIRFLOW_HOME']} (SQLite); migrating the metadata DB if needed", flush=True)
    prepare_airflow(env)
    log_path = Settings.from_env().home / "logs" / "demo-airflow.log"
    print(f"[demo] running DAG mlbench_benchmark with {json.dumps(conf)} (full log: {log_path})", flush=True)
    outcome = run_dag("mlbench_benchmark", conf, env, log_path=log_path, on_line=show_progress)
    print(f"[demo] DAG run finished in {outcome.seconds:.0f}s, "
          f"{'success' if outcome.returncode == 0 else 'FAILED'}")
    if outcome.returncode != 0:
        tail = [line for line in log_path.read_text().splitlines() if "error" in line.lower()][-5:]
        print("[demo] last errors in the Airflow log:\n  " + "\n  ".join(tail or ["(none found)"]))
    if outcome.run_dir and (outcome.run_dir / "summary.txt").exists():
        print()
        print((outcome.run_dir / "summary.txt").read_text())
    uri = Settings.from_env().tracking_uri
    print(f"Open the MLflow UI on it with:  .venv/bin/mlflow ui --backend-store-uri {uri}")
    print(f"MLFLOW_TRACKING_URI={uri}")
    return outcome.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m operators.embedded", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("demo",))
    parser.add_argument("--conf", default=json.dumps(DEMO_CONF), help="the DAG run's params as JSON")
    args = parser.parse_args(argv)
    try:
        conf = json.loads(args.conf)
    except json.JSONDecodeError as exc:
        parser.exit(2, f"error: --conf is not valid JSON: {exc}\n")
    return demo(conf)


if __name__ == "__main__":
    sys.exit(main())
