"""MLBench nightly sweep: the request in dags/sweeps/nightly.yaml (or MLBENCH_NIGHTLY_SWEEP), every
night at 02:00 UTC; each configuration is judged against its history and a regression fails the run."""

from pathlib import Path

import pendulum
from airflow.sdk import DAG

from operators.pipeline import DEFAULT_ARGS, SETTINGS, TAGS, build_pipeline
from operators.regressions.settings import HISTORY_DAG_ID

SWEEP_FILE = SETTINGS.nightly_sweep or Path(__file__).parent / "sweeps" / "nightly.yaml"

with DAG(
    dag_id=HISTORY_DAG_ID,
    description="Nightly benchmark sweep from a versioned sweep file, judged against its history",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "nightly"],
    max_active_runs=1,
    doc_md=__doc__,
):
    build_pipeline(request_from=str(SWEEP_FILE))
