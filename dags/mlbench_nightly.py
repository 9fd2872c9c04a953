"""MLBench nightly sweep: the request in dags/sweeps/nightly.yaml, every night at 02:00 UTC."""

from pathlib import Path

import pendulum
from airflow.sdk import DAG

from operators.pipeline import DEFAULT_ARGS, TAGS, build_pipeline

SWEEP_FILE = Path(__file__).parent / "sweeps" / "nightly.yaml"

with DAG(
    dag_id="mlbench_nightly",
    description="Nightly benchmark sweep from a versioned sweep file",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "nightly"],
    max_active_runs=1,
    doc_md=__doc__,
):
    build_pipeline(request_from=str(SWEEP_FILE))
