"""MLBench benchmark, triggered by hand: fill in the form, compare the runs in MLflow."""

import pendulum
from airflow.sdk import DAG

from operators.pipeline import DEFAULT_ARGS, TAGS, benchmark_params, build_pipeline

with DAG(
    dag_id="mlbench_benchmark",
    description="Distributed training benchmark: validate, prepare, gate, train, gate, track, report",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    params=benchmark_params(),
    tags=[*TAGS, "manual"],
    max_active_runs=4,
    doc_md=__doc__,
):
    build_pipeline(request_from="params")
